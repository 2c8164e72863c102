//! `GET /api/v1/devices`: each cadre's devices and when each last synced,
//! for the caller's reach (a cadre: their own; a supervisor or admin: every
//! user of their unit's subtree). A cadre with no device listed has never
//! synced.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::scope::Scope;
use crate::store::Role;

/// Query string of `GET /api/v1/devices`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DevicesParams {
    /// Unit code.
    pub unit: Option<String>,
    /// Username.
    pub cadre: Option<String>,
}

/// Answer of `GET /api/v1/devices`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DevicesResponse {
    /// Cadres by username.
    pub users: Vec<UserDevices>,
}

/// One user's devices.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserDevices {
    pub username: String,
    pub name: String,
    /// `cadre`, `supervisor` or `admin`.
    pub role: &'static str,
    pub unit_code: String,
    /// The most recent sync of any of their devices.
    pub last_sync: Option<DateTime<Utc>>,
    /// Devices, most recently synced first.
    pub devices: Vec<Device>,
}

/// One device.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Device {
    /// The device id given at login.
    pub device_id: String,
    pub last_sync: DateTime<Utc>,
    /// Documents it synced.
    pub documents: i64,
}

/// Lists devices and last syncs.
#[utoipa::path(
    get,
    path = "/api/v1/devices",
    tag = "ledger",
    params(DevicesParams),
    responses((status = 200, description = "Devices and their last syncs", body = DevicesResponse), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<DevicesParams>,
) -> Result<Json<DevicesResponse>, AppError> {
    let scope = Scope::resolve(
        &state,
        &caller,
        params.unit.as_deref(),
        params.cadre.as_deref(),
    )
    .await?;
    let units: BTreeMap<i64, String> = scope.units.iter().map(|u| (u.id, u.code.clone())).collect();
    let mut users = state.store.list_users_in_units(&scope.unit_ids()).await?;
    users.retain(|u| {
        scope
            .owner_user_id
            .map_or(u.role == Role::Cadre, |id| u.id == id)
    });
    let mut by_user: BTreeMap<i64, Vec<Device>> = BTreeMap::new();
    for d in state
        .store
        .list_devices(scope.root.id, scope.owner_user_id)
        .await?
    {
        by_user.entry(d.user_id).or_default().push(Device {
            device_id: d.device_id,
            last_sync: d.last_sync,
            documents: d.documents,
        });
    }
    let mut answer: Vec<UserDevices> = users
        .into_iter()
        .map(|u| {
            let mut devices = by_user.remove(&u.id).unwrap_or_default();
            devices.sort_by_key(|d| std::cmp::Reverse(d.last_sync));
            UserDevices {
                last_sync: devices.first().map(|d| d.last_sync),
                unit_code: units.get(&u.unit_id).cloned().unwrap_or_default(),
                role: u.role.as_str(),
                username: u.username,
                name: u.display_name,
                devices,
            }
        })
        .collect();
    answer.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(Json(DevicesResponse { users: answer }))
}
