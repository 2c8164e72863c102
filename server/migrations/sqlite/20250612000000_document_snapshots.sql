-- A document's snapshot in a table of its own. SQLite keeps a row as one
-- record: with the snapshot (hundreds of kilobytes for a big diary) in the
-- `documents` row, every sync's read of the columns after it and every
-- update of the row (its chunk counts, its time) walked the snapshot's
-- overflow pages, at a cost that grew with the diary. The row is now small,
-- and the snapshot is read only when a document is loaded whole.
CREATE TABLE document_snapshots (
    document_id  TEXT PRIMARY KEY NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    snapshot     BLOB NOT NULL
);
INSERT INTO document_snapshots (document_id, snapshot)
    SELECT id, snapshot FROM documents WHERE snapshot IS NOT NULL;
ALTER TABLE documents DROP COLUMN snapshot;
