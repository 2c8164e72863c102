-- Initial schema (SQLite). Never edit this file once it has landed: add a new,
-- later-timestamped migration instead (sqlx checks the checksum of applied files).
--
-- Timestamps are RFC 3339 text written by the server (sqlx encodes chrono
-- `DateTime<Utc>` that way); the server compares times in Rust, not in SQL.

-- The organisation tree: county -> town -> village, or 总队 -> 支队 -> 大队 -> 中队.
CREATE TABLE units (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    code        TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    -- NULL for the root(s). A unit can only point at a unit that already exists,
    -- and there is no way to re-parent one, so the tree cannot contain a cycle.
    parent_id   INTEGER REFERENCES units (id),
    kind        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);
CREATE INDEX units_parent_id ON units (parent_id);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    username       TEXT    NOT NULL UNIQUE,
    display_name   TEXT    NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('cadre', 'supervisor', 'admin')),
    unit_id        INTEGER NOT NULL REFERENCES units (id),
    -- argon2id PHC string.
    password_hash  TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    -- Users are disabled, never deleted: documents and audit rows point at them.
    disabled       BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX users_unit_id ON users (unit_id);

CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    -- All tokens descended from one login share a family; reuse of a rotated
    -- token revokes the whole family.
    family_id   TEXT    NOT NULL,
    -- sha256 (hex) of the opaque token; the token itself is never stored.
    token_hash  TEXT    NOT NULL UNIQUE,
    device_id   TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL,
    expires_at  TEXT    NOT NULL,
    rotated_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);

-- One row per automerge document; the content is `snapshot` plus the
-- `document_chunks` appended since the snapshot was taken.
CREATE TABLE documents (
    -- automerge-repo document id (base58check of 16 bytes).
    id              TEXT    PRIMARY KEY NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('diary', 'contacts', 'unknown')),
    owner_user_id   INTEGER NOT NULL REFERENCES users (id),
    year            INTEGER,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    snapshot        BLOB,
    snapshot_heads  TEXT
);
CREATE INDEX documents_owner_user_id ON documents (owner_user_id);

CREATE TABLE document_chunks (
    -- AUTOINCREMENT: ids are never reused, so `ORDER BY id` is append order.
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id  TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    data         BLOB    NOT NULL,
    created_at   TEXT    NOT NULL
);
CREATE INDEX document_chunks_document_id ON document_chunks (document_id, id);

-- Who did what, when, from where. No foreign key on user_id: writing an audit
-- row must never fail because of what it refers to.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT    NOT NULL,
    user_id      INTEGER,
    action       TEXT    NOT NULL,
    target       TEXT    NOT NULL DEFAULT '',
    detail       TEXT    NOT NULL DEFAULT '',
    remote_addr  TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_user_id ON audit_log (user_id);
