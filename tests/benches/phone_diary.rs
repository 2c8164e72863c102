//! The phone library with a big diary, against a real server: how long a
//! cadre waits to see the visit list and search it, how much memory that
//! takes, what one recorded visit costs to store and to sync.
//!
//! ```sh
//! cargo build --release -p server
//! cargo bench -p e2e-tests --bench phone_diary
//! ```
//!
//! `PHONE_DIARY_AT_REST_KEY=<64 hex digits>` and `--features
//! mobile-ffi/encryption` measure an encrypted store.
//!
//! It logs in as the demo's `cadre01`, records 2,000 visits and 400
//! petitions offline, uploads them, then measures in fresh processes (so
//! resident memory is what opening the store costs, not what the recording
//! left behind). Results are printed as a Markdown table for
//! `docs/BENCHMARKS.md`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e_tests::{ServerProcess, median, ms};
use mobile_ffi::records::petition::PetitionQuery;
use mobile_ffi::records::visit::VisitQuery;
use mobile_ffi::{ClientConfig, DiaryClient};
use rand::SeedableRng;
use rand::rngs::StdRng;

mod fixtures;
use fixtures::{petition, visit};

const VISITS: usize = 2_000;
const PETITIONS: usize = 400;
/// Fresh processes measured; the median is reported.
const RUNS: usize = 7;
const SEARCHED: &str = "看病远";

/// With `PHONE_DIARY_AT_REST_KEY` (64 hex digits; needs
/// `--features mobile-ffi/encryption`) the store is encrypted.
fn config(dir: &Path, server_url: &str) -> ClientConfig {
    ClientConfig {
        data_dir: dir.to_string_lossy().into_owned(),
        server_url: server_url.to_owned(),
        device_id: "bench-phone".to_owned(),
        at_rest_key: std::env::var("PHONE_DIARY_AT_REST_KEY").ok(),
    }
}

/// One fresh process: open the store, read the first page of visits, search.
fn measure(dir: &Path) {
    let start = Instant::now();
    let client = DiaryClient::open(config(dir, "http://127.0.0.1:9")).expect("open");
    let opened = start.elapsed();
    let page = client
        .list_visits(VisitQuery {
            from_ms: None,
            until_ms: None,
            kind: None,
            text: None,
            include_deleted: false,
            limit: 20,
            offset: 0,
        })
        .expect("first page");
    let first_page = start.elapsed();
    assert_eq!(page.len(), 20);
    let start = Instant::now();
    let hits = client
        .list_visits(VisitQuery {
            from_ms: None,
            until_ms: None,
            kind: None,
            text: Some(SEARCHED.to_owned()),
            include_deleted: false,
            limit: 50,
            offset: 0,
        })
        .expect("search");
    let search = start.elapsed();
    assert!(!hits.is_empty());
    // A name nobody has: every row is read.
    let start = Instant::now();
    let none = client
        .list_visits(VisitQuery {
            from_ms: None,
            until_ms: None,
            kind: None,
            text: Some("欧阳修".to_owned()),
            include_deleted: false,
            limit: 50,
            offset: 0,
        })
        .expect("search");
    let search_all = start.elapsed();
    assert!(none.is_empty());
    let start = Instant::now();
    let petitions = client
        .list_petitions(PetitionQuery {
            from_ms: None,
            until_ms: None,
            category: None,
            status: None,
            overdue_only: false,
            text: None,
            limit: 20,
            offset: 0,
        })
        .expect("petitions");
    let petitions_page = start.elapsed();
    assert_eq!(petitions.len(), 20);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("0")
            .to_owned()
    };
    println!(
        "MEASURED {} {} {} {} {} {} {}",
        opened.as_micros(),
        first_page.as_micros(),
        search.as_micros(),
        search_all.as_micros(),
        petitions_page.as_micros(),
        kb("VmRSS:"),
        kb("VmHWM:")
    );
}

struct Measured {
    opened: Duration,
    first_page: Duration,
    search: Duration,
    search_all: Duration,
    petitions_page: Duration,
    rss_kb: u64,
    peak_kb: u64,
}

fn measure_in_child(dir: &Path) -> Measured {
    let out = Command::new(std::env::current_exe().expect("exe"))
        .arg("--measure")
        .arg(dir)
        .output()
        .expect("run the measuring process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("MEASURED "))
        .unwrap_or_else(|| {
            panic!(
                "measuring process failed:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let n: Vec<u64> = line
        .split_whitespace()
        .map(|x| x.parse().expect("number"))
        .collect();
    Measured {
        opened: Duration::from_micros(n[0]),
        first_page: Duration::from_micros(n[1]),
        search: Duration::from_micros(n[2]),
        search_all: Duration::from_micros(n[3]),
        petitions_page: Duration::from_micros(n[4]),
        rss_kb: n[5],
        peak_kb: n[6],
    }
}

/// WebSocket upgrades the server has answered, from its `/metrics`.
async fn sync_connections(server: &ServerProcess) -> u64 {
    let text = reqwest::get(format!("{}/metrics", server.base_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{") && l.contains("/sync"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn store_bytes(dir: &Path) -> u64 {
    ["diary.sqlite3", "diary.sqlite3-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        measure(Path::new(&args[i + 1]));
        return;
    }
    let server = ServerProcess::start().await;
    let phone = tempfile::tempdir().expect("phone directory");
    let client = DiaryClient::open(config(phone.path(), &server.base_url())).expect("open");
    e2e_tests::log_in_and_sync!(client, "cadre01");

    // Recording: one visit every ten minutes up to now (two weeks; run in
    // the first days of January, the oldest would go to last year's diary).
    let mut rng = StdRng::seed_from_u64(2026);
    let now_ms = e2e_tests::now_ms();
    let mut edit_times = Vec::with_capacity(VISITS + PETITIONS);
    let mut visit_ids = Vec::with_capacity(VISITS);
    for at in e2e_tests::ten_minutes_apart_until(now_ms, VISITS) {
        let v = visit(&mut rng, at);
        let t = Instant::now();
        visit_ids.push(client.add_visit(v).expect("add visit").id);
        edit_times.push(t.elapsed());
    }
    let bytes_before_last = store_bytes(phone.path());
    for i in 0..PETITIONS {
        let p = petition(&mut rng, visit_ids[i * 5].clone(), "2099-12-31");
        let t = Instant::now();
        client.raise_petition(p).expect("raise petition");
        edit_times.push(t.elapsed());
    }
    let per_petition_bytes = (store_bytes(phone.path()) - bytes_before_last) / PETITIONS as u64;
    let upload = client.sync_now(300_000).await;
    assert!(upload.error.is_none(), "{upload:?}");
    assert_eq!(upload.changes_pending, 0);
    drop(client);

    let runs: Vec<Measured> = (0..RUNS).map(|_| measure_in_child(phone.path())).collect();
    let med = |f: &dyn Fn(&Measured) -> Duration| median(runs.iter().map(f).collect());
    let rss = {
        let mut v: Vec<u64> = runs.iter().map(|m| m.rss_kb).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let peak = runs.iter().map(|m| m.peak_kb).max().unwrap_or(0);

    // One more visit, synced.
    let client = DiaryClient::open(config(phone.path(), &server.base_url())).expect("reopen");
    client
        .add_visit(visit(&mut rng, now_ms))
        .expect("one more visit");
    let connections_before = sync_connections(&server).await;
    let one = client.sync_now(60_000).await;
    let connections = sync_connections(&server).await - connections_before;
    assert!(one.error.is_none(), "{one:?}");

    let first_edits = median(edit_times[..100].to_vec());
    let last_edits = median(edit_times[VISITS - 100..VISITS].to_vec());
    let encrypted = std::env::var_os("PHONE_DIARY_AT_REST_KEY").is_some();
    println!(
        "\nlocal diary: {VISITS} visits + 25 from the demo, {PETITIONS} petitions{}",
        if encrypted { ", encrypted store" } else { "" }
    );
    println!(
        "store on disk: {:.1} MB",
        store_bytes(phone.path()) as f64 / 1e6
    );
    println!("\n| measure | median of {RUNS} fresh processes | target |");
    println!("|---|---:|---:|");
    println!("| open the store | {} ms | |", ms(med(&|m| m.opened)));
    println!(
        "| open + first page of visits (20) | {} ms | ≤ 100 ms |",
        ms(med(&|m| m.first_page))
    );
    println!(
        "| text search of visits ({SEARCHED}, first 50 hits) | {} ms | ≤ 50 ms |",
        ms(med(&|m| m.search))
    );
    println!(
        "| text search of visits with no hit (every row read) | {} ms | ≤ 50 ms |",
        ms(med(&|m| m.search_all))
    );
    println!(
        "| first page of petitions (20) | {} ms | |",
        ms(med(&|m| m.petitions_page))
    );
    println!(
        "| resident memory after these (VmRSS; peak VmHWM {:.1} MB) | {:.1} MB | ≤ 50 MB |",
        peak as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!("\n| recording offline | median |");
    println!("|---|---:|");
    println!(
        "| one visit, among the first 100 | {} ms |",
        ms(first_edits)
    );
    println!("| one visit, around the 2,000th | {} ms |", ms(last_edits));
    println!("| store file and journal growth per petition raised | {per_petition_bytes} bytes |");
    println!("\n| sync | connections | changes up / down | bytes up / down |");
    println!("|---|---:|---:|---:|");
    println!(
        "| first upload of the diary | | {} / {} | {} / {} |",
        upload.changes_up, upload.changes_down, upload.bytes_up, upload.bytes_down
    );
    println!(
        "| one new visit (target ≤ 2 KB, one connection) | {connections} | {} / {} | {} / {} |",
        one.changes_up, one.changes_down, one.bytes_up, one.bytes_down
    );
}
