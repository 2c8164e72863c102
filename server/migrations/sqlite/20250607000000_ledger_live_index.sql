-- The supervisors' ledger filters at scale (SQLite; see the PostgreSQL
-- migration of the same name). Every ledger query reads `NOT deleted` and a
-- unit subtree, and answers with the exact number of matching petitions;
-- this index holds the live rows only, with the columns the common filters
-- test (subtree, status, period, overdue, category, level, cadre), so those
-- counts need not read the table. SQLite has no INCLUDE: the covered columns
-- are trailing key columns.
CREATE INDEX ledger_petitions_live_unit
    ON ledger_petitions (unit_id, status, created_at, category, level, deadline, owner_user_id)
    WHERE NOT deleted;

-- The ledger's order `sort=deadline` over the live rows, as in the
-- PostgreSQL migration. SQLite plans the ledger's statement without looking
-- at the bound order, so it does not read this index for the ledger's page
-- today; it is here so that both schemas carry the same indexes.
CREATE INDEX ledger_petitions_live_deadline ON ledger_petitions (
    (CASE WHEN deadline IS NULL THEN 1 ELSE 0 END), deadline, created_at DESC, document_id, id
) WHERE NOT deleted;
