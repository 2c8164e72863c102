//! A flood of wrong logins against the real server: password checks are
//! bounded, so memory stays bounded, while the server keeps answering.
//!
//! The same flood runs against two servers in one test, one with the
//! default bound (4 checks at once) and one with the bound raised to the
//! flood's size (as if unbounded), and compares their peak memory.

use std::time::Instant;

use e2e_tests::{
    DEMO_PASSWORD, Database, MemoryGrowth, ServerProcess, assert_bound_keeps_memory_down,
};

/// Concurrent wrong logins in the flood.
const FLOOD: usize = 64;

struct Flood {
    /// Peak resident memory minus resident memory before, in MiB.
    growth_mib: f64,
    /// Answers by status.
    unauthorised: usize,
    busy: usize,
    seconds: f64,
}

async fn flood(checks: &str) -> Flood {
    let server = ServerProcess::start_with(
        Database::Sqlite,
        &[
            ("VISIT_DIARY_CONCURRENT_PASSWORD_CHECKS", checks),
            // Every guess comes from 127.0.0.1 under a new name: keep the
            // back-off out of the way, the bound on checks is under test.
            ("VISIT_DIARY_LOGIN_FREE_FAILURES_PER_ADDRESS", "100000"),
        ],
    )
    .await;
    // One real login first, so the steady state includes a finished check.
    server.login("cadre01", "warm-up").await;
    let memory = MemoryGrowth::start(server.pid());
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/auth/login", server.base_url());
    let started = Instant::now();
    let guesses = (0..FLOOD).map(|i| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            client
                .post(url)
                .json(&serde_json::json!({"username": format!("guess{i}"), "password": "wrong"}))
                .send()
                .await
                .expect("answer")
                .status()
                .as_u16()
        })
    });
    let mut statuses = Vec::new();
    for guess in guesses.collect::<Vec<_>>() {
        statuses.push(guess.await.expect("task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    let growth_mib = memory.mib();
    // Still serving: a cadre logs in right after the flood.
    test_support::login(&server.base_url(), "cadre01", DEMO_PASSWORD, "phone").await;
    Flood {
        growth_mib,
        unauthorised: statuses.iter().filter(|s| **s == 401).count(),
        busy: statuses.iter().filter(|s| **s == 503).count(),
        seconds,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_wrong_logins_keeps_memory_bounded() {
    let bounded = flood("4").await;
    let unbounded = flood(&FLOOD.to_string()).await;
    for (name, f) in [("bounded (4)", &bounded), ("unbounded", &unbounded)] {
        eprintln!(
            "{FLOOD} concurrent wrong logins, {name}: peak memory +{:.0} MiB, \
             {} answered 401, {} answered 503, in {:.1} s",
            f.growth_mib, f.unauthorised, f.busy, f.seconds
        );
        assert_eq!(
            f.unauthorised + f.busy,
            FLOOD,
            "every guess answered 401 or 503"
        );
    }
    assert_bound_keeps_memory_down(
        "the bound",
        "4 checks of 19 MiB at once",
        160.0,
        bounded.growth_mib,
        unbounded.growth_mib,
    );
}
