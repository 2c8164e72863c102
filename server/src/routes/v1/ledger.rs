//! `GET /api/v1/ledger`: the petitions ledger (台账) a caller may see.
//!
//! Visibility: a cadre sees the petitions in their own documents; a
//! supervisor or admin sees those whose owner's unit lies in their unit's
//! subtree. `unit` narrows to a unit's subtree and must itself lie within
//! the caller's unit, otherwise 403.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::Timestamp;
use sync_core::records::petition::{Category, Level, PetitionStatus};
use sync_core::timestamp::format_date;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::{LedgerItem, LedgerQuery};
use crate::store::Role;

/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 50;
/// Largest page size.
pub const MAX_PER_PAGE: u32 = 200;

/// Query string of `GET /api/v1/ledger`.
#[derive(Debug, Default, Deserialize)]
pub struct LedgerParams {
    /// Unit code; only petitions of that unit's subtree.
    pub unit: Option<String>,
    /// `open`, `in_progress`, `resolved` or `closed`.
    pub status: Option<String>,
    /// `cadre_conduct`, `practical_difficulty`, `work_shortcoming` or
    /// `development_suggestion`.
    pub category: Option<String>,
    /// `true`: only petitions past their deadline and not yet resolved.
    pub overdue: Option<bool>,
    /// 1-based page number.
    pub page: Option<u32>,
    /// Page size, at most [`MAX_PER_PAGE`].
    pub per_page: Option<u32>,
}

/// Answer of `GET /api/v1/ledger`.
#[derive(Debug, Serialize)]
pub struct LedgerResponse {
    /// The page.
    pub items: Vec<LedgerEntry>,
    /// Petitions matching, all pages together.
    pub total: i64,
}

/// One petition of the ledger.
#[derive(Debug, Serialize)]
pub struct LedgerEntry {
    /// Petition record id.
    pub id: String,
    /// The diary it lives in.
    pub document_id: String,
    /// Owner's unit code.
    pub unit_code: String,
    /// Owner's unit name.
    pub unit_name: String,
    /// Owner's username.
    pub owner: String,
    /// Applicant's name.
    pub applicant_name: String,
    /// Applicant's phone, masked (`138****5678`).
    pub applicant_phone: Option<String>,
    /// The matter.
    pub matter: String,
    /// Category code.
    pub category: String,
    /// Category in Chinese.
    pub category_zh: String,
    /// Level code.
    pub level: String,
    /// Level in Chinese.
    pub level_zh: String,
    /// Responsible username.
    pub responsible: String,
    /// `YYYY-MM-DD`, China date.
    pub deadline: Option<String>,
    /// Status code.
    pub status: String,
    /// Status in Chinese.
    pub status_zh: String,
    /// Past its deadline today (China date) and not resolved or closed.
    pub overdue: bool,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Number of events in its history.
    pub event_count: i64,
}

/// Masks a phone number for display: `13812345678` → `138****5678`.
/// Everyone sees the masked form for now; per-role unmasking comes with the
/// exports, which decide who may see personal data.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() < 8 {
        return "****".to_owned();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

fn label<T: std::str::FromStr>(code: &str, label: impl Fn(T) -> &'static str) -> String {
    code.parse::<T>()
        .map(|v| label(v).to_owned())
        .unwrap_or_default()
}

pub(crate) fn entry(item: LedgerItem) -> LedgerEntry {
    LedgerEntry {
        category_zh: label(&item.category, Category::label_zh),
        level_zh: label(&item.level, Level::label_zh),
        status_zh: label(&item.status, PetitionStatus::label_zh),
        overdue: item.overdue,
        id: item.id,
        document_id: item.document_id,
        unit_code: item.unit_code,
        unit_name: item.unit_name,
        owner: item.owner,
        applicant_name: item.applicant_name,
        applicant_phone: item.applicant_phone.as_deref().map(mask_phone),
        matter: item.matter,
        category: item.category,
        level: item.level,
        responsible: item.responsible,
        deadline: item.deadline,
        status: item.status,
        created_at: item.created_at,
        event_count: item.event_count,
    }
}

/// 400 unless `status` is a known petition status (or absent).
pub(crate) fn check_status(status: Option<&str>) -> Result<(), AppError> {
    if let Some(s) = status {
        s.parse::<PetitionStatus>()
            .map_err(|_| AppError::BadRequest(format!("unknown status {s:?}")))?;
    }
    Ok(())
}

/// The `(limit, offset)` of a 1-based `page` of `per_page` rows (defaults:
/// the first page of [`DEFAULT_PER_PAGE`]); 400 when out of range.
pub(crate) fn page_window(
    page: Option<u32>,
    per_page: Option<u32>,
) -> Result<(i64, i64), AppError> {
    let page = page.unwrap_or(1);
    if page == 0 {
        return Err(AppError::BadRequest("page starts at 1".to_owned()));
    }
    let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(AppError::BadRequest(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    Ok((
        i64::from(per_page),
        i64::from(page - 1) * i64::from(per_page),
    ))
}

/// Today's date in China, `YYYY-MM-DD`.
pub(crate) fn china_today() -> Result<String, AppError> {
    Timestamp(Utc::now().timestamp_millis())
        .china_date()
        .map(format_date)
        .ok_or_else(|| AppError::internal("clock out of range"))
}

/// Lists the ledger's petitions the caller may see, newest first.
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> Result<Json<LedgerResponse>, AppError> {
    check_status(params.status.as_deref())?;
    if let Some(c) = &params.category {
        c.parse::<Category>()
            .map_err(|_| AppError::BadRequest(format!("unknown category {c:?}")))?;
    }
    let (limit, offset) = page_window(params.page, params.per_page)?;

    let root = match &params.unit {
        None => caller.unit_id,
        Some(code) => {
            // An unknown unit and a unit outside the caller's subtree look
            // the same.
            let forbidden = || AppError::Forbidden(format!("unit {code:?} is not within yours"));
            let unit = state
                .store
                .get_unit_by_code(code)
                .await?
                .ok_or_else(forbidden)?;
            if !state.store.is_unit_within(unit.id, caller.unit_id).await? {
                return Err(forbidden());
            }
            unit.id
        }
    };
    let (unit_ids, owner_user_id) = match caller.role {
        Role::Cadre if params.unit.is_none() => (None, Some(caller.user_id)),
        Role::Cadre => (Some(subtree(&state, root).await?), Some(caller.user_id)),
        Role::Supervisor | Role::Admin => (Some(subtree(&state, root).await?), None),
    };

    let query = LedgerQuery {
        unit_ids,
        owner_user_id,
        status: params.status,
        category: params.category,
        today: china_today()?,
        overdue_only: params.overdue.unwrap_or(false),
        responsible: None,
        limit,
        offset,
    };
    let found = state.store.query_ledger(&query).await?;
    Ok(Json(LedgerResponse {
        items: found.items.into_iter().map(entry).collect(),
        total: found.total,
    }))
}

async fn subtree(state: &AppState, root: i64) -> Result<Vec<i64>, AppError> {
    Ok(state
        .store
        .unit_subtree(root)
        .await?
        .iter()
        .map(|u| u.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("123"), "****");
    }
}
