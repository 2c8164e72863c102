-- The answers to a home visit's six questions (六问), for the visits API and
-- the visits export: a JSON array of six strings in the order of
-- sync-core's `SixQuestions::FIELDS`. Rows written before this migration
-- hold '' until `server ledger rebuild` projects them again.
ALTER TABLE ledger_visits ADD COLUMN answers TEXT NOT NULL DEFAULT '';
