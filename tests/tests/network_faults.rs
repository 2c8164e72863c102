//! Two phones (the real phone library) syncing through a faulty link on
//! loopback: a proxy between them and the real server cuts connections
//! after a random number of bytes (mid-frame), delays every chunk, or
//! stalls for a while. Each phone records visits offline and calls
//! `sync_now` with a short deadline, over and over; then, on a clean link,
//! both phones and the server hold every visit and nothing is duplicated.
//!
//! Duplicated and reordered messages cannot cross a TCP stream; sync-core's
//! in-memory network tests inject those at the message level.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::{DEMO_PASSWORD, ServerProcess, now_ms};
use mobile_ffi::records::visit::{NewVisit, SixAnswers, SubjectKind, VisitKind, VisitQuery};
use mobile_ffi::{ClientConfig, DiaryClient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Rounds of offline recording and syncing through the faulty link.
const ROUNDS: usize = 12;

/// What the proxy does to one connection.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Forward faithfully.
    Clean,
    /// Close both sides after this many bytes in total (mid-frame, mostly).
    CutAfter(usize),
    /// Hold every chunk this long.
    Delay(Duration),
    /// Forward nothing for this long after the first chunk, then go on.
    Stall(Duration),
}

fn pick(rng: &mut StdRng) -> Fault {
    match rng.random_range(0..4) {
        0 => Fault::Clean,
        1 => Fault::CutAfter(rng.random_range(50..6_000)),
        2 => Fault::Delay(Duration::from_millis(rng.random_range(5..60))),
        _ => Fault::Stall(Duration::from_millis(rng.random_range(200..1_500))),
    }
}

/// Copies `from` to `to` under `fault`; `budget` counts bytes left before a
/// cut, shared by both directions of the connection.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    fault: Fault,
    budget: Arc<std::sync::atomic::AtomicIsize>,
) {
    use std::sync::atomic::Ordering;
    let mut buf = vec![0u8; 4096];
    let mut stalled = false;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buf[..n];
        match fault {
            Fault::Clean => {}
            Fault::CutAfter(_) => {
                let left = budget.fetch_sub(n as isize, Ordering::SeqCst);
                if left <= n as isize {
                    let keep = usize::try_from(left.max(0)).unwrap_or(0);
                    chunk = &chunk[..keep];
                    let _ = to.write_all(chunk).await;
                    break;
                }
            }
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::Stall(d) if !stalled => {
                stalled = true;
                tokio::time::sleep(d).await;
            }
            Fault::Stall(_) => {}
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A faulty link to `upstream`; returns its address. Connections get faults
/// drawn from `seed`, until `faults` is switched off.
async fn faulty_proxy(
    upstream: SocketAddr,
    seed: u64,
    faults: Arc<std::sync::atomic::AtomicBool>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(seed);
        while let Ok((client, _)) = listener.accept().await {
            let fault = if faults.load(std::sync::atomic::Ordering::SeqCst) {
                pick(&mut rng)
            } else {
                Fault::Clean
            };
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            let budget = Arc::new(std::sync::atomic::AtomicIsize::new(match fault {
                Fault::CutAfter(n) => n as isize,
                _ => isize::MAX,
            }));
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pump(client_read, server_write, fault, Arc::clone(&budget)));
            tokio::spawn(pump(server_read, client_write, fault, budget));
        }
    });
    addr
}

fn visit(place: &str, name: &str) -> NewVisit {
    NewVisit {
        kind: VisitKind::HomeVisit,
        // Now: this year's diary, which the demo seeded (the server's
        // clock is this one).
        at_ms: now_ms(),
        place: place.to_owned(),
        subject_kind: SubjectKind::Household,
        subject_name: name.to_owned(),
        subject_address: None,
        tags: vec![],
        participants: vec![],
        answers: SixAnswers {
            difficulties: "村里到镇上的路在雨季常被冲断，看病买药都不方便。".to_owned(),
            ..SixAnswers::default()
        },
        notes: "断网环境下记录。".to_owned(),
        latitude: None,
        longitude: None,
        aid_money_fen: 0,
        aid_goods: String::new(),
        resolved_on_spot: vec![],
    }
}

fn all_visits() -> VisitQuery {
    VisitQuery {
        from_ms: None,
        until_ms: None,
        kind: None,
        text: None,
        include_deleted: false,
        limit: 10_000,
        offset: 0,
    }
}

fn visit_ids(phone: &DiaryClient) -> BTreeSet<String> {
    phone
        .list_visits(all_visits())
        .expect("list")
        .into_iter()
        .map(|v| v.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_behind_a_faulty_link_converge_with_nothing_lost() {
    let server = ServerProcess::start().await;
    let faults = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let link = faulty_proxy(server.addr(), 7, Arc::clone(&faults)).await;
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let phones: Vec<Arc<DiaryClient>> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            DiaryClient::open(ClientConfig {
                data_dir: dir.path().to_string_lossy().into_owned(),
                server_url: format!("http://{link}"),
                device_id: format!("faulty-phone-{i}"),
                at_rest_key: None,
            })
            .expect("open")
        })
        .collect();
    for phone in &phones {
        // The login itself may be cut: try until it goes through.
        let mut tries = 0;
        while phone
            .login("cadre01".to_owned(), DEMO_PASSWORD.to_owned())
            .await
            .is_err()
        {
            tries += 1;
            assert!(tries < 50, "no login got through the faulty link");
        }
    }

    let mut recorded = BTreeSet::new();
    let (mut failed, mut succeeded) = (0, 0);
    for round in 0..ROUNDS {
        for (i, phone) in phones.iter().enumerate() {
            let v = phone
                .add_visit(visit(
                    &format!("石桥村{round}组"),
                    &format!("住户{round}-{i}"),
                ))
                .expect("record offline");
            recorded.insert(v.id);
            let report = phone.sync_now(2_000).await;
            if report.error.is_some() {
                failed += 1;
            } else {
                succeeded += 1;
            }
        }
    }

    // The link heals: every phone syncs until it reports success.
    faults.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..3 {
        for phone in &phones {
            let report = phone.sync_now(30_000).await;
            assert!(report.error.is_none(), "clean sync failed: {report:?}");
        }
    }
    eprintln!(
        "{} syncs through the faulty link: {failed} cut short, {succeeded} completed; {} visits",
        failed + succeeded,
        recorded.len()
    );
    assert!(failed > 0, "the link injected no fault that mattered");
    for (i, phone) in phones.iter().enumerate() {
        let ids = visit_ids(phone);
        let missing: Vec<_> = recorded.difference(&ids).collect();
        assert!(missing.is_empty(), "phone {i} lacks {missing:?}");
        assert_eq!(phone.sync_status().expect("status").pending_changes, 0);
    }
    // And the server: a fresh phone on a clean link gets them all, once.
    let fresh_dir = tempfile::tempdir().expect("dir");
    let fresh = DiaryClient::open(ClientConfig {
        data_dir: fresh_dir.path().to_string_lossy().into_owned(),
        server_url: server.base_url(),
        device_id: "fresh-phone".to_owned(),
        at_rest_key: None,
    })
    .expect("open");
    fresh
        .login("cadre01".to_owned(), DEMO_PASSWORD.to_owned())
        .await
        .expect("login");
    assert!(fresh.sync_now(30_000).await.error.is_none());
    let on_server = fresh.list_visits(all_visits()).expect("list");
    let ids: BTreeSet<String> = on_server.iter().map(|v| v.id.clone()).collect();
    assert_eq!(ids.len(), on_server.len(), "no visit twice");
    assert!(recorded.is_subset(&ids), "the server has every visit");
}
