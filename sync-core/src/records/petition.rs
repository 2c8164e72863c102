//! A petition (群众诉求): a resident's problem that was not solved on the spot
//! and so enters the unit's ledger. Its state is derived from an append-only
//! list of events, so a cadre's offline "resolved" and a supervisor's
//! concurrent "deadline extended" both survive a merge.

use super::Tombstone;
use crate::validation::{self, MAX_LONG, ValidationError};
use crate::{RecordId, Timestamp};

crate::text_enum! {
    /// The four ledger categories (分类汇总).
    Category, "category" {
        /// 干部作风
        CadreConduct = "cadre_conduct", "干部作风";
        /// 实际困难
        PracticalDifficulty = "practical_difficulty", "实际困难";
        /// 工作不足
        WorkShortcoming = "work_shortcoming", "工作不足";
        /// 发展建议
        DevelopmentSuggestion = "development_suggestion", "发展建议";
    }
}

crate::text_enum! {
    /// Which level must solve it (分级建账).
    Level, "level" {
        /// 村级
        Village = "village", "村级";
        /// 镇级
        Town = "town", "镇级";
        /// 县级及以上
        County = "county", "县级及以上";
    }
}

crate::text_enum! {
    /// The resident's satisfaction with the outcome.
    Satisfaction, "satisfaction" {
        /// 满意
        Satisfied = "satisfied", "满意";
        /// 基本满意
        BasicallySatisfied = "basically_satisfied", "基本满意";
        /// 不满意
        Dissatisfied = "dissatisfied", "不满意";
    }
}

crate::text_enum! {
    /// The handling status (办理情况), derived from the events.
    PetitionStatus, "status" {
        /// 待办: recorded, nothing done yet (the seeds' 待办事项).
        Open = "open", "待办";
        /// 办理中: someone has noted progress or been assigned.
        InProgress = "in_progress", "办理中";
        /// 已办结: solved, awaiting feedback and closure.
        Resolved = "resolved", "已办结";
        /// 已销号: struck off the ledger.
        Closed = "closed", "已销号";
    }
}

/// The resident who raised the petition.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applicant {
    pub name: String,
    /// Phone, if given.
    pub phone: Option<String>,
    /// Address or household.
    pub address: Option<String>,
}

/// What happened to a petition. Each event is appended, never edited.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PetitionEventKind {
    /// Recorded; the recorder is responsible (首访负责制).
    Created {
        /// The responsible person (username).
        responsible: String,
        /// The level that must solve it.
        level: Level,
        /// The deadline (办结时限), if set at creation.
        deadline: Option<time::Date>,
    },
    /// Reassigned to someone else.
    Assigned {
        /// The new responsible person.
        to: String,
    },
    /// Deadline set or extended.
    DeadlineSet {
        /// The new deadline.
        deadline: time::Date,
    },
    /// Escalated by application to a higher level.
    Escalated {
        /// The new level.
        to: Level,
        /// Why.
        note: String,
    },
    /// Progress noted (办理进展).
    ProgressNoted {
        /// What was done.
        note: String,
    },
    /// A supervisor's 督办 note.
    Supervised { note: String },
    /// Solved.
    Resolved {
        /// How.
        note: String,
    },
    /// The result was reported back to the resident (反馈).
    FeedbackGiven {
        /// What the resident was told.
        note: String,
    },
    /// The resident rated the outcome.
    Rated {
        /// The rating.
        satisfaction: Satisfaction,
    },
    /// Struck off the ledger (销号).
    Closed {
        /// Closing remark.
        note: String,
    },
    /// Reopened after closure or resolution.
    Reopened {
        /// Why.
        reason: String,
    },
}

impl PetitionEventKind {
    /// The stored name of the event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Assigned { .. } => "assigned",
            Self::DeadlineSet { .. } => "deadline_set",
            Self::Escalated { .. } => "escalated",
            Self::ProgressNoted { .. } => "progress_noted",
            Self::Supervised { .. } => "supervised",
            Self::Resolved { .. } => "resolved",
            Self::FeedbackGiven { .. } => "feedback_given",
            Self::Rated { .. } => "rated",
            Self::Closed { .. } => "closed",
            Self::Reopened { .. } => "reopened",
        }
    }

    /// The event's note, if it carries one.
    pub fn note(&self) -> Option<&str> {
        match self {
            Self::Escalated { note, .. }
            | Self::ProgressNoted { note }
            | Self::Supervised { note }
            | Self::Resolved { note }
            | Self::FeedbackGiven { note }
            | Self::Closed { note } => Some(note),
            Self::Reopened { reason } => Some(reason),
            _ => None,
        }
    }
}

/// One entry of a petition's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PetitionEvent {
    /// The event's id.
    pub id: RecordId,
    /// When it happened, on the recording device's clock.
    pub at: Timestamp,
    /// Who recorded it.
    pub by: String,
    /// What happened.
    pub kind: PetitionEventKind,
}

/// A petition as read from a diary, with its state derived from its events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Petition {
    /// The record's id.
    pub id: RecordId,
    /// The visit during which it was raised, if any.
    pub visit_id: Option<RecordId>,
    /// Who raised it.
    pub applicant: Applicant,
    /// The matter, in the resident's words.
    pub matter: String,
    pub category: Category,
    /// When it was recorded.
    pub created_at: Timestamp,
    /// Who recorded it.
    pub created_by: String,
    /// Every event, in the order of [`PetitionEvent::at`] then id.
    pub events: Vec<PetitionEvent>,
    /// Set when the petition was deleted (a mistaken entry).
    pub deleted: Option<Tombstone>,
    /// The state derived from the events.
    pub state: PetitionState,
}

/// What a petition's events add up to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PetitionState {
    /// Handling status.
    pub status: PetitionStatus,
    /// Responsible person.
    pub responsible: String,
    /// Current level.
    pub level: Level,
    /// Current deadline.
    pub deadline: Option<time::Date>,
    /// The latest feedback given to the resident.
    pub feedback: Option<String>,
    /// The latest satisfaction rating.
    pub satisfaction: Option<Satisfaction>,
    /// When it was resolved (the latest resolution).
    pub resolved_at: Option<Timestamp>,
    /// When it was closed (销号), if it is closed.
    pub closed_at: Option<Timestamp>,
}

impl PetitionState {
    /// Folds events, already in order, into a state. A petition whose
    /// `created` event has not arrived yet still gets a state: responsible
    /// defaults to its recorder.
    pub fn derive(created_by: &str, events: &[PetitionEvent]) -> Self {
        let mut s = PetitionState {
            status: PetitionStatus::Open,
            responsible: created_by.to_owned(),
            level: Level::Village,
            deadline: None,
            feedback: None,
            satisfaction: None,
            resolved_at: None,
            closed_at: None,
        };
        for e in events {
            match &e.kind {
                PetitionEventKind::Created {
                    responsible,
                    level,
                    deadline,
                } => {
                    s.responsible = responsible.clone();
                    s.level = *level;
                    s.deadline = deadline.or(s.deadline);
                }
                PetitionEventKind::Assigned { to } => {
                    s.responsible = to.clone();
                    s.status = s.status.min_open_to_progress();
                }
                PetitionEventKind::DeadlineSet { deadline } => s.deadline = Some(*deadline),
                PetitionEventKind::Escalated { to, .. } => {
                    s.level = *to;
                    s.status = s.status.min_open_to_progress();
                }
                PetitionEventKind::ProgressNoted { .. } | PetitionEventKind::Supervised { .. } => {
                    s.status = s.status.min_open_to_progress();
                }
                PetitionEventKind::Resolved { .. } => {
                    if s.status != PetitionStatus::Closed {
                        s.status = PetitionStatus::Resolved;
                    }
                    s.resolved_at = Some(e.at);
                }
                PetitionEventKind::FeedbackGiven { note } => s.feedback = Some(note.clone()),
                PetitionEventKind::Rated { satisfaction } => s.satisfaction = Some(*satisfaction),
                PetitionEventKind::Closed { .. } => {
                    s.status = PetitionStatus::Closed;
                    s.closed_at = Some(e.at);
                }
                PetitionEventKind::Reopened { .. } => {
                    s.status = PetitionStatus::InProgress;
                    s.closed_at = None;
                }
            }
        }
        s
    }

    /// Whether the deadline has passed on `today` (China time) without the
    /// petition being resolved or closed.
    pub fn is_overdue(&self, today: time::Date) -> bool {
        matches!(
            self.status,
            PetitionStatus::Open | PetitionStatus::InProgress
        ) && self.deadline.is_some_and(|d| d < today)
    }
}

impl PetitionStatus {
    /// An open petition becomes in progress; later states are kept.
    fn min_open_to_progress(self) -> Self {
        match self {
            PetitionStatus::Open => PetitionStatus::InProgress,
            other => other,
        }
    }
}

/// A new petition, as entered on the phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPetition {
    /// A fresh id from the caller's randomness.
    pub id: RecordId,
    /// The id of its `created` event (also fresh).
    pub created_event_id: RecordId,
    /// The visit it was raised in.
    pub visit_id: Option<RecordId>,
    /// Who raised it.
    pub applicant: Applicant,
    pub matter: String,
    pub category: Category,
    pub level: Level,
    /// Responsible person; `None` means the recorder (首访负责制).
    pub responsible: Option<String>,
    pub deadline: Option<time::Date>,
}

/// A change to a petition's descriptive fields (its state changes only by events).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PetitionUpdate {
    /// New applicant details.
    pub applicant: Option<Applicant>,
    /// New matter text (merged with concurrent edits).
    pub matter: Option<String>,
    /// New category.
    pub category: Option<Category>,
}

pub(crate) fn check_applicant(a: &Applicant) -> Result<(), ValidationError> {
    validation::required("applicant name", &a.name)?;
    if let Some(p) = &a.phone {
        validation::check_phone(p)?;
    }
    if let Some(addr) = &a.address {
        validation::max_len("applicant address", addr, validation::MAX_SHORT)?;
    }
    Ok(())
}

pub(crate) fn check_matter(m: &str) -> Result<(), ValidationError> {
    if m.trim().is_empty() {
        return Err(ValidationError::Required { field: "matter" });
    }
    validation::max_len("matter", m, MAX_LONG)
}

pub(crate) fn check_deadline(
    deadline: time::Date,
    created: Timestamp,
) -> Result<(), ValidationError> {
    let Some(created_day) = created.china_date() else {
        return Ok(());
    };
    if deadline < created_day {
        return Err(ValidationError::DeadlineBeforeCreation {
            deadline: crate::timestamp::format_date(deadline),
            created: crate::timestamp::format_date(created_day),
        });
    }
    Ok(())
}

impl NewPetition {
    /// Checks required fields, the phone's shape and that the deadline is not
    /// before `now`'s date.
    pub fn validate(&self, now: Timestamp) -> Result<(), ValidationError> {
        check_applicant(&self.applicant)?;
        check_matter(&self.matter)?;
        if let Some(r) = &self.responsible {
            validation::required("responsible person", r)?;
        }
        if let Some(d) = self.deadline {
            check_deadline(d, now)?;
        }
        Ok(())
    }
}

impl PetitionUpdate {
    /// Checks every field that is being set.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(a) = &self.applicant {
            check_applicant(a)?;
        }
        if let Some(m) = &self.matter {
            check_matter(m)?;
        }
        Ok(())
    }
}

/// Checks an event against the petition it is appended to. Concurrent events
/// from other devices are never refused at merge time; this only stops a user
/// from recording something that makes no sense on what they see.
pub(crate) fn check_event(
    petition: &Petition,
    kind: &PetitionEventKind,
) -> Result<(), ValidationError> {
    let status = petition.state.status;
    let refuse = |event| ValidationError::InvalidTransition {
        event,
        status: status.as_str(),
    };
    match kind {
        PetitionEventKind::Created { .. } => return Err(refuse("create again")),
        PetitionEventKind::Assigned { to } => validation::required("assignee", to)?,
        PetitionEventKind::DeadlineSet { deadline } => {
            check_deadline(*deadline, petition.created_at)?
        }
        PetitionEventKind::Escalated { to, note } => {
            validation::max_len("note", note, MAX_LONG)?;
            if *to <= petition.state.level {
                return Err(ValidationError::UnknownValue {
                    field: "escalation level (must be above the current one)",
                    value: to.as_str().to_owned(),
                });
            }
        }
        PetitionEventKind::ProgressNoted { note }
        | PetitionEventKind::Supervised { note }
        | PetitionEventKind::Resolved { note }
        | PetitionEventKind::FeedbackGiven { note }
        | PetitionEventKind::Closed { note } => {
            if note.trim().is_empty() && !matches!(kind, PetitionEventKind::Closed { .. }) {
                return Err(ValidationError::Required { field: "note" });
            }
            validation::max_len("note", note, MAX_LONG)?;
        }
        PetitionEventKind::Reopened { reason } => validation::required("reason", reason)?,
        PetitionEventKind::Rated { .. } => {}
    }
    let closed = status == PetitionStatus::Closed;
    match kind {
        PetitionEventKind::Reopened { .. } if !closed && status != PetitionStatus::Resolved => {
            Err(refuse("reopen"))
        }
        PetitionEventKind::Assigned { .. } if closed => Err(refuse("reassign")),
        PetitionEventKind::Escalated { .. } if closed => Err(refuse("escalate")),
        PetitionEventKind::Resolved { .. } if closed => Err(refuse("resolve")),
        PetitionEventKind::Closed { .. } if closed => Err(refuse("close")),
        PetitionEventKind::DeadlineSet { .. } if closed => Err(refuse("set the deadline of")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn ev(at: i64, n: u8, kind: PetitionEventKind) -> PetitionEvent {
        PetitionEvent {
            id: RecordId::from_random_bytes([n; 16]),
            at: Timestamp(at),
            by: "cadre01".into(),
            kind,
        }
    }

    #[test]
    fn status_follows_events() {
        let created = ev(
            1,
            1,
            PetitionEventKind::Created {
                responsible: "cadre01".into(),
                level: Level::Village,
                deadline: Some(date!(2026 - 12 - 01)),
            },
        );
        let extended = ev(
            2,
            2,
            PetitionEventKind::DeadlineSet {
                deadline: date!(2026 - 12 - 20),
            },
        );
        let resolved = ev(
            3,
            3,
            PetitionEventKind::Resolved {
                note: "已修好".into(),
            },
        );
        let s = PetitionState::derive(
            "cadre01",
            &[created.clone(), extended.clone(), resolved.clone()],
        );
        assert_eq!(s.status, PetitionStatus::Resolved);
        assert_eq!(s.deadline, Some(date!(2026 - 12 - 20)));
        assert!(!s.is_overdue(date!(2027 - 01 - 01)));
        let open = PetitionState::derive("cadre01", std::slice::from_ref(&created));
        assert!(open.is_overdue(date!(2026 - 12 - 02)));
        assert!(!open.is_overdue(date!(2026 - 12 - 01)));
        let closed = ev(
            4,
            4,
            PetitionEventKind::Closed {
                note: String::new(),
            },
        );
        let s = PetitionState::derive("cadre01", &[created, extended, resolved, closed]);
        assert_eq!(s.status, PetitionStatus::Closed);
        assert_eq!(s.closed_at, Some(Timestamp(4)));
    }
}
