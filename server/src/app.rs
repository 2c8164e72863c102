//! The application: shared state and the complete route table.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::JwtKeys;
use crate::auth::limits::LoginLimits;
use crate::config::{Config, ConfigError};
use crate::error::{AppError, code_for_status, error_body};
use crate::routes;
use crate::shutdown::ShutdownSignal;
use crate::store::Store;
use crate::sync::SyncHub;
use crate::sync::live::DocumentGuard;
use sync_core::DocumentId;

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
        let live_limits = config.live_limits();
        Ok(AppState {
            store,
            merge_permits: Arc::new(Semaphore::new(config.max_concurrent_merges)),
            login_limits: Arc::new(LoginLimits::new(config.login_limits())),
            config: Arc::new(config),
            jwt: Arc::new(jwt),
            shutdown: ShutdownSignal::new(),
            sync_hub: Arc::new(SyncHub::with_live_limits(live_limits)),
        })
    }

    /// The document's lock, then a merge permit: what a sync or a
    /// supervisor's action holds while it loads, merges and stores a
    /// document. In that order everywhere, so that waiting for a busy
    /// document never holds a permit. Fails only once the permits are closed.
    pub async fn lock_for_merge(
        &self,
        document_id: DocumentId,
    ) -> Result<(DocumentGuard, OwnedSemaphorePermit), AcquireError> {
        let guard = self.sync_hub.lock(document_id).await;
        let permit = self.merge_permits.clone().acquire_owned().await?;
        Ok((guard, permit))
    }
}

/// The whole HTTP interface: the API ([`api_routes`]) and what every
/// request goes through.
pub fn router(state: AppState) -> Router {
    // Install the metrics recorder before the first request records anything.
    crate::metrics::handle();
    let (api, _) = api_routes(state.config.request_timeout).split_for_parts();

    let body_limit = state.config.body_limit_bytes;
    // Each `.layer` wraps everything before it, so the LAST one is the
    // outermost. `Router::layer` also turns every layer's response into an
    // axum `Response`, which lets tower-http and axum middleware mix.
    api.merge(crate::web::router(state.config.request_timeout))
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

/// The API's route table. To add a route: write the handler in
/// `src/routes/<url path>.rs` (for example `/api/v1/ledger` →
/// `routes/v1/ledger.rs`) with its `#[utoipa::path]` description, then add
/// one `.routes(routes!(..))` line below: in `timed` for ordinary
/// request/response routes, in `untimed` for long-lived ones (WebSockets,
/// streaming exports). `routes!` registers the route and its OpenAPI
/// description together (`routes::openapi`), so the two cannot drift.
pub fn api_routes(request_timeout: Duration) -> OpenApiRouter<AppState> {
    use routes::v1::{
        audit, auth, cards, devices, exports, ledger, lists, me, petitions, stats, sync, visits,
    };
    let timed = OpenApiRouter::new()
        .routes(routes!(routes::healthz::get))
        .routes(routes!(routes::readyz::get))
        .routes(routes!(routes::metrics::get))
        .routes(routes!(routes::openapi::get))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::change_password))
        .routes(routes!(me::get))
        .routes(routes!(me::documents))
        .routes(routes!(me::assigned))
        .routes(routes!(ledger::list))
        .routes(routes!(visits::list))
        .routes(routes!(cards::list))
        .routes(routes!(devices::list))
        .routes(routes!(stats::get))
        .routes(routes!(lists::get))
        .routes(routes!(audit::list))
        .routes(routes!(petitions::get))
        .routes(routes!(petitions::deadline))
        .routes(routes!(petitions::assign))
        .routes(routes!(petitions::escalate))
        .routes(routes!(petitions::supervise))
        .routes(routes!(petitions::close))
        .routes(routes!(petitions::reopen))
        .routes(routes!(petitions::progress))
        .routes(routes!(petitions::resolve))
        .routes(routes!(petitions::feedback))
        // Applies to the routes above only (`layer` wraps the routes that
        // exist when it is called).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ));

    // Long-lived routes: no request timeout.
    let untimed = OpenApiRouter::new()
        .routes(routes!(sync::upgrade))
        .routes(routes!(exports::ledger_xlsx))
        .routes(routes!(exports::ledger_csv))
        .routes(routes!(exports::lists_xlsx))
        .routes(routes!(exports::lists_csv))
        .routes(routes!(exports::stats_xlsx))
        .routes(routes!(exports::stats_csv))
        .routes(routes!(exports::visits_xlsx))
        .routes(routes!(exports::visits_csv));

    timed.merge(untimed)
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
