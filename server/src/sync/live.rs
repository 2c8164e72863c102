//! Live documents: each document being synced is held in memory once per
//! process, behind its merge lock, and merged in place, so a sync costs the
//! work of its own changes rather than rebuilding the document from the
//! store every time.
//!
//! The copy in memory never runs ahead of the store. A caller takes it out
//! of its slot ([`DocumentGuard::current`]), merges, stores what the merge
//! added, and only then puts it back ([`DocumentGuard::keep`]); a refusal, a
//! failed write or a panic in between leaves the slot empty, so the next
//! sync loads the document from the store again. Evicting a copy (idle, or
//! over the memory budget) therefore only ever drops bytes that are stored.
//!
//! Before each use the copy is compared with the stored version under the
//! document's lock and only newer chunks are applied
//! ([`Store::load_document_since`]): a write by anything that did not go
//! through this copy (another process on the same PostgreSQL, a restored
//! backup) is picked up before merging.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sync_core::DocumentId;
use sync_core::automerge::{Automerge, ChangeHash};
use tokio::sync::OwnedMutexGuard;

use super::documents::{self, MergeError};
use crate::ledger::{Attribution, LedgerProjection};
use crate::store::{
    AppendOutcome, DocumentSince, DocumentWrite, StaleWrite, Store, StoreError, StoredDocument,
    StoredVersion,
};

/// How often a write is tried again after another process wrote the same
/// document first ([`store_write`]).
const STALE_ATTEMPTS: usize = 5;

/// In-memory size of a loaded document per byte of its stored (compressed,
/// columnar) form, for the memory budget: automerge's op set with its
/// indexes takes 15–18 times the saved size of a realistic diary
/// (`cargo bench -p sync-core --bench document_memory`, docs/BENCHMARKS.md).
const MEMORY_PER_STORED_BYTE: usize = 16;
/// What an empty document takes in memory, for the budget.
const MEMORY_PER_DOCUMENT: usize = 16 * 1024;

/// How long copies and memory are kept (`[sync]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveLimits {
    /// Estimated memory all live copies may take together; past it the
    /// least recently used are evicted.
    pub memory_bytes: usize,
    /// A copy unused for this long is evicted.
    pub idle: Duration,
}

impl Default for LiveLimits {
    fn default() -> Self {
        LiveLimits {
            memory_bytes: 512 * 1024 * 1024,
            idle: Duration::from_secs(300),
        }
    }
}

/// A stored document's copy in memory, with what the server knows of its
/// stored form.
#[derive(Debug)]
pub struct LiveDocument {
    /// The document, equal to its stored form.
    pub doc: Automerge,
    /// Whom its actors belong to, as stored.
    pub known: Attribution,
    /// The cadre it belongs to (for ever), once stored.
    pub owner_user_id: Option<i64>,
    /// Which stored state `doc` reflects.
    pub version: StoredVersion,
    /// Ids of the chunks stored after the snapshot (what compaction folds).
    pub pending_chunks: Vec<i64>,
    /// Bytes of its stored form (snapshot and chunks).
    pub stored_bytes: usize,
    /// Bytes of the stored form's base: the snapshot, or with none yet the
    /// first chunk (a first upload is one whole document). What a
    /// compaction weighs the chunks since against
    /// ([`compactor::worth_compacting`](super::compactor::worth_compacting)).
    pub base_bytes: usize,
}

impl LiveDocument {
    /// A document not stored yet.
    pub fn empty() -> Self {
        LiveDocument {
            doc: Automerge::new(),
            known: Attribution::default(),
            owner_user_id: None,
            version: StoredVersion::default(),
            pending_chunks: Vec::new(),
            stored_bytes: 0,
            base_bytes: 0,
        }
    }

    /// Builds the copy of a stored document. CPU-bound.
    pub fn load(stored: &StoredDocument, known: Attribution) -> Result<Self, MergeError> {
        Ok(LiveDocument {
            doc: documents::load(stored.meta.id, Some(stored))?,
            known,
            owner_user_id: Some(stored.meta.owner_user_id),
            version: stored.version(),
            pending_chunks: stored.chunks.iter().map(|c| c.id).collect(),
            stored_bytes: documents::stored_size(Some(stored)),
            base_bytes: match (&stored.snapshot, stored.chunks.first()) {
                (Some(snapshot), _) => snapshot.len(),
                (None, Some(first)) => first.data.len(),
                (None, None) => 0,
            },
        })
    }

    /// Records that a chunk of `len` bytes, with id `chunk_id`, was stored
    /// from this copy's changes.
    pub fn appended(&mut self, chunk_id: i64, len: usize) {
        if self.version.snapshot_heads.is_none() && self.pending_chunks.is_empty() {
            self.base_bytes = len;
        }
        self.version.last_chunk_id = self.version.last_chunk_id.max(chunk_id);
        self.pending_chunks.push(chunk_id);
        self.stored_bytes += len;
    }

    /// Records that the stored form is now one snapshot of `len` bytes at
    /// `heads` (this copy's own compaction).
    pub fn compacted(&mut self, heads: String, len: usize) {
        self.version.snapshot_heads = Some(heads);
        self.pending_chunks.clear();
        self.stored_bytes = len;
        self.base_bytes = len;
    }

    /// Bytes stored since the base: what the next compaction folds in.
    pub fn unfolded_bytes(&self) -> usize {
        self.stored_bytes.saturating_sub(self.base_bytes)
    }

    /// Applies chunks stored by someone else after this copy's version.
    /// CPU-bound.
    fn apply_chunks(
        &mut self,
        document_id: DocumentId,
        chunks: &[crate::store::DocumentChunk],
    ) -> Result<(), MergeError> {
        for chunk in chunks {
            self.doc
                .load_incremental(&chunk.data)
                .map_err(|source| MergeError::Load {
                    document: document_id,
                    source: Box::new(source),
                })?;
            self.appended(chunk.id, chunk.data.len());
        }
        Ok(())
    }

    /// Brings this copy up to date with the store, under the document's
    /// lock: applies the chunks stored after its version, or, if the
    /// snapshot changed (another process compacted), builds the copy again
    /// from the whole stored form. When anything was stored, whom the
    /// actors belong to is read again, keeping this copy's own claims that
    /// are not stored (yet). `None` when the document is not stored; the
    /// flag says whether this copy was kept (`false`: built again).
    pub async fn catch_up(
        self,
        store: &dyn Store,
        document_id: DocumentId,
    ) -> Result<Option<(LiveDocument, bool)>, LiveError> {
        let since = store
            .load_document_since(&document_id, &self.version)
            .await?;
        self.apply_since(store, document_id, since).await
    }

    /// As [`catch_up`](Self::catch_up), reading with it the sync state
    /// `device` (a user id and a device id) kept of the document, in the
    /// same statement when nothing was stored since this copy.
    async fn catch_up_with_sync_state(
        self,
        store: &dyn Store,
        document_id: DocumentId,
        (user_id, device_id): (i64, &str),
    ) -> Result<(Option<(LiveDocument, bool)>, Option<Vec<u8>>), LiveError> {
        let (since, state) = store
            .load_document_since_with_sync_state(&document_id, &self.version, user_id, device_id)
            .await?;
        Ok((self.apply_since(store, document_id, since).await?, state))
    }

    /// Applies what the store holds since this copy's version (`None`: the
    /// document is not stored).
    async fn apply_since(
        mut self,
        store: &dyn Store,
        document_id: DocumentId,
        since: Option<DocumentSince>,
    ) -> Result<Option<(LiveDocument, bool)>, LiveError> {
        let since = match since {
            None => return Ok(None),
            Some(DocumentSince::Added { chunks, .. }) if chunks.is_empty() => {
                return Ok(Some((self, true)));
            }
            Some(since) => since,
        };
        let mut known = Attribution::from_rows(&store.document_actors(&document_id).await?);
        known.add_missing(&self.known);
        let caught_up = tokio::task::spawn_blocking(move || match since {
            DocumentSince::Added { chunks, .. } => {
                self.apply_chunks(document_id, &chunks)?;
                self.known = known;
                Ok::<_, MergeError>((self, true))
            }
            DocumentSince::Whole(stored) => Ok((LiveDocument::load(&stored, known)?, false)),
        })
        .await??;
        Ok(Some(caught_up))
    }

    /// What this copy is counted as in the memory budget.
    fn memory_estimate(&self) -> usize {
        MEMORY_PER_DOCUMENT + self.stored_bytes.saturating_mul(MEMORY_PER_STORED_BYTE)
    }
}

/// Why a document could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored bytes do not load.
    #[error(transparent)]
    Load(#[from] MergeError),
    /// The loading task panicked.
    #[error("loading the document failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What a document's lock guards: its live copy, if one is held.
#[derive(Debug, Default)]
pub struct Slot {
    live: Option<LiveDocument>,
}

/// One document's lock and bookkeeping.
#[derive(Debug, Default)]
struct Entry {
    slot: Arc<tokio::sync::Mutex<Slot>>,
    /// The memory estimate of the copy in the slot (0 when empty).
    held: AtomicUsize,
    /// When the copy was last used, in milliseconds since the set began.
    last_used: AtomicU64,
    /// The document's owner once a stored copy was held (0: not known).
    /// A document's owner never changes, so it stays right after the copy
    /// is evicted, for as long as the entry lasts.
    owner: AtomicI64,
}

/// Every document's lock and live copy in this process.
#[derive(Debug)]
pub struct LiveDocuments {
    entries: Mutex<HashMap<DocumentId, Arc<Entry>>>,
    /// Sum of the entries' `held`.
    held: AtomicUsize,
    limits: LiveLimits,
    began: Instant,
}

impl LiveDocuments {
    /// An empty set.
    pub fn new(limits: LiveLimits) -> Self {
        LiveDocuments {
            entries: Mutex::new(HashMap::new()),
            held: AtomicUsize::new(0),
            limits,
            began: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.began.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits until nobody else holds `document_id`'s lock; the document is
    /// the caller's until the guard drops.
    pub async fn lock(self: &Arc<Self>, document_id: DocumentId) -> DocumentGuard {
        let entry = {
            // A poisoned map only means another thread panicked while holding
            // it; the map itself is still consistent.
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            // Forget entries nobody holds or waits for and that keep no
            // copy, so the map stays as small as what is in use.
            entries.retain(|id, e| {
                *id == document_id || Arc::strong_count(e) > 1 || e.held.load(Ordering::Relaxed) > 0
            });
            entries.entry(document_id).or_default().clone()
        };
        let guard = entry.slot.clone().lock_owned().await;
        DocumentGuard {
            guard: Some(guard),
            entry,
            set: self.clone(),
        }
    }

    /// The owner of `document_id` if this process holds (or held, and
    /// still has an entry for) a stored copy of it: the access decision
    /// needs no read then. Documents never change owner.
    pub fn known_owner(&self, document_id: &DocumentId) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let owner = entries.get(document_id)?.owner.load(Ordering::Relaxed);
        (owner != 0).then_some(owner)
    }

    /// Estimated memory of the copies held now.
    pub fn held_bytes(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// How many copies are held now.
    pub fn held_documents(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .values()
            .filter(|e| e.held.load(Ordering::Relaxed) > 0)
            .count()
    }

    /// Evicts copies unused for longer than the idle limit, then the least
    /// recently used until the rest fit the memory budget. A copy whose
    /// lock is held right now is skipped (its holder is using it).
    pub fn evict(&self) {
        let now = self.now_ms();
        let idle_ms = u64::try_from(self.limits.idle.as_millis()).unwrap_or(u64::MAX);
        let mut dropped = Vec::new();
        {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            let mut held: Vec<(u64, DocumentId, Arc<Entry>)> = entries
                .iter()
                .filter(|(_, e)| e.held.load(Ordering::Relaxed) > 0)
                .map(|(id, e)| (e.last_used.load(Ordering::Relaxed), *id, e.clone()))
                .collect();
            held.sort_by_key(|(used, ..)| *used);
            for (used, id, entry) in held {
                let idle = now.saturating_sub(used) >= idle_ms;
                if !idle && self.held_bytes() <= self.limits.memory_bytes {
                    break;
                }
                let Ok(mut slot) = entry.slot.try_lock() else {
                    continue;
                };
                if let Some(live) = slot.live.take() {
                    dropped.push(live);
                }
                let was = entry.held.swap(0, Ordering::Relaxed);
                self.held.fetch_sub(was, Ordering::Relaxed);
                drop(slot);
                if Arc::strong_count(&entry) <= 2 {
                    entries.remove(&id);
                }
            }
        }
        if !dropped.is_empty() {
            crate::metrics::live_documents_evicted(dropped.len());
        }
        // Freed here, outside the map's lock.
        drop(dropped);
    }

    /// Evicts idle copies every `every` until `stop` completes.
    pub async fn evict_periodically(
        self: Arc<Self>,
        every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => self.evict(),
                () = &mut stop => return,
            }
        }
    }
}

/// A held document lock. Dropping it releases the lock and updates the
/// memory budget (evicting other copies if it is exceeded).
#[derive(Debug)]
pub struct DocumentGuard {
    guard: Option<OwnedMutexGuard<Slot>>,
    entry: Arc<Entry>,
    set: Arc<LiveDocuments>,
}

impl DocumentGuard {
    fn slot(&mut self) -> &mut Slot {
        self.guard.as_mut().expect("held until drop")
    }

    /// Takes the document's live copy out of its slot, brought up to date
    /// with the store (loaded whole if there was none, or if the snapshot
    /// changed underneath). `None` when the document is not stored.
    ///
    /// Put the copy back with [`keep`](Self::keep) once everything merged
    /// into it is stored; until then the slot is empty.
    pub async fn current(
        &mut self,
        store: &dyn Store,
        document_id: DocumentId,
    ) -> Result<Option<LiveDocument>, LiveError> {
        Ok(self.current_reading(store, document_id, None).await?.0)
    }

    /// As [`current`](Self::current), with the sync state `device` (a user
    /// id and a device id) kept of the document: read in the same statement
    /// as the stored version when this process holds an up-to-date copy.
    pub async fn current_with_sync_state(
        &mut self,
        store: &dyn Store,
        document_id: DocumentId,
        device: (i64, &str),
    ) -> Result<(Option<LiveDocument>, Option<Vec<u8>>), LiveError> {
        self.current_reading(store, document_id, Some(device)).await
    }

    async fn current_reading(
        &mut self,
        store: &dyn Store,
        document_id: DocumentId,
        device: Option<(i64, &str)>,
    ) -> Result<(Option<LiveDocument>, Option<Vec<u8>>), LiveError> {
        let started = Instant::now();
        let held = self.slot().live.take();
        let (found, state) = match (held, device) {
            (Some(live), None) => (live.catch_up(store, document_id).await?, None),
            (Some(live), Some(device)) => {
                live.catch_up_with_sync_state(store, document_id, device)
                    .await?
            }
            (None, _) => {
                let loaded = match store.load_document(&document_id).await? {
                    None => None,
                    Some(stored) => Some((load(store, stored).await?, false)),
                };
                let state = match device {
                    Some((user_id, device_id)) if loaded.is_some() => {
                        store
                            .load_sync_state(&document_id, user_id, device_id)
                            .await?
                    }
                    _ => None,
                };
                (loaded, state)
            }
        };
        Ok(match found {
            Some((live, reused)) => {
                crate::metrics::live_document_use(reused, started.elapsed());
                (Some(live), state)
            }
            None => (None, None),
        })
    }

    /// Puts `live` back as the document's copy: everything merged into it
    /// is stored.
    pub fn keep(&mut self, live: LiveDocument) {
        self.slot().live = Some(live);
    }

    /// Drops the copy, if one is in the slot.
    pub fn forget(&mut self) {
        self.slot().live = None;
    }
}

/// Stores `write`, made on `live` (whose document already holds the
/// write's changes; `heads_before` are its heads without them), and records
/// it in `live`.
///
/// The write is checked against the stored version `live` was read at. If
/// another server process wrote the document since ([`StoreError::Stale`]),
/// `live` takes in what it stored, the ledger rows of everything since
/// `heads_before` are projected again from the merged document, and the
/// write is tried again: the chunk stays the same, only the rows (which
/// must reflect both writes) change. On an error `live` is dropped; the
/// slot stays empty, and the next use loads the document from the store.
pub async fn store_write(
    store: &dyn Store,
    mut live: LiveDocument,
    mut write: DocumentWrite,
    heads_before: Vec<ChangeHash>,
) -> Result<(LiveDocument, AppendOutcome), LiveError> {
    let document_id = write.document_id;
    let mut attempt = 1;
    loop {
        write.based_on = Some(live.version.clone());
        // The copy holds the write's changes (and, after a stale attempt,
        // the other process's too): its heads are what the row will hold.
        write.heads = Some(live.doc.get_heads());
        let len = write.data.len();
        let created_for = write.create.as_ref().map(|new| new.owner_user_id);
        // The store hands a stale write back, so it is moved, not copied.
        match store.append_changes(write).await {
            Ok(appended) => {
                live.appended(appended.chunk_id, len);
                if let Some(owner) = created_for {
                    live.owner_user_id = Some(owner);
                }
                return Ok((live, appended));
            }
            Err(StoreError::Stale(StaleWrite(refused))) if attempt < STALE_ATTEMPTS => {
                write = *refused;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
        crate::metrics::stale_write();
        let (caught_up, kept) = live
            .catch_up(store, document_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let heads_before = heads_before.clone();
        (live, write) = tokio::task::spawn_blocking(move || {
            let mut live = caught_up;
            if !kept {
                // Compacted meanwhile: built again from the stored form,
                // which lacks this write's changes.
                live.doc
                    .load_incremental(&write.data)
                    .map_err(|source| MergeError::Load {
                        document: document_id,
                        source: Box::new(source),
                    })?;
            }
            write.ledger = Some(LedgerProjection::after_changes(
                &live.doc,
                &live.known,
                &heads_before,
                None,
            ));
            Ok::<_, MergeError>((live, write))
        })
        .await??;
    }
}

/// Builds a copy from the whole stored form. A document stored before its
/// row kept its heads gets them here, for the listing in a sync's
/// handshake (until then its devices sync it as usual).
async fn load(store: &dyn Store, stored: StoredDocument) -> Result<LiveDocument, LiveError> {
    let known = Attribution::from_rows(&store.document_actors(&stored.meta.id).await?);
    let (document_id, version) = (stored.meta.id, stored.version());
    let heads_unknown = stored.meta.heads.is_none();
    let live = tokio::task::spawn_blocking(move || LiveDocument::load(&stored, known)).await??;
    if heads_unknown
        && let Err(e) = store
            .fill_document_heads(&document_id, &live.doc.get_heads(), &version)
            .await
    {
        // Only the listing's shortcut is lost: the copy is good.
        tracing::warn!(document_id = %document_id, error = %e, "could not store a document's heads");
    }
    Ok(live)
}

impl Drop for DocumentGuard {
    fn drop(&mut self) {
        let Some(guard) = self.guard.take() else {
            return;
        };
        let now = guard.live.as_ref().map_or(0, LiveDocument::memory_estimate);
        if let Some(owner) = guard.live.as_ref().and_then(|live| live.owner_user_id) {
            self.entry.owner.store(owner, Ordering::Relaxed);
        }
        let was = self.entry.held.swap(now, Ordering::Relaxed);
        if now >= was {
            self.set.held.fetch_add(now - was, Ordering::Relaxed);
        } else {
            self.set.held.fetch_sub(was - now, Ordering::Relaxed);
        }
        self.entry
            .last_used
            .store(self.set.now_ms(), Ordering::Relaxed);
        drop(guard);
        if self.set.held_bytes() > self.set.limits.memory_bytes {
            self.set.evict();
        }
    }
}
