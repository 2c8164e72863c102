//! Service cards (民情服务卡) handed to residents, and their follow-ups.

use sync_core::records::service_card as core;
use sync_core::{RecordId, Timestamp};

use super::mirror_enum;

mirror_enum! {
    /// The "123" pairing role.
    PairingRole = core::PairingRole {
        /// 结对党员
        PartyMember,
        /// 结对群众
        Resident,
    }
}

/// A card as entered on the phone.
#[derive(Debug, Clone, uniffi::Record)]
pub struct NewServiceCard {
    /// The resident who received it.
    pub resident: String,
    #[uniffi(default)]
    pub phone: Option<String>,
    #[uniffi(default)]
    pub address: Option<String>,
    #[uniffi(default)]
    pub household: Option<String>,
    /// When the card was handed over.
    pub handed_over_at_ms: i64,
    /// The pairing role, if the resident is one of the cadre's "123".
    #[uniffi(default)]
    pub pairing_role: Option<PairingRole>,
    /// Whether the paired person is needy.
    #[uniffi(default)]
    pub pairing_needy: bool,
    #[uniffi(default)]
    pub notes: String,
}

impl NewServiceCard {
    pub(crate) fn into_core(self, id: RecordId) -> core::NewServiceCard {
        core::NewServiceCard {
            id,
            resident: self.resident,
            phone: self.phone,
            address: self.address,
            household: self.household,
            handed_over_at: Timestamp(self.handed_over_at_ms),
            pairing: self.pairing_role.map(|role| core::Pairing {
                role: role.into(),
                needy: self.pairing_needy,
            }),
            notes: self.notes,
        }
    }
}

/// A change to a card. Fields left `None` stay as they are; `""` removes an
/// optional one.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ServiceCardEdit {
    /// New resident name.
    #[uniffi(default)]
    pub resident: Option<String>,
    /// New phone.
    #[uniffi(default)]
    pub phone: Option<String>,
    /// New address.
    #[uniffi(default)]
    pub address: Option<String>,
    /// New household.
    #[uniffi(default)]
    pub household: Option<String>,
    /// New notes (merged with concurrent edits).
    #[uniffi(default)]
    pub notes: Option<String>,
}

impl From<ServiceCardEdit> for core::ServiceCardUpdate {
    fn from(e: ServiceCardEdit) -> Self {
        let opt = |v: Option<String>| v.map(|s| (!s.is_empty()).then_some(s));
        Self {
            resident: e.resident,
            phone: opt(e.phone),
            address: opt(e.address),
            household: opt(e.household),
            pairing: None,
            notes: e.notes,
        }
    }
}

/// A follow-up with a card holder.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FollowUp {
    pub id: String,
    /// When.
    pub at_ms: i64,
    /// Who.
    pub by: String,
    /// What was said or done.
    pub note: String,
}

/// A card as read on the phone.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ServiceCard {
    /// The card's id.
    pub id: String,
    pub resident: String,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub household: Option<String>,
    /// When it was handed over.
    pub handed_over_at_ms: i64,
    pub pairing_role: Option<PairingRole>,
    /// Whether the paired person is needy.
    pub pairing_needy: bool,
    pub notes: String,
    /// Follow-ups, oldest first.
    pub follow_ups: Vec<FollowUp>,
    /// When it was recorded.
    pub created_at_ms: i64,
    /// When it was deleted, if it was.
    pub deleted_at_ms: Option<i64>,
}

impl From<core::ServiceCard> for ServiceCard {
    fn from(c: core::ServiceCard) -> Self {
        Self {
            id: c.id.to_string(),
            resident: c.resident,
            phone: c.phone,
            address: c.address,
            household: c.household,
            handed_over_at_ms: c.handed_over_at.millis(),
            pairing_role: c.pairing.map(|p| p.role.into()),
            pairing_needy: c.pairing.is_some_and(|p| p.needy),
            notes: c.notes,
            follow_ups: c
                .follow_ups
                .into_iter()
                .map(|f| FollowUp {
                    id: f.id.to_string(),
                    at_ms: f.at.millis(),
                    by: f.by,
                    note: f.note,
                })
                .collect(),
            created_at_ms: c.created_at.millis(),
            deleted_at_ms: c.deleted.map(|t| t.at.millis()),
        }
    }
}
