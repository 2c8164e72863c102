//! `GET /api/v1/audit`: the audit log, newest first, for admins only
//! (every write and every export is in it).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::store::{AuditEntry, Role};

/// Most rows one answer holds.
pub const MAX_LIMIT: u32 = 500;

/// Query string of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this action (`export.ledger`, `petition.close`, …).
    pub action: Option<String>,
    /// Only rows older than this id (the next page: the last id seen).
    pub before: Option<i64>,
    /// Rows, at most [`MAX_LIMIT`] (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// Answer of `GET /api/v1/audit`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditResponse {
    /// Newest first.
    pub items: Vec<AuditEntry>,
}

/// Reads the audit log.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "supervision",
    params(AuditParams),
    responses((status = 200, description = "Audit rows, newest first", body = AuditResponse), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Json<AuditResponse>, AppError> {
    if caller.role != Role::Admin {
        return Err(AppError::Forbidden(
            "only an admin may read the audit log".to_owned(),
        ));
    }
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(AppError::BadRequest(format!(
            "limit: must be between 1 and {MAX_LIMIT}"
        )));
    }
    let items = state
        .store
        .query_audit(params.action.as_deref(), params.before, i64::from(limit))
        .await?;
    Ok(Json(AuditResponse { items }))
}
