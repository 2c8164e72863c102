-- A document's snapshot in a table of its own, as on SQLite (see its
-- migration of the same name), so that both backends share their
-- statements. PostgreSQL kept the snapshot out of line already (TOAST).
CREATE TABLE document_snapshots (
    document_id  TEXT  PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
    snapshot     BYTEA NOT NULL
);
INSERT INTO document_snapshots (document_id, snapshot)
    SELECT id, snapshot FROM documents WHERE snapshot IS NOT NULL;
ALTER TABLE documents DROP COLUMN snapshot;
