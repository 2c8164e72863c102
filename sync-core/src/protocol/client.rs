//! The initiating side of a connection: a phone syncing its documents.

use std::collections::BTreeMap;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};

use super::ProtocolError;
use super::doc_sync;
use super::message::{ListedDocument, Message, PROTOCOL_VERSION, PeerMetadata};
use crate::DocumentId;

/// Where a document stands on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocSyncStatus {
    /// Messages are still to be exchanged.
    Pending,
    /// The server has told us it has exactly our heads (in a sync message,
    /// or by listing them in the handshake).
    Synced,
    /// The server does not have the document, or may not share it.
    Unavailable,
}

/// Something the caller may want to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The handshake finished.
    Ready { server_peer_id: String },
    /// Changes from the server were applied to a document.
    Changed {
        document_id: DocumentId,
        /// How many changes arrived.
        changes: usize,
    },
    /// The server does not have the document (or may not share it).
    Unavailable { document_id: DocumentId },
}

#[derive(Debug)]
enum Phase {
    AwaitingPeer,
    Ready { server: String },
}

#[derive(Debug)]
struct ClientDoc {
    state: sync::State,
    unavailable: bool,
    sent_any: bool,
    /// The heads the server listed for the document in the handshake, when
    /// this side has all of them: while the document's heads are these,
    /// there is nothing to exchange and nothing is sent.
    listed: Option<Vec<ChangeHash>>,
}

impl ClientDoc {
    fn new(state: sync::State) -> Self {
        ClientDoc {
            state,
            unavailable: false,
            sent_any: false,
            listed: None,
        }
    }

    /// Whether the server listed exactly `doc`'s heads and nothing was
    /// sent since: the document is synced without a message.
    fn settled_by_listing(&self, doc: &Automerge) -> bool {
        self.listed.as_ref().is_some_and(|listed| {
            let mut ours = doc.get_heads();
            ours.sort();
            *listed == ours
        })
    }
}

/// The documents a client syncs, however it stores them.
pub trait LocalDocuments {
    /// The document, if the client has it.
    fn get(&self, id: &DocumentId) -> Option<&Automerge>;
    /// The document, created empty if the client does not have it yet (a
    /// requested document arriving from the server).
    fn get_or_create(&mut self, id: &DocumentId) -> &mut Automerge;
}

impl LocalDocuments for BTreeMap<DocumentId, Automerge> {
    fn get(&self, id: &DocumentId) -> Option<&Automerge> {
        BTreeMap::get(self, id)
    }
    fn get_or_create(&mut self, id: &DocumentId) -> &mut Automerge {
        self.entry(*id).or_default()
    }
}

/// A client's state on one connection: the handshake, then one automerge
/// sync state per document. Create it when the socket opens, send the
/// `join` it returns, feed it every frame with [`Self::handle`], and send
/// what [`Self::poll`] returns until [`Self::is_quiescent`].
#[derive(Debug)]
pub struct ClientConnection {
    peer_id: String,
    phase: Phase,
    docs: BTreeMap<DocumentId, ClientDoc>,
}

impl ClientConnection {
    /// A new connection from `peer_id` that asks the server to list the
    /// user's documents with their heads in its `peer`; returns the `join`
    /// to send first. Each listed document is synced on this connection,
    /// except those whose listed heads are exactly this side's: nothing is
    /// sent for them. Documents added before the `peer` arrives and not
    /// listed are synced as usual (a document the server does not have yet).
    pub fn listing(peer_id: impl Into<String>) -> (Self, Message) {
        Self::new(
            peer_id,
            Some(PeerMetadata {
                list_documents: true,
                ..PeerMetadata::default()
            }),
        )
    }

    /// A new connection from `peer_id`; returns the `join` to send first.
    pub fn new(peer_id: impl Into<String>, metadata: Option<PeerMetadata>) -> (Self, Message) {
        let peer_id = peer_id.into();
        let join = Message::Join {
            sender_id: peer_id.clone(),
            supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
            metadata,
        };
        let conn = Self {
            peer_id,
            phase: Phase::AwaitingPeer,
            docs: BTreeMap::new(),
        };
        (conn, join)
    }

    /// Starts syncing a document (one we have, or one we want from the server).
    pub fn add_document(&mut self, id: DocumentId) {
        self.docs
            .entry(id)
            .or_insert_with(|| ClientDoc::new(sync::State::new()));
    }

    /// Starts syncing a document, resuming from a sync state saved after an
    /// earlier connection ([`Self::sync_state`]): only changes made since
    /// then are summarised and sent, which keeps a sync over a weak link
    /// small. A state that does not decode is ignored (a full sync follows).
    pub fn add_document_with_state(&mut self, id: DocumentId, saved: &[u8]) {
        let state = sync::State::decode(saved).unwrap_or_default();
        self.docs.insert(id, ClientDoc::new(state));
    }

    /// The sync state worth keeping for the next connection (what both sides
    /// are known to share).
    pub fn sync_state(&self, id: &DocumentId) -> Option<Vec<u8>> {
        self.docs.get(id).map(|d| d.state.encode())
    }

    /// The documents on this connection.
    pub fn documents(&self) -> impl Iterator<Item = &DocumentId> {
        self.docs.keys()
    }

    /// Whether the handshake is done.
    pub fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Ready { .. })
    }

    /// Handles one message from the server.
    pub fn handle(
        &mut self,
        message: Message,
        local: &mut dyn LocalDocuments,
    ) -> Result<Vec<ClientEvent>, ProtocolError> {
        let unexpected = |m: &Message, phase| ProtocolError::Unexpected {
            message: m.type_name().to_owned(),
            phase,
        };
        match (&self.phase, message) {
            (_, Message::Error { message }) => Err(ProtocolError::Remote(message)),
            (
                Phase::AwaitingPeer,
                Message::Peer {
                    sender_id,
                    selected_protocol_version,
                    metadata,
                    ..
                },
            ) => {
                if selected_protocol_version != PROTOCOL_VERSION {
                    return Err(ProtocolError::Version {
                        offered: vec![selected_protocol_version],
                    });
                }
                if let Some(listed) = metadata.and_then(|m| m.documents) {
                    self.take_listing(listed, local);
                }
                self.phase = Phase::Ready {
                    server: sender_id.clone(),
                };
                Ok(vec![ClientEvent::Ready {
                    server_peer_id: sender_id,
                }])
            }
            (Phase::AwaitingPeer, m) => Err(unexpected(&m, "before the handshake finished")),
            (Phase::Ready { .. }, m @ (Message::Join { .. } | Message::Peer { .. })) => {
                Err(unexpected(&m, "after the handshake"))
            }
            (
                Phase::Ready { .. },
                Message::Sync {
                    document_id, data, ..
                }
                | Message::Request {
                    document_id, data, ..
                },
            ) => {
                let message = doc_sync::decode_sync(&document_id, &data)?;
                self.add_document(document_id);
                let Some(entry) = self.docs.get_mut(&document_id) else {
                    return Ok(vec![]);
                };
                entry.unavailable = false;
                let doc = local.get_or_create(&document_id);
                let (_, changes) =
                    doc_sync::receive(&document_id, doc, &mut entry.state, message, None)?;
                Ok(if changes > 0 {
                    vec![ClientEvent::Changed {
                        document_id,
                        changes,
                    }]
                } else {
                    vec![]
                })
            }
            (Phase::Ready { .. }, Message::DocUnavailable { document_id, .. }) => {
                if let Some(d) = self.docs.get_mut(&document_id) {
                    d.unavailable = true;
                }
                Ok(vec![ClientEvent::Unavailable { document_id }])
            }
            // Ephemeral messages, leave and message types we do not act on.
            (Phase::Ready { .. }, _) => Ok(vec![]),
        }
    }

    /// Adds every listed document, and notes the listed heads of those this
    /// side has all of: they are both sides' shared heads, so a document
    /// with local changes sends exactly the changes made since them in its
    /// first message, and one with exactly those heads sends nothing.
    fn take_listing(&mut self, listed: Vec<ListedDocument>, local: &dyn LocalDocuments) {
        let empty = Automerge::new();
        for ListedDocument { id, heads } in listed {
            self.add_document(id);
            let (Some(heads), Some(d)) = (heads, self.docs.get_mut(&id)) else {
                continue;
            };
            let doc = local.get(&id).unwrap_or(&empty);
            if heads
                .iter()
                .all(|h| doc.get_change_meta_by_hash(h).is_some())
            {
                d.state.shared_heads.clone_from(&heads);
                d.listed = Some(heads);
            }
        }
    }

    /// The messages to send now: one per document that has something to say.
    /// Empty before the handshake finishes.
    pub fn poll(&mut self, local: &dyn LocalDocuments) -> Vec<Message> {
        let Phase::Ready { server } = &self.phase else {
            return Vec::new();
        };
        let empty = Automerge::new();
        let mut out = Vec::new();
        for (id, d) in &mut self.docs {
            if d.unavailable {
                continue;
            }
            let doc = local.get(id).unwrap_or(&empty);
            if !d.sent_any && d.settled_by_listing(doc) {
                continue;
            }
            let Some(mut m) = doc.generate_sync_message(&mut d.state) else {
                continue;
            };
            if !d.sent_any {
                doc_sync::send_changes_since_shared_heads(doc, &mut d.state, &mut m);
            }
            let data = m.encode();
            // A document we do not have yet is requested, so the server
            // answers `doc-unavailable` rather than waiting.
            let first_for_missing = !d.sent_any && doc.get_heads().is_empty();
            d.sent_any = true;
            out.push(if first_for_missing {
                Message::Request {
                    document_id: *id,
                    sender_id: self.peer_id.clone(),
                    target_id: server.clone(),
                    data,
                }
            } else {
                Message::Sync {
                    document_id: *id,
                    sender_id: self.peer_id.clone(),
                    target_id: server.clone(),
                    data,
                }
            });
        }
        out
    }

    /// Where a document stands.
    pub fn status(&self, id: &DocumentId, local: &dyn LocalDocuments) -> Option<DocSyncStatus> {
        let d = self.docs.get(id)?;
        if d.unavailable {
            return Some(DocSyncStatus::Unavailable);
        }
        let empty = Automerge::new();
        let doc = local.get(id).unwrap_or(&empty);
        Some(
            if doc_sync::peer_has_our_heads(doc, &d.state)
                || (!d.sent_any && d.settled_by_listing(doc))
            {
                DocSyncStatus::Synced
            } else {
                DocSyncStatus::Pending
            },
        )
    }

    /// Whether every document is synced or unavailable.
    pub fn is_quiescent(&self, local: &dyn LocalDocuments) -> bool {
        self.is_ready()
            && self
                .docs
                .keys()
                .all(|id| self.status(id, local) != Some(DocSyncStatus::Pending))
    }

    /// The advisory goodbye to send before closing.
    pub fn leave(&self) -> Message {
        Message::Leave {
            sender_id: self.peer_id.clone(),
        }
    }
}
