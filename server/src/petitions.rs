//! Acting on a petition through the API: supervision (deadline,
//! reassignment, escalation, 督办 note, 销号, reopening) and the responsible
//! person's own work (progress, resolution, feedback).
//!
//! Every action becomes an automerge change in the cadre's diary, made by
//! the server with a fresh actor recorded as the acting user's
//! (`via_server`), so the ledger believes it (see
//! [`crate::ledger::attribution`]). The diary is loaded from its stored
//! snapshot and chunks under the same per-document lock the sync endpoint
//! merges under, the change and the document's new ledger rows are stored
//! in one transaction, and connections syncing the document are told, so a
//! phone gets the change on its next sync (or at once, if it is connected).
//!
//! - [`target`]: finding a petition and deciding who may act on it.
//! - [`write`]: writing the events.

pub mod target;
pub mod write;

use sync_core::ValidationError;
use sync_core::document::DocumentError;
use sync_core::records::petition::Level;

use crate::error::AppError;
use crate::store::StoreError;
use crate::sync::MergeError;

pub use target::{Reach, Target, locate};
pub use write::{Acting, Decide, append_events};

/// Why an action on a petition was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No such petition (or it was deleted), as far as the caller may know.
    #[error("petition not found")]
    NotFound,
    /// The record id names petitions in several documents; the caller must
    /// say which (`document_id`).
    #[error("petition id {0} is in more than one diary; give document_id")]
    Ambiguous(String),
    /// The caller may not do this to this petition.
    #[error("{0}")]
    Forbidden(String),
    /// The petition's state does not allow it (sign-off before resolution
    /// and feedback, escalation past the top, reopening an open item …).
    #[error("{0}")]
    State(String),
    /// The input does not make sense (empty note, deadline before the item
    /// was recorded, unknown assignee …).
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("storage failed")]
    Store(#[from] StoreError),
    /// The stored diary does not load or is not a diary.
    #[error("the diary cannot be read")]
    Document(#[source] DocumentError),
    /// The stored bytes do not load.
    #[error("the diary cannot be loaded")]
    Load(#[from] MergeError),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The writing task failed.
    #[error("the writing task failed")]
    Task(#[from] tokio::task::JoinError),
}

impl From<DocumentError> for ActionError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::Invalid(ValidationError::InvalidTransition { .. }) => {
                ActionError::State(e.to_string())
            }
            DocumentError::Invalid(v) => ActionError::Invalid(v.to_string()),
            DocumentError::NotFound { .. } | DocumentError::Deleted { .. } => ActionError::NotFound,
            other => ActionError::Document(other),
        }
    }
}

impl From<crate::sync::LiveError> for ActionError {
    fn from(e: crate::sync::LiveError) -> Self {
        match e {
            crate::sync::LiveError::Store(e) => ActionError::Store(e),
            crate::sync::LiveError::Load(e) => ActionError::Load(e),
            crate::sync::LiveError::Task(e) => ActionError::Task(e),
        }
    }
}

impl From<ActionError> for AppError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound => AppError::NotFound,
            ActionError::Ambiguous(_) | ActionError::State(_) => AppError::Conflict(e.to_string()),
            ActionError::Forbidden(m) => AppError::Forbidden(m),
            ActionError::Invalid(m) => AppError::Rejected {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                message: m,
            },
            ActionError::Store(s) => s.into(),
            ActionError::ShuttingDown => AppError::Unavailable(Box::new(e)),
            other => AppError::internal(other),
        }
    }
}

/// The level above `level`, if any.
pub fn next_level(level: Level) -> Option<Level> {
    match level {
        Level::Village => Some(Level::Town),
        Level::Town => Some(Level::County),
        Level::County => None,
    }
}
