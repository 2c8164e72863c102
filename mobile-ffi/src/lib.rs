//! The cadre's phone library: a local store, offline edits and reads, and a
//! background `sync_now()`, for Kotlin, Swift and Python through UniFFI.
//!
//! The app holds one [`DiaryClient`]. It never sees automerge, CBOR or
//! tokens: it sees visits, petitions and service cards, and one call that
//! syncs. sync-core does the documents and the protocol; this crate adds the
//! I/O (SQLite, HTTP, one WebSocket) and the FFI types, mirrored from
//! sync-core's with `From` so sync-core stays free of UniFFI.
//!
//! ```no_run
//! use mobile_ffi::{ClientConfig, DiaryClient};
//!
//! # async fn demo() -> Result<(), mobile_ffi::ClientError> {
//! let client = DiaryClient::open(ClientConfig {
//!     data_dir: "/data/user/0/app/files".into(),
//!     server_url: "http://127.0.0.1:8080".into(),
//!     device_id: "phone-1".into(),
//!     at_rest_key: None,
//! })?;
//! client.login("cadre01".into(), "demo-pass".into()).await?;
//! let report = client.sync_now(30_000).await;
//! assert!(report.error.is_none());
//! # Ok(()) }
//! ```

uniffi::setup_scaffolding!();

mod client;
mod clock;
mod config;
mod conflict;
mod core;
mod error;
mod me;
mod observer;
mod progress;
pub mod records;
mod report;
mod session;
mod store;
mod sync;
#[cfg(feature = "tls")]
mod tls;

pub use client::DiaryClient;
pub use config::ClientConfig;
pub use conflict::Conflict;
pub use error::ClientError;
pub use me::Me;
pub use observer::SyncObserver;
pub use progress::Progress;
pub use report::{SyncErrorKind, SyncReport, SyncStatus};
