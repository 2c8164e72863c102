//! The per-document access decision the server makes.

use super::ListedDocument;
use crate::DocumentId;

/// What a connection may do with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// Nothing: the document is answered as unavailable, exactly like one
    /// that does not exist.
    None,
    /// Receive the document's changes; incoming changes are not applied.
    Read,
    /// Receive and send changes (and create the document if it is new).
    ReadWrite,
}

/// Decides at once, per document, what the authenticated peer of a
/// connection may do, for [`ServerConnection::handle_with`](super::ServerConnection::handle_with)
/// (tests and tools; a server that reads its database answers
/// [`ServerStep::Decide`](super::ServerStep::Decide) itself). The decision
/// must not depend on the peer id the client announced.
pub trait AccessPolicy {
    /// The access to `document`. Asked for every `request` and `sync` of a
    /// document the connection has not decided on yet.
    fn access(&self, document: &DocumentId) -> Access;

    /// The user's documents with their stored heads, for a `join` that
    /// asks for them ([`ServerStep::List`](super::ServerStep::List)). None
    /// by default.
    fn documents(&self) -> Vec<ListedDocument> {
        Vec::new()
    }
}

impl<F: Fn(&DocumentId) -> Access> AccessPolicy for F {
    fn access(&self, document: &DocumentId) -> Access {
        self(document)
    }
}
