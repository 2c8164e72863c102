//! `GET /readyz`: the server can do useful work, i.e. its database answers.

use axum::extract::State;

use crate::app::AppState;
use crate::error::AppError;

/// `200 ready`, or `503` with a JSON error when the database does not answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses((status = 200, description = "The database answers", content_type = "text/plain", body = String), crate::routes::openapi::ReadyErrors)
)]
pub async fn get(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| AppError::Unavailable(Box::new(e)))?;
    Ok("ready")
}
