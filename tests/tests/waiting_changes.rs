//! A change that reaches the real server before its dependency is kept,
//! asked for, merged and durable, on SQLite and on PostgreSQL.
//!
//! The Bloom-filter false positive that causes it in the field is forced:
//! among device actor ids tried in order, the first whose first offline
//! change the server's filter falsely claims makes the device send only its
//! second change.

use e2e_tests::{Database, ServerProcess};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sync_core::testing::{find_collision, visit_then_note};

/// Enough seeds to find a ~1 % event with near certainty.
const MAX_SEEDS: u64 = 10_000;

async fn metric(server: &ServerProcess, name: &str) -> f64 {
    test_support::metric(&server.base_url(), name).await
}

async fn a_change_ahead_of_its_dependency_is_kept(mut server: ServerProcess) {
    eprintln!("backend: {}", server.backend());
    let mut rng = StdRng::seed_from_u64(6);
    // The first phone creates the diary and uploads it.
    let mut first = server.device("cadre01", "phone-a").await;
    let (id, _) = first.create_diary(&mut rng);
    for _ in 0..3 {
        first.add_visit(&id, &mut rng);
    }
    first.sync().await;
    let base = first.docs[&id].clone();

    // A second phone of the same cadre holds exactly that and, offline,
    // records a visit and then a note on it; its actor id is chosen so that
    // the server's Bloom filter falsely claims the visit.
    let collision =
        find_collision(&base, MAX_SEEDS, visit_then_note).expect("a colliding device actor id");
    eprintln!(
        "collision: device actor seed {}, hidden {}, sent {}",
        collision.seed, collision.hidden, collision.sent
    );
    // A device id the server has no sync state for, so its filter covers
    // every change it has.
    let mut second = server.device("cadre01", "phone-b").await;
    second.docs.insert(id, collision.doc.clone());
    second.conn.add_document(id);
    second.sync().await;
    eprintln!("frames:\n{}", second.recent_frames());
    assert_eq!(second.docs[&id].get_heads(), vec![collision.sent]);
    assert!(
        metric(&server, "sync_changes_waiting_total").await >= 1.0,
        "the early change was stored while it waited"
    );
    assert_eq!(metric(&server, "sync_restarts_total").await, 0.0);

    // Both offline edits are stored: a fresh phone gets them, also after
    // the server was killed.
    server.kill_and_restart().await;
    let mut third = server.device("cadre01", "phone-c").await;
    third.request(id).await;
    assert_eq!(third.docs[&id].get_heads(), vec![collision.sent]);
    assert_eq!(third.visit_count(&id), 5, "four visits and the offline one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_ahead_of_its_dependency_is_kept_on_sqlite() {
    a_change_ahead_of_its_dependency_is_kept(ServerProcess::start_on(Database::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_ahead_of_its_dependency_is_kept_on_postgres() {
    let Some(database) = Database::postgres().await else {
        println!("note: TEST_DATABASE_URL is not set; skipping the PostgreSQL run");
        return;
    };
    a_change_ahead_of_its_dependency_is_kept(ServerProcess::start_on(database).await).await;
}

/// A peer that keeps claiming heads it never sends gets its sync of that
/// document restarted (empty heads: "start afresh") after a bounded number
/// of rounds, and the restart is counted; the connection does not spin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_without_progress_is_restarted_and_counted() {
    use sync_core::automerge::sync::{self, SyncDoc};
    use sync_core::protocol::{MAX_STALLED_ROUNDS, Message};

    let server = ServerProcess::start().await;
    let mut rng = StdRng::seed_from_u64(7);
    let mut phone = server.device("cadre01", "phone-a").await;
    let (id, _) = phone.create_diary(&mut rng);
    phone.sync().await;
    let mut claimed = phone.docs[&id].fork();
    visit_then_note(&mut claimed, 0);
    let stuck = claimed
        .generate_sync_message(&mut sync::State::new())
        .expect("a message");

    let mut other = server.device("cadre01", "phone-b").await;
    let mut heads_seen = Vec::new();
    for _ in 0..=MAX_STALLED_ROUNDS {
        other
            .send(&Message::Sync {
                document_id: id,
                sender_id: "phone-b".into(),
                target_id: "server".into(),
                data: stuck.clone().encode(),
            })
            .await;
        let reply = loop {
            if let tokio_tungstenite::tungstenite::Message::Binary(bytes) = other.next_frame().await
            {
                break Message::decode(&bytes).expect("decodes");
            }
        };
        let Message::Sync { data, .. } = reply else {
            panic!("expected sync, got {}", reply.summary());
        };
        heads_seen.push(sync::Message::decode(&data).expect("decodes").heads.len());
    }
    assert_eq!(
        heads_seen.last(),
        Some(&0),
        "the last answer restarts: {heads_seen:?}"
    );
    assert!(heads_seen[..heads_seen.len() - 1].iter().all(|h| *h == 1));
    assert_eq!(metric(&server, "sync_restarts_total").await, 1.0);
}
