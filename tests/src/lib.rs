//! End-to-end tests: real `server` processes, real clients, real sockets.
//!
//! This library is the harness; the suites are in `tests/`:
//! - [`ServerProcess`] runs the `server` binary (`serve --demo` on a free
//!   port, in a temporary data directory) and kills it when dropped; it runs
//!   on SQLite, or on a fresh PostgreSQL database of its own when
//!   `TEST_DATABASE_URL` is set (the role needs CREATEDB);
//! - [`Device`] (from `test-support`, shared with the server's own tests) is
//!   a logged-in client: sync-core's `ClientConnection` over a
//!   `tokio-tungstenite` WebSocket, holding its documents in memory;
//! - [`tokens`] crafts access tokens the server must refuse;
//! - [`run_node`] runs one of the Node.js scripts and reads the JSON it
//!   prints;
//! - [`ReferenceServer`] runs the official JS sync server, which the
//!   benchmarks measure ours against.
//!
//! The server binary is found next to the test executable (`target/debug/
//! server`). `cargo test --workspace` builds it (the server package's own
//! tests need it); before `cargo test -p e2e-tests` alone, run
//! `cargo build -p server`. `E2E_SERVER_BIN` overrides the path.
//!
//! ```no_run
//! # async fn example() {
//! let server = e2e_tests::ServerProcess::start().await;
//! let mut phone = server.device("cadre01", "phone").await;
//! # }
//! ```

mod clock;
mod database;
mod memory;
mod node;
mod phone;
mod reference;
mod server_process;
mod stats;
pub mod tokens;

pub use clock::{now_ms, ten_minutes_apart_until};
pub use database::Database;
pub use memory::{MemoryGrowth, assert_bound_keeps_memory_down};
pub use node::run_node;
pub use reference::ReferenceServer;
pub use server_process::{
    Launch, ServerProcess, cpu_time, reset_peak_rss, server_binary, status_kib, try_reset_peak_rss,
    try_status_kib,
};
pub use stats::{median, ms, percentile};
pub use test_support::{Device, EDIT_TIME, TEST_DATABASE_URL, TokenIn, Ws, open_socket};

/// Password of every demo account.
pub const DEMO_PASSWORD: &str = "demo-pass";
