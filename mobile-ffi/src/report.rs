//! What a sync did, and where syncing stands.

/// Why a sync stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SyncErrorKind {
    /// Nobody is logged in on this phone.
    NotLoggedIn,
    /// The server could not be reached, or the connection dropped.
    Offline,
    /// The login is no longer valid; the cadre must log in again.
    Unauthorised,
    /// The server refused (an error status or an error on the connection).
    ServerRefused,
    /// The deadline passed first; what was exchanged is kept.
    Deadline,
    /// The local store is damaged.
    CorruptStore,
    /// The local store could not be written.
    Storage,
    /// Anything else (a bug; see the message).
    Internal,
}

impl From<&crate::ClientError> for SyncErrorKind {
    fn from(e: &crate::ClientError) -> Self {
        use crate::ClientError as E;
        match e {
            E::NotLoggedIn => Self::NotLoggedIn,
            E::Offline { .. } => Self::Offline,
            E::Unauthorised { .. } => Self::Unauthorised,
            E::ServerRefused { .. } => Self::ServerRefused,
            E::Deadline => Self::Deadline,
            E::CorruptStore { .. } => Self::CorruptStore,
            E::Storage { .. } => Self::Storage,
            _ => Self::Internal,
        }
    }
}

/// The outcome of one `sync_now`.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Documents that reached the same state as the server.
    pub documents_synced: u32,
    /// Local edits the server now has.
    pub changes_up: u64,
    /// Changes from the server applied here.
    pub changes_down: u64,
    /// Bytes sent on the sync connection (frames' payloads).
    pub bytes_up: u64,
    /// Bytes received on the sync connection.
    pub bytes_down: u64,
    /// Documents not (yet) in step with the server.
    pub documents_pending: u32,
    /// Local edits the server does not have yet.
    pub changes_pending: u64,
    /// Documents that changed here (ids), as the observer was told.
    pub changed_documents: Vec<String>,
    /// Why the sync stopped short, if it did.
    pub error: Option<SyncErrorKind>,
    /// The error's detail, for a log.
    pub error_message: Option<String>,
}

/// Where syncing stands, for the app to show.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncStatus {
    /// When a sync last finished with everything in step.
    pub last_success_ms: Option<i64>,
    /// When a sync was last attempted.
    pub last_attempt_ms: Option<i64>,
    /// The last attempt's error, if it failed.
    pub last_error: Option<SyncErrorKind>,
    /// Local edits not yet on the server.
    pub pending_changes: u64,
    /// Whether a sync is running now.
    pub syncing: bool,
}
