//! `GET /api/v1/stats`: statistics of a unit subtree over a period (see
//! [`crate::stats`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::report::{ReportQuery, VisitGrouping};
use crate::routes::v1::ledger::china_today;
use crate::scope::{Scope, china_midnight, parse_day};
use crate::stats::{Counts, Post, Quotas, Stats, compute};

/// Query string of `GET /api/v1/stats` (and its exports).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Unit code (default: the caller's unit).
    pub unit: Option<String>,
    /// `YYYY-MM-DD`, China date, included (default: 1 January of this year).
    #[param(format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`, China date, included (default: today).
    #[param(format = Date)]
    pub to: Option<String>,
}

/// Answer of `GET /api/v1/stats`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsResponse {
    /// The unit whose subtree is counted.
    pub unit: UnitRef,
    /// First day counted.
    pub from: NaiveDate,
    /// Last day counted.
    pub to: NaiveDate,
    /// The quotas and targets in force.
    pub quotas: Quotas,
    /// The figures.
    #[serde(flatten)]
    pub stats: Stats,
}

/// A unit by code and name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnitRef {
    pub code: String,
    pub name: String,
}

/// The period `from`–`to` (both China days, included), defaulting to this
/// year so far.
pub(crate) fn stats_period(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(NaiveDate, NaiveDate), AppError> {
    let today = parse_day("today", &china_today()?)?;
    let from = match from {
        Some(f) => parse_day("from", f)?,
        None => NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today),
    };
    let to = match to {
        Some(t) => parse_day("to", t)?,
        None => today,
    };
    if to < from {
        return Err(AppError::BadRequest(format!(
            "to: {to} is before from ({from})"
        )));
    }
    if (to - from).num_days() > 3660 {
        return Err(AppError::BadRequest(
            "to: the period may span at most ten years".to_owned(),
        ));
    }
    Ok((from, to))
}

/// The statistics of `scope` over `[from, to)`.
pub(crate) async fn gather(
    state: &AppState,
    scope: &Scope,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Stats, AppError> {
    let store = state.store.as_ref();
    let q = ReportQuery {
        root_unit_id: scope.root.id,
        owner_user_id: scope.owner_user_id,
        from,
        to,
        today: china_today()?,
    };
    let mut users = store.list_users_in_units(&scope.unit_ids()).await?;
    if let Some(owner) = scope.owner_user_id {
        users.retain(|u| u.id == owner);
    }
    let posts: BTreeMap<i64, Post> = store
        .user_posts()
        .await?
        .into_iter()
        .filter_map(|(id, post)| Post::parse(&post).map(|p| (id, p)))
        .collect();
    let counts = Counts {
        units: scope.units.clone(),
        users,
        posts,
        visits_by_owner: store.visit_counts(&q, VisitGrouping::Owner).await?,
        visits_by_unit: store.visit_counts(&q, VisitGrouping::Unit).await?,
        visits_total: store
            .visit_counts(&q, VisitGrouping::All)
            .await?
            .into_iter()
            .next()
            .unwrap_or_default(),
        petitions: store.petition_counts(&q).await?,
    };
    Ok(compute(&counts, &state.config.quotas))
}

/// The statistics of the caller's reach narrowed by `unit`, over the period.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "supervision",
    params(StatsParams),
    responses((status = 200, description = "The figures", body = StatsResponse), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<Json<StatsResponse>, AppError> {
    let (from, to) = stats_period(params.from.as_deref(), params.to.as_deref())?;
    let scope = Scope::resolve(&state, &caller, params.unit.as_deref(), None).await?;
    let end = to
        .succ_opt()
        .ok_or_else(|| AppError::BadRequest("to: out of range".to_owned()))?;
    let stats = gather(&state, &scope, china_midnight(from), china_midnight(end)).await?;
    Ok(Json(StatsResponse {
        unit: UnitRef {
            code: scope.root.code.clone(),
            name: scope.root.name.clone(),
        },
        from,
        to,
        quotas: state.config.quotas.clone(),
        stats,
    }))
}
