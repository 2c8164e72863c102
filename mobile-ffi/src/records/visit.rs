//! Visits (走访记录) and the six questions (六问).

use std::collections::BTreeSet;

use sync_core::records::visit as core;
use sync_core::{RecordId, Timestamp};

use super::{mirror_enum, mirror_fields};
use crate::ClientError;
use crate::error::parse_id;

mirror_enum! {
    /// The kind of visit.
    VisitKind = core::VisitKind {
        /// 入户走访
        HomeVisit,
        /// 走访企业
        EnterpriseVisit,
        /// 值班坐访 (一线工作日)
        DutyDayReception,
        /// 回访
        FollowUp,
        /// 走访慰问
        CondolenceVisit,
        /// 座谈会
        Forum,
    }
}

mirror_enum! {
    /// Whom a visit was to.
    SubjectKind = core::SubjectKind {
        /// A household.
        Household,
        /// An enterprise.
        Enterprise,
        /// A unit or organisation.
        Unit,
    }
}

/// The answers to the six questions (六问) of a home visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SixAnswers {
    /// 一问基本情况
    #[uniffi(default)]
    pub basic_situation: String,
    /// 二问困难问题
    #[uniffi(default)]
    pub difficulties: String,
    /// 三问致富愿望
    #[uniffi(default)]
    pub income_wishes: String,
    /// 四问干部评价
    #[uniffi(default)]
    pub opinion_of_cadres: String,
    /// 五问工作建议
    #[uniffi(default)]
    pub work_suggestions: String,
    /// 六问发展计策
    #[uniffi(default)]
    pub development_ideas: String,
}

mirror_fields! {
    SixAnswers = core::SixQuestions {
        basic_situation,
        difficulties,
        income_wishes,
        opinion_of_cadres,
        work_suggestions,
        development_ideas,
    }
}

/// A visit as entered on the phone.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewVisit {
    /// The kind of visit.
    pub kind: VisitKind,
    /// When it took place (milliseconds since the epoch).
    pub at_ms: i64,
    /// Where (village, group, street).
    pub place: String,
    /// Household, enterprise or unit.
    pub subject_kind: SubjectKind,
    /// The household head's, enterprise's or unit's name.
    pub subject_name: String,
    /// Address or household number.
    #[uniffi(default)]
    pub subject_address: Option<String>,
    /// Tags of the people visited ("needy", "party_member" …).
    #[uniffi(default)]
    pub tags: Vec<String>,
    /// Who went, by name.
    #[uniffi(default)]
    pub participants: Vec<String>,
    /// The six answers.
    pub answers: SixAnswers,
    /// Free notes.
    #[uniffi(default)]
    pub notes: String,
    /// Latitude, if the cadre allowed a GPS fix (with `longitude`).
    #[uniffi(default)]
    pub latitude: Option<f64>,
    #[uniffi(default)]
    pub longitude: Option<f64>,
    /// Money handed over on a condolence visit, in fen.
    #[uniffi(default)]
    pub aid_money_fen: i64,
    /// Goods handed over, in words.
    #[uniffi(default)]
    pub aid_goods: String,
    /// Matters answered or solved on the spot (they do not enter the ledger).
    #[uniffi(default)]
    pub resolved_on_spot: Vec<String>,
}

fn location(lat: Option<f64>, lon: Option<f64>) -> Result<Option<core::GeoPoint>, ClientError> {
    match (lat, lon) {
        (Some(lat), Some(lon)) => Ok(Some(core::GeoPoint { lat, lon })),
        (None, None) => Ok(None),
        _ => Err(ClientError::invalid(
            "location",
            "latitude and longitude go together",
        )),
    }
}

impl NewVisit {
    /// sync-core's new visit, with a fresh id.
    pub(crate) fn into_core(self, id: RecordId) -> Result<core::NewVisit, ClientError> {
        Ok(core::NewVisit {
            id,
            kind: self.kind.into(),
            at: Timestamp(self.at_ms),
            place: self.place,
            subject: core::Subject {
                kind: self.subject_kind.into(),
                name: self.subject_name,
                address: self.subject_address,
            },
            tags: self.tags.into_iter().collect(),
            participants: self.participants.into_iter().collect(),
            answers: self.answers.into(),
            notes: self.notes,
            location: location(self.latitude, self.longitude)?,
            aid: core::Aid {
                money_fen: self.aid_money_fen,
                goods: self.aid_goods,
            },
            resolved_on_spot: self.resolved_on_spot,
        })
    }
}

/// A change to a visit: fields left `None` stay as they are. Text (answers,
/// notes) merges with edits made on other devices meanwhile.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct VisitEdit {
    /// New kind.
    #[uniffi(default)]
    pub kind: Option<VisitKind>,
    /// New time.
    #[uniffi(default)]
    pub at_ms: Option<i64>,
    /// New place.
    #[uniffi(default)]
    pub place: Option<String>,
    /// New subject name (kind and address are kept unless given too).
    #[uniffi(default)]
    pub subject_name: Option<String>,
    /// New subject kind.
    #[uniffi(default)]
    pub subject_kind: Option<SubjectKind>,
    /// New subject address.
    #[uniffi(default)]
    pub subject_address: Option<String>,
    /// New answers (each answer is merged as text).
    #[uniffi(default)]
    pub answers: Option<SixAnswers>,
    /// New notes.
    #[uniffi(default)]
    pub notes: Option<String>,
    #[uniffi(default)]
    pub add_tags: Vec<String>,
    #[uniffi(default)]
    pub remove_tags: Vec<String>,
    /// Matters solved on the spot to append.
    #[uniffi(default)]
    pub add_resolved_on_spot: Vec<String>,
    /// Service cards handed out in this visit, to link (card ids).
    #[uniffi(default)]
    pub link_cards: Vec<String>,
}

impl VisitEdit {
    /// sync-core's update; `current` supplies the subject fields not given.
    pub(crate) fn into_core(self, current: &core::Visit) -> Result<core::VisitUpdate, ClientError> {
        let subject = (self.subject_name.is_some()
            || self.subject_kind.is_some()
            || self.subject_address.is_some())
        .then(|| core::Subject {
            kind: self.subject_kind.map_or(current.subject.kind, Into::into),
            name: self
                .subject_name
                .unwrap_or_else(|| current.subject.name.clone()),
            address: self
                .subject_address
                .or_else(|| current.subject.address.clone()),
        });
        let link_cards = self
            .link_cards
            .iter()
            .map(|c| parse_id("link_cards", c))
            .collect::<Result<BTreeSet<_>, _>>()?;
        Ok(core::VisitUpdate {
            kind: self.kind.map(Into::into),
            at: self.at_ms.map(Timestamp),
            place: self.place,
            subject,
            add_tags: self.add_tags.into_iter().collect(),
            remove_tags: self.remove_tags.into_iter().collect(),
            answers: self.answers.map(Into::into),
            notes: self.notes,
            add_resolved_on_spot: self.add_resolved_on_spot,
            link_cards,
            ..Default::default()
        })
    }
}

/// A visit as read on the phone.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Visit {
    /// The visit's id.
    pub id: String,
    /// The kind of visit.
    pub kind: VisitKind,
    /// When it took place.
    pub at_ms: i64,
    /// Where.
    pub place: String,
    /// Household, enterprise or unit.
    pub subject_kind: SubjectKind,
    /// Whom.
    pub subject_name: String,
    /// Their address or household number.
    pub subject_address: Option<String>,
    /// Tags of the people visited.
    pub tags: Vec<String>,
    /// Who went.
    pub participants: Vec<String>,
    /// The six answers.
    pub answers: SixAnswers,
    pub notes: String,
    /// Latitude of the GPS fix.
    pub latitude: Option<f64>,
    /// Longitude of the GPS fix.
    pub longitude: Option<f64>,
    /// Money handed over, in fen.
    pub aid_money_fen: i64,
    /// Goods handed over.
    pub aid_goods: String,
    /// Matters solved on the spot.
    pub resolved_on_spot: Vec<String>,
    /// Petitions raised in this visit (ids).
    pub petition_ids: Vec<String>,
    /// Service cards handed out in this visit (ids).
    pub card_ids: Vec<String>,
    /// When it was recorded.
    pub created_at_ms: i64,
    /// Who recorded it.
    pub created_by: String,
    /// When it was deleted, if it was.
    pub deleted_at_ms: Option<i64>,
    /// Who deleted it.
    pub deleted_by: Option<String>,
}

impl From<core::Visit> for Visit {
    fn from(v: core::Visit) -> Self {
        let (deleted_at_ms, deleted_by) = super::tombstone(v.deleted.as_ref());
        Self {
            id: v.id.to_string(),
            kind: v.kind.into(),
            at_ms: v.at.millis(),
            place: v.place,
            subject_kind: v.subject.kind.into(),
            subject_name: v.subject.name,
            subject_address: v.subject.address,
            tags: v.tags.into_iter().collect(),
            participants: v.participants.into_iter().collect(),
            answers: v.answers.into(),
            notes: v.notes,
            latitude: v.location.map(|l| l.lat),
            longitude: v.location.map(|l| l.lon),
            aid_money_fen: v.aid.money_fen,
            aid_goods: v.aid.goods,
            resolved_on_spot: v.resolved_on_spot,
            petition_ids: v.petition_ids.iter().map(ToString::to_string).collect(),
            card_ids: v.card_ids.iter().map(ToString::to_string).collect(),
            created_at_ms: v.created_at.millis(),
            created_by: v.created_by,
            deleted_at_ms,
            deleted_by,
        }
    }
}

/// Which visits to list. Every condition given must hold.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct VisitQuery {
    /// Visits at or after this time.
    #[uniffi(default)]
    pub from_ms: Option<i64>,
    /// Visits before this time.
    #[uniffi(default)]
    pub until_ms: Option<i64>,
    /// Only this kind.
    #[uniffi(default)]
    pub kind: Option<VisitKind>,
    /// Text anywhere in place, subject, answers, notes or tags (Chinese works).
    #[uniffi(default)]
    pub text: Option<String>,
    /// Include deleted visits.
    #[uniffi(default)]
    pub include_deleted: bool,
    /// At most this many, newest first.
    #[uniffi(default = 200)]
    pub limit: u32,
    /// Skip this many (paging).
    #[uniffi(default)]
    pub offset: u32,
}
