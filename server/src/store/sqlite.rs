//! The embedded SQLite backend (the default).
//!
//! One file under the data directory, in WAL mode so readers never wait for
//! the writer, with `synchronous=FULL` so a commit survives a power cut (the
//! sync protocol acknowledges only durable data). SQLite has a single writer:
//! every write transaction starts with `BEGIN IMMEDIATE`, which takes the
//! write lock up front (waiting up to the busy timeout) instead of failing
//! half-way when a read transaction tries to upgrade. That also serialises
//! writes to one document.

mod group_commit;
mod ledger;

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use self::group_commit::GroupCommit;

use super::sql::{
    CompactSql, Sql, document_by_id, documents_in_units, insert_document, row_and_owner_usage,
    users_in_units,
};
use super::{
    AppendOutcome, Backend, ConnectOptions, DocumentRow, DocumentWrite, NewAuditEntry, OverLimit,
    StoreError, StoreResult, SyncStateWrite, User,
};

/// How long a connection waits for the write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared statements, on SQLite.
type Q = Sql<Sqlite>;

/// A [`Store`](super::Store) on an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The sync path's writes, committed in groups.
    group: GroupCommit,
}

impl SqliteStore {
    /// Opens (creating the file and its directory if missing) the database a
    /// `sqlite:` URL names.
    pub async fn connect(url: &str, options: ConnectOptions) -> StoreResult<Self> {
        let connect_options = SqliteConnectOptions::from_str(url)?;
        Self::connect_with(connect_options, options).await
    }

    /// Opens a database from explicit connection options; the durability
    /// settings above are applied on top of them.
    pub async fn connect_with(
        connect_options: SqliteConnectOptions,
        options: ConnectOptions,
    ) -> StoreResult<Self> {
        let connect_options = connect_options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let file = connect_options.get_filename();
        if let Some(parent) = file.parent()
            && !parent.as_os_str().is_empty()
            && file.as_os_str() != ":memory:"
        {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(StoreError::backend)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect_options)
            .await?;
        let group = GroupCommit::start(pool.clone());
        Ok(SqliteStore { pool, group })
    }
}

/// A list of ids as JSON array text, bound to `json_each($n)` to express
/// `IN (…)` without building SQL at run time.
fn id_list(ids: &[i64]) -> String {
    let parts: Vec<String> = ids.iter().map(i64::to_string).collect();
    format!("[{}]", parts.join(","))
}

/// How the shared `Store` impl (and the group commit) begins a transaction
/// that writes: `BEGIN IMMEDIATE` takes the write lock before the first
/// read, so what a write checks (a refresh token's state, a snapshot's
/// heads, a document's `updated_at`) cannot change before its commit, and
/// two concurrent presentations of one token are strictly ordered. With
/// that lock no row needs one of its own: the `lock` below is empty.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// How it begins a transaction of several reads: a deferred transaction;
/// in WAL mode its first read fixes a snapshot, so every read (a document's
/// snapshot and its chunks) comes from the same committed state.
const BEGIN_READ: &str = "BEGIN";

/// A compaction's statements, with the chunk ids bound as JSON text.
const COMPACT: CompactSql = CompactSql {
    heads: "SELECT snapshot_heads FROM documents WHERE id = $1",
    present: "SELECT COUNT(*) FROM document_chunks
              WHERE document_id = $1 AND id IN (SELECT value FROM json_each($2))",
    delete: "DELETE FROM document_chunks
             WHERE document_id = $1 AND id IN (SELECT value FROM json_each($2))",
};

// The `Store` impl is shared; the functions below are what it calls for the
// methods whose statements or writes differ on SQLite.
super::sql::sql_store!(SqliteStore, Sqlite, Backend::Sqlite, lock = "");

async fn migrate(pool: &SqlitePool) -> StoreResult<()> {
    sqlx::migrate!("./migrations/sqlite").run(pool).await?;
    Ok(())
}

async fn list_users_in_units(pool: &SqlitePool, unit_ids: &[i64]) -> StoreResult<Vec<User>> {
    let sql = users_in_units!("unit_id IN (SELECT value FROM json_each($1))");
    Q::fetch_for_units(pool, sql, id_list(unit_ids)).await
}

async fn list_documents_in_units(
    pool: &SqlitePool,
    unit_ids: &[i64],
) -> StoreResult<Vec<DocumentRow>> {
    let sql = documents_in_units!("u.unit_id IN (SELECT value FROM json_each($1))");
    Q::fetch_for_units(pool, sql, id_list(unit_ids)).await
}

async fn append_changes(store: &SqliteStore, write: DocumentWrite) -> StoreResult<AppendOutcome> {
    store.group.append(write).await
}

/// One process writes a SQLite database: nobody else's writes to hear.
async fn other_writes(
    _store: &SqliteStore,
) -> StoreResult<Option<tokio::sync::mpsc::Receiver<super::OtherWrite>>> {
    Ok(None)
}

async fn save_sync_state(store: &SqliteStore, write: SyncStateWrite) -> StoreResult<()> {
    store.group.save_sync_state(write).await
}

async fn append_audit(store: &SqliteStore, entry: NewAuditEntry) -> StoreResult<i64> {
    store.group.append_audit(entry).await
}

/// Why an append in the group commit's transaction failed, and whether it
/// left writes behind in that transaction.
enum AppendFailure {
    /// Refused or failed before its first write: nothing of it is in the
    /// transaction.
    BeforeWriting(StoreError),
    /// Made on a copy that missed a stored write
    /// ([`StoreError::Stale`]); refused before writing. The caller hands
    /// the write back.
    Stale,
    /// Failed after its first write: what it wrote is still in the
    /// transaction, to be undone by a rollback (of a savepoint around it,
    /// or of the whole transaction).
    AfterWriting(StoreError),
}

/// [`Store::append_changes`](super::Store::append_changes) inside the
/// group commit's transaction (which holds the write lock, so the document
/// row read first is still current when the chunk is written). Its
/// refusals (a missing document, another owner's, a stale copy, a write
/// over its owner's limits) all come from the reads before its first
/// write; only a claim of an actor that is another writer's, or a failing
/// database, stops it after that.
///
/// With limits to check, the owner's usage is read with the row, in the
/// same statement. The transaction holds the write lock, so every write
/// before this one, in this batch or an earlier one, is in that usage.
async fn append_in(
    tx: &mut sqlx::SqliteConnection,
    write: &DocumentWrite,
) -> Result<AppendOutcome, AppendFailure> {
    use AppendFailure::{AfterWriting, BeforeWriting};
    let document_id = write.document_id.to_string();
    let limits = write.sync.as_ref().and_then(|sync| sync.owner_limits);
    let (existing, usage) = match limits {
        Some(_) => Q::row_and_owner_usage(tx, row_and_owner_usage!(), &document_id)
            .await
            .map_err(BeforeWriting)?
            .map_or((None, None), |(row, usage)| (Some(row), Some(usage))),
        None => (
            sqlx::query_as::<_, DocumentRow>(document_by_id!())
                .bind(&document_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| BeforeWriting(e.into()))?,
            None,
        ),
    };

    // The document to create, if the write creates it.
    let new_document = match (&existing, &write.create) {
        (None, None) => return Err(BeforeWriting(StoreError::NotFound)),
        (None, Some(new)) => Some(new),
        (Some(meta), Some(new)) if meta.owner_user_id != new.owner_user_id => {
            return Err(BeforeWriting(StoreError::Conflict(
                "document belongs to another user".to_owned(),
            )));
        }
        (Some(row), _) if !Q::is_current(row, write) => return Err(AppendFailure::Stale),
        (Some(_), _) => None,
    };
    let created = new_document.is_some();
    if let Some(limits) = limits {
        let usage = match (usage, new_document) {
            (Some(usage), _) => usage,
            // No row: the write creates the document (else it was refused
            // above as not found).
            (None, new) => {
                let owner = new.map_or(0, |n| n.owner_user_id);
                Q::owner_usage(&mut *tx, owner)
                    .await
                    .map_err(BeforeWriting)?
            }
        };
        if let Some(over) = OverLimit::check(usage, created, write.data.len(), limits) {
            return Err(BeforeWriting(StoreError::OverLimit(over)));
        }
    }

    async {
        if let Some(new) = new_document {
            // The write lock is held, so the row is new: a duplicate id
            // fails the insert.
            Q::insert_document(
                tx,
                concat!(insert_document!(), " RETURNING id"),
                &document_id,
                new,
                write.at,
            )
            .await?;
        }
        let chunk_id = Q::insert_chunk(tx, &document_id, &write.data, write.at).await?;
        Q::record_write(tx, &document_id, write).await?;
        Q::append_outcome(tx, &document_id, write, created, chunk_id).await
    }
    .await
    .map_err(AfterWriting)
}
