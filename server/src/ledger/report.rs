//! Plain rows of what supervisors read beside the petitions list: counts for
//! the statistics, visits, service cards and devices. The SQL is the
//! store's (`store/sql.rs`); the statistics built from these rows are in
//! [`crate::stats`].

use chrono::{DateTime, Utc};
use serde::Serialize;
use sync_core::records::petition::{Category, Level, PetitionStatus};
use sync_core::records::service_card::PairingRole;
use sync_core::records::visit::{SubjectKind, VisitKind};

/// A unit subtree, optionally one cadre, and a period `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    /// The subtree's root unit.
    pub root_unit_id: i64,
    /// Only this owner's records.
    pub owner_user_id: Option<i64>,
    /// Start of the period (included).
    pub from: DateTime<Utc>,
    /// End of the period (excluded).
    pub to: DateTime<Utc>,
    /// Today's China date, for "overdue".
    pub today: String,
}

/// How [`VisitCounts`] are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisitGrouping {
    /// One row per owner (`key` = user id).
    Owner,
    /// One row per owner's unit (`key` = unit id).
    Unit,
    /// One row for the whole query (`key` = 0).
    All,
}

/// Visit counts of one group. Households are distinct household keys
/// within the group, so a household two cadres visited counts once for
/// their unit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct VisitCounts {
    /// User id, unit id or 0 (see [`VisitGrouping`]).
    pub key: i64,
    pub visits: i64,
    /// Distinct households visited.
    pub households: i64,
    /// Distinct enterprises visited.
    pub enterprises: i64,
    /// Follow-up visits (回访).
    pub follow_ups: i64,
    /// Visits to needy residents.
    pub needy_visits: i64,
    pub key_person_visits: i64,
    /// Money handed over, in fen.
    pub aid_money_fen: i64,
    /// Visits in which money or goods were handed over.
    pub aided_visits: i64,
    /// Matters solved on the spot.
    pub resolved_on_spot: i64,
}

/// Petition counts of one owner, category, status and level.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PetitionCounts {
    pub owner_user_id: i64,
    /// Owner's unit.
    pub unit_id: i64,
    pub category: Category,
    pub status: PetitionStatus,
    pub level: Level,
    pub petitions: i64,
    /// Overdue today.
    pub overdue: i64,
    /// Resolved or closed, with a deadline, resolved on or before it.
    pub on_time: i64,
    /// Resolved or closed, with a deadline.
    pub done_with_deadline: i64,
    /// Resolved or closed, with feedback to the resident.
    pub done_with_feedback: i64,
    /// Rated by the resident.
    pub rated: i64,
    /// Rated satisfied or basically satisfied.
    pub satisfied: i64,
}

/// Which visits or service cards to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    /// The subtree's root unit.
    pub root_unit_id: i64,
    /// Only this owner's records.
    pub owner_user_id: Option<i64>,
    /// Visits at / cards handed over at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// … and before this one.
    pub to: Option<DateTime<Utc>>,
    /// Visits only.
    pub kind: Option<VisitKind>,
    /// Text in the place, subject or address (visits) or the resident,
    /// address or household (cards), taken literally.
    pub text: Option<String>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// A visit as the ledger lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VisitItem {
    /// Record id.
    pub id: String,
    /// The diary it lives in.
    pub document_id: String,
    /// Owner's username.
    pub owner: String,
    /// Owner's unit code.
    pub unit_code: String,
    /// Owner's unit name.
    pub unit_name: String,
    #[schema(value_type = String)]
    pub kind: VisitKind,
    /// When.
    pub at: DateTime<Utc>,
    /// Where.
    pub place: String,
    #[schema(value_type = String)]
    pub subject_kind: SubjectKind,
    /// Whom.
    pub subject_name: String,
    /// The household it counts towards.
    pub household_key: String,
    /// Comma-separated tags.
    pub tags: String,
    /// Money handed over, in fen.
    pub aid_money_fen: i64,
    /// Goods handed over.
    pub aid_goods: String,
    /// Matters solved on the spot.
    pub resolved_on_spot: i64,
    /// Petitions raised.
    pub petition_count: i64,
    /// The six answers (六问), a JSON array of six strings ('' before
    /// the ledger was rebuilt); the API and exports label them.
    #[serde(skip)]
    pub answers: String,
}

/// A service card as the ledger lists it (phone unmasked: the API masks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CardItem {
    /// Record id.
    pub id: String,
    /// The contacts document it lives in.
    pub document_id: String,
    /// Owner's username.
    pub owner: String,
    /// Owner's unit code.
    pub unit_code: String,
    pub resident: String,
    /// Resident's phone.
    pub phone: Option<String>,
    /// Resident's address.
    pub address: Option<String>,
    pub household: Option<String>,
    /// When the card was handed over.
    pub handed_over_at: DateTime<Utc>,
    pub pairing_role: Option<PairingRole>,
    pub pairing_needy: Option<bool>,
    pub follow_ups: i64,
}

/// A device that synced, with when it last did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct DeviceRow {
    pub user_id: i64,
    /// The device id given at login.
    pub device_id: String,
    /// The last time it synced any document.
    pub last_sync: DateTime<Utc>,
    /// Documents it synced.
    pub documents: i64,
}
