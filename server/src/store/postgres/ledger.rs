//! The ledger on PostgreSQL: what differs from the shared statements in
//! [`sql`](super::super::sql) is how a list of units is bound.

use sqlx::PgPool;

use super::{Q, id_list};

use crate::ledger::{LedgerPage, LedgerQuery};
use crate::store::StoreResult;
use crate::store::sql::{self, LedgerSql};

/// [`Store::query_ledger`](crate::store::Store::query_ledger): the unit
/// list is bound as a `BIGINT[]`.
pub(super) async fn query(pool: &PgPool, query: &LedgerQuery) -> StoreResult<LedgerPage> {
    const SQL: LedgerSql = sql::ledger_query_sql!("($1::BIGINT[] IS NULL OR p.unit_id = ANY($1))");
    let unit_ids = query.unit_ids.as_deref().map(id_list);
    Q::query_ledger(pool, SQL, unit_ids, query).await
}

/// [`Store::fold_ledger_counts`](crate::store::Store::fold_ledger_counts):
/// one statement replaces the rows it sees by their sums per key. Rows
/// that a concurrent write adds meanwhile are not in its snapshot and stay;
/// a concurrent fold's rows are skipped once it commits, so two processes
/// folding at once still count every petition once.
pub(super) async fn fold_counts(pool: &PgPool) -> StoreResult<u64> {
    let removed: i64 = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM ledger_counts RETURNING unit_id, status, category, level, n
         ), kept AS (
             INSERT INTO ledger_counts (unit_id, status, category, level, n)
             SELECT unit_id, status, category, level, SUM(n) FROM gone
             GROUP BY unit_id, status, category, level
             HAVING SUM(n) <> 0
             RETURNING 1
         )
         SELECT (SELECT COUNT(*) FROM gone) - (SELECT COUNT(*) FROM kept)",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(removed).unwrap_or(0))
}
