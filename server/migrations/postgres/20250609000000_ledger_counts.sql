-- The number of live petitions per unit, status, category and level, so that
-- a ledger page filtered by nothing else (a supervisor's whole subtree, a
-- unit, a status, a category, a level) answers with its exact total without
-- counting up to a million rows (`tests/benches/ledger_scale.rs`;
-- docs/BENCHMARKS.md has the figures).
--
-- Kept by triggers on `ledger_petitions`, so every write of ledger rows (the
-- sync path, `ledger rebuild`, a document deleted with its rows) keeps it in
-- its own transaction. The triggers only ever insert: each statement adds
-- one row per key it changed, with the difference (+ or -). Updating one row
-- per key instead would make every writer of a unit's petitions wait for the
-- others' commits, and two writers changing the same two keys in opposite
-- order (open → closed and closed → open) deadlock. A key's count is the sum
-- of its rows; the server folds them into one row per key now and then
-- (`Store::fold_ledger_counts`).
CREATE TABLE ledger_counts (
    unit_id  BIGINT NOT NULL,
    status   TEXT   NOT NULL,
    category TEXT   NOT NULL,
    level    TEXT   NOT NULL,
    n        BIGINT NOT NULL
);
CREATE INDEX ledger_counts_key ON ledger_counts (unit_id, status, category, level) INCLUDE (n);

INSERT INTO ledger_counts (unit_id, status, category, level, n)
SELECT unit_id, status, category, level, COUNT(*)
FROM ledger_petitions WHERE NOT deleted
GROUP BY unit_id, status, category, level;

-- Statement-level: a statement that writes many rows (a rebuild, a bulk
-- load) adds one row per key, not one per petition.
CREATE FUNCTION ledger_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ledger_counts (unit_id, status, category, level, n)
        SELECT unit_id, status, category, level, COUNT(*)
        FROM new_rows WHERE NOT deleted
        GROUP BY unit_id, status, category, level;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO ledger_counts (unit_id, status, category, level, n)
        SELECT unit_id, status, category, level, -COUNT(*)
        FROM old_rows WHERE NOT deleted
        GROUP BY unit_id, status, category, level;
    ELSE
        INSERT INTO ledger_counts (unit_id, status, category, level, n)
        SELECT unit_id, status, category, level, SUM(d)
        FROM (
            SELECT unit_id, status, category, level, -1 AS d FROM old_rows WHERE NOT deleted
            UNION ALL
            SELECT unit_id, status, category, level, 1 AS d FROM new_rows WHERE NOT deleted
        ) AS changed
        GROUP BY unit_id, status, category, level
        HAVING SUM(d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_counts_insert AFTER INSERT ON ledger_petitions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_counts_change();
CREATE TRIGGER ledger_counts_delete AFTER DELETE ON ledger_petitions
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_counts_change();
CREATE TRIGGER ledger_counts_update AFTER UPDATE ON ledger_petitions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_counts_change();
