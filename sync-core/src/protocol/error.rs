//! Protocol errors.

/// What went wrong on a connection. Any of these ends the connection; none
/// is a panic, whatever bytes arrive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame is not a CBOR message of the protocol.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The frame is larger than the connection accepts.
    #[error("message of {size} bytes is larger than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// A message arrived that is not allowed in the current phase (e.g. a
    /// `sync` before the handshake).
    #[error("unexpected {message} message {phase}")]
    Unexpected {
        /// The message type.
        message: String,
        /// The phase it arrived in.
        phase: &'static str,
    },
    /// The peers share no protocol version.
    #[error("no common protocol version (peer offers {offered:?})")]
    Version {
        /// What the peer offered.
        offered: Vec<String>,
    },
    /// The document id is not a valid automerge-repo id.
    #[error("invalid document id {0:?}")]
    DocumentId(String),
    /// The automerge sync message inside could not be decoded or applied.
    #[error("invalid sync message for document {document}: {reason}")]
    Sync {
        document: String,
        /// Why.
        reason: String,
    },
    /// The other side reported an error and is closing.
    #[error("peer reported an error: {0}")]
    Remote(String),
    /// This side will not go on with the connection (a limit was reached,
    /// the session ended); the text says why.
    #[error("{0}")]
    Refused(String),
}
