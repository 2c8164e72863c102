//! The one error type of the storage layer.

/// Boxed cause of a backend failure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`Store`](super::Store) call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed row does not exist (for example a document written with
    /// `create: None`, or a user that is not there). Lookups that may
    /// legitimately find nothing return `Ok(None)` instead.
    #[error("not found")]
    NotFound,
    /// The write contradicts what is stored: a duplicate unique key (username,
    /// unit code), a reference to a missing row, a document owned by someone
    /// else, or a compaction that lost a race. The text says which; it is safe
    /// to show to the caller.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The document was written after the writer's copy of it was read
    /// ([`DocumentWrite::based_on`](super::DocumentWrite::based_on)): by
    /// another server process on the same database. Nothing was stored;
    /// bring the copy up to date and write again. The refused write comes
    /// back in it, so that making it again needs no copy of its bytes.
    #[error("the document was written by someone else meanwhile")]
    Stale(StaleWrite),
    /// The write would take its document's owner past a per-user limit
    /// ([`SyncRecords::owner_limits`](super::SyncRecords::owner_limits)).
    /// Nothing was stored.
    #[error("{0}")]
    OverLimit(OverLimit),
    /// The database failed (connection, I/O, bad SQL, migration). The cause is
    /// kept for the log; it is never shown to an HTTP client.
    #[error("database error")]
    Backend(#[source] BoxError),
}

/// Which per-user limit a write would break ([`StoreError::OverLimit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OverLimit {
    /// The write creates a document; its owner has `owned` already.
    #[error("this user already has {owned} documents, the limit is {limit} per user")]
    Documents { owned: u64, limit: u64 },
    /// The owner's documents would take `would_take` bytes.
    #[error(
        "this user's documents would take {would_take} bytes, the limit is {limit} bytes per user"
    )]
    Bytes { would_take: u64, limit: u64 },
}

impl OverLimit {
    /// `Some` when a write of `added` bytes, which creates a document when
    /// `creates`, breaks `limits` on top of `usage`.
    pub fn check(
        usage: super::OwnerUsage,
        creates: bool,
        added: usize,
        limits: super::OwnerLimits,
    ) -> Option<OverLimit> {
        let would_take = usage.bytes.saturating_add(added as u64);
        if creates && usage.documents >= limits.documents {
            Some(OverLimit::Documents {
                owned: usage.documents,
                limit: limits.documents,
            })
        } else if would_take > limits.bytes {
            Some(OverLimit::Bytes {
                would_take,
                limit: limits.bytes,
            })
        } else {
            None
        }
    }
}

/// A write refused as [`StoreError::Stale`], handed back whole.
pub struct StaleWrite(pub Box<super::DocumentWrite>);

// The write's bytes and rows say nothing in a log line; its document does.
impl std::fmt::Debug for StaleWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StaleWrite")
            .field(&self.0.document_id)
            .finish()
    }
}

impl StoreError {
    /// Wraps any backend failure, counting it for `/metrics`.
    pub fn backend(err: impl Into<BoxError>) -> Self {
        crate::metrics::db_error();
        StoreError::Backend(err.into())
    }
}

// The driver's errors are mapped here once: "row not found" and constraint
// violations become the variants callers can act on, everything else is a
// backend failure.
impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict("already exists".to_owned())
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::Conflict("refers to a row that does not exist".to_owned())
            }
            _ => StoreError::backend(err),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::backend(err)
    }
}
