//! SQL that both backends run as it stands, written once.
//!
//! sqlx's SQLite driver maps a `$N` parameter to the N-th bound argument, as
//! PostgreSQL does (`SqliteArguments::bind` in sqlx-sqlite reads the number
//! after `$` or `?`; the test at the bottom holds it to that). So a statement
//! that differed between the backends only in its placeholders is written
//! here once, with `$N`, and run through [`Sql`], which is generic over the
//! database. What really differs stays in `sqlite.rs` and `postgres.rs`:
//! how a write transaction starts and what it locks (`BEGIN IMMEDIATE`
//! against `SELECT … FOR UPDATE`), `IN` lists (`json_each` against
//! `= ANY`), and byte lengths.

mod store_impl;

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use sqlx::{Database, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::{
    ActorClaim, AppendOutcome, AuditEntry, Compaction, DocumentActor, DocumentChunk, DocumentRow,
    DocumentSince, DocumentWrite, NewAuditEntry, NewDocument, NewRefreshToken, NewUnit, NewUser,
    OwnerUsage, PetitionLocation, RefreshReplacement, RefreshRotation, RefreshToken, StaleWrite,
    StoreError, StoreResult, StoredDocument, StoredVersion, SyncStateWrite, Unit, User,
    heads_from_bytes, heads_to_bytes,
};
use sync_core::DocumentId;
use sync_core::automerge::ChangeHash;
use sync_core::protocol::ListedDocument;

use crate::ledger::report::{
    CardItem, DeviceRow, PetitionCounts, RecordQuery, ReportQuery, VisitCounts, VisitGrouping,
    VisitItem,
};
use crate::ledger::{
    CardRow, LedgerEvent, LedgerItem, LedgerPage, LedgerProjection, LedgerQuery, LedgerScope,
    PetitionEventRow, PetitionRow, VisitRow,
};

// Column lists as macros so `concat!` can build `&'static str` queries (sqlx
// only accepts static SQL without an explicit `AssertSqlSafe`).
macro_rules! unit_cols {
    () => {
        "id, code, name, parent_id, kind"
    };
}
macro_rules! user_cols {
    () => {
        "id, username, display_name, role, unit_id, password_hash, created_at, disabled"
    };
}
macro_rules! refresh_cols {
    () => {
        "id, user_id, family_id, token_hash, device_id, created_at, expires_at, rotated_at, revoked_at"
    };
}
macro_rules! doc_cols {
    () => {
        "id, kind, owner_user_id, year, created_at, updated_at, snapshot_heads, last_chunk_id,
         pending_chunks, heads"
    };
}
/// Inserts a new document's row, `$1` its id, `$2` to `$4` its kind, owner
/// and year, `$5` both its times; a backend appends what it does on a
/// duplicate id and `RETURNING id`.
macro_rules! insert_document {
    () => {
        "INSERT INTO documents (id, kind, owner_user_id, year, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $5)"
    };
}
/// The documents of every user in a list of units, in id order, given the
/// backend's test that `u.unit_id` is in the list bound to `$1`.
macro_rules! documents_in_units {
    ($unit_in_list:literal) => {
        concat!(
            "SELECT d.id, d.kind, d.owner_user_id, d.year, d.created_at, d.updated_at, d.snapshot_heads,
                    d.last_chunk_id, d.pending_chunks, d.heads
             FROM documents d JOIN users u ON u.id = d.owner_user_id
             WHERE ",
            $unit_in_list,
            " ORDER BY d.id"
        )
    };
}
/// The users of a list of units, in id order, given the backend's test that
/// `unit_id` is in the list bound to `$1`.
macro_rules! users_in_units {
    ($unit_in_list:literal) => {
        concat!(
            "SELECT ",
            $crate::store::sql::user_cols!(),
            " FROM users WHERE ",
            $unit_in_list,
            " ORDER BY id"
        )
    };
}
pub(super) use store_impl::sql_store;
pub(super) use {
    doc_cols, documents_in_units, insert_document, refresh_cols, user_cols, users_in_units,
};

/// The audit table with its columns, in the order every insert of audit
/// rows binds them (`at`, `user_id`, `action`, `target`, `detail`,
/// `remote_addr`).
macro_rules! audit_log_columns {
    () => {
        "audit_log (at, user_id, action, target, detail, remote_addr)"
    };
}
/// The sync-state table with its columns, in the order every insert of
/// sync states binds them (`document_id`, `user_id`, `device_id`,
/// `state`, `updated_at`).
macro_rules! sync_states_columns {
    () => {
        "sync_states (document_id, user_id, device_id, state, updated_at)"
    };
}
/// The end of an insert of sync states: a device's new state replaces the
/// one it had.
macro_rules! sync_state_replaces {
    () => {
        " ON CONFLICT (document_id, user_id, device_id)
          DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at"
    };
}
pub(super) use {audit_log_columns, sync_state_replaces, sync_states_columns};

/// A refresh token by the hash of its opaque value; a backend that locks
/// rows appends its locking clause to this text.
macro_rules! refresh_by_hash {
    () => {
        concat!(
            "SELECT ",
            $crate::store::sql::refresh_cols!(),
            " FROM refresh_tokens WHERE token_hash = $1"
        )
    };
}
pub(super) use refresh_by_hash;

/// A document's row by id; a backend that locks rows appends its locking
/// clause to this text.
macro_rules! document_by_id {
    () => {
        concat!(
            "SELECT ",
            $crate::store::sql::doc_cols!(),
            " FROM documents WHERE id = $1"
        )
    };
}
pub(super) use document_by_id;

/// What the documents of the owner `$owner` (an SQL expression) take, as
/// two columns: `owner_documents` and `owner_bytes` (snapshots plus pending
/// chunks; `LENGTH` of a blob or `bytea` is its size in bytes).
macro_rules! owner_usage_cols {
    ($owner:literal) => {
        concat!(
            "(SELECT CAST(COUNT(*) AS BIGINT) FROM documents o WHERE o.owner_user_id = ",
            $owner,
            ") AS owner_documents,
             CAST(COALESCE((SELECT SUM(LENGTH(s.snapshot))
                              FROM document_snapshots s JOIN documents sd ON sd.id = s.document_id
                             WHERE sd.owner_user_id = ",
            $owner,
            "), 0)
                  + COALESCE((SELECT SUM(LENGTH(c.data))
                                FROM document_chunks c JOIN documents cd ON cd.id = c.document_id
                               WHERE cd.owner_user_id = ",
            $owner,
            "), 0) AS BIGINT) AS owner_bytes"
        )
    };
}
pub(super) use owner_usage_cols;

/// A document's row (`$1` its id) and what its owner's documents take
/// ([`owner_usage_cols!`]); a backend that locks rows appends its locking
/// clause.
macro_rules! row_and_owner_usage {
    () => {
        concat!(
            "SELECT ",
            $crate::store::sql::doc_cols!(),
            ", ",
            $crate::store::sql::owner_usage_cols!("documents.owner_user_id"),
            " FROM documents WHERE id = $1"
        )
    };
}
pub(super) use row_and_owner_usage;

/// When a document was last written; a backend that locks rows appends its
/// locking clause to this text.
macro_rules! updated_at_by_id {
    () => {
        "SELECT updated_at FROM documents WHERE id = $1"
    };
}
pub(super) use updated_at_by_id;

/// The statements both backends share, for a database `DB`. The bounds say
/// which Rust types the statements bind and decode; both drivers meet them.
pub(super) struct Sql<DB>(PhantomData<DB>);

/// A document's row and what its owner's documents take
/// ([`Sql::row_and_owner_usage`]).
#[derive(sqlx::FromRow)]
pub(super) struct RowAndUsage {
    #[sqlx(flatten)]
    pub meta: DocumentRow,
    pub owner_documents: i64,
    pub owner_bytes: i64,
}

/// A document's row and the sync state one device kept of it, read in one
/// statement ([`Sql::document_meta_and_sync_state`]).
#[derive(sqlx::FromRow)]
pub(super) struct RowAndSyncState {
    #[sqlx(flatten)]
    pub meta: DocumentRow,
    pub sync_state: Option<Vec<u8>>,
}

/// A document and the heads its row keeps, for a handshake's listing.
#[derive(sqlx::FromRow)]
pub(super) struct ListedHeads {
    #[sqlx(try_from = "String")]
    id: DocumentId,
    heads: Option<Vec<u8>>,
}

impl<DB> Sql<DB>
where
    DB: Database,
    <DB as Database>::Arguments: IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'a, 'q> &'a str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'static str>: Encode<'q, DB> + Type<DB>,
    str: Type<DB>,
    for<'a, 'q> &'a [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
    for<'r> Unit: FromRow<'r, DB::Row>,
    for<'r> User: FromRow<'r, DB::Row>,
    for<'r> RefreshToken: FromRow<'r, DB::Row>,
    for<'r> DocumentRow: FromRow<'r, DB::Row>,
    for<'r> RowAndSyncState: FromRow<'r, DB::Row>,
    for<'r> RowAndUsage: FromRow<'r, DB::Row>,
    for<'r> ListedHeads: FromRow<'r, DB::Row>,
    for<'q> Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
    for<'r> DocumentChunk: FromRow<'r, DB::Row>,
    for<'r> AuditEntry: FromRow<'r, DB::Row>,
    for<'r> LedgerItem: FromRow<'r, DB::Row>,
    for<'r> LedgerEvent: FromRow<'r, DB::Row>,
    for<'r> DocumentActor: FromRow<'r, DB::Row>,
    for<'r> PetitionLocation: FromRow<'r, DB::Row>,
    for<'r> (i64, bool): FromRow<'r, DB::Row>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> (Vec<u8>,): FromRow<'r, DB::Row>,
    for<'r> (Option<Vec<u8>>,): FromRow<'r, DB::Row>,
    for<'r> (DateTime<Utc>,): FromRow<'r, DB::Row>,
    for<'r> (Option<String>,): FromRow<'r, DB::Row>,
    for<'r> (String,): FromRow<'r, DB::Row>,
    for<'r> (i64, String): FromRow<'r, DB::Row>,
    for<'r> VisitCounts: FromRow<'r, DB::Row>,
    for<'r> PetitionCounts: FromRow<'r, DB::Row>,
    for<'r> VisitItem: FromRow<'r, DB::Row>,
    for<'r> CardItem: FromRow<'r, DB::Row>,
    for<'r> DeviceRow: FromRow<'r, DB::Row>,
    for<'r> VisitRow: FromRow<'r, DB::Row>,
    for<'r> PetitionRow: FromRow<'r, DB::Row>,
    for<'r> PetitionEventRow: FromRow<'r, DB::Row>,
    for<'r> CardRow: FromRow<'r, DB::Row>,
{
    pub(super) async fn create_unit(pool: &Pool<DB>, unit: NewUnit) -> StoreResult<Unit> {
        Ok(sqlx::query_as::<DB, Unit>(concat!(
            "INSERT INTO units (code, name, parent_id, kind, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING ",
            unit_cols!()
        ))
        .bind(unit.code)
        .bind(unit.name)
        .bind(unit.parent_id)
        .bind(unit.kind)
        .bind(Utc::now())
        .fetch_one(pool)
        .await?)
    }

    pub(super) async fn get_unit(pool: &Pool<DB>, id: i64) -> StoreResult<Option<Unit>> {
        Ok(sqlx::query_as::<DB, Unit>(concat!(
            "SELECT ",
            unit_cols!(),
            " FROM units WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?)
    }

    pub(super) async fn get_unit_by_code(pool: &Pool<DB>, code: &str) -> StoreResult<Option<Unit>> {
        Ok(sqlx::query_as::<DB, Unit>(concat!(
            "SELECT ",
            unit_cols!(),
            " FROM units WHERE code = $1"
        ))
        .bind(code)
        .fetch_optional(pool)
        .await?)
    }

    pub(super) async fn list_units(pool: &Pool<DB>) -> StoreResult<Vec<Unit>> {
        Ok(
            sqlx::query_as::<DB, Unit>(concat!("SELECT ", unit_cols!(), " FROM units ORDER BY id"))
                .fetch_all(pool)
                .await?,
        )
    }

    pub(super) async fn unit_subtree(pool: &Pool<DB>, root: i64) -> StoreResult<Vec<Unit>> {
        Ok(sqlx::query_as::<DB, Unit>(
            "WITH RECURSIVE sub(id) AS (
                 SELECT id FROM units WHERE id = $1
                 UNION ALL
                 SELECT u.id FROM units u JOIN sub ON u.parent_id = sub.id
             )
             SELECT units.id, units.code, units.name, units.parent_id, units.kind
             FROM units JOIN sub ON units.id = sub.id
             ORDER BY units.id",
        )
        .bind(root)
        .fetch_all(pool)
        .await?)
    }

    pub(super) async fn is_unit_within(pool: &Pool<DB>, unit: i64, root: i64) -> StoreResult<bool> {
        // Walk up from `unit`; the tree is shallow, so this is a handful of rows.
        let found: i64 = sqlx::query_scalar::<DB, i64>(
            "WITH RECURSIVE up(id, parent_id) AS (
                 SELECT id, parent_id FROM units WHERE id = $1
                 UNION ALL
                 SELECT u.id, u.parent_id FROM units u JOIN up ON u.id = up.parent_id
             )
             SELECT COUNT(*) FROM up WHERE id = $2",
        )
        .bind(unit)
        .bind(root)
        .fetch_one(pool)
        .await?;
        Ok(found > 0)
    }

    pub(super) async fn create_user(pool: &Pool<DB>, user: NewUser) -> StoreResult<User> {
        Ok(sqlx::query_as::<DB, User>(concat!(
            "INSERT INTO users (username, display_name, role, unit_id, password_hash, created_at, disabled)
             VALUES ($1, $2, $3, $4, $5, $6, FALSE) RETURNING ",
            user_cols!()
        ))
        .bind(user.username)
        .bind(user.display_name)
        .bind(user.role.as_str())
        .bind(user.unit_id)
        .bind(user.password_hash)
        .bind(Utc::now())
        .fetch_one(pool)
        .await?)
    }

    pub(super) async fn get_user(pool: &Pool<DB>, id: i64) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as::<DB, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await?)
    }

    pub(super) async fn get_user_by_username(
        pool: &Pool<DB>,
        username: &str,
    ) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as::<DB, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(pool)
        .await?)
    }

    pub(super) async fn set_user_disabled(
        pool: &Pool<DB>,
        user_id: i64,
        disabled: bool,
    ) -> StoreResult<()> {
        let found: Option<i64> = sqlx::query_scalar::<DB, i64>(
            "UPDATE users SET disabled = $1 WHERE id = $2 RETURNING id",
        )
        .bind(disabled)
        .bind(user_id)
        .fetch_optional(pool)
        .await?;
        found.map(drop).ok_or(StoreError::NotFound)
    }

    pub(super) async fn set_user_password(
        pool: &Pool<DB>,
        user_id: i64,
        password_hash: &str,
    ) -> StoreResult<()> {
        let found: Option<i64> = sqlx::query_scalar::<DB, i64>(
            "UPDATE users SET password_hash = $1 WHERE id = $2 RETURNING id",
        )
        .bind(password_hash)
        .bind(user_id)
        .fetch_optional(pool)
        .await?;
        found.map(drop).ok_or(StoreError::NotFound)
    }

    pub(super) async fn revoke_other_logins(
        pool: &Pool<DB>,
        user_id: i64,
        keep: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<String>> {
        let revoked = sqlx::query_as::<DB, RefreshToken>(concat!(
            "UPDATE refresh_tokens SET revoked_at = $1
             WHERE user_id = $2 AND family_id <> $3 AND revoked_at IS NULL
             RETURNING ",
            refresh_cols!()
        ))
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .fetch_all(pool)
        .await?;
        let mut families: Vec<String> = revoked.into_iter().map(|t| t.issued.family_id).collect();
        families.sort();
        families.dedup();
        Ok(families)
    }

    pub(super) async fn insert_refresh_token(
        pool: &Pool<DB>,
        token: NewRefreshToken,
    ) -> StoreResult<RefreshToken> {
        Ok(sqlx::query_as::<DB, RefreshToken>(concat!(
            "INSERT INTO refresh_tokens (user_id, family_id, token_hash, device_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            refresh_cols!()
        ))
        .bind(token.user_id)
        .bind(token.family_id)
        .bind(token.token_hash)
        .bind(token.device_id)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(pool)
        .await?)
    }

    pub(super) async fn get_refresh_token(
        pool: &Pool<DB>,
        token_hash: &str,
    ) -> StoreResult<Option<RefreshToken>> {
        Ok(sqlx::query_as::<DB, RefreshToken>(refresh_by_hash!())
            .bind(token_hash)
            .fetch_optional(pool)
            .await?)
    }

    /// The body of [`Store::rotate_refresh_token`](super::Store::rotate_refresh_token)
    /// inside the caller's transaction, which the caller commits.
    /// `select_presented` is [`refresh_by_hash!`] with whatever makes a
    /// second presentation of the same token wait for the first.
    pub(super) async fn rotate_refresh_token(
        conn: &mut DB::Connection,
        select_presented: &'static str,
        presented_hash: &str,
        replacement: RefreshReplacement,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshRotation> {
        let Some(previous) = sqlx::query_as::<DB, RefreshToken>(select_presented)
            .bind(presented_hash)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Err(StoreError::NotFound);
        };

        if previous.revoked_at.is_some() {
            return Ok(RefreshRotation::Revoked);
        }
        // A retry whose first answer was lost: the same successor again,
        // while it is unused and the rotation recent.
        if let Some(rotated_at) = previous.rotated_at
            && now - rotated_at <= replacement.retry_grace
            && let Some(successor) = sqlx::query_as::<DB, RefreshToken>(concat!(
                "SELECT ",
                refresh_cols!(),
                " FROM refresh_tokens WHERE token_hash = $1 AND family_id = $2"
            ))
            .bind(replacement.token_hash.as_str())
            .bind(previous.family_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
            && successor.rotated_at.is_none()
            && successor.revoked_at.is_none()
        {
            return Ok(RefreshRotation::Retried {
                previous: Box::new(previous),
                current: Box::new(successor),
            });
        }
        if previous.rotated_at.is_some() {
            Self::revoke_family(&mut *conn, &previous.family_id, now).await?;
            return Ok(RefreshRotation::Reused {
                family_id: previous.issued.family_id,
                user_id: previous.issued.user_id,
            });
        }
        if previous.expires_at <= now {
            return Ok(RefreshRotation::Expired);
        }

        sqlx::query::<DB>("UPDATE refresh_tokens SET rotated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(previous.id)
            .execute(&mut *conn)
            .await?;
        let current = sqlx::query_as::<DB, RefreshToken>(concat!(
            "INSERT INTO refresh_tokens (user_id, family_id, token_hash, device_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            refresh_cols!()
        ))
        .bind(previous.user_id)
        .bind(previous.family_id.as_str())
        .bind(replacement.token_hash)
        .bind(previous.device_id.as_str())
        .bind(now)
        .bind(replacement.expires_at)
        .fetch_one(&mut *conn)
        .await?;
        Ok(RefreshRotation::Rotated {
            previous: Box::new(previous),
            current: Box::new(current),
        })
    }

    /// Revokes every not-yet-revoked token of a family; returns how many
    /// rows changed.
    pub(super) async fn revoke_family<'c, E>(
        executor: E,
        family_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<u64>
    where
        E: Executor<'c, Database = DB>,
    {
        let revoked: Vec<i64> = sqlx::query_scalar::<DB, i64>(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(now)
        .bind(family_id)
        .fetch_all(executor)
        .await?;
        Ok(revoked.len() as u64)
    }

    pub(super) async fn get_document_meta(
        pool: &Pool<DB>,
        id: &DocumentId,
    ) -> StoreResult<Option<DocumentRow>> {
        Ok(sqlx::query_as::<DB, DocumentRow>(document_by_id!())
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?)
    }

    /// Whether a copy of the document at `since` lacks nothing of what
    /// `meta` (its row) says is stored.
    pub(super) fn nothing_since(meta: &DocumentRow, since: &StoredVersion) -> bool {
        meta.snapshot_heads == since.snapshot_heads && meta.last_chunk_id <= since.last_chunk_id
    }

    /// A document's row, and the sync state `device_id` of `user_id` kept
    /// of it, in one statement.
    pub(super) async fn document_meta_and_sync_state(
        pool: &Pool<DB>,
        id: &DocumentId,
        user_id: i64,
        device_id: &str,
    ) -> StoreResult<Option<RowAndSyncState>> {
        Ok(sqlx::query_as::<DB, RowAndSyncState>(concat!(
            "SELECT ",
            doc_cols!(),
            ", (SELECT s.state FROM sync_states s
                 WHERE s.document_id = $1 AND s.user_id = $2 AND s.device_id = $3) AS sync_state
             FROM documents WHERE id = $1"
        ))
        .bind(id.to_string())
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(pool)
        .await?)
    }

    /// The body of [`Store::load_document`](super::Store::load_document)
    /// inside the caller's transaction, which must see one snapshot of the
    /// database for all three reads.
    pub(super) async fn load_document(
        conn: &mut DB::Connection,
        id: &DocumentId,
    ) -> StoreResult<Option<StoredDocument>> {
        let id = id.to_string();
        let id = id.as_str();
        let Some(meta) = sqlx::query_as::<DB, DocumentRow>(document_by_id!())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let snapshot: Option<Vec<u8>> = sqlx::query_scalar::<DB, Vec<u8>>(
            "SELECT snapshot FROM document_snapshots WHERE document_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let chunks = sqlx::query_as::<DB, DocumentChunk>(
            "SELECT id, data FROM document_chunks WHERE document_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(StoredDocument {
            meta,
            snapshot,
            chunks,
        }))
    }

    /// The body of
    /// [`Store::load_document_since`](super::Store::load_document_since)
    /// inside the caller's transaction, which must see one snapshot of the
    /// database for all its reads.
    pub(super) async fn load_document_since(
        conn: &mut DB::Connection,
        id: &DocumentId,
        since: &StoredVersion,
    ) -> StoreResult<Option<DocumentSince>> {
        let text = id.to_string();
        let Some(meta) = sqlx::query_as::<DB, DocumentRow>(document_by_id!())
            .bind(text.as_str())
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        if meta.snapshot_heads != since.snapshot_heads {
            return Ok(Self::load_document(conn, id)
                .await?
                .map(DocumentSince::Whole));
        }
        if meta.last_chunk_id <= since.last_chunk_id {
            // Nothing stored past the copy: every chunk's id is at most
            // the row's last.
            return Ok(Some(DocumentSince::Added {
                meta,
                chunks: Vec::new(),
            }));
        }
        let chunks = sqlx::query_as::<DB, DocumentChunk>(
            "SELECT id, data FROM document_chunks WHERE document_id = $1 AND id > $2 ORDER BY id",
        )
        .bind(text.as_str())
        .bind(since.last_chunk_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Some(DocumentSince::Added { meta, chunks }))
    }

    pub(super) async fn list_documents_for_owner(
        pool: &Pool<DB>,
        user_id: i64,
    ) -> StoreResult<Vec<DocumentRow>> {
        Ok(sqlx::query_as::<DB, DocumentRow>(concat!(
            "SELECT ",
            doc_cols!(),
            " FROM documents WHERE owner_user_id = $1 ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(pool)
        .await?)
    }

    /// See [`Store::list_document_heads`](super::Store::list_document_heads).
    pub(super) async fn list_document_heads(
        pool: &Pool<DB>,
        user_id: i64,
    ) -> StoreResult<Vec<ListedDocument>> {
        let rows = sqlx::query_as::<DB, ListedHeads>(
            "SELECT id, heads FROM documents WHERE owner_user_id = $1 ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| ListedDocument {
                id: row.id,
                heads: row.heads.as_deref().and_then(heads_from_bytes),
            })
            .collect())
    }

    /// See [`Store::fill_document_heads`](super::Store::fill_document_heads).
    pub(super) async fn fill_document_heads(
        pool: &Pool<DB>,
        document_id: &DocumentId,
        heads: &[ChangeHash],
        version: &StoredVersion,
    ) -> StoreResult<bool> {
        let filled = sqlx::query_as::<DB, (String,)>(
            "UPDATE documents SET heads = $1
              WHERE id = $2 AND heads IS NULL AND last_chunk_id = $3
             RETURNING id",
        )
        .bind(Some(heads_to_bytes(heads)))
        .bind(document_id.to_string())
        .bind(version.last_chunk_id)
        .fetch_optional(pool)
        .await?;
        Ok(filled.is_some())
    }

    /// See [`Store::owner_usage`](super::Store::owner_usage), on a pool
    /// or inside the caller's transaction.
    pub(super) async fn owner_usage<'c, E>(executor: E, user_id: i64) -> StoreResult<OwnerUsage>
    where
        E: Executor<'c, Database = DB>,
    {
        let (documents, bytes) =
            sqlx::query_as::<DB, (i64, i64)>(concat!("SELECT ", owner_usage_cols!("$1")))
                .bind(user_id)
                .fetch_one(executor)
                .await?;
        Ok(OwnerUsage {
            documents: to_u64(documents),
            bytes: to_u64(bytes),
        })
    }

    /// A document's row and what its owner's documents take, read by `sql`
    /// (the backend's [`row_and_owner_usage!`] statement, `$1` the
    /// document's id) inside the caller's transaction.
    pub(super) async fn row_and_owner_usage(
        conn: &mut DB::Connection,
        sql: &'static str,
        document_id: &str,
    ) -> StoreResult<Option<(DocumentRow, OwnerUsage)>> {
        let found = sqlx::query_as::<DB, RowAndUsage>(sql)
            .bind(document_id)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(found.map(|f| {
            let usage = OwnerUsage {
                documents: to_u64(f.owner_documents),
                bytes: to_u64(f.owner_bytes),
            };
            (f.meta, usage)
        }))
    }

    /// The rows `sql` selects for the list of units it reads from `$1`,
    /// `units` being the backend's spelling of that list.
    pub(super) async fn fetch_for_units<T, U>(
        pool: &Pool<DB>,
        sql: &'static str,
        units: U,
    ) -> StoreResult<Vec<T>>
    where
        T: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
        U: for<'q> Encode<'q, DB> + Type<DB> + Send + Sync + 'static,
    {
        Ok(sqlx::query_as::<DB, T>(sql)
            .bind(units)
            .fetch_all(pool)
            .await?)
    }

    /// Creates a document's row inside the caller's transaction. `sql` is
    /// [`insert_document!`] with the backend's `RETURNING id` (and what it
    /// does on a duplicate id); whether it returned a row is whether the
    /// row was created.
    pub(super) async fn insert_document(
        conn: &mut DB::Connection,
        sql: &'static str,
        document_id: &str,
        new: &NewDocument,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let inserted = sqlx::query_scalar::<DB, String>(sql)
            .bind(document_id)
            .bind(new.kind.as_str())
            .bind(new.owner_user_id)
            .bind(new.year)
            .bind(at)
            .fetch_optional(&mut *conn)
            .await?;
        Ok(inserted.is_some())
    }

    /// Refuses a write whose copy of the document missed something stored
    /// ([`DocumentWrite::based_on`]): another snapshot than the one the
    /// copy was built on, or another last chunk than the copy's (one
    /// stored after it). Run on the document's row as read under the
    /// caller's lock, before anything is written; a row the write itself
    /// created has nothing to miss. The refused write is handed back in
    /// the error.
    pub(super) fn check_based_on(
        row: &DocumentRow,
        write: DocumentWrite,
    ) -> StoreResult<DocumentWrite> {
        if Self::is_current(row, &write) {
            Ok(write)
        } else {
            Err(StoreError::Stale(StaleWrite(Box::new(write))))
        }
    }

    /// Whether `write` was made on a copy with everything of `row` (see
    /// [`Self::check_based_on`]).
    pub(super) fn is_current(row: &DocumentRow, write: &DocumentWrite) -> bool {
        write.based_on.as_ref().is_none_or(|version| {
            row.snapshot_heads == version.snapshot_heads
                && row.last_chunk_id == version.last_chunk_id
        })
    }

    /// What [`Store::append_changes`](super::Store::append_changes) writes
    /// besides the chunk, inside the caller's transaction: who wrote the
    /// changes (before anything depends on it), then the ledger rows, which
    /// commit (or not) together with the chunk.
    pub(super) async fn record_write(
        conn: &mut DB::Connection,
        document_id: &str,
        write: &DocumentWrite,
    ) -> StoreResult<()> {
        Self::claim_actors(conn, document_id, &write.actors, write.at).await?;
        if let Some(ledger) = &write.ledger {
            Self::replace_ledger_rows(conn, document_id, ledger).await?;
        }
        Ok(())
    }

    /// The end of [`Store::append_changes`](super::Store::append_changes),
    /// inside the caller's transaction: records the chunk `chunk_id` of
    /// `write` on the document's row (its time, its last chunk, one more
    /// chunk waiting for compaction) and says what was written, from the
    /// row as the update left it. A sync connection's audit row and sync
    /// state ([`DocumentWrite::sync`](super::DocumentWrite::sync)) are the
    /// caller's to write: each backend writes them its own way.
    pub(super) async fn append_outcome(
        conn: &mut DB::Connection,
        document_id: &str,
        write: &DocumentWrite,
        created: bool,
        chunk_id: i64,
    ) -> StoreResult<AppendOutcome> {
        let at = write.at;
        let meta = sqlx::query_as::<DB, DocumentRow>(concat!(
            "UPDATE documents
                SET updated_at = $1, last_chunk_id = $2, pending_chunks = pending_chunks + 1,
                    heads = $4
              WHERE id = $3
             RETURNING ",
            doc_cols!()
        ))
        .bind(at)
        .bind(chunk_id)
        .bind(document_id)
        .bind(write.heads.as_deref().map(heads_to_bytes))
        .fetch_one(&mut *conn)
        .await?;
        Ok(AppendOutcome {
            meta,
            created,
            chunk_id,
        })
    }

    /// Stores one chunk of a document inside the caller's transaction and
    /// returns its id.
    pub(super) async fn insert_chunk(
        conn: &mut DB::Connection,
        document_id: &str,
        data: &[u8],
        at: DateTime<Utc>,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar::<DB, i64>(
            "INSERT INTO document_chunks (document_id, data, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(document_id)
        .bind(data)
        .bind(at)
        .fetch_one(&mut *conn)
        .await?)
    }

    /// The body of [`Store::compact`](super::Store::compact) inside the
    /// caller's transaction, which the caller commits. `replaced` is the
    /// backend's spelling of the list of chunk ids that `sql` binds as `$2`.
    pub(super) async fn compact<U>(
        conn: &mut DB::Connection,
        sql: CompactSql,
        compaction: &Compaction,
        replaced: U,
        replaced_count: usize,
    ) -> StoreResult<()>
    where
        U: for<'q> Encode<'q, DB> + Type<DB> + Send + Sync + 'static,
    {
        let document_id = compaction.document_id.to_string();
        let Some(current_heads) = sqlx::query_scalar::<DB, Option<String>>(sql.heads)
            .bind(document_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Err(StoreError::NotFound);
        };
        if current_heads != compaction.base_heads {
            return Err(StoreError::Conflict(
                "the snapshot changed since it was loaded".to_owned(),
            ));
        }
        let present = sqlx::query_scalar::<DB, i64>(sql.present)
            .bind(document_id.as_str())
            .bind(&replaced)
            .fetch_one(&mut *conn)
            .await?;
        if to_u64(present) != replaced_count as u64 {
            return Err(StoreError::Conflict(
                "some chunks were already compacted".to_owned(),
            ));
        }
        // The chunks deleted below are no longer pending; the last chunk
        // stays what it was (ids only grow, whether folded or not).
        sqlx::query::<DB>(
            "UPDATE documents SET snapshot_heads = $1, pending_chunks = pending_chunks - $2
             WHERE id = $3",
        )
        .bind(compaction.heads.as_str())
        .bind(i64::try_from(replaced_count).unwrap_or(i64::MAX))
        .bind(document_id.as_str())
        .execute(&mut *conn)
        .await?;
        sqlx::query::<DB>(
            "INSERT INTO document_snapshots (document_id, snapshot) VALUES ($1, $2)
             ON CONFLICT (document_id) DO UPDATE SET snapshot = excluded.snapshot",
        )
        .bind(document_id.as_str())
        .bind(compaction.snapshot.as_slice())
        .execute(&mut *conn)
        .await?;
        sqlx::query::<DB>(sql.delete)
            .bind(document_id.as_str())
            .bind(&replaced)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    pub(super) async fn load_sync_state(
        pool: &Pool<DB>,
        document_id: &DocumentId,
        user_id: i64,
        device_id: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar::<DB, Vec<u8>>(
            "SELECT state FROM sync_states
             WHERE document_id = $1 AND user_id = $2 AND device_id = $3",
        )
        .bind(document_id.to_string())
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(pool)
        .await?)
    }

    pub(super) async fn save_sync_state(
        conn: &mut DB::Connection,
        write: &SyncStateWrite,
    ) -> StoreResult<()> {
        sqlx::query::<DB>(concat!(
            "INSERT INTO ",
            sync_states_columns!(),
            " SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM documents WHERE id = $1)",
            sync_state_replaces!()
        ))
        .bind(write.document_id.to_string())
        .bind(write.user_id)
        .bind(write.device_id.as_str())
        .bind(write.state.as_slice())
        .bind(write.at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(super) async fn append_audit(
        conn: &mut DB::Connection,
        entry: &NewAuditEntry,
    ) -> StoreResult<i64> {
        Ok(sqlx::query_scalar::<DB, i64>(concat!(
            "INSERT INTO ",
            audit_log_columns!(),
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        ))
        .bind(entry.at)
        .bind(entry.user_id)
        .bind(entry.action.as_str())
        .bind(entry.target.as_str())
        .bind(entry.detail.as_str())
        .bind(entry.remote_addr.clone())
        .fetch_one(&mut *conn)
        .await?)
    }

    pub(super) async fn list_audit(pool: &Pool<DB>, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        Ok(sqlx::query_as::<DB, AuditEntry>(
            "SELECT id, at, user_id, action, target, detail, remote_addr
             FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?)
    }
    /// Records the actors of a write (see
    /// [`DocumentWrite::actors`](super::DocumentWrite::actors)) inside its
    /// transaction: a new actor becomes the claimant's; a known one must
    /// already be theirs (same user, and server or not), otherwise
    /// `Conflict` and the caller's transaction rolls back.
    pub(super) async fn claim_actors(
        conn: &mut DB::Connection,
        document_id: &str,
        claims: &[ActorClaim],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        for claim in claims {
            let inserted = sqlx::query_scalar::<DB, i64>(
                "INSERT INTO document_actors (document_id, actor, user_id, device_id, via_server,
                     first_seen)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (document_id, actor) DO NOTHING
                 RETURNING user_id",
            )
            .bind(document_id)
            .bind(claim.actor.as_str())
            .bind(claim.user_id)
            .bind(claim.device_id.as_str())
            .bind(claim.via_server)
            .bind(at)
            .fetch_optional(&mut *conn)
            .await?;
            if inserted.is_some() {
                // A new actor: the claim just written is the claim.
                continue;
            }
            let (user_id, via_server) = sqlx::query_as::<DB, (i64, bool)>(
                "SELECT user_id, via_server FROM document_actors
                 WHERE document_id = $1 AND actor = $2",
            )
            .bind(document_id)
            .bind(claim.actor.as_str())
            .fetch_one(&mut *conn)
            .await?;
            if (user_id, via_server) != (claim.user_id, claim.via_server) {
                return Err(StoreError::Conflict(format!(
                    "actor {} of document {document_id} belongs to another writer",
                    claim.actor
                )));
            }
        }
        Ok(())
    }

    pub(super) async fn document_actors(
        pool: &Pool<DB>,
        document_id: &DocumentId,
    ) -> StoreResult<Vec<DocumentActor>> {
        Ok(sqlx::query_as::<DB, DocumentActor>(
            "SELECT a.actor, a.user_id, u.username, a.device_id, a.via_server
             FROM document_actors a JOIN users u ON u.id = a.user_id
             WHERE a.document_id = $1 ORDER BY a.actor",
        )
        .bind(document_id.to_string())
        .fetch_all(pool)
        .await?)
    }

    pub(super) async fn find_petitions(
        pool: &Pool<DB>,
        petition_id: &str,
    ) -> StoreResult<Vec<PetitionLocation>> {
        Ok(sqlx::query_as::<DB, PetitionLocation>(
            "SELECT document_id, id AS petition_id, owner_user_id, unit_id
             FROM ledger_petitions WHERE id = $1 AND NOT deleted ORDER BY document_id",
        )
        .bind(petition_id)
        .fetch_all(pool)
        .await?)
    }

    pub(super) async fn ledger_petition(
        pool: &Pool<DB>,
        document_id: &DocumentId,
        petition_id: &str,
        today: &str,
    ) -> StoreResult<Option<LedgerItem>> {
        Ok(sqlx::query_as::<DB, LedgerItem>(concat!(
            "SELECT ",
            ledger_item_cols!(),
            ", ",
            petition_overdue!("$3"),
            " AS overdue
             FROM ledger_petitions p
             JOIN units un ON un.id = p.unit_id
             JOIN users us ON us.id = p.owner_user_id
             WHERE p.document_id = $1 AND p.id = $2 AND NOT p.deleted"
        ))
        .bind(document_id.to_string())
        .bind(petition_id)
        .bind(today)
        .fetch_optional(pool)
        .await?)
    }

    pub(super) async fn ledger_petition_events(
        pool: &Pool<DB>,
        document_id: &DocumentId,
        petition_id: &str,
    ) -> StoreResult<Vec<LedgerEvent>> {
        Ok(sqlx::query_as::<DB, LedgerEvent>(
            "SELECT id, at, actor, claimed_by, device_id, via_server, believed, flag, event_type,
                    note, detail
             FROM ledger_petition_events
             WHERE document_id = $1 AND petition_id = $2
             ORDER BY at, id",
        )
        .bind(document_id.to_string())
        .bind(petition_id)
        .fetch_all(pool)
        .await?)
    }

    /// Every ledger row of one document, each table in key order.
    pub(super) async fn ledger_rows(
        pool: &Pool<DB>,
        document_id: &DocumentId,
    ) -> StoreResult<LedgerProjection> {
        let id = document_id.to_string();
        let mut tx = pool.begin().await?;
        let visits = sqlx::query_as::<DB, VisitRow>(
            "SELECT id, kind, at, place, subject_kind, subject_name, household_key, tags,
                    aid_money_fen, aid_goods, resolved_on_spot, petition_count, answers,
                    created_at, created_by, deleted
             FROM ledger_visits WHERE document_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let petitions = sqlx::query_as::<DB, PetitionRow>(
            "SELECT id, visit_id, applicant_name, applicant_phone, applicant_address, matter,
                    category, created_at, created_by, status, responsible, level, deadline,
                    feedback, satisfaction, resolved_at, resolved_on, closed_at, deleted,
                    event_count
             FROM ledger_petitions WHERE document_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let events = sqlx::query_as::<DB, PetitionEventRow>(
            "SELECT petition_id, id, at, actor, claimed_by, device_id, via_server, believed,
                    flag, event_type, note, detail
             FROM ledger_petition_events WHERE document_id = $1 ORDER BY petition_id, id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let cards = sqlx::query_as::<DB, CardRow>(
            "SELECT id, resident, phone, address, household, handed_over_at, pairing_role,
                    pairing_needy, follow_ups, created_at, created_by, deleted
             FROM ledger_cards WHERE document_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LedgerProjection {
            scope: LedgerScope::Document,
            visits,
            petitions,
            events,
            cards,
        })
    }

    /// The body of [`Store::replace_ledger`](super::Store::replace_ledger)
    /// inside the caller's transaction, which the caller commits.
    /// `select_updated_at` is [`updated_at_by_id!`] with whatever keeps a
    /// write to the document from coming between the check and the rows.
    pub(super) async fn replace_ledger_if_unchanged(
        conn: &mut DB::Connection,
        select_updated_at: &'static str,
        document_id: &DocumentId,
        ledger: &LedgerProjection,
        expected_updated_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let document_id = document_id.to_string();
        let Some(updated_at) = sqlx::query_scalar::<DB, DateTime<Utc>>(select_updated_at)
            .bind(document_id.as_str())
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Err(StoreError::NotFound);
        };
        if updated_at != expected_updated_at {
            return Err(StoreError::Conflict(
                "the document changed since it was loaded".to_owned(),
            ));
        }
        Self::replace_ledger_rows(conn, &document_id, ledger).await
    }

    /// Replaces the ledger rows of `document_id` that `ledger.scope` names
    /// (all of them, or those of some records) with `ledger`, inside the
    /// caller's transaction.
    ///
    /// Delete-then-insert: simple, and a rebuild gives exactly the rows the
    /// sync path wrote. After a sync only the records its changes wrote into
    /// are replaced ([`LedgerScope::Records`]), one statement per row, so a
    /// write costs its own records, not the document's. `ON CONFLICT DO
    /// NOTHING`: a hostile document with a duplicate id must not make the
    /// write (and so the chunk) fail.
    pub(super) async fn replace_ledger_rows(
        conn: &mut DB::Connection,
        document_id: &str,
        ledger: &LedgerProjection,
    ) -> StoreResult<()> {
        match &ledger.scope {
            LedgerScope::Document => {
                for table in [
                    "DELETE FROM ledger_visits WHERE document_id = $1",
                    "DELETE FROM ledger_petitions WHERE document_id = $1",
                    "DELETE FROM ledger_petition_events WHERE document_id = $1",
                    "DELETE FROM ledger_cards WHERE document_id = $1",
                ] {
                    sqlx::query::<DB>(table)
                        .bind(document_id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
            LedgerScope::Records {
                visits,
                petitions,
                cards,
            } => {
                // A visit or card with a row in the projection has it
                // replaced by the insert below (an upsert); only those
                // without one need a delete.
                let projected_visits: std::collections::HashSet<&str> =
                    ledger.visits.iter().map(|v| v.id.as_str()).collect();
                let projected_cards: std::collections::HashSet<&str> =
                    ledger.cards.iter().map(|c| c.id.as_str()).collect();
                let visits: Vec<&String> = visits
                    .iter()
                    .filter(|id| !projected_visits.contains(id.as_str()))
                    .collect();
                let cards: Vec<&String> = cards
                    .iter()
                    .filter(|id| !projected_cards.contains(id.as_str()))
                    .collect();
                let petitions: Vec<&String> = petitions.iter().collect();
                let deletes = [
                    (
                        "DELETE FROM ledger_visits WHERE document_id = $1 AND id = $2",
                        &visits,
                    ),
                    (
                        "DELETE FROM ledger_petitions WHERE document_id = $1 AND id = $2",
                        &petitions,
                    ),
                    (
                        "DELETE FROM ledger_petition_events WHERE document_id = $1 AND petition_id = $2",
                        &petitions,
                    ),
                    (
                        "DELETE FROM ledger_cards WHERE document_id = $1 AND id = $2",
                        &cards,
                    ),
                ];
                for (sql, ids) in deletes {
                    for id in ids {
                        sqlx::query::<DB>(sql)
                            .bind(document_id)
                            .bind(id)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
            }
        }
        // Each row takes its owner and unit from the document's row and
        // its owner's, in the insert itself: a document that is gone gets
        // none.
        for v in &ledger.visits {
            sqlx::query::<DB>(
                "INSERT INTO ledger_visits (document_id, id, owner_user_id, unit_id, kind, at,
                     place, subject_kind, subject_name, tags, aid_money_fen, aid_goods,
                     resolved_on_spot, petition_count, created_at, created_by, deleted,
                     household_key, answers)
                 SELECT $1, $2, d.owner_user_id, u.unit_id, $3, $4, $5, $6, $7, $8, $9,
                     $10, $11, $12, $13, $14, $15, $16, $17
                 FROM documents d JOIN users u ON u.id = d.owner_user_id
                 WHERE d.id = $1
                 ON CONFLICT (document_id, id) DO UPDATE SET
                     owner_user_id = excluded.owner_user_id, unit_id = excluded.unit_id,
                     kind = excluded.kind, at = excluded.at, place = excluded.place,
                     subject_kind = excluded.subject_kind, subject_name = excluded.subject_name,
                     tags = excluded.tags, aid_money_fen = excluded.aid_money_fen,
                     aid_goods = excluded.aid_goods, resolved_on_spot = excluded.resolved_on_spot,
                     petition_count = excluded.petition_count, created_at = excluded.created_at,
                     created_by = excluded.created_by, deleted = excluded.deleted,
                     household_key = excluded.household_key, answers = excluded.answers",
            )
            .bind(document_id)
            .bind(&v.id)
            .bind(v.kind)
            .bind(v.at)
            .bind(&v.place)
            .bind(v.subject_kind)
            .bind(&v.subject_name)
            .bind(&v.tags)
            .bind(v.aid_money_fen)
            .bind(&v.aid_goods)
            .bind(v.resolved_on_spot)
            .bind(v.petition_count)
            .bind(v.created_at)
            .bind(&v.created_by)
            .bind(v.deleted)
            .bind(&v.household_key)
            .bind(&v.answers)
            .execute(&mut *conn)
            .await?;
        }
        for p in &ledger.petitions {
            sqlx::query::<DB>(
                "INSERT INTO ledger_petitions (document_id, id, visit_id, owner_user_id,
                     unit_id, applicant_name, applicant_phone, applicant_address, matter, category,
                     created_at, created_by, status, responsible, level, deadline, feedback,
                     satisfaction, resolved_at, closed_at, deleted, event_count, resolved_on)
                 SELECT $1, $2, $3, d.owner_user_id, u.unit_id, $4, $5, $6, $7, $8, $9,
                     $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21
                 FROM documents d JOIN users u ON u.id = d.owner_user_id
                 WHERE d.id = $1
                 ON CONFLICT DO NOTHING",
            )
            .bind(document_id)
            .bind(&p.id)
            .bind(&p.visit_id)
            .bind(&p.applicant_name)
            .bind(&p.applicant_phone)
            .bind(&p.applicant_address)
            .bind(&p.matter)
            .bind(p.category)
            .bind(p.created_at)
            .bind(&p.created_by)
            .bind(p.status)
            .bind(&p.responsible)
            .bind(p.level)
            .bind(&p.deadline)
            .bind(&p.feedback)
            .bind(p.satisfaction.map(|s| s.as_str()))
            .bind(p.resolved_at)
            .bind(p.closed_at)
            .bind(p.deleted)
            .bind(p.event_count)
            .bind(&p.resolved_on)
            .execute(&mut *conn)
            .await?;
        }
        for e in &ledger.events {
            sqlx::query::<DB>(
                "INSERT INTO ledger_petition_events (document_id, petition_id, id, at, actor,
                     event_type, note, detail, claimed_by, device_id, via_server, believed, flag)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT DO NOTHING",
            )
            .bind(document_id)
            .bind(&e.petition_id)
            .bind(&e.id)
            .bind(e.at)
            .bind(&e.actor)
            .bind(&e.event_type)
            .bind(&e.note)
            .bind(&e.detail)
            .bind(&e.claimed_by)
            .bind(&e.device_id)
            .bind(e.via_server)
            .bind(e.believed)
            .bind(e.flag.map(|f| f.as_str()))
            .execute(&mut *conn)
            .await?;
        }
        for c in &ledger.cards {
            sqlx::query::<DB>(
                "INSERT INTO ledger_cards (document_id, id, owner_user_id, unit_id, resident,
                     phone, address, household, handed_over_at, pairing_role, pairing_needy,
                     follow_ups, created_at, created_by, deleted)
                 SELECT $1, $2, d.owner_user_id, u.unit_id, $3, $4, $5, $6, $7, $8, $9,
                     $10, $11, $12, $13
                 FROM documents d JOIN users u ON u.id = d.owner_user_id
                 WHERE d.id = $1
                 ON CONFLICT (document_id, id) DO UPDATE SET
                     owner_user_id = excluded.owner_user_id, unit_id = excluded.unit_id,
                     resident = excluded.resident, phone = excluded.phone,
                     address = excluded.address, household = excluded.household,
                     handed_over_at = excluded.handed_over_at,
                     pairing_role = excluded.pairing_role, pairing_needy = excluded.pairing_needy,
                     follow_ups = excluded.follow_ups, created_at = excluded.created_at,
                     created_by = excluded.created_by, deleted = excluded.deleted",
            )
            .bind(document_id)
            .bind(&c.id)
            .bind(&c.resident)
            .bind(&c.phone)
            .bind(&c.address)
            .bind(&c.household)
            .bind(c.handed_over_at)
            .bind(c.pairing_role.map(|r| r.as_str()))
            .bind(c.pairing_needy)
            .bind(c.follow_ups)
            .bind(c.created_at)
            .bind(&c.created_by)
            .bind(c.deleted)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Visit counts of `q`, grouped as `grouping` says.
    pub(super) async fn visit_counts(
        pool: &Pool<DB>,
        q: &ReportQuery,
        grouping: VisitGrouping,
    ) -> StoreResult<Vec<VisitCounts>> {
        let sql = match grouping {
            VisitGrouping::Owner => {
                visit_counts_sql!("v.owner_user_id", " GROUP BY v.owner_user_id")
            }
            VisitGrouping::Unit => visit_counts_sql!("v.unit_id", " GROUP BY v.unit_id"),
            VisitGrouping::All => visit_counts_sql!("CAST(0 AS BIGINT)", ""),
        };
        Ok(sqlx::query_as::<DB, VisitCounts>(sql)
            .bind(q.root_unit_id)
            .bind(q.owner_user_id)
            .bind(q.from)
            .bind(q.to)
            .fetch_all(pool)
            .await?)
    }

    /// Petition counts of `q` (petitions recorded in its period) per owner,
    /// category, status and level.
    pub(super) async fn petition_counts(
        pool: &Pool<DB>,
        q: &ReportQuery,
    ) -> StoreResult<Vec<PetitionCounts>> {
        Ok(sqlx::query_as::<DB, PetitionCounts>(concat!(
            subtree_cte!(),
            "SELECT p.owner_user_id, p.unit_id, p.category, p.status, p.level,
                    COUNT(*) AS petitions,
                    CAST(COALESCE(SUM(CASE WHEN ",
            petition_overdue!("$5"),
            " THEN 1 ELSE 0 END), 0) AS BIGINT) AS overdue,
                    CAST(COALESCE(SUM(CASE WHEN p.status IN ('resolved', 'closed')
                        AND p.deadline IS NOT NULL AND p.resolved_on IS NOT NULL
                        AND p.resolved_on <= p.deadline THEN 1 ELSE 0 END), 0) AS BIGINT) AS on_time,
                    CAST(COALESCE(SUM(CASE WHEN p.status IN ('resolved', 'closed')
                        AND p.deadline IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
                        AS done_with_deadline,
                    CAST(COALESCE(SUM(CASE WHEN p.status IN ('resolved', 'closed')
                        AND p.feedback IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
                        AS done_with_feedback,
                    CAST(COALESCE(SUM(CASE WHEN p.satisfaction IS NOT NULL THEN 1 ELSE 0 END), 0)
                        AS BIGINT) AS rated,
                    CAST(COALESCE(SUM(CASE WHEN p.satisfaction IN ('satisfied', 'basically_satisfied')
                        THEN 1 ELSE 0 END), 0) AS BIGINT) AS satisfied
             FROM ledger_petitions p
             WHERE NOT p.deleted AND p.unit_id IN (SELECT id FROM sub)
               AND (CAST($2 AS BIGINT) IS NULL OR p.owner_user_id = $2)
               AND p.created_at >= $3 AND p.created_at < $4
             GROUP BY p.owner_user_id, p.unit_id, p.category, p.status, p.level
             ORDER BY p.owner_user_id, p.category, p.status, p.level"
        ))
        .bind(q.root_unit_id)
        .bind(q.owner_user_id)
        .bind(q.from)
        .bind(q.to)
        .bind(q.today.as_str())
        .fetch_all(pool)
        .await?)
    }

    /// One page of visits matching `q`, newest first, and their total.
    pub(super) async fn query_visits(
        pool: &Pool<DB>,
        q: &RecordQuery,
    ) -> StoreResult<(Vec<VisitItem>, i64)> {
        const FILTER: &str = " FROM ledger_visits v
              JOIN units un ON un.id = v.unit_id
              JOIN users us ON us.id = v.owner_user_id
              WHERE NOT v.deleted AND v.unit_id IN (SELECT id FROM sub)
                AND (CAST($2 AS BIGINT) IS NULL OR v.owner_user_id = $2)
                AND (CAST($3 AS TIMESTAMPTZ) IS NULL OR v.at >= $3)
                AND (CAST($4 AS TIMESTAMPTZ) IS NULL OR v.at < $4)
                AND (CAST($5 AS TEXT) IS NULL OR v.kind = $5)
                AND (CAST($6 AS TEXT) IS NULL OR v.place LIKE $6 ESCAPE '\\'
                     OR v.subject_name LIKE $6 ESCAPE '\\')";
        let page = format!(
            "{}SELECT v.id, v.document_id, us.username AS owner, un.code AS unit_code,
                     un.name AS unit_name, v.kind, v.at, v.place, v.subject_kind, v.subject_name,
                     v.household_key, v.tags, v.aid_money_fen, v.aid_goods, v.resolved_on_spot,
                     v.petition_count, v.answers{FILTER}
              ORDER BY v.at DESC, v.document_id, v.id LIMIT $7 OFFSET $8",
            subtree_cte!()
        );
        Self::record_page(pool, FILTER, page, q, Some(q.kind.map(|k| k.as_str()))).await
    }

    /// One page of service cards matching `q`, newest first, and their total.
    pub(super) async fn query_cards(
        pool: &Pool<DB>,
        q: &RecordQuery,
    ) -> StoreResult<(Vec<CardItem>, i64)> {
        const FILTER: &str = " FROM ledger_cards c
              JOIN units un ON un.id = c.unit_id
              JOIN users us ON us.id = c.owner_user_id
              WHERE NOT c.deleted AND c.unit_id IN (SELECT id FROM sub)
                AND (CAST($2 AS BIGINT) IS NULL OR c.owner_user_id = $2)
                AND (CAST($3 AS TIMESTAMPTZ) IS NULL OR c.handed_over_at >= $3)
                AND (CAST($4 AS TIMESTAMPTZ) IS NULL OR c.handed_over_at < $4)
                AND (CAST($5 AS TEXT) IS NULL OR c.resident LIKE $5 ESCAPE '\\'
                     OR COALESCE(c.address, '') LIKE $5 ESCAPE '\\'
                     OR COALESCE(c.household, '') LIKE $5 ESCAPE '\\')";
        let page = format!(
            "{}SELECT c.id, c.document_id, us.username AS owner, un.code AS unit_code, c.resident,
                     c.phone, c.address, c.household, c.handed_over_at, c.pairing_role,
                     c.pairing_needy, c.follow_ups{FILTER}
              ORDER BY c.handed_over_at DESC, c.document_id, c.id LIMIT $6 OFFSET $7",
            subtree_cte!()
        );
        Self::record_page(pool, FILTER, page, q, None).await
    }

    /// A page of records matching `q` and their total, read in one
    /// transaction. `filter` (the `FROM … WHERE` both statements share) and
    /// `page` (the page's statement, ending in `LIMIT` and `OFFSET`) read
    /// the subtree's root from `$1`, the owner from `$2`, the time range
    /// from `$3` and `$4`, then `kind` if given, then the text pattern.
    async fn record_page<T>(
        pool: &Pool<DB>,
        filter: &str,
        page: String,
        q: &RecordQuery,
        kind: Option<Option<&'static str>>,
    ) -> StoreResult<(Vec<T>, i64)>
    where
        T: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
    {
        let text = q.text.as_deref().map(like_pattern);
        let mut tx = pool.begin().await?;
        let mut count = sqlx::query_scalar::<DB, i64>(sqlx::AssertSqlSafe(format!(
            "{}SELECT COUNT(*){filter}",
            subtree_cte!()
        )))
        .bind(q.root_unit_id)
        .bind(q.owner_user_id)
        .bind(q.from)
        .bind(q.to);
        let mut items = sqlx::query_as::<DB, T>(sqlx::AssertSqlSafe(page))
            .bind(q.root_unit_id)
            .bind(q.owner_user_id)
            .bind(q.from)
            .bind(q.to);
        if let Some(kind) = kind {
            count = count.bind(kind);
            items = items.bind(kind);
        }
        let total = count.bind(&text).fetch_one(&mut *tx).await?;
        let items = items
            .bind(&text)
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((items, total))
    }

    /// Devices of users whose unit lies in `root`'s subtree (optionally one
    /// user), with their last sync, by user then device.
    pub(super) async fn list_devices(
        pool: &Pool<DB>,
        root: i64,
        user_id: Option<i64>,
    ) -> StoreResult<Vec<DeviceRow>> {
        Ok(sqlx::query_as::<DB, DeviceRow>(concat!(
            subtree_cte!(),
            "SELECT s.user_id, s.device_id, MAX(s.updated_at) AS last_sync,
                    COUNT(DISTINCT s.document_id) AS documents
             FROM sync_states s JOIN users us ON us.id = s.user_id
             WHERE us.unit_id IN (SELECT id FROM sub)
               AND (CAST($2 AS BIGINT) IS NULL OR s.user_id = $2)
             GROUP BY s.user_id, s.device_id
             ORDER BY s.user_id, s.device_id"
        ))
        .bind(root)
        .bind(user_id)
        .fetch_all(pool)
        .await?)
    }

    /// Every recorded post (`user_posts`): user id and post.
    pub(super) async fn user_posts(pool: &Pool<DB>) -> StoreResult<Vec<(i64, String)>> {
        Ok(sqlx::query_as::<DB, (i64, String)>(
            "SELECT user_id, post FROM user_posts ORDER BY user_id",
        )
        .fetch_all(pool)
        .await?)
    }

    /// Sets (replaces) a user's post.
    pub(super) async fn set_user_post(
        pool: &Pool<DB>,
        user_id: i64,
        post: &str,
    ) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO user_posts (user_id, post) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET post = excluded.post",
        )
        .bind(user_id)
        .bind(post)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Audit rows, newest first: at most `limit`, older than `before_id`,
    /// of `action` (exact) if given.
    pub(super) async fn query_audit(
        pool: &Pool<DB>,
        action: Option<&str>,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEntry>> {
        Ok(sqlx::query_as::<DB, AuditEntry>(
            "SELECT id, at, user_id, action, target, detail, remote_addr
             FROM audit_log
             WHERE (CAST($1 AS TEXT) IS NULL OR action = $1)
               AND (CAST($2 AS BIGINT) IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .bind(action.map(str::to_owned))
        .bind(before_id)
        .bind(limit)
        .fetch_all(pool)
        .await?)
    }

    /// One page of ledger petitions matching `q` and their total, read in
    /// one transaction. `sql` is [`ledger_query_sql!`] with the backend's
    /// test of `$1`, to which `unit_ids` (the backend's spelling of
    /// `q.unit_ids`) is bound.
    pub(super) async fn query_ledger<U>(
        pool: &Pool<DB>,
        sql: LedgerSql,
        unit_ids: U,
        q: &LedgerQuery,
    ) -> StoreResult<LedgerPage>
    where
        U: for<'q> Encode<'q, DB> + Type<DB> + Send + Sync + 'static,
    {
        let text = q.text.as_deref().map(like_pattern);
        // The filter's parameters, `$1` to `$14` of both statements.
        macro_rules! bind_filter {
            ($query:expr, $unit_ids:expr) => {
                $query
                    .bind($unit_ids)
                    .bind(q.owner_user_id)
                    .bind(q.status.map(|s| s.as_str()))
                    .bind(q.category.map(|c| c.as_str()))
                    .bind(q.overdue_only)
                    .bind(&q.today)
                    .bind(&q.responsible)
                    .bind(q.level.map(|l| l.as_str()))
                    .bind(q.created_from)
                    .bind(q.created_to)
                    .bind(&text)
                    .bind(q.unfinished_only)
                    .bind(q.resolved_from)
                    .bind(q.resolved_to)
            };
        }
        let mut tx = pool.begin().await?;
        // A text search the backend indexes: how many petitions at most
        // match, from the counts of the text's bigrams.
        let bigrams = q.text.as_deref().map_or(0, crate::ledger::distinct_bigrams);
        let text_sql = sql.text.filter(|_| bigrams > 0);
        let most = match text_sql {
            Some(text_sql) => {
                let (present, fewest) = sqlx::query_as::<DB, (i64, i64)>(text_sql.bound)
                    .bind(&unit_ids)
                    .bind(&text)
                    .fetch_one(&mut *tx)
                    .await?;
                // A bigram no petition has: nothing matches.
                Some(if present < i64::try_from(bigrams).unwrap_or(i64::MAX) {
                    0
                } else {
                    fewest
                })
            }
            None => None,
        };
        if most == Some(0) {
            tx.commit().await?;
            return Ok(LedgerPage {
                items: Vec::new(),
                total: 0,
            });
        }
        let total: i64 = if q.without_total {
            0
        } else if let Some(most) = most.filter(|_| q.total_from_bigram_counts()) {
            most
        } else if q.total_from_counts() {
            sqlx::query_scalar::<DB, i64>(sql.counted)
                .bind(&unit_ids)
                .bind(q.status.map(|s| s.as_str()))
                .bind(q.category.map(|c| c.as_str()))
                .bind(q.level.map(|l| l.as_str()))
                .bind(q.unfinished_only)
                .fetch_one(&mut *tx)
                .await?
        } else {
            // Counting, the index never loses: it narrows the rows the
            // other filters' indexes give (a town, a status) by bitmap.
            let count = text_sql.map_or(sql.count, |text_sql| text_sql.count);
            bind_filter!(sqlx::query_scalar::<DB, i64>(count), &unit_ids)
                .fetch_one(&mut *tx)
                .await?
        };
        // The page goes through the index only for a rare text: for a
        // common one, walking the newest rows finds a page's worth sooner.
        let page = match text_sql {
            Some(text_sql) if most.is_some_and(|most| most <= TEXT_INDEX_MOST) => text_sql.page,
            _ => sql.page,
        };
        let items = bind_filter!(sqlx::query_as::<DB, LedgerItem>(page), unit_ids)
            .bind(q.sort.as_str())
            .bind(q.limit)
            .bind(q.offset)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(LedgerPage { items, total })
    }
}

/// The statements of a compaction that differ per backend.
#[derive(Debug, Clone, Copy)]
pub(super) struct CompactSql {
    /// Reads `snapshot_heads` of document `$1`, holding off other writers.
    pub(super) heads: &'static str,
    /// Counts the chunks of document `$1` whose id is in the list `$2`.
    pub(super) present: &'static str,
    /// Deletes those chunks.
    pub(super) delete: &'static str,
}

/// A `LIKE` pattern that finds `text` anywhere, its own `%`, `_` and `\`
/// taken literally (the statements say `ESCAPE '\'`).
pub(super) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `sub(id)`: the unit bound to `$1` and every unit below it.
macro_rules! subtree_cte {
    () => {
        "WITH RECURSIVE sub(id) AS (
             SELECT id FROM units WHERE id = $1
             UNION ALL
             SELECT u.id FROM units u JOIN sub ON u.parent_id = sub.id
         ) "
    };
}
pub(super) use subtree_cte;

/// The visit counts of `$1`'s subtree, owner `$2` (or all), at in `[$3,
/// $4)`, keyed and grouped as given.
macro_rules! visit_counts_sql {
    ($key:literal, $group:literal) => {
        concat!(
            $crate::store::sql::subtree_cte!(),
            "SELECT ",
            $key,
            " AS key, COUNT(*) AS visits,
                COUNT(DISTINCT CASE WHEN v.subject_kind = 'household' THEN v.household_key END)
                    AS households,
                COUNT(DISTINCT CASE WHEN v.subject_kind = 'enterprise' THEN v.household_key END)
                    AS enterprises,
                CAST(COALESCE(SUM(CASE WHEN v.kind = 'follow_up' THEN 1 ELSE 0 END), 0) AS BIGINT)
                    AS follow_ups,
                CAST(COALESCE(SUM(CASE WHEN v.tags LIKE '%needy%' THEN 1 ELSE 0 END), 0) AS BIGINT)
                    AS needy_visits,
                CAST(COALESCE(SUM(CASE WHEN v.tags LIKE '%key_person%' THEN 1 ELSE 0 END), 0)
                    AS BIGINT) AS key_person_visits,
                CAST(COALESCE(SUM(v.aid_money_fen), 0) AS BIGINT) AS aid_money_fen,
                CAST(COALESCE(SUM(CASE WHEN v.aid_money_fen > 0 OR v.aid_goods <> '' THEN 1 ELSE 0 END),
                    0) AS BIGINT) AS aided_visits,
                CAST(COALESCE(SUM(v.resolved_on_spot), 0) AS BIGINT) AS resolved_on_spot
             FROM ledger_visits v
             WHERE NOT v.deleted AND v.unit_id IN (SELECT id FROM sub)
               AND (CAST($2 AS BIGINT) IS NULL OR v.owner_user_id = $2)
               AND v.at >= $3 AND v.at < $4",
            $group
        )
    };
}
pub(super) use visit_counts_sql;

/// The columns of a [`LedgerItem`] but its `overdue`, from `ledger_petitions
/// p`, `units un` and `users us` (the owner).
macro_rules! ledger_item_cols {
    () => {
        "p.id, p.document_id, un.code AS unit_code, un.name AS unit_name,
         us.username AS owner, us.display_name AS owner_name, p.applicant_name,
         p.applicant_phone, p.applicant_address, p.matter, p.category, p.level,
         p.responsible, p.deadline, p.status, p.feedback, p.satisfaction, p.created_at,
         p.resolved_at, p.resolved_on, p.event_count"
    };
}
pub(super) use ledger_item_cols;

/// The two statements of a ledger query: the count and the page.
#[derive(Debug, Clone, Copy)]
pub(super) struct LedgerSql {
    /// `SELECT COUNT(*)` of every matching petition.
    pub(super) count: &'static str,
    /// The same total summed from `ledger_counts`, for a query that
    /// [`LedgerQuery::total_from_counts`]: the unit list in `$1`, then
    /// status, category, level and "unfinished only" in `$2` to `$5`.
    pub(super) counted: &'static str,
    /// One page of them in the order `$15` names; `LIMIT $16 OFFSET $17`.
    pub(super) page: &'static str,
    /// The statements of a text search that the backend indexes, if it does.
    pub(super) text: Option<LedgerTextSql>,
}

/// A text search through the index of two-character pieces ("bigrams",
/// PostgreSQL's `ledger_text_search` migration). The text is bound as the
/// `LIKE` pattern the other statements use.
#[derive(Debug, Clone, Copy)]
pub(super) struct LedgerTextSql {
    /// For the unit list in `$1` and the pattern in `$2`: how many of the
    /// text's bigrams some live petition has, and the fewest petitions that
    /// have one of them (`ledger_gram_counts`), which no more petitions can
    /// match. With one bigram (a two-character text) that is the total.
    pub(super) bound: &'static str,
    /// [`LedgerSql::count`] that finds the candidates through the index.
    pub(super) count: &'static str,
    /// [`LedgerSql::page`] that finds the candidates through the index.
    pub(super) page: &'static str,
}

/// Up to how many matches a text search finds its page through the bigram
/// index. Above it, walking the newest rows (or those of the sort) finds a
/// page sooner than fetching every candidate: on 1,000,000 petitions a
/// word in 55,000 of them took 335 ms for a page through the index and
/// 4 ms by the newest rows (docs/BENCHMARKS.md).
const TEXT_INDEX_MOST: i64 = 5_000;

/// Whether a petition is overdue on the China date bound to `$param`: open
/// or in progress with a deadline before it. The ledger's one spelling of
/// the rule: the `overdue` filter and the `overdue` column of every ledger
/// row use it (sync-core's `PetitionState::is_overdue` says the same for a
/// document on the phone).
macro_rules! petition_overdue {
    ($param:literal) => {
        concat!(
            "(p.status IN ('open', 'in_progress') AND p.deadline IS NOT NULL AND p.deadline < ",
            $param,
            ")"
        )
    };
}
pub(super) use petition_overdue;

/// The [`LedgerSql`] of a backend, given its test of whether a petition's
/// unit is in the list bound to `$1` (or the list is `NULL`). A `NULL`
/// parameter switches its condition off, so the SQL stays static; the casts
/// tell PostgreSQL the parameters' types and change nothing in SQLite.
macro_rules! ledger_query_sql {
    ($unit_filter:literal) => {
        $crate::store::sql::ledger_query_sql!(@statements $unit_filter, None)
    };
    // With the index of bigrams: `$bigrams` is the condition, on the same
    // pattern `$11` as the `LIKE`s, that narrows the rows through it.
    ($unit_filter:literal, bigrams: $bigrams:literal) => {
        $crate::store::sql::ledger_query_sql!(@statements $unit_filter, Some(
            $crate::store::sql::LedgerTextSql {
                bound: concat!(
                    "SELECT CAST(COUNT(*) AS BIGINT), CAST(COALESCE(MIN(t.n), 0) AS BIGINT)
                     FROM (
                         SELECT SUM(p.n) AS n FROM ledger_gram_counts p
                         WHERE ",
                    $unit_filter,
                    " AND p.gram = ANY(ledger_pattern_grams($2))
                         GROUP BY p.gram
                     ) AS t"
                ),
                count: $crate::store::sql::ledger_query_sql!(@count $unit_filter, $bigrams),
                page: $crate::store::sql::ledger_query_sql!(@page $unit_filter, $bigrams),
            }
        ))
    };
    (@statements $unit_filter:literal, $text:expr) => {
        $crate::store::sql::LedgerSql {
            count: $crate::store::sql::ledger_query_sql!(@count $unit_filter, ""),
            counted: concat!(
                "SELECT CAST(COALESCE(SUM(p.n), 0) AS BIGINT) FROM ledger_counts p
                 WHERE ",
                $unit_filter,
                "
                   AND (CAST($2 AS TEXT) IS NULL OR p.status = $2)
                   AND (CAST($3 AS TEXT) IS NULL OR p.category = $3)
                   AND (CAST($4 AS TEXT) IS NULL OR p.level = $4)
                   AND (NOT $5 OR p.status IN ('open', 'in_progress'))"
            ),
            page: $crate::store::sql::ledger_query_sql!(@page $unit_filter, ""),
            text: $text,
        }
    };
    // The count reads `ledger_petitions` alone: the page's joins never
    // remove a row (every row's unit and owner are copied from a unit and a
    // user, and neither is ever deleted), and on a large count they cost
    // about as much as the count itself.
    (@count $unit_filter:literal, $extra:literal) => {
        concat!(
            "SELECT COUNT(*) FROM ledger_petitions p",
            $crate::store::sql::ledger_query_sql!(@where $unit_filter),
            $extra
        )
    };
    (@page $unit_filter:literal, $extra:literal) => {
        concat!(
            "SELECT ",
            $crate::store::sql::ledger_item_cols!(),
            ", ",
            $crate::store::sql::petition_overdue!("$6"),
            " AS overdue",
            " FROM ledger_petitions p
              JOIN units un ON un.id = p.unit_id
              JOIN users us ON us.id = p.owner_user_id",
            $crate::store::sql::ledger_query_sql!(@where $unit_filter),
            $extra,
            // `$15` picks the order; ties and the default are newest first.
            " ORDER BY
                CASE WHEN $15 = 'deadline' THEN (CASE WHEN p.deadline IS NULL THEN 1 ELSE 0 END) END,
                CASE WHEN $15 = 'deadline' THEN p.deadline END,
                CASE WHEN $15 = 'oldest' THEN p.created_at END,
                p.created_at DESC, p.document_id, p.id
              LIMIT $16 OFFSET $17"
        )
    };
    (@where $unit_filter:literal) => {
        concat!(
            " WHERE NOT p.deleted
                AND ",
            $unit_filter,
            "
                AND (CAST($2 AS BIGINT) IS NULL OR p.owner_user_id = $2)
                AND (CAST($3 AS TEXT) IS NULL OR p.status = $3)
                AND (CAST($4 AS TEXT) IS NULL OR p.category = $4)
                AND (CAST($7 AS TEXT) IS NULL OR p.responsible = $7)
                AND (CAST($8 AS TEXT) IS NULL OR p.level = $8)
                AND (CAST($9 AS TIMESTAMPTZ) IS NULL OR p.created_at >= $9)
                AND (CAST($10 AS TIMESTAMPTZ) IS NULL OR p.created_at < $10)
                AND (CAST($11 AS TEXT) IS NULL OR p.matter LIKE $11 ESCAPE '\\'
                     OR p.applicant_name LIKE $11 ESCAPE '\\'
                     OR p.responsible LIKE $11 ESCAPE '\\'
                     OR COALESCE(p.applicant_address, '') LIKE $11 ESCAPE '\\'
                     OR COALESCE(p.feedback, '') LIKE $11 ESCAPE '\\')
                AND (NOT $12 OR p.status IN ('open', 'in_progress'))
                AND (CAST($13 AS TIMESTAMPTZ) IS NULL OR p.resolved_at >= $13)
                AND (CAST($14 AS TIMESTAMPTZ) IS NULL OR p.resolved_at < $14)
                AND (NOT $5 OR ",
            $crate::store::sql::petition_overdue!("$6"),
            ")"
        )
    };
}
pub(super) use ledger_query_sql;

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqlitePoolOptions;

    /// Everything in this module relies on SQLite binding `$N` to the N-th
    /// argument, in any order and any number of times, as PostgreSQL does.
    #[tokio::test]
    async fn sqlite_binds_numbered_dollar_parameters_by_number() {
        let pool = SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .expect("in-memory database");
        let row: (String, String, String, i64) = sqlx::query_as("SELECT $2, $1, $2, $3")
            .bind("first")
            .bind("second")
            .bind(3_i64)
            .fetch_one(&pool)
            .await
            .expect("numbered parameters");
        assert_eq!(
            row,
            ("second".into(), "first".into(), "second".into(), 3),
            "SQLite must bind $N by number"
        );
    }
}
