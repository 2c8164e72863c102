//! Shared beginnings: the document id and first change of a cadre's diary for a
//! year (or their contacts) are derived from owner, kind and year alone.
//!
//! Two phones of one cadre that each create this year's diary offline would
//! otherwise make two documents, and the visits of one would never be seen by
//! the other. Derived the same way everywhere, both phones name the same
//! document and write byte-identical genesis changes (same actor, sequence
//! number, time, message and operations), so the root maps `visits` and
//! `petitions` are the same objects on both and every record merges into one
//! document. Later edits use each device's own actor.

use std::ops::RangeInclusive;

use automerge::ActorId;
use sha2::{Digest, Sha256};

use super::schema::DocumentKind;
use crate::{DocumentId, Edit, Timestamp};

/// Separates the purposes of the two hashes, and versions the derivation: a
/// change here would split every cadre's diary in two.
const ID_DOMAIN: &str = "visit-diary/document-id/v1";
const ACTOR_DOMAIN: &str = "visit-diary/genesis-actor/v1";

/// First 16 bytes of SHA-256 over the domain and the fields, each ended by a
/// NUL so `("ab", "c")` and `("a", "bc")` differ.
fn derive(domain: &str, kind: DocumentKind, owner: &str, year: Option<i32>) -> [u8; 16] {
    let mut h = Sha256::new();
    for part in [domain, kind.as_str(), owner] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    if let Some(y) = year {
        h.update(y.to_be_bytes());
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The id of `owner`'s diary for `year`, the same on every device.
pub fn diary_id(owner: &str, year: i32) -> DocumentId {
    DocumentId::from_bytes(derive(ID_DOMAIN, DocumentKind::Diary, owner, Some(year)))
}

/// The id of `owner`'s contacts document, the same on every device.
pub fn contacts_id(owner: &str) -> DocumentId {
    DocumentId::from_bytes(derive(ID_DOMAIN, DocumentKind::Contacts, owner, None))
}

/// The id of `owner`'s document of `kind`: [`diary_id`] for a diary of
/// `year`, [`contacts_id`] for contacts. `None` for a diary without a year,
/// which no id is derived for.
pub fn derived_id(kind: DocumentKind, owner: &str, year: Option<i32>) -> Option<DocumentId> {
    match (kind, year) {
        (DocumentKind::Diary, Some(year)) => Some(diary_id(owner, year)),
        (DocumentKind::Diary, None) => None,
        (DocumentKind::Contacts, _) => Some(contacts_id(owner)),
    }
}

/// Whether `id` is one that sync-core derives for `owner`: their contacts,
/// or their diary of one of `years`. The ids are hashes, so this tries
/// each (one SHA-256 a year).
pub fn derived_for(id: &DocumentId, owner: &str, years: RangeInclusive<i32>) -> bool {
    *id == contacts_id(owner) || years.into_iter().any(|year| *id == diary_id(owner, year))
}

/// The actor that writes the genesis change of a derived document. Nobody
/// edits as this actor afterwards: each device switches to its own.
pub(crate) fn genesis_actor(kind: DocumentKind, owner: &str, year: Option<i32>) -> ActorId {
    ActorId::from(derive(ACTOR_DOMAIN, kind, owner, year))
}

/// The author and time of a genesis change. The time is fixed (not the
/// device's clock) so both devices write the same bytes: the start of the
/// diary's year in China time, or the epoch for contacts, which have no year.
pub(crate) fn genesis_edit(owner: &str, year: Option<i32>) -> Edit {
    let at = year
        .and_then(|y| time::Date::from_calendar_date(y, time::Month::January, 1).ok())
        .map(|d| {
            let midnight_utc = d.midnight().assume_utc().unix_timestamp();
            Timestamp((midnight_utc - i64::from(crate::timestamp::CHINA_OFFSET_SECONDS)) * 1000)
        })
        .unwrap_or_default();
    Edit::new(owner, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_owner_kind_and_year_only() {
        assert_eq!(diary_id("cadre01", 2026), diary_id("cadre01", 2026));
        assert_ne!(diary_id("cadre01", 2026), diary_id("cadre01", 2027));
        assert_ne!(diary_id("cadre01", 2026), diary_id("cadre02", 2026));
        assert_ne!(contacts_id("cadre01"), contacts_id("cadre02"));
        assert_ne!(
            contacts_id("cadre01").as_bytes(),
            diary_id("cadre01", 0).as_bytes()
        );
    }

    #[test]
    fn derived_ids_are_recognised_for_their_owner_only() {
        let diary = diary_id("cadre01", 2026);
        assert!(derived_for(&diary, "cadre01", 2000..=2027));
        assert!(!derived_for(&diary, "cadre01", 2027..=2030));
        assert!(!derived_for(&diary, "cadre02", 2000..=2027));
        assert!(derived_for(&contacts_id("cadre01"), "cadre01", 2026..=2026));
        assert!(!derived_for(
            &contacts_id("cadre02"),
            "cadre01",
            2000..=2027
        ));
        assert!(!derived_for(
            &DocumentId::from_bytes([7; 16]),
            "cadre01",
            2000..=2027
        ));
        assert_eq!(
            derived_id(DocumentKind::Diary, "cadre01", Some(2026)),
            Some(diary)
        );
        assert_eq!(derived_id(DocumentKind::Diary, "cadre01", None), None);
        assert_eq!(
            derived_id(DocumentKind::Contacts, "cadre01", Some(2026)),
            Some(contacts_id("cadre01"))
        );
    }

    #[test]
    fn genesis_time_is_new_year_in_china() {
        let edit = genesis_edit("cadre01", Some(2026));
        // 2025-12-31T16:00:00Z is 2026-01-01 00:00 in Beijing.
        assert_eq!(edit.at, Timestamp(1_767_196_800_000));
        assert_eq!(genesis_edit("cadre01", None).at, Timestamp(0));
    }
}
