//! Photos the server shows: gallery images from the data set's `train/` and
//! `test/` folders and stored uploads, named in URLs as
//! `/api/images/{kind}/{name}`.
//!
//! A name is a plain file name, checked before any path is built, and the
//! file found must lie inside its folder after links are resolved, so no
//! request reaches a file outside the data folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::AppError;
use super::state::AppState;

/// Which folder an image lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageKind {
    Train,
    Test,
    Uploads,
}

/// A photo the server can show.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    pub kind: ImageKind,
    pub name: String,
}

/// Longest file name accepted in a URL.
const MAX_NAME_LEN: usize = 128;

impl ImageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageKind::Train => "train",
            ImageKind::Test => "test",
            ImageKind::Uploads => "uploads",
        }
    }

    fn parse(kind: &str) -> Option<Self> {
        match kind {
            "train" => Some(ImageKind::Train),
            "test" => Some(ImageKind::Test),
            "uploads" => Some(ImageKind::Uploads),
            _ => None,
        }
    }
}

impl ImageRef {
    pub fn new(kind: ImageKind, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }

    /// The URL the image is served at.
    pub fn url(&self) -> String {
        format!("/api/images/{}/{}", self.kind.as_str(), self.name)
    }

    /// The file's path inside the data folder.
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(self.kind.as_str()).join(&self.name)
    }
}

/// Whether `name` is a plain file name: letters, digits, `.`, `_` and `-`,
/// not starting with a dot, so neither `..` nor a separator can appear.
pub fn is_plain_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name.chars().all(allowed)
}

/// `GET /api/images/{kind}/{name}`: the image file, with a content type
/// from its extension.
///
/// # Errors
///
/// 404 for an unknown kind or a missing file, 400 for a name that is not a
/// plain file name.
pub async fn get_image(
    State(state): State<Arc<AppState>>,
    UrlPath((kind, name)): UrlPath<(String, String)>,
) -> Result<Response, AppError> {
    let kind = ImageKind::parse(&kind).ok_or_else(|| {
        AppError::NotFound(format!(
            "no image kind {kind:?}; use train, test or uploads"
        ))
    })?;
    if !is_plain_name(&name) {
        return Err(AppError::BadRequest(format!(
            "{name:?} is not a plain file name (letters, digits, '.', '_' and '-')"
        )));
    }
    let image = ImageRef::new(kind, name);
    let bytes = read_inside(&state.paths.root, &image).await?;
    let headers = [
        (header::CONTENT_TYPE, content_type(&image.name)),
        (header::CACHE_CONTROL, "public, max-age=86400"),
    ];
    Ok((headers, bytes).into_response())
}

async fn read_inside(data_dir: &Path, image: &ImageRef) -> Result<Vec<u8>, AppError> {
    let missing = || AppError::NotFound(format!("no image {}", image.url()));
    let folder = tokio::fs::canonicalize(data_dir.join(image.kind.as_str()))
        .await
        .map_err(|_| missing())?;
    let path = tokio::fs::canonicalize(image.path(data_dir))
        .await
        .map_err(|_| missing())?;
    if !path.starts_with(&folder) || !path.is_file() {
        return Err(missing());
    }
    tokio::fs::read(&path).await.map_err(AppError::internal)
}

fn content_type(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".png") {
        "image/png"
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        "image/jpeg"
    } else {
        "application/octet-stream"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_exclude_traversal_and_separators() {
        for good in ["0a1b2c.jpg", "w_1-x.PNG", "abc"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in [
            "..",
            "../etc/passwd",
            "a/b.jpg",
            ".hidden",
            "",
            "a\\b",
            "é.jpg",
            "a b.jpg",
        ] {
            assert!(!is_plain_name(bad), "{bad}");
        }
        assert!(!is_plain_name(&"a".repeat(MAX_NAME_LEN + 1)));
    }

    #[test]
    fn urls_name_the_kind() {
        let image = ImageRef::new(ImageKind::Uploads, "ff.png");
        assert_eq!(image.url(), "/api/images/uploads/ff.png");
        assert_eq!(content_type(&image.name), "image/png");
    }
}
