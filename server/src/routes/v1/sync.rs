//! `GET /api/v1/sync`: the automerge-repo sync protocol over a WebSocket.
//!
//! The upgrade is authenticated ([`AuthUser`], 401 before upgrading); from
//! then on the connection acts as the token's user, whatever peer id the
//! client announces. This file is the socket loop: it reads binary frames
//! (one protocol message each) and hands them to the connection's
//! [`Session`] (`sync/session.rs`), which runs the protocol and returns
//! what to send; it pushes documents that changed elsewhere, pings, and
//! ends the session when its token expires, its user logs out or is
//! disabled, or the server shuts down. Anything the protocol refuses ends
//! this connection only, after an `error` message.
//!
//! The session releases every lock, permit and budget before it returns,
//! so nothing shared is held while writing to the socket, and every write
//! is bounded by `sync_send_timeout`. A peer that stops reading (a dead
//! radio link, a hostile client) fills the socket's buffers; its write
//! times out and its connection is closed, while other connections carry
//! on. What it sent was stored before any answer, so it only syncs again
//! next time.

use axum::extract::State;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sync_core::DocumentId;
use sync_core::protocol::{MAX_MESSAGE_BYTES, Message, ProtocolError, ServerConnection};
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::config::Config;
use crate::error::AppError;
use crate::extract::ClientAddr;
use crate::metrics::{self, Direction};
use crate::sync::session::{Received, Session, SessionError};
use crate::sync::{ConnectionSlot, Crowded, DocumentChanged};

/// Room for a message's envelope (ids, CBOR framing, the sync summary) on
/// top of the changes it carries, which are bounded by the document limit.
const ENVELOPE_BYTES: usize = 64 * 1024;

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
                session: Session::new(state, user, remote_addr, id, limit),
                _slot: slot,
                socket,
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
    /// The session ended: the peer broke the protocol, our side failed, or
    /// the user's session is over. The peer is told why.
    Session(SessionError),
    /// The socket is gone; nothing more can be sent.
    Socket(axum::Error),
    /// The peer did not take a message within the send timeout; the socket
    /// may hold half a frame, so nothing more is written to it.
    SendTimeout,
}

impl From<SessionError> for Fault {
    fn from(e: SessionError) -> Self {
        Fault::Session(e)
    }
}

/// A frame that is not part of the protocol.
fn malformed(why: String) -> Fault {
    Fault::Session(SessionError::Protocol(ProtocolError::Malformed(why)))
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
    session: Session,
    /// This connection's place in the per-user and per-address counts.
    _slot: ConnectionSlot,
    socket: WebSocket,
}

impl Connection {
    async fn run(mut self) {
        let _gauge = Gauge::open();
        let state = self.session.app();
        let mut changes = state.sync_hub.subscribe();
        let mut ended_sessions = state.sync_hub.ended_sessions();
        let shutdown = state.shutdown.clone();
        let token_expiry = token_expiry(self.session.user().expires_at);
        tokio::pin!(token_expiry);
        let mut session_check = tokio::time::interval(state.config.session_check);
        let idle_timeout = state.config.sync_idle_timeout;
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
                () = &mut token_expiry => Err(SessionError::Ended("access token expired").into()),
                _ = session_check.tick() => self.session.check_user().await.map(|()| true).map_err(Fault::from),
                // A peer that answers nothing, not even pings, is gone.
                _ = ping.tick() => if heard_at.elapsed() >= idle_timeout {
                    Err(SessionError::Ended("idle").into())
                } else {
                    self.send_frame(ws::Message::Ping(Default::default()))
                        .await
                        .map(|()| true)
                },
                ended = ended_sessions.recv() => match ended {
                    Ok(session) if !session.is_empty() && session == self.session.user().session => {
                        Err(SessionError::Ended("logged out").into())
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => Ok(true),
                    Err(RecvError::Closed) => break Ok(()),
                },
                frame = self.socket.recv() => {
                    heard_at = tokio::time::Instant::now();
                    match frame {
                        None | Some(Ok(ws::Message::Close(_))) => break Ok(()),
                        Some(Err(e)) => Err(malformed(format!("unreadable frame: {e}"))),
                        Some(Ok(ws::Message::Binary(bytes))) => self.handle_frame(&bytes).await,
                        Some(Ok(ws::Message::Text(_))) => Err(malformed(
                            "text frames are not part of the protocol; send binary frames".to_owned(),
                        )),
                        // axum answers pings itself.
                        Some(Ok(ws::Message::Ping(_) | ws::Message::Pong(_))) => Ok(true),
                    }
                }
                changed = changes.recv() => match changed {
                    Ok(c) if c.origin == self.session.id() => Ok(true),
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
            Err(Fault::Session(SessionError::Protocol(e))) => {
                tracing::info!(error = %e, "closing sync connection");
                Some(ServerConnection::error_message(&e))
            }
            Err(Fault::Session(SessionError::Ended(why))) => {
                tracing::info!(reason = why, "ending sync session");
                metrics::sync_session_ended(why);
                let ended = ProtocolError::Refused(format!("session ended: {why}"));
                Some(ServerConnection::error_message(&ended))
            }
            Err(Fault::Session(SessionError::Internal(detail))) => {
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
        self.session.save_all_sync_states().await;
        if writable {
            let _ = self.send_frame(ws::Message::Close(None)).await;
        }
        // Dropping the socket closes it, however far a write got.
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
        let limit = self.session.app().config.sync_send_timeout;
        match tokio::time::timeout(limit, self.socket.send(frame)).await {
            Ok(sent) => sent.map_err(Fault::Socket),
            Err(_) => {
                metrics::sync_send_timeout();
                tracing::warn!(
                    user_id = self.session.user().user_id,
                    device_id = %self.session.user().device_id,
                    timeout_secs = limit.as_secs_f64(),
                    "sync peer took no data within the send timeout; closing its connection"
                );
                Err(Fault::SendTimeout)
            }
        }
    }

    /// Hands one binary frame to the session and sends what it answers;
    /// `Ok(false)` when the client said goodbye.
    async fn handle_frame(&mut self, bytes: &[u8]) -> Result<bool, Fault> {
        match self.session.receive(bytes).await? {
            Received::Close => Ok(false),
            Received::Send { messages, stored } => {
                for message in &messages {
                    self.send(message).await?;
                }
                if let Some(document_id) = stored {
                    self.session.save_sync_state(document_id).await;
                }
                Ok(true)
            }
        }
    }

    /// Offers a document that changed elsewhere, if this connection syncs it.
    async fn push(&mut self, document_id: DocumentId) -> Result<(), Fault> {
        match self.session.offer(document_id).await? {
            Some(m) => self.send(&m).await,
            None => Ok(()),
        }
    }

    async fn push_all(&mut self) -> Result<(), Fault> {
        for id in self.session.documents() {
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
