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

use e2e_tests::{DEMO_PASSWORD, ServerProcess};
use mobile_ffi::{ClientConfig, DiaryClient, SyncReport};
use rand::SeedableRng;
use rand::rngs::StdRng;

mod fixtures;
use fixtures::{petition, visit};

/// "+1 visit" syncs measured per diary size.
const ROUNDS: usize = 30;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

struct Row {
    visits: usize,
    upload: SyncReport,
    upload_wall: Duration,
    upload_cpu: Duration,
    one_wall: Duration,
    one_cpu: Duration,
    one: SyncReport,
    idle_wall: Duration,
    idle_cpu: Duration,
    idle: SyncReport,
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
    client
        .login(username.to_owned(), DEMO_PASSWORD.to_owned())
        .await
        .expect("login");
    let first = client.sync_now(60_000).await;
    assert!(first.error.is_none(), "{first:?}");

    let mut rng = StdRng::seed_from_u64(2026);
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis(),
    )
    .expect("ms");
    let mut visit_ids = Vec::with_capacity(visits);
    for i in 0..visits {
        let at = now_ms - 600_000 * i64::try_from(visits - i).expect("count");
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

    let mut walls = Vec::with_capacity(ROUNDS);
    let mut one = None;
    let cpu = e2e_tests::cpu_time(pid);
    for _ in 0..ROUNDS {
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
    let one_cpu = (e2e_tests::cpu_time(pid) - cpu) / ROUNDS as u32;

    let mut idle_walls = Vec::with_capacity(ROUNDS);
    let mut idle = None;
    let cpu = e2e_tests::cpu_time(pid);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let report = client.sync_now(60_000).await;
        idle_walls.push(t.elapsed());
        assert!(report.error.is_none(), "{report:?}");
        idle = Some(report);
    }
    let idle_cpu = (e2e_tests::cpu_time(pid) - cpu) / ROUNDS as u32;
    Row {
        visits,
        upload,
        upload_wall,
        upload_cpu,
        one_wall: median(walls),
        one_cpu,
        one: one.expect("rounds"),
        idle_wall: median(idle_walls),
        idle_cpu,
        idle: idle.expect("rounds"),
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
         +1 visit: wall p50 / server CPU per sync | bytes up / down | \
         nothing new: wall p50 / server CPU | bytes up / down |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} visits, {} petitions | {} / {} ms | {} / {} | {} / {} ms | {} / {} | {} / {} ms | {} / {} |",
            r.visits,
            r.visits / 5,
            ms(r.upload_wall),
            ms(r.upload_cpu),
            r.upload.bytes_up,
            r.upload.bytes_down,
            ms(r.one_wall),
            ms(r.one_cpu),
            r.one.bytes_up,
            r.one.bytes_down,
            ms(r.idle_wall),
            ms(r.idle_cpu),
            r.idle.bytes_up,
            r.idle.bytes_down,
        );
    }
}
