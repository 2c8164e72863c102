-- Who wrote what (PostgreSQL). Every automerge actor id that appears in a
-- document's changes belongs to exactly one writer: the user and device whose
-- authenticated connection first sent a change made with it, or the server
-- acting for a user (`via_server`). A later change with the same actor from
-- anyone else is refused. The ledger attributes each petition event to the
-- owner of the actor that created it, never to the event's own `by` field.
CREATE TABLE document_actors (
    document_id  TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    -- automerge actor id, lowercase hex.
    actor        TEXT    NOT NULL,
    user_id      BIGINT  NOT NULL REFERENCES users (id),
    -- The token's device id ('' for sessions without one, and for the server).
    device_id    TEXT    NOT NULL,
    -- Written by the server on behalf of `user_id` (a supervisor's action,
    -- or an assignee's progress through the API).
    via_server   BOOLEAN NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (document_id, actor)
);

-- `actor` now holds the username of the writer the server knows (above);
-- `claimed_by` what the event itself says.
ALTER TABLE ledger_petition_events ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';
ALTER TABLE ledger_petition_events ADD COLUMN device_id TEXT;
ALTER TABLE ledger_petition_events ADD COLUMN via_server BOOLEAN NOT NULL DEFAULT FALSE;
-- Whether the event counts towards the petition's status (see ARCHITECTURE.md,
-- "Attribution"); `flag` says why not, or what is odd about it.
ALTER TABLE ledger_petition_events ADD COLUMN believed BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE ledger_petition_events ADD COLUMN flag TEXT;

CREATE INDEX ledger_petitions_responsible ON ledger_petitions (responsible, created_at);
CREATE INDEX ledger_petitions_id ON ledger_petitions (id);
