//! A service card (民情服务卡) handed to a resident, and the contact it creates.

use super::Tombstone;
use crate::validation::{self, MAX_LONG, ValidationError};
use crate::{RecordId, Timestamp};

crate::text_enum! {
    /// The "123" pairing rule: each cadre pairs with 2 party members and 3
    /// residents, at least one of each needy.
    PairingRole, "pairing role" {
        /// 结对党员
        PartyMember = "party_member", "结对党员";
        /// 结对群众
        Resident = "resident", "结对群众";
    }
}

/// A card's place in the cadre's "123" pairing, if it is one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pairing {
    /// Party member or resident.
    pub role: PairingRole,
    /// Whether the paired person is needy (困难).
    pub needy: bool,
}

/// A follow-up with the card holder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FollowUp {
    /// The follow-up's id.
    pub id: RecordId,
    /// When.
    pub at: Timestamp,
    /// Who.
    pub by: String,
    /// What happened.
    pub note: String,
}

/// A service card as read from a contacts document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceCard {
    /// The record's id.
    pub id: RecordId,
    /// The resident who received it.
    pub resident: String,
    pub phone: Option<String>,
    pub address: Option<String>,
    /// Household (户号 or household head).
    pub household: Option<String>,
    /// When the card was handed over.
    pub handed_over_at: Timestamp,
    /// Pairing, if the resident is one of the cadre's "123".
    pub pairing: Option<Pairing>,
    pub notes: String,
    /// Follow-ups, oldest first.
    pub follow_ups: Vec<FollowUp>,
    /// When the record was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// Set when the card was deleted.
    pub deleted: Option<Tombstone>,
}

/// A new service card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewServiceCard {
    /// A fresh id.
    pub id: RecordId,
    /// Resident's name.
    pub resident: String,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub household: Option<String>,
    /// When handed over.
    pub handed_over_at: Timestamp,
    pub pairing: Option<Pairing>,
    pub notes: String,
}

/// A change to a card; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceCardUpdate {
    /// New name.
    pub resident: Option<String>,
    /// New phone (`Some(None)` clears it).
    pub phone: Option<Option<String>>,
    /// New address.
    pub address: Option<Option<String>>,
    /// New household.
    pub household: Option<Option<String>>,
    /// New pairing.
    pub pairing: Option<Option<Pairing>>,
    /// New notes (merged as text).
    pub notes: Option<String>,
}

fn check_optional_short(field: &'static str, v: &Option<String>) -> Result<(), ValidationError> {
    v.as_deref().map_or(Ok(()), |s| {
        validation::max_len(field, s, validation::MAX_SHORT)
    })
}

impl NewServiceCard {
    /// Checks the resident's name and the phone's shape.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validation::required("resident", &self.resident)?;
        if let Some(p) = &self.phone {
            validation::check_phone(p)?;
        }
        check_optional_short("address", &self.address)?;
        check_optional_short("household", &self.household)?;
        validation::max_len("notes", &self.notes, MAX_LONG)
    }
}

impl ServiceCardUpdate {
    /// Checks every field being set.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(r) = &self.resident {
            validation::required("resident", r)?;
        }
        if let Some(Some(p)) = &self.phone {
            validation::check_phone(p)?;
        }
        if let Some(a) = &self.address {
            check_optional_short("address", a)?;
        }
        if let Some(h) = &self.household {
            check_optional_short("household", h)?;
        }
        if let Some(n) = &self.notes {
            validation::max_len("notes", n, MAX_LONG)?;
        }
        Ok(())
    }
}

/// How a cadre's live cards measure against the "123" pairing rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PairingSummary {
    /// Paired party members.
    pub party_members: u32,
    /// Of which needy.
    pub needy_party_members: u32,
    /// Paired residents.
    pub residents: u32,
    /// Of which needy.
    pub needy_residents: u32,
}

impl PairingSummary {
    /// Counts the pairings of live cards.
    pub fn of<'a>(cards: impl IntoIterator<Item = &'a ServiceCard>) -> Self {
        let mut s = Self::default();
        for p in cards
            .into_iter()
            .filter(|c| c.deleted.is_none())
            .filter_map(|c| c.pairing)
        {
            match p.role {
                PairingRole::PartyMember => {
                    s.party_members += 1;
                    s.needy_party_members += u32::from(p.needy);
                }
                PairingRole::Resident => {
                    s.residents += 1;
                    s.needy_residents += u32::from(p.needy);
                }
            }
        }
        s
    }

    /// Whether the cadre has at least 2 party members and 3 residents, with at
    /// least one needy in each group.
    pub fn meets_rule(&self) -> bool {
        self.party_members >= 2
            && self.residents >= 3
            && self.needy_party_members >= 1
            && self.needy_residents >= 1
    }
}
