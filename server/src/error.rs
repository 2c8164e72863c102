//! The one error type of the HTTP layer.
//!
//! Every handler returns `Result<_, AppError>`. A 4xx becomes
//! `{"error": {"code": "...", "message": "..."}}` with a message meant for
//! the client; a 5xx becomes the same shape with a generic message, and the
//! real cause goes to the log (with the request's span, so its request id).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::{BoxError, StoreError};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed (bad JSON, missing field, value out of range).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials: missing, malformed, forged or revoked token, or
    /// a wrong username/password (deliberately not told apart).
    #[error("{0}")]
    Unauthorized(String),
    /// The access token expired: the client should use its refresh token.
    #[error("access token expired")]
    TokenExpired,
    /// Authenticated, but the role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there, or nothing the caller may see (the two look the same).
    #[error("not found")]
    NotFound,
    /// The request contradicts the stored state.
    #[error("{0}")]
    Conflict(String),
    /// An extractor or middleware refused the request with this status
    /// (unsupported media type, body too large, …).
    #[error("{message}")]
    Rejected {
        /// The status to answer.
        status: StatusCode,
        /// What to tell the client.
        message: String,
    },
    /// A dependency (the database) is not usable right now.
    #[error("service unavailable")]
    Unavailable(#[source] BoxError),
    /// Not now: too many attempts (429) or too busy (503); the answer says
    /// when to try again (`Retry-After`).
    #[error("{message}")]
    RetryLater {
        /// 429 or 503.
        status: StatusCode,
        /// Whole seconds to wait, at least 1.
        retry_after_secs: u64,
        /// Why.
        message: String,
    },
    /// A server fault. The cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl AppError {
    /// Wraps any error as a 500.
    pub fn internal(err: impl Into<BoxError>) -> Self {
        AppError::Internal(err.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) | AppError::TokenExpired => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Rejected { status, .. } => *status,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::RetryLater { status, .. } => *status,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `code` of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::TokenExpired => "token_expired",
            _ => code_for_status(self.status()),
        }
    }
}

/// The `code` used for a bare status (also by the middleware that gives
/// non-JSON error responses a JSON body).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// The JSON body of every error answer (what [`error_body`] makes), for
/// the OpenAPI document.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable: `bad_request`, `unauthorized`, `token_expired`,
    /// `forbidden`, `not_found`, `conflict`, `invalid_request`, …
    pub code: String,
    /// For people; for a 5xx, a generic message.
    pub message: String,
}

/// The JSON error body.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({ "error": { "code": code, "message": message } })
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            AppError::Internal(cause) => {
                tracing::error!(error = %error_chain(cause.as_ref()), "internal error");
                "internal server error".to_owned()
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(error = %error_chain(cause.as_ref()), "service unavailable");
                "service unavailable".to_owned()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            AppError::RetryLater {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let mut response = (status, Json(error_body(self.code(), &message))).into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An error and all its causes, `outer: inner: innermost`, for the log.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(message) => AppError::Conflict(message),
            StoreError::Stale(_) => AppError::Conflict(
                "the document was written by someone else meanwhile; try again".to_owned(),
            ),
            StoreError::OverLimit(over) => AppError::Rejected {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: over.to_string(),
            },
            StoreError::Backend(_) => AppError::Internal(Box::new(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: AppError) -> (StatusCode, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn client_errors_say_what_is_wrong() {
        let (status, body) = body_of(AppError::BadRequest("device_id is too long".into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "device_id is too long");
    }

    #[tokio::test]
    async fn server_errors_hide_the_cause() {
        let (status, body) = body_of(AppError::internal("password=hunter2 in a stack")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("hunter2"));
    }
}
