//! `/api/v1/petitions/{id}…`: one petition's history, and acting on it.
//!
//! - `GET /api/v1/petitions/{id}`: the ledger row and every event, each
//!   attributed to the writer the server knows (see
//!   [`crate::ledger::attribution`]), flagged when its claimed author is
//!   someone else or it does not count.
//! - Supervision, for a supervisor whose unit holds the item's diary owner:
//!   `POST …/deadline`, `…/assign`, `…/escalate`, `…/supervise` (督办),
//!   `…/close` (销号: only once resolved with feedback recorded, by a
//!   supervisor of the unit that handles the item at its level, or above),
//!   `…/reopen`.
//! - The responsible person's own work, whoever's diary the item lives in:
//!   `POST …/progress`, `…/resolve`, `…/feedback`.
//!
//! Every `POST` takes a [`PetitionPost`] (who acts on which petition, and
//! the body) and states only its own checks and events, through
//! `OnPetition::by_supervisor` or `OnPetition::by_responsible`; each is
//! written into the diary by the server on the caller's behalf
//! ([`crate::petitions`]) and audit-logged. Errors: 404 unknown
//! petition, 403 not yours to act on, 409 not in a state that allows it
//! (or an id in several diaries without `document_id`), 422 bad input.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sync_core::records::petition::{PetitionEventKind, PetitionStatus, Satisfaction};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::{ApiJson, ApiQuery, ClientAddr};
use crate::ledger::LedgerEvent;
use crate::personal::Viewer;
use crate::petitions::{
    self, Acting, ActionError, Decide, Reach, Target, append_events, next_level,
};
use crate::routes::v1::ledger::{LedgerEntry, china_today, entry};
use crate::store::Role;

/// Query string of every petition route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Which {
    /// The diary holding the petition; needed only when its id is in
    /// several diaries.
    pub document_id: Option<String>,
}

/// Answer of `GET /api/v1/petitions/{id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PetitionDetail {
    /// The ledger row.
    pub petition: LedgerEntry,
    /// Its history, oldest first.
    pub events: Vec<EventEntry>,
}

/// One event of a petition's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventEntry {
    /// Event id.
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// `created`, `assigned`, `deadline_set`, …
    #[serde(rename = "type")]
    pub event_type: String,
    /// The type in Chinese.
    pub type_zh: &'static str,
    /// Who wrote it, as the server knows it.
    pub by: String,
    /// Who the event itself says wrote it.
    pub claimed_by: String,
    /// The device it came from, if a device sent it.
    pub device_id: Option<String>,
    /// Written by the server on `by`'s behalf, through the API.
    pub via_server: bool,
    /// Counts towards the petition's status.
    pub believed: bool,
    /// Why not, or what is odd: `claimed_author_mismatch`,
    /// `changed_after_writing`, `supervision_not_by_server`, `unknown_writer`.
    pub flag: Option<String>,
    /// The note or reason.
    pub note: Option<String>,
    /// The event's fields.
    pub detail: serde_json::Value,
}

/// Answer of every `POST`: the petition as the ledger now shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionResponse {
    /// The ledger row after the action.
    pub petition: LedgerEntry,
    /// Ids of the events written.
    pub event_ids: Vec<String>,
}

/// Body of `POST …/deadline`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadlineBody {
    /// The new deadline (办结时限), `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub deadline: String,
}

/// Body of `POST …/assign`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignBody {
    /// Username of the new responsible person, within the supervisor's unit.
    pub to: String,
}

/// Body of `POST …/escalate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateBody {
    /// Why.
    pub note: String,
    /// Username of the person in the receiving unit who becomes
    /// responsible; without it the responsible person stays.
    pub to: Option<String>,
}

/// Body of `POST …/supervise`, `…/progress` and `…/resolve`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub note: String,
}

/// Body of `POST …/close`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// Closing remark.
    #[serde(default)]
    pub note: String,
}

/// Body of `POST …/reopen`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenBody {
    /// Why.
    pub reason: String,
}

/// Body of `POST …/feedback`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBody {
    /// What the resident was told (反馈).
    pub note: String,
    /// The resident's rating: `satisfied`, `basically_satisfied` or
    /// `dissatisfied`.
    #[schema(pattern = "^(satisfied|basically_satisfied|dissatisfied)$")]
    pub satisfaction: Option<String>,
}

/// The Chinese name of an event type.
pub fn event_label_zh(event_type: &str) -> &'static str {
    match event_type {
        "created" => "登记",
        "assigned" => "转交办理",
        "deadline_set" => "设定办结时限",
        "escalated" => "上报",
        "progress_noted" => "办理进展",
        "supervised" => "督办",
        "resolved" => "办结",
        "feedback_given" => "反馈",
        "rated" => "满意度测评",
        "closed" => "销号",
        "reopened" => "重新办理",
        _ => "",
    }
}

fn invalid(message: impl Into<String>) -> ActionError {
    ActionError::Invalid(message.into())
}

/// The ledger row of `target` as the caller sees it.
async fn row(
    state: &AppState,
    caller: &AuthUser,
    target: &Target,
) -> Result<LedgerEntry, AppError> {
    let today = china_today()?;
    let item = state
        .store
        .ledger_petition(&target.document_id, &target.petition_id.to_string(), &today)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(entry(item, &Viewer::of(caller)))
}

/// What every `POST` on a petition carries: who acts on which petition
/// ([`OnPetition`]), and the body. Extracted in this order (the caller,
/// their address, the petition id, `?document_id=`, the body), so a
/// request with several faults is answered about the first.
#[derive(Debug)]
pub struct PetitionPost<B>(pub OnPetition, pub B);

/// Who acts on which petition, from where.
#[derive(Debug)]
pub struct OnPetition {
    /// The application.
    pub state: AppState,
    /// Who acts.
    pub caller: AuthUser,
    /// From where.
    pub addr: ClientAddr,
    /// The petition's record id, as the URL names it.
    pub id: String,
    /// The diary holding it, if named.
    pub which: Which,
}

impl<B: DeserializeOwned + Send> FromRequest<AppState> for PetitionPost<B> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let caller = AuthUser::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(addr) = ClientAddr::from_request_parts(&mut parts, state).await;
        let Path(id) = Path::<String>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ApiQuery(which) = ApiQuery::<Which>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let ApiJson(body) = ApiJson::<B>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let on = OnPetition {
            state: state.clone(),
            caller,
            addr,
            id,
            which,
        };
        Ok(PetitionPost(on, body))
    }
}

impl OnPetition {
    /// The petition named in the URL (and `?document_id=`).
    async fn locate(&self) -> Result<Target, AppError> {
        let document_id = self.which.document_id.as_deref();
        Ok(petitions::locate(self.state.store.as_ref(), &self.id, document_id).await?)
    }

    /// Writes the events `decide` chooses as the caller, and answers with
    /// the petition as the ledger now shows it.
    async fn write<F>(self, target: Target, decide: F) -> Result<Json<ActionResponse>, AppError>
    where
        F: Decide,
    {
        let acting = Acting {
            user_id: self.caller.user_id,
            username: self.caller.username.clone(),
            device_id: self.caller.device_id.clone(),
            remote_addr: self.addr.0,
        };
        let written = append_events(&self.state, &target, &acting, decide).await?;
        Ok(Json(ActionResponse {
            petition: row(&self.state, &self.caller, &target).await?,
            event_ids: written.event_ids.iter().map(ToString::to_string).collect(),
        }))
    }

    /// A supervisor's action: locate, check the caller's reach, write.
    async fn by_supervisor<F>(
        self,
        decide: impl FnOnce(Reach) -> F,
    ) -> Result<Json<ActionResponse>, AppError>
    where
        F: Decide,
    {
        // The role first, so that a cadre gets the same answer whether or not
        // the petition exists.
        if self.caller.role != Role::Supervisor {
            return Err(ActionError::Forbidden("only a supervisor may do this".to_owned()).into());
        }
        let target = self.locate().await?;
        let reach = Reach::of_supervisor(self.state.store.as_ref(), &self.caller, &target).await?;
        self.write(target, decide(reach)).await
    }

    /// The responsible person's own work: locate, write if the caller is the
    /// item's responsible person by its believed state.
    async fn by_responsible(
        self,
        kinds: Vec<PetitionEventKind>,
    ) -> Result<Json<ActionResponse>, AppError> {
        let target = self.locate().await?;
        // Whoever may see the item is told why they may not record; to anyone
        // else it is as missing as a petition that does not exist.
        let may_see = target.owner_user_id == self.caller.user_id
            || (matches!(self.caller.role, Role::Supervisor | Role::Admin)
                && self
                    .state
                    .store
                    .is_unit_within(target.unit_id, self.caller.unit_id)
                    .await?);
        let me = self.caller.username.clone();
        self.write(target, move |_, current| {
            if current.responsible != me {
                if !may_see {
                    return Err(ActionError::NotFound);
                }
                return Err(ActionError::Forbidden(format!(
                    "only the responsible person ({}) may record this",
                    current.responsible
                )));
            }
            Ok(kinds)
        })
        .await
    }
}

/// `GET /api/v1/petitions/{id}`: the petition and its attributed history,
/// for its diary's owner, its responsible person, and supervisors and
/// admins whose unit holds it; 404 for anyone else.
#[utoipa::path(
    get,
    path = "/api/v1/petitions/{id}",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    responses((status = 200, description = "The petition and its attributed history", body = PetitionDetail), crate::routes::openapi::PetitionReadErrors),
    security(("bearer" = []))
)]
pub async fn get(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<String>,
    ApiQuery(which): ApiQuery<Which>,
) -> Result<Json<PetitionDetail>, AppError> {
    let target = petitions::locate(state.store.as_ref(), &id, which.document_id.as_deref()).await?;
    tracing::Span::current().record("document_id", tracing::field::display(target.document_id));
    let petition = row(&state, &caller, &target).await?;
    let may_see = match caller.role {
        _ if target.owner_user_id == caller.user_id || petition.responsible == caller.username => {
            true
        }
        Role::Supervisor | Role::Admin => {
            state
                .store
                .is_unit_within(target.unit_id, caller.unit_id)
                .await?
        }
        Role::Cadre => false,
    };
    if !may_see {
        return Err(AppError::NotFound);
    }
    let viewer = Viewer::of(&caller);
    let events = state
        .store
        .ledger_petition_events(&target.document_id, &target.petition_id.to_string())
        .await?
        .into_iter()
        .map(|e| {
            let whole = viewer.sees_whole(&petition.owner, Some(&petition.responsible));
            event_entry(e, &viewer, whole)
        })
        .collect();
    Ok(Json(PetitionDetail { petition, events }))
}

fn event_entry(e: LedgerEvent, viewer: &Viewer, whole: bool) -> EventEntry {
    EventEntry {
        type_zh: event_label_zh(&e.event_type),
        // Masking the JSON text touches only digit runs inside its strings.
        detail: serde_json::from_str(&viewer.text(&e.detail, whole))
            .unwrap_or(serde_json::Value::Null),
        id: e.id,
        at: e.at,
        event_type: e.event_type,
        by: e.actor,
        claimed_by: e.claimed_by,
        device_id: e.device_id.filter(|d| !d.is_empty()),
        via_server: e.via_server,
        believed: e.believed,
        flag: e.flag.map(|f| f.as_str().to_owned()),
        note: e.note.map(|n| viewer.text(&n, whole)),
    }
}

/// `POST /api/v1/petitions/{id}/deadline`: sets or extends the deadline.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/deadline",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = DeadlineBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn deadline(
    PetitionPost(on, body): PetitionPost<DeadlineBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let deadline = sync_core::timestamp::parse_date(&body.deadline).ok_or_else(|| {
        invalid(format!(
            "deadline {:?} is not a date (YYYY-MM-DD)",
            body.deadline
        ))
    })?;
    on.by_supervisor(|_| move |_: &_, _: &_| Ok(vec![PetitionEventKind::DeadlineSet { deadline }]))
        .await
}

/// `POST /api/v1/petitions/{id}/assign`: makes someone else responsible.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/assign",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = AssignBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn assign(
    PetitionPost(on, body): PetitionPost<AssignBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let assignee = on
        .state
        .store
        .get_user_by_username(&body.to)
        .await?
        .filter(|u| !u.disabled && u.role != Role::Admin)
        .ok_or_else(|| invalid(format!("no cadre or supervisor {:?}", body.to)))?;
    if !on
        .state
        .store
        .is_unit_within(assignee.unit_id, on.caller.unit_id)
        .await?
    {
        return Err(invalid(format!("{:?} is not within your unit", body.to)).into());
    }
    let to = assignee.username;
    on.by_supervisor(|_| {
        move |_: &_, current: &sync_core::records::petition::PetitionState| {
            if current.responsible == to {
                return Err(ActionError::State(format!("{to} is already responsible")));
            }
            Ok(vec![PetitionEventKind::Assigned { to }])
        }
    })
    .await
}

/// `POST /api/v1/petitions/{id}/escalate`: one level up (village → town →
/// county), optionally to a person of the receiving unit.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/escalate",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = EscalateBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn escalate(
    PetitionPost(on, body): PetitionPost<EscalateBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let assignee = match &body.to {
        None => None,
        Some(name) => Some(
            on.state
                .store
                .get_user_by_username(name)
                .await?
                .filter(|u| !u.disabled && u.role != Role::Admin)
                .ok_or_else(|| invalid(format!("no cadre or supervisor {name:?}")))?,
        ),
    };
    let note = body.note;
    on.by_supervisor(move |reach| {
        move |_: &_, current: &sync_core::records::petition::PetitionState| {
            let to = next_level(current.level).ok_or_else(|| {
                ActionError::State("the petition is already at the highest level".to_owned())
            })?;
            let receiving = reach.receiving.get(&to).ok_or_else(|| {
                ActionError::State(format!("no unit above handles {} items", to.label_zh()))
            })?;
            let mut kinds = vec![PetitionEventKind::Escalated {
                to,
                note: format!("{note}（上报至{}）", receiving.name),
            }];
            if let Some(user) = assignee {
                if user.unit_id != receiving.id {
                    return Err(invalid(format!(
                        "{} is not in {}, the unit that receives the item",
                        user.username, receiving.name
                    )));
                }
                if user.username != current.responsible {
                    kinds.push(PetitionEventKind::Assigned { to: user.username });
                }
            }
            Ok(kinds)
        }
    })
    .await
}

/// `POST /api/v1/petitions/{id}/supervise`: a 督办 note.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/supervise",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = NoteBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn supervise(
    PetitionPost(on, body): PetitionPost<NoteBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let note = body.note;
    on.by_supervisor(|_| move |_: &_, _: &_| Ok(vec![PetitionEventKind::Supervised { note }]))
        .await
}

/// `POST /api/v1/petitions/{id}/close`: signs the item off (销号).
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/close",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = CloseBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn close(
    PetitionPost(on, body): PetitionPost<CloseBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let note = body.note;
    on.by_supervisor(move |reach| {
        move |_: &_, current: &sync_core::records::petition::PetitionState| {
            if current.status != PetitionStatus::Resolved || current.feedback.is_none() {
                return Err(ActionError::State(format!(
                    "a petition is signed off only once resolved with feedback recorded; it is {}{}",
                    current.status.label_zh(),
                    if current.feedback.is_none() { "，尚未反馈" } else { "" }
                )));
            }
            if !reach.within.contains(&current.level) {
                return Err(ActionError::Forbidden(format!(
                    "a {} item is signed off by its receiving unit or above",
                    current.level.label_zh()
                )));
            }
            Ok(vec![PetitionEventKind::Closed { note }])
        }
    })
    .await
}

/// `POST /api/v1/petitions/{id}/reopen`: back to work after resolution or
/// sign-off.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/reopen",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = ReopenBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn reopen(
    PetitionPost(on, body): PetitionPost<ReopenBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let reason = body.reason;
    on.by_supervisor(|_| move |_: &_, _: &_| Ok(vec![PetitionEventKind::Reopened { reason }]))
        .await
}

/// `POST /api/v1/petitions/{id}/progress`: the responsible person notes
/// progress.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/progress",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = NoteBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn progress(
    PetitionPost(on, body): PetitionPost<NoteBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let kinds = vec![PetitionEventKind::ProgressNoted { note: body.note }];
    on.by_responsible(kinds).await
}

/// `POST /api/v1/petitions/{id}/resolve`: the responsible person marks it
/// solved.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/resolve",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = NoteBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn resolve(
    PetitionPost(on, body): PetitionPost<NoteBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let kinds = vec![PetitionEventKind::Resolved { note: body.note }];
    on.by_responsible(kinds).await
}

/// `POST /api/v1/petitions/{id}/feedback`: the responsible person records
/// the feedback given to the resident and, if asked, their rating.
#[utoipa::path(
    post,
    path = "/api/v1/petitions/{id}/feedback",
    tag = "petitions",
    params(("id" = String, Path, description = "Petition record id (UUID)"), Which),
    request_body = FeedbackBody,
    responses((status = 200, description = "The petition after the action", body = ActionResponse), crate::routes::openapi::PetitionActionErrors),
    security(("bearer" = []))
)]
pub async fn feedback(
    PetitionPost(on, body): PetitionPost<FeedbackBody>,
) -> Result<Json<ActionResponse>, AppError> {
    let mut kinds = vec![PetitionEventKind::FeedbackGiven { note: body.note }];
    if let Some(s) = &body.satisfaction {
        let satisfaction: Satisfaction = s
            .parse()
            .map_err(|_| invalid(format!("unknown satisfaction {s:?}")))?;
        kinds.push(PetitionEventKind::Rated { satisfaction });
    }
    on.by_responsible(kinds).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::records::petition::Level;

    #[test]
    fn every_event_type_has_a_chinese_name() {
        for kind in [
            PetitionEventKind::Created {
                responsible: String::new(),
                level: Level::Village,
                deadline: None,
            },
            PetitionEventKind::Assigned { to: String::new() },
            PetitionEventKind::Escalated {
                to: Level::Town,
                note: String::new(),
            },
            PetitionEventKind::ProgressNoted {
                note: String::new(),
            },
            PetitionEventKind::Supervised {
                note: String::new(),
            },
            PetitionEventKind::Resolved {
                note: String::new(),
            },
            PetitionEventKind::FeedbackGiven {
                note: String::new(),
            },
            PetitionEventKind::Rated {
                satisfaction: Satisfaction::Satisfied,
            },
            PetitionEventKind::Closed {
                note: String::new(),
            },
            PetitionEventKind::Reopened {
                reason: String::new(),
            },
        ] {
            assert!(!event_label_zh(kind.type_name()).is_empty(), "{kind:?}");
        }
        assert_eq!(event_label_zh("deadline_set"), "设定办结时限");
    }
}
