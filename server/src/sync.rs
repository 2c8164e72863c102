//! The server's side of the WebSocket sync endpoint, whose socket loop is
//! `routes/v1/sync.rs`: each connection's session (admit, merge, persist,
//! reply), who may see which document, live documents held in memory and
//! merged in place off the async threads, and telling other connections
//! that a document changed.
//!
//! The protocol itself is sync-core's sans-IO
//! [`ServerConnection`](sync_core::protocol::ServerConnection); the
//! [`session`] carries out its effects against the
//! [`Store`](crate::store::Store).

pub mod access;
pub mod compactor;
pub mod documents;
pub mod hub;
pub mod live;
pub mod session;
pub use sync_core::protocol::payload;

pub use access::decide_access;
pub use compactor::CompactionQueue;
pub use documents::{MergeError, MergeOutcome};
pub use hub::{ConnectionSlot, Crowded, DocumentChanged, OverBudget, SERVER_ORIGIN, SyncHub};
pub use live::{DocumentGuard, LiveDocument, LiveError, LiveLimits, store_write};
pub use payload::{PayloadError, PayloadLimits};
