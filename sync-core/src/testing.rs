//! Test support (feature `testing`): an in-memory network that runs a server
//! and any number of clients until quiescent, with faults; a search for
//! the Bloom-filter false positive that makes a device send a change
//! without its dependency; and hand-built storage chunks ([`chunks`]) for
//! tests of hostile input.

mod bloom;
pub mod chunks;
mod network;

pub use bloom::{Collision, actor as collision_actor, find_collision, visit_then_note};
pub use network::{Faults, Network, NetworkStats, ServerMode, SimClient, SimServer, Stalled};
