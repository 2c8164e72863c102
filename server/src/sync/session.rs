//! One sync connection's session: what the server does with each message
//! its peer sends, between the socket loop (`routes/v1/sync.rs`) reading a
//! frame and writing the answers.
//!
//! sync-core's sans-IO [`ServerConnection`] runs the protocol and decides
//! what to send; the session carries out what it asks: decide access from
//! the database ([`decide_access`]), merge under the document's lock and a
//! merge permit ([`live`]), store, and only then answer ("acknowledged
//! means durable"). Nothing here writes to the socket: each call returns
//! the messages to send with every lock, permit and budget of received
//! bytes released, so none is ever held while the socket is written.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sync_core::automerge;
use sync_core::protocol::{
    Access, Granted, Message, ProtocolError, ServerConnection, ServerStep, SyncReply, SyncStep,
};
use sync_core::{DocumentId, DocumentKind, derived_id};
use tokio::sync::OwnedSemaphorePermit;

use super::documents::MergeOutcome;
use super::live::DocumentGuard;
use super::payload::PayloadLimits;
use super::{LiveDocument, LiveError, MergeError, compactor, decide_access, documents, live};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::ledger::{LedgerProjection, Writer};
use crate::metrics::{self, Direction};
use crate::store::{
    ActorClaim, DocumentWrite, NewDocument, OverLimit, OwnerLimits, StoreError, StoredKind,
    SyncRecords, SyncStateWrite,
};

/// How long a sync state saved on a connection counts as saved: the same
/// state is saved again after this (when the connection ends, say), since
/// its time is the device's last sync on the devices page.
const SAVED_FRESH: Duration = Duration::from_secs(60);

/// The peer id the server announces. It is in every message both ways
/// (the sender of each message down, the target of each message up), so it
/// is short.
pub const SERVER_PEER_ID: &str = "server";

/// How long a received frame may wait for room in its user's budget of
/// bytes being merged (other frames of theirs finishing) before the
/// connection is closed: a phone sends one document at a time, so only a
/// runaway client, or many devices at once, waits this long.
const BUFFER_WAIT: Duration = Duration::from_secs(10);

/// Why a session ends early (the socket loop adds its own: a failed or
/// timed-out socket).
#[derive(Debug)]
pub enum SessionError {
    /// The client broke the protocol: tell it why, then close.
    Protocol(ProtocolError),
    /// Our side failed: log the detail, tell the client only that it failed.
    Internal(String),
    /// The user's session ended (token expired, user disabled, logged
    /// out): tell the client why, then close.
    Ended(&'static str),
}

impl From<ProtocolError> for SessionError {
    fn from(e: ProtocolError) -> Self {
        SessionError::Protocol(e)
    }
}

impl From<StoreError> for SessionError {
    fn from(e: StoreError) -> Self {
        SessionError::Internal(crate::error::error_chain(&e))
    }
}

impl From<LiveError> for SessionError {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::Store(e) => e.into(),
            other => SessionError::Internal(crate::error::error_chain(&other)),
        }
    }
}

impl From<tokio::task::JoinError> for SessionError {
    fn from(e: tokio::task::JoinError) -> Self {
        SessionError::Internal(format!("merge task failed: {e}"))
    }
}

/// What a received frame asks of the socket loop.
#[derive(Debug)]
pub enum Received {
    /// Send these messages, in order. `stored` names the document the frame
    /// stored changes of: once the messages are sent, keep the device's
    /// sync state of it ([`Session::save_sync_state`]).
    Send {
        messages: Vec<Message>,
        stored: Option<DocumentId>,
    },
    /// The peer said goodbye: close the connection.
    Close,
}

/// What a merged sync message is answered with, once its locks are released.
enum Answer {
    /// The reply, if any; `wrote` when the message stored changes (the
    /// device's sync state is then saved after the reply).
    Reply {
        message: Option<Message>,
        wrote: bool,
    },
    /// The document is not this user's: `doc-unavailable`, and the
    /// connection forgets it.
    Unavailable,
}

/// The server's side of one authenticated sync connection.
#[derive(Debug)]
pub struct Session {
    /// The protocol state; `None` only while a blocking task holds it.
    conn: Option<ServerConnection>,
    /// The sync state saved for the device before this connection, per
    /// document whose state was looked up on it (once each, before its
    /// first merge); `None` when there was none.
    restored: HashMap<DocumentId, Option<Vec<u8>>>,
    /// The sync state this connection last saved for the device, per
    /// document (with a write, or on its own), and when: the same state is
    /// not saved again within [`SAVED_FRESH`].
    saved: HashMap<DocumentId, (Vec<u8>, Instant)>,
    state: AppState,
    user: AuthUser,
    /// The client's address, for the audit log.
    remote_addr: Option<String>,
    /// This connection's id in the hub's change feed.
    id: u64,
    /// Largest accepted frame.
    limit: usize,
}

impl Session {
    /// A session for `user`'s new connection `id` (its id in the hub's change
    /// feed), accepting frames of up to `limit` bytes.
    pub fn new(
        state: AppState,
        user: AuthUser,
        remote_addr: Option<String>,
        id: u64,
        limit: usize,
    ) -> Self {
        let conn = ServerConnection::new(SERVER_PEER_ID)
            .with_document_limit(state.config.max_documents_per_connection);
        Session {
            conn: Some(conn),
            restored: HashMap::new(),
            saved: HashMap::new(),
            state,
            user,
            remote_addr,
            id,
            limit,
        }
    }

    /// The server's shared state (its configuration, the sync hub,
    /// shutdown), which the socket loop reads too.
    pub fn app(&self) -> &AppState {
        &self.state
    }

    /// The user the connection acts as.
    pub fn user(&self) -> &AuthUser {
        &self.user
    }

    /// This connection's id in the hub's change feed.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Ends the session if its user has been disabled (or removed) since
    /// the upgrade.
    pub async fn check_user(&self) -> Result<(), SessionError> {
        match self.state.store.get_user(self.user.user_id).await? {
            Some(user) if !user.disabled => Ok(()),
            _ => Err(SessionError::Ended("user disabled")),
        }
    }

    /// The documents this connection syncs.
    pub fn documents(&self) -> Vec<DocumentId> {
        self.conn
            .as_ref()
            .map(|c| c.documents().map(|(d, _)| *d).collect())
            .unwrap_or_default()
    }

    fn conn(&mut self) -> Result<&mut ServerConnection, SessionError> {
        self.conn.as_mut().ok_or_else(|| {
            SessionError::Internal("connection state lost to a failed task".to_owned())
        })
    }

    fn take_conn(&mut self) -> Result<ServerConnection, SessionError> {
        self.conn.take().ok_or_else(|| {
            SessionError::Internal("connection state lost to a failed task".to_owned())
        })
    }

    /// Handles one binary frame from the peer.
    pub async fn receive(&mut self, bytes: &[u8]) -> Result<Received, SessionError> {
        // Held until the frame is merged: what the decoded message and the
        // merge hold grows with it. Released before the answer is written,
        // so a device slow to read it cannot hold up its user's others.
        let _buffered = self
            .state
            .sync_hub
            .buffer(
                self.user.user_id,
                bytes.len(),
                self.state.config.max_buffered_bytes_per_user,
                BUFFER_WAIT,
            )
            .await
            .map_err(|e| {
                metrics::sync_payload_refused("buffered_bytes");
                SessionError::Protocol(ProtocolError::Refused(e.to_string()))
            })?;
        let message = Message::decode_with_limit(bytes, self.limit)?;
        metrics::sync_message(Direction::In);
        let SyncStep {
            document_id,
            access,
            message,
            is_request,
        } = match self.conn()?.handle(message)? {
            ServerStep::Reply(messages) => {
                return Ok(Received::Send {
                    messages,
                    stored: None,
                });
            }
            ServerStep::Close => return Ok(Received::Close),
            // The join asked for the user's documents: the protocol asks,
            // the database answers with the heads each last write stored.
            ServerStep::List => {
                let listed = self
                    .state
                    .store
                    .list_document_heads(self.user.user_id)
                    .await?;
                return Ok(Received::Send {
                    messages: vec![self.conn()?.list(listed)?],
                    stored: None,
                });
            }
            ServerStep::Sync(step) => step,
            // A document this connection has not decided on: the protocol
            // asks, the database answers.
            ServerStep::Decide { document_id } => {
                let access = decide_access(
                    self.state.store.as_ref(),
                    self.state.sync_hub.live(),
                    &self.user,
                    &document_id,
                )
                .await?;
                match self.conn()?.grant(&document_id, access)? {
                    Granted::Sync(step) => step,
                    Granted::Unavailable(message) => {
                        return Ok(Received::Send {
                            messages: vec![message],
                            stored: None,
                        });
                    }
                }
            }
        };
        Ok(
            match self
                .merge_and_store(document_id, access, *message, is_request)
                .await?
            {
                Answer::Reply { message, wrote } => Received::Send {
                    messages: message.into_iter().collect(),
                    stored: wrote.then_some(document_id),
                },
                // Forgotten, so a later message about it starts afresh.
                Answer::Unavailable => Received::Send {
                    messages: vec![self.conn()?.forget(&document_id)],
                    stored: None,
                },
            },
        )
    }

    /// Merges a sync message into the stored document, stores what it added
    /// and makes the answer, which the caller sends: the locks and the
    /// permit taken here are all released when this returns, so none is
    /// ever held while the socket is written.
    async fn merge_and_store(
        &mut self,
        document_id: DocumentId,
        access: Access,
        message: automerge::sync::Message,
        is_request: bool,
    ) -> Result<Answer, SessionError> {
        let max_document_bytes = self.state.config.max_document_bytes;
        let size = documents::changes_size(&message);
        if size > max_document_bytes {
            return Err(SessionError::Protocol(ProtocolError::TooLarge {
                size,
                limit: max_document_bytes,
            }));
        }
        let started = Instant::now();
        // The document as stored, from its copy in memory. It goes back into
        // its slot only once everything merged into it is stored: every
        // early return below leaves the slot empty, and the next sync loads
        // the document from the store again.
        // The device's saved sync state is read with the document, once per
        // connection (before the document's first merge). Devices without
        // an id keep none.
        let restore = !self.user.device_id.is_empty() && !self.restored.contains_key(&document_id);
        let device = restore.then_some((self.user.user_id, self.user.device_id.as_str()));
        let (mut guard, _permit, live, saved) = take_live(&self.state, document_id, device).await?;
        let stored_existed = live.is_some();
        if stored_existed && restore {
            self.restore_sync_state(document_id, saved)?;
        }
        let live = live.unwrap_or_else(LiveDocument::empty);
        let (live, merged) = self
            .merge(document_id, live, message, access, is_request)
            .await?;
        let (mut merged, reply) = match merged {
            Ok(merged) => merged,
            Err(e) => return refusal(document_id, e),
        };
        // What the message adds to the document, if anything.
        let chunk = merged.outcome.chunk.take();
        let wrote = chunk.is_some();
        if !stored_existed
            && wrote
            && let Some(new) = &merged.outcome.create
            && !self.named_by_its_root(document_id, new)
        {
            tracing::warn!(
                document_id = %document_id,
                "refused a new document whose kind and year do not give its id"
            );
            return Ok(Answer::Unavailable);
        }
        let live = match chunk {
            Some(chunk) => match self.store(document_id, access, live, merged, chunk).await? {
                Some(stored) => stored,
                None => return Ok(Answer::Unavailable),
            },
            None => live,
        };
        metrics::merge_seconds(started.elapsed());
        if stored_existed || wrote {
            guard.keep(live);
        }
        if reply.restarted {
            metrics::sync_restarted();
            tracing::warn!(
                document_id = %document_id,
                rounds = sync_core::protocol::MAX_STALLED_ROUNDS,
                "sync made no progress; restarted it with the peer"
            );
        }
        // Made with the merge, sent by the caller only now that everything
        // the message added is stored and every lock is released.
        Ok(Answer::Reply {
            message: reply.message,
            wrote,
        })
    }

    /// Merges `message` into `live` off the async threads
    /// ([`documents::merge`]: the payload checks, the merge, the owner and
    /// actor checks), claims the message's new actors for this device,
    /// projects the ledger rows of the records its changes wrote into and
    /// makes the reply, all in one blocking task.
    ///
    /// The reply is made before what the message added is stored, and sent
    /// only after: what it says does not depend on the write, and every
    /// way the write can fail either closes the connection or makes it
    /// forget the document (and with it the sync state the reply moved on).
    async fn merge(
        &mut self,
        document_id: DocumentId,
        mut live: LiveDocument,
        message: automerge::sync::Message,
        access: Access,
        is_request: bool,
    ) -> Result<(LiveDocument, Result<(Merged, SyncReply), MergeError>), SessionError> {
        let limits = PayloadLimits::new(
            self.state.config.max_document_bytes,
            self.state.config.max_nesting_depth,
        );
        let mut conn = self.take_conn()?;
        let writer = Writer {
            username: self.user.username.clone(),
            user_id: self.user.user_id,
            device_id: self.user.device_id.clone(),
            via_server: false,
        };
        let (conn, live, merged) = tokio::task::spawn_blocking(move || {
            let merged = documents::merge(
                &mut conn,
                document_id,
                &mut live.doc,
                live.stored_bytes,
                message,
                (&writer.username, writer.user_id),
                &live.known,
                access,
                &limits,
            )
            .map(|outcome| {
                // New actors are this device's from now on.
                let mut claims = Vec::new();
                for actor in &outcome.actors {
                    if live.known.writer(actor).is_none() {
                        claims.push(ActorClaim {
                            actor: actor.to_hex_string(),
                            user_id: writer.user_id,
                            device_id: writer.device_id.clone(),
                            via_server: false,
                        });
                        live.known.insert(actor.clone(), writer.clone());
                    }
                }
                // The rows of the records the message's changes wrote into
                // are projected here, off the async threads; they commit
                // together with the chunk. Changes that only wait for a
                // dependency leave the document, and so its rows, as they
                // were.
                let ledger = (outcome.changes_added > 0).then(|| {
                    LedgerProjection::after_changes(
                        &live.doc,
                        &live.known,
                        &outcome.heads_before,
                        outcome.added.as_deref(),
                    )
                });
                Merged {
                    outcome,
                    ledger,
                    claims,
                }
            })
            .map(|merged| {
                let reply = conn.reply(&document_id, &live.doc, is_request);
                (merged, reply)
            });
            (conn, live, merged)
        })
        .await?;
        self.conn = Some(conn);
        Ok((live, merged))
    }

    /// Stores `chunk`, what `merged` added to `live`: the chunk, its ledger
    /// rows, the claims, the audit row and the device's sync state are
    /// written in one transaction, which first checks the per-user limits.
    /// Returns the copy as stored, or `None` when the document turned out
    /// not to be this user's.
    async fn store(
        &mut self,
        document_id: DocumentId,
        access: Access,
        live: LiveDocument,
        merged: Merged,
        chunk: Vec<u8>,
    ) -> Result<Option<LiveDocument>, SessionError> {
        let Merged {
            outcome,
            ledger,
            claims,
        } = merged;
        // The per-user limits are checked by the store, in the write's
        // transaction. One user's writes are made one at a time in this
        // process, so none is checked against a usage that another one is
        // about to change.
        let (_owner, owner_limits) = if access == Access::ReadWrite {
            let config = &self.state.config;
            let limits = OwnerLimits {
                documents: config.max_documents_per_user as u64,
                bytes: config.max_stored_bytes_per_user,
            };
            let owner = self.state.sync_hub.lock_owner(self.user.user_id).await;
            (Some(owner), Some(limits))
        } else {
            (None, None)
        };
        // The state as the write's changes left it: what the reply makes
        // does not change what is kept of it (the heads both sides share),
        // so it is saved with the write, in its commit.
        let at = Utc::now();
        let sync_state = self.sync_state_write(document_id, at);
        let saved = sync_state.as_ref().map(|write| write.state.clone());
        let write = DocumentWrite {
            // Taken from the live copy by `store_write`.
            heads: None,
            document_id,
            create: outcome.create,
            data: chunk,
            at,
            ledger,
            actors: claims,
            based_on: None,
            sync: Some(SyncRecords {
                user_id: self.user.user_id,
                device_id: self.user.device_id.clone(),
                remote_addr: self.remote_addr.clone(),
                changes_added: outcome.changes_added,
                changes_waiting: outcome.changes_waiting,
                sync_state,
                owner_limits,
            }),
        };
        let store = self.state.store.as_ref();
        let (live, appended) =
            match live::store_write(store, live, write, outcome.heads_before).await {
                Ok(stored) => stored,
                // Another user created this id first (or it vanished): the
                // document is not this user's.
                Err(LiveError::Store(StoreError::Conflict(reason))) => {
                    tracing::warn!(document_id = %document_id, reason, "refused a document");
                    return Ok(None);
                }
                Err(LiveError::Store(StoreError::NotFound)) => return Ok(None),
                Err(LiveError::Store(StoreError::OverLimit(over))) => {
                    return Err(over_limit(document_id, over));
                }
                Err(e) => return Err(e.into()),
            };
        if let Some(state) = saved {
            self.saved.insert(document_id, (state, Instant::now()));
        }
        if outcome.changes_waiting > 0 {
            metrics::sync_changes_waiting(outcome.changes_waiting);
            tracing::info!(
                document_id = %document_id,
                waiting = outcome.changes_waiting,
                "stored changes that wait for their dependencies"
            );
        }
        if outcome.changes_added > 0 {
            self.state.sync_hub.notify(document_id, self.id);
        }
        if compactor::worth_compacting(appended.pending_chunks(), &live) {
            self.state.sync_hub.compactions().request(document_id);
        }
        Ok(Some(live))
    }

    /// Whether a new document stands at the id sync-core derives from its
    /// root (kind and year; the owner is this user, checked in the merge).
    /// Else a diary of one year could take the id of another, or contacts a
    /// diary's, where the owner's phones will look for that one.
    fn named_by_its_root(&self, document_id: DocumentId, new: &NewDocument) -> bool {
        let kind = match new.kind {
            StoredKind::Diary => DocumentKind::Diary,
            StoredKind::Contacts => DocumentKind::Contacts,
            StoredKind::Unknown => return false,
        };
        derived_id(kind, &self.user.username, new.year) == Some(document_id)
    }

    /// Resumes `saved`, the sync state this device left for `document_id`
    /// last time, so a reconnecting phone exchanges only what changed
    /// since.
    fn restore_sync_state(
        &mut self,
        document_id: DocumentId,
        saved: Option<Vec<u8>>,
    ) -> Result<(), SessionError> {
        if let Some(saved) = &saved {
            self.conn()?.restore_sync_state(&document_id, saved);
        }
        self.restored.insert(document_id, saved);
        Ok(())
    }

    /// This device's sync state of `document_id` as of `at`, to keep for
    /// its next connection; `None` for a device without an id (it keeps
    /// none) or a document this connection has not synced.
    fn sync_state_write(
        &self,
        document_id: DocumentId,
        at: DateTime<Utc>,
    ) -> Option<SyncStateWrite> {
        if self.user.device_id.is_empty() {
            return None;
        }
        let state = self.conn.as_ref()?.sync_state(&document_id)?;
        Some(SyncStateWrite {
            document_id,
            user_id: self.user.user_id,
            device_id: self.user.device_id.clone(),
            state,
            at,
        })
    }

    /// Keeps this device's sync state of `document_id` for its next
    /// connection. A failure only costs a longer sync next time.
    ///
    /// Not saved again: a state this connection saved within
    /// [`SAVED_FRESH`], and a state still as it was stored before this
    /// connection once the connection has saved another document's state
    /// within [`SAVED_FRESH`] (that row's time is the device's last sync on
    /// the devices page, which shows the latest of its documents'). So a
    /// phone that syncs its diary and its contacts, with nothing new in the
    /// contacts, writes one row, with its diary's write.
    pub async fn save_sync_state(&mut self, document_id: DocumentId) {
        let Some(write) = self.sync_state_write(document_id, Utc::now()) else {
            return;
        };
        if let Some((saved, at)) = self.saved.get(&document_id)
            && *saved == write.state
            && at.elapsed() < SAVED_FRESH
        {
            return;
        }
        let unchanged = self
            .restored
            .get(&document_id)
            .is_some_and(|before| before.as_ref() == Some(&write.state));
        if unchanged
            && self
                .saved
                .values()
                .any(|(_, at)| at.elapsed() < SAVED_FRESH)
        {
            return;
        }
        let state = write.state.clone();
        match self.state.store.save_sync_state(write).await {
            Ok(()) => {
                self.saved.insert(document_id, (state, Instant::now()));
            }
            Err(e) => {
                tracing::warn!(document_id = %document_id, error = %crate::error::error_chain(&e), "sync state not saved")
            }
        }
    }

    /// Saves the sync state of every document this connection synced.
    pub async fn save_all_sync_states(&mut self) {
        let ids: Vec<DocumentId> = self
            .conn
            .as_ref()
            .map(|c| c.documents().map(|(d, _)| *d).collect())
            .unwrap_or_default();
        for id in ids {
            self.save_sync_state(id).await;
        }
    }

    /// What to push to the peer about `document_id`, which changed
    /// elsewhere, if this connection syncs it: made under the document's
    /// lock and a merge permit, both released when this returns (before the
    /// socket loop writes it).
    pub async fn offer(
        &mut self,
        document_id: DocumentId,
    ) -> Result<Option<Message>, SessionError> {
        if !self.conn()?.documents().any(|(d, _)| *d == document_id) {
            return Ok(None);
        }
        let (mut guard, _permit, live, _) = take_live(&self.state, document_id, None).await?;
        let mut conn = self.take_conn()?;
        let (conn, live, pushed) = tokio::task::spawn_blocking(move || {
            let pushed = match &live {
                Some(live) => conn.push(&document_id, &live.doc),
                None => conn.push(&document_id, &automerge::Automerge::new()),
            };
            (conn, live, pushed)
        })
        .await?;
        self.conn = Some(conn);
        if let Some(live) = live {
            guard.keep(live);
        }
        Ok(pushed)
    }
}

/// What a merge made besides the merged copy: the outcome, the ledger rows
/// of the records its changes touched, and the claims of its new actors.
struct Merged {
    outcome: MergeOutcome,
    ledger: Option<LedgerProjection>,
    claims: Vec<ActorClaim>,
}

/// Closes the connection of a write refused for taking its user past a
/// per-user limit.
fn over_limit(document_id: DocumentId, over: OverLimit) -> SessionError {
    metrics::sync_payload_refused(match over {
        OverLimit::Documents { .. } => "documents_per_user",
        OverLimit::Bytes { .. } => "stored_bytes_per_user",
    });
    let refusal = format!("document {document_id} refused: {over}");
    tracing::warn!(document_id = %document_id, reason = refusal, "refused a write over a per-user limit");
    SessionError::Protocol(ProtocolError::Refused(refusal))
}

/// The answer to a message whose merge was refused: the connection is
/// closed with the reason, or, for a document that is not the user's,
/// `doc-unavailable`.
fn refusal(document_id: DocumentId, e: MergeError) -> Result<Answer, SessionError> {
    match e {
        MergeError::ForeignActor { .. } | MergeError::AltersServerWrites { .. } => {
            metrics::sync_payload_refused(match e {
                MergeError::ForeignActor { .. } => "foreign_actor",
                _ => "alters_server_writes",
            });
            tracing::warn!(document_id = %document_id, error = %e, "refused a sync payload");
            Err(SessionError::Protocol(ProtocolError::Sync {
                document: document_id.to_string(),
                reason: e.to_string(),
            }))
        }
        MergeError::Refused { reason, .. } => {
            tracing::warn!(document_id = %document_id, reason, "refused a document");
            Ok(Answer::Unavailable)
        }
        MergeError::TooLarge { size, limit, .. } => {
            Err(SessionError::Protocol(ProtocolError::TooLarge {
                size,
                limit,
            }))
        }
        MergeError::Hostile { document, source } => {
            metrics::sync_payload_refused(source.kind());
            tracing::warn!(document_id = %document, error = %source, "refused a sync payload");
            Err(SessionError::Protocol(ProtocolError::Sync {
                document: document.to_string(),
                reason: source.to_string(),
            }))
        }
        MergeError::Protocol(e) => Err(SessionError::Protocol(e)),
        e @ MergeError::Load { .. } => Err(SessionError::Internal(crate::error::error_chain(&e))),
    }
}

/// The document's lock and a merge permit ([`AppState::lock_for_merge`]),
/// and its live copy taken out of its slot (`None` when the document is not
/// stored); with `device` (a user id and a device id), the sync state it
/// kept of the document, read with it.
async fn take_live(
    state: &AppState,
    document_id: DocumentId,
    device: Option<(i64, &str)>,
) -> Result<
    (
        DocumentGuard,
        OwnedSemaphorePermit,
        Option<LiveDocument>,
        Option<Vec<u8>>,
    ),
    SessionError,
> {
    let (mut guard, permit) = state
        .lock_for_merge(document_id)
        .await
        .map_err(|e| SessionError::Internal(e.to_string()))?;
    let store = state.store.as_ref();
    let (live, saved) = match device {
        Some(device) => {
            guard
                .current_with_sync_state(store, document_id, device)
                .await?
        }
        None => (guard.current(store, document_id).await?, None),
    };
    Ok((guard, permit, live, saved))
}
