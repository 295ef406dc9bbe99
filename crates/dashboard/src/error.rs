//! The web layer's error type: logs the detail, shows the user a plain message.

use askama::Template;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::templates::ErrorPage;

/// Everything a handler can fail with. Client errors carry a message written for the user;
/// server errors are logged in full and shown only as a generic sentence.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    /// Something the request names does not exist; the message names it (404).
    #[error("{0}")]
    Missing(String),
    /// The request is malformed; the message says what to change.
    #[error("{0}")]
    BadRequest(String),
    /// Authenticated, but not allowed (wrong role, missing or wrong CSRF token).
    #[error("{0}")]
    Forbidden(String),
    #[error("login required")]
    Unauthorized,
    /// The request is well formed but cannot be processed as sent (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The request body is over the limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Too many requests of an expensive kind at once (logins' password checks); the message
    /// says to retry (503 with `Retry-After`).
    #[error("{0}")]
    Overloaded(String),
    #[error(transparent)]
    Core(#[from] aegis_core::Error),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// Wraps any unexpected failure (a panicked blocking task, an unrenderable template…).
    pub fn internal(error: impl std::fmt::Display) -> Self {
        AppError::Internal(error.to_string())
    }

    /// The status code and the message a user may see.
    fn public_parts(&self) -> (StatusCode, String) {
        match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "Not found.".to_string()),
            AppError::Missing(message) => (StatusCode::NOT_FOUND, message.clone()),
            AppError::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
            AppError::Forbidden(message) => (StatusCode::FORBIDDEN, message.clone()),
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "Login required.".to_string()),
            AppError::Unprocessable(message) => (StatusCode::UNPROCESSABLE_ENTITY, message.clone()),
            AppError::TooLarge(message) => (StatusCode::PAYLOAD_TOO_LARGE, message.clone()),
            AppError::Overloaded(message) => (StatusCode::SERVICE_UNAVAILABLE, message.clone()),
            AppError::Core(error) if error.is_busy() => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Another writer holds the database (an import, most likely), so nothing was \
                 written: retry in a few seconds."
                    .to_string(),
            ),
            AppError::Core(_) | AppError::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong on the server; the details are in its log.".to_string(),
                )
            }
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(error: askama::Error) -> Self {
        AppError::Internal(format!("template: {error}"))
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(error: tokio::task::JoinError) -> Self {
        AppError::Internal(format!("blocking task: {error}"))
    }
}

impl IntoResponse for AppError {
    /// An HTML page in the site's layout naming the problem (the JSON API uses [`ApiError`]).
    fn into_response(self) -> Response {
        let (status, message) = self.public_parts();
        let heading = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "That request could not be read",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::UNAUTHORIZED => "Please sign in",
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE => {
                "That request could not be processed"
            }
            StatusCode::SERVICE_UNAVAILABLE => "The server is busy",
            _ => "Something went wrong",
        };
        let response = match ErrorPage::new(heading, &message).render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                message,
            )
                .into_response(),
        };
        with_retry_after(response)
    }
}

/// How long a client told the database is busy should wait before retrying.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// A 503 says when to come back (`Retry-After`), so a client's retry loop need not guess.
fn with_retry_after(mut response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, RETRY_AFTER_SECONDS.into());
    }
    response
}

/// [`AppError`] for the JSON API: the same statuses, with a `{"error": "…"}` body.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(error: E) -> Self {
        ApiError(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = self.0.public_parts();
        with_retry_after((status, Json(serde_json::json!({ "error": message }))).into_response())
    }
}

/// Result alias for handlers and the queries behind them.
pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that waited out another writer (a long import) is told to come back, not shown
    /// "something went wrong": nothing was written, and the same request later goes through.
    #[test]
    fn a_busy_database_is_a_503_that_says_when_to_retry() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        for response in [
            AppError::Core(busy.into()).into_response(),
            ApiError(AppError::Core(
                rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_LOCKED),
                    None,
                )
                .into(),
            ))
            .into_response(),
        ] {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        }
        let other = AppError::Core(rusqlite::Error::InvalidQuery.into()).into_response();
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!other.headers().contains_key(header::RETRY_AFTER));
    }
}
