//! The pages' export buttons: `/ledger/export.{xlsx,csv}`,
//! `/lists/export.{xlsx,csv}`, `/stats/export.{xlsx,csv}`, the API's export
//! handlers under the session's user (same masking, same audit row).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::layout::PageError;
use super::session::PageUser;
use crate::app::AppState;
use crate::error::AppError;
use crate::extract::{ApiQuery, ClientAddr};
use crate::routes::v1::exports as api;
use crate::routes::v1::lists::ListsParams;
use crate::routes::v1::stats::StatsParams;

/// The query without empty values (what the filter forms leave), parsed.
fn params<T: DeserializeOwned>(raw: &Option<String>) -> Result<(Option<String>, T), PageError> {
    let kept: Vec<&str> = raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| p.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .collect();
    let clean = kept.join("&");
    let uri: axum::http::Uri = format!("/?{clean}")
        .parse()
        .map_err(|_| AppError::BadRequest("query".to_owned()))?;
    let parsed = axum::extract::Query::<T>::try_from_uri(&uri)
        .map_err(|e| AppError::BadRequest(e.to_string()))?
        .0;
    Ok(((!clean.is_empty()).then_some(clean), parsed))
}

/// `GET /ledger/export.xlsx`.
pub async fn ledger_xlsx(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let filters = super::ledger::Filters::parse(raw.as_deref())?;
    let p = filters.params()?;
    Ok(api::ledger_xlsx(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /ledger/export.csv`.
pub async fn ledger_csv(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let filters = super::ledger::Filters::parse(raw.as_deref())?;
    let p = filters.params()?;
    Ok(api::ledger_csv(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /lists/export.xlsx`.
pub async fn lists_xlsx(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<ListsParams>(&raw)?;
    Ok(api::lists_xlsx(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /lists/export.csv`.
pub async fn lists_csv(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<ListsParams>(&raw)?;
    Ok(api::lists_csv(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /stats/export.xlsx`.
pub async fn stats_xlsx(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<StatsParams>(&raw)?;
    Ok(api::stats_xlsx(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /stats/export.csv`.
pub async fn stats_csv(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<StatsParams>(&raw)?;
    Ok(api::stats_csv(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}
