-- The ledger filtered by when petitions were recorded, over the live rows
-- (see the PostgreSQL migration of the same name; SQLite has no INCLUDE:
-- the covered columns are trailing key columns).
CREATE INDEX ledger_petitions_live_created
    ON ledger_petitions (created_at, unit_id, status, category, level, owner_user_id)
    WHERE NOT deleted;
