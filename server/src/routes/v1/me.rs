//! `GET /api/v1/me` and `GET /api/v1/me/documents`: about the caller.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sync_core::DocumentId;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::store::{Role, StoredKind};

/// Answer of `GET /api/v1/me`.
#[derive(Debug, Serialize)]
pub struct Me {
    /// User id.
    pub user_id: i64,
    /// Login name.
    pub username: String,
    /// Name shown to people.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Code of the caller's unit (`village1`).
    pub unit_code: String,
    /// Name of the caller's unit (`柳树村`).
    pub unit_name: String,
    /// Device id of the access token, or "".
    pub device_id: String,
}

/// Who the access token belongs to, as the server sees them now.
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
#[derive(Debug, Serialize)]
pub struct MyDocument {
    /// automerge-repo document id (`automerge:<id>` in an automerge URL).
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
