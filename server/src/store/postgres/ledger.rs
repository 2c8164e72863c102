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
/// one statement replaces the rows of each key that has more than one by
/// their sum; a key already folded is only read, so an idle server writes
/// nothing. Rows that a concurrent write adds meanwhile are not in its
/// snapshot and stay; a concurrent fold's rows are skipped once it
/// commits, so two processes folding at once still count every petition
/// once.
pub(super) async fn fold_counts(pool: &PgPool) -> StoreResult<u64> {
    let removed: i64 = sqlx::query_scalar(
        "WITH spread AS (
             SELECT unit_id, status, category, level FROM ledger_counts
             GROUP BY unit_id, status, category, level
             HAVING COUNT(*) > 1
         ), gone AS (
             DELETE FROM ledger_counts c USING spread s
             WHERE c.unit_id = s.unit_id AND c.status = s.status
               AND c.category = s.category AND c.level = s.level
             RETURNING c.unit_id, c.status, c.category, c.level, c.n
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
