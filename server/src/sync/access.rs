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
/// - a supervisor reads documents whose owner's unit lies within their
///   unit's subtree;
/// - an admin reads every document;
/// - anything else is [`Access::None`], which the protocol answers exactly
///   like a missing document.
pub async fn decide_access(
    store: &dyn Store,
    user: &AuthUser,
    document_id: &DocumentId,
) -> StoreResult<Access> {
    let meta = store.get_document_meta(document_id).await?;
    Ok(match (user.role, meta) {
        (Role::Cadre, None) => Access::ReadWrite,
        (Role::Cadre, Some(m)) if m.owner_user_id == user.user_id => Access::ReadWrite,
        (Role::Cadre, Some(_)) => Access::None,
        (Role::Supervisor, Some(m)) => match store.get_user(m.owner_user_id).await? {
            Some(owner) if store.is_unit_within(owner.unit_id, user.unit_id).await? => Access::Read,
            _ => Access::None,
        },
        (Role::Admin, Some(_)) => Access::Read,
        (Role::Supervisor | Role::Admin, None) => Access::None,
    })
}
