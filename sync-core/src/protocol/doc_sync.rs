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
    resend_what_they_need(state);
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

/// Forgets having sent the changes the peer says it needs, so the next
/// message carries them again.
///
/// Automerge never sends a change twice on one sync state (`sent_hashes`),
/// trusting that the peer keeps what it received. A peer that lost a change
/// (it could not apply it yet and did not keep it, or it restarted) asks for
/// it in `need`; without this, it would ask forever and the sync would never
/// settle. A peer that asks for what it does not need costs only the resend.
pub(crate) fn resend_what_they_need(state: &mut sync::State) {
    if let Some(need) = &state.their_need {
        for hash in need {
            state.sent_hashes.remove(hash);
        }
    }
}
