//! A change that reaches the server before its dependency is never lost.
//!
//! The scenario is forced deterministically: a device starts from what the
//! server holds and makes two dependent visits offline; among device actor
//! ids tried in order, the first whose first visit falls in the server's
//! Bloom filter (so the device sends only the second) is used. Each test
//! runs against a server that keeps live documents and one that rebuilds
//! every document from its stored chunks for every message, as the real
//! server does.

use automerge::sync::{self, SyncDoc};
use automerge::{ActorId, Automerge};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::protocol::{
    Access, ClientConnection, MAX_STALLED_ROUNDS, Message, ServerStep, SyncStep,
};
use sync_core::testing::{Collision, Network, ServerMode, find_collision, visit_then_note};
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp, fixtures};

const NOW: Timestamp = Timestamp(1_795_400_000_000);
const DIARY: DocumentId = DocumentId::from_bytes([7; 16]);
/// Enough seeds to find a ~1 % event with near certainty.
const MAX_SEEDS: u64 = 10_000;

/// The diary the server holds: created on one phone with three visits.
fn shared_diary() -> Automerge {
    let edit = Edit::new("cadre01", NOW);
    let mut diary =
        DiaryDocument::create("cadre01", 2026, ActorId::from([1u8; 16]), &edit).expect("create");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..3 {
        diary
            .add_visit(&edit, &fixtures::visit(&mut rng, NOW, "cadre01"))
            .expect("visit");
    }
    diary.into_automerge()
}

fn collision() -> Collision {
    let c = find_collision(&shared_diary(), MAX_SEEDS, visit_then_note)
        .expect("a colliding device actor id");
    println!(
        "collision: device actor seed {}, hidden change {}, sent change {}",
        c.seed, c.hidden, c.sent
    );
    c
}

/// A network whose server holds the shared diary, and a second, fresh
/// device holding the colliding offline edits (not yet connected).
fn network(mode: ServerMode, collision: &Collision) -> (Network, usize) {
    let mut net = Network::with_mode(7, mode);
    let first = net.add_client("phone-a", |_| Access::ReadWrite);
    let second = net.add_client("phone-b", |_| Access::ReadWrite);
    net.clients[first].docs.insert(DIARY, shared_diary());
    net.connect(first);
    net.run_until_quiescent(50).expect("first phone uploads");
    net.disconnect(first);
    assert_eq!(
        net.server.docs[&DIARY].get_heads(),
        shared_diary().get_heads()
    );
    net.clients[second]
        .docs
        .insert(DIARY, collision.doc.clone());
    net.record_trace();
    (net, second)
}

fn assert_settled(net: &Network, device: usize, collision: &Collision) {
    assert!(net.client_is_synced(device), "device synced");
    let heads = net.clients[device].docs[&DIARY].get_heads();
    assert_eq!(heads, vec![collision.sent]);
    assert_eq!(
        net.server.docs[&DIARY].get_heads(),
        heads,
        "identical heads"
    );
    let server = DiaryDocument::from_automerge(net.server.docs[&DIARY].clone()).expect("diary");
    assert_eq!(server.visits().len(), 4, "both offline edits arrived");
}

fn settles(mode: ServerMode) {
    let collision = collision();
    let (mut net, device) = network(mode, &collision);
    net.connect(device);
    let result = net.run_until_quiescent(40);
    println!("trace ({mode:?}):\n{}", net.trace().join("\n"));
    let stats = result.expect("the sync settles");
    assert_settled(&net, device, &collision);
    assert_eq!(stats.waiting_changes, 1, "the early change was stored");
    assert_eq!(stats.restarts, 0);
    // The server asked for exactly the change the device held back.
    let hidden = &collision.hidden.to_string()[..8];
    assert!(
        net.trace()
            .iter()
            .any(|l| l.contains("<- server") && l.contains(&format!("need=[{hidden}]"))),
        "the server asks for the hidden change"
    );
}

#[test]
fn a_change_ahead_of_its_dependency_is_kept_by_a_live_server() {
    settles(ServerMode::Live);
}

#[test]
fn a_change_ahead_of_its_dependency_is_kept_by_a_reloading_server() {
    settles(ServerMode::Reload);
}

#[test]
fn the_collision_search_is_deterministic() {
    assert_eq!(collision().seed, collision().seed);
}

/// The server stores the early change, then the connection breaks (both
/// sides forget the connection, as after a restart); the next connection
/// completes the document.
#[test]
fn a_break_between_the_two_messages_loses_nothing() {
    let collision = collision();
    let (mut net, device) = network(ServerMode::Reload, &collision);
    net.connect(device);
    for _ in 0..40 {
        net.step();
        if net.stats().waiting_changes > 0 {
            break;
        }
    }
    assert_eq!(net.stats().waiting_changes, 1, "the early change arrived");
    net.disconnect(device);
    net.connect(device);
    net.run_until_quiescent(40).expect("the sync settles");
    assert_settled(&net, device, &collision);
}

/// Drives a client against a server that lost what the client sent (it
/// keeps nothing between messages): the client must send the change again
/// when the server says it needs it.
#[test]
fn the_client_resends_what_the_server_says_it_needs() {
    let base = shared_diary();
    let mut device = base.fork().with_actor(ActorId::from([3u8; 16]));
    visit_then_note(&mut device, 0);
    let new_change = device.get_heads();
    let (mut client, _join) = ClientConnection::new("phone", None);
    let mut docs = std::collections::BTreeMap::from([(DIARY, device)]);
    client.add_document(DIARY);
    let peer = Message::Peer {
        sender_id: "server".into(),
        target_id: "phone".into(),
        selected_protocol_version: "1".into(),
        metadata: None,
    };
    client.handle(peer, &mut docs).expect("handshake");

    let sync_msg = |data: Vec<u8>| Message::Sync {
        document_id: DIARY,
        sender_id: "server".into(),
        target_id: "phone".into(),
        data,
    };
    let changes_in = |messages: &[Message]| -> usize {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Sync { data, .. } | Message::Request { data, .. } => {
                    Some(sync::Message::decode(data).expect("decodes").changes.len())
                }
                _ => None,
            })
            .sum()
    };
    // Round 1: the server (holding the base) says what it has; the client
    // sends its new change.
    let first = client.poll(&docs);
    let mut server_state = sync::State::new();
    let mut server_doc = base.clone();
    for m in &first {
        if let Message::Sync { data, .. } | Message::Request { data, .. } = m {
            server_doc
                .receive_sync_message(&mut server_state, sync::Message::decode(data).expect("m"))
                .expect("receive");
        }
    }
    let answer = server_doc
        .generate_sync_message(&mut server_state)
        .expect("answer");
    client
        .handle(sync_msg(answer.encode()), &mut docs)
        .expect("answer handled");
    let sent = client.poll(&docs);
    assert_eq!(changes_in(&sent), 1, "the new change goes out");

    // The server loses it (its copy is thrown away) and, seeing the
    // client's heads, needs it.
    let mut lost = base.clone();
    let mut lost_state = server_state.clone();
    for m in &sent {
        if let Message::Sync { data, .. } = m {
            let mut m = sync::Message::decode(data).expect("m");
            m.changes = sync::ChunkList::empty();
            lost.receive_sync_message(&mut lost_state, m)
                .expect("receive");
        }
    }
    let need = lost
        .generate_sync_message(&mut lost_state)
        .expect("need message");
    assert_eq!(need.need, new_change, "the server needs the change");
    client
        .handle(sync_msg(need.encode()), &mut docs)
        .expect("need handled");
    let resent = client.poll(&docs);
    assert_eq!(changes_in(&resent), 1, "the client sends it again");
}

/// A peer that keeps answering without either side moving makes the server
/// restart that document's sync instead of answering forever.
#[test]
fn a_sync_without_progress_is_restarted() {
    let mut server = sync_core::testing::joined_server("server", "peer");
    let grant = |_: &DocumentId| Access::ReadWrite;
    let doc = shared_diary();
    // The peer claims heads the server does not have and never sends them.
    let mut claimed = doc.fork().with_actor(ActorId::from([4u8; 16]));
    visit_then_note(&mut claimed, 0);
    let stuck = claimed
        .generate_sync_message(&mut sync::State::new())
        .expect("message");
    let mut server_doc = doc.clone();
    let mut restarted_at = None;
    for round in 1..=MAX_STALLED_ROUNDS + 2 {
        let m = Message::Sync {
            document_id: DIARY,
            sender_id: "peer".into(),
            target_id: "server".into(),
            data: stuck.clone().encode(),
        };
        let ServerStep::Sync(SyncStep {
            message,
            is_request,
            ..
        }) = server.handle_with(m, &grant).expect("handled")
        else {
            panic!("expected a sync step");
        };
        let applied = server
            .apply(&DIARY, &mut server_doc, *message)
            .expect("apply");
        assert!(applied.chunk(&server_doc).is_none(), "nothing to store");
        let reply = server.reply(&DIARY, &server_doc, is_request);
        let message = reply.message.expect("the server keeps answering");
        if reply.restarted {
            let Message::Sync { data, .. } = message else {
                panic!("expected sync");
            };
            let m = sync::Message::decode(&data).expect("decodes");
            assert!(
                m.heads.is_empty(),
                "the restart asks the peer to start afresh"
            );
            restarted_at = Some(round);
            break;
        }
    }
    // The first answer sets the baseline; then MAX_STALLED_ROUNDS more.
    assert_eq!(restarted_at, Some(MAX_STALLED_ROUNDS + 1));
}

/// The server's messages advertise automerge's v2 sync messages like the
/// client's, so a peer may send a document the server lacks as one
/// document chunk (measured before it is merged, see `payload`), and the
/// sync still settles with waiting changes and restarts in play.
#[test]
fn the_server_advertises_capability_flags() {
    let collision = collision();
    let (mut net, device) = network(ServerMode::Reload, &collision);
    net.connect(device);
    net.run_until_quiescent(40).expect("settles");
    let down: Vec<&String> = net
        .trace()
        .iter()
        .filter(|l| l.contains("<- server  sync"))
        .collect();
    assert!(!down.is_empty());
    assert!(down.iter().all(|l| l.contains("flags")), "{down:?}");
    assert!(
        net.trace()
            .iter()
            .any(|l| l.contains("-> server  sync") && l.contains("flags"))
    );
    assert!(net.client_is_synced(device));
}
