//! Bytes on the wire and round trips for the syncs a phone does, and the
//! saved size and load time of a year's diary. Run with
//! `cargo bench -p sync-core --bench sync_sizes`; the numbers go into
//! docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use automerge::ActorId;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::fixtures;
use sync_core::protocol::Access;
use sync_core::testing::{Network, NetworkStats};
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp};

const VISITS: usize = 1000;
const START: Timestamp = Timestamp(1_767_225_600_000); // 2026-01-01, Beijing

fn diary(rng: &mut ChaCha8Rng) -> DiaryDocument {
    // Roughly three visits a day, with a petition in every fifth.
    fixtures::diary(rng, "cadre01", ActorId::from([1u8; 16]), VISITS, START)
}

fn row(name: &str, s: NetworkStats) {
    // A round trip is a frame up and its answer down: two waves.
    println!(
        "| {name} | {} | {} | {} | {} | {} |",
        s.bytes_up,
        s.bytes_down,
        s.bytes_up + s.bytes_down,
        s.frames_up + s.frames_down,
        s.waves.div_ceil(2)
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let id = DocumentId::from_bytes([42; 16]);
    let mut d = diary(&mut rng);

    println!(
        "Diary of {VISITS} visits and {} petitions.\n",
        d.petitions().len()
    );
    println!(
        "| sync | bytes up | bytes down | total bytes | frames | round trips (incl. handshake) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");

    // (a) First sync: the phone uploads a diary the server has never seen.
    let mut net = Network::new(1);
    let phone = net.add_client("phone", |_| Access::ReadWrite);
    net.clients[phone].docs.insert(id, d.automerge().clone());
    net.connect(phone);
    row(
        "(a) first sync, phone → empty server",
        net.run_until_quiescent(100).expect("sync"),
    );
    net.disconnect(phone);

    // (a') Reinstalled phone: downloads the whole diary.
    let fresh = net.add_client("new-phone", |_| Access::ReadWrite);
    net.clients[fresh].wanted.insert(id);
    net.reset_stats();
    net.connect(fresh);
    row(
        "(a') first sync, empty phone ← server",
        net.run_until_quiescent(100).expect("sync"),
    );
    net.disconnect(fresh);

    // (b) One new visit, next time the phone has signal. The phone and the
    // server kept their sync states from the last connection.
    let before_new_visit = d.automerge().clone();
    let at = Timestamp(START.0 + VISITS as i64 * 8 * 3_600_000);
    let new_visit = fixtures::visit(&mut rng, at, "cadre01");
    d.add_visit(&Edit::new("cadre01", at), &new_visit)
        .expect("visit");
    let change = d
        .automerge()
        .get_last_local_change()
        .map_or(0, |c| c.raw_bytes().len());
    net.clients[phone].docs.insert(id, d.automerge().clone());
    net.reset_stats();
    net.connect(phone);
    row(
        "(b) one new visit, sync states kept",
        net.run_until_quiescent(100).expect("sync"),
    );
    net.disconnect(phone);

    // (b') The same without kept sync states (e.g. the phone lost them).
    let mut cold = Network::new(2);
    let p = cold.add_client("phone", |_| Access::ReadWrite);
    cold.server.docs.insert(id, before_new_visit);
    cold.clients[p].docs.insert(id, d.automerge().clone());
    cold.connect(p);
    row(
        "(b') one new visit, no kept sync states",
        cold.run_until_quiescent(100).expect("sync"),
    );

    println!(
        "\nThe new visit's automerge change alone is {change} bytes; the handshake (join + peer) is one of the round trips."
    );

    // (c) save() size and load time.
    let bytes = d.save();
    let mut loads = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let loaded = DiaryDocument::load(&bytes, ActorId::from([3u8; 16])).expect("load");
        loads.push(t.elapsed());
        assert_eq!(loaded.visits().len(), VISITS + 1);
    }
    let mut reads = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        let n = d.visits().len() + d.petitions().len();
        reads.push(t.elapsed());
        assert!(n > VISITS);
    }
    println!();
    println!("| document | value |");
    println!("|---|---:|");
    println!(
        "| (c) save() size, {} visits | {} bytes ({:.1} KiB) |",
        VISITS + 1,
        bytes.len(),
        bytes.len() as f64 / 1024.0
    );
    println!(
        "| (c) load() time, median of 15 | {:.1} ms |",
        median(loads).as_secs_f64() * 1e3
    );
    println!(
        "| typed read of every visit and petition, median of 15 | {:.1} ms |",
        median(reads).as_secs_f64() * 1e3
    );
}
