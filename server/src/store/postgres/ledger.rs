//! The ledger on PostgreSQL: what differs from the shared statements in
//! [`sql`](super::super::sql) is the row lock and how a list of units is
//! bound.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Q;
use sync_core::DocumentId;

use crate::ledger::{LedgerPage, LedgerProjection, LedgerQuery};
use crate::store::StoreResult;
use crate::store::sql::{self, LedgerSql};

/// [`Store::replace_ledger`](crate::store::Store::replace_ledger): the
/// document's row stays locked (`FOR UPDATE`) from the `updated_at` check to
/// the commit, so no write to the document can come between them.
pub(super) async fn replace(
    pool: &PgPool,
    document_id: &DocumentId,
    ledger: &LedgerProjection,
    expected_updated_at: DateTime<Utc>,
) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    Q::replace_ledger_if_unchanged(
        &mut tx,
        concat!(sql::updated_at_by_id!(), " FOR UPDATE"),
        document_id,
        ledger,
        expected_updated_at,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// [`Store::query_ledger`](crate::store::Store::query_ledger): the unit
/// list is bound as a `BIGINT[]`.
pub(super) async fn query(pool: &PgPool, query: &LedgerQuery) -> StoreResult<LedgerPage> {
    const SQL: LedgerSql = sql::ledger_query_sql!("($1::BIGINT[] IS NULL OR p.unit_id = ANY($1))");
    Q::query_ledger(pool, SQL, query.unit_ids.clone(), query).await
}
