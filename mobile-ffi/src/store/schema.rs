//! The tables of the local store, and opening it safely.

use rusqlite::Connection;

use crate::ClientError;

/// Bumped when a table changes; each step below is applied once, in order.
/// A store from a newer app is refused rather than rewritten.
const STEPS: &[&str] = &[
    // 1: documents, sync states, settings (tokens, user) and the indexes.
    r"
    CREATE TABLE documents (
        id TEXT PRIMARY KEY,              -- automerge-repo document id
        kind TEXT NOT NULL,               -- diary | contacts | unknown
        year INTEGER,                     -- diaries only
        bytes BLOB NOT NULL,              -- sync_core::storage::snapshot()
        local_changes INTEGER NOT NULL DEFAULT 0, -- edits the server may lack
        stale_index INTEGER NOT NULL DEFAULT 0,   -- index rows to rebuild
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE sync_states (
        document_id TEXT PRIMARY KEY,
        state BLOB NOT NULL
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE visits (
        id TEXT PRIMARY KEY,
        document_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        year INTEGER NOT NULL,
        kind TEXT NOT NULL,
        household TEXT,                   -- name and address of a household visited
        deleted INTEGER NOT NULL,
        search TEXT NOT NULL,
        record TEXT NOT NULL              -- the visit as JSON
    );
    CREATE INDEX visits_at ON visits (at);
    CREATE INDEX visits_document ON visits (document_id);
    CREATE TABLE petitions (
        id TEXT PRIMARY KEY,
        document_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        year INTEGER NOT NULL,
        category TEXT NOT NULL,
        status TEXT NOT NULL,
        deadline TEXT,
        deleted INTEGER NOT NULL,
        search TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX petitions_created ON petitions (created_at);
    CREATE INDEX petitions_document ON petitions (document_id);
    CREATE TABLE cards (
        id TEXT PRIMARY KEY,
        document_id TEXT NOT NULL,
        handed_over_at INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        search TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX cards_document ON cards (document_id);
    ",
    // 2: a local edit appends the change it made instead of rewriting the
    // whole document; `documents.bytes` is the last compacted snapshot.
    r"
    CREATE TABLE document_chunks (
        seq INTEGER PRIMARY KEY,          -- order of writing
        document_id TEXT NOT NULL,
        bytes BLOB NOT NULL               -- automerge save_after()
    );
    CREATE INDEX document_chunks_document ON document_chunks (document_id, seq);
    ",
];

fn corrupt(message: impl std::fmt::Display) -> ClientError {
    ClientError::CorruptStore {
        detail: message.to_string(),
    }
}

/// Sets up durability, checks the file and creates or upgrades the tables.
pub(super) fn prepare(conn: &mut Connection) -> Result<(), ClientError> {
    // WAL with synchronous=FULL: a committed edit survives a power cut, and a
    // kill mid-write leaves the last committed state (SQLite's journal).
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(ClientError::Storage {
            detail: format!("the store cannot use WAL (journal mode {mode})"),
        });
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // A damaged file is reported, never emptied and recreated: it may hold
    // the only copy of a week of visits. Reading the schema finds a file that
    // is not a store (or not with this key); damage further in is reported as
    // `CorruptStore` by the read that meets it. No `quick_check` here: it
    // reads (and, encrypted, decrypts) every page on every start, which on a
    // cheap phone with a year's diary costs more than the whole first screen.
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    if tables == 0 && conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? != 0 {
        return Err(corrupt("the store has a version but no tables"));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = i64::try_from(STEPS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(ClientError::UpdateRequired {
            detail: format!("the store has version {version}; this app knows {known}"),
        });
    }
    for (i, step) in STEPS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.transaction()?;
        tx.execute_batch(step)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}
