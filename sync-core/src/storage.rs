//! The stored form of a document: a snapshot plus incremental chunks, and
//! how a received change that cannot be applied yet survives being stored.
//!
//! Automerge queues a change whose dependencies it has not seen (after a
//! Bloom-filter false positive, the peer may send a change without its
//! parent). The queue lives only in memory: a document rebuilt from
//! `save()` and `save_after()` alone forgets it, while the peer, which
//! counts the change as sent, never sends it again. So everything here
//! keeps the queued changes' raw bytes:
//! - [`SyncApplied::chunk`](crate::protocol::SyncApplied::chunk) appends the
//!   changes a sync message left waiting to the chunk it asks the caller to
//!   store;
//! - [`load`] replays them, so they wait in the queue again and are applied
//!   as soon as their dependencies arrive;
//! - [`snapshot`] writes still-waiting changes after the compacted document.
//!
//! None of this does I/O: the caller reads and writes the bytes.

use automerge::{Automerge, AutomergeError, ReadDoc, SaveOptions};

/// Rebuilds a document from its snapshot (if any) and the chunks stored
/// after it, in order. Changes whose dependencies are still missing wait in
/// the returned document's queue, as they did before it was stored.
pub fn load<'a>(
    snapshot: Option<&[u8]>,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Automerge, AutomergeError> {
    let mut doc = match snapshot {
        // A snapshot is a document chunk, possibly followed by waiting
        // changes; automerge keeps those queued when the first chunk is a
        // document.
        Some(snapshot) => Automerge::load(snapshot)?,
        None => Automerge::new(),
    };
    for chunk in chunks {
        doc.load_incremental(chunk)?;
    }
    Ok(doc)
}

/// The compacted form of `doc` that replaces its snapshot and chunks: the
/// whole document, followed by the changes still waiting for their
/// dependencies.
pub fn snapshot(doc: &Automerge) -> Vec<u8> {
    doc.save_with_options(SaveOptions {
        deflate: true,
        retain_orphans: true,
    })
}

/// Whether `doc` holds received changes it cannot apply yet.
pub fn has_waiting_changes(doc: &Automerge) -> bool {
    // Non-empty exactly when the queue is: every queued change lacks at
    // least one dependency that is neither applied nor queued.
    !doc.get_missing_deps(&[]).is_empty()
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT};

    use super::*;

    /// A document with one change, and a copy with two more on top (the
    /// second depending on the first).
    fn parent_and_child() -> (Automerge, automerge::Change, automerge::Change) {
        let mut base = Automerge::new().with_actor(ActorId::from([1u8; 16]));
        let mut tx = base.transaction();
        tx.put(ROOT, "a", 1).expect("put");
        tx.commit();
        let mut ahead = base.fork().with_actor(ActorId::from([2u8; 16]));
        for v in [2, 3] {
            let mut tx = ahead.transaction();
            tx.put(ROOT, "b", v).expect("put");
            tx.commit();
        }
        let heads = base.get_heads();
        let mut new = ahead.get_changes(&heads);
        let child = new.pop().expect("child");
        let parent = new.pop().expect("parent");
        (base, parent, child)
    }

    #[test]
    fn a_waiting_change_survives_snapshot_and_load() {
        let (mut doc, parent, child) = parent_and_child();
        doc.apply_changes([child.clone()]).expect("queued");
        assert!(has_waiting_changes(&doc));
        let heads = doc.get_heads();

        // Compacted and reloaded, the child still waits ...
        let mut reloaded = load(Some(&snapshot(&doc)), []).expect("loads");
        assert!(has_waiting_changes(&reloaded));
        assert_eq!(reloaded.get_heads(), heads);
        // ... and is applied when its parent arrives.
        reloaded.apply_changes([parent]).expect("applies");
        assert!(!has_waiting_changes(&reloaded));
        assert_eq!(reloaded.get_heads(), vec![child.hash()]);
        assert_eq!(
            reloaded
                .get(ROOT, "b")
                .expect("get")
                .map(|(v, _)| v.as_i64()),
            Some(Some(3))
        );
    }

    #[test]
    fn a_waiting_change_stored_as_a_chunk_is_replayed() {
        let (base, parent, child) = parent_and_child();
        let snap = snapshot(&base);
        let chunks = [child.raw_bytes().to_vec(), parent.raw_bytes().to_vec()];
        let doc = load(Some(&snap), chunks.iter().map(Vec::as_slice)).expect("loads");
        assert!(!has_waiting_changes(&doc));
        assert_eq!(doc.get_heads(), vec![child.hash()]);
        // Without a snapshot too (a document stored as chunks only).
        let first = base.save();
        let doc = load(None, [first.as_slice(), chunks[0].as_slice()]).expect("loads");
        assert!(has_waiting_changes(&doc));
    }
}
