//! `GET /api/v1/ledger`: the petitions ledger (台账) a caller may see.
//!
//! Visibility: a cadre sees the petitions in their own documents; a
//! supervisor or admin sees those whose owner's unit lies in their unit's
//! subtree (see [`Scope`]). `unit` and `cadre` narrow that and must lie
//! within it, otherwise 403. Phone and ID numbers are masked as
//! [`crate::personal`] says.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::Timestamp;
use sync_core::timestamp::format_date;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::{LedgerItem, LedgerQuery, LedgerSort};
use crate::personal::Viewer;
use crate::scope::{Scope, period, search_text};

/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 50;
/// Largest page size.
pub const MAX_PER_PAGE: u32 = 200;

/// Query string of `GET /api/v1/ledger` (and of its exports).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerParams {
    /// Unit code; only petitions of that unit's subtree.
    pub unit: Option<String>,
    /// Username; only petitions in that cadre's documents.
    pub cadre: Option<String>,
    /// Username; only petitions that person is responsible for.
    pub responsible: Option<String>,
    /// `open`, `in_progress`, `resolved` or `closed`.
    #[param(pattern = "^(open|in_progress|resolved|closed)$")]
    pub status: Option<String>,
    /// `cadre_conduct`, `practical_difficulty`, `work_shortcoming` or
    /// `development_suggestion`.
    #[param(
        pattern = "^(cadre_conduct|practical_difficulty|work_shortcoming|development_suggestion)$"
    )]
    pub category: Option<String>,
    /// `village`, `town` or `county`.
    #[param(pattern = "^(village|town|county)$")]
    pub level: Option<String>,
    /// `true`: only petitions past their deadline and not yet resolved.
    pub overdue: Option<bool>,
    /// `YYYY-MM-DD` (China date): only petitions recorded on or after it.
    #[param(format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD` (China date): only petitions recorded on or before it.
    #[param(format = Date)]
    pub to: Option<String>,
    /// Text found in the matter, applicant, address, responsible person or
    /// feedback.
    pub q: Option<String>,
    /// `newest` (default), `oldest` or `deadline`.
    #[param(pattern = "^(newest|oldest|deadline)$")]
    pub sort: Option<String>,
    /// 1-based page number.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Page size, at most [`MAX_PER_PAGE`].
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<u32>,
}

/// Answer of `GET /api/v1/ledger`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LedgerResponse {
    /// The page.
    pub items: Vec<LedgerEntry>,
    /// Petitions matching, all pages together.
    pub total: i64,
}

/// One petition of the ledger.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
    pub owner_name: String,
    pub applicant_name: String,
    /// Applicant's phone, masked (`138****5678`) unless the caller may see
    /// it (see [`crate::personal`]).
    pub applicant_phone: Option<String>,
    /// Applicant's address, numbers in it masked likewise.
    pub applicant_address: Option<String>,
    /// The matter (numbers in it masked likewise).
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
    /// Last feedback to the resident (numbers masked likewise).
    pub feedback: Option<String>,
    /// The resident's rating code.
    pub satisfaction: Option<String>,
    /// The rating in Chinese.
    pub satisfaction_zh: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it was last resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Resolved on or before its deadline (`None` while unresolved or
    /// without a deadline).
    pub resolved_on_time: Option<bool>,
    /// Number of events in its history.
    pub event_count: i64,
}

/// A query parameter naming a value of one of sync-core's enums (`status=open`);
/// 400 naming the parameter when it is not one.
pub(crate) fn enum_param<T>(name: &str, value: Option<&str>) -> Result<Option<T>, AppError>
where
    T: std::str::FromStr<Err = sync_core::ValidationError>,
{
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| AppError::BadRequest(format!("{name}: {e}")))
        })
        .transpose()
}

/// Whether a ledger row was resolved by its deadline (both China dates).
pub(crate) fn resolved_on_time(item: &LedgerItem) -> Option<bool> {
    match (&item.resolved_on, &item.deadline) {
        (Some(done), Some(deadline)) => Some(done <= deadline),
        _ => None,
    }
}

/// A ledger row as `viewer` may see it.
pub(crate) fn entry(item: LedgerItem, viewer: &Viewer) -> LedgerEntry {
    let whole = viewer.sees_whole(&item.owner, Some(&item.responsible));
    LedgerEntry {
        category_zh: item.category.label_zh().to_owned(),
        level_zh: item.level.label_zh().to_owned(),
        status_zh: item.status.label_zh().to_owned(),
        satisfaction_zh: item.satisfaction.map(|s| s.label_zh().to_owned()),
        resolved_on_time: resolved_on_time(&item),
        overdue: item.overdue,
        applicant_phone: viewer.phone(item.applicant_phone.as_deref(), whole),
        applicant_address: item
            .applicant_address
            .as_deref()
            .map(|a| viewer.text(a, whole)),
        matter: viewer.text(&item.matter, whole),
        feedback: item.feedback.as_deref().map(|f| viewer.text(f, whole)),
        id: item.id,
        document_id: item.document_id,
        unit_code: item.unit_code,
        unit_name: item.unit_name,
        owner: item.owner,
        owner_name: item.owner_name,
        applicant_name: item.applicant_name,
        category: item.category.as_str().to_owned(),
        level: item.level.as_str().to_owned(),
        responsible: item.responsible,
        deadline: item.deadline,
        status: item.status.as_str().to_owned(),
        satisfaction: item.satisfaction.map(|s| s.as_str().to_owned()),
        created_at: item.created_at,
        resolved_at: item.resolved_at,
        event_count: item.event_count,
    }
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

/// The ledger query `params` ask for within the caller's reach (paging
/// aside: the caller sets `limit` and `offset`).
pub(crate) async fn ledger_query(
    state: &AppState,
    caller: &AuthUser,
    params: &LedgerParams,
) -> Result<LedgerQuery, AppError> {
    let status = enum_param("status", params.status.as_deref())?;
    let category = enum_param("category", params.category.as_deref())?;
    let level = enum_param("level", params.level.as_deref())?;
    let sort = match params.sort.as_deref() {
        None => LedgerSort::Newest,
        Some(s) => LedgerSort::parse(s).ok_or_else(|| {
            AppError::BadRequest(format!(
                "sort: unknown order {s:?} (newest, oldest or deadline)"
            ))
        })?,
    };
    let (created_from, created_to) = period(params.from.as_deref(), params.to.as_deref())?;
    let text = search_text(caller, params.q.as_deref())?;
    let scope = Scope::resolve(
        state,
        caller,
        params.unit.as_deref(),
        params.cadre.as_deref(),
    )
    .await?;
    // A cadre without `unit` reads their own petitions wherever their
    // documents' rows say they are; everyone else reads a subtree.
    let unit_ids = match (caller.role, &params.unit) {
        (crate::store::Role::Cadre, None) => None,
        _ => Some(scope.unit_ids()),
    };
    Ok(LedgerQuery {
        unit_ids,
        owner_user_id: scope.owner_user_id,
        status,
        category,
        level,
        responsible: params.responsible.clone(),
        today: china_today()?,
        overdue_only: params.overdue.unwrap_or(false),
        created_from,
        created_to,
        text,
        sort,
        ..LedgerQuery::default()
    })
}

/// Lists the ledger's petitions the caller may see, filtered, sorted and
/// paged.
#[utoipa::path(
    get,
    path = "/api/v1/ledger",
    tag = "ledger",
    params(LedgerParams),
    responses((status = 200, description = "A page of the ledger", body = LedgerResponse), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> Result<Json<LedgerResponse>, AppError> {
    let (limit, offset) = page_window(params.page, params.per_page)?;
    let query = LedgerQuery {
        limit,
        offset,
        ..ledger_query(&state, &caller, &params).await?
    };
    let found = state.store.query_ledger(&query).await?;
    let viewer = Viewer::of(&caller);
    Ok(Json(LedgerResponse {
        items: found.items.into_iter().map(|i| entry(i, &viewer)).collect(),
        total: found.total,
    }))
}
