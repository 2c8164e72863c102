//! `GET /api/v1/visits`: the visits (走访记录) of the ledger a caller may
//! see, filtered and paged; labels in the seeds' wording.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::records::visit::{SubjectKind, VisitKind};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::report::{RecordQuery, VisitItem};
use crate::routes::v1::ledger::page_window;
use crate::scope::{Scope, period, search_text};

/// Query string of `GET /api/v1/visits`.
#[derive(Debug, Default, Deserialize)]
pub struct VisitsParams {
    /// Unit code.
    pub unit: Option<String>,
    /// Username of the cadre.
    pub cadre: Option<String>,
    /// `home_visit`, `enterprise_visit`, `duty_day_reception`, `follow_up`,
    /// `condolence_visit` or `forum`.
    pub kind: Option<String>,
    /// `YYYY-MM-DD`, China date, included.
    pub from: Option<String>,
    /// `YYYY-MM-DD`, China date, included.
    pub to: Option<String>,
    /// Text in the place or the name of whom was visited.
    pub q: Option<String>,
    /// 1-based page.
    pub page: Option<u32>,
    /// Page size (at most 200).
    pub per_page: Option<u32>,
}

/// Answer of `GET /api/v1/visits`.
#[derive(Debug, Serialize)]
pub struct VisitsResponse {
    /// The page, newest first.
    pub items: Vec<VisitEntry>,
    /// Visits matching, all pages together.
    pub total: i64,
}

/// One visit.
#[derive(Debug, Serialize)]
pub struct VisitEntry {
    /// The visit.
    #[serde(flatten)]
    pub visit: VisitItem,
    /// Kind in Chinese (入户走访, 走访企业, …).
    pub kind_zh: String,
    /// Subject kind in Chinese.
    pub subject_kind_zh: String,
    /// The groups of people visited, in Chinese (困难群众, 党员, …).
    pub tags_zh: Vec<&'static str>,
    /// Aid handed over, yuan.
    pub aid_money_yuan: f64,
    /// When, as the ledger keeps it.
    pub at: DateTime<Utc>,
}

/// The Chinese name of a visit tag (the groups of people the seeds say to
/// visit); unknown tags have none.
pub fn tag_label_zh(tag: &str) -> Option<&'static str> {
    use sync_core::records::visit::tags;
    Some(match tag {
        tags::NEEDY => "困难群众",
        tags::PARTY_MEMBER => "党员",
        tags::KEY_PERSON => "重点人员",
        tags::ENTREPRENEUR => "致富能手",
        tags::FORMER_OFFICIAL => "老村干部",
        tags::DISSENTING => "有不同意见的群众",
        tags::VULNERABLE => "弱势群体",
        tags::LEFT_BEHIND => "留守人员",
        _ => return None,
    })
}

pub(crate) fn label<T: std::str::FromStr>(code: &str, label: impl Fn(T) -> &'static str) -> String {
    code.parse::<T>()
        .map(|v| label(v).to_owned())
        .unwrap_or_default()
}

fn visit_entry(v: VisitItem) -> VisitEntry {
    #[allow(clippy::cast_precision_loss)]
    let yuan = v.aid_money_fen as f64 / 100.0;
    VisitEntry {
        kind_zh: label(&v.kind, VisitKind::label_zh),
        subject_kind_zh: label(&v.subject_kind, SubjectKind::label_zh),
        tags_zh: v.tags.split(',').filter_map(tag_label_zh).collect(),
        aid_money_yuan: yuan,
        at: v.at,
        visit: v,
    }
}

/// Lists visits.
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<VisitsParams>,
) -> Result<Json<VisitsResponse>, AppError> {
    if let Some(k) = &params.kind {
        k.parse::<VisitKind>()
            .map_err(|_| AppError::BadRequest(format!("kind: unknown visit kind {k:?}")))?;
    }
    let (limit, offset) = page_window(params.page, params.per_page)?;
    let (from, to) = period(params.from.as_deref(), params.to.as_deref())?;
    let text = search_text(&caller, params.q.as_deref())?;
    let scope = Scope::resolve(
        &state,
        &caller,
        params.unit.as_deref(),
        params.cadre.as_deref(),
    )
    .await?;
    let (items, total) = state
        .store
        .query_visits(&RecordQuery {
            root_unit_id: scope.root.id,
            owner_user_id: scope.owner_user_id,
            from,
            to,
            kind: params.kind,
            text,
            limit,
            offset,
        })
        .await?;
    Ok(Json(VisitsResponse {
        items: items.into_iter().map(visit_entry).collect(),
        total,
    }))
}
