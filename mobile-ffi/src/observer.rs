//! Telling the app that a sync changed what it shows.

/// Implemented by the app (Kotlin, Swift, Python). Called on a background
/// thread at the end of a sync that brought changes; keep it short and hop
/// to the UI thread yourself.
#[uniffi::export(with_foreign)]
pub trait SyncObserver: Send + Sync {
    /// These documents changed; lists showing their records should reload.
    fn documents_changed(&self, document_ids: Vec<String>);
}
