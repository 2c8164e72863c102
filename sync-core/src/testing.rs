//! Test support (feature `testing`): an in-memory network that runs a server
//! and any number of clients until quiescent, with faults; and a search for
//! the Bloom-filter false positive that makes a device send a change
//! without its dependency.

mod bloom;
mod network;

pub use bloom::{Collision, actor as collision_actor, find_collision, visit_then_note};
pub use network::{Faults, Network, NetworkStats, ServerMode, SimClient, SimServer, Stalled};
