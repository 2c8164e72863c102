//! The ledger on PostgreSQL: what differs from the shared statements in
//! [`sql`](super::super::sql) is how a list of units is bound, the index
//! of text search and the folding of counts.

use sqlx::PgPool;

use super::{Q, id_list};

use crate::ledger::{LedgerPage, LedgerQuery};
use crate::store::StoreResult;
use crate::store::sql::{self, LedgerSql};

/// [`Store::query_ledger`](crate::store::Store::query_ledger): the unit
/// list is bound as a `BIGINT[]`.
pub(super) async fn query(pool: &PgPool, query: &LedgerQuery) -> StoreResult<LedgerPage> {
    const SQL: LedgerSql = sql::ledger_query_sql!(
        "($1::BIGINT[] IS NULL OR p.unit_id = ANY($1))",
        bigrams: " AND ledger_text_grams(p.matter, p.applicant_name, p.responsible,
                                         p.applicant_address, p.feedback)
                       @> ledger_pattern_grams($11)"
    );
    let unit_ids = query.unit_ids.as_deref().map(id_list);
    Q::query_ledger(pool, SQL, unit_ids, query).await
}

/// The fold of one table of counts: its key columns and how a row `c`
/// matches a key `s`.
macro_rules! fold_sql {
    ($table:literal, $key:literal, $matches:literal) => {
        concat!(
            "WITH spread AS (
                 SELECT ",
            $key,
            " FROM ",
            $table,
            "
                 GROUP BY ",
            $key,
            "
                 HAVING COUNT(*) > 1
             ), gone AS (
                 DELETE FROM ",
            $table,
            " c USING spread s
                 WHERE ",
            $matches,
            "
                 RETURNING c.*
             ), kept AS (
                 INSERT INTO ",
            $table,
            " (",
            $key,
            ", n)
                 SELECT ",
            $key,
            ", SUM(n) FROM gone
                 GROUP BY ",
            $key,
            "
                 HAVING SUM(n) <> 0
                 RETURNING 1
             )
             SELECT (SELECT COUNT(*) FROM gone) - (SELECT COUNT(*) FROM kept)"
        )
    };
}

/// [`Store::fold_ledger_counts`](crate::store::Store::fold_ledger_counts):
/// per table (`ledger_counts`, `ledger_gram_counts`), one statement
/// replaces the rows of each key that has more than one by their sum; a key
/// already folded is only read, so an idle server writes nothing. Rows that
/// a concurrent write adds meanwhile are not in its snapshot and stay; a
/// concurrent fold's rows are skipped once it commits, so two processes
/// folding at once still count every petition once.
pub(super) async fn fold_counts(pool: &PgPool) -> StoreResult<u64> {
    let removed: i64 = sqlx::query_scalar(fold_sql!(
        "ledger_counts",
        "unit_id, status, category, level",
        "c.unit_id = s.unit_id AND c.status = s.status
               AND c.category = s.category AND c.level = s.level"
    ))
    .fetch_one(pool)
    .await?;
    let grams_removed: i64 = sqlx::query_scalar(fold_sql!(
        "ledger_gram_counts",
        "unit_id, gram",
        "c.gram = s.gram AND c.unit_id = s.unit_id"
    ))
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(removed + grams_removed).unwrap_or(0))
}
