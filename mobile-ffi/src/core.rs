//! The state behind a `DiaryClient`: the store, the documents in memory, the
//! server session. Edits go through here so each one is one automerge change
//! and one store transaction.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sync_core::automerge::{ActorId, Automerge};
use sync_core::{ContactsDocument, DiaryDocument, DocumentId, DocumentKind, Edit};

use crate::clock;
use crate::observer::SyncObserver;
use crate::session::Http;
use crate::store::{DocumentWrite, IndexRow, Store, StoredDocument, keys};
use crate::{ClientConfig, ClientError};

/// Documents in memory, by id. Loaded from the store on first use.
pub(crate) type Docs = BTreeMap<DocumentId, Automerge>;

/// A local edit stores only its change; after this many, the next edit
/// writes the whole document instead and the chunks are dropped. Loading
/// replays the chunks, so this bounds the work of opening a document.
const COMPACT_AFTER_CHUNKS: usize = 64;

/// Which document an edit goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// The owner's diary of a year (created if this phone has none yet).
    Diary(i32),
    /// The owner's contacts (created if need be).
    Contacts,
    /// A document this phone holds (the one a record was found in).
    Existing(DocumentId),
}

/// Locks a mutex, carrying on after a panic elsewhere: the data behind
/// these locks is rebuilt from the store, never half-written in place.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Everything a client holds. Lock order: `docs`, then `store`.
pub(crate) struct Core {
    pub config: ClientConfig,
    pub store: Mutex<Store>,
    pub docs: Mutex<Docs>,
    pub http: Http,
    /// One refresh at a time: refresh tokens are single-use, and two
    /// concurrent refreshes would look like a stolen token to the server.
    pub auth_lock: tokio::sync::Mutex<()>,
    /// One sync at a time (a button press during a background sync waits).
    pub sync_lock: tokio::sync::Mutex<()>,
    pub syncing: AtomicBool,
    pub observer: Mutex<Option<Arc<dyn SyncObserver>>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("data_dir", &self.config.data_dir)
            .field("server_url", &self.config.server_url)
            .finish_non_exhaustive()
    }
}

/// A fresh actor for each document loaded: an edit that never reached the
/// store (a crash between change and commit) can then never be followed by
/// a different change under the same actor and sequence number.
fn fresh_actor() -> ActorId {
    ActorId::random()
}

/// The store's description of a document, from its root.
pub(crate) fn describe(id: DocumentId, doc: &Automerge) -> StoredDocument {
    match sync_core::document::read_meta(doc) {
        Ok(meta) => StoredDocument {
            id,
            kind: meta.kind.as_str().to_owned(),
            year: meta.year,
        },
        Err(_) => StoredDocument {
            id,
            kind: "unknown".to_owned(),
            year: None,
        },
    }
}

/// The index rows of a whole document (deleted records included, so lists
/// can show them on request).
pub(crate) fn index_rows(doc: &Automerge) -> Vec<IndexRow> {
    match sync_core::document::read_meta(doc).map(|m| m.kind) {
        Ok(DocumentKind::Diary) => match DiaryDocument::from_automerge(doc.clone()) {
            Ok(d) => d
                .all_visits()
                .into_iter()
                .map(IndexRow::Visit)
                .chain(d.all_petitions().into_iter().map(IndexRow::Petition))
                .collect(),
            Err(_) => Vec::new(),
        },
        Ok(DocumentKind::Contacts) => match ContactsDocument::from_automerge(doc.clone()) {
            Ok(c) => c.all_cards().into_iter().map(IndexRow::Card).collect(),
            Err(_) => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

impl Core {
    pub(crate) fn open(config: ClientConfig) -> Result<Self, ClientError> {
        if config.device_id.trim().is_empty() {
            return Err(ClientError::invalid("device_id", "device id is required"));
        }
        let http = Http::new(&config.server_url)?;
        // Checked now so a misconfigured app fails at start, not at first sync.
        http.sync_url()?;
        let store = Store::open(
            &PathBuf::from(&config.data_dir),
            config.at_rest_key.as_deref(),
        )?;
        let core = Self {
            config,
            store: Mutex::new(store),
            docs: Mutex::new(Docs::new()),
            http,
            auth_lock: tokio::sync::Mutex::new(()),
            sync_lock: tokio::sync::Mutex::new(()),
            syncing: AtomicBool::new(false),
            observer: Mutex::new(None),
        };
        core.refresh_indexes()?;
        Ok(core)
    }

    /// The logged-in user's name, who owns every document edited here.
    pub(crate) fn username(&self) -> Result<String, ClientError> {
        lock(&self.store)
            .setting(keys::USERNAME)?
            .ok_or(ClientError::NotLoggedIn)
    }

    /// Makes sure `id` is in memory, loading it from the store.
    pub(crate) fn load_into(
        docs: &mut Docs,
        store: &Store,
        id: &DocumentId,
    ) -> Result<bool, ClientError> {
        if docs.contains_key(id) {
            return Ok(true);
        }
        let Some(stored) = store.document(id)? else {
            return Ok(false);
        };
        let doc = sync_core::storage::load(
            Some(&stored.snapshot),
            stored.chunks.iter().map(Vec::as_slice),
        )
        .map_err(|e| ClientError::CorruptStore {
            detail: format!("document {id} does not load: {e}"),
        })?;
        docs.insert(*id, doc.with_actor(fresh_actor()));
        Ok(true)
    }

    fn resolve(owner: &str, target: Target) -> DocumentId {
        match target {
            Target::Existing(id) => id,
            Target::Diary(year) => sync_core::diary_id(owner, year),
            Target::Contacts => sync_core::contacts_id(owner),
        }
    }

    fn create(owner: &str, target: Target) -> Result<Option<Automerge>, ClientError> {
        Ok(match target {
            Target::Existing(_) => None,
            Target::Diary(year) => {
                Some(DiaryDocument::create_shared(owner, year, fresh_actor())?.into_automerge())
            }
            Target::Contacts => {
                Some(ContactsDocument::create_shared(owner, fresh_actor())?.into_automerge())
            }
        })
    }

    /// Runs one edit on a document and stores it. `f` gets the document and
    /// the edit's author and time, and returns its result and the index rows
    /// of the records it touched. On any error nothing is stored and the
    /// document in memory is as before.
    pub(crate) fn edit<T>(
        &self,
        target: Target,
        f: impl FnOnce(&mut Automerge, &Edit) -> Result<(T, Vec<IndexRow>), ClientError>,
    ) -> Result<T, ClientError> {
        let owner = self.username()?;
        let mut docs = lock(&self.docs);
        let mut store = lock(&self.store);
        let id = Self::resolve(&owner, target);
        let stored = Self::load_into(&mut docs, &store, &id)?;
        if !stored {
            let created = Self::create(&owner, target)?.ok_or(ClientError::NotFound {
                record: "document".to_owned(),
                id: id.to_string(),
            })?;
            docs.insert(id, created);
        }
        let Some(doc) = docs.get_mut(&id) else {
            return Err(ClientError::internal("document vanished from memory"));
        };
        // Undo point: automerge commits or rolls back each transaction, but
        // a failed store write must not leave an unstored change in memory.
        let heads_before = doc.get_heads();
        let edit = Edit::new(owner, clock::now());
        let (out, rows) = match f(doc, &edit) {
            Ok(done) => done,
            Err(e) => {
                // The store holds the truth; reload from it next time rather
                // than trust what a failed edit left in memory.
                docs.remove(&id);
                return Err(e);
            }
        };
        if doc.get_heads() == heads_before {
            return Ok(out);
        }
        // The change alone, until enough have gathered to compact.
        let snapshot = !stored || store.chunk_count(&id)? >= COMPACT_AFTER_CHUNKS;
        let bytes = if snapshot {
            sync_core::storage::snapshot(doc)
        } else {
            doc.save_after(&heads_before)
        };
        let write = if snapshot {
            DocumentWrite::Snapshot(&bytes)
        } else {
            DocumentWrite::Chunk(&bytes)
        };
        let meta = describe(id, doc);
        if let Err(e) = store.save_edit(&meta, write, &rows, edit.at.millis()) {
            // Reload from the store next time (with a new actor).
            docs.remove(&id);
            return Err(e);
        }
        Ok(out)
    }

    /// Runs `f` on a diary in place. The typed wrapper owns its automerge
    /// document, so it is moved in and back out.
    pub(crate) fn with_diary<T>(
        doc: &mut Automerge,
        f: impl FnOnce(&mut DiaryDocument) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        // On error `doc` is left empty; `edit` then drops it from memory.
        let mut diary = DiaryDocument::from_automerge(std::mem::take(doc))?;
        let out = f(&mut diary);
        *doc = diary.into_automerge();
        out
    }

    /// As [`Self::with_diary`] for contacts.
    pub(crate) fn with_contacts<T>(
        doc: &mut Automerge,
        f: impl FnOnce(&mut ContactsDocument) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        // On error `doc` is left empty; `edit` then drops it from memory.
        let mut contacts = ContactsDocument::from_automerge(std::mem::take(doc))?;
        let out = f(&mut contacts);
        *doc = contacts.into_automerge();
        out
    }

    /// Rebuilds the index rows of documents a sync changed.
    pub(crate) fn refresh_indexes(&self) -> Result<(), ClientError> {
        let mut docs = lock(&self.docs);
        let mut store = lock(&self.store);
        for id in store.stale_documents()? {
            if Self::load_into(&mut docs, &store, &id)?
                && let Some(doc) = docs.get(&id)
            {
                let rows = index_rows(doc);
                store.reindex(&id, &rows)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
