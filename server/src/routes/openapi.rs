//! `GET /api/openapi.json`: the OpenAPI 3.1 description of this API,
//! generated from the code.
//!
//! Each handler carries a `#[utoipa::path]` attribute (method, path,
//! parameters, body, every status it answers) and `app::api_routes`
//! registers it with utoipa-axum's `routes!`, which adds the route and its
//! description together: a route cannot be served without being described,
//! nor described without being served. Request and response types derive
//! `ToSchema` / `IntoParams`, so their fields and doc comments are the
//! schema. This module adds what is common to every operation: the security
//! schemes, the JSON error body and the error responses operations refer to.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, KnownFormat, ObjectBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder,
    Schema, SchemaFormat, Type,
};
use utoipa::{IntoResponses, Modify, OpenApi, PartialSchema, ToSchema};

use crate::error::ErrorBody;

/// The document's fixed parts; the paths come from the router.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Visit diary server API",
        version = "1",
        description = "The HTTP API of the visit diary server, generated from its code \
(`server/src/app.rs` `api_routes()` registers each route with its description).\n\n\
Every error answers `{\"error\": {\"code\", \"message\"}}` with `content-type: application/json`, \
including errors made outside the handlers. Codes: `bad_request` (400), `unauthorized` or \
`token_expired` (401), `forbidden` (403), `not_found` (404, also for unknown paths), \
`method_not_allowed` (405), `timeout` (408), `conflict` (409), `payload_too_large` (413), \
`unsupported_media_type` (415), `invalid_request` (422), `too_many_requests` (429), \
`unavailable` (503), `internal` (500). A 5xx message never carries the cause. Every 401 \
carries `WWW-Authenticate: Bearer`.\n\n\
Every route except `GET /api/v1/sync` and the exports answers 408 when it takes longer than \
the configured `request_timeout`; any route may answer 500. Request bodies are limited to \
the configured `body_limit_bytes` (413). Every response carries an `x-request-id` header \
(taken from the request when it has one)."
    ),
    tags(
        (name = "health", description = "Liveness, readiness, metrics and this document"),
        (name = "auth", description = "Login, token refresh, logout, password change"),
        (name = "me", description = "About the caller"),
        (name = "ledger", description = "The petitions ledger (台账), visits, service cards, devices"),
        (name = "petitions", description = "One petition: its history, supervision and the responsible person's work"),
        (name = "supervision", description = "Statistics, the monthly three lists, the audit log"),
        (name = "exports", description = "XLSX and CSV exports"),
        (name = "sync", description = "The automerge-repo WebSocket sync endpoint"),
    ),
    modifiers(&Common)
)]
pub struct ApiDoc;

/// The security schemes, the error body and the shared error responses.
struct Common;

impl Modify for Common {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The access token of `POST /api/v1/auth/login` or `/refresh`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "token_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The access token as `?token=`, for WebSocket clients that cannot set headers.",
            ))),
        );
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        let mut schemas = Vec::new();
        ErrorBody::schemas(&mut schemas);
        components.schemas.extend(schemas);
        for &(_, name, description) in ERROR_RESPONSES {
            components.responses.insert(
                name.to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content(
                            "application/json",
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                                .build(),
                        )
                        .build(),
                ),
            );
        }
    }
}

/// Each error status operations answer: (status, name of its shared
/// response, what it means).
const ERROR_RESPONSES: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "Malformed request: a query parameter, path parameter or body field that does not parse or is out of range; the message names it",
    ),
    (
        401,
        "Unauthorized",
        "No valid access token (missing, malformed, forged, revoked or expired: `token_expired`), or wrong credentials",
    ),
    (
        403,
        "Forbidden",
        "Authenticated, but the caller's role or reach does not allow this",
    ),
    (
        404,
        "NotFound",
        "Nothing there, or nothing the caller may see (the two answer alike)",
    ),
    (409, "Conflict", "The request contradicts the stored state"),
    (
        413,
        "PayloadTooLarge",
        "The body is larger than `body_limit_bytes`",
    ),
    (
        415,
        "UnsupportedMediaType",
        "The body is not `application/json`",
    ),
    (
        422,
        "UnprocessableEntity",
        "The JSON body lacks a field, has an unknown one, or a value of the wrong type or out of range",
    ),
    (
        426,
        "UpgradeRequired",
        "The connection cannot be upgraded to a WebSocket",
    ),
    (
        429,
        "TooManyRequests",
        "Too many attempts or connections; `Retry-After` says when to try again",
    ),
    (
        503,
        "Unavailable",
        "Busy or not ready; try again later (`Retry-After` when the server knows when)",
    ),
];

/// The shared error responses for `statuses`, by reference.
fn error_responses(statuses: &[u16]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    statuses
        .iter()
        .map(|status| {
            let name = ERROR_RESPONSES
                .iter()
                .find(|(s, _, _)| s == status)
                .map(|(_, name, _)| *name)
                .unwrap_or("BadRequest");
            (
                status.to_string(),
                RefOr::Ref(Ref::from_response_name(name)),
            )
        })
        .collect()
}

/// Declares a set of error statuses an operation answers, for
/// `responses(..)` of `#[utoipa::path]`.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($status:literal),+) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                error_responses(&[$($status),+])
            }
        }
    };
}

error_set!(
    /// A route that needs only a valid token.
    TokenErrors: 401
);
error_set!(
    /// An authenticated read with a query string.
    QueryErrors: 400, 401
);
error_set!(
    /// An authenticated read within the caller's reach (`unit`, `cadre`).
    ScopedErrors: 400, 401, 403
);
error_set!(
    /// Reading one petition.
    PetitionReadErrors: 400, 401, 404, 409
);
error_set!(
    /// Acting on one petition with a JSON body.
    PetitionActionErrors: 400, 401, 403, 404, 409, 413, 415, 422
);
error_set!(
    /// Login: bad credentials, a bad body, back-off and the bound on
    /// password checks.
    LoginErrors: 400, 401, 413, 415, 422, 429, 503
);
error_set!(
    /// Refresh: a bad body or a refresh token that is not valid.
    RefreshErrors: 400, 401, 413, 415, 422
);
error_set!(
    /// Logout: only a bad body.
    BodyErrors: 400, 413, 415, 422
);
error_set!(
    /// Password change: a token, a body, the current password checked
    /// like a login.
    PasswordErrors: 400, 401, 403, 413, 415, 422, 429, 503
);
error_set!(
    /// The WebSocket upgrade.
    SyncErrors: 400, 401, 426, 429, 503
);
error_set!(
    /// Readiness.
    ReadyErrors: 503
);
error_set!(
    /// `/metrics` without its token, or from another machine.
    MetricsErrors: 401, 403
);

/// A file's bytes (XLSX, CSV).
#[derive(Debug)]
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl ToSchema for Binary {}

/// The media type of an XLSX answer.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The whole document: the fixed parts and every path of the router.
pub fn document() -> Document {
    let (_, paths) = crate::app::api_routes(std::time::Duration::from_secs(1)).split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(paths);
    let mut petition_operations = Vec::new();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, operation) in operations(item) {
            // An operation without a security requirement is public: say
            // so (`security: []`), so clients and tools need not guess.
            if operation.security.is_none() {
                operation.security = Some(Vec::new());
            }
            // utoipa names an operation after its handler (`get`, `list`),
            // which repeats across modules; the method and path do not.
            let id = operation_id(method, path);
            if path.starts_with("/api/v1/petitions/{id}") {
                petition_operations.push(id.clone());
            }
            operation.operation_id = Some(id);
        }
    }
    // A petition's id comes from the ledger: say so, so that clients (and
    // schemathesis' stateful phase) can follow a listed item to its routes.
    if let Some(ledger) = doc
        .paths
        .paths
        .get_mut("/api/v1/ledger")
        .and_then(|item| item.get.as_mut())
        && let Some(RefOr::T(ok)) = ledger.responses.responses.get_mut("200")
    {
        for id in petition_operations {
            ok.links.insert(
                id.clone(),
                RefOr::T(
                    LinkBuilder::new()
                        .operation_id(id)
                        .parameter("id", "$response.body#/items/0/id")
                        .description("The first listed petition")
                        .build(),
                ),
            );
        }
    }
    doc
}

/// `get /api/v1/petitions/{id}/close` → `get_api_v1_petitions_id_close`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for part in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !part.is_empty() {
            id.push('_');
            id.push_str(part);
        }
    }
    id
}

fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("options", item.options.as_mut()),
        ("head", item.head.as_mut()),
        ("patch", item.patch.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
}

/// The document as JSON, made once.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut json = serde_json::to_value(document()).unwrap_or_default();
        camel_case_links(&mut json);
        serde_json::to_string_pretty(&json).unwrap_or_default()
    })
}

/// utoipa 5 writes a link's fields in snake case (`operation_id`); the
/// specification, and every tool that reads links, wants `operationId`.
fn camel_case_links(json: &mut serde_json::Value) {
    let operations = json
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation
            .get_mut("responses")
            .and_then(serde_json::Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links"))
            .filter_map(serde_json::Value::as_object_mut)
            .flat_map(|links| links.values_mut())
            .filter_map(serde_json::Value::as_object_mut);
        for link in links {
            for (from, to) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(from) {
                    link.insert(to.to_owned(), value);
                }
            }
        }
    }
}

/// The OpenAPI document, `application/json`.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "health",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
pub async fn get() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}
