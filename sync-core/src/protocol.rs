//! The automerge-repo network protocol, version "1", as sans-IO state
//! machines for both ends of a connection.
//!
//! Messages are CBOR maps sent one per binary WebSocket frame ([`Message`]).
//! A connection starts with a handshake (`join` → `peer`) and then carries
//! `request`/`sync` messages for any number of documents, each wrapping an
//! automerge sync message, until both sides are quiescent.
//!
//! - [`ClientConnection`] is the initiating side (the phone).
//! - [`ServerConnection`] is the receiving side. For every document a peer
//!   names it asks the caller what the peer may do ([`ServerStep::Decide`],
//!   answered with [`ServerConnection::grant`]), and answers a denied one
//!   exactly as a missing one. A client may ask in its `join` for the
//!   user's documents with their stored heads ([`ServerStep::List`]); it
//!   then leaves out the documents whose heads it already has.
//!
//! Neither touches a socket or a database: they return messages to send, and
//! the server side hands back received changes so the caller can store them
//! durably *before* it asks for the reply. [`payload::check`] is what a
//! receiver runs on a message's changes before automerge sees them.

mod access;
mod client;
mod doc_sync;
mod error;
mod message;
pub mod payload;
mod server;

pub use access::{Access, AccessPolicy};
pub use client::{ClientConnection, ClientEvent, DocSyncStatus, LocalDocuments};
pub use error::ProtocolError;
pub use message::{
    ListedDocument, MAX_LISTED_DOCUMENTS, MAX_LISTED_HEADS, MAX_MESSAGE_BYTES, Message,
    PROTOCOL_VERSION, PeerMetadata,
};
pub use server::{
    ApplyError, Granted, MAX_STALLED_ROUNDS, ServerConnection, ServerStep, SyncApplied, SyncReply,
    SyncStep,
};
