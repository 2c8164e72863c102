//! Test support (feature `testing`): an in-memory network that runs a server
//! and any number of clients until quiescent, with faults.

mod network;

pub use network::{Faults, Network, NetworkStats, SimClient, SimServer, Stalled};
