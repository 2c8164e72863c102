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

/// Applies a sync message; returns the heads before it and how many
/// changes it added. `loaded` is the message's only change entry, a
/// document chunk, already loaded (by the payload check): taken in place of
/// loading the chunk again when `doc` is empty.
pub(crate) fn receive(
    document: &DocumentId,
    doc: &mut Automerge,
    state: &mut sync::State,
    message: sync::Message,
    loaded: Option<Automerge>,
) -> Result<(Vec<ChangeHash>, usize), ProtocolError> {
    let before = doc.get_heads();
    match loaded {
        Some(loaded)
            if doc.is_empty()
                && !state.read_only
                && !message.heads.is_empty()
                && loaded.text_encoding() == doc.text_encoding() =>
        {
            receive_loaded(doc, state, message, loaded)
        }
        _ => doc.receive_sync_message(state, message),
    }
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

/// What automerge's `receive_sync_message` does with a message whose
/// changes are one document chunk, for an empty document, with the chunk
/// already loaded as `loaded`. automerge loads the chunk whole into a new
/// document that keeps the old one's actor (`load_incremental` of an empty
/// document), then advances the shared heads from no heads to the new ones.
/// Here `loaded` takes the document's place, the shared heads are advanced
/// the same way, and the rest of the message is received by automerge with
/// its changes taken out. The one thing taking them out changes is that
/// automerge then records the message's heads as last sent when they equal
/// the document's: that is put back. `message.heads` is not empty (empty
/// heads reset the state, which the caller leaves to automerge).
fn receive_loaded(
    doc: &mut Automerge,
    state: &mut sync::State,
    mut message: sync::Message,
    loaded: Automerge,
) -> Result<(), automerge::AutomergeError> {
    *doc = loaded.with_actor(doc.get_actor().clone());
    let mut heads = doc.get_heads();
    heads.sort();
    state.shared_heads = heads;
    let last_sent = std::mem::take(&mut state.last_sent_heads);
    message.changes = Vec::<Vec<u8>>::new().into();
    let received = doc.receive_sync_message(state, message);
    state.last_sent_heads = last_sent;
    received
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

    /// A phone's whole document as automerge sends it to a peer that said
    /// it has nothing and takes v2 messages (one document chunk), after
    /// `server_state` made that first message.
    fn whole_document_message(phone: &Automerge, server_state: &mut sync::State) -> sync::Message {
        let hello = Automerge::new()
            .generate_sync_message(server_state)
            .expect("a first message");
        let mut phone = phone.clone();
        let mut phone_state = sync::State::new();
        phone
            .receive_sync_message(&mut phone_state, hello)
            .expect("the phone takes it");
        phone
            .generate_sync_message(&mut phone_state)
            .expect("the phone sends its document")
    }

    #[test]
    fn a_loaded_document_chunk_is_received_as_automerge_receives_the_chunk() {
        let mut phone = Automerge::new();
        for i in 0..20 {
            phone = after(&phone, 10 + i);
        }
        let id = DocumentId::from_bytes([4; 16]);
        // A fresh state, one that was given heads before (they advance the
        // same way), and heads from the peer the chunk does not hold (the
        // shared heads are then what advanced plus what is known).
        for (earlier, unknown_head) in [(false, false), (true, false), (true, true)] {
            let mut state = sync::State::new();
            let mut message = whole_document_message(&phone, &mut state);
            if earlier {
                state.shared_heads = vec![ChangeHash([9; 32])];
                state.last_sent_heads = vec![ChangeHash([8; 32])];
            }
            if unknown_head {
                message.heads.push(ChangeHash([7; 32]));
            }
            let entries: Vec<_> = message.changes.iter().collect();
            assert_eq!(entries.len(), 1, "one entry");
            assert_eq!(entries[0][8], super::super::payload::CHUNK_DOCUMENT);
            let loaded = Automerge::load(entries[0]).expect("loads");

            let (mut by_automerge, mut by_automerge_state) = (Automerge::new(), state.clone());
            let (mut taken, mut taken_state) = (Automerge::new(), state);
            let actor = taken.get_actor().clone();
            let a = receive(
                &id,
                &mut by_automerge,
                &mut by_automerge_state,
                message.clone(),
                None,
            )
            .expect("received");
            let b = receive(&id, &mut taken, &mut taken_state, message, Some(loaded))
                .expect("received");
            assert_eq!(a, b, "the same heads before and changes added");
            assert_eq!(b.1, 20);
            assert_eq!(taken.get_actor(), &actor, "the document keeps its actor");
            assert_eq!(taken.get_heads(), by_automerge.get_heads());
            assert_eq!(taken.save(), by_automerge.save());
            assert_eq!(taken_state, by_automerge_state, "the same sync state");
            // And the same answer.
            let reply = |doc: &Automerge, state: &mut sync::State| {
                doc.generate_sync_message(state).map(|m| m.encode())
            };
            let answer = reply(&taken, &mut taken_state);
            assert!(answer.is_some(), "the upload is answered");
            assert_eq!(answer, reply(&by_automerge, &mut by_automerge_state));
        }
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
