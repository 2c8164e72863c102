//! The document side of the WebSocket sync endpoint (`routes/v1/sync.rs`):
//! who may see which document, live documents held in memory and merged in
//! place off the async threads, and telling other connections that a document changed.
//!
//! The protocol itself is sync-core's sans-IO [`ServerConnection`]
//! (`sync_core::protocol`); this module carries out its effects against the
//! [`Store`](crate::store::Store).

pub mod access;
pub mod compactor;
pub mod documents;
pub mod hub;
pub mod live;
pub use sync_core::protocol::payload;

pub use access::decide_access;
pub use compactor::CompactionQueue;
pub use documents::{MergeError, MergeOutcome};
pub use hub::{ConnectionSlot, Crowded, DocumentChanged, OverBudget, SERVER_ORIGIN, SyncHub};
pub use live::{DocumentGuard, LiveDocument, LiveError, LiveLimits, store_write};
pub use payload::{PayloadError, PayloadLimits};
