//! Storage: the [`Store`] trait and its two backends.
//!
//! Both backends are always compiled; [`connect`] picks one from the URL
//! scheme (`sqlite:` or `postgres:`/`postgresql:`). Queries are built at run
//! time (`sqlx::query`), so a build needs no live database. Each backend has
//! its own migration folder (`server/migrations/<backend>/`), embedded with
//! `sqlx::migrate!` and applied by [`Store::migrate`] at start-up.
//!
//! Handlers hold an `Arc<dyn Store>`; the trait uses `async_trait` so that it
//! stays dyn-compatible.

mod error;
mod model;
pub mod postgres;
mod sql;
pub mod sqlite;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sync_core::DocumentId;

pub use error::{BoxError, OverLimit, StaleWrite, StoreError};
pub use model::{
    ActorClaim, AppendOutcome, AuditEntry, Compaction, DocumentActor, DocumentChunk, DocumentRow,
    DocumentSince, DocumentWrite, NewAuditEntry, NewDocument, NewRefreshToken, NewUnit, NewUser,
    OtherWrite, OwnerLimits, OwnerUsage, PetitionLocation, RefreshReplacement, RefreshRotation,
    RefreshToken, Role, StoredDocument, StoredKind, StoredVersion, SyncRecords, SyncStateWrite,
    Unit, User,
};
pub(crate) use model::{heads_from_bytes, heads_to_bytes};

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (the default).
    Sqlite,
    /// PostgreSQL server (for several server processes).
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// Everything the server keeps in its database.
///
/// Every method is one transaction (or one statement). Methods that take a
/// time take it from the caller when the time carries meaning (expiry, write
/// order), which keeps them testable; bookkeeping creation stamps of units and
/// users are taken by the store.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Applies pending migrations from `server/migrations/<backend>/`.
    async fn migrate(&self) -> StoreResult<()>;

    /// Cheap round trip to the database, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes the connection pool, waiting for connections in use.
    async fn close(&self);

    // ----- units -----

    /// Creates a unit. `Conflict` if the code is taken or the parent is missing.
    async fn create_unit(&self, unit: NewUnit) -> StoreResult<Unit>;

    /// Looks a unit up by id.
    async fn get_unit(&self, id: i64) -> StoreResult<Option<Unit>>;

    /// Looks a unit up by code.
    async fn get_unit_by_code(&self, code: &str) -> StoreResult<Option<Unit>>;

    /// All units, ordered by id (parents before children).
    async fn list_units(&self) -> StoreResult<Vec<Unit>>;

    /// `root` and every unit below it, ordered by id; empty if `root` does not exist.
    async fn unit_subtree(&self, root: i64) -> StoreResult<Vec<Unit>>;

    /// Whether `unit` is `root` or lies below it.
    async fn is_unit_within(&self, unit: i64, root: i64) -> StoreResult<bool>;

    // ----- users -----

    /// Creates a user. `Conflict` if the username is taken or the unit is missing.
    async fn create_user(&self, user: NewUser) -> StoreResult<User>;

    /// Looks a user up by id.
    async fn get_user(&self, id: i64) -> StoreResult<Option<User>>;

    /// Looks a user up by login name.
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;

    /// Users whose unit is one of `unit_ids`, ordered by id.
    async fn list_users_in_units(&self, unit_ids: &[i64]) -> StoreResult<Vec<User>>;

    /// Disables or re-enables a user. `NotFound` if there is no such user.
    async fn set_user_disabled(&self, user_id: i64, disabled: bool) -> StoreResult<()>;

    /// Replaces a user's password hash. `NotFound` if there is no such user.
    async fn set_user_password(&self, user_id: i64, password_hash: &str) -> StoreResult<()>;

    // ----- refresh tokens -----

    /// Stores a refresh token (by hash) issued at login.
    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<RefreshToken>;

    /// Looks a refresh token up by the hash of its opaque value.
    async fn get_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;

    /// Exchanges the token whose hash is `presented_hash` for `replacement`, in
    /// one transaction and safe against concurrent presentations of the same
    /// token: at most one of them rotates, the others see it as reused.
    /// Presenting an already rotated token revokes its whole family.
    /// `NotFound` if no token has that hash.
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        replacement: RefreshReplacement,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshRotation>;

    /// Marks every not-yet-revoked token of a family (live or rotated) as
    /// revoked; returns how many rows changed.
    async fn revoke_refresh_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Revokes every login of `user_id` but the family `keep` (a password
    /// change logs the other phones out); returns the revoked families.
    async fn revoke_other_logins(
        &self,
        user_id: i64,
        keep: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>>;

    // ----- documents -----

    /// A document's metadata, without its content.
    async fn get_document_meta(&self, id: &DocumentId) -> StoreResult<Option<DocumentRow>>;

    /// A document's snapshot and pending chunks, read consistently (a
    /// concurrent compaction is either wholly visible or not at all).
    async fn load_document(&self, id: &DocumentId) -> StoreResult<Option<StoredDocument>>;

    /// What a copy of the document built from `since` lacks: the chunks
    /// appended after it, or the whole stored form if the snapshot changed
    /// since. Read consistently, like [`load_document`](Self::load_document).
    async fn load_document_since(
        &self,
        id: &DocumentId,
        since: &StoredVersion,
    ) -> StoreResult<Option<DocumentSince>>;

    /// [`load_document_since`](Self::load_document_since) and the sync
    /// state `device_id` of `user_id` kept of the document
    /// ([`load_sync_state`](Self::load_sync_state)) together: one statement
    /// when the copy is up to date, as the copy in memory of a document a
    /// device reconnects to mostly is.
    async fn load_document_since_with_sync_state(
        &self,
        id: &DocumentId,
        since: &StoredVersion,
        user_id: i64,
        device_id: &str,
    ) -> StoreResult<(Option<DocumentSince>, Option<Vec<u8>>)>;

    /// Documents owned by a user, ordered by id.
    async fn list_documents_for_owner(&self, user_id: i64) -> StoreResult<Vec<DocumentRow>>;

    /// The documents `user_id` owns, in id order, with the heads their last
    /// write stored ([`DocumentWrite::heads`]): what a sync's handshake
    /// lists when the device asks ([`sync_core::protocol::ServerStep::List`]).
    async fn list_document_heads(
        &self,
        user_id: i64,
    ) -> StoreResult<Vec<sync_core::protocol::ListedDocument>>;

    /// Stores `heads` as the document's when its row has none and nothing
    /// was appended past `version` (the stored state they were read from):
    /// a document stored before rows kept their heads gets them when it is
    /// first loaded. Whether the row took them.
    async fn fill_document_heads(
        &self,
        document_id: &DocumentId,
        heads: &[sync_core::automerge::ChangeHash],
        version: &StoredVersion,
    ) -> StoreResult<bool>;

    /// How many documents a user owns and the bytes they take (snapshots
    /// plus pending chunks): what the per-user sync limits count.
    async fn owner_usage(&self, user_id: i64) -> StoreResult<OwnerUsage>;

    /// Documents whose owner belongs to one of `unit_ids`, ordered by id.
    /// Combine with [`Store::unit_subtree`] for a supervisor's view.
    async fn list_documents_in_units(&self, unit_ids: &[i64]) -> StoreResult<Vec<DocumentRow>>;

    /// Appends one chunk of incremental changes to a document, creating the
    /// document if allowed (see [`DocumentWrite::create`]), and commits before
    /// returning, so a caller that acknowledges after this returns only ever
    /// acknowledges durable data. Writes to one document are serialised: on
    /// PostgreSQL by locking the document row (`SELECT … FOR UPDATE`) for the
    /// transaction, across server processes; on SQLite by the single writer
    /// (`BEGIN IMMEDIATE`). `Stale` if the write was made on a copy that
    /// missed something stored since ([`DocumentWrite::based_on`]); the
    /// write comes back in it, to be made again once the copy caught up.
    async fn append_changes(&self, write: DocumentWrite) -> StoreResult<AppendOutcome>;

    /// From now on, the documents other server processes write on the same
    /// database, as their writes commit (PostgreSQL `LISTEN/NOTIFY`), until
    /// the receiver is dropped. `None` on a backend only one process writes
    /// (SQLite).
    async fn other_writes(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<OtherWrite>>>;

    /// Replaces a document's snapshot and deletes the chunks folded into it,
    /// in one transaction under the same per-document lock as
    /// [`Store::append_changes`]. `NotFound` if the document is missing;
    /// `Conflict` if another compaction won a race (see [`Compaction`]).
    async fn compact(&self, compaction: Compaction) -> StoreResult<()>;

    // ----- ledger -----

    /// Replaces a document's ledger rows (see [`crate::ledger`]) in one
    /// transaction under the same per-document lock as
    /// [`Store::append_changes`]. `NotFound` if the document is missing;
    /// `Conflict` if its `updated_at` is no longer `expected_updated_at` (it
    /// was written since the caller loaded it, so this projection is stale).
    async fn replace_ledger(
        &self,
        document_id: &DocumentId,
        ledger: &crate::ledger::LedgerProjection,
        expected_updated_at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Every ledger row of one document as stored, each table in key order
    /// (events by petition, then id): to check the rows against a fresh
    /// projection of the document.
    async fn ledger_rows(
        &self,
        document_id: &DocumentId,
    ) -> StoreResult<crate::ledger::LedgerProjection>;

    /// One page of ledger petitions and the total matching.
    async fn query_ledger(
        &self,
        query: &crate::ledger::LedgerQuery,
    ) -> StoreResult<crate::ledger::LedgerPage>;

    /// Folds `ledger_counts` into one row per key, for a backend whose
    /// triggers add a row per change (PostgreSQL); returns the rows it
    /// removed. Safe to run at any time, from any number of processes.
    async fn fold_ledger_counts(&self) -> StoreResult<u64>;

    /// Every actor recorded for a document (see [`ActorClaim`]), by actor.
    async fn document_actors(&self, document_id: &DocumentId) -> StoreResult<Vec<DocumentActor>>;

    /// The live (not deleted) petitions with record id `petition_id`, in
    /// any document (record ids are chosen by phones, so in principle two
    /// documents can hold the same one), ordered by document id.
    async fn find_petitions(&self, petition_id: &str) -> StoreResult<Vec<PetitionLocation>>;

    /// One petition's ledger row with its unit and owner (as the ledger
    /// list shows it), `None` if missing or deleted.
    async fn ledger_petition(
        &self,
        document_id: &DocumentId,
        petition_id: &str,
        today: &str,
    ) -> StoreResult<Option<crate::ledger::LedgerItem>>;

    /// One petition's events as the ledger holds them, oldest first.
    async fn ledger_petition_events(
        &self,
        document_id: &DocumentId,
        petition_id: &str,
    ) -> StoreResult<Vec<crate::ledger::LedgerEvent>>;

    /// Visit counts of a unit subtree and period, grouped by owner, by
    /// owner's unit, or not at all.
    async fn visit_counts(
        &self,
        query: &crate::ledger::report::ReportQuery,
        grouping: crate::ledger::report::VisitGrouping,
    ) -> StoreResult<Vec<crate::ledger::report::VisitCounts>>;

    /// Counts of the petitions recorded in a unit subtree and period, per
    /// owner, category, status and level.
    async fn petition_counts(
        &self,
        query: &crate::ledger::report::ReportQuery,
    ) -> StoreResult<Vec<crate::ledger::report::PetitionCounts>>;

    /// One page of ledger visits, newest first, and the total matching.
    async fn query_visits(
        &self,
        query: &crate::ledger::report::RecordQuery,
    ) -> StoreResult<(Vec<crate::ledger::report::VisitItem>, i64)>;

    /// One page of ledger service cards, newest first, and the total matching.
    async fn query_cards(
        &self,
        query: &crate::ledger::report::RecordQuery,
    ) -> StoreResult<(Vec<crate::ledger::report::CardItem>, i64)>;

    /// The devices that synced for users of a unit subtree (optionally one
    /// user), each with its last sync.
    async fn list_devices(
        &self,
        root_unit_id: i64,
        user_id: Option<i64>,
    ) -> StoreResult<Vec<crate::ledger::report::DeviceRow>>;

    /// Every user's recorded post (which sets their visit quota).
    async fn user_posts(&self) -> StoreResult<Vec<(i64, String)>>;

    /// Records a user's post.
    async fn set_user_post(&self, user_id: i64, post: &str) -> StoreResult<()>;

    // ----- sync states -----

    /// The sync state saved at a device's last connection for a document
    /// (see [`Store::save_sync_state`]).
    async fn load_sync_state(
        &self,
        document_id: &DocumentId,
        user_id: i64,
        device_id: &str,
    ) -> StoreResult<Option<Vec<u8>>>;

    /// Saves (replaces) a device's sync state for a document. Does nothing
    /// if the document does not exist (a state is only worth keeping for a
    /// stored document).
    async fn save_sync_state(&self, write: SyncStateWrite) -> StoreResult<()>;

    // ----- audit -----

    /// Appends an audit row and returns its id.
    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<i64>;

    /// The newest `limit` audit rows, newest first.
    async fn list_audit(&self, limit: u32) -> StoreResult<Vec<AuditEntry>>;

    /// Audit rows newest first: of `action` if given, older than
    /// `before_id` if given, at most `limit`.
    async fn query_audit(
        &self,
        action: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>>;
}

/// Options for opening a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Upper bound of the connection pool.
    pub max_connections: u32,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { max_connections: 8 }
    }
}

/// Which backend a database URL selects, or `None` for an unsupported scheme.
pub fn backend_for_url(url: &str) -> Option<Backend> {
    if url.starts_with("sqlite:") {
        Some(Backend::Sqlite)
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Some(Backend::Postgres)
    } else {
        None
    }
}

/// Opens the store a database URL names. Does not migrate.
pub async fn connect(url: &str, options: ConnectOptions) -> StoreResult<Arc<dyn Store>> {
    match backend_for_url(url) {
        Some(Backend::Sqlite) => Ok(Arc::new(sqlite::SqliteStore::connect(url, options).await?)),
        Some(Backend::Postgres) => Ok(Arc::new(
            postgres::PostgresStore::connect(url, options).await?,
        )),
        None => Err(StoreError::backend(format!(
            "unsupported database URL scheme in {:?} (expected sqlite: or postgres:)",
            crate::config::redact_url(url)
        ))),
    }
}

/// Removes duplicates from a list of ids (so counts can be compared).
pub(crate) fn dedup_ids(ids: &[i64]) -> Vec<i64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    ids
}
