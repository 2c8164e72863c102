-- What an append used to read from `document_chunks` on every write, kept
-- on the document's row instead: the id of the last chunk stored for it
-- (0 for none; compaction does not change it, chunk ids only grow), which
-- a write made on a copy of the document compares with the copy's, and how
-- many chunks wait to be folded into the snapshot, which the append
-- returns. Every statement that inserts or deletes a document's chunks
-- updates them in the same transaction.
ALTER TABLE documents ADD COLUMN last_chunk_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE documents ADD COLUMN pending_chunks BIGINT NOT NULL DEFAULT 0;

UPDATE documents
   SET last_chunk_id = COALESCE(
           (SELECT MAX(c.id) FROM document_chunks c WHERE c.document_id = documents.id), 0),
       pending_chunks =
           (SELECT COUNT(*) FROM document_chunks c WHERE c.document_id = documents.id);
