//! `GET /metrics`: Prometheus text format.
//!
//! It carries counts, never personal data, but a public deployment should
//! not publish them: with `metrics_token` configured, a scrape must send it
//! as a bearer token; without one, only clients on this machine (loopback)
//! are answered. Behind a reverse proxy on the same machine every client
//! looks local, so set a token there (or do not forward `/metrics`).

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::AppError;
use crate::extract::ClientAddr;

/// The current metrics, to whoever may read them.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String), crate::routes::openapi::MetricsErrors)
)]
pub async fn get(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    match &state.config.metrics_token {
        Some(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same_secret(presented.as_bytes(), token.expose().as_bytes()) {
                return Err(AppError::Unauthorized(
                    "metrics need the configured bearer token".to_owned(),
                ));
            }
        }
        None => {
            let local = peer
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .is_some_and(|ip| ip.is_loopback());
            if !local {
                return Err(AppError::Forbidden(
                    "metrics are served to this machine only; configure metrics_token \
                     to scrape from elsewhere"
                        .to_owned(),
                ));
            }
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response())
}

/// Compares without stopping at the first differing byte.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}
