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
}
