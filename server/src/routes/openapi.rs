//! `GET /api/openapi.json`: the OpenAPI 3.1 description of this API.
//!
//! The document is the hand-written `server/openapi.json`, compiled in.
//! Keep it in step with `app::router`; `tests/http_api.rs` checks that
//! every documented operation is routed and every route is documented.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as checked in.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// The OpenAPI document, `application/json`.
pub async fn get() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
