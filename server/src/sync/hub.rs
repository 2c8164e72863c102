//! [`SyncHub`]: per-document merge locks, the in-process change feed, and
//! the count of open connections per user and per address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sync_core::DocumentId;
use tokio::sync::{OwnedMutexGuard, broadcast};

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
    /// The document.
    pub document_id: DocumentId,
    /// The connection whose changes these were (it answers its own peer
    /// itself), from [`SyncHub::next_connection_id`].
    pub origin: u64,
}

/// Shared by every sync connection of this process.
///
/// Merges of one document are serialised here, in process: two connections
/// never load-merge-store the same document at once, so neither overwrites
/// the other's view. Several processes on one PostgreSQL would also need a
/// database lock and `LISTEN/NOTIFY`; a single process does not.
#[derive(Debug)]
pub struct SyncHub {
    locks: Mutex<HashMap<DocumentId, Arc<tokio::sync::Mutex<()>>>>,
    changes: broadcast::Sender<DocumentChanged>,
    connections: AtomicU64,
    /// Open connections per user and per address.
    open: Mutex<HashMap<Holder, usize>>,
    /// Logins (refresh-token families) just revoked: their connections end.
    ended_sessions: broadcast::Sender<String>,
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
    /// An empty hub.
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(CHANGE_FEED_CAPACITY);
        SyncHub {
            locks: Mutex::new(HashMap::new()),
            changes,
            connections: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            ended_sessions: broadcast::channel(ENDED_SESSIONS_CAPACITY).0,
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

    /// Waits until no other connection merges `document_id`; the document is
    /// this caller's until the guard drops.
    pub async fn lock(&self, document_id: DocumentId) -> OwnedMutexGuard<()> {
        let lock = {
            // A poisoned map only means another thread panicked while holding
            // it; the map itself is still consistent.
            let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
            // Forget locks nobody holds or waits for, so the map stays as
            // small as the set of documents being merged right now.
            locks.retain(|id, l| *id == document_id || Arc::strong_count(l) > 1);
            locks.entry(document_id).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Tells every connection that `document_id` has new changes.
    pub fn notify(&self, document_id: DocumentId, origin: u64) {
        // No receivers is fine: nobody else syncs anything.
        let _ = self.changes.send(DocumentChanged {
            document_id,
            origin,
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
