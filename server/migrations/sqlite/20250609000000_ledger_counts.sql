-- The number of live petitions per unit, status, category and level, so that
-- a ledger page filtered by nothing else (a supervisor's whole subtree, a
-- unit, a status, a category, a level) answers with its exact total without
-- counting every matching row (see the PostgreSQL migration of the same
-- name). Kept by triggers on `ledger_petitions`, in the transaction of every
-- write of ledger rows. SQLite has one writer at a time, so each key is one
-- row updated in place (PostgreSQL inserts differences instead, to keep its
-- concurrent writers from waiting on each other).
CREATE TABLE ledger_counts (
    unit_id  INTEGER NOT NULL,
    status   TEXT    NOT NULL,
    category TEXT    NOT NULL,
    level    TEXT    NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (unit_id, status, category, level)
);

INSERT INTO ledger_counts (unit_id, status, category, level, n)
SELECT unit_id, status, category, level, COUNT(*)
FROM ledger_petitions WHERE NOT deleted
GROUP BY unit_id, status, category, level;

CREATE TRIGGER ledger_counts_insert AFTER INSERT ON ledger_petitions
WHEN NOT NEW.deleted
BEGIN
    INSERT INTO ledger_counts (unit_id, status, category, level, n)
    VALUES (NEW.unit_id, NEW.status, NEW.category, NEW.level, 1)
    ON CONFLICT (unit_id, status, category, level) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER ledger_counts_delete AFTER DELETE ON ledger_petitions
WHEN NOT OLD.deleted
BEGIN
    UPDATE ledger_counts SET n = n - 1
    WHERE unit_id = OLD.unit_id AND status = OLD.status
      AND category = OLD.category AND level = OLD.level;
END;

CREATE TRIGGER ledger_counts_update AFTER UPDATE OF unit_id, status, category, level, deleted
ON ledger_petitions
BEGIN
    UPDATE ledger_counts SET n = n - 1
    WHERE NOT OLD.deleted AND unit_id = OLD.unit_id AND status = OLD.status
      AND category = OLD.category AND level = OLD.level;
    INSERT INTO ledger_counts (unit_id, status, category, level, n)
    SELECT NEW.unit_id, NEW.status, NEW.category, NEW.level, 1 WHERE NOT NEW.deleted
    ON CONFLICT (unit_id, status, category, level) DO UPDATE SET n = n + 1;
END;
