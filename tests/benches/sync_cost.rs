//! What one sync costs the server as a diary grows: a phone with a 500- and
//! a 2,000-visit diary records one more visit and syncs, over and over.
//!
//! ```sh
//! cargo build --release -p server
//! cargo bench -p e2e-tests --bench sync_cost
//! ```
//!
//! The server is the real binary (`target/release/server`, or
//! `E2E_SERVER_BIN`) on SQLite; the phone is the phone library. Server CPU is
//! the server process's user + system time (`/proc/<pid>/stat`) across the
//! syncs, divided by their number; wall time is the phone's `sync_now`.
//! Results are printed as a Markdown table for `docs/BENCHMARKS.md`.

use std::time::{Duration, Instant};

use e2e_tests::{ServerProcess, median, ms};
use mobile_ffi::{ClientConfig, DiaryClient, SyncReport};
use rand::SeedableRng;
use rand::rngs::StdRng;

mod fixtures;
use fixtures::{petition, visit};

/// "+1 visit" syncs measured per diary size: enough that the background
/// compactions they cause (each a save of the whole diary, once the chunks
/// since the last one hold half its size) are in the CPU per sync.
const VISIT_ROUNDS: usize = 200;
/// Syncs with nothing new measured per diary size.
const IDLE_ROUNDS: usize = 30;

struct Row {
    visits: usize,
    upload: SyncReport,
    upload_wall: Duration,
    upload_cpu: Duration,
    one_wall: Duration,
    one_wall_p99: Duration,
    one_cpu: Duration,
    one: SyncReport,
    idle_wall: Duration,
    idle_cpu: Duration,
    idle: SyncReport,
    /// Compactions the "+1 visit" rounds caused.
    compactions: u64,
}

/// Compactions the server has done (its `/metrics`).
async fn compactions(server: &ServerProcess) -> u64 {
    test_support::metric(
        &server.base_url(),
        "document_compactions_total{result=\"ok\"",
    )
    .await as u64
}

async fn measure(server: &ServerProcess, username: &str, visits: usize) -> Row {
    let phone = tempfile::tempdir().expect("phone directory");
    let client = DiaryClient::open(ClientConfig {
        data_dir: phone.path().to_string_lossy().into_owned(),
        server_url: server.base_url(),
        device_id: format!("bench-{username}"),
        at_rest_key: None,
    })
    .expect("open");
    e2e_tests::log_in_and_sync!(client, username);

    let mut rng = StdRng::seed_from_u64(2026);
    let now_ms = e2e_tests::now_ms();
    let mut visit_ids = Vec::with_capacity(visits);
    for at in e2e_tests::ten_minutes_apart_until(now_ms, visits) {
        visit_ids.push(client.add_visit(visit(&mut rng, at)).expect("add visit").id);
    }
    for id in visit_ids.iter().step_by(5) {
        client
            .raise_petition(petition(&mut rng, id.clone(), "2099-12-31"))
            .expect("raise petition");
    }
    let pid = server.pid();
    let (cpu, t) = (e2e_tests::cpu_time(pid), Instant::now());
    let upload = client.sync_now(600_000).await;
    let (upload_wall, upload_cpu) = (t.elapsed(), e2e_tests::cpu_time(pid) - cpu);
    assert!(upload.error.is_none(), "{upload:?}");
    assert_eq!(upload.changes_pending, 0);

    let mut walls = Vec::with_capacity(VISIT_ROUNDS);
    let mut one = None;
    let compacted = compactions(server).await;
    let cpu = e2e_tests::cpu_time(pid);
    for _ in 0..VISIT_ROUNDS {
        client
            .add_visit(visit(&mut rng, now_ms))
            .expect("one more visit");
        let t = Instant::now();
        let report = client.sync_now(60_000).await;
        walls.push(t.elapsed());
        assert!(report.error.is_none(), "{report:?}");
        assert_eq!(report.changes_pending, 0);
        one = Some(report);
    }
    // The last compaction asked for may still be running.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let one_cpu = (e2e_tests::cpu_time(pid) - cpu) / VISIT_ROUNDS as u32;
    let compactions = compactions(server).await - compacted;

    let mut idle_walls = Vec::with_capacity(IDLE_ROUNDS);
    let mut idle = None;
    let cpu = e2e_tests::cpu_time(pid);
    for _ in 0..IDLE_ROUNDS {
        let t = Instant::now();
        let report = client.sync_now(60_000).await;
        idle_walls.push(t.elapsed());
        assert!(report.error.is_none(), "{report:?}");
        idle = Some(report);
    }
    let idle_cpu = (e2e_tests::cpu_time(pid) - cpu) / IDLE_ROUNDS as u32;
    Row {
        visits,
        upload,
        upload_wall,
        upload_cpu,
        one_wall: median(walls.clone()),
        one_wall_p99: {
            walls.sort();
            e2e_tests::percentile(&walls, 99)
        },
        one_cpu,
        one: one.expect("rounds"),
        idle_wall: median(idle_walls),
        idle_cpu,
        idle: idle.expect("rounds"),
        compactions,
    }
}

#[tokio::main]
async fn main() {
    let server = ServerProcess::start().await;
    let mut rows = Vec::new();
    for (username, visits) in [("cadre01", 500), ("cadre02", 2_000)] {
        rows.push(measure(&server, username, visits).await);
    }
    println!("\nserver: {}", e2e_tests::server_binary().display());
    println!(
        "\n| diary | first upload: wall / server CPU | bytes up / down | \
         +1 visit: wall p50 / p99 / server CPU per sync | bytes up / down | compactions | \
         nothing new: wall p50 / server CPU | bytes up / down |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} visits, {} petitions | {} / {} ms | {} / {} | {} / {} / {} ms | {} / {} | {} in {VISIT_ROUNDS} | {} / {} ms | {} / {} |",
            r.visits,
            r.visits / 5,
            ms(r.upload_wall),
            ms(r.upload_cpu),
            r.upload.bytes_up,
            r.upload.bytes_down,
            ms(r.one_wall),
            ms(r.one_wall_p99),
            ms(r.one_cpu),
            r.one.bytes_up,
            r.one.bytes_down,
            r.compactions,
            ms(r.idle_wall),
            ms(r.idle_cpu),
            r.idle.bytes_up,
            r.idle.bytes_down,
        );
    }
}
