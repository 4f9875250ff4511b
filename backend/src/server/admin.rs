//! The admin token: where it comes from (the configuration, the data
//! folder, or freshly generated at first start and saved there so that it
//! survives restarts), and the check every admin route passes through.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;

use super::error::{AppError, ServerError};
use super::state::AppState;

/// The bearer token admin requests must carry.
#[derive(Clone)]
pub struct AdminToken {
    token: String,
}

/// Where the token in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Configured,
    Saved,
    Generated,
}

/// Random bytes in a generated token (hex-encoded to twice as many
/// characters).
const TOKEN_BYTES: usize = 24;

impl AdminToken {
    /// The configured token, else the one saved at `path`, else a new one
    /// saved there (readable by the owner only).
    ///
    /// # Errors
    ///
    /// [`ServerError::Token`] when the file cannot be read or written.
    pub fn resolve(
        configured: Option<&str>,
        path: &Path,
    ) -> Result<(Self, TokenSource), ServerError> {
        let fail = |source| ServerError::Token {
            path: path.to_path_buf(),
            source,
        };
        if let Some(token) = configured.map(str::trim).filter(|t| !t.is_empty()) {
            return Ok((
                Self {
                    token: token.to_string(),
                },
                TokenSource::Configured,
            ));
        }
        match std::fs::read_to_string(path) {
            Ok(saved) if !saved.trim().is_empty() => {
                return Ok((
                    Self {
                        token: saved.trim().to_string(),
                    },
                    TokenSource::Saved,
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
        let token = generate();
        save(path, &token).map_err(fail)?;
        Ok((Self { token }, TokenSource::Generated))
    }

    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// Whether `candidate` is the token, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.token.as_bytes(), candidate.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// Whether the request's `Authorization: Bearer` header holds the token.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        bearer(headers).is_some_and(|token| self.matches(token))
    }
}

/// Middleware of the admin routes: 401 unless the bearer token matches.
///
/// # Errors
///
/// [`AppError::Unauthorized`].
pub async fn require_admin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Result<Response, AppError> {
    if !state.token.allows(request.headers()) {
        return Err(AppError::Unauthorized);
    }
    Ok(next.run(request).await)
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn generate() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn save(path: &Path, token: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // NamedTempFile is created readable by its owner only (0600 on Unix).
    tmp.write_all(token.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_generated_token_is_saved_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin_token");
        let (first, source) = AdminToken::resolve(None, &path).unwrap();
        assert_eq!(source, TokenSource::Generated);
        assert_eq!(first.as_str().len(), 2 * TOKEN_BYTES);
        let (second, source) = AdminToken::resolve(None, &path).unwrap();
        assert_eq!(
            (second.as_str(), source),
            (first.as_str(), TokenSource::Saved)
        );
        let (configured, _) = AdminToken::resolve(Some("s3cret"), &path).unwrap();
        assert_eq!(configured.as_str(), "s3cret");
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = AdminToken {
            token: "abc".into(),
        };
        let mut headers = HeaderMap::new();
        assert!(!token.allows(&headers));
        for (value, ok) in [
            ("Bearer abc", true),
            ("bearer abc", true),
            ("Bearer abd", false),
            ("Bearer ab", false),
            ("Basic abc", false),
            ("abc", false),
        ] {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            assert_eq!(token.allows(&headers), ok, "{value}");
        }
    }
}
