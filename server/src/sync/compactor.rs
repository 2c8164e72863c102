//! Compaction in the background: a document's chunks folded into one
//! snapshot, off the path of the sync that made them.
//!
//! A write (a sync merge, or a supervisor's action) asks for a compaction
//! when [`worth_compacting`] says so and goes on to answer its client; the
//! [`run`] task takes the document's lock, brings its live copy up to date,
//! saves it and replaces the stored snapshot and chunks in one transaction
//! ([`Store::compact`], which refuses a compaction that lost a race rather
//! than lose a change).
//!
//! When to compact: a save costs about as much as the document is large,
//! so it is done once the chunks since the last one hold half the
//! document's size again. Each sync then pays a share of saves in
//! proportion to its own change, whatever the document's size (a fixed
//! count of chunks would make a large diary pay a whole save every few
//! syncs). A cap on the count of chunks bounds what a load replays.
//!
//! A request not carried out (the server stopped, the store failed) is not
//! kept: the next write to the document asks again, since the counts come
//! from the store.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sync_core::DocumentId;
use tokio::sync::{Semaphore, mpsc};

use super::hub::SyncHub;
use super::live::LiveDocument;
use crate::metrics;
use crate::store::{Compaction, Store, StoreError};

/// Compact once this many chunks wait, whatever their size: loading the
/// document replays each of them.
pub const MAX_PENDING_CHUNKS: u64 = 256;

/// Below this many bytes since the last base nothing is compacted: a small
/// document's saves are cheap, but not worth one per sync.
pub const MIN_UNFOLDED_BYTES: usize = 16 * 1024;

/// Whether a document whose store holds `pending_chunks` chunks after its
/// snapshot, and whose live copy is `live`, is worth compacting now.
pub fn worth_compacting(pending_chunks: u64, live: &LiveDocument) -> bool {
    if pending_chunks < 2 {
        // One chunk and no snapshot is a first upload: a whole document
        // already, which a save would only write again.
        return false;
    }
    pending_chunks >= MAX_PENDING_CHUNKS
        || live.unfolded_bytes() >= (live.base_bytes / 2).max(MIN_UNFOLDED_BYTES)
}

/// Documents waiting for compaction, each once.
#[derive(Debug)]
pub struct CompactionQueue {
    sender: mpsc::UnboundedSender<DocumentId>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<DocumentId>>>,
    queued: Mutex<HashSet<DocumentId>>,
}

impl Default for CompactionQueue {
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        CompactionQueue {
            sender,
            receiver: Mutex::new(Some(receiver)),
            queued: Mutex::new(HashSet::new()),
        }
    }
}

impl CompactionQueue {
    /// Asks for `document_id` to be compacted; a document already waiting
    /// is not queued twice.
    pub fn request(&self, document_id: DocumentId) {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        if queued.insert(document_id) && self.sender.send(document_id).is_err() {
            queued.remove(&document_id);
        }
    }

    /// How many documents wait.
    pub fn len(&self) -> usize {
        self.queued.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The receiving end, for the one [`run`] task.
    fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<DocumentId>> {
        self.receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    fn done(&self, document_id: DocumentId) {
        self.queued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&document_id);
    }
}

/// Compacts the documents asked for, one at a time, until `stop` completes.
/// Each takes the document's lock and then a merge permit (it is CPU work
/// like a merge; in the order merges take them), so syncs of that document
/// wait for it, others do not.
pub async fn run(
    hub: Arc<SyncHub>,
    store: Arc<dyn Store>,
    permits: Arc<Semaphore>,
    stop: impl std::future::Future<Output = ()>,
) {
    let Some(mut receiver) = hub.compactions().take_receiver() else {
        tracing::error!("compaction already running in this process");
        return;
    };
    tokio::pin!(stop);
    loop {
        let document_id = tokio::select! {
            next = receiver.recv() => match next {
                Some(id) => id,
                None => return,
            },
            () = &mut stop => return,
        };
        compact(&hub, store.as_ref(), &permits, document_id).await;
        hub.compactions().done(document_id);
    }
}

/// Replaces `document_id`'s snapshot and pending chunks by one snapshot of
/// its live copy. A lost race (another process compacted first) or a
/// failure only leaves the chunks for the next compaction.
async fn compact(hub: &SyncHub, store: &dyn Store, permits: &Semaphore, document_id: DocumentId) {
    let mut guard = hub.lock(document_id).await;
    let Ok(_permit) = permits.acquire().await else {
        return;
    };
    let live = match guard.current(store, document_id).await {
        Ok(Some(live)) => live,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(document_id = %document_id, error = %crate::error::error_chain(&e), "compaction could not load the document");
            metrics::compaction("error");
            return;
        }
    };
    if live.pending_chunks.len() < 2 {
        guard.keep(live);
        return;
    }
    let task = tokio::task::spawn_blocking(move || {
        // Keeps changes still waiting for their dependencies.
        let snapshot = sync_core::storage::snapshot(&live.doc);
        let heads = live
            .doc
            .get_heads()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        (live, snapshot, heads)
    })
    .await;
    let Ok((mut live, snapshot, heads)) = task else {
        // The copy went with the failed task; the next sync loads it.
        tracing::error!(document_id = %document_id, "compaction task failed");
        metrics::compaction("error");
        return;
    };
    let snapshot_len = snapshot.len();
    let compaction = Compaction {
        document_id,
        base_heads: live.version.snapshot_heads.clone(),
        snapshot,
        heads: heads.clone(),
        replaced_chunk_ids: live.pending_chunks.clone(),
    };
    let result = match store.compact(compaction).await {
        Ok(()) => {
            live.compacted(heads, snapshot_len);
            "ok"
        }
        Err(StoreError::Conflict(reason)) => {
            tracing::debug!(document_id = %document_id, reason, "compaction lost a race");
            "conflict"
        }
        Err(e) => {
            tracing::warn!(document_id = %document_id, error = %crate::error::error_chain(&e), "compaction failed");
            "error"
        }
    };
    metrics::compaction(result);
    guard.keep(live);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live copy whose store holds a base of `base` bytes and `chunks`
    /// chunks of `chunk` bytes each after it.
    fn stored(base: usize, chunks: usize, chunk: usize) -> LiveDocument {
        let mut live = LiveDocument::empty();
        live.appended(1, base);
        for id in 0..chunks {
            live.appended(2 + id as i64, chunk);
        }
        live
    }

    /// How many chunks of `chunk` bytes after a base of `base` bytes are
    /// stored before a compaction is asked for.
    fn chunks_before_compaction(base: usize, chunk: usize) -> u64 {
        (0..)
            .find(|&n| worth_compacting(1 + n as u64, &stored(base, n, chunk)))
            .expect("asks at some point") as u64
    }

    #[test]
    fn a_first_upload_alone_is_not_compacted() {
        let live = stored(400_000, 0, 0);
        assert_eq!(live.base_bytes, 400_000);
        assert!(!worth_compacting(1, &live));
    }

    #[test]
    fn chunks_are_folded_once_they_hold_half_the_base_again() {
        // A 500- and a 2,000-visit diary (about 107 KB and 413 KB saved),
        // one visit (about 1.2 KB) per sync: the larger one compacts
        // about four times less often, so each sync's share of the saves
        // stays about the same.
        let small = chunks_before_compaction(107_000, 1_200);
        let large = chunks_before_compaction(413_000, 1_200);
        assert_eq!(small, 45);
        assert_eq!(large, 173);
        // A tiny document waits for a minimum of bytes.
        assert_eq!(chunks_before_compaction(2_000, 1_024), 16);
        // However small the chunks, their count is bounded.
        assert_eq!(
            chunks_before_compaction(10_000_000, 10),
            MAX_PENDING_CHUNKS - 1
        );
    }

    #[test]
    fn a_compaction_makes_the_snapshot_the_base() {
        let mut live = stored(100_000, 60, 1_000);
        assert!(worth_compacting(61, &live));
        live.compacted("heads".into(), 150_000);
        assert_eq!((live.base_bytes, live.unfolded_bytes()), (150_000, 0));
        assert!(!worth_compacting(0, &live));
    }

    #[tokio::test]
    async fn a_document_is_queued_once_until_compacted() {
        let queue = CompactionQueue::default();
        let id = DocumentId::from_bytes([7; 16]);
        queue.request(id);
        queue.request(id);
        assert_eq!(queue.len(), 1);
        let mut receiver = queue.take_receiver().expect("the receiver");
        assert_eq!(receiver.recv().await, Some(id));
        queue.done(id);
        assert!(queue.is_empty());
        queue.request(id);
        assert_eq!(receiver.recv().await, Some(id));
    }
}
