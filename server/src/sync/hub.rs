//! [`SyncHub`]: per-document merge locks with each document's live copy
//! ([`live`](super::live)), the in-process change feed, and
//! the count of open connections per user and per address, and each user's
//! budget of received bytes being merged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sync_core::DocumentId;
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, broadcast};

use super::compactor::CompactionQueue;
use super::live::{DocumentGuard, LiveDocuments, LiveLimits};
use crate::store::OtherWrite;
#[cfg(doc)]
use crate::store::Store;

/// How many change notices a slow connection may fall behind before it
/// resynchronises all its documents (see `RecvError::Lagged`).
const CHANGE_FEED_CAPACITY: usize = 1024;
/// Ended logins kept for connections that have not looked yet; one that
/// falls further behind misses some, and ends when its access token does.
const ENDED_SESSIONS_CAPACITY: usize = 256;

/// The origin of changes the server itself wrote (a supervisor's action
/// through the API): no connection has it, so every connection syncing the
/// document offers them to its peer.
pub const SERVER_ORIGIN: u64 = u64::MAX;

/// A document was stored with new changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentChanged {
    /// The document; `None` for any (another process's notices were
    /// missed): every connection offers all it syncs.
    pub document_id: Option<DocumentId>,
    /// The connection whose changes these were (it answers its own peer
    /// itself), from [`SyncHub::next_connection_id`].
    pub origin: u64,
}

/// Shared by every sync connection of this process.
///
/// Merges of one document are serialised here, in process: two connections
/// never load-merge-store the same document at once, so neither overwrites
/// the other's view. Across processes on one PostgreSQL the database
/// serialises them: a write made on a copy that missed another process's
/// write is refused and made again on the merged copy
/// ([`store_write`](super::live::store_write)), and the other process's
/// writes reach this one's connections through [`SyncHub::other_write`].
#[derive(Debug)]
pub struct SyncHub {
    live: Arc<LiveDocuments>,
    /// Documents waiting for the background compaction (`sync::compactor`).
    compactions: CompactionQueue,
    changes: broadcast::Sender<DocumentChanged>,
    connections: AtomicU64,
    /// Open connections per user and per address.
    open: Mutex<HashMap<Holder, usize>>,
    /// Logins (refresh-token families) just revoked: their connections end.
    ended_sessions: broadcast::Sender<String>,
    /// Per user, the lock that serialises checking their per-user limits
    /// and storing a write (entries dropped as in `locks`).
    owner_locks: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// Per user, a semaphore whose permits are bytes of received frames
    /// being decoded and merged; an entry lives while a permit does.
    buffers: Mutex<HashMap<i64, Arc<Semaphore>>>,
}

/// Whose open connections are counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    User(i64),
    Address(String),
}

/// Why a new connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Crowded {
    /// The user has as many connections open as allowed.
    #[error("too many sync connections for this user")]
    User,
    /// The address has as many connections open as allowed.
    #[error("too many sync connections from this address")]
    Address,
}

/// Why a received frame got no room in its user's budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "this user's sync messages being merged would take more than {budget} bytes \
     (this one is {size}); send fewer at once"
)]
pub struct OverBudget {
    /// The frame's size.
    pub size: usize,
    /// The user's budget.
    pub budget: usize,
}

/// An admitted connection's place in the counts, given back on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    hub: Arc<SyncHub>,
    holders: Vec<Holder>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.hub.open.lock().unwrap_or_else(|e| e.into_inner());
        for holder in &self.holders {
            if let Some(n) = open.get_mut(holder) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(holder);
                }
            }
        }
    }
}

impl Default for SyncHub {
    fn default() -> Self {
        Self::new()
    }
}

impl SyncHub {
    /// An empty hub with the default limits on live documents.
    pub fn new() -> Self {
        Self::with_live_limits(LiveLimits::default())
    }

    /// An empty hub keeping live documents within `limits`.
    pub fn with_live_limits(limits: LiveLimits) -> Self {
        let (changes, _) = broadcast::channel(CHANGE_FEED_CAPACITY);
        SyncHub {
            live: Arc::new(LiveDocuments::new(limits)),
            compactions: CompactionQueue::default(),
            changes,
            connections: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            ended_sessions: broadcast::channel(ENDED_SESSIONS_CAPACITY).0,
            buffers: Mutex::new(HashMap::new()),
            owner_locks: Mutex::new(HashMap::new()),
        }
    }

    /// Waits until no other connection checks `user_id`'s per-user limits
    /// and stores a write of theirs, so two writes to different documents
    /// cannot both pass a limit that only one fits under. Take it after the
    /// document's lock (never the other way round).
    pub async fn lock_owner(&self, user_id: i64) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.owner_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.retain(|id, l| *id == user_id || Arc::strong_count(l) > 1);
            locks.entry(user_id).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Takes `size` bytes of `user_id`'s budget of `budget` bytes (the same
    /// for every call) for a received frame, waiting up to `wait` for
    /// other frames of theirs to finish; the bytes are given back when the
    /// permit drops. Other users' frames never wait for these.
    pub async fn buffer(
        &self,
        user_id: i64,
        size: usize,
        budget: usize,
        wait: Duration,
    ) -> Result<OwnedSemaphorePermit, OverBudget> {
        let over = OverBudget { size, budget };
        // The configuration keeps budgets within `u32` (the semaphore's
        // unit); a frame larger than the whole budget can never fit.
        let permits = u32::try_from(size).map_err(|_| over)?;
        if size > budget {
            return Err(over);
        }
        let semaphore = {
            // A poisoned map is still consistent (see `lock`).
            let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
            // A permit holds its semaphore: forget those nobody holds.
            buffers.retain(|id, s| *id == user_id || Arc::strong_count(s) > 1);
            buffers
                .entry(user_id)
                .or_insert_with(|| Arc::new(Semaphore::new(budget)))
                .clone()
        };
        match tokio::time::timeout(wait, semaphore.acquire_many_owned(permits)).await {
            Ok(Ok(permit)) => Ok(permit),
            // Never closed; a timeout is the same answer.
            Ok(Err(_)) | Err(_) => Err(over),
        }
    }

    /// Admits one more connection of `user_id` from `address` unless either
    /// already has its maximum open; the slot counts until it is dropped.
    pub fn admit(
        self: &Arc<Self>,
        user_id: i64,
        address: Option<&str>,
        (per_user, per_address): (usize, usize),
    ) -> Result<ConnectionSlot, Crowded> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let user = Holder::User(user_id);
        if open.get(&user).copied().unwrap_or(0) >= per_user {
            return Err(Crowded::User);
        }
        let address = address.map(|a| Holder::Address(a.to_owned()));
        if let Some(a) = &address
            && open.get(a).copied().unwrap_or(0) >= per_address
        {
            return Err(Crowded::Address);
        }
        let holders: Vec<Holder> = std::iter::once(user).chain(address).collect();
        for holder in &holders {
            *open.entry(holder.clone()).or_default() += 1;
        }
        Ok(ConnectionSlot {
            hub: self.clone(),
            holders,
        })
    }

    /// A process-unique id for a new connection.
    pub fn next_connection_id(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits until no other connection or action uses `document_id`; the
    /// document, and its live copy, are this caller's until the guard drops.
    pub async fn lock(&self, document_id: DocumentId) -> DocumentGuard {
        self.live.lock(document_id).await
    }

    /// The live documents of this process.
    pub fn live(&self) -> &Arc<LiveDocuments> {
        &self.live
    }

    /// Documents waiting for compaction.
    pub fn compactions(&self) -> &CompactionQueue {
        &self.compactions
    }

    /// Tells every connection that `document_id` has new changes.
    pub fn notify(&self, document_id: DocumentId, origin: u64) {
        // No receivers is fine: nobody else syncs anything.
        let _ = self.changes.send(DocumentChanged {
            document_id: Some(document_id),
            origin,
        });
    }

    /// Tells this process's connections about a write by another process
    /// on the same database (see [`Store::other_writes`]): they bring the
    /// document up to date from the store and offer what is new.
    pub fn other_write(&self, write: OtherWrite) {
        let document_id = match write {
            OtherWrite::Document(id) => Some(id),
            OtherWrite::Missed => None,
        };
        // Every connection of this process offers it.
        let _ = self.changes.send(DocumentChanged {
            document_id,
            origin: SERVER_ORIGIN,
        });
    }

    /// The change feed, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DocumentChanged> {
        self.changes.subscribe()
    }

    /// Ends the sync connections opened under the login `session` (logout,
    /// a reused refresh token, a disabled account). Connections of this
    /// process close at once; another process's close when their access
    /// token expires.
    pub fn end_session(&self, session: &str) {
        // No receivers is fine: no connection is open.
        let _ = self.ended_sessions.send(session.to_owned());
    }

    /// Logins ended from now on.
    pub fn ended_sessions(&self) -> broadcast::Receiver<String> {
        self.ended_sessions.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_bounded_per_user_and_address() {
        let hub = Arc::new(SyncHub::new());
        let limits = (2, 3);
        let a = hub.admit(1, Some("10.0.0.1"), limits).expect("first");
        let b = hub.admit(1, Some("10.0.0.1"), limits).expect("second");
        assert_eq!(
            hub.admit(1, Some("10.0.0.2"), limits).err(),
            Some(Crowded::User)
        );
        let c = hub
            .admit(2, Some("10.0.0.1"), limits)
            .expect("another user");
        assert_eq!(
            hub.admit(3, Some("10.0.0.1"), limits).err(),
            Some(Crowded::Address)
        );
        drop(a);
        let _d = hub
            .admit(1, Some("10.0.0.3"), limits)
            .expect("a slot was freed");
        drop((b, c));
        assert_eq!(hub.open.lock().expect("lock").len(), 2);
    }

    #[tokio::test]
    async fn received_bytes_are_bounded_per_user() {
        let hub = SyncHub::new();
        let wait = Duration::from_secs(30);
        let held = hub.buffer(1, 600, 1000, wait).await.expect("fits");
        // The user's next frame does not fit beside the first: it waits,
        // then is refused.
        assert_eq!(
            hub.buffer(1, 500, 1000, Duration::from_millis(20))
                .await
                .err(),
            Some(OverBudget {
                size: 500,
                budget: 1000
            })
        );
        // One larger than the whole budget is refused at once.
        assert!(hub.buffer(2, 1001, 1000, wait).await.is_err());
        // Another user has their own budget.
        let other = hub.buffer(2, 1000, 1000, wait).await.expect("another user");
        // A waiting frame gets its bytes as soon as the first is done.
        let waiter = tokio::spawn({
            let hub = Arc::new(hub);
            async move { hub.buffer(1, 500, 1000, wait).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter
            .await
            .expect("task")
            .expect("room once the first frame is done");
        drop(other);
    }

    #[tokio::test]
    async fn one_merge_per_document_at_a_time() {
        let hub = Arc::new(SyncHub::new());
        let a = DocumentId::from_bytes([1; 16]);
        let b = DocumentId::from_bytes([2; 16]);
        let held = hub.lock(a).await;
        // Another document is not blocked.
        let _other = hub.lock(b).await;
        let waiter = tokio::spawn({
            let hub = hub.clone();
            async move {
                let _g = hub.lock(a).await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(held);
        waiter
            .await
            .expect("second lock after the first is released");
    }
}
