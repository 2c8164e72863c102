//! The supervisors' web pages, in Chinese, rendered by the server (maud),
//! over the same handlers as the JSON API.
//!
//! Every page handler calls the JSON handler of its API route (or the
//! domain function behind it) under the session's user, so scope, filters,
//! masking of personal data, supervision rules and audit rows are the
//! API's, never a second copy. The pages are not part of the OpenAPI
//! document.
//!
//! | path | page |
//! |---|---|
//! | `GET /` | to `/ledger` |
//! | `GET`/`POST /login`, `POST /logout` | [`login`] |
//! | `GET /ledger` | [`ledger`]: 台账 with filters, paging, sort |
//! | `GET /petitions/{id}`, `POST /petitions/{id}/{action}` | [`petition`] |
//! | `GET /stats` | [`stats`]: 统计, rankings, charts ([`charts`]) |
//! | `GET /lists` | [`lists`]: 三个清单 |
//! | `GET /devices` | [`devices`]: phones and last syncs |
//! | `GET /{ledger,lists,stats,devices}/export.{xlsx,csv}` | [`exports`] |
//! | `GET /assets/web.css` | the style sheet, compiled in |
//!
//! Sessions and CSRF tokens: [`session`]; the frame and the error page:
//! [`layout`].

pub mod charts;
pub mod devices;
pub mod exports;
pub mod layout;
pub mod ledger;
pub mod lists;
pub mod login;
pub mod petition;
pub mod session;
pub mod stats;

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;

/// The pages' routes: pages under the request timeout, exports (streamed)
/// without it, like the API's.
pub fn router(request_timeout: Duration) -> Router<AppState> {
    let pages = Router::new()
        .route("/", get(|| async { Redirect::to("/ledger") }))
        .route("/assets/web.css", get(css))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/ledger", get(ledger::get))
        .route("/petitions/{id}", get(petition::get))
        .route("/petitions/{id}/{action}", post(petition::act))
        .route("/stats", get(stats::get))
        .route("/lists", get(lists::get))
        .route("/devices", get(devices::get))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ));
    let exports = Router::new()
        .route("/ledger/export.xlsx", get(exports::ledger_xlsx))
        .route("/ledger/export.csv", get(exports::ledger_csv))
        .route("/lists/export.xlsx", get(exports::lists_xlsx))
        .route("/lists/export.csv", get(exports::lists_csv))
        .route("/stats/export.xlsx", get(exports::stats_xlsx))
        .route("/stats/export.csv", get(exports::stats_csv))
        .route("/devices/export.xlsx", get(exports::devices_xlsx))
        .route("/devices/export.csv", get(exports::devices_csv));
    pages
        .merge(exports)
        .layer(axum::middleware::map_response(layout::html_errors))
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        layout::CSS,
    )
}
