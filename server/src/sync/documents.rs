//! Loading a stored document and merging a sync message into it. Everything
//! here is CPU-bound automerge work: call it inside
//! `tokio::task::spawn_blocking`, holding a merge permit and the document's
//! lock (see [`SyncHub::lock`](super::SyncHub::lock)), on the document's
//! live copy ([`live`](super::live)).

use sync_core::DocumentId;
use sync_core::automerge::{self, ActorId, Automerge};
use sync_core::document::{DocumentError, read_meta};
use sync_core::protocol::{Access, ApplyError, ProtocolError, ServerConnection};

use super::payload::{PayloadError, PayloadLimits};
use crate::ledger::Attribution;
use crate::store::{NewDocument, StoredDocument};

/// Why a merge did not produce something to store.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The stored bytes do not load: our own data is damaged.
    #[error("stored document {document} does not load")]
    Load {
        document: DocumentId,
        /// What automerge said.
        #[source]
        source: Box<automerge::AutomergeError>,
    },
    /// The document (as stored, or with the message's changes) is larger than
    /// the server accepts.
    #[error("document {document} would be {size} bytes, more than the limit of {limit}")]
    TooLarge {
        document: DocumentId,
        /// Its saved size.
        size: usize,
        limit: usize,
    },
    /// The message's changes are hostile or unreadable (see
    /// [`payload`](super::payload)); nothing of them was applied.
    #[error("sync message for document {document} refused: {source}")]
    Hostile {
        document: DocumentId,
        /// What was wrong.
        #[source]
        source: PayloadError,
    },
    /// The message carries a change made with an automerge actor that
    /// belongs to another writer (another user, or the server acting for
    /// someone): a device may not write in someone else's name.
    #[error(
        "sync message for document {document} refused: actor {actor} belongs to another writer"
    )]
    ForeignActor {
        document: DocumentId,
        /// The actor, hex.
        actor: String,
    },
    /// The message carries a change that overwrites or deletes something
    /// the server wrote for a supervisor or an assignee, or writes inside an
    /// object the server created (a supervision event): such events are
    /// append-only for devices.
    #[error(
        "sync message for document {document} refused: change {change} alters what the server wrote"
    )]
    AltersServerWrites {
        document: DocumentId,
        /// The offending change's hash.
        change: String,
    },
    /// The sync message was not acceptable to the protocol.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The writer may not store what the merged document says: its root is
    /// not a document of ours, or it names another owner. Answered like a
    /// missing document.
    #[error("document {document} refused: {reason}")]
    Refused {
        document: DocumentId,
        /// Why (for the log only).
        reason: String,
    },
}

/// What to store of a merge.
#[derive(Debug)]
pub struct MergeOutcome {
    /// The document's heads before the message: what it added is the
    /// document's changes since these.
    pub heads_before: Vec<automerge::ChangeHash>,
    /// The changes the message added, as it carried them, when known that
    /// way ([`SyncApplied::added`](sync_core::protocol::SyncApplied::added)).
    pub added: Option<Vec<automerge::Change>>,
    /// The new chunk ([`SyncApplied::chunk`](sync_core::protocol::SyncApplied::chunk):
    /// the changes the message added, or the whole compacted document when
    /// it had none before (a first upload), then those it carried that wait
    /// for their dependencies), if the message brought anything new.
    pub chunk: Option<Vec<u8>>,
    /// How many changes the message added.
    pub changes_added: usize,
    /// How many changes it carried that wait for their dependencies.
    pub changes_waiting: usize,
    /// The actors of the changes the message added, each once: the writer
    /// claims those the document's [`Attribution`] does not know yet.
    pub actors: Vec<ActorId>,
    /// How to create the document row if this is its first write (set for
    /// every write by its owner; the store checks the owner of an existing
    /// row against it).
    pub create: Option<NewDocument>,
}

/// Total bytes of the changes a sync message carries.
pub fn changes_size(message: &automerge::sync::Message) -> usize {
    message.changes.iter().map(<[u8]>::len).sum()
}

/// Loads a stored document: the snapshot, then every chunk in order
/// ([`sync_core::storage::load`], which keeps changes still waiting for
/// their dependencies). A missing document is an empty one.
pub fn load(
    document: DocumentId,
    stored: Option<&StoredDocument>,
) -> Result<Automerge, MergeError> {
    let Some(stored) = stored else {
        return Ok(Automerge::new());
    };
    sync_core::storage::load(
        stored.snapshot.as_deref(),
        stored.chunks.iter().map(|c| c.data.as_slice()),
    )
    .map_err(|source| MergeError::Load {
        document,
        source: Box::new(source),
    })
}

/// Bytes the stored form of a document takes.
pub fn stored_size(stored: Option<&StoredDocument>) -> usize {
    stored.map_or(0, |s| {
        s.snapshot.as_ref().map_or(0, Vec::len)
            + s.chunks.iter().map(|c| c.data.len()).sum::<usize>()
    })
}

/// Refuses a document whose stored form is over `limit` unless its compacted
/// form fits (the stored chunks are larger than one `save()`, so the cheap
/// sum is checked first).
fn check_size(
    document: DocumentId,
    doc: &Automerge,
    stored_bytes: usize,
    limit: usize,
) -> Result<(), MergeError> {
    if stored_bytes <= limit {
        return Ok(());
    }
    let size = doc.save().len();
    if size > limit {
        return Err(MergeError::TooLarge {
            document,
            size,
            limit,
        });
    }
    Ok(())
}

/// Applies `message` on `conn` to `doc` (whose stored form takes
/// `stored_bytes`), and works out what to store.
///
/// On an error `doc` may hold some of the message's changes: the caller
/// drops it (the store still has the document as it was).
///
/// `writer` is the username and user id of a peer with
/// [`Access::ReadWrite`] (a cadre): the merged document's root must name
/// them as its owner, and no change the message adds may be made with an
/// actor that `known` gives to another writer.
#[allow(clippy::too_many_arguments)]
pub fn merge(
    conn: &mut ServerConnection,
    document: DocumentId,
    doc: &mut Automerge,
    stored_bytes: usize,
    message: automerge::sync::Message,
    writer: (&str, i64),
    known: &Attribution,
    access: Access,
    limits: &PayloadLimits,
) -> Result<MergeOutcome, MergeError> {
    let max_document_bytes = limits.max_document_bytes;
    check_size(document, doc, stored_bytes, max_document_bytes)?;
    // Before automerge sees the changes: a hostile payload is refused there
    // and never reaches the document. A whole-document chunk is loaded
    // into a scratch document for it (which an empty document then takes
    // as it is); every rule below then holds for all the changes it adds,
    // as for change chunks.
    let applied = conn
        .apply_checked(&document, doc, message, limits)
        .map_err(|e| match e {
            ApplyError::Payload(source) => MergeError::Hostile { document, source },
            ApplyError::Protocol(e) => e.into(),
        })?;
    // The added changes as the message carried them, when that is what it
    // added (the usual case): the document need not build them again.
    let added: Option<Vec<automerge::Change>> = applied.added.as_ref().and_then(|raw| {
        raw.iter()
            .map(|bytes| automerge::Change::try_from(bytes.as_slice()).ok())
            .collect()
    });
    let mut actors: Vec<ActorId> = Vec::new();
    if applied.changes_added > 0 {
        // Otherwise the actors from the changes' metadata: a document chunk
        // holds no encoded changes, and building them again costs about
        // what loading the document did.
        let added_actors: Vec<ActorId> = match &added {
            Some(changes) => changes.iter().map(|c| c.actor_id().clone()).collect(),
            None => doc
                .get_changes_meta(&applied.heads_before)
                .into_iter()
                .map(|meta| meta.actor.into_owned())
                .collect(),
        };
        for actor in added_actors {
            if known.taken_by_another(&actor, writer.1, false) {
                return Err(MergeError::ForeignActor {
                    document,
                    actor: actor.to_hex_string(),
                });
            }
            if !actors.contains(&actor) {
                actors.push(actor);
            }
        }
        // Decoding every operation costs about what applying it did; a
        // document the server never wrote into needs none of it.
        if known.has_server_writes() {
            let rebuilt;
            let changes = match &added {
                Some(changes) => changes,
                None => {
                    rebuilt = doc.get_changes(&applied.heads_before);
                    &rebuilt
                }
            };
            for change in changes {
                if alters_server_writes(change, known) {
                    return Err(MergeError::AltersServerWrites {
                        document,
                        change: change.hash().to_string(),
                    });
                }
            }
        }
    }
    // Changes that wait for a dependency are stored as well: the peer counts
    // them as delivered and will not send them again on its own.
    let Some(chunk) = applied.chunk(doc) else {
        return Ok(MergeOutcome {
            heads_before: applied.heads_before,
            added,
            chunk: None,
            changes_added: 0,
            changes_waiting: 0,
            actors,
            create: None,
        });
    };
    check_size(
        document,
        doc,
        stored_bytes + chunk.len(),
        max_document_bytes,
    )?;
    let create = if access == Access::ReadWrite {
        let (username, user_id) = writer;
        let meta = read_meta(doc).map_err(|e: DocumentError| MergeError::Refused {
            document,
            reason: e.to_string(),
        })?;
        if meta.owner != username {
            return Err(MergeError::Refused {
                document,
                reason: format!(
                    "owner field {:?} is not the writer {username:?}",
                    meta.owner
                ),
            });
        }
        Some(NewDocument {
            kind: meta.kind.into(),
            owner_user_id: user_id,
            year: meta.year,
        })
    } else {
        None
    };
    Ok(MergeOutcome {
        heads_before: applied.heads_before,
        added,
        chunk: Some(chunk),
        changes_added: applied.changes_added,
        changes_waiting: applied.waiting.len(),
        actors,
        create,
    })
}

/// Whether `change` writes inside an object the server created, or
/// supersedes (overwrites or deletes) a value the server wrote: every
/// operation's object id and predecessors name the actors they build on.
fn alters_server_writes(change: &automerge::Change, known: &Attribution) -> bool {
    use automerge::ExpandedChange;
    use automerge::legacy::ObjectId;
    let expanded: ExpandedChange = change.decode();
    expanded.operations.iter().any(|op| {
        matches!(&op.obj, ObjectId::Id(id) if known.is_server(id.actor()))
            || op.pred.iter().any(|p| known.is_server(p.actor()))
    })
}
