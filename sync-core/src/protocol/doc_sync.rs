//! The automerge sync state of one document on one connection, shared by
//! both ends.

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};

use super::ProtocolError;
use crate::DocumentId;

/// Decodes the automerge sync message carried in a `sync`/`request`.
pub(crate) fn decode_sync(
    document: &DocumentId,
    data: &[u8],
) -> Result<sync::Message, ProtocolError> {
    sync::Message::decode(data).map_err(|e| ProtocolError::Sync {
        document: document.to_string(),
        reason: e.to_string(),
    })
}

/// Applies a sync message; returns how many changes it added.
pub(crate) fn receive(
    document: &DocumentId,
    doc: &mut Automerge,
    state: &mut sync::State,
    message: sync::Message,
) -> Result<(Vec<ChangeHash>, usize), ProtocolError> {
    let before = doc.get_heads();
    doc.receive_sync_message(state, message)
        .map_err(|e| ProtocolError::Sync {
            document: document.to_string(),
            reason: e.to_string(),
        })?;
    // Only the changes that are not ancestors of the old heads: the new ones.
    let added = if doc.get_heads() == before {
        0
    } else {
        doc.get_changes(&before).len()
    };
    Ok((before, added))
}

/// Whether the peer has told us heads equal to ours.
pub(crate) fn peer_has_our_heads(doc: &Automerge, state: &sync::State) -> bool {
    let mut ours = doc.get_heads();
    ours.sort();
    state.their_heads.as_ref().is_some_and(|theirs| {
        let mut theirs = theirs.clone();
        theirs.sort();
        theirs == ours
    })
}
