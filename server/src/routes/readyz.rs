//! `GET /readyz`: the server can do useful work, i.e. its database answers.

use axum::extract::State;

use crate::app::AppState;
use crate::error::AppError;

/// `200 ready`, or `503` with a JSON error when the database does not answer.
pub async fn get(State(state): State<AppState>) -> Result<&'static str, AppError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| AppError::Unavailable(Box::new(e)))?;
    Ok("ready")
}
