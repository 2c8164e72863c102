//! Test support shared by the server's integration tests and the
//! end-to-end suite, so there is one of each:
//! - [`Device`]: a phone built on sync-core's `ClientConnection` over a real
//!   WebSocket, which fails fast with the frames it saw when a sync does not
//!   settle;
//! - [`login`]: a password login that returns the access token;
//! - [`metric`]: a value of a running server's `/metrics`;
//! - [`store`] (feature `store`): fresh migrated stores on SQLite and on
//!   PostgreSQL (when [`TEST_DATABASE_URL`] is set), and the
//!   [`backends!`] macro that runs test cases on each;
//! - [`Served`] (feature `store`): `server::serve` in this process on a
//!   free port, with the demo organisation;
//! - [`Routed`] (feature `store`): `server::router` called in this process,
//!   without a socket, and the [`Answer`]s it gives.

mod device;
mod login;
mod metrics;
#[cfg(feature = "store")]
mod routed;
#[cfg(feature = "store")]
mod served;
#[cfg(feature = "store")]
pub mod store;

pub use device::{
    Device, EDIT_TIME, MAX_FRAMES_PER_SYNC, TokenIn, Ws, next_test_year, open_socket,
};
pub use login::{jwt_claims, login};
pub use metrics::metric;
#[cfg(feature = "store")]
pub use routed::{Answer, Routed};
#[cfg(feature = "store")]
pub use served::{DEMO_PASSWORD, Served};

/// The environment variable naming the PostgreSQL server the tests may use
/// (the role needs CREATEDB for the end-to-end suite).
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// The PostgreSQL URL to test against, if one is set.
pub fn test_database_url() -> Option<String> {
    std::env::var(TEST_DATABASE_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
}
