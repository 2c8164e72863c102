//! `GET /api/v1/lists`: the monthly three lists of a unit (问题清单 /
//! 任务清单 / 效果清单, "项目化、销号制管理") and the month's four-category
//! summary (分类汇总).
//!
//! - 问题清单 (problems): the petitions recorded in the month.
//! - 任务清单 (tasks): the petitions recorded by the month's end that are
//!   still open or in progress, with whoever is responsible and the
//!   deadline: what remains to be done.
//! - 效果清单 (results): the petitions last resolved in the month, with the
//!   feedback given and the resident's rating. (An item reopened since shows
//!   here with its current status.)
//!
//! Each list holds at most [`MAX_LIST_ITEMS`] items and says its `total`;
//! the exports (`/api/v1/exports/lists.xlsx`, `.csv`) hold every item.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::LedgerQuery;
use crate::ledger::report::ReportQuery;
use crate::personal::Viewer;
use crate::routes::v1::ledger::{LedgerEntry, china_today, entry};
use crate::routes::v1::stats::UnitRef;
use crate::scope::{Scope, month};
use crate::stats::{Breakdown, Counts, compute};

/// Most items one list of the JSON answer holds.
pub const MAX_LIST_ITEMS: i64 = 500;

/// Query string of `GET /api/v1/lists` (and its exports).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListsParams {
    /// `YYYY-MM` (China time). Required.
    #[param(required = true, pattern = r"^[0-9]{4}-[0-9]{2}$")]
    pub month: Option<String>,
    /// Unit code (default: the caller's unit).
    pub unit: Option<String>,
}

/// Which of the three lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// 问题清单.
    Problems,
    /// 任务清单.
    Tasks,
    /// 效果清单.
    Results,
}

impl ListKind {
    /// The three, in their customary order.
    pub const ALL: [ListKind; 3] = [ListKind::Problems, ListKind::Tasks, ListKind::Results];

    /// Chinese title.
    pub fn title_zh(self) -> &'static str {
        match self {
            ListKind::Problems => "问题清单",
            ListKind::Tasks => "任务清单",
            ListKind::Results => "效果清单",
        }
    }

    /// The ledger query of this list for `base` (the caller's reach) and
    /// the month `[start, end)`.
    pub fn query(
        self,
        base: &LedgerQuery,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> LedgerQuery {
        match self {
            ListKind::Problems => LedgerQuery {
                created_from: Some(start),
                created_to: Some(end),
                ..base.clone()
            },
            ListKind::Tasks => LedgerQuery {
                created_to: Some(end),
                unfinished_only: true,
                sort: crate::ledger::LedgerSort::Deadline,
                ..base.clone()
            },
            ListKind::Results => LedgerQuery {
                resolved_from: Some(start),
                resolved_to: Some(end),
                ..base.clone()
            },
        }
    }
}

/// Answer of `GET /api/v1/lists`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListsResponse {
    /// The unit whose subtree is listed.
    pub unit: UnitRef,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's petitions by category (分类汇总).
    pub summary: Vec<Breakdown>,
    /// 问题清单.
    pub problems: List,
    /// 任务清单.
    pub tasks: List,
    /// 效果清单.
    pub results: List,
}

/// One list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List {
    /// Its Chinese title.
    pub title_zh: &'static str,
    /// Items in it, all of them.
    pub total: i64,
    /// The first [`MAX_LIST_ITEMS`].
    pub items: Vec<LedgerEntry>,
}

/// The month, its scope and the base ledger query of a lists request.
pub(crate) struct ListsRequest {
    pub(crate) month: String,
    pub(crate) start: DateTime<Utc>,
    pub(crate) end: DateTime<Utc>,
    pub(crate) scope: Scope,
    pub(crate) base: LedgerQuery,
}

pub(crate) async fn resolve(
    state: &AppState,
    caller: &AuthUser,
    params: &ListsParams,
) -> Result<ListsRequest, AppError> {
    let text = params
        .month
        .as_deref()
        .ok_or_else(|| AppError::BadRequest("month: required (YYYY-MM)".to_owned()))?;
    let (_, start, end) = month("month", text)?;
    let scope = Scope::resolve(state, caller, params.unit.as_deref(), None).await?;
    let base = LedgerQuery {
        unit_ids: Some(scope.unit_ids()),
        owner_user_id: scope.owner_user_id,
        today: china_today()?,
        ..LedgerQuery::default()
    };
    Ok(ListsRequest {
        month: text.to_owned(),
        start,
        end,
        scope,
        base,
    })
}

/// The month's petitions by category.
pub(crate) async fn summary(
    state: &AppState,
    r: &ListsRequest,
) -> Result<Vec<Breakdown>, AppError> {
    let counts = Counts {
        petitions: state
            .store
            .petition_counts(&ReportQuery {
                root_unit_id: r.scope.root.id,
                owner_user_id: r.scope.owner_user_id,
                from: r.start,
                to: r.end,
                today: r.base.today.clone(),
            })
            .await?,
        ..Counts::default()
    };
    Ok(compute(&counts, &state.config.quotas).by_category)
}

/// The three lists of the caller's reach narrowed by `unit`, for a month.
#[utoipa::path(
    get,
    path = "/api/v1/lists",
    tag = "supervision",
    params(ListsParams),
    responses((status = 200, description = "The three lists and the summary", body = ListsResponse), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ListsParams>,
) -> Result<Json<ListsResponse>, AppError> {
    let r = resolve(&state, &caller, &params).await?;
    let viewer = Viewer::of(&caller);
    let mut lists = Vec::new();
    for kind in ListKind::ALL {
        let query = LedgerQuery {
            limit: MAX_LIST_ITEMS,
            ..kind.query(&r.base, r.start, r.end)
        };
        let page = state.store.query_ledger(&query).await?;
        lists.push(List {
            title_zh: kind.title_zh(),
            total: page.total,
            items: page.items.into_iter().map(|i| entry(i, &viewer)).collect(),
        });
    }
    let summary = summary(&state, &r).await?;
    let mut lists = lists.into_iter();
    let mut next = || {
        lists
            .next()
            .ok_or_else(|| AppError::internal("three lists"))
    };
    Ok(Json(ListsResponse {
        unit: UnitRef {
            code: r.scope.root.code.clone(),
            name: r.scope.root.name.clone(),
        },
        month: r.month.clone(),
        summary,
        problems: next()?,
        tasks: next()?,
        results: next()?,
    }))
}
