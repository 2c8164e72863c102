//! The receiving side of a connection: the server. It asks the caller
//! what the peer may do with each document it names (the caller answers
//! from its database), decides from that answer what to send, and
//! acknowledges changes only after the caller stored them.

use std::collections::{BTreeMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, Change, ChangeHash, SaveOptions};

use super::doc_sync;
use super::message::{ListedDocument, MAX_LISTED_HEADS, Message, PROTOCOL_VERSION, PeerMetadata};
use super::payload::{PayloadError, PayloadLimits};
use super::{Access, AccessPolicy, ProtocolError};
use crate::DocumentId;

/// What the caller must do with a message.
#[derive(Debug)]
pub enum ServerStep {
    /// Send these messages (a handshake answer, `doc-unavailable`), possibly none.
    Reply(Vec<Message>),
    /// The peer named a document this connection has not decided on yet:
    /// look up what the authenticated user may do with it and answer with
    /// [`ServerConnection::grant`], which returns the step to carry out.
    /// The connection keeps the message until then and handles nothing else.
    Decide {
        /// The document to decide on.
        document_id: DocumentId,
    },
    /// The `join` asked for the user's documents: look up the documents the
    /// authenticated user owns with their stored heads and answer with
    /// [`ServerConnection::list`], which returns the `peer` to send. The
    /// connection handles nothing else until then.
    List,
    /// A sync message for a document the peer may access.
    Sync(SyncStep),
    /// The peer said goodbye; close the connection.
    Close,
}

/// A sync message for a document the peer may access: load the document
/// (empty if new), [`ServerConnection::apply`] the message, store what it
/// added durably, and only then send [`ServerConnection::reply`].
#[derive(Debug)]
pub struct SyncStep {
    pub document_id: DocumentId,
    /// What the peer may do with it.
    pub access: Access,
    /// The decoded automerge sync message.
    pub message: Box<sync::Message>,
    /// Whether it came as `request` (answer `doc-unavailable` if we have
    /// nothing).
    pub is_request: bool,
}

/// What [`ServerConnection::grant`] decided for the message that waited.
#[derive(Debug)]
pub enum Granted {
    /// The peer may access the document: carry out the sync.
    Sync(SyncStep),
    /// It may not: send this `doc-unavailable`, exactly what a missing
    /// document gets.
    Unavailable(Message),
}

impl From<Granted> for ServerStep {
    fn from(granted: Granted) -> Self {
        match granted {
            Granted::Sync(step) => ServerStep::Sync(step),
            Granted::Unavailable(message) => ServerStep::Reply(vec![message]),
        }
    }
}

/// After this many answered rounds in a row in which neither side's heads
/// moved, a document's sync with the peer starts afresh (see
/// [`ServerConnection::reply`]). A sync that makes progress changes some
/// heads every round or two; duplicated frames on a flaky link account for
/// a few more.
pub const MAX_STALLED_ROUNDS: u32 = 8;

/// The outcome of applying a sync message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncApplied {
    /// The document's heads before the message.
    pub heads_before: Vec<ChangeHash>,
    /// How many changes the message added.
    pub changes_added: usize,
    /// Raw changes the message carried that wait for dependencies the
    /// document does not have yet (see [`crate::storage`]): they must be
    /// stored too, or the server would forget them while the peer counts
    /// them as delivered.
    pub waiting: Vec<Vec<u8>>,
    /// The peer sent changes it may not write; they were not applied.
    pub refused_changes: bool,
    /// The changes the message added, as it carried them (one change chunk
    /// each), when they are exactly what it added: a message of change
    /// chunks only, to a document with no change waiting before or after.
    /// `None` otherwise (a document chunk, duplicates, waiting changes):
    /// ask the document (`get_changes` after [`Self::heads_before`]),
    /// which builds them again from its operations at a cost that grows
    /// with the document.
    pub added: Option<Vec<Vec<u8>>>,
}

impl SyncApplied {
    /// What to store durably before answering: the changes the message added
    /// to `doc` (`save_after` the old heads, or the whole document,
    /// compressed, when it had none: one change at a time would take about
    /// ten times the bytes of a first upload), then those still waiting.
    /// `None` when the message brought nothing new.
    pub fn chunk(&self, doc: &Automerge) -> Option<Vec<u8>> {
        if self.changes_added == 0 && self.waiting.is_empty() {
            return None;
        }
        let mut chunk = if self.changes_added == 0 {
            Vec::new()
        } else if let Some(added) = self
            .added
            .as_ref()
            .filter(|_| !self.heads_before.is_empty())
        {
            added.concat()
        } else if self.heads_before.is_empty() {
            // Without the queued changes: those the message left waiting
            // follow, and any older ones are stored already.
            doc.save_with_options(SaveOptions {
                deflate: true,
                retain_orphans: false,
            })
        } else {
            doc.save_after(&self.heads_before)
        };
        for change in &self.waiting {
            chunk.extend_from_slice(change);
        }
        Some(chunk)
    }
}

/// Why [`ServerConnection::apply_checked`] did not apply a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Its changes were refused before automerge saw them; the document
    /// is untouched.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The message could not be applied (see [`ServerConnection::apply`]).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// The answer to a sync message.
#[derive(Debug)]
pub struct SyncReply {
    /// The message to send, if there is anything to say.
    pub message: Option<Message>,
    /// The document's sync had made no progress for
    /// [`MAX_STALLED_ROUNDS`] rounds and was restarted; `message` asks the
    /// peer to start afresh too. Worth a log line and a metric.
    pub restarted: bool,
}

#[derive(Debug)]
enum Phase {
    AwaitingJoin,
    /// The `join` asked for a list of documents ([`ServerStep::List`]).
    AwaitingList {
        client: String,
    },
    Ready {
        client: String,
    },
}

/// A `sync` or `request` waiting for the caller's access decision.
#[derive(Debug)]
struct Pending {
    document_id: DocumentId,
    message: sync::Message,
    is_request: bool,
}

#[derive(Debug)]
struct ServerDoc {
    state: sync::State,
    access: Access,
    /// Both sides' heads when the last answer was sent, to tell a round
    /// that moved something from one that did not.
    last_round: Option<(Vec<ChangeHash>, Option<Vec<ChangeHash>>)>,
    /// Answered rounds in a row without progress.
    stalled_rounds: u32,
}

impl ServerDoc {
    fn new(access: Access) -> Self {
        ServerDoc {
            state: fresh_state(access),
            access,
            last_round: None,
            stalled_rounds: 0,
        }
    }
}

fn fresh_state(access: Access) -> sync::State {
    if access == Access::Read {
        sync::State::new_read_only()
    } else {
        sync::State::new()
    }
}

/// The server's state on one connection.
#[derive(Debug)]
pub struct ServerConnection {
    peer_id: String,
    metadata: Option<PeerMetadata>,
    phase: Phase,
    docs: BTreeMap<DocumentId, ServerDoc>,
    /// The message whose document is being decided ([`ServerStep::Decide`]).
    pending: Option<Pending>,
    /// Documents decided on this connection, granted or not.
    decided: HashSet<DocumentId>,
    /// Most documents one connection may ask about.
    max_documents: usize,
}

impl ServerConnection {
    /// A new connection; the server announces itself as `peer_id`.
    pub fn new(peer_id: impl Into<String>) -> Self {
        Self {
            peer_id: peer_id.into(),
            metadata: Some(PeerMetadata::default()),
            phase: Phase::AwaitingJoin,
            docs: BTreeMap::new(),
            pending: None,
            decided: HashSet::new(),
            max_documents: usize::MAX,
        }
    }

    /// Bounds how many documents the peer may name on this connection
    /// (each costs the caller an access decision, usually a database read).
    /// Naming one more is refused with an error that ends the connection;
    /// the peer reconnects for the rest.
    pub fn with_document_limit(mut self, max_documents: usize) -> Self {
        self.max_documents = max_documents;
        self
    }

    /// The peer id the client announced (for logs only: it proves nothing).
    pub fn client_peer_id(&self) -> Option<&str> {
        match &self.phase {
            Phase::Ready { client } | Phase::AwaitingList { client } => Some(client),
            Phase::AwaitingJoin => None,
        }
    }

    /// The documents this connection syncs, with the access granted.
    pub fn documents(&self) -> impl Iterator<Item = (&DocumentId, Access)> {
        self.docs.iter().map(|(id, d)| (id, d.access))
    }

    fn unavailable(&self, document_id: DocumentId) -> Message {
        Message::DocUnavailable {
            document_id,
            sender_id: self.peer_id.clone(),
            target_id: self.client_peer_id().unwrap_or_default().to_owned(),
        }
    }

    /// Handles one message from the client. A `sync` or `request` for a
    /// document not decided yet returns [`ServerStep::Decide`]; answer it
    /// with [`Self::grant`] before handling another message.
    pub fn handle(&mut self, message: Message) -> Result<ServerStep, ProtocolError> {
        let unexpected = |m: &Message, phase| ProtocolError::Unexpected {
            message: m.type_name().to_owned(),
            phase,
        };
        if self.pending.is_some() {
            return Err(ProtocolError::Unexpected {
                message: message.type_name().to_owned(),
                phase: "while access to the previous message's document is being decided",
            });
        }

        match (&self.phase, message) {
            (_, Message::Error { message }) => Err(ProtocolError::Remote(message)),
            (_, Message::Leave { .. }) => Ok(ServerStep::Close),
            (
                Phase::AwaitingJoin,
                Message::Join {
                    sender_id,
                    supported_protocol_versions,
                    metadata,
                },
            ) => {
                if !supported_protocol_versions
                    .iter()
                    .any(|v| v == PROTOCOL_VERSION)
                {
                    return Err(ProtocolError::Version {
                        offered: supported_protocol_versions,
                    });
                }
                if metadata.is_some_and(|m| m.list_documents) {
                    self.phase = Phase::AwaitingList { client: sender_id };
                    return Ok(ServerStep::List);
                }
                self.phase = Phase::Ready {
                    client: sender_id.clone(),
                };
                Ok(ServerStep::Reply(vec![self.peer(sender_id, None)]))
            }
            (Phase::AwaitingJoin, m) => Err(unexpected(&m, "before join")),
            (Phase::AwaitingList { .. }, m) => Err(unexpected(
                &m,
                "while the documents the join asked for are being listed",
            )),
            (Phase::Ready { .. }, m @ (Message::Join { .. } | Message::Peer { .. })) => {
                Err(unexpected(&m, "after the handshake"))
            }
            (Phase::Ready { .. }, m @ (Message::Sync { .. } | Message::Request { .. })) => {
                let is_request = matches!(m, Message::Request { .. });
                let (Message::Sync {
                    document_id, data, ..
                }
                | Message::Request {
                    document_id, data, ..
                }) = m
                else {
                    return Ok(ServerStep::Reply(vec![]));
                };
                // Decode before deciding access, so a malformed message is an
                // error whatever the document, and a denied document still
                // answers exactly like a missing one.
                let message = doc_sync::decode_sync(&document_id, &data)?;
                if let Some(d) = self.docs.get(&document_id) {
                    return Ok(ServerStep::Sync(SyncStep {
                        document_id,
                        access: d.access,
                        message: Box::new(message),
                        is_request,
                    }));
                }
                if self.decided.len() >= self.max_documents && !self.decided.contains(&document_id)
                {
                    return Err(ProtocolError::Refused(format!(
                        "more than {} documents on one connection; reconnect for more",
                        self.max_documents
                    )));
                }
                self.pending = Some(Pending {
                    document_id,
                    message,
                    is_request,
                });
                Ok(ServerStep::Decide { document_id })
            }
            // The client says it lacks a document we offered: nothing to do.
            (Phase::Ready { .. }, Message::DocUnavailable { .. }) => Ok(ServerStep::Reply(vec![])),
            // Ephemeral messages are not relayed, and other types are not acted on.
            (Phase::Ready { .. }, _) => Ok(ServerStep::Reply(vec![])),
        }
    }

    /// Answers [`ServerStep::Decide`]: what the peer may do with the
    /// document. Returns the step for the message that asked: the sync to
    /// carry out, or `doc-unavailable` when `access` is [`Access::None`]
    /// (exactly what a missing document gets, so the peer cannot tell the
    /// two apart). Only a message's own document is ever granted.
    pub fn grant(
        &mut self,
        document_id: &DocumentId,
        access: Access,
    ) -> Result<Granted, ProtocolError> {
        let Some(pending) = self.pending.take_if(|p| p.document_id == *document_id) else {
            return Err(ProtocolError::Unexpected {
                message: "access decision".into(),
                phase: "for a document no message is waiting on",
            });
        };
        self.decided.insert(pending.document_id);
        if access == Access::None {
            return Ok(Granted::Unavailable(self.unavailable(pending.document_id)));
        }
        self.docs
            .insert(pending.document_id, ServerDoc::new(access));
        Ok(Granted::Sync(SyncStep {
            document_id: pending.document_id,
            access,
            message: Box::new(pending.message),
            is_request: pending.is_request,
        }))
    }

    /// Answers [`ServerStep::List`] with the documents the user owns and
    /// their stored heads; returns the `peer` to send. A document with more
    /// than [`MAX_LISTED_HEADS`] heads is listed with unknown heads.
    pub fn list(&mut self, documents: Vec<ListedDocument>) -> Result<Message, ProtocolError> {
        let Phase::AwaitingList { client } = &self.phase else {
            return Err(ProtocolError::Unexpected {
                message: "list of documents".into(),
                phase: "without a join that asked for one",
            });
        };
        let client = client.clone();
        let documents = documents
            .into_iter()
            .map(|mut d| {
                if let Some(heads) = &mut d.heads {
                    if heads.len() > MAX_LISTED_HEADS {
                        d.heads = None;
                    } else {
                        heads.sort();
                    }
                }
                d
            })
            .collect();
        self.phase = Phase::Ready {
            client: client.clone(),
        };
        Ok(self.peer(client, Some(documents)))
    }

    fn peer(&self, client: String, documents: Option<Vec<ListedDocument>>) -> Message {
        let mut metadata = self.metadata.clone().unwrap_or_default();
        metadata.documents = documents;
        Message::Peer {
            sender_id: self.peer_id.clone(),
            target_id: client,
            selected_protocol_version: PROTOCOL_VERSION.to_owned(),
            metadata: Some(metadata),
        }
    }

    /// [`Self::handle`], with every access decision answered at once by
    /// `policy`: for callers that decide without I/O (tests, tools).
    pub fn handle_with(
        &mut self,
        message: Message,
        policy: &dyn AccessPolicy,
    ) -> Result<ServerStep, ProtocolError> {
        match self.handle(message)? {
            ServerStep::Decide { document_id } => self
                .grant(&document_id, policy.access(&document_id))
                .map(ServerStep::from),
            ServerStep::List => Ok(ServerStep::Reply(vec![self.list(policy.documents())?])),
            step => Ok(step),
        }
    }

    /// Applies a sync message the caller was given in [`ServerStep::Sync`]
    /// to the document. Changes from a read-only peer are not applied.
    /// Store [`SyncApplied::chunk`] before asking for the [`Self::reply`].
    pub fn apply(
        &mut self,
        document_id: &DocumentId,
        doc: &mut Automerge,
        message: sync::Message,
    ) -> Result<SyncApplied, ProtocolError> {
        self.apply_loaded(document_id, doc, message, None)
    }

    /// [`Self::apply`], once the message's changes pass
    /// [`payload::check`](super::payload::check) against `limits` when the
    /// peer may write the document (a reader's changes are refused anyway).
    /// A first upload's document chunk, loaded by the check, is then taken
    /// as it is instead of being loaded a second time.
    pub fn apply_checked(
        &mut self,
        document_id: &DocumentId,
        doc: &mut Automerge,
        message: sync::Message,
        limits: &PayloadLimits,
    ) -> Result<SyncApplied, ApplyError> {
        let writes = self
            .docs
            .get(document_id)
            .is_some_and(|d| d.access == Access::ReadWrite);
        let loaded = if writes && !message.changes.is_empty() {
            super::payload::check_keeping(doc, &message, limits)?
        } else {
            None
        };
        Ok(self.apply_loaded(document_id, doc, message, loaded)?)
    }

    fn apply_loaded(
        &mut self,
        document_id: &DocumentId,
        doc: &mut Automerge,
        message: sync::Message,
        loaded: Option<Automerge>,
    ) -> Result<SyncApplied, ProtocolError> {
        let Some(d) = self.docs.get_mut(document_id) else {
            return Err(ProtocolError::Unexpected {
                message: "sync".into(),
                phase: "for a document the connection was not granted",
            });
        };
        let refused_changes = d.access == Access::Read && !message.changes.is_empty();
        // Kept until automerge has taken what it can: the rest must be stored.
        // A v2 message puts several chunks in one entry; each is judged
        // alone. A document chunk never waits: it holds every dependency.
        let received: Vec<Vec<u8>> = if refused_changes {
            Vec::new()
        } else {
            message
                .changes
                .iter()
                .flat_map(|entry| match super::payload::chunks_of(entry) {
                    Some(chunks) => chunks
                        .into_iter()
                        .filter(|(chunk_type, _)| *chunk_type != super::payload::CHUNK_DOCUMENT)
                        .map(|(_, chunk)| chunk.to_vec())
                        .collect(),
                    None => vec![entry.to_vec()],
                })
                .collect()
        };
        // Each entry one change chunk, each once, and nothing queued: then
        // what the message added is what it carried that the document
        // lacked, and when the count says it lacked all of them, their own
        // bytes are the added changes.
        let mut carried: Option<Vec<Vec<u8>>> = (!refused_changes
            && !message.changes.is_empty()
            && !crate::storage::has_waiting_changes(doc))
        .then(|| {
            let mut seen = std::collections::HashSet::new();
            message
                .changes
                .iter()
                .map(|entry| {
                    let change = automerge::Change::try_from(entry).ok()?;
                    seen.insert(change.hash()).then(|| entry.to_vec())
                })
                .collect::<Option<Vec<_>>>()
        })
        .flatten();
        let (heads_before, changes_added) =
            doc_sync::receive(document_id, doc, &mut d.state, message, loaded)?;
        let has_waiting = crate::storage::has_waiting_changes(doc);
        if has_waiting || carried.as_ref().is_some_and(|c| c.len() != changes_added) {
            carried = None;
        }
        let waiting = if has_waiting {
            received
                .into_iter()
                .filter(|raw| still_waiting(doc, raw))
                .collect()
        } else {
            Vec::new()
        };
        Ok(SyncApplied {
            heads_before,
            changes_added,
            waiting,
            refused_changes,
            added: carried,
        })
    }

    /// The answer to a sync message, to send once what it added is stored.
    /// A `request` for a document we have nothing of is answered
    /// `doc-unavailable`, exactly as for a document the peer may not access.
    ///
    /// No exchange runs forever: after [`MAX_STALLED_ROUNDS`] answers in a
    /// row that found both sides' heads where the previous one left them,
    /// the document's sync state is thrown away and the answer is made from
    /// a fresh one with empty heads, which tells any automerge peer to
    /// forget what it believes it sent and start over.
    pub fn reply(
        &mut self,
        document_id: &DocumentId,
        doc: &Automerge,
        is_request: bool,
    ) -> SyncReply {
        if is_request && doc.get_heads().is_empty() {
            self.docs.remove(document_id);
            return SyncReply {
                message: Some(self.unavailable(*document_id)),
                restarted: false,
            };
        }
        let message = self.push(document_id, doc);
        let Some(d) = self.docs.get_mut(document_id) else {
            return SyncReply {
                message,
                restarted: false,
            };
        };
        let round = (doc.get_heads(), d.state.their_heads.clone());
        let progressed = d.last_round.as_ref() != Some(&round);
        d.last_round = Some(round);
        d.stalled_rounds = if message.is_none() || progressed {
            0
        } else {
            d.stalled_rounds + 1
        };
        if d.stalled_rounds < MAX_STALLED_ROUNDS {
            return SyncReply {
                message,
                restarted: false,
            };
        }
        *d = ServerDoc::new(d.access);
        // With no capabilities known for the peer, automerge signals the
        // reset by sending empty heads ("I lost everything"), which every
        // version understands.
        d.state.needs_reset = true;
        SyncReply {
            message: self.push(document_id, doc),
            restarted: true,
        }
    }

    /// A sync message for a document that changed elsewhere (another
    /// connection, a supervisor's action), if this connection syncs it and
    /// the peer lacks something.
    ///
    /// Messages carry automerge's capability flags, so a peer learns that
    /// this side takes v2 sync messages and sends a document the server has
    /// none of as one compressed document chunk (about its `save()` size),
    /// which [`payload::check`](super::payload::check) bounds before it is
    /// merged.
    pub fn push(&mut self, document_id: &DocumentId, doc: &Automerge) -> Option<Message> {
        let client = self.client_peer_id()?.to_owned();
        let d = self.docs.get_mut(document_id)?;
        let m = doc.generate_sync_message(&mut d.state)?;
        Some(Message::Sync {
            document_id: *document_id,
            sender_id: self.peer_id.clone(),
            target_id: client,
            data: m.encode(),
        })
    }

    /// Resumes a document's sync state saved after an earlier connection of
    /// the same device ([`Self::sync_state`]), so only new changes are
    /// summarised. Call it after [`ServerStep::Sync`] and before the first
    /// [`Self::apply`] of that document; later calls, and states that do
    /// not decode, are ignored.
    pub fn restore_sync_state(&mut self, document_id: &DocumentId, saved: &[u8]) {
        let Some(d) = self.docs.get_mut(document_id) else {
            return;
        };
        if d.state.their_heads.is_some() {
            return;
        }
        if let Ok(mut state) = sync::State::decode(saved) {
            state.read_only = d.access == Access::Read;
            d.state = state;
        }
    }

    /// The sync state worth keeping for the device's next connection.
    pub fn sync_state(&self, document_id: &DocumentId) -> Option<Vec<u8>> {
        self.docs.get(document_id).map(|d| d.state.encode())
    }

    /// Forgets a document on this connection, e.g. after the caller refused
    /// to store what the peer sent; the next message about it starts afresh
    /// (with a new [`ServerStep::Decide`]). Returns the `doc-unavailable` to send.
    pub fn forget(&mut self, document_id: &DocumentId) -> Message {
        self.docs.remove(document_id);
        self.unavailable(*document_id)
    }

    /// The `error` message to send before closing on `err`.
    pub fn error_message(err: &ProtocolError) -> Message {
        Message::Error {
            message: err.to_string(),
        }
    }
}

/// Whether a raw change from a sync message is neither applied to `doc` nor
/// unreadable (an unreadable one is kept, to be safe: replaying it is
/// harmless, losing it is not).
fn still_waiting(doc: &Automerge, raw: &[u8]) -> bool {
    Change::try_from(raw).map_or(true, |change| {
        doc.get_change_meta_by_hash(&change.hash()).is_none()
    })
}
