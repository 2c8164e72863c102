//! `GET /api/v1/visits`: the visits (走访记录) of the ledger a caller may
//! see, filtered and paged; labels in the seeds' wording.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sync_core::records::visit::SixQuestions;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::report::{RecordQuery, VisitItem};
use crate::personal::Viewer;
use crate::routes::v1::ledger::{enum_param, page_window};
use crate::scope::{Scope, period, search_text};

/// Query string of `GET /api/v1/visits`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VisitsParams {
    /// Unit code.
    pub unit: Option<String>,
    /// Username of the cadre.
    pub cadre: Option<String>,
    /// `home_visit`, `enterprise_visit`, `duty_day_reception`, `follow_up`,
    /// `condolence_visit` or `forum`.
    #[param(
        pattern = "^(home_visit|enterprise_visit|duty_day_reception|follow_up|condolence_visit|forum)$"
    )]
    pub kind: Option<String>,
    /// `YYYY-MM-DD`, China date, included.
    #[param(format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`, China date, included.
    #[param(format = Date)]
    pub to: Option<String>,
    /// Text in the place or the name of whom was visited.
    pub q: Option<String>,
    /// 1-based page.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Page size (at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<u32>,
}

/// Answer of `GET /api/v1/visits`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisitsResponse {
    /// The page, newest first.
    pub items: Vec<VisitEntry>,
    /// Visits matching, all pages together.
    pub total: i64,
}

/// One visit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VisitEntry {
    #[serde(flatten)]
    pub visit: VisitItem,
    /// Kind in Chinese (入户走访, 走访企业, …).
    pub kind_zh: String,
    /// Subject kind in Chinese.
    pub subject_kind_zh: String,
    /// The groups of people visited, in the seeds' wording (致富能手,
    /// 生活困难的党员群众, …).
    pub tags_zh: Vec<&'static str>,
    /// The six questions (六问) of a home visit and their answers, in the
    /// order the seeds ask them; residents' numbers in them masked as in
    /// the ledger. Empty for a visit without answers.
    pub six_questions: Vec<QuestionAnswer>,
    /// Aid handed over, yuan.
    pub aid_money_yuan: f64,
    /// When, as the ledger keeps it.
    pub at: DateTime<Utc>,
}

/// One of the six questions and its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QuestionAnswer {
    /// The stored field (`basic_situation`, `difficulties`, `income_wishes`,
    /// `opinion_of_cadres`, `work_suggestions`, `development_ideas`).
    pub question: &'static str,
    /// The question in the seeds' wording (一问基本情况 … 六问发展计策).
    pub question_zh: &'static str,
    /// The answer as written down.
    pub answer: String,
}

/// The Chinese name of a visit tag (the groups of people the seeds say to
/// visit); unknown tags have none.
pub fn tag_label_zh(tag: &str) -> Option<&'static str> {
    sync_core::records::visit::tags::label_zh(tag)
}

/// The six answers stored in the ledger (a JSON array of six strings),
/// labelled, with `mask` applied to each; none when nothing was answered.
pub fn six_questions(stored: &str, mask: impl Fn(&str) -> String) -> Vec<QuestionAnswer> {
    let answers: Vec<String> = serde_json::from_str(stored).unwrap_or_default();
    if answers.iter().all(|a| a.trim().is_empty()) {
        return Vec::new();
    }
    SixQuestions::FIELDS
        .iter()
        .zip(SixQuestions::LABELS_ZH)
        .zip(
            answers
                .iter()
                .map(String::as_str)
                .chain(std::iter::repeat("")),
        )
        .map(|((&question, question_zh), answer)| QuestionAnswer {
            question,
            question_zh,
            answer: mask(answer),
        })
        .collect()
}

/// The visits `params` asks for within the caller's reach (every page:
/// `limit` and `offset` are left at zero for the caller to set).
pub(crate) async fn visits_query(
    state: &AppState,
    caller: &AuthUser,
    params: &VisitsParams,
) -> Result<RecordQuery, AppError> {
    let kind = enum_param("kind", params.kind.as_deref())?;
    let (from, to) = period(params.from.as_deref(), params.to.as_deref())?;
    let text = search_text(caller, params.q.as_deref())?;
    let scope = Scope::resolve(
        state,
        caller,
        params.unit.as_deref(),
        params.cadre.as_deref(),
    )
    .await?;
    Ok(RecordQuery {
        root_unit_id: scope.root.id,
        owner_user_id: scope.owner_user_id,
        from,
        to,
        kind,
        text,
        limit: 0,
        offset: 0,
    })
}

/// A visit as the API and the exports show it to `viewer`.
pub fn visit_entry(v: VisitItem, viewer: &Viewer) -> VisitEntry {
    #[allow(clippy::cast_precision_loss)]
    let yuan = v.aid_money_fen as f64 / 100.0;
    let whole = viewer.sees_whole(&v.owner, None);
    VisitEntry {
        six_questions: six_questions(&v.answers, |a| viewer.text(a, whole)),
        kind_zh: v.kind.label_zh().to_owned(),
        subject_kind_zh: v.subject_kind.label_zh().to_owned(),
        tags_zh: v.tags.split(',').filter_map(tag_label_zh).collect(),
        aid_money_yuan: yuan,
        at: v.at,
        visit: v,
    }
}

/// Lists visits.
#[utoipa::path(
    get,
    path = "/api/v1/visits",
    tag = "ledger",
    params(VisitsParams),
    responses((status = 200, description = "A page of visits", body = VisitsResponse), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<VisitsParams>,
) -> Result<Json<VisitsResponse>, AppError> {
    let (limit, offset) = page_window(params.page, params.per_page)?;
    let query = RecordQuery {
        limit,
        offset,
        ..visits_query(&state, &caller, &params).await?
    };
    let (items, total) = state.store.query_visits(&query).await?;
    Ok(Json(VisitsResponse {
        items: items
            .into_iter()
            .map(|v| visit_entry(v, &Viewer::of(&caller)))
            .collect(),
        total,
    }))
}
