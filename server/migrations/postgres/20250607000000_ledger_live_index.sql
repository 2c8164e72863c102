-- The supervisors' ledger filters at scale (PostgreSQL). Every ledger query
-- reads `NOT deleted` and a unit subtree, and answers with the exact number
-- of matching petitions; with only the indexes of the ledger migration that
-- count visits the table row of every match (to read `deleted`), scattered
-- over the whole table. This index holds the live rows only, with the
-- columns the common filters test (subtree, status, period, overdue,
-- category, level, cadre), so those counts are index-only scans.
-- `tests/benches/ledger_scale.rs` measures it; docs/BENCHMARKS.md has the
-- figures.
CREATE INDEX ledger_petitions_live_unit ON ledger_petitions (unit_id, status, created_at)
    INCLUDE (category, level, deadline, owner_user_id)
    WHERE NOT deleted;

-- The ledger's order `sort=deadline` (items without a deadline last, then by
-- deadline, newest first among equals), exactly as the query spells it once
-- the planner has folded the bound sort parameter into it, over the live
-- rows: the first page is read in index order instead of sorting every
-- match.
CREATE INDEX ledger_petitions_live_deadline ON ledger_petitions (
    (CASE WHEN deadline IS NULL THEN 1 ELSE 0 END), deadline, created_at DESC, document_id, id
) WHERE NOT deleted;
