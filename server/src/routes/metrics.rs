//! `GET /metrics`: Prometheus text format.
//!
//! Unauthenticated, like most exporters: it carries counts, never personal
//! data. Restrict it at the reverse proxy if the server faces the internet.

use axum::http::header;
use axum::response::IntoResponse;

/// The current metrics.
pub async fn get() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}
