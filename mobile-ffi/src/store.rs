//! The local store: one SQLite file holding the documents (automerge bytes),
//! their sync states, the login, and index tables the lists read.
//!
//! Every edit is one transaction that writes the document's new bytes and its
//! index rows together, so the last committed state always loads and the
//! lists never disagree with the documents for long: a sync marks the index
//! of a document it changed stale in the same transaction as the bytes, and
//! stale indexes are rebuilt before the next read.

mod index;
mod schema;

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use sync_core::DocumentId;

pub(crate) use index::{IndexRow, PetitionFilter, VisitFilter};

use crate::ClientError;

/// The store's file name inside the data directory.
pub(crate) const FILE_NAME: &str = "diary.sqlite3";

/// Keys of the `settings` table.
pub(crate) mod keys {
    pub const USERNAME: &str = "username";
    pub const PROFILE: &str = "profile";
    pub const ACCESS_TOKEN: &str = "access_token";
    pub const ACCESS_EXPIRES_MS: &str = "access_expires_ms";
    pub const REFRESH_TOKEN: &str = "refresh_token";
    pub const LAST_SUCCESS_MS: &str = "last_sync_success_ms";
    pub const LAST_ATTEMPT_MS: &str = "last_sync_attempt_ms";
    pub const LAST_ERROR: &str = "last_sync_error";
}

/// What the store knows about one document.
#[derive(Debug, Clone)]
pub(crate) struct StoredDocument {
    pub id: DocumentId,
    pub kind: String,
    pub year: Option<i32>,
}

/// A document as stored: a snapshot, then the chunks appended since.
#[derive(Debug)]
pub(crate) struct DocumentBytes {
    pub snapshot: Vec<u8>,
    pub chunks: Vec<Vec<u8>>,
}

/// What a local edit writes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DocumentWrite<'a> {
    /// The edit's change alone, appended after the document's snapshot.
    Chunk(&'a [u8]),
    /// The whole document, replacing its snapshot and chunks.
    Snapshot(&'a [u8]),
}

/// The open store.
#[derive(Debug)]
pub(crate) struct Store {
    conn: Connection,
}

fn parse_doc_id(s: &str) -> Result<DocumentId, ClientError> {
    s.parse().map_err(|e| ClientError::CorruptStore {
        detail: format!("bad document id in the store: {e}"),
    })
}

impl Store {
    /// Opens (or creates) the store in `dir`, encrypted with `key` if given.
    pub(crate) fn open(dir: &Path, key: Option<&str>) -> Result<Self, ClientError> {
        let key = key.map(cipher_key).transpose()?;
        std::fs::create_dir_all(dir).map_err(|e| ClientError::Storage {
            detail: format!("cannot create {}: {e}", dir.display()),
        })?;
        let path = dir.join(FILE_NAME);
        let mut conn = Connection::open(&path)?;
        if let Some(key) = &key {
            // Before anything reads the file. The key is hex digits only. A
            // wrong key is reported to the app; SQLCipher need not also log it.
            conn.execute_batch(&format!(
                "PRAGMA cipher_log_level = NONE; PRAGMA key = \"x'{key}'\";"
            ))?;
        }
        match schema::prepare(&mut conn) {
            Err(ClientError::CorruptStore { detail }) => {
                Err(explain_unreadable(&path, key.is_some(), detail))
            }
            other => other,
        }?;
        Ok(Self { conn })
    }

    // ----- settings -----

    pub(crate) fn setting(&self, key: &str) -> Result<Option<String>, ClientError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Writes several settings at once (`None` removes one), atomically: a
    /// rotated refresh token and its access token are never half-stored.
    pub(crate) fn set_settings(
        &mut self,
        pairs: &[(&str, Option<&str>)],
    ) -> Result<(), ClientError> {
        let tx = self.conn.transaction()?;
        for (key, value) in pairs {
            match value {
                Some(v) => tx.execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, v],
                )?,
                None => tx.execute("DELETE FROM settings WHERE key = ?1", [key])?,
            };
        }
        tx.commit()?;
        Ok(())
    }

    // ----- documents -----

    pub(crate) fn documents(&self) -> Result<Vec<StoredDocument>, ClientError> {
        let mut st = self
            .conn
            .prepare("SELECT id, kind, year FROM documents ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))?;
        rows.map(|row| {
            let (id, kind, year) = row?;
            Ok(StoredDocument {
                id: parse_doc_id(&id)?,
                kind,
                year,
            })
        })
        .collect()
    }

    /// A document's stored form: its snapshot and the chunks written since,
    /// in order.
    pub(crate) fn document(&self, id: &DocumentId) -> Result<Option<DocumentBytes>, ClientError> {
        let key = id.to_string();
        let Some(snapshot) = self
            .conn
            .query_row("SELECT bytes FROM documents WHERE id = ?1", [&key], |r| {
                r.get(0)
            })
            .optional()?
        else {
            return Ok(None);
        };
        let mut st = self
            .conn
            .prepare("SELECT bytes FROM document_chunks WHERE document_id = ?1 ORDER BY seq")?;
        let chunks = st
            .query_map([&key], |r| r.get(0))?
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        Ok(Some(DocumentBytes { snapshot, chunks }))
    }

    /// How many chunks a document has gathered since its last snapshot.
    pub(crate) fn chunk_count(&self, id: &DocumentId) -> Result<usize, ClientError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM document_chunks WHERE document_id = ?1",
            [id.to_string()],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) fn sync_state(&self, id: &DocumentId) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self
            .conn
            .query_row(
                "SELECT state FROM sync_states WHERE document_id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Stores a local edit: the change it made (or a new snapshot), one more
    /// local change, and the index rows of the records it touched, in one
    /// transaction.
    pub(crate) fn save_edit(
        &mut self,
        doc: &StoredDocument,
        write: DocumentWrite<'_>,
        rows: &[IndexRow],
        now_ms: i64,
    ) -> Result<(), ClientError> {
        let tx = self.conn.transaction()?;
        let key = doc.id.to_string();
        match write {
            DocumentWrite::Chunk(bytes) => {
                let updated = tx.execute(
                    "UPDATE documents SET local_changes = local_changes + 1, updated_at = ?2
                     WHERE id = ?1",
                    params![key, now_ms],
                )?;
                if updated != 1 {
                    return Err(ClientError::internal(
                        "a change to a document the store does not hold",
                    ));
                }
                tx.execute(
                    "INSERT INTO document_chunks (document_id, bytes) VALUES (?1, ?2)",
                    params![key, bytes],
                )?;
            }
            DocumentWrite::Snapshot(bytes) => {
                tx.execute(
                    "INSERT INTO documents (id, kind, year, bytes, local_changes, updated_at)
                     VALUES (?1, ?2, ?3, ?4, 1, ?5)
                     ON CONFLICT (id) DO UPDATE SET bytes = excluded.bytes,
                         local_changes = local_changes + 1, updated_at = excluded.updated_at",
                    params![key, doc.kind, doc.year, bytes, now_ms],
                )?;
                tx.execute("DELETE FROM document_chunks WHERE document_id = ?1", [&key])?;
            }
        }
        for row in rows {
            index::write(&tx, &doc.id, row)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores what a sync brought: a new snapshot (which keeps changes still
    /// waiting for their dependencies) and the sync state together, with the
    /// document's index marked for rebuilding.
    pub(crate) fn save_received(
        &mut self,
        doc: &StoredDocument,
        snapshot: &[u8],
        state: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<(), ClientError> {
        let tx = self.conn.transaction()?;
        let key = doc.id.to_string();
        tx.execute(
            "INSERT INTO documents (id, kind, year, bytes, stale_index, updated_at)
             VALUES (?1, ?2, ?3, ?4, 1, ?5)
             ON CONFLICT (id) DO UPDATE SET bytes = excluded.bytes, kind = excluded.kind,
                 year = excluded.year, stale_index = 1, updated_at = excluded.updated_at",
            params![key, doc.kind, doc.year, snapshot, now_ms],
        )?;
        tx.execute("DELETE FROM document_chunks WHERE document_id = ?1", [&key])?;
        if let Some(state) = state {
            save_state(&tx, &doc.id, state)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub(crate) fn save_sync_state(
        &mut self,
        id: &DocumentId,
        state: &[u8],
    ) -> Result<(), ClientError> {
        save_state(&self.conn, id, state)
    }

    /// The server has everything of this document: its local changes are
    /// no longer pending. Returns how many there were.
    pub(crate) fn mark_synced(&mut self, id: &DocumentId) -> Result<u64, ClientError> {
        let tx = self.conn.transaction()?;
        let n: Option<i64> = tx
            .query_row(
                "SELECT local_changes FROM documents WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        tx.execute(
            "UPDATE documents SET local_changes = 0 WHERE id = ?1",
            [id.to_string()],
        )?;
        tx.commit()?;
        Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
    }

    /// Local edits the server may not have, over all documents.
    pub(crate) fn pending_changes(&self) -> Result<u64, ClientError> {
        let n: i64 = self.conn.query_row(
            "SELECT COALESCE(SUM(local_changes), 0) FROM documents",
            [],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) fn stale_documents(&self) -> Result<Vec<DocumentId>, ClientError> {
        let mut st = self
            .conn
            .prepare("SELECT id FROM documents WHERE stale_index = 1")?;
        let ids = st.query_map([], |r| r.get::<_, String>(0))?;
        ids.map(|id| parse_doc_id(&id?)).collect()
    }

    /// Replaces every index row of a document and clears its stale mark.
    pub(crate) fn reindex(
        &mut self,
        id: &DocumentId,
        rows: &[IndexRow],
    ) -> Result<(), ClientError> {
        let tx = self.conn.transaction()?;
        index::clear(&tx, id)?;
        for row in rows {
            index::write(&tx, id, row)?;
        }
        tx.execute(
            "UPDATE documents SET stale_index = 0 WHERE id = ?1",
            [id.to_string()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes everything of the logged-in user (logout on a shared phone).
    pub(crate) fn wipe(&mut self) -> Result<(), ClientError> {
        self.conn.execute_batch(
            "BEGIN;
             DELETE FROM documents; DELETE FROM document_chunks;
             DELETE FROM sync_states; DELETE FROM settings;
             DELETE FROM visits; DELETE FROM petitions; DELETE FROM cards;
             COMMIT;",
        )?;
        Ok(())
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// The SQLCipher raw key for an at-rest key: 64 hex digits, used as they
/// are (no passphrase stretching: the key is random, and a cheap phone
/// should not spend half a second deriving it on every start).
fn cipher_key(key: &str) -> Result<String, ClientError> {
    let key = key.trim();
    if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ClientError::invalid(
            "at_rest_key",
            "the at-rest key must be 64 hex digits (32 random bytes)",
        ));
    }
    if cfg!(feature = "encryption") {
        Ok(key.to_ascii_lowercase())
    } else {
        Err(ClientError::Config {
            detail: "this build of the library has no at-rest encryption \
                     (build it with the `encryption` feature)"
                .to_owned(),
        })
    }
}

/// Why a store file does not open, as far as its first bytes tell: a plain
/// SQLite file begins with a known header, an encrypted one looks random.
fn explain_unreadable(path: &Path, keyed: bool, detail: String) -> ClientError {
    let mut header = [0u8; 16];
    let plain = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut header))
        .is_ok_and(|()| &header == b"SQLite format 3\0");
    match (keyed, plain) {
        (true, true) => ClientError::WrongKey {
            detail: "the store was made without an at-rest key".to_owned(),
        },
        (true, false) => ClientError::WrongKey {
            detail: format!("the key does not decrypt the store (or it is damaged): {detail}"),
        },
        (false, false) => ClientError::CorruptStore {
            detail: format!(
                "not a readable SQLite file: damaged, or encrypted \
                 (open it with its at-rest key): {detail}"
            ),
        },
        (false, true) => ClientError::CorruptStore { detail },
    }
}

fn save_state(conn: &Connection, id: &DocumentId, state: &[u8]) -> Result<(), ClientError> {
    conn.execute(
        "INSERT INTO sync_states (document_id, state) VALUES (?1, ?2)
         ON CONFLICT (document_id) DO UPDATE SET state = excluded.state",
        params![id.to_string(), state],
    )?;
    Ok(())
}
