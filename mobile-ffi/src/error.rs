//! The one error type the app sees.

use sync_core::{DocumentError, ValidationError};

/// Why a call failed. Flat on purpose: Kotlin and Swift get one exception
/// type whose variant says what to show, and nothing Rust-specific leaks out.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum ClientError {
    /// A field of the input is not valid; `field` names it (as sync-core
    /// names it: "place", "subject name", "phone", "deadline" …).
    #[error("{field}: {detail}")]
    Invalid {
        /// The field at fault.
        field: String,
        /// What is wrong, for a log or a developer.
        detail: String,
    },
    /// No record with this id on this phone.
    #[error("no {record} with id {id}")]
    NotFound {
        /// "visit", "petition", "service card".
        record: String,
        /// The id asked for.
        id: String,
    },
    /// The record was deleted (possibly on another device).
    #[error("{record} {id} was deleted")]
    Deleted {
        /// The record type.
        record: String,
        id: String,
    },
    /// Nobody has logged in on this phone yet (or they logged out).
    #[error("not logged in")]
    NotLoggedIn,
    /// The server no longer accepts this login (password changed, token
    /// revoked): the cadre must log in again.
    #[error("unauthorised: {detail}")]
    Unauthorised {
        /// The server's reason.
        detail: String,
    },
    /// The server could not be reached.
    #[error("offline: {detail}")]
    Offline {
        /// The transport's reason.
        detail: String,
    },
    /// The server answered with an error other than "unauthorised".
    #[error("server refused ({status}): {detail}")]
    ServerRefused {
        /// HTTP status, or 0 for a refusal on the sync connection.
        status: u16,
        /// The server's message.
        detail: String,
    },
    /// The deadline passed before the work finished; what was done is kept.
    #[error("deadline passed")]
    Deadline,
    /// The local store is damaged. It is left as it is (never emptied), so
    /// support can recover it; the app may offer to reinstall and re-sync.
    #[error("the local store is corrupt: {detail}")]
    CorruptStore {
        /// What was found.
        detail: String,
    },
    /// The at-rest key does not open the store (another key, or a key given
    /// for a store that was made without one). Nothing was changed.
    #[error("the at-rest key does not open the local store: {detail}")]
    WrongKey {
        /// What was found.
        detail: String,
    },
    /// The local store could not be read or written (disk full, permissions).
    #[error("local storage failed: {detail}")]
    Storage {
        /// The cause.
        detail: String,
    },
    /// A document was written by a newer version of the app.
    #[error("update the app: {detail}")]
    UpdateRequired {
        /// Which document and versions.
        detail: String,
    },
    /// The configuration passed to `open` cannot be used.
    #[error("bad configuration: {detail}")]
    Config {
        /// What is wrong.
        detail: String,
    },
    /// A bug or an unexpected answer; the message is for a bug report.
    #[error("internal error: {detail}")]
    Internal { detail: String },
}

impl ClientError {
    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal {
            detail: message.to_string(),
        }
    }

    pub(crate) fn invalid(field: &str, message: impl std::fmt::Display) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            detail: message.to_string(),
        }
    }
}

impl From<ValidationError> for ClientError {
    fn from(e: ValidationError) -> Self {
        let field = match &e {
            ValidationError::Required { field }
            | ValidationError::TooLong { field, .. }
            | ValidationError::UnknownValue { field, .. }
            | ValidationError::Negative { field } => *field,
            ValidationError::InvalidPhone { .. } => "phone",
            ValidationError::DeadlineBeforeCreation { .. } => "deadline",
            ValidationError::InvalidLocation { .. } => "location",
            ValidationError::InvalidSatisfaction => "satisfaction",
            ValidationError::InvalidTransition { .. } => "event",
        };
        Self::invalid(field, e)
    }
}

impl From<DocumentError> for ClientError {
    fn from(e: DocumentError) -> Self {
        match e {
            DocumentError::Invalid(v) => v.into(),
            DocumentError::NotFound { record, id } => Self::NotFound {
                record: record.to_owned(),
                id: id.to_string(),
            },
            DocumentError::Deleted { record, id } => Self::Deleted {
                record: record.to_owned(),
                id: id.to_string(),
            },
            DocumentError::Duplicate { record, id } => {
                Self::invalid("id", format!("a {record} with id {id} exists already"))
            }
            DocumentError::NewerSchema { .. } => Self::UpdateRequired {
                detail: e.to_string(),
            },
            DocumentError::Load(_) | DocumentError::NotOurs | DocumentError::WrongKind { .. } => {
                Self::CorruptStore {
                    detail: e.to_string(),
                }
            }
            other => Self::internal(other),
        }
    }
}

impl From<rusqlite::Error> for ClientError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Self::CorruptStore {
                detail: e.to_string(),
            },
            _ => Self::Storage {
                detail: e.to_string(),
            },
        }
    }
}

/// An error with its causes, `outer: inner: innermost`: reqwest's own
/// message ("error sending request") says nothing a field report can use.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        let message = with_causes(&e);
        if e.is_connect() || e.is_timeout() || e.is_request() {
            Self::Offline { detail: message }
        } else {
            Self::Internal { detail: message }
        }
    }
}

/// Parses a record id handed in by the app.
pub(crate) fn parse_id(field: &str, s: &str) -> Result<sync_core::RecordId, ClientError> {
    s.parse()
        .map_err(|_| ClientError::invalid(field, format!("{s:?} is not a record id")))
}
