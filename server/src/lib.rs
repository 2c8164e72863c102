//! The visit diary server: HTTP API, identity, and the document store.
//!
//! Cadres' phones sync automerge documents (diaries, service cards) with this
//! server; supervisors read the ledger projected from them. This crate holds
//! the parts every route needs:
//!
//! - [`config`]: defaults → TOML file → environment (env wins).
//! - [`store`]: the [`Store`] trait, SQLite (default) and
//!   PostgreSQL backends picked by the database URL, per-backend migrations.
//! - [`auth`]: argon2id passwords, HS256 access tokens, rotating refresh
//!   tokens, and the [`AuthUser`](auth::AuthUser) extractor.
//! - [`app`]: [`AppState`] and the one [`router`]
//!   listing every route; handlers live in `routes/`, named after their URL.
//! - [`sync`]: the server's side of `GET /api/v1/sync` (each connection's
//!   session, access per document, merging off the async threads, the
//!   in-process change feed); the WebSocket loop is in `routes/v1/sync.rs`.
//! - [`serve()`]: run until a shutdown future completes.
//!
//! # Example
//!
//! Start a server on a free port with SQLite in a temporary directory, ask
//! it whether it is healthy, and shut it down:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let dir = tempfile::tempdir()?;
//! let config = server::config::Config::for_tests(dir.path(), &[42; 32]);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(server::serve(config, listener, async {
//!     let _ = stopped.await;
//! }));
//!
//! let mut socket = tokio::net::TcpStream::connect(addr).await?;
//! socket
//!     .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
//!     .await?;
//! let mut answer = String::new();
//! socket.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 200"));
//! assert!(answer.ends_with("ok"));
//!
//! let _ = stop.send(());
//! running.await??;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod backup;
pub mod config;
pub mod demo;
pub mod error;
pub mod exports;
pub mod extract;
pub mod ledger;
pub mod metrics;
pub mod personal;
pub mod petitions;
pub mod routes;
pub mod scope;
pub mod secret;
mod serve;
pub mod shutdown;
pub mod stats;
pub mod store;
pub mod sync;
pub mod web;

pub use app::{AppState, router};
pub use config::Config;
pub use demo::seed_demo;
pub use error::AppError;
pub use serve::{SHUTDOWN_GRACE, ServeError, open_store, serve, serve_with_store};
pub use store::{Store, StoreError};
