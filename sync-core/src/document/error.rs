//! Errors of the typed document layer.

use crate::{RecordId, ValidationError};

/// Why a document operation failed. Nothing is written when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The bytes are not an automerge document (a corrupt or truncated file).
    #[error("not a readable automerge document")]
    Load(#[source] Box<automerge::AutomergeError>),
    /// automerge refused an operation.
    #[error("automerge error")]
    Automerge(#[source] Box<automerge::AutomergeError>),
    /// The document has no `schema`/`kind`: it was not written by this system.
    #[error("document has no schema version or kind; it was not written by this system")]
    NotOurs,
    /// The document is of another kind (e.g. contacts opened as a diary).
    #[error("document is a {found:?} document, expected {expected}")]
    WrongKind {
        /// The kind wanted.
        expected: &'static str,
        /// The kind found.
        found: String,
    },
    /// The document was written by a newer version of the app.
    #[error(
        "document has schema version {found}, newer than the {supported} this version understands; update the app"
    )]
    NewerSchema {
        /// The document's schema version.
        found: i64,
        /// The newest this code knows.
        supported: i64,
    },
    /// A migration step failed.
    #[error("migrating the document from schema {from} failed")]
    Migration {
        /// The schema the step started from.
        from: i64,
        /// The cause.
        #[source]
        source: Box<automerge::AutomergeError>,
    },
    /// The edit is not valid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// No record with this id.
    #[error("no {record} with id {id}")]
    NotFound {
        /// The record type.
        record: &'static str,
        /// The id asked for.
        id: RecordId,
    },
    /// The record was deleted.
    #[error("{record} {id} was deleted")]
    Deleted {
        /// The record type.
        record: &'static str,
        id: RecordId,
    },
    /// A record with this id exists already.
    #[error("a {record} with id {id} exists already")]
    Duplicate {
        /// The record type.
        record: &'static str,
        id: RecordId,
    },
    /// A conflict that is no longer there (settled meanwhile) or a value index out of range.
    #[error("no such conflict to settle")]
    NoSuchConflict,
}

impl From<automerge::AutomergeError> for DocumentError {
    fn from(e: automerge::AutomergeError) -> Self {
        // Boxed: automerge's error is large and documents return results often.
        Self::Automerge(Box::new(e))
    }
}
