-- The ledger filtered by when petitions were recorded ("this month"), over
-- the live rows, with the columns the other filters test: its exact total
-- is an index-only range scan of the period instead of a skip over every
-- unit and status of `ledger_petitions_live_unit` (one month of 1,000,000
-- petitions: 325 ms → 28 ms in EXPLAIN ANALYZE; docs/BENCHMARKS.md).
CREATE INDEX ledger_petitions_live_created ON ledger_petitions (created_at)
    INCLUDE (unit_id, status, category, level, owner_user_id)
    WHERE NOT deleted;
