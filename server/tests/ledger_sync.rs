//! The sync path writes ledger rows: a cadre's phone syncs a diary over a
//! real WebSocket, a supervisor sees the petition in `GET /api/v1/ledger`,
//! a later event changes its status, and `ledger rebuild` reproduces exactly
//! the rows the sync path wrote.

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use server::config::Config;
use server::ledger::LedgerQuery;
use sync_core::automerge::ActorId;
use sync_core::fixtures;
use sync_core::records::petition::PetitionEventKind;
use sync_core::{DiaryDocument, Edit, Timestamp};
use test_support::Device;

async fn login(addr: std::net::SocketAddr, username: &str) -> String {
    test_support::login(&format!("http://{addr}"), username, "demo-pass", "t").await
}

async fn ledger(addr: std::net::SocketAddr, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/ledger"))
        .bearer_auth(token)
        .send()
        .await
        .expect("ledger")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_petitions_reach_the_ledger_and_rebuild_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::for_tests(dir.path(), &[5; 32]);
    let store = server::open_store(&config).await.expect("open store");
    server::seed_demo(store.as_ref(), "demo-pass")
        .await
        .expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server::serve_with_store(
        config,
        store.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    // The phone records a visit and a petition offline, then syncs.
    let mut rng = StdRng::seed_from_u64(11);
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    let edit = Edit::new("cadre01", now);
    // This year's diary (China time), which a phone files a visit of now in.
    let year = now.china_date().expect("today").year();
    let id = sync_core::diary_id("cadre01", year);
    let mut diary =
        DiaryDocument::create_shared("cadre01", year, ActorId::random()).expect("create diary");
    let visit = diary
        .add_visit(&edit, &fixtures::visit(&mut rng, now, "cadre01"))
        .expect("visit");
    let petition = fixtures::petition(&mut rng, now, Some(visit));
    let pid = diary.add_petition(&edit, &petition).expect("petition");
    let cadre_token = login(addr, "cadre01").await;
    let mut phone = Device::connect(addr, &cadre_token, "phone").await;
    phone.docs.insert(id, diary.into_automerge());
    phone.conn.add_document(id);
    phone.sync().await;

    let supervisor = login(addr, "sup-town1").await;
    let listed = ledger(addr, &supervisor).await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], pid.to_string());
    assert_eq!(listed["items"][0]["status"], "open");
    assert_eq!(listed["items"][0]["unit_code"], "village1");
    let other_town = ledger(addr, &login(addr, "sup-town2").await).await;
    assert_eq!(other_town["total"], 0);

    // A later event, synced, changes the derived status.
    let mut diary =
        DiaryDocument::from_automerge(phone.docs.remove(&id).expect("doc")).expect("diary");
    let later = Timestamp::from_millis(now.millis() + 60_000);
    diary
        .record_petition_event(
            &Edit::new("cadre01", later),
            pid,
            fixtures::id(&mut rng),
            &PetitionEventKind::Resolved {
                note: "已协调解决".to_owned(),
            },
        )
        .expect("resolve");
    phone.docs.insert(id, diary.into_automerge());
    phone.sync().await;
    let listed = ledger(addr, &supervisor).await;
    assert_eq!(listed["items"][0]["status"], "resolved", "{listed}");
    assert_eq!(listed["items"][0]["event_count"], 2);

    // Rebuild gives the rows the sync path wrote.
    let query = LedgerQuery {
        limit: 1000,
        ..LedgerQuery::default()
    };
    let before = store.query_ledger(&query).await.expect("query");
    let summary = server::ledger::rebuild(store.as_ref(), |_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(summary.documents, 1);
    assert_eq!(summary.rows, 1 + 1 + 2);
    assert_eq!(store.query_ledger(&query).await.expect("query"), before);

    let _ = stop.send(());
    running.await.expect("join").expect("serve");
}
