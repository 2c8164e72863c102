//! The application: shared state and the complete route table.

use std::any::Any;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::auth::JwtKeys;
use crate::auth::limits::LoginLimits;
use crate::config::{Config, ConfigError};
use crate::error::{AppError, code_for_status, error_body};
use crate::routes;
use crate::shutdown::ShutdownSignal;
use crate::store::Store;
use crate::sync::SyncHub;

/// What every handler can reach. Cheap to clone (all `Arc`s).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database (SQLite or PostgreSQL behind one trait).
    pub store: Arc<dyn Store>,
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Access token keys and validation rules.
    pub jwt: Arc<JwtKeys>,
    /// Bounds how many document merges run at once
    /// (`config.max_concurrent_merges` permits). The sync endpoint acquires
    /// one around each merge-and-store.
    pub merge_permits: Arc<Semaphore>,
    /// Failed-login back-off and the bound on concurrent password checks.
    pub login_limits: Arc<LoginLimits>,
    /// Fires when the server begins to shut down; long-lived handlers
    /// (WebSockets) watch it.
    pub shutdown: ShutdownSignal,
    /// Per-document merge locks and the change feed shared by every sync
    /// connection of this process.
    pub sync_hub: Arc<SyncHub>,
}

impl AppState {
    /// Builds the state. Fails if the configuration has no JWT key.
    pub fn new(store: Arc<dyn Store>, config: Config) -> Result<Self, ConfigError> {
        let secret = config
            .jwt_secret
            .as_ref()
            .ok_or(ConfigError::MissingJwtSecret)?;
        let jwt = JwtKeys::new(
            secret.expose(),
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl,
        );
        Ok(AppState {
            store,
            merge_permits: Arc::new(Semaphore::new(config.max_concurrent_merges)),
            login_limits: Arc::new(LoginLimits::new(config.login_limits())),
            config: Arc::new(config),
            jwt: Arc::new(jwt),
            shutdown: ShutdownSignal::new(),
            sync_hub: Arc::new(SyncHub::new()),
        })
    }
}

/// The whole HTTP interface.
///
/// To add a route: write the handler in `src/routes/<url path>.rs` (for
/// example `/api/v1/ledger` → `routes/v1/ledger.rs`), then add one
/// `.route(..)` line below: in `timed` for ordinary request/response routes,
/// in `untimed` for long-lived ones (WebSockets, streaming exports).
pub fn router(state: AppState) -> Router {
    // Install the metrics recorder before the first request records anything.
    crate::metrics::handle();
    let timed = Router::new()
        .route("/healthz", get(routes::healthz::get))
        .route("/readyz", get(routes::readyz::get))
        .route("/metrics", get(routes::metrics::get))
        .route("/api/openapi.json", get(routes::openapi::get))
        .route("/api/v1/auth/login", post(routes::v1::auth::login))
        .route("/api/v1/auth/refresh", post(routes::v1::auth::refresh))
        .route("/api/v1/auth/logout", post(routes::v1::auth::logout))
        .route(
            "/api/v1/me/password",
            post(routes::v1::auth::change_password),
        )
        .route("/api/v1/me", get(routes::v1::me::get))
        .route("/api/v1/me/documents", get(routes::v1::me::documents))
        .route("/api/v1/me/assigned", get(routes::v1::me::assigned))
        .route("/api/v1/ledger", get(routes::v1::ledger::list))
        .route("/api/v1/visits", get(routes::v1::visits::list))
        .route("/api/v1/cards", get(routes::v1::cards::list))
        .route("/api/v1/devices", get(routes::v1::devices::list))
        .route("/api/v1/stats", get(routes::v1::stats::get))
        .route("/api/v1/lists", get(routes::v1::lists::get))
        .route("/api/v1/audit", get(routes::v1::audit::list))
        .route("/api/v1/petitions/{id}", get(routes::v1::petitions::get))
        .route(
            "/api/v1/petitions/{id}/deadline",
            post(routes::v1::petitions::deadline),
        )
        .route(
            "/api/v1/petitions/{id}/assign",
            post(routes::v1::petitions::assign),
        )
        .route(
            "/api/v1/petitions/{id}/escalate",
            post(routes::v1::petitions::escalate),
        )
        .route(
            "/api/v1/petitions/{id}/supervise",
            post(routes::v1::petitions::supervise),
        )
        .route(
            "/api/v1/petitions/{id}/close",
            post(routes::v1::petitions::close),
        )
        .route(
            "/api/v1/petitions/{id}/reopen",
            post(routes::v1::petitions::reopen),
        )
        .route(
            "/api/v1/petitions/{id}/progress",
            post(routes::v1::petitions::progress),
        )
        .route(
            "/api/v1/petitions/{id}/resolve",
            post(routes::v1::petitions::resolve),
        )
        .route(
            "/api/v1/petitions/{id}/feedback",
            post(routes::v1::petitions::feedback),
        )
        // Applies to the routes above only (`Router::layer` wraps the routes
        // that exist when it is called).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.config.request_timeout,
        ));

    // Long-lived routes: no request timeout.
    let untimed = Router::new()
        .route("/api/v1/sync", get(routes::v1::sync::upgrade))
        .route(
            "/api/v1/ledger/export.xlsx",
            get(routes::v1::exports::ledger_xlsx),
        )
        .route(
            "/api/v1/ledger/export.csv",
            get(routes::v1::exports::ledger_csv),
        )
        .route(
            "/api/v1/exports/lists.xlsx",
            get(routes::v1::exports::lists_xlsx),
        )
        .route(
            "/api/v1/exports/lists.csv",
            get(routes::v1::exports::lists_csv),
        )
        .route(
            "/api/v1/exports/stats.xlsx",
            get(routes::v1::exports::stats_xlsx),
        )
        .route(
            "/api/v1/exports/stats.csv",
            get(routes::v1::exports::stats_csv),
        );

    let body_limit = state.config.body_limit_bytes;
    // Each `.layer` wraps everything before it, so the LAST one is the
    // outermost. `Router::layer` also turns every layer's response into an
    // axum `Response`, which lets tower-http and axum middleware mix.
    timed
        .merge(untimed)
        .merge(crate::web::router(state.config.request_timeout))
        .fallback(not_found)
        // axum's own extractor limit (2 MiB) would otherwise apply on top of
        // ours; make them agree.
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::map_response(json_error_bodies))
        .layer(middleware::from_fn(count_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO))
                .on_failure(DefaultOnFailure::new().level(Level::ERROR)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The span every request runs in. The path is logged without its query
/// string, which may carry `?token=`.
fn make_request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        path = %request.uri().path(),
        request_id,
        user_id = tracing::field::Empty,
        document_id = tracing::field::Empty,
    )
}

async fn count_requests(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    crate::metrics::http_request(&method, &route, response.status().as_u16());
    response
}

/// Gives error responses made outside our handlers (405 from the router, 408
/// from the timeout, 413 from the body limit) the same JSON body as
/// `AppError`, keeping their status and headers.
async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // The web pages' errors are Chinese HTML pages (`web::layout`).
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if is_json {
        return response;
    }
    let message = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = error_body(code_for_status(status), &message).to_string();
    Response::from_parts(parts, Body::from(body))
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    AppError::internal(format!("handler panicked: {detail}")).into_response()
}

async fn not_found() -> AppError {
    AppError::NotFound
}
