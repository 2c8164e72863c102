-- What the statistics, the three lists and the exports need (sqlite).
--
-- household_key: a visit's household as the server derives it from the
-- subject's kind, name and address, normalised (see server/src/ledger/
-- household.rs), so households are counted once however often they are
-- visited. Rows written before this migration hold '' until
-- `server ledger rebuild` projects them again.
ALTER TABLE ledger_visits ADD COLUMN household_key TEXT NOT NULL DEFAULT '';
CREATE INDEX ledger_visits_household ON ledger_visits (owner_user_id, household_key);

-- The China date (YYYY-MM-DD) of the last resolution, compared with the
-- deadline (also a China date) to tell resolution on time.
ALTER TABLE ledger_petitions ADD COLUMN resolved_on TEXT;
CREATE INDEX ledger_petitions_resolved_at ON ledger_petitions (resolved_at);

-- A cadre's post, which sets their visit quota: 'village_leader' (包村领导),
-- 'village_cadre' (包村干部, the default for a cadre without a row) or
-- 'village_head' (村领导).
CREATE TABLE user_posts (
    user_id INTEGER NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    post    TEXT NOT NULL
);
