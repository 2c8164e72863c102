-- The heads of what is stored of each document, written with every chunk
-- (the sorted 32-byte change hashes, one after another). A sync connection
-- that asks for its user's documents in the handshake is told these, and
-- the device leaves out the documents whose heads it already has. NULL
-- means not known (documents stored before this column, until their next
-- write): the device then syncs the document as usual.
ALTER TABLE documents ADD COLUMN heads BLOB;
