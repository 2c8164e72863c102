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
