//! `GET /api/v1/me`, `GET /api/v1/me/documents` and
//! `GET /api/v1/me/assigned`: about the caller.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::DocumentId;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::LedgerQuery;
use crate::routes::v1::ledger::{LedgerResponse, china_today, entry, enum_param, page_window};
use crate::store::{Role, StoredKind};

/// Answer of `GET /api/v1/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub user_id: i64,
    /// Login name.
    pub username: String,
    /// Name shown to people.
    pub display_name: String,
    pub role: Role,
    /// Code of the caller's unit (`village1`).
    pub unit_code: String,
    /// Name of the caller's unit (`柳树村`).
    pub unit_name: String,
    /// Device id of the access token, or "".
    pub device_id: String,
}

/// Who the access token belongs to, as the server sees them now.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "me",
    responses((status = 200, description = "The caller", body = Me), crate::routes::openapi::TokenErrors),
    security(("bearer" = []))
)]
pub async fn get(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Me>, AppError> {
    // Users are never deleted, so a missing row means a token for another
    // database (for example after a reset with the same key).
    let user = state
        .store
        .get_user(caller.user_id)
        .await?
        .ok_or_else(|| AppError::Unauthorized("unknown user".to_owned()))?;
    let unit = state
        .store
        .get_unit(user.unit_id)
        .await?
        .ok_or_else(|| AppError::internal(format!("user {} has no unit", user.id)))?;
    Ok(Json(Me {
        user_id: user.id,
        username: user.username,
        display_name: user.display_name,
        role: user.role,
        unit_code: unit.code,
        unit_name: unit.name,
        device_id: caller.device_id,
    }))
}

/// One element of `GET /api/v1/me/documents`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MyDocument {
    /// automerge-repo document id (`automerge:<id>` in an automerge URL).
    #[schema(value_type = String)]
    pub id: DocumentId,
    /// `diary` or `contacts` (`unknown` if the server could not tell).
    pub kind: StoredKind,
    /// Diary year; `null` for contacts.
    pub year: Option<i32>,
    /// The owner's username (always the caller here).
    pub owner: String,
    /// When the document was first stored.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// The caller's own documents, as a JSON array ordered by id.
#[utoipa::path(
    get,
    path = "/api/v1/me/documents",
    tag = "me",
    responses((status = 200, description = "The documents of the caller, by id", body = Vec<MyDocument>), crate::routes::openapi::TokenErrors),
    security(("bearer" = []))
)]
pub async fn documents(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<MyDocument>>, AppError> {
    let documents = state
        .store
        .list_documents_for_owner(caller.user_id)
        .await?
        .into_iter()
        .map(|meta| MyDocument {
            id: meta.id,
            kind: meta.kind,
            year: meta.year,
            owner: caller.username.clone(),
            created_at: meta.created_at,
            updated_at: meta.updated_at,
        })
        .collect();
    Ok(Json(documents))
}

/// Query string of `GET /api/v1/me/assigned`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssignedParams {
    /// `open`, `in_progress`, `resolved` or `closed`.
    #[param(pattern = "^(open|in_progress|resolved|closed)$")]
    pub status: Option<String>,
    /// 1-based page number.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Page size, at most [`MAX_PER_PAGE`](crate::routes::v1::ledger::MAX_PER_PAGE).
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<u32>,
}

/// The petitions the caller is responsible for (first visitor, or assigned
/// or escalated to them), whoever's diary they live in, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/me/assigned",
    tag = "me",
    params(AssignedParams),
    responses((status = 200, description = "The petitions the caller is responsible for", body = LedgerResponse), crate::routes::openapi::QueryErrors),
    security(("bearer" = []))
)]
pub async fn assigned(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<AssignedParams>,
) -> Result<Json<LedgerResponse>, AppError> {
    let status = enum_param("status", params.status.as_deref())?;
    let (limit, offset) = page_window(params.page, params.per_page)?;
    let query = LedgerQuery {
        responsible: Some(caller.username.clone()),
        status,
        today: china_today()?,
        limit,
        offset,
        ..LedgerQuery::default()
    };
    let found = state.store.query_ledger(&query).await?;
    Ok(Json(LedgerResponse {
        items: found
            .items
            .into_iter()
            .map(|i| entry(i, &crate::personal::Viewer::of(&caller)))
            .collect(),
        total: found.total,
    }))
}
