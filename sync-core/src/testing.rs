//! Test support (feature `testing`): an in-memory network that runs a server
//! and any number of clients until quiescent, with faults; a search for
//! the Bloom-filter false positive that makes a device send a change
//! without its dependency; hand-built storage chunks ([`chunks`]) for
//! tests of hostile input; and [`joined_server`], a server connection past
//! the handshake.

mod bloom;
pub mod chunks;
mod network;

pub use bloom::{Collision, actor as collision_actor, find_collision, visit_then_note};
pub use network::{Faults, Network, NetworkStats, ServerMode, SimClient, SimServer, Stalled};

use crate::protocol::{Message, PROTOCOL_VERSION, ServerConnection};

/// A server connection announced as `server_id` that has taken the `join`
/// of client `client_id`, so its next message can be a sync.
pub fn joined_server(server_id: &str, client_id: &str) -> ServerConnection {
    let mut server = ServerConnection::new(server_id);
    let join = Message::Join {
        sender_id: client_id.to_owned(),
        supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
        metadata: None,
    };
    server.handle(join).expect("a join is answered");
    server
}
