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

use std::time::Instant;

use axum::extract::State;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use chrono::Utc;
use sync_core::DocumentId;
use sync_core::automerge;
use sync_core::protocol::{
    Access, MAX_MESSAGE_BYTES, Message, ProtocolError, ServerConnection, ServerStep,
};
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::metrics::{self, Direction};
use crate::store::{DocumentWrite, StoreError};
use crate::sync::{MergeError, decide_access, documents};

/// The peer id the server announces.
const SERVER_PEER_ID: &str = "visit-diary-server";

/// Room for a message's envelope (ids, CBOR framing, the sync summary) on
/// top of the changes it carries, which are bounded by the document limit.
const ENVELOPE_BYTES: usize = 64 * 1024;

/// Upgrades an authenticated request to a sync connection.
pub async fn upgrade(
    State(state): State<AppState>,
    // Before `WebSocketUpgrade`, so a request without a valid token gets 401
    // whatever else is wrong with it.
    user: AuthUser,
    ws: WebSocketUpgrade,
) -> Response {
    let limit = message_limit(state.config.max_document_bytes);
    let id = state.sync_hub.next_connection_id();
    let span = tracing::info_span!("sync", user_id = user.user_id, connection = id);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            let connection = Connection {
                conn: Some(ServerConnection::new(SERVER_PEER_ID)),
                state,
                user,
                socket,
                id,
                limit,
            };
            connection.run().instrument(span)
        })
}

/// The largest frame accepted.
fn message_limit(max_document_bytes: usize) -> usize {
    max_document_bytes
        .saturating_add(ENVELOPE_BYTES)
        .min(MAX_MESSAGE_BYTES)
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

impl From<tokio::task::JoinError> for Fault {
    fn from(e: tokio::task::JoinError) -> Self {
        Fault::Internal(format!("merge task failed: {e}"))
    }
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
    state: AppState,
    user: AuthUser,
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
        let shutdown = self.state.shutdown.clone();
        let result = loop {
            let step = tokio::select! {
                () = shutdown.triggered() => break Ok(()),
                frame = self.socket.recv() => match frame {
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
                },
                changed = changes.recv() => match changed {
                    Ok(c) if c.origin == self.id => Ok(true),
                    Ok(c) => self.push(c.document_id).await.map(|()| true),
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
        match result {
            Ok(()) => {}
            Err(Fault::Socket(e)) => tracing::debug!(error = %e, "sync socket failed"),
            Err(Fault::Protocol(e)) => {
                tracing::info!(error = %e, "closing sync connection");
                let _ = self.send(&ServerConnection::error_message(&e)).await;
            }
            Err(Fault::Internal(detail)) => {
                tracing::error!(error = %detail, "sync connection failed");
                let internal = ProtocolError::Remote("internal server error".to_owned());
                let _ = self.send(&ServerConnection::error_message(&internal)).await;
            }
        }
        let _ = self.socket.send(ws::Message::Close(None)).await;
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

    async fn send(&mut self, message: &Message) -> Result<(), Fault> {
        metrics::sync_message(Direction::Out);
        self.socket
            .send(ws::Message::Binary(message.encode().into()))
            .await
            .map_err(Fault::Socket)
    }

    /// Handles one binary frame; `Ok(false)` when the client said goodbye.
    async fn handle_frame(&mut self, bytes: &[u8]) -> Result<bool, Fault> {
        let message = Message::decode_with_limit(bytes, self.limit)?;
        metrics::sync_message(Direction::In);
        // The policy is consulted only for the document of a `sync` or
        // `request` the connection was not granted yet; decide that one
        // document from the database now.
        let access = match &message {
            Message::Sync { document_id, .. } | Message::Request { document_id, .. }
                if !self.conn()?.documents().any(|(d, _)| d == document_id) =>
            {
                decide_access(self.state.store.as_ref(), &self.user, document_id).await?
            }
            _ => Access::None,
        };
        let policy = move |_: &DocumentId| access;
        match self.conn()?.handle(message, &policy)? {
            ServerStep::Reply(replies) => {
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
                self.sync(document_id, access, *message, is_request).await?;
                Ok(true)
            }
        }
    }

    /// Merges a sync message into the stored document, stores what it added,
    /// then answers.
    async fn sync(
        &mut self,
        document_id: DocumentId,
        access: Access,
        message: automerge::sync::Message,
        is_request: bool,
    ) -> Result<(), Fault> {
        let max_document_bytes = self.state.config.max_document_bytes;
        let size = documents::changes_size(&message);
        if size > max_document_bytes {
            return Err(Fault::Protocol(ProtocolError::TooLarge {
                size,
                limit: max_document_bytes,
            }));
        }
        let started = Instant::now();
        let guard = self.state.sync_hub.lock(document_id).await;
        let _permit = self
            .state
            .merge_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Fault::Internal(e.to_string()))?;
        let stored = self
            .state
            .store
            .load_document(&document_id.to_string())
            .await?;
        let mut conn = self.take_conn()?;
        let writer = (self.user.username.clone(), self.user.user_id);
        let (conn, merged) = tokio::task::spawn_blocking(move || {
            let merged = documents::merge(
                &mut conn,
                document_id,
                stored.as_ref(),
                message,
                (&writer.0, writer.1),
                access,
                max_document_bytes,
            );
            (conn, merged)
        })
        .await?;
        self.conn = Some(conn);
        let outcome = match merged {
            Ok(outcome) => outcome,
            Err(MergeError::Refused { reason, .. }) => {
                tracing::warn!(document_id = %document_id, reason, "refused a document");
                return self.unavailable(document_id).await;
            }
            Err(MergeError::TooLarge { size, limit, .. }) => {
                return Err(Fault::Protocol(ProtocolError::TooLarge { size, limit }));
            }
            Err(MergeError::Protocol(e)) => return Err(Fault::Protocol(e)),
            Err(e @ MergeError::Load { .. }) => {
                return Err(Fault::Internal(crate::error::error_chain(&e)));
            }
        };
        if let Some(chunk) = outcome.chunk {
            let write = DocumentWrite {
                document_id: document_id.to_string(),
                create: outcome.create,
                data: chunk,
                at: Utc::now(),
            };
            match self.state.store.append_changes(write).await {
                Ok(_) => self.state.sync_hub.notify(document_id, self.id),
                // Another user created this id first (or it vanished): the
                // document is not this user's.
                Err(StoreError::Conflict(reason)) => {
                    tracing::warn!(document_id = %document_id, reason, "refused a document");
                    return self.unavailable(document_id).await;
                }
                Err(StoreError::NotFound) => return self.unavailable(document_id).await,
                Err(e) => return Err(e.into()),
            }
        }
        drop(guard);
        metrics::merge_seconds(started.elapsed());
        let mut conn = self.take_conn()?;
        let doc = outcome.doc;
        let (conn, reply) = tokio::task::spawn_blocking(move || {
            let reply = conn.reply(&document_id, &doc, is_request);
            (conn, reply)
        })
        .await?;
        self.conn = Some(conn);
        if let Some(reply) = reply {
            self.send(&reply).await?;
        }
        Ok(())
    }

    /// Answers `doc-unavailable` and forgets the document on this
    /// connection, so a later message about it starts afresh.
    async fn unavailable(&mut self, document_id: DocumentId) -> Result<(), Fault> {
        let m = self.conn()?.forget(&document_id);
        self.send(&m).await
    }

    /// Offers a document that changed elsewhere, if this connection syncs it.
    async fn push(&mut self, document_id: DocumentId) -> Result<(), Fault> {
        if !self.conn()?.documents().any(|(d, _)| *d == document_id) {
            return Ok(());
        }
        let _permit = self
            .state
            .merge_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Fault::Internal(e.to_string()))?;
        let stored = self
            .state
            .store
            .load_document(&document_id.to_string())
            .await?;
        let mut conn = self.take_conn()?;
        let (conn, pushed) = tokio::task::spawn_blocking(move || {
            let pushed = documents::load(document_id, stored.as_ref())
                .map(|doc| conn.push(&document_id, &doc));
            (conn, pushed)
        })
        .await?;
        self.conn = Some(conn);
        match pushed {
            Ok(Some(m)) => self.send(&m).await,
            Ok(None) => Ok(()),
            Err(e) => Err(Fault::Internal(crate::error::error_chain(&e))),
        }
    }

    async fn push_all(&mut self) -> Result<(), Fault> {
        let ids: Vec<DocumentId> = self.conn()?.documents().map(|(d, _)| *d).collect();
        for id in ids {
            self.push(id).await?;
        }
        Ok(())
    }
}
