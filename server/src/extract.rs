//! Small extractors shared by handlers.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use crate::error::AppError;

/// `axum::Json`, but a rejection (bad JSON, missing field, wrong content
/// type, body too large) answers with our JSON error shape instead of plain
/// text, and a string holding a NUL character (`\u0000`) is refused (400):
/// PostgreSQL cannot store one in text, and no field needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let (parts, body) = req.into_parts();
        let bytes = match Bytes::from_request(Request::from_parts(parts.clone(), body), state).await
        {
            Ok(bytes) => bytes,
            Err(rejection) => {
                return Err(AppError::Rejected {
                    status: rejection.status(),
                    message: rejection.body_text(),
                });
            }
        };
        if has_escaped_nul(&bytes) {
            return Err(AppError::BadRequest(
                "a string in the body holds a NUL character (\\u0000)".to_owned(),
            ));
        }
        let req = Request::from_parts(parts, Body::from(bytes));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(AppError::Rejected {
                status: rejection.status(),
                message: rejection.body_text(),
            }),
        }
    }
}

/// Whether JSON text holds the escape of a NUL character (`\u0000`) in a
/// string. JSON cannot hold a raw NUL in a string (the parser refuses it),
/// and backslashes occur only inside strings, so following the escapes
/// finds every one.
fn has_escaped_nul(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] == b'\\' {
            if json.get(i + 1) == Some(&b'u') && json.get(i + 2..i + 6) == Some(b"0000") {
                return true;
            }
            // Skip the escaped character (a backslash, a quote, `u`, …).
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// `axum::extract::Query`, but a query string that does not parse answers
/// with our JSON error shape, saying which parameter is wrong and why, and
/// a NUL character (`%00`) anywhere in it is refused (400): PostgreSQL
/// cannot compare text with one, and no parameter needs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        // `%00` is the only spelling of a NUL byte in a URI.
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(AppError::BadRequest(
                "query string: a parameter holds a NUL character (%00)".to_owned(),
            ));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(AppError::Rejected {
                status: rejection.status(),
                message: rejection.body_text(),
            }),
        }
    }
}

/// The client's address as seen by this process (`None` when the server was
/// not started with connect info, as in `oneshot` tests). Behind a reverse
/// proxy this is the proxy's address; trusting `X-Forwarded-For` would need a
/// configured list of trusted proxies, which does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::has_escaped_nul;

    #[test]
    fn finds_an_escaped_nul_in_a_string_and_nothing_else() {
        assert!(has_escaped_nul(br#"{"note": "a\u0000b"}"#));
        assert!(has_escaped_nul(br#"{"note": "\\\u0000"}"#));
        assert!(!has_escaped_nul(br#"{"note": "\\u0000"}"#));
        assert!(has_escaped_nul(br#"{"note": "\u00001"}"#));
        assert!(!has_escaped_nul(br#"{"note": "\u0001 \" u0000"}"#));
        assert!(!has_escaped_nul(b"{}"));
    }
}
