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
    let refuse = |reason: String| ProtocolError::Sync {
        document: document.to_string(),
        reason,
    };
    let message = sync::Message::decode(data).map_err(|e| refuse(e.to_string()))?;
    for have in &message.have {
        check_bloom(&have.bloom.to_bytes()).map_err(|e| refuse(e.to_owned()))?;
    }
    Ok(message)
}

/// Most probes per hash a Bloom filter may ask for (automerge uses 7).
const MAX_BLOOM_PROBES: u64 = 64;

/// Refuses a Bloom filter that automerge 0.12 accepts when decoding but then
/// fails on when generating its answer: one with entries but no bits (zero
/// bits per entry) divides by zero, and one asking for billions of probes
/// per hash allocates for all of them. Found by fuzzing (`sync-core/fuzz`).
fn check_bloom(encoded: &[u8]) -> Result<(), &'static str> {
    if encoded.is_empty() {
        return Ok(()); // no entries
    }
    let mut rest = encoded;
    let mut next = || -> Result<u64, &'static str> {
        let (value, n) = super::payload::uleb128(rest).ok_or("malformed Bloom filter")?;
        rest = &rest[n..];
        Ok(value)
    };
    let entries = next()?;
    let bits_per_entry = next()?;
    let probes = next()?;
    if entries > 0 && (bits_per_entry == 0 || rest.is_empty()) {
        return Err("Bloom filter with entries but no bits");
    }
    if probes > MAX_BLOOM_PROBES {
        return Err("Bloom filter with too many probes");
    }
    Ok(())
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
    // Their metadata is enough to count them: a document chunk (a first
    // upload) holds no encoded changes, and building them again would cost
    // about what loading the document did.
    let added = if doc.get_heads() == before {
        0
    } else {
        doc.get_changes_meta(&before).len()
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

/// Most bytes of changes a reconnecting peer puts in its first message
/// ([`send_changes_since_shared_heads`]); more go the usual way, once the
/// other side has said what it has.
pub(crate) const FIRST_MESSAGE_CHANGES_BYTES: usize = 256 * 1024;

/// Puts into `message`, a connection's first sync message for a document
/// whose sync state was kept from an earlier connection, the changes made
/// since the heads both sides shared then. automerge would only send them
/// after the other side's answer, a round trip later; a phone on a weak
/// link that made a visit offline is then synced in one round trip.
///
/// Nothing is added when there are no shared heads (a first sync), when
/// the message already carries changes, when this document does not have
/// every shared head, or when the changes are more than
/// [`FIRST_MESSAGE_CHANGES_BYTES`]. The changes count as sent in `state`,
/// so automerge does not send them again; if the other side lacks the
/// shared heads after all, it asks for what it needs as usual.
pub(crate) fn send_changes_since_shared_heads(
    doc: &Automerge,
    state: &mut sync::State,
    message: &mut sync::Message,
) {
    let shared = &state.shared_heads;
    if shared.is_empty()
        || !message.changes.is_empty()
        || shared
            .iter()
            .any(|h| doc.get_change_meta_by_hash(h).is_none())
    {
        return;
    }
    let changes = doc.get_changes(shared);
    let bytes: usize = changes.iter().map(|c| c.raw_bytes().len()).sum();
    if changes.is_empty() || bytes > FIRST_MESSAGE_CHANGES_BYTES {
        return;
    }
    state.sent_hashes.extend(changes.iter().map(|c| c.hash()));
    message.changes = changes
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect::<Vec<_>>()
        .into();
}

#[cfg(test)]
mod tests {
    use automerge::sync::{BloomFilter, Have, MessageVersion};

    use super::*;

    fn with_bloom(bloom: &[u8]) -> Vec<u8> {
        let bloom = BloomFilter::try_from(bloom).expect("automerge accepts it");
        sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![Have {
                last_sync: vec![],
                bloom,
            }],
            changes: Vec::<Vec<u8>>::new().into(),
            flags: None,
            version: MessageVersion::V1,
        }
        .encode()
    }

    #[test]
    fn a_bloom_filter_that_would_crash_the_answer_is_refused() {
        let id = DocumentId::from_bytes([3; 16]);
        // One entry, zero bits per entry, 7 probes, no bits: automerge
        // decodes it, then divides by zero when answering.
        let zero_bits = with_bloom(&[1, 0, 7]);
        let err = decode_sync(&id, &zero_bits).expect_err("refused");
        assert!(err.to_string().contains("no bits"), "{err}");
        // Billions of probes per hash.
        let probes = with_bloom(&[1, 10, 0xff, 0xff, 0xff, 0xff, 0x0f, 0xff, 0xff]);
        let err = decode_sync(&id, &probes).expect_err("refused");
        assert!(err.to_string().contains("too many probes"), "{err}");
        // A real filter passes.
        let hash = automerge::ChangeHash([7; 32]);
        let real = BloomFilter::from_hashes([hash].into_iter());
        assert!(decode_sync(&id, &with_bloom(&real.to_bytes())).is_ok());
    }

    /// A document with one change of `bytes` bytes of text after `base`.
    fn after(base: &Automerge, bytes: usize) -> Automerge {
        use automerge::transaction::Transactable;
        let mut doc = base.fork();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "note", "x".repeat(bytes))
            .expect("put");
        tx.commit();
        doc
    }

    fn first_message(doc: &Automerge, state: &mut sync::State) -> sync::Message {
        let mut message = doc.generate_sync_message(state).expect("a first message");
        send_changes_since_shared_heads(doc, state, &mut message);
        message
    }

    #[test]
    fn only_what_is_since_known_shared_heads_and_small_goes_first() {
        let base = after(&Automerge::new(), 10);
        let kept = |heads: Vec<ChangeHash>| {
            let mut state = sync::State::new();
            state.shared_heads = heads;
            sync::State::decode(&state.encode()).expect("decodes")
        };
        // Since the shared heads: the one change, counted as sent.
        let doc = after(&base, 100);
        let mut state = kept(base.get_heads());
        let message = first_message(&doc, &mut state);
        assert_eq!(message.changes.len(), 1);
        assert!(state.sent_hashes.contains(&doc.get_heads()[0]));
        // No kept state: nothing (a first sync goes the usual way).
        assert!(
            first_message(&doc, &mut sync::State::new())
                .changes
                .is_empty()
        );
        // Shared heads this document does not have: nothing.
        let mut state = kept(vec![ChangeHash([9; 32])]);
        assert!(first_message(&doc, &mut state).changes.is_empty());
        // More than the limit: nothing.
        let big = after(&base, FIRST_MESSAGE_CHANGES_BYTES + 1);
        let mut state = kept(base.get_heads());
        assert!(first_message(&big, &mut state).changes.is_empty());
    }
}
