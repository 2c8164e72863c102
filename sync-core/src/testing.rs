//! Test support (feature `testing`): an in-memory network that runs a server
//! and any number of clients until quiescent, with faults.

pub mod fixtures;
mod network;

pub use network::{Faults, Network, NetworkStats, SimClient, SimServer, Stalled};
