-- Initial schema (PostgreSQL). Never edit this file once it has landed: add a
-- new, later-timestamped migration instead (sqlx checks the checksum of applied
-- files). Keep it equivalent to migrations/sqlite/20250601000000_init.sql.

-- The organisation tree: county -> town -> village, or 总队 -> 支队 -> 大队 -> 中队.
CREATE TABLE units (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code        TEXT        NOT NULL UNIQUE,
    name        TEXT        NOT NULL,
    -- NULL for the root(s). A unit can only point at a unit that already exists,
    -- and there is no way to re-parent one, so the tree cannot contain a cycle.
    parent_id   BIGINT      REFERENCES units (id),
    kind        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX units_parent_id ON units (parent_id);

CREATE TABLE users (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       TEXT        NOT NULL UNIQUE,
    display_name   TEXT        NOT NULL,
    role           TEXT        NOT NULL CHECK (role IN ('cadre', 'supervisor', 'admin')),
    unit_id        BIGINT      NOT NULL REFERENCES units (id),
    -- argon2id PHC string.
    password_hash  TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    -- Users are disabled, never deleted: documents and audit rows point at them.
    disabled       BOOLEAN     NOT NULL DEFAULT FALSE
);
CREATE INDEX users_unit_id ON users (unit_id);

CREATE TABLE refresh_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT      NOT NULL REFERENCES users (id),
    -- All tokens descended from one login share a family; reuse of a rotated
    -- token revokes the whole family.
    family_id   TEXT        NOT NULL,
    -- sha256 (hex) of the opaque token; the token itself is never stored.
    token_hash  TEXT        NOT NULL UNIQUE,
    device_id   TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens (user_id);

-- One row per automerge document; the content is `snapshot` plus the
-- `document_chunks` appended since the snapshot was taken. Writers lock this
-- row (SELECT ... FOR UPDATE) so merges of one document are serialised across
-- server processes.
CREATE TABLE documents (
    -- automerge-repo document id (base58check of 16 bytes).
    id              TEXT        PRIMARY KEY,
    kind            TEXT        NOT NULL CHECK (kind IN ('diary', 'contacts', 'unknown')),
    owner_user_id   BIGINT      NOT NULL REFERENCES users (id),
    year            INTEGER,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    snapshot        BYTEA,
    snapshot_heads  TEXT
);
CREATE INDEX documents_owner_user_id ON documents (owner_user_id);

CREATE TABLE document_chunks (
    -- Identity values only grow, so `ORDER BY id` is append order.
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  TEXT        NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    data         BYTEA       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX document_chunks_document_id ON document_chunks (document_id, id);

-- Who did what, when, from where. No foreign key on user_id: writing an audit
-- row must never fail because of what it refers to.
CREATE TABLE audit_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL,
    user_id      BIGINT,
    action       TEXT        NOT NULL,
    target       TEXT        NOT NULL DEFAULT '',
    detail       TEXT        NOT NULL DEFAULT '',
    remote_addr  TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_user_id ON audit_log (user_id);
