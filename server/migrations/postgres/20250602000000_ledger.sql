-- The canonical ledger (台账), PostgreSQL. A projection of the automerge documents,
-- written in the same transaction as the chunk that changed them and rebuilt
-- at will by `server ledger rebuild`; never edited by hand. Every row is keyed
-- by (document_id, record id): record ids are UUIDs chosen by the phones and
-- are only unique inside their document.
--
-- owner_user_id / unit_id are copied from the document's owner at write time
-- so that the supervisor's "my unit's subtree" filter needs no join.
-- Times are TIMESTAMPTZ; deadlines are `YYYY-MM-DD` text (China date), which
-- compares correctly as text.

CREATE TABLE ledger_visits (
    document_id      TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    id               TEXT    NOT NULL,
    owner_user_id    BIGINT  NOT NULL,
    unit_id          BIGINT  NOT NULL,
    kind             TEXT    NOT NULL,
    at               TIMESTAMPTZ NOT NULL,
    place            TEXT    NOT NULL,
    subject_kind     TEXT    NOT NULL,
    subject_name     TEXT    NOT NULL,
    -- Comma-separated, sorted (`needy,party_member`).
    tags             TEXT    NOT NULL,
    aid_money_fen    BIGINT  NOT NULL,
    aid_goods        TEXT    NOT NULL,
    resolved_on_spot BIGINT  NOT NULL,
    petition_count   BIGINT  NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    created_by       TEXT    NOT NULL,
    deleted          BOOLEAN NOT NULL,
    PRIMARY KEY (document_id, id)
);
CREATE INDEX ledger_visits_unit_at ON ledger_visits (unit_id, at);
CREATE INDEX ledger_visits_owner_at ON ledger_visits (owner_user_id, at);

CREATE TABLE ledger_petitions (
    document_id       TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    id                TEXT    NOT NULL,
    visit_id          TEXT,
    owner_user_id     BIGINT  NOT NULL,
    unit_id           BIGINT  NOT NULL,
    applicant_name    TEXT    NOT NULL,
    applicant_phone   TEXT,
    applicant_address TEXT,
    matter            TEXT    NOT NULL,
    category          TEXT    NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    created_by        TEXT    NOT NULL,
    -- Derived from the events by sync-core (PetitionState).
    status            TEXT    NOT NULL,
    responsible       TEXT    NOT NULL,
    level             TEXT    NOT NULL,
    deadline          TEXT,
    feedback          TEXT,
    satisfaction      TEXT,
    resolved_at       TIMESTAMPTZ,
    closed_at         TIMESTAMPTZ,
    deleted           BOOLEAN NOT NULL,
    event_count       BIGINT  NOT NULL,
    PRIMARY KEY (document_id, id)
);
CREATE INDEX ledger_petitions_unit ON ledger_petitions (unit_id, status, created_at);
CREATE INDEX ledger_petitions_owner ON ledger_petitions (owner_user_id, created_at);
CREATE INDEX ledger_petitions_status_deadline ON ledger_petitions (status, deadline);
CREATE INDEX ledger_petitions_category ON ledger_petitions (category);
CREATE INDEX ledger_petitions_created_at ON ledger_petitions (created_at);

CREATE TABLE ledger_petition_events (
    document_id  TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    petition_id  TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    -- Username of whoever recorded the event ("by" is an SQL keyword).
    actor        TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    note         TEXT,
    -- The whole event as JSON (new responsible, deadline, level, rating …).
    detail       TEXT    NOT NULL,
    PRIMARY KEY (document_id, petition_id, id)
);

CREATE TABLE ledger_cards (
    document_id     TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    id              TEXT    NOT NULL,
    owner_user_id   BIGINT  NOT NULL,
    unit_id         BIGINT  NOT NULL,
    resident        TEXT    NOT NULL,
    phone           TEXT,
    address         TEXT,
    household       TEXT,
    handed_over_at  TIMESTAMPTZ NOT NULL,
    pairing_role    TEXT,
    pairing_needy   BOOLEAN,
    follow_ups      BIGINT  NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    created_by      TEXT    NOT NULL,
    deleted         BOOLEAN NOT NULL,
    PRIMARY KEY (document_id, id)
);
CREATE INDEX ledger_cards_unit ON ledger_cards (unit_id);
CREATE INDEX ledger_cards_owner ON ledger_cards (owner_user_id);
