//! A visit (走访记录): one entry of a cadre's diary.

use std::collections::BTreeSet;

use super::Tombstone;
use crate::validation::{self, MAX_LONG, MAX_SHORT, ValidationError};
use crate::{RecordId, Timestamp};

crate::text_enum! {
    /// The kind of visit.
    VisitKind, "visit kind" {
        /// 入户走访
        HomeVisit = "home_visit", "入户走访";
        /// 走访企业
        EnterpriseVisit = "enterprise_visit", "走访企业";
        /// 值班坐访 (on the "一线工作日", every Tuesday and Thursday)
        DutyDayReception = "duty_day_reception", "值班坐访";
        /// 回访
        FollowUp = "follow_up", "回访";
        /// 走访慰问
        CondolenceVisit = "condolence_visit", "走访慰问";
        /// 座谈会 (开会座谈, 恳谈)
        Forum = "forum", "座谈会";
    }
}

crate::text_enum! {
    /// Whom the visit was to.
    SubjectKind, "subject kind" {
        /// A household (户).
        Household = "household", "农户/居民户";
        /// An enterprise (企业).
        Enterprise = "enterprise", "企业";
        /// A unit or organisation (单位).
        Unit = "unit", "单位";
    }
}

/// Tags for the people visited that supervisors count (the groups the seeds
/// name). Stored as plain strings so a unit can add its own.
pub mod tags {
    /// 生活困难的党员群众 (困难党员, 困难群众)
    pub const NEEDY: &str = "needy";
    /// 党员
    pub const PARTY_MEMBER: &str = "party_member";
    /// 重点人员 (涉稳人员, 重点人口)
    pub const KEY_PERSON: &str = "key_person";
    /// 致富能手
    pub const ENTREPRENEUR: &str = "entrepreneur";
    /// 离任的村两委干部
    pub const FORMER_OFFICIAL: &str = "former_official";
    /// 有不同意见的党员群众
    pub const DISSENTING: &str = "dissenting";
    /// 弱势群体
    pub const VULNERABLE: &str = "vulnerable";
    /// 留守人员 (留守老人, 儿童)
    pub const LEFT_BEHIND: &str = "left_behind";

    /// The Chinese name of a tag, in the seeds' wording (the groups whose
    /// homes the work plans say to enter); a unit's own tags have none.
    pub fn label_zh(tag: &str) -> Option<&'static str> {
        Some(match tag {
            NEEDY => "生活困难的党员群众",
            PARTY_MEMBER => "党员",
            KEY_PERSON => "重点人员",
            ENTREPRENEUR => "致富能手",
            FORMER_OFFICIAL => "离任村两委干部",
            DISSENTING => "有不同意见的党员群众",
            VULNERABLE => "弱势群体",
            LEFT_BEHIND => "留守人员",
            _ => return None,
        })
    }
}

/// Whom the visit was to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subject {
    /// Household, enterprise or unit.
    pub kind: SubjectKind,
    /// The household head's, enterprise's or unit's name.
    pub name: String,
    /// Address or household number, when known.
    pub address: Option<String>,
}

/// The "六问" that structure a home visit. Each answer is free text that two
/// devices may edit at once, so each is an automerge text.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SixQuestions {
    /// 一问基本情况: jobs, schooling, medical care, pension.
    pub basic_situation: String,
    /// 二问困难问题: hardships and what needs solving.
    pub difficulties: String,
    /// 三问致富愿望: ways to a better income.
    pub income_wishes: String,
    /// 四问干部评价: the resident's view of the town and village cadres.
    pub opinion_of_cadres: String,
    /// 五问工作建议: suggestions for the town's and village's work.
    pub work_suggestions: String,
    /// 六问发展计策: ideas for the village's development.
    pub development_ideas: String,
}

/// Declares [`SixQuestions`]' stored field names, labels and array
/// conversions from one table, so they all follow the same order.
macro_rules! six_questions_in_order {
    ($($field:ident => $label_zh:literal,)+) => {
        impl SixQuestions {
            /// The stored field names, in the order of the questions.
            pub const FIELDS: [&'static str; 6] = [$(stringify!($field)),+];

            /// The questions in Chinese, in the seeds' wording, in the order of
            /// [`Self::FIELDS`].
            pub const LABELS_ZH: [&'static str; 6] = [$($label_zh),+];

            /// The answers in the order of [`Self::FIELDS`].
            pub fn as_array(&self) -> [&str; 6] {
                [$(&self.$field),+]
            }

            /// Builds the answers from values in the order of [`Self::FIELDS`].
            pub fn from_array(a: [String; 6]) -> Self {
                let [$($field),+] = a;
                Self { $($field),+ }
            }
        }
    };
}

six_questions_in_order! {
    basic_situation => "一问基本情况",
    difficulties => "二问困难问题",
    income_wishes => "三问致富愿望",
    opinion_of_cadres => "四问干部评价",
    work_suggestions => "五问工作建议",
    development_ideas => "六问发展计策",
}

/// A GPS fix taken during the visit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GeoPoint {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// Money and goods handed over on a condolence visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Aid {
    /// Money, in fen (0.01 yuan), so sums are exact.
    pub money_fen: i64,
    /// Goods, described in words ("大米两袋、食用油一桶").
    pub goods: String,
}

/// A visit as read from a diary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Visit {
    /// The record's id.
    pub id: RecordId,
    /// The kind of visit.
    pub kind: VisitKind,
    /// When the visit took place.
    pub at: Timestamp,
    /// Where (village, street, enterprise site).
    pub place: String,
    /// Whom.
    pub subject: Subject,
    /// Tags of the people visited (see [`tags`]).
    pub tags: BTreeSet<String>,
    /// Who went (names), the diary's owner included.
    pub participants: BTreeSet<String>,
    /// The six questions' answers.
    pub answers: SixQuestions,
    /// Free notes.
    pub notes: String,
    /// Where the phone was, if the cadre allowed it.
    pub location: Option<GeoPoint>,
    /// Aid handed over.
    pub aid: Aid,
    /// Matters answered or solved on the spot (these do not enter the ledger).
    pub resolved_on_spot: Vec<String>,
    /// Petitions raised during this visit.
    pub petition_ids: BTreeSet<RecordId>,
    /// Service cards handed out during this visit.
    pub card_ids: BTreeSet<RecordId>,
    /// When the record was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Set when the visit was deleted.
    pub deleted: Option<Tombstone>,
}

/// A new visit, as entered on the phone.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVisit {
    /// A fresh id from the caller's randomness.
    pub id: RecordId,
    /// The kind of visit.
    pub kind: VisitKind,
    /// When it took place.
    pub at: Timestamp,
    /// Where.
    pub place: String,
    /// Whom.
    pub subject: Subject,
    pub tags: BTreeSet<String>,
    /// Who went.
    pub participants: BTreeSet<String>,
    /// The six questions' answers.
    pub answers: SixQuestions,
    pub notes: String,
    /// GPS fix.
    pub location: Option<GeoPoint>,
    /// Aid handed over.
    pub aid: Aid,
    /// Matters solved on the spot.
    pub resolved_on_spot: Vec<String>,
}

/// A change to a visit; `None` leaves a field as it is. Text fields are
/// merged character by character with concurrent edits elsewhere.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisitUpdate {
    /// New kind.
    pub kind: Option<VisitKind>,
    /// New time.
    pub at: Option<Timestamp>,
    /// New place.
    pub place: Option<String>,
    /// New subject.
    pub subject: Option<Subject>,
    pub add_tags: BTreeSet<String>,
    pub remove_tags: BTreeSet<String>,
    pub add_participants: BTreeSet<String>,
    pub remove_participants: BTreeSet<String>,
    /// New answers (each changed answer is merged as text).
    pub answers: Option<SixQuestions>,
    /// New notes.
    pub notes: Option<String>,
    /// New location (`Some(None)` clears it).
    pub location: Option<Option<GeoPoint>>,
    /// New aid.
    pub aid: Option<Aid>,
    /// Matters solved on the spot to append.
    pub add_resolved_on_spot: Vec<String>,
    /// Service cards handed out during the visit, to link.
    pub link_cards: BTreeSet<RecordId>,
}

pub(crate) fn check_subject(s: &Subject) -> Result<(), ValidationError> {
    validation::required("subject name", &s.name)?;
    if let Some(a) = &s.address {
        validation::max_len("subject address", a, MAX_SHORT)?;
    }
    Ok(())
}

pub(crate) fn check_location(p: &GeoPoint) -> Result<(), ValidationError> {
    let ok = p.lat.is_finite()
        && p.lon.is_finite()
        && (-90.0..=90.0).contains(&p.lat)
        && (-180.0..=180.0).contains(&p.lon);
    if !ok {
        return Err(ValidationError::InvalidLocation {
            lat: p.lat.to_string(),
            lon: p.lon.to_string(),
        });
    }
    Ok(())
}

pub(crate) fn check_aid(a: &Aid) -> Result<(), ValidationError> {
    if a.money_fen < 0 {
        return Err(ValidationError::Negative { field: "aid money" });
    }
    validation::max_len("aid goods", &a.goods, MAX_SHORT)
}

pub(crate) fn check_texts<'a>(
    field: &'static str,
    texts: impl IntoIterator<Item = &'a str>,
) -> Result<(), ValidationError> {
    texts
        .into_iter()
        .try_for_each(|t| validation::max_len(field, t, MAX_LONG))
}

impl NewVisit {
    /// Checks the work-log rule (time, place and content at least) and every
    /// field's shape.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::required("place", &self.place)?;
        check_subject(&self.subject)?;
        check_texts("answers", self.answers.as_array())?;
        check_texts("notes", [self.notes.as_str()])?;
        check_texts(
            "resolved on the spot",
            self.resolved_on_spot.iter().map(String::as_str),
        )?;
        check_texts("tags", self.tags.iter().map(String::as_str))?;
        if let Some(p) = &self.location {
            check_location(p)?;
        }
        check_aid(&self.aid)
    }
}

impl VisitUpdate {
    /// Checks every field that is being set.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(p) = &self.place {
            validation::required("place", p)?;
        }
        if let Some(s) = &self.subject {
            check_subject(s)?;
        }
        if let Some(a) = &self.answers {
            check_texts("answers", a.as_array())?;
        }
        if let Some(n) = &self.notes {
            check_texts("notes", [n.as_str()])?;
        }
        if let Some(Some(p)) = &self.location {
            check_location(p)?;
        }
        if let Some(a) = &self.aid {
            check_aid(a)?;
        }
        check_texts(
            "resolved on the spot",
            self.add_resolved_on_spot.iter().map(String::as_str),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_questions_keep_their_stored_names_and_order() {
        assert_eq!(
            SixQuestions::FIELDS,
            [
                "basic_situation",
                "difficulties",
                "income_wishes",
                "opinion_of_cadres",
                "work_suggestions",
                "development_ideas",
            ]
        );
        let answers = SixQuestions::from_array(SixQuestions::FIELDS.map(String::from));
        assert_eq!(answers.opinion_of_cadres, "opinion_of_cadres");
        assert_eq!(answers.as_array(), SixQuestions::FIELDS);
        assert_eq!(SixQuestions::LABELS_ZH[3], "四问干部评价");
    }
}
