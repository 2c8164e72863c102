//! Who may do what with a document, decided from the database and the
//! token's user (never from the peer id a client announces).

use sync_core::DocumentId;
use sync_core::protocol::Access;

use crate::auth::AuthUser;
use crate::store::{Role, Store, StoreResult};

/// The access `user` has to `document_id`:
///
/// - a cadre reads and writes documents they own, and may create a document
///   that does not exist yet (it becomes theirs when first stored);
/// - nobody else syncs a raw document: supervisors and admins read through
///   the API, where residents' phone and ID numbers are masked as their
///   role requires (the raw document holds them in full);
/// - anything else is [`Access::None`], which the protocol answers exactly
///   like a missing document.
pub async fn decide_access(
    store: &dyn Store,
    user: &AuthUser,
    document_id: &DocumentId,
) -> StoreResult<Access> {
    if user.role != Role::Cadre {
        return Ok(Access::None);
    }
    Ok(match store.get_document_meta(document_id).await? {
        None => Access::ReadWrite,
        Some(m) if m.owner_user_id == user.user_id => Access::ReadWrite,
        Some(_) => Access::None,
    })
}
