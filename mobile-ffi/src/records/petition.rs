//! Petitions (群众诉求) and their history of events.

use sync_core::RecordId;
use sync_core::records::petition as core;
use sync_core::timestamp::{format_date, parse_date};

use super::mirror_enum;
use crate::ClientError;
use crate::error::parse_id;

mirror_enum! {
    /// The four ledger categories (分类汇总).
    Category = core::Category {
        /// 干部作风
        CadreConduct,
        /// 实际困难
        PracticalDifficulty,
        /// 工作不足
        WorkShortcoming,
        /// 发展建议
        DevelopmentSuggestion,
    }
}

mirror_enum! {
    /// Which level must solve it (分级建账).
    Level = core::Level {
        /// 村级
        Village,
        /// 镇级
        Town,
        /// 县级及以上
        County,
    }
}

mirror_enum! {
    /// The resident's satisfaction with the outcome.
    Satisfaction = core::Satisfaction {
        /// 满意
        Satisfied,
        /// 基本满意
        BasicallySatisfied,
        /// 不满意
        Dissatisfied,
    }
}

mirror_enum! {
    /// The handling status (办理情况), derived from the events.
    PetitionStatus = core::PetitionStatus {
        /// 待办
        Open,
        /// 办理中
        InProgress,
        /// 已办结
        Resolved,
        /// 已销号
        Closed,
    }
}

/// A petition as entered on the phone.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewPetition {
    /// The visit it was raised in (its id), if any.
    #[uniffi(default)]
    pub visit_id: Option<String>,
    /// The resident's name.
    pub applicant_name: String,
    /// The resident's phone.
    #[uniffi(default)]
    pub applicant_phone: Option<String>,
    /// The resident's address or household.
    #[uniffi(default)]
    pub applicant_address: Option<String>,
    /// The matter, in the resident's words.
    pub matter: String,
    pub category: Category,
    /// Level that must solve it.
    pub level: Level,
    /// Deadline (办结时限), `YYYY-MM-DD`.
    #[uniffi(default)]
    pub deadline: Option<String>,
}

pub(crate) fn parse_deadline(s: &str) -> Result<time::Date, ClientError> {
    parse_date(s)
        .ok_or_else(|| ClientError::invalid("deadline", format!("{s:?} is not YYYY-MM-DD")))
}

impl NewPetition {
    /// sync-core's new petition, with fresh ids for it and its first event.
    pub(crate) fn into_core(
        self,
        id: RecordId,
        created_event_id: RecordId,
    ) -> Result<core::NewPetition, ClientError> {
        Ok(core::NewPetition {
            id,
            created_event_id,
            visit_id: self
                .visit_id
                .as_deref()
                .map(|v| parse_id("visit_id", v))
                .transpose()?,
            applicant: core::Applicant {
                name: self.applicant_name,
                phone: self.applicant_phone,
                address: self.applicant_address,
            },
            matter: self.matter,
            category: self.category.into(),
            level: self.level.into(),
            responsible: None,
            deadline: self.deadline.as_deref().map(parse_deadline).transpose()?,
        })
    }
}

/// A change to a petition's descriptive fields; its status changes only by
/// events (progress, resolution …). Fields left `None` stay as they are.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct PetitionEdit {
    /// New applicant name.
    #[uniffi(default)]
    pub applicant_name: Option<String>,
    /// New applicant phone (`""` removes it).
    #[uniffi(default)]
    pub applicant_phone: Option<String>,
    /// New applicant address (`""` removes it).
    #[uniffi(default)]
    pub applicant_address: Option<String>,
    /// New matter text (merged with concurrent edits).
    #[uniffi(default)]
    pub matter: Option<String>,
    /// New category.
    #[uniffi(default)]
    pub category: Option<Category>,
}

/// `Some("")` clears an optional text field; other values set it.
pub(crate) fn clearable(new: Option<String>, current: Option<String>) -> Option<String> {
    match new {
        Some(s) if s.is_empty() => None,
        Some(s) => Some(s),
        None => current,
    }
}

impl PetitionEdit {
    /// sync-core's update; `current` supplies the applicant fields not given.
    pub(crate) fn into_core(self, current: &core::Petition) -> core::PetitionUpdate {
        let applicant_changed = self.applicant_name.is_some()
            || self.applicant_phone.is_some()
            || self.applicant_address.is_some();
        core::PetitionUpdate {
            applicant: applicant_changed.then(|| core::Applicant {
                name: self
                    .applicant_name
                    .unwrap_or_else(|| current.applicant.name.clone()),
                phone: clearable(self.applicant_phone, current.applicant.phone.clone()),
                address: clearable(self.applicant_address, current.applicant.address.clone()),
            }),
            matter: self.matter,
            category: self.category.map(Into::into),
        }
    }
}

/// One entry of a petition's history.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PetitionEvent {
    /// The event's id.
    pub id: String,
    /// When it happened.
    pub at_ms: i64,
    /// Who recorded it.
    pub by: String,
    /// `created`, `assigned`, `deadline_set`, `escalated`, `progress_noted`,
    /// `supervised`, `resolved`, `feedback_given`, `rated`, `closed`, `reopened`.
    pub kind: String,
    /// Its note or reason, if it has one.
    pub note: Option<String>,
    /// The person it names (responsible at creation, or reassigned to).
    pub person: Option<String>,
    /// The level it sets (creation, escalation).
    pub level: Option<Level>,
    /// The deadline it sets, `YYYY-MM-DD`.
    pub deadline: Option<String>,
    /// The rating it records.
    pub satisfaction: Option<Satisfaction>,
}

impl From<core::PetitionEvent> for PetitionEvent {
    fn from(e: core::PetitionEvent) -> Self {
        use core::PetitionEventKind as K;
        let mut out = Self {
            id: e.id.to_string(),
            at_ms: e.at.millis(),
            by: e.by,
            kind: e.kind.type_name().to_owned(),
            note: e.kind.note().map(str::to_owned),
            person: None,
            level: None,
            deadline: None,
            satisfaction: None,
        };
        match e.kind {
            K::Created {
                responsible,
                level,
                deadline,
            } => {
                out.person = Some(responsible);
                out.level = Some(level.into());
                out.deadline = deadline.map(format_date);
            }
            K::Assigned { to } => out.person = Some(to),
            K::DeadlineSet { deadline } => out.deadline = Some(format_date(deadline)),
            K::Escalated { to, .. } => out.level = Some(to.into()),
            K::Rated { satisfaction } => out.satisfaction = Some(satisfaction.into()),
            _ => {}
        }
        out
    }
}

/// A petition as read on the phone, with its state derived from its events.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Petition {
    /// The petition's id.
    pub id: String,
    /// The visit it was raised in.
    pub visit_id: Option<String>,
    /// The resident's name.
    pub applicant_name: String,
    /// The resident's phone.
    pub applicant_phone: Option<String>,
    /// The resident's address.
    pub applicant_address: Option<String>,
    pub matter: String,
    pub category: Category,
    /// Handling status.
    pub status: PetitionStatus,
    /// Responsible person (username).
    pub responsible: String,
    /// Current level.
    pub level: Level,
    /// Current deadline, `YYYY-MM-DD`.
    pub deadline: Option<String>,
    /// Whether the deadline has passed unresolved (today in China time).
    pub overdue: bool,
    /// The latest feedback given to the resident.
    pub feedback: Option<String>,
    /// The latest satisfaction rating.
    pub satisfaction: Option<Satisfaction>,
    /// When it was recorded.
    pub created_at_ms: i64,
    /// Who recorded it.
    pub created_by: String,
    /// How many events its history holds.
    pub event_count: u32,
    /// When it was deleted, if it was.
    pub deleted_at_ms: Option<i64>,
}

impl Petition {
    /// The app's view of a petition, with `overdue` judged on `today`.
    pub(crate) fn from_core(p: core::Petition, today: Option<time::Date>) -> Self {
        let overdue = today.is_some_and(|t| p.state.is_overdue(t));
        Self {
            id: p.id.to_string(),
            visit_id: p.visit_id.map(|v| v.to_string()),
            applicant_name: p.applicant.name,
            applicant_phone: p.applicant.phone,
            applicant_address: p.applicant.address,
            matter: p.matter,
            category: p.category.into(),
            status: p.state.status.into(),
            responsible: p.state.responsible,
            level: p.state.level.into(),
            deadline: p.state.deadline.map(format_date),
            overdue,
            feedback: p.state.feedback,
            satisfaction: p.state.satisfaction.map(Into::into),
            created_at_ms: p.created_at.millis(),
            created_by: p.created_by,
            event_count: u32::try_from(p.events.len()).unwrap_or(u32::MAX),
            deleted_at_ms: p.deleted.map(|t| t.at.millis()),
        }
    }
}

/// Which petitions to list. Every condition given must hold.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct PetitionQuery {
    /// Recorded at or after this time.
    #[uniffi(default)]
    pub from_ms: Option<i64>,
    /// Recorded before this time.
    #[uniffi(default)]
    pub until_ms: Option<i64>,
    /// Only this category.
    #[uniffi(default)]
    pub category: Option<Category>,
    /// Only this status.
    #[uniffi(default)]
    pub status: Option<PetitionStatus>,
    /// Only overdue ones (deadline passed, not resolved).
    #[uniffi(default)]
    pub overdue_only: bool,
    /// Text in the matter, applicant, or history notes.
    #[uniffi(default)]
    pub text: Option<String>,
    /// At most this many, newest first.
    #[uniffi(default = 200)]
    pub limit: u32,
    /// Skip this many.
    #[uniffi(default)]
    pub offset: u32,
}
