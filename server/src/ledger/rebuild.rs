//! `server ledger rebuild`: project every stored document again.
//!
//! Safe while servers run: each document's rows are replaced in one
//! transaction that first checks the document has not been written since it
//! was loaded (`updated_at`); if it has, the document is loaded and projected
//! again, so a rebuild never overwrites newer rows with older ones.

use sync_core::automerge::{self, Automerge};

use super::{Attribution, LedgerProjection};
use crate::store::{Store, StoreError, StoredDocument};

/// How often one document is retried when syncs keep writing to it.
const ATTEMPTS: usize = 5;

/// Why a rebuild stopped.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The database refused.
    #[error("ledger rebuild failed")]
    Store(#[from] StoreError),
    /// A stored document does not load: the database holds damaged bytes.
    #[error("stored document {document} does not load")]
    Load {
        /// The document id.
        document: String,
        /// What automerge said.
        #[source]
        source: Box<automerge::AutomergeError>,
    },
    /// A document kept changing while it was rebuilt.
    #[error("document {0} kept changing; run the rebuild again")]
    Busy(String),
    /// The projection task panicked.
    #[error("projection task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildSummary {
    /// Documents visited.
    pub documents: usize,
    /// Of those, documents that are not diaries or contacts of a known schema
    /// (stored, but without ledger rows).
    pub unprojectable: usize,
    /// Ledger rows written.
    pub rows: usize,
}

/// Rebuilds the ledger rows of every stored document. `progress(done, total)`
/// is called after each document.
pub async fn rebuild(
    store: &dyn Store,
    mut progress: impl FnMut(usize, usize),
) -> Result<RebuildSummary, RebuildError> {
    let unit_ids: Vec<i64> = store.list_units().await?.iter().map(|u| u.id).collect();
    let documents = store.list_documents_in_units(&unit_ids).await?;
    let total = documents.len();
    let mut summary = RebuildSummary::default();
    for (done, meta) in documents.iter().enumerate() {
        let id = meta.id;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(stored) = store.load_document(&id).await? else {
                break; // deleted meanwhile
            };
            // Read after the document: a write in between changes
            // `updated_at`, and the replace below then retries.
            let attribution = Attribution::from_rows(&store.document_actors(&id).await?);
            let name = id.to_string();
            let updated_at = stored.meta.updated_at;
            let projected =
                tokio::task::spawn_blocking(move || project_stored(&name, &stored, &attribution))
                    .await??;
            let (ledger, ok) = match projected {
                Some(ledger) => (ledger, true),
                None => (LedgerProjection::default(), false),
            };
            match store.replace_ledger(&id, &ledger, updated_at).await {
                Ok(()) => {
                    summary.rows += ledger.len();
                    summary.unprojectable += usize::from(!ok);
                    break;
                }
                Err(StoreError::Conflict(_)) if attempt < ATTEMPTS => continue,
                Err(StoreError::Conflict(_)) => return Err(RebuildError::Busy(id.to_string())),
                Err(StoreError::NotFound) => break,
                Err(e) => return Err(e.into()),
            }
        }
        summary.documents += 1;
        progress(done + 1, total);
    }
    Ok(summary)
}

/// Loads a stored document and projects it; `None` if it has no projection.
fn project_stored(
    id: &str,
    stored: &StoredDocument,
    attribution: &Attribution,
) -> Result<Option<LedgerProjection>, RebuildError> {
    let load_err = |source| RebuildError::Load {
        document: id.to_owned(),
        source: Box::new(source),
    };
    let mut doc = match &stored.snapshot {
        Some(snapshot) => Automerge::load(snapshot).map_err(load_err)?,
        None => Automerge::new(),
    };
    for chunk in &stored.chunks {
        doc.load_incremental(&chunk.data).map_err(load_err)?;
    }
    Ok(LedgerProjection::of_document(&doc, attribution).ok())
}
