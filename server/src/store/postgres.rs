//! The PostgreSQL backend, for several stateless server processes on one
//! database.
//!
//! Writes to one document are serialised across processes by locking its
//! `documents` row (`SELECT … FOR UPDATE`) for the length of the write
//! transaction. A first write creates the row with `INSERT … ON CONFLICT DO
//! NOTHING` before locking it, so two processes creating the same document at
//! once also queue on the row instead of failing. Under that lock a write
//! made on a copy of the document that missed another process's write is
//! refused ([`DocumentWrite::based_on`]), and a committed write is announced
//! to the other processes with `NOTIFY`, after its commit ([`listen`]).

mod ledger;
mod listen;

use std::str::FromStr;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use self::listen::Announcer;
use super::sql::{
    CompactSql, Sql, audit_log_columns, doc_cols, document_by_id, documents_in_units,
    insert_document, row_and_owner_usage, sync_state_replaces, sync_states_columns, users_in_units,
};
use super::{
    AppendOutcome, Backend, ConnectOptions, DocumentRow, DocumentWrite, NewAuditEntry, OverLimit,
    StoreError, StoreResult, SyncStateWrite, User,
};

/// The shared statements, on PostgreSQL.
type Q = Sql<Postgres>;

/// A [`Store`](super::Store) on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Names this store in the notices of its writes, so that it can tell
    /// them from other processes' ([`listen`]).
    instance: String,
    /// Tells the other processes what this one wrote.
    announcer: Announcer,
}

impl PostgresStore {
    /// Connects to the database a `postgres:` URL names.
    pub async fn connect(url: &str, options: ConnectOptions) -> StoreResult<Self> {
        Self::connect_with(PgConnectOptions::from_str(url)?, options).await
    }

    /// Connects with explicit options (tests use this to set `search_path`
    /// to a schema of their own).
    pub async fn connect_with(
        connect_options: PgConnectOptions,
        options: ConnectOptions,
    ) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .connect_with(connect_options)
            .await?;
        let instance = format!("{:016x}", rand::random::<u64>());
        Ok(PostgresStore {
            announcer: Announcer::start(pool.clone(), instance.clone()),
            pool,
            instance,
        })
    }
}

/// How the shared `Store` impl begins a transaction that writes: a plain
/// `BEGIN`. What keeps other writers off a row is the `FOR UPDATE` lock
/// (below) on the row's first read, held until the commit, across every
/// process: concurrent presentations of one refresh token queue on the
/// token's row (the second then sees `rotated_at` set), a compaction or a
/// ledger rebuild on the document's row.
const BEGIN_WRITE: &str = "BEGIN";

/// How it begins a transaction of several reads: READ COMMITTED would let a
/// compaction commit between two reads of a document (old snapshot, chunks
/// already deleted); REPEATABLE READ pins one snapshot of the database for
/// the whole transaction.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

/// A compaction's statements, with the chunk ids bound as a `BIGINT[]`.
const COMPACT: CompactSql = CompactSql {
    heads: "SELECT snapshot_heads FROM documents WHERE id = $1 FOR UPDATE",
    present: "SELECT COUNT(*) FROM document_chunks WHERE document_id = $1 AND id = ANY($2)",
    delete: "DELETE FROM document_chunks WHERE document_id = $1 AND id = ANY($2)",
};

/// A list of ids as bound to `= ANY($n)`.
fn id_list(ids: &[i64]) -> Vec<i64> {
    ids.to_vec()
}

// The `Store` impl is shared; the functions below are what it calls for the
// methods whose statements or writes differ on PostgreSQL.
super::sql::sql_store!(
    PostgresStore,
    Postgres,
    Backend::Postgres,
    lock = " FOR UPDATE"
);

async fn migrate(pool: &PgPool) -> StoreResult<()> {
    // sqlx takes an advisory lock while migrating, so several processes
    // starting together do not race.
    sqlx::migrate!("./migrations/postgres").run(pool).await?;
    Ok(())
}

async fn list_users_in_units(pool: &PgPool, unit_ids: &[i64]) -> StoreResult<Vec<User>> {
    Q::fetch_for_units(
        pool,
        users_in_units!("unit_id = ANY($1)"),
        id_list(unit_ids),
    )
    .await
}

async fn list_documents_in_units(pool: &PgPool, unit_ids: &[i64]) -> StoreResult<Vec<DocumentRow>> {
    let sql = documents_in_units!("u.unit_id = ANY($1)");
    Q::fetch_for_units(pool, sql, id_list(unit_ids)).await
}

async fn append_changes(store: &PostgresStore, write: DocumentWrite) -> StoreResult<AppendOutcome> {
    let document_id = write.document_id.to_string();
    let mut tx = store.pool.begin().await?;
    let mut created = false;
    if let Some(new) = &write.create {
        created = Q::insert_document(
            &mut tx,
            concat!(
                insert_document!(),
                " ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            &document_id,
            new,
            write.at,
        )
        .await?;
    }
    // The per-document lock: held until commit, across every process.
    // With limits to check, the owner's usage is read with the row.
    let limits = write.sync.as_ref().and_then(|sync| sync.owner_limits);
    let (existing, usage) = match limits {
        Some(_) => {
            match Q::row_and_owner_usage(
                &mut tx,
                concat!(row_and_owner_usage!(), " FOR UPDATE"),
                &document_id,
            )
            .await?
            {
                Some((row, usage)) => (Some(row), Some(usage)),
                None => (None, None),
            }
        }
        None => (
            sqlx::query_as::<_, DocumentRow>(concat!(document_by_id!(), " FOR UPDATE"))
                .bind(&document_id)
                .fetch_optional(&mut *tx)
                .await?,
            None,
        ),
    };
    let Some(existing) = existing else {
        return Err(StoreError::NotFound);
    };
    if let Some(new) = &write.create
        && existing.owner_user_id != new.owner_user_id
    {
        return Err(StoreError::Conflict(
            "document belongs to another user".to_owned(),
        ));
    }
    if let (Some(limits), Some(mut usage)) = (limits, usage) {
        // The row inserted above is in the count; the check counts what
        // the owner had before this write.
        usage.documents = usage.documents.saturating_sub(u64::from(created));
        if let Some(over) = OverLimit::check(usage, created, write.data.len(), limits) {
            return Err(StoreError::OverLimit(over));
        }
    }
    let write = if created {
        write
    } else {
        Q::check_based_on(&existing, write)?
    };

    // The row lock above is still held, so projections of one document
    // never interleave.
    Q::record_write(&mut tx, &document_id, &write).await?;
    let outcome = insert_chunk_and_record(&mut tx, &document_id, &write, created).await?;
    if let Some(sync) = &write.sync {
        let entry = sync.audit_entry(write.document_id, write.at, created, outcome.chunk_id);
        match &sync.sync_state {
            Some(state) => audit_and_sync_state(&mut tx, &entry, state).await?,
            None => {
                Q::append_audit(&mut tx, &entry).await?;
            }
        }
    }
    tx.commit().await?;
    store.announcer.written(write.document_id);
    Ok(outcome)
}

// Each statement is a round trip to the database, and a sync's write is a
// handful of them; PostgreSQL can do in one statement (data-modifying `WITH`)
// what SQLite needs two for, so the two pairs below are one statement each
// here. The single-statement forms are `Sql::insert_chunk` with
// `Sql::append_outcome`, and `Sql::append_audit` with `Sql::save_sync_state`.

/// Stores `write`'s chunk and records it on the document's row (its time,
/// its last chunk, one more chunk waiting for compaction), in one
/// statement; what was written, from the row as the update left it.
async fn insert_chunk_and_record(
    conn: &mut sqlx::PgConnection,
    document_id: &str,
    write: &DocumentWrite,
    created: bool,
) -> StoreResult<AppendOutcome> {
    use sqlx::{FromRow, Row};
    let row = sqlx::query(concat!(
        "WITH chunk AS (
             INSERT INTO document_chunks (document_id, data, created_at) VALUES ($1, $2, $3)
             RETURNING id AS chunk_id)
         UPDATE documents
            SET updated_at = $3, last_chunk_id = chunk.chunk_id,
                pending_chunks = pending_chunks + 1, heads = $4
           FROM chunk
          WHERE documents.id = $1
         RETURNING chunk.chunk_id, ",
        doc_cols!()
    ))
    .bind(document_id)
    .bind(write.data.as_slice())
    .bind(write.at)
    .bind(write.heads.as_deref().map(super::heads_to_bytes))
    .fetch_one(&mut *conn)
    .await?;
    Ok(AppendOutcome {
        meta: DocumentRow::from_row(&row)?,
        created,
        chunk_id: row.try_get("chunk_id")?,
    })
}

/// A sync's audit row and its device's sync state, in one statement (the
/// state only while its document exists).
async fn audit_and_sync_state(
    conn: &mut sqlx::PgConnection,
    entry: &NewAuditEntry,
    state: &SyncStateWrite,
) -> StoreResult<()> {
    sqlx::query(concat!(
        "WITH audit AS (INSERT INTO ",
        audit_log_columns!(),
        " VALUES ($1, $2, $3, $4, $5, $6))
         INSERT INTO ",
        sync_states_columns!(),
        " SELECT $7, $8, $9, $10, $11 WHERE EXISTS (SELECT 1 FROM documents WHERE id = $7)",
        sync_state_replaces!()
    ))
    .bind(entry.at)
    .bind(entry.user_id)
    .bind(entry.action.as_str())
    .bind(entry.target.as_str())
    .bind(entry.detail.as_str())
    .bind(entry.remote_addr.as_deref())
    .bind(state.document_id.to_string())
    .bind(state.user_id)
    .bind(state.device_id.as_str())
    .bind(state.state.as_slice())
    .bind(state.at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn other_writes(
    store: &PostgresStore,
) -> StoreResult<Option<tokio::sync::mpsc::Receiver<super::OtherWrite>>> {
    listen::other_writes(&store.pool, store.instance.clone())
        .await
        .map(Some)
}

// Each on a connection of its own: concurrent commits are flushed
// together by PostgreSQL's WAL writer, so no group commit of ours is needed
// (see `store/sqlite/group_commit.rs`).
async fn save_sync_state(store: &PostgresStore, write: SyncStateWrite) -> StoreResult<()> {
    let mut conn = store.pool.acquire().await?;
    Q::save_sync_state(&mut conn, &write).await
}

async fn append_audit(store: &PostgresStore, entry: NewAuditEntry) -> StoreResult<i64> {
    let mut conn = store.pool.acquire().await?;
    Q::append_audit(&mut conn, &entry).await
}
