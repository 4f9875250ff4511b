//! How things go wrong in the server: [`ServerError`] when it cannot start,
//! and [`AppError`], the one error type of every handler.
//!
//! Bad input becomes a specific 4xx whose message says what to change and is
//! not logged as an error. An internal failure becomes an opaque 500 and is
//! logged, with its cause, inside the request's span.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use flukeid_shared::api::ApiError;
use serde::de::DeserializeOwned;

use super::catalog::CatalogError;
use crate::data::DataError;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the data set: {0}")]
    Data(#[from] DataError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read or write the admin token at {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// A request body as `T`: 400 when it is not JSON, 422 when it is JSON of
/// the wrong shape.
///
/// # Errors
///
/// As above, with serde's account of what is wrong.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    use serde_json::error::Category;
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            AppError::BadRequest(format!("the body is not valid JSON: {error}"))
        }
        Category::Data => AppError::Unprocessable(format!("the body does not fit: {error}")),
    })
}

/// Whether a request body is empty or only whitespace, which the API
/// takes as "all defaults".
pub fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// [`json_body`], with `T::default()` for a blank body.
///
/// # Errors
///
/// As [`json_body`].
pub fn json_body_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if is_blank(body) {
        Ok(T::default())
    } else {
        json_body(body)
    }
}

/// The error of a request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong admin token: send the header `Authorization: Bearer TOKEN`")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

/// What a person sees of an internal failure; the cause goes to the log.
const INTERNAL_MESSAGE: &str = "internal error; the server log has the details";

impl AppError {
    /// Wraps an unexpected failure as a 500.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(source.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(source) => {
                tracing::error!(error = %source, "request failed");
                INTERNAL_MESSAGE.to_string()
            }
            other => {
                tracing::debug!(%status, "refused: {other}");
                other.to_string()
            }
        };
        let mut response = (status, Json(ApiError { error: message })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = header::HeaderValue::from_static("Bearer");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl From<CatalogError> for AppError {
    fn from(error: CatalogError) -> Self {
        Self::internal(error)
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::internal(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let response = AppError::internal("disk on fire").into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let error: ApiError = serde_json::from_slice(&body).unwrap();
        assert_eq!(error.error, INTERNAL_MESSAGE);
    }

    #[tokio::test]
    async fn unauthorized_carries_a_bearer_challenge() {
        let response = AppError::Unauthorized.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
