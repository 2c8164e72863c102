//! Who may do what with a document, decided from the database and the
//! token's user (never from the peer id a client announces).

use std::ops::RangeInclusive;

use chrono::{Datelike, TimeDelta, Utc};
use sync_core::protocol::Access;
use sync_core::{DocumentId, derived_for};

use super::live::LiveDocuments;
use crate::auth::AuthUser;
use crate::store::{Role, Store, StoreResult};

/// The access `user` has to `document_id`:
///
/// - a cadre reads and writes documents they own, and may create one that
///   does not exist yet at an id sync-core derives for them (their contacts,
///   or their diary of a year from 2000 to next year): it becomes theirs
///   when first stored. Any other missing id is refused like another's
///   document, so a cadre cannot tell whether a colleague's diary exists
///   (its id is derived from a username anyone may know), nor take that id
///   before its owner does;
/// - nobody else syncs a raw document: supervisors and admins read through
///   the API, where residents' phone and ID numbers are masked as their
///   role requires (the raw document holds them in full);
/// - anything else is [`Access::None`], which the protocol answers exactly
///   like a missing document.
///
/// The owner is read from the store unless this process holds the
/// document in memory ([`LiveDocuments::known_owner`]): a document's owner
/// never changes.
pub async fn decide_access(
    store: &dyn Store,
    live: &LiveDocuments,
    user: &AuthUser,
    document_id: &DocumentId,
) -> StoreResult<Access> {
    if user.role != Role::Cadre {
        return Ok(Access::None);
    }
    let owner = match live.known_owner(document_id) {
        Some(owner) => Some(owner),
        None => store
            .get_document_meta(document_id)
            .await?
            .map(|m| m.owner_user_id),
    };
    Ok(match owner {
        Some(owner) if owner == user.user_id => Access::ReadWrite,
        Some(_) => Access::None,
        None if derived_for(document_id, &user.username, creatable_years()) => Access::ReadWrite,
        None => Access::None,
    })
}

/// The years a cadre may create a diary for: from 2000 to next year in
/// China time (a phone whose clock runs ahead at New Year).
pub fn creatable_years() -> RangeInclusive<i32> {
    let china_now = Utc::now() + TimeDelta::hours(8);
    2000..=china_now.year() + 1
}
