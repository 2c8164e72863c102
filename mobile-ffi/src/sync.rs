//! `sync_now`: one WebSocket to the server, every document of the user synced
//! over it with sync-core's `ClientConnection`, everything received stored as
//! it arrives. Cut off at any point, nothing is lost: local edits were stored
//! before the sync began, received changes are stored with their sync state
//! in one transaction, and the next sync starts from whatever was stored.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sync_core::DocumentId;
use sync_core::protocol::{ClientConnection, ClientEvent, DocSyncStatus, Message, ProtocolError};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::core::{Core, describe, lock};
use crate::report::{SyncErrorKind, SyncReport};
use crate::store::keys;
use crate::{ClientError, clock};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An access token this close to expiry is refreshed first, so it does not
/// expire between the check and the upgrade.
const EXPIRY_MARGIN_MS: i64 = 60_000;

fn offline(e: impl std::error::Error) -> ClientError {
    ClientError::Offline {
        detail: crate::error::with_causes(&e),
    }
}

fn closed() -> ClientError {
    ClientError::Offline {
        detail: "the server closed the connection".to_owned(),
    }
}

fn protocol(e: ProtocolError) -> ClientError {
    match e {
        ProtocolError::Remote(message) => ClientError::ServerRefused {
            status: 0,
            detail: message,
        },
        other => ClientError::internal(other),
    }
}

impl Core {
    /// A valid access token: the stored one, or a fresh one from the stored
    /// refresh token (`force` skips the stored one, after the server refused it).
    pub(crate) async fn access_token(&self, force: bool) -> Result<String, ClientError> {
        let _one = self.auth_lock.lock().await;
        let (access, expires, refresh) = {
            let store = lock(&self.store);
            (
                store.setting(keys::ACCESS_TOKEN)?,
                store
                    .setting(keys::ACCESS_EXPIRES_MS)?
                    .and_then(|s| s.parse::<i64>().ok()),
                store.setting(keys::REFRESH_TOKEN)?,
            )
        };
        let now = clock::now().millis();
        if !force
            && let (Some(access), Some(expires)) = (access, expires)
            && expires - EXPIRY_MARGIN_MS > now
        {
            return Ok(access);
        }
        let refresh = refresh.ok_or(ClientError::NotLoggedIn)?;
        let tokens = self.http.refresh(&refresh, now).await?;
        // Stored before anything else happens: the old refresh token is
        // spent, and losing the new one would lock the cadre out.
        lock(&self.store).set_settings(&[
            (keys::ACCESS_TOKEN, Some(&tokens.access)),
            (
                keys::ACCESS_EXPIRES_MS,
                Some(&tokens.access_expires_ms.to_string()),
            ),
            (keys::REFRESH_TOKEN, Some(&tokens.refresh)),
        ])?;
        Ok(tokens.access)
    }

    async fn open_socket(&self, token: &str) -> Result<Ws, ClientError> {
        let mut request = self
            .http
            .sync_url()?
            .into_client_request()
            .map_err(ClientError::internal)?;
        let header = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::internal("the access token is not a valid header"))?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, header);
        #[cfg(feature = "tls")]
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            None,
            false,
            Some(tokio_tungstenite::Connector::Rustls(self.http.tls())),
        );
        #[cfg(not(feature = "tls"))]
        let connecting = tokio_tungstenite::connect_async(request);
        match connecting.await {
            Ok((ws, _)) => Ok(ws),
            Err(tungstenite::Error::Http(response)) => {
                let status = response.status().as_u16();
                let message = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err(if status == 401 {
                    ClientError::Unauthorised { detail: message }
                } else {
                    ClientError::ServerRefused {
                        status,
                        detail: message,
                    }
                })
            }
            Err(e) => Err(offline(e)),
        }
    }

    /// Syncs everything within `deadline`. Never fails: the report says what
    /// happened, including why it stopped short.
    pub(crate) async fn sync_now(&self, deadline: Duration) -> SyncReport {
        let _one = self.sync_lock.lock().await;
        let _syncing = Syncing::start(&self.syncing);
        let mut report = SyncReport::default();
        let mut changed = BTreeSet::new();
        let outcome =
            tokio::time::timeout(deadline, self.sync_all(&mut report, &mut changed)).await;
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(ClientError::Deadline),
        };
        if let Err(e) = self.finish(&mut report, error, &changed) {
            // Bookkeeping failed (disk full); the sync itself is reported.
            report.error.get_or_insert(SyncErrorKind::from(&e));
            report.error_message.get_or_insert(e.to_string());
        }
        report
    }

    fn finish(
        &self,
        report: &mut SyncReport,
        error: Option<ClientError>,
        changed: &BTreeSet<DocumentId>,
    ) -> Result<(), ClientError> {
        report.error = error.as_ref().map(SyncErrorKind::from);
        report.error_message = error.as_ref().map(ToString::to_string);
        report.changed_documents = changed.iter().map(ToString::to_string).collect();
        self.refresh_indexes()?;
        let now = clock::now().millis().to_string();
        let mut store = lock(&self.store);
        report.changes_pending = store.pending_changes()?;
        let error_name = report.error.map(|k| format!("{k:?}"));
        let mut settings = vec![
            (keys::LAST_ATTEMPT_MS, Some(now.as_str())),
            (keys::LAST_ERROR, error_name.as_deref()),
        ];
        if report.error.is_none() {
            settings.push((keys::LAST_SUCCESS_MS, Some(now.as_str())));
        }
        store.set_settings(&settings)?;
        drop(store);
        if !changed.is_empty() {
            let observer = lock(&self.observer).clone();
            if let Some(observer) = observer {
                observer.documents_changed(report.changed_documents.clone());
            }
        }
        Ok(())
    }

    async fn sync_all(
        &self,
        report: &mut SyncReport,
        changed: &mut BTreeSet<DocumentId>,
    ) -> Result<(), ClientError> {
        self.username()?;
        // The connection's name in the protocol, in every message both ways:
        // short, and new on each connection. The server knows the device
        // from the token, not from this. The join asks the server to list
        // the cadre's documents with their heads: a reinstalled phone
        // learns its documents from it, and a document whose heads are the
        // phone's is left out of the sync.
        let peer_id = format!("{:08x}", rand::random::<u32>());
        let (mut conn, join) = ClientConnection::listing(peer_id);
        {
            let mut docs = lock(&self.docs);
            let store = lock(&self.store);
            for stored in store.documents()? {
                Self::load_into(&mut docs, &store, &stored.id)?;
                match store.sync_state(&stored.id)? {
                    Some(state) => conn.add_document_with_state(stored.id, &state),
                    None => conn.add_document(stored.id),
                }
            }
        }

        let mut ws = match self.open_socket(&self.access_token(false).await?).await {
            Err(ClientError::Unauthorised { .. }) => {
                self.open_socket(&self.access_token(true).await?).await?
            }
            other => other?,
        };
        send(&mut ws, &join, report).await?;

        loop {
            let (outgoing, quiescent) = {
                let docs = lock(&self.docs);
                let out = conn.poll(&*docs);
                // Checked whether or not there is something to send: the
                // last message is often our acknowledgement, which the
                // server need not answer.
                let quiescent = conn.is_quiescent(&*docs);
                (out, quiescent)
            };
            for m in &outgoing {
                send(&mut ws, m, report).await?;
            }
            if quiescent {
                break;
            }
            let frame = ws.next().await.ok_or_else(closed)?.map_err(offline)?;
            let bytes = match frame {
                tungstenite::Message::Binary(b) => b,
                tungstenite::Message::Close(_) => {
                    return Err(closed());
                }
                // Pings are answered by tungstenite; text frames are not ours.
                _ => continue,
            };
            report.bytes_down += bytes.len() as u64;
            let message = Message::decode(&bytes).map_err(ClientError::internal)?;
            self.receive(&mut conn, message, report, changed)?;
        }

        // Everything is exchanged: keep the sync states, settle the counts.
        {
            let docs = lock(&self.docs);
            let mut store = lock(&self.store);
            for id in conn.documents() {
                if let Some(state) = conn.sync_state(id)
                    && docs.contains_key(id)
                {
                    store.save_sync_state(id, &state)?;
                }
                match conn.status(id, &*docs) {
                    Some(DocSyncStatus::Synced) => {
                        report.changes_up += store.mark_synced(id)?;
                        report.documents_synced += 1;
                    }
                    Some(DocSyncStatus::Pending) => report.documents_pending += 1,
                    Some(DocSyncStatus::Unavailable) | None => {}
                }
            }
        }
        // Advisory; the server copes with a socket that just closes.
        let _ = send(&mut ws, &conn.leave(), report).await;
        let _ = ws.close(None).await;
        Ok(())
    }

    /// Hands one message to the connection and stores what it changed,
    /// before the next message is read.
    fn receive(
        &self,
        conn: &mut ClientConnection,
        message: Message,
        report: &mut SyncReport,
        changed: &mut BTreeSet<DocumentId>,
    ) -> Result<(), ClientError> {
        let about = match &message {
            Message::Sync { document_id, .. } | Message::Request { document_id, .. } => {
                Some(*document_id)
            }
            _ => None,
        };
        let mut docs = lock(&self.docs);
        let events = conn.handle(message, &mut *docs).map_err(protocol)?;
        let mut to_store = BTreeSet::new();
        for event in events {
            if let ClientEvent::Changed {
                document_id,
                changes,
            } = event
            {
                report.changes_down += changes as u64;
                changed.insert(document_id);
                to_store.insert(document_id);
            }
        }
        // A change whose parent has not arrived waits in automerge's queue
        // without moving the heads; the server counts it as sent and will not
        // send it again, so it is stored now, like any other.
        if let Some(id) = about
            && docs
                .get(&id)
                .is_some_and(sync_core::storage::has_waiting_changes)
        {
            to_store.insert(id);
        }
        for id in to_store {
            let Some(doc) = docs.get(&id) else {
                continue;
            };
            let meta = describe(id, doc);
            let state = conn.sync_state(&id);
            lock(&self.store).save_received(
                &meta,
                &sync_core::storage::snapshot(doc),
                state.as_deref(),
                clock::now().millis(),
            )?;
        }
        Ok(())
    }
}

/// Marks a sync as running until dropped: a cancelled `sync_now` (its
/// future dropped by a coroutine timeout or `Task.cancel`) must not leave
/// `sync_status().syncing` stuck on.
struct Syncing<'a>(&'a AtomicBool);

impl<'a> Syncing<'a> {
    fn start(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Self(flag)
    }
}

impl Drop for Syncing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

async fn send(ws: &mut Ws, message: &Message, report: &mut SyncReport) -> Result<(), ClientError> {
    let bytes = message.encode();
    report.bytes_up += bytes.len() as u64;
    ws.send(tungstenite::Message::Binary(bytes.into()))
        .await
        .map_err(offline)
}

#[cfg(test)]
mod tests;
