//! The PostgreSQL backend, for several stateless server processes on one
//! database.
//!
//! Writes to one document are serialised across processes by locking its
//! `documents` row (`SELECT … FOR UPDATE`) for the length of the write
//! transaction. A first write creates the row with `INSERT … ON CONFLICT DO
//! NOTHING` before locking it, so two processes creating the same document at
//! once also queue on the row instead of failing.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{
    AppendOutcome, AuditEntry, Backend, Compaction, ConnectOptions, DocumentChunk, DocumentMeta,
    DocumentWrite, NewAuditEntry, NewRefreshToken, NewUnit, NewUser, RefreshReplacement,
    RefreshRotation, RefreshToken, Store, StoreError, StoreResult, StoredDocument, Unit, User,
    dedup_ids,
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
        "id, kind, owner_user_id, year, created_at, updated_at, snapshot_heads"
    };
}

/// A [`Store`] on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
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
        Ok(PostgresStore { pool })
    }

    /// The underlying pool, for backend-specific code in this crate.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> StoreResult<()> {
        // sqlx takes an advisory lock while migrating, so several processes
        // starting together do not race.
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn create_unit(&self, unit: NewUnit) -> StoreResult<Unit> {
        Ok(sqlx::query_as::<_, Unit>(concat!(
            "INSERT INTO units (code, name, parent_id, kind, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING ",
            unit_cols!()
        ))
        .bind(&unit.code)
        .bind(&unit.name)
        .bind(unit.parent_id)
        .bind(&unit.kind)
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn get_unit(&self, id: i64) -> StoreResult<Option<Unit>> {
        Ok(sqlx::query_as::<_, Unit>(concat!(
            "SELECT ",
            unit_cols!(),
            " FROM units WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn get_unit_by_code(&self, code: &str) -> StoreResult<Option<Unit>> {
        Ok(sqlx::query_as::<_, Unit>(concat!(
            "SELECT ",
            unit_cols!(),
            " FROM units WHERE code = $1"
        ))
        .bind(code)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_units(&self) -> StoreResult<Vec<Unit>> {
        Ok(
            sqlx::query_as::<_, Unit>(concat!("SELECT ", unit_cols!(), " FROM units ORDER BY id"))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn unit_subtree(&self, root: i64) -> StoreResult<Vec<Unit>> {
        Ok(sqlx::query_as::<_, Unit>(
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
        .fetch_all(&self.pool)
        .await?)
    }

    async fn is_unit_within(&self, unit: i64, root: i64) -> StoreResult<bool> {
        let found: i64 = sqlx::query_scalar(
            "WITH RECURSIVE up(id, parent_id) AS (
                 SELECT id, parent_id FROM units WHERE id = $1
                 UNION ALL
                 SELECT u.id, u.parent_id FROM units u JOIN up ON u.id = up.parent_id
             )
             SELECT COUNT(*) FROM up WHERE id = $2",
        )
        .bind(unit)
        .bind(root)
        .fetch_one(&self.pool)
        .await?;
        Ok(found > 0)
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<User> {
        Ok(sqlx::query_as::<_, User>(concat!(
            "INSERT INTO users (username, display_name, role, unit_id, password_hash, created_at, disabled)
             VALUES ($1, $2, $3, $4, $5, $6, FALSE) RETURNING ",
            user_cols!()
        ))
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.role.as_str())
        .bind(user.unit_id)
        .bind(&user.password_hash)
        .bind(Utc::now())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn get_user(&self, id: i64) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as::<_, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        Ok(sqlx::query_as::<_, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn list_users_in_units(&self, unit_ids: &[i64]) -> StoreResult<Vec<User>> {
        Ok(sqlx::query_as::<_, User>(concat!(
            "SELECT ",
            user_cols!(),
            " FROM users WHERE unit_id = ANY($1) ORDER BY id"
        ))
        .bind(unit_ids)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_user_disabled(&self, user_id: i64, disabled: bool) -> StoreResult<()> {
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn insert_refresh_token(&self, token: NewRefreshToken) -> StoreResult<RefreshToken> {
        Ok(sqlx::query_as::<_, RefreshToken>(concat!(
            "INSERT INTO refresh_tokens (user_id, family_id, token_hash, device_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            refresh_cols!()
        ))
        .bind(token.user_id)
        .bind(&token.family_id)
        .bind(&token.token_hash)
        .bind(&token.device_id)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn get_refresh_token(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>> {
        Ok(sqlx::query_as::<_, RefreshToken>(concat!(
            "SELECT ",
            refresh_cols!(),
            " FROM refresh_tokens WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        replacement: RefreshReplacement,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshRotation> {
        let mut tx = self.pool.begin().await?;
        // The row lock orders concurrent presentations of the same token: the
        // second waits here and then sees `rotated_at` set.
        let Some(previous) = sqlx::query_as::<_, RefreshToken>(concat!(
            "SELECT ",
            refresh_cols!(),
            " FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE"
        ))
        .bind(presented_hash)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound);
        };

        if previous.revoked_at.is_some() {
            return Ok(RefreshRotation::Revoked);
        }
        if let Some(rotated_at) = previous.rotated_at
            && now - rotated_at <= replacement.retry_grace
            && let Some(successor) = sqlx::query_as::<_, RefreshToken>(concat!(
                "SELECT ",
                refresh_cols!(),
                " FROM refresh_tokens WHERE token_hash = $1 AND family_id = $2"
            ))
            .bind(&replacement.token_hash)
            .bind(&previous.family_id)
            .fetch_optional(&mut *tx)
            .await?
            && successor.rotated_at.is_none()
            && successor.revoked_at.is_none()
        {
            tx.commit().await?;
            return Ok(RefreshRotation::Retried {
                previous: Box::new(previous),
                current: Box::new(successor),
            });
        }
        if previous.rotated_at.is_some() {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&previous.family_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(RefreshRotation::Reused {
                family_id: previous.family_id,
                user_id: previous.user_id,
            });
        }
        if previous.expires_at <= now {
            return Ok(RefreshRotation::Expired);
        }

        sqlx::query("UPDATE refresh_tokens SET rotated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(previous.id)
            .execute(&mut *tx)
            .await?;
        let current = sqlx::query_as::<_, RefreshToken>(concat!(
            "INSERT INTO refresh_tokens (user_id, family_id, token_hash, device_id, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
            refresh_cols!()
        ))
        .bind(previous.user_id)
        .bind(&previous.family_id)
        .bind(&replacement.token_hash)
        .bind(&previous.device_id)
        .bind(now)
        .bind(replacement.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RefreshRotation::Rotated {
            previous: Box::new(previous),
            current: Box::new(current),
        })
    }

    async fn revoke_refresh_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn get_document_meta(&self, id: &str) -> StoreResult<Option<DocumentMeta>> {
        Ok(sqlx::query_as::<_, DocumentMeta>(concat!(
            "SELECT ",
            doc_cols!(),
            " FROM documents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn load_document(&self, id: &str) -> StoreResult<Option<StoredDocument>> {
        // READ COMMITTED would let a compaction commit between the two reads
        // (old snapshot, chunks already deleted); REPEATABLE READ pins one
        // snapshot of the database for the whole transaction.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let Some(meta) = sqlx::query_as::<_, DocumentMeta>(concat!(
            "SELECT ",
            doc_cols!(),
            " FROM documents WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let snapshot: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT snapshot FROM documents WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let chunks = sqlx::query_as::<_, DocumentChunk>(
            "SELECT id, data FROM document_chunks WHERE document_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(StoredDocument {
            meta,
            snapshot,
            chunks,
        }))
    }

    async fn list_documents_for_owner(&self, user_id: i64) -> StoreResult<Vec<DocumentMeta>> {
        Ok(sqlx::query_as::<_, DocumentMeta>(concat!(
            "SELECT ",
            doc_cols!(),
            " FROM documents WHERE owner_user_id = $1 ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn list_documents_in_units(&self, unit_ids: &[i64]) -> StoreResult<Vec<DocumentMeta>> {
        Ok(sqlx::query_as::<_, DocumentMeta>(
            "SELECT d.id, d.kind, d.owner_user_id, d.year, d.created_at, d.updated_at, d.snapshot_heads
             FROM documents d JOIN users u ON u.id = d.owner_user_id
             WHERE u.unit_id = ANY($1)
             ORDER BY d.id",
        )
        .bind(unit_ids)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn append_changes(&self, write: DocumentWrite) -> StoreResult<AppendOutcome> {
        let mut tx = self.pool.begin().await?;
        let mut created = false;
        if let Some(new) = &write.create {
            let inserted: Option<String> = sqlx::query_scalar(
                "INSERT INTO documents (id, kind, owner_user_id, year, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (id) DO NOTHING
                 RETURNING id",
            )
            .bind(&write.document_id)
            .bind(new.kind.as_str())
            .bind(new.owner_user_id)
            .bind(new.year)
            .bind(write.at)
            .fetch_optional(&mut *tx)
            .await?;
            created = inserted.is_some();
        }
        // The per-document lock: held until commit, across every process.
        let Some(existing) = sqlx::query_as::<_, DocumentMeta>(concat!(
            "SELECT ",
            doc_cols!(),
            " FROM documents WHERE id = $1 FOR UPDATE"
        ))
        .bind(&write.document_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound);
        };
        if let Some(new) = &write.create
            && existing.owner_user_id != new.owner_user_id
        {
            return Err(StoreError::Conflict(
                "document belongs to another user".to_owned(),
            ));
        }

        let chunk_id: i64 = sqlx::query_scalar(
            "INSERT INTO document_chunks (document_id, data, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(&write.document_id)
        .bind(&write.data)
        .bind(write.at)
        .fetch_one(&mut *tx)
        .await?;
        let meta = if created {
            existing
        } else {
            sqlx::query_as::<_, DocumentMeta>(concat!(
                "UPDATE documents SET updated_at = $1 WHERE id = $2 RETURNING ",
                doc_cols!()
            ))
            .bind(write.at)
            .bind(&write.document_id)
            .fetch_one(&mut *tx)
            .await?
        };

        // The ledger rows commit (or not) together with the chunk. The row
        // lock above is still held, so projections of one document never
        // interleave. (This is also where a `pg_notify` for other server
        // processes belongs: NOTIFY is delivered only on commit.)
        if let Some(ledger) = &write.ledger {
            crate::ledger::postgres::replace(&mut tx, &write.document_id, ledger).await?;
        }

        let (pending_chunks, pending_bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(octet_length(data)), 0)::BIGINT
             FROM document_chunks WHERE document_id = $1",
        )
        .bind(&write.document_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AppendOutcome {
            meta,
            created,
            chunk_id,
            pending_chunks: to_u64(pending_chunks),
            pending_bytes: to_u64(pending_bytes),
        })
    }

    async fn compact(&self, compaction: Compaction) -> StoreResult<()> {
        let replaced = dedup_ids(&compaction.replaced_chunk_ids);
        let mut tx = self.pool.begin().await?;
        let Some(current_heads) = sqlx::query_scalar::<_, Option<String>>(
            "SELECT snapshot_heads FROM documents WHERE id = $1 FOR UPDATE",
        )
        .bind(&compaction.document_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound);
        };
        if current_heads != compaction.base_heads {
            return Err(StoreError::Conflict(
                "the snapshot changed since it was loaded".to_owned(),
            ));
        }
        let present: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM document_chunks WHERE document_id = $1 AND id = ANY($2)",
        )
        .bind(&compaction.document_id)
        .bind(&replaced)
        .fetch_one(&mut *tx)
        .await?;
        if to_u64(present) != replaced.len() as u64 {
            return Err(StoreError::Conflict(
                "some chunks were already compacted".to_owned(),
            ));
        }
        sqlx::query("UPDATE documents SET snapshot = $1, snapshot_heads = $2 WHERE id = $3")
            .bind(&compaction.snapshot)
            .bind(&compaction.heads)
            .bind(&compaction.document_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM document_chunks WHERE document_id = $1 AND id = ANY($2)")
            .bind(&compaction.document_id)
            .bind(&replaced)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn replace_ledger(
        &self,
        document_id: &str,
        ledger: &crate::ledger::LedgerProjection,
        expected_updated_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let Some(updated_at) = sqlx::query_scalar::<_, DateTime<Utc>>(
            "SELECT updated_at FROM documents WHERE id = $1 FOR UPDATE",
        )
        .bind(document_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(StoreError::NotFound);
        };
        if updated_at != expected_updated_at {
            return Err(StoreError::Conflict(
                "the document changed since it was loaded".to_owned(),
            ));
        }
        crate::ledger::postgres::replace(&mut tx, document_id, ledger).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn query_ledger(
        &self,
        query: &crate::ledger::LedgerQuery,
    ) -> StoreResult<crate::ledger::LedgerPage> {
        Ok(crate::ledger::postgres::query(&self.pool, query).await?)
    }

    async fn load_sync_state(
        &self,
        document_id: &str,
        user_id: i64,
        device_id: &str,
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar(
            "SELECT state FROM sync_states
             WHERE document_id = $1 AND user_id = $2 AND device_id = $3",
        )
        .bind(document_id)
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn save_sync_state(
        &self,
        document_id: &str,
        user_id: i64,
        device_id: &str,
        state: &[u8],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sync_states (document_id, user_id, device_id, state, updated_at)
             SELECT $1, $2, $3, $4, $5
             WHERE EXISTS (SELECT 1 FROM documents WHERE id = $1)
             ON CONFLICT (document_id, user_id, device_id)
             DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        )
        .bind(document_id)
        .bind(user_id)
        .bind(device_id)
        .bind(state)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO audit_log (at, user_id, action, target, detail, remote_addr)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(entry.at)
        .bind(entry.user_id)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(&entry.detail)
        .bind(&entry.remote_addr)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn list_audit(&self, limit: u32) -> StoreResult<Vec<AuditEntry>> {
        Ok(sqlx::query_as::<_, AuditEntry>(
            "SELECT id, at, user_id, action, target, detail, remote_addr
             FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }
}
