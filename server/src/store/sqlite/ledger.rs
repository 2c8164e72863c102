//! The ledger on SQLite: what differs from the shared statements in
//! [`sql`](super::super::sql) is how a list of units is bound.

use sqlx::SqlitePool;

use super::{Q, id_list};

use crate::ledger::{LedgerPage, LedgerQuery};
use crate::store::StoreResult;
use crate::store::sql::{self, LedgerSql};

/// [`Store::query_ledger`](crate::store::Store::query_ledger): the unit
/// list is bound as JSON text and read with `json_each`.
pub(super) async fn query(pool: &SqlitePool, query: &LedgerQuery) -> StoreResult<LedgerPage> {
    const SQL: LedgerSql =
        sql::ledger_query_sql!("($1 IS NULL OR p.unit_id IN (SELECT value FROM json_each($1)))");
    let unit_ids = query.unit_ids.as_deref().map(id_list);
    Q::query_ledger(pool, SQL, unit_ids, query).await
}

/// [`Store::fold_ledger_counts`](crate::store::Store::fold_ledger_counts):
/// nothing to fold, SQLite's triggers keep one row per key.
pub(super) async fn fold_counts(_pool: &SqlitePool) -> StoreResult<u64> {
    Ok(0)
}
