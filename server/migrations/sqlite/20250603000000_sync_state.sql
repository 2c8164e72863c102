-- Per-device sync states: what the server last knew a device had of a
-- document, so a reconnecting phone only exchanges what changed since (the
-- bytes of automerge's `sync::State::encode`, opaque to the database).
CREATE TABLE sync_states (
    document_id  TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    -- The token's device id; sessions without one keep no state.
    device_id    TEXT    NOT NULL,
    state        BLOB    NOT NULL,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (document_id, user_id, device_id)
);
