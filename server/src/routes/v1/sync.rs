//! `GET /api/v1/sync`: the automerge-repo sync protocol over a WebSocket.
//!
//! The upgrade is authenticated ([`AuthUser`], 401 before upgrading); from
//! then on the connection acts as the token's user, whatever peer id the
//! client announces. Each binary frame is one protocol message, handled by
//! sync-core's sans-IO [`ServerConnection`]; this file carries out what it
//! asks for: decide access from the database, merge under the document's
//! lock and a merge permit, store, and only then answer ("acknowledged means
//! durable"). Anything the protocol refuses ends this connection only, after
//! an `error` message.
//!
//! Nothing shared is held while writing to the socket: the document's lock,
//! the merge permit, the user's lock and their budget of received bytes are
//! all released before a reply or a push goes out, and every write is
//! bounded by `sync_send_timeout`. A peer that stops reading (a dead radio
//! link, a hostile client) fills the socket's buffers; its write times out
//! and its connection is closed, while other connections carry on. What it
//! sent was stored before any answer, so it only syncs again next time.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use chrono::Utc;
use sync_core::automerge;
use sync_core::protocol::{
    Access, MAX_MESSAGE_BYTES, Message, ProtocolError, ServerConnection, ServerStep,
};
use sync_core::{DocumentId, DocumentKind, derived_id};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::Config;
use crate::error::AppError;
use crate::extract::ClientAddr;
use crate::ledger::{LedgerProjection, Writer};
use crate::metrics::{self, Direction};
use crate::store::{
    ActorClaim, AppendOutcome, DocumentWrite, NewAuditEntry, NewDocument, StoreError, StoredKind,
    SyncStateWrite,
};
use crate::sync::live::DocumentGuard;
use crate::sync::payload::PayloadLimits;
use crate::sync::{
    ConnectionSlot, Crowded, DocumentChanged, LiveDocument, LiveError, MergeError, compactor,
    decide_access, documents, live,
};

/// The peer id the server announces.
const SERVER_PEER_ID: &str = "visit-diary-server";

/// Room for a message's envelope (ids, CBOR framing, the sync summary) on
/// top of the changes it carries, which are bounded by the document limit.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// How long a received frame may wait for room in its user's budget of
/// bytes being merged (other frames of theirs finishing) before the
/// connection is closed: a phone sends one document at a time, so only a
/// runaway client, or many devices at once, waits this long.
const BUFFER_WAIT: Duration = Duration::from_secs(10);

/// Upgrades an authenticated request to a sync connection.
#[utoipa::path(
    get,
    path = "/api/v1/sync",
    tag = "sync",
    responses((status = 101, description = "Switching to the WebSocket; then the automerge-repo sync protocol (binary CBOR frames)"), crate::routes::openapi::SyncErrors),
    security(("bearer" = []), ("token_query" = []))
)]
pub async fn upgrade(
    State(state): State<AppState>,
    // Before `WebSocketUpgrade`, so a request without a valid token gets 401
    // whatever else is wrong with it.
    user: AuthUser,
    ClientAddr(remote_addr): ClientAddr,
    ws: WebSocketUpgrade,
) -> Response {
    let config = &state.config;
    let slot = match state.sync_hub.admit(
        user.user_id,
        remote_addr.as_deref(),
        (
            config.max_sync_connections_per_user,
            config.max_sync_connections_per_address,
        ),
    ) {
        Ok(slot) => slot,
        Err(crowded) => {
            metrics::sync_connection_refused(match crowded {
                Crowded::User => "user",
                Crowded::Address => "address",
            });
            return AppError::Rejected {
                status: StatusCode::TOO_MANY_REQUESTS,
                message: crowded.to_string(),
            }
            .into_response();
        }
    };
    let limit = message_limit(&state.config);
    let id = state.sync_hub.next_connection_id();
    let span = tracing::info_span!("sync", user_id = user.user_id, connection = id);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            let connection = Connection {
                conn: Some(ServerConnection::new(SERVER_PEER_ID)),
                _slot: slot,
                asked: HashSet::new(),
                restored: HashSet::new(),
                state,
                user,
                remote_addr,
                socket,
                id,
                limit,
            };
            connection.run().instrument(span)
        })
}

/// The largest frame accepted: `max_message_bytes`, and never more than a
/// whole document and its envelope, nor the user's budget of bytes being
/// merged (it could never get room in it).
fn message_limit(config: &Config) -> usize {
    config
        .max_message_bytes
        .min(config.max_document_bytes.saturating_add(ENVELOPE_BYTES))
        .min(MAX_MESSAGE_BYTES)
        .min(config.max_buffered_bytes_per_user)
}

/// Why a connection ends early.
#[derive(Debug)]
enum Fault {
    /// The client broke the protocol: tell it why, then close.
    Protocol(ProtocolError),
    /// Our side failed: log the detail, tell the client only that it failed.
    Internal(String),
    /// The socket is gone; nothing more can be sent.
    Socket(axum::Error),
    /// The peer did not take a message within the send timeout; the socket
    /// may hold half a frame, so nothing more is written to it.
    SendTimeout,
    /// The user's session ended (token expired, user disabled): tell the
    /// client why, then close.
    SessionEnded(&'static str),
}

impl From<ProtocolError> for Fault {
    fn from(e: ProtocolError) -> Self {
        Fault::Protocol(e)
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Internal(crate::error::error_chain(&e))
    }
}

impl From<LiveError> for Fault {
    fn from(e: LiveError) -> Self {
        match e {
            LiveError::Store(e) => e.into(),
            other => Fault::Internal(crate::error::error_chain(&other)),
        }
    }
}

impl From<tokio::task::JoinError> for Fault {
    fn from(e: tokio::task::JoinError) -> Self {
        Fault::Internal(format!("merge task failed: {e}"))
    }
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

/// Keeps the open-connections gauge right however the connection ends.
struct Gauge;

impl Gauge {
    fn open() -> Self {
        metrics::sync_connection_opened();
        Gauge
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        metrics::sync_connection_closed();
    }
}

struct Connection {
    /// The protocol state; `None` only while a blocking task holds it.
    conn: Option<ServerConnection>,
    /// This connection's place in the per-user and per-address counts.
    _slot: ConnectionSlot,
    /// Documents whose access was decided on this connection, bounded by
    /// `max_documents_per_connection` (each decision reads the database).
    asked: HashSet<DocumentId>,
    /// Documents whose saved sync state was looked up on this connection
    /// (once each, before their first merge).
    restored: HashSet<DocumentId>,
    state: AppState,
    user: AuthUser,
    /// The client's address, for the audit log.
    remote_addr: Option<String>,
    socket: WebSocket,
    /// This connection's id in the hub's change feed.
    id: u64,
    /// Largest accepted frame.
    limit: usize,
}

impl Connection {
    async fn run(mut self) {
        let _gauge = Gauge::open();
        let mut changes = self.state.sync_hub.subscribe();
        let mut ended_sessions = self.state.sync_hub.ended_sessions();
        let shutdown = self.state.shutdown.clone();
        let token_expiry = token_expiry(self.user.expires_at);
        tokio::pin!(token_expiry);
        let mut session_check = tokio::time::interval(self.state.config.session_check);
        let idle_timeout = self.state.config.sync_idle_timeout;
        let mut heard_at = tokio::time::Instant::now();
        let mut ping = tokio::time::interval(idle_timeout / 3);
        ping.tick().await;
        // The first tick is immediate; the upgrade has just checked the token.
        session_check.tick().await;
        let result = loop {
            let step = tokio::select! {
                () = shutdown.triggered() => break Ok(()),
                // The session ends with its token: the client reconnects
                // with a fresh one, and the server checks it again.
                () = &mut token_expiry => Err(Fault::SessionEnded("access token expired")),
                _ = session_check.tick() => self.check_session().await,
                // A peer that answers nothing, not even pings, is gone.
                _ = ping.tick() => if heard_at.elapsed() >= idle_timeout {
                    Err(Fault::SessionEnded("idle"))
                } else {
                    self.send_frame(ws::Message::Ping(Default::default()))
                        .await
                        .map(|()| true)
                },
                ended = ended_sessions.recv() => match ended {
                    Ok(session) if !session.is_empty() && session == self.user.session => {
                        Err(Fault::SessionEnded("logged out"))
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => Ok(true),
                    Err(RecvError::Closed) => break Ok(()),
                },
                frame = self.socket.recv() => {
                    heard_at = tokio::time::Instant::now();
                    match frame {
                        None | Some(Ok(ws::Message::Close(_))) => break Ok(()),
                        Some(Err(e)) => Err(Fault::Protocol(ProtocolError::Malformed(format!(
                            "unreadable frame: {e}"
                        )))),
                        Some(Ok(ws::Message::Binary(bytes))) => self.handle_frame(&bytes).await,
                        Some(Ok(ws::Message::Text(_))) => Err(Fault::Protocol(ProtocolError::Malformed(
                            "text frames are not part of the protocol; send binary frames".to_owned(),
                        ))),
                        // axum answers pings itself.
                        Some(Ok(ws::Message::Ping(_) | ws::Message::Pong(_))) => Ok(true),
                    }
                }
                changed = changes.recv() => match changed {
                    Ok(c) if c.origin == self.id => Ok(true),
                    Ok(DocumentChanged { document_id: Some(id), .. }) => {
                        self.push(id).await.map(|()| true)
                    }
                    // Another process's writes may have been missed.
                    Ok(_) => self.push_all().await.map(|()| true),
                    // We missed some notices: offer everything we sync.
                    Err(RecvError::Lagged(_)) => self.push_all().await.map(|()| true),
                    Err(RecvError::Closed) => break Ok(()),
                },
            };
            match step {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // A failed or timed-out socket gets nothing more written to it.
        let mut writable = result.is_ok();
        let farewell = match result {
            Ok(()) => None,
            Err(Fault::Socket(e)) => {
                tracing::debug!(error = %e, "sync socket failed");
                None
            }
            // Logged and counted where it happened.
            Err(Fault::SendTimeout) => None,
            Err(Fault::Protocol(e)) => {
                tracing::info!(error = %e, "closing sync connection");
                Some(ServerConnection::error_message(&e))
            }
            Err(Fault::SessionEnded(why)) => {
                tracing::info!(reason = why, "ending sync session");
                metrics::sync_session_ended(why);
                let ended = ProtocolError::Refused(format!("session ended: {why}"));
                Some(ServerConnection::error_message(&ended))
            }
            Err(Fault::Internal(detail)) => {
                tracing::error!(error = %detail, "sync connection failed");
                let internal = ProtocolError::Remote("internal server error".to_owned());
                Some(ServerConnection::error_message(&internal))
            }
        };
        if let Some(message) = farewell {
            writable = self.send(&message).await.is_ok();
        }
        // Before the close, so a device that waits for it reconnects to
        // the state it left.
        self.save_all_sync_states().await;
        if writable {
            let _ = self.send_frame(ws::Message::Close(None)).await;
        }
        // Dropping the socket closes it, however far a write got.
    }

    /// Ends the connection if its user has been disabled (or removed) since
    /// the upgrade.
    async fn check_session(&mut self) -> Result<bool, Fault> {
        match self.state.store.get_user(self.user.user_id).await? {
            Some(user) if !user.disabled => Ok(true),
            _ => Err(Fault::SessionEnded("user disabled")),
        }
    }

    fn conn(&mut self) -> Result<&mut ServerConnection, Fault> {
        self.conn
            .as_mut()
            .ok_or_else(|| Fault::Internal("connection state lost to a failed task".to_owned()))
    }

    fn take_conn(&mut self) -> Result<ServerConnection, Fault> {
        self.conn
            .take()
            .ok_or_else(|| Fault::Internal("connection state lost to a failed task".to_owned()))
    }

    /// Sends one protocol message. Call it with no lock or permit held.
    async fn send(&mut self, message: &Message) -> Result<(), Fault> {
        metrics::sync_message(Direction::Out);
        let bytes = message.encode();
        self.send_frame(ws::Message::Binary(bytes.into())).await
    }

    /// Writes one frame, giving the peer `sync_send_timeout` to take it.
    /// Every write to the socket goes through here.
    async fn send_frame(&mut self, frame: ws::Message) -> Result<(), Fault> {
        let limit = self.state.config.sync_send_timeout;
        match tokio::time::timeout(limit, self.socket.send(frame)).await {
            Ok(sent) => sent.map_err(Fault::Socket),
            Err(_) => {
                metrics::sync_send_timeout();
                tracing::warn!(
                    user_id = self.user.user_id,
                    device_id = %self.user.device_id,
                    timeout_secs = limit.as_secs_f64(),
                    "sync peer took no data within the send timeout; closing its connection"
                );
                Err(Fault::SendTimeout)
            }
        }
    }

    /// Handles one binary frame; `Ok(false)` when the client said goodbye.
    async fn handle_frame(&mut self, bytes: &[u8]) -> Result<bool, Fault> {
        // Held until the frame is merged: what the decoded message and the
        // merge hold grows with it. Released before the answer is written,
        // so a device slow to read it cannot hold up its user's others.
        let buffered = self
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
                Fault::Protocol(ProtocolError::Refused(e.to_string()))
            })?;
        let message = Message::decode_with_limit(bytes, self.limit)?;
        metrics::sync_message(Direction::In);
        // The policy is consulted only for the document of a `sync` or
        // `request` the connection was not granted yet; decide that one
        // document from the database now.
        let access = match &message {
            Message::Sync { document_id, .. } | Message::Request { document_id, .. }
                if !self.conn()?.documents().any(|(d, _)| d == document_id) =>
            {
                let max = self.state.config.max_documents_per_connection;
                if self.asked.len() >= max && !self.asked.contains(document_id) {
                    return Err(Fault::Protocol(ProtocolError::Refused(format!(
                        "more than {max} documents on one connection; reconnect for more"
                    ))));
                }
                self.asked.insert(*document_id);
                decide_access(self.state.store.as_ref(), &self.user, document_id).await?
            }
            _ => Access::None,
        };
        let policy = move |_: &DocumentId| access;
        match self.conn()?.handle(message, &policy)? {
            ServerStep::Reply(replies) => {
                drop(buffered);
                for reply in &replies {
                    self.send(reply).await?;
                }
                Ok(true)
            }
            ServerStep::Close => Ok(false),
            ServerStep::Sync {
                document_id,
                access,
                message,
                is_request,
            } => {
                let answer = self
                    .merge_and_store(document_id, access, *message, is_request)
                    .await;
                drop(buffered);
                match answer? {
                    Answer::Reply { message, wrote } => {
                        if let Some(reply) = message {
                            self.send(&reply).await?;
                        }
                        if wrote {
                            self.save_sync_state(document_id).await;
                        }
                    }
                    Answer::Unavailable => self.unavailable(document_id).await?,
                }
                Ok(true)
            }
        }
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
    ) -> Result<Answer, Fault> {
        let max_document_bytes = self.state.config.max_document_bytes;
        let size = documents::changes_size(&message);
        if size > max_document_bytes {
            return Err(Fault::Protocol(ProtocolError::TooLarge {
                size,
                limit: max_document_bytes,
            }));
        }
        let started = Instant::now();
        // The document as stored, from its copy in memory. It goes back into
        // its slot only once everything merged into it is stored: every
        // early return below leaves the slot empty, and the next sync loads
        // the document from the store again.
        let (mut guard, _permit, live) = take_live(&self.state, document_id).await?;
        let stored_existed = live.is_some();
        if stored_existed {
            self.restore_sync_state(document_id).await?;
        }
        let mut live = live.unwrap_or_else(LiveDocument::empty);
        let limits = PayloadLimits::new(max_document_bytes, self.state.config.max_nesting_depth);
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
                (outcome, ledger, claims)
            });
            (conn, live, merged)
        })
        .await?;
        self.conn = Some(conn);
        let (outcome, ledger, claims) = match merged {
            Ok(merged) => merged,
            Err(e @ (MergeError::ForeignActor { .. } | MergeError::AltersServerWrites { .. })) => {
                metrics::sync_payload_refused(match e {
                    MergeError::ForeignActor { .. } => "foreign_actor",
                    _ => "alters_server_writes",
                });
                tracing::warn!(document_id = %document_id, error = %e, "refused a sync payload");
                return Err(Fault::Protocol(ProtocolError::Sync {
                    document: document_id.to_string(),
                    reason: e.to_string(),
                }));
            }
            Err(MergeError::Refused { reason, .. }) => {
                tracing::warn!(document_id = %document_id, reason, "refused a document");
                return Ok(Answer::Unavailable);
            }
            Err(MergeError::TooLarge { size, limit, .. }) => {
                return Err(Fault::Protocol(ProtocolError::TooLarge { size, limit }));
            }
            Err(MergeError::Hostile { document, source }) => {
                metrics::sync_payload_refused(source.kind());
                tracing::warn!(document_id = %document, error = %source, "refused a sync payload");
                return Err(Fault::Protocol(ProtocolError::Sync {
                    document: document.to_string(),
                    reason: source.to_string(),
                }));
            }
            Err(MergeError::Protocol(e)) => return Err(Fault::Protocol(e)),
            Err(e @ MergeError::Load { .. }) => {
                return Err(Fault::Internal(crate::error::error_chain(&e)));
            }
        };
        if !stored_existed
            && outcome.chunk.is_some()
            && let Some(new) = &outcome.create
            && !self.named_by_its_root(document_id, new)
        {
            tracing::warn!(
                document_id = %document_id,
                "refused a new document whose kind and year do not give its id"
            );
            return Ok(Answer::Unavailable);
        }
        let mut live = live;
        let wrote = outcome.chunk.is_some();
        // Held until the write is stored, so the user's usage read for the
        // check is the one the write adds to.
        let mut owner_guard = None;
        if let Some(chunk) = &outcome.chunk
            && access == Access::ReadWrite
        {
            owner_guard = Some(self.state.sync_hub.lock_owner(self.user.user_id).await);
            self.check_owner_limits(document_id, stored_existed, chunk.len())
                .await?;
        }
        if let Some(chunk) = outcome.chunk {
            let write = DocumentWrite {
                document_id,
                create: outcome.create,
                data: chunk,
                at: Utc::now(),
                ledger,
                actors: claims,
                based_on: None,
            };
            let store = self.state.store.as_ref();
            match live::store_write(store, live, write, outcome.heads_before).await {
                Ok((stored, appended)) => {
                    live = stored;
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
                    self.audit_write(
                        document_id,
                        (outcome.changes_added, outcome.changes_waiting),
                        &appended,
                    )
                    .await;
                    if compactor::worth_compacting(appended.pending_chunks, &live) {
                        self.state.sync_hub.compactions().request(document_id);
                    }
                }
                // Another user created this id first (or it vanished): the
                // document is not this user's.
                Err(LiveError::Store(StoreError::Conflict(reason))) => {
                    tracing::warn!(document_id = %document_id, reason, "refused a document");
                    return Ok(Answer::Unavailable);
                }
                Err(LiveError::Store(StoreError::NotFound)) => return Ok(Answer::Unavailable),
                Err(e) => return Err(e.into()),
            }
        }
        drop(owner_guard);
        metrics::merge_seconds(started.elapsed());
        // The reply is made from the live copy under the document's lock,
        // and sent by the caller once everything here is released.
        let mut conn = self.take_conn()?;
        let (conn, live, reply) = tokio::task::spawn_blocking(move || {
            let reply = conn.reply(&document_id, &live.doc, is_request);
            (conn, live, reply)
        })
        .await?;
        self.conn = Some(conn);
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
        Ok(Answer::Reply {
            message: reply.message,
            wrote,
        })
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

    /// Refuses a write of `added` bytes that would take the user past the
    /// documents or stored bytes they may have; `existed` says whether the
    /// document is stored already (else the write creates it). Called under
    /// the document's lock and the user's ([`SyncHub::lock_owner`](crate::sync::SyncHub::lock_owner)),
    /// before anything is stored.
    async fn check_owner_limits(
        &mut self,
        document_id: DocumentId,
        existed: bool,
        added: usize,
    ) -> Result<(), Fault> {
        let config = &self.state.config;
        let (max_documents, max_bytes) = (
            config.max_documents_per_user,
            config.max_stored_bytes_per_user,
        );
        let usage = self.state.store.owner_usage(self.user.user_id).await?;
        let refusal = if !existed && usage.documents >= max_documents as u64 {
            metrics::sync_payload_refused("documents_per_user");
            format!(
                "document {document_id} refused: this user already has {} documents, \
                 the limit is {max_documents} per user",
                usage.documents
            )
        } else if usage.bytes.saturating_add(added as u64) > max_bytes {
            metrics::sync_payload_refused("stored_bytes_per_user");
            format!(
                "document {document_id} refused: this user's documents would take {} bytes, \
                 the limit is {max_bytes} bytes per user",
                usage.bytes.saturating_add(added as u64)
            )
        } else {
            return Ok(());
        };
        tracing::warn!(document_id = %document_id, reason = refusal, "refused a write over a per-user limit");
        Err(Fault::Protocol(ProtocolError::Refused(refusal)))
    }

    /// Resumes the sync state this device left for `document_id` last
    /// time, once per connection and before the document's first merge, so
    /// a reconnecting phone exchanges only what changed since. Devices
    /// without an id keep no state.
    async fn restore_sync_state(&mut self, document_id: DocumentId) -> Result<(), Fault> {
        if self.user.device_id.is_empty() || !self.restored.insert(document_id) {
            return Ok(());
        }
        let saved = self
            .state
            .store
            .load_sync_state(&document_id, self.user.user_id, &self.user.device_id)
            .await?;
        if let Some(saved) = saved {
            self.conn()?.restore_sync_state(&document_id, &saved);
        }
        Ok(())
    }

    /// Keeps this device's sync state of `document_id` for its next
    /// connection. A failure only costs a longer sync next time.
    async fn save_sync_state(&mut self, document_id: DocumentId) {
        if self.user.device_id.is_empty() {
            return;
        }
        let Some(state) = self.conn.as_ref().and_then(|c| c.sync_state(&document_id)) else {
            return;
        };
        if let Err(e) = self
            .state
            .store
            .save_sync_state(SyncStateWrite {
                document_id,
                user_id: self.user.user_id,
                device_id: self.user.device_id.clone(),
                state,
                at: Utc::now(),
            })
            .await
        {
            tracing::warn!(document_id = %document_id, error = %crate::error::error_chain(&e), "sync state not saved");
        }
    }

    /// Saves the sync state of every document this connection synced.
    async fn save_all_sync_states(&mut self) {
        let ids: Vec<DocumentId> = self
            .conn
            .as_ref()
            .map(|c| c.documents().map(|(d, _)| *d).collect())
            .unwrap_or_default();
        for id in ids {
            self.save_sync_state(id).await;
        }
    }

    /// Writes the audit row of a stored sync write. A failure is logged, not
    /// fatal: the changes are durable and the client is owed its answer.
    async fn audit_write(
        &mut self,
        document_id: DocumentId,
        (added, waiting): (usize, usize),
        appended: &AppendOutcome,
    ) {
        let entry = NewAuditEntry {
            at: Utc::now(),
            user_id: Some(self.user.user_id),
            action: if appended.created {
                "document.create".to_owned()
            } else {
                "document.write".to_owned()
            },
            target: document_id.to_string(),
            detail: format!(
                "sync: {added} change(s){}, chunk {}, device {:?}",
                if waiting > 0 {
                    format!(" + {waiting} waiting for dependencies")
                } else {
                    String::new()
                },
                appended.chunk_id,
                self.user.device_id
            ),
            remote_addr: self.remote_addr.clone(),
        };
        if let Err(e) = self.state.store.append_audit(entry).await {
            tracing::error!(document_id = %document_id, error = %crate::error::error_chain(&e), "audit row not written");
        }
    }

    /// Answers `doc-unavailable` and forgets the document on this
    /// connection, so a later message about it starts afresh.
    async fn unavailable(&mut self, document_id: DocumentId) -> Result<(), Fault> {
        let m = self.conn()?.forget(&document_id);
        self.send(&m).await
    }

    /// Offers a document that changed elsewhere, if this connection syncs it.
    async fn push(&mut self, document_id: DocumentId) -> Result<(), Fault> {
        match self.offer(document_id).await? {
            Some(m) => self.send(&m).await,
            None => Ok(()),
        }
    }

    /// What to push to the peer about `document_id`, made under the
    /// document's lock and a merge permit, both released when this returns
    /// (before [`Self::push`] writes it).
    async fn offer(&mut self, document_id: DocumentId) -> Result<Option<Message>, Fault> {
        if !self.conn()?.documents().any(|(d, _)| *d == document_id) {
            return Ok(None);
        }
        let (mut guard, _permit, live) = take_live(&self.state, document_id).await?;
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

    async fn push_all(&mut self) -> Result<(), Fault> {
        let ids: Vec<DocumentId> = self.conn()?.documents().map(|(d, _)| *d).collect();
        for id in ids {
            self.push(id).await?;
        }
        Ok(())
    }
}

/// Completes when an access token that expires at `exp` (unix seconds) has
/// expired.
async fn token_expiry(exp: i64) {
    let now = Utc::now().timestamp();
    let left = u64::try_from(exp.saturating_sub(now)).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_secs(left)).await;
}

/// The document's lock and a merge permit ([`AppState::lock_for_merge`]),
/// and its live copy taken out of its slot (`None` when the document is not
/// stored).
async fn take_live(
    state: &AppState,
    document_id: DocumentId,
) -> Result<(DocumentGuard, OwnedSemaphorePermit, Option<LiveDocument>), Fault> {
    let (mut guard, permit) = state
        .lock_for_merge(document_id)
        .await
        .map_err(|e| Fault::Internal(e.to_string()))?;
    let live = guard.current(state.store.as_ref(), document_id).await?;
    Ok((guard, permit, live))
}
