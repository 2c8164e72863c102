//! The ledger on SQLite: what differs from the shared statements in
//! [`sql`](super::super::sql) is the write lock and how a list of units is
//! bound.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::{Q, json_ids};
use sync_core::DocumentId;

use crate::ledger::{LedgerPage, LedgerProjection, LedgerQuery};
use crate::store::StoreResult;
use crate::store::sql::{self, LedgerSql};

/// [`Store::replace_ledger`](crate::store::Store::replace_ledger): `BEGIN
/// IMMEDIATE` takes the write lock before `updated_at` is read, so no write
/// to the document can come between the check and the new rows.
pub(super) async fn replace(
    pool: &SqlitePool,
    document_id: &DocumentId,
    ledger: &LedgerProjection,
    expected_updated_at: DateTime<Utc>,
) -> StoreResult<()> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    Q::replace_ledger_if_unchanged(
        &mut tx,
        sql::updated_at_by_id!(),
        document_id,
        ledger,
        expected_updated_at,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// [`Store::query_ledger`](crate::store::Store::query_ledger): the unit
/// list is bound as JSON text and read with `json_each`.
pub(super) async fn query(pool: &SqlitePool, query: &LedgerQuery) -> StoreResult<LedgerPage> {
    const SQL: LedgerSql =
        sql::ledger_query_sql!("($1 IS NULL OR p.unit_id IN (SELECT value FROM json_each($1)))");
    let unit_ids = query.unit_ids.as_deref().map(json_ids);
    Q::query_ledger(pool, SQL, unit_ids, query).await
}
