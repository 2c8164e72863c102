//! The phone library asks, in the sync's handshake, for the cadre's
//! documents with the heads the server stored, and leaves out those whose
//! heads it already has. Against the real server binary, on SQLite and on
//! PostgreSQL: a phone with nothing stored gets its documents from the
//! listing; a sync with nothing new is the handshake alone; a change made
//! elsewhere (another phone, a supervisor through the API) still reaches
//! the phone at its next sync.

use std::sync::Arc;

use e2e_tests::{DEMO_PASSWORD, Database, ServerProcess, now_ms};
use mobile_ffi::records::visit::VisitQuery;
use mobile_ffi::{ClientConfig, DiaryClient, SyncReport};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

/// The most a sync with nothing new may take each way: the `join` and the
/// `peer` with two listed documents (the storm target).
const NOTHING_NEW_BYTES: u64 = 300;

async fn phone(server: &ServerProcess, dir: &tempfile::TempDir, device: &str) -> Arc<DiaryClient> {
    let phone = DiaryClient::open(ClientConfig {
        data_dir: dir.path().to_string_lossy().into_owned(),
        server_url: server.base_url(),
        device_id: device.to_owned(),
        at_rest_key: None,
    })
    .expect("open");
    phone
        .login("cadre01".to_owned(), DEMO_PASSWORD.to_owned())
        .await
        .expect("login");
    phone
}

async fn sync(phone: &DiaryClient) -> SyncReport {
    let report = phone.sync_now(30_000).await;
    assert!(report.error.is_none(), "sync failed: {report:?}");
    report
}

fn assert_nothing_new(report: &SyncReport) {
    assert_eq!(
        (report.changes_up, report.changes_down),
        (0, 0),
        "{report:?}"
    );
    assert_eq!(report.documents_synced, 2, "diary and contacts: {report:?}");
    assert!(
        report.bytes_up <= NOTHING_NEW_BYTES && report.bytes_down <= NOTHING_NEW_BYTES,
        "a sync with nothing new took {} B up and {} B down",
        report.bytes_up,
        report.bytes_down
    );
}

async fn changes_elsewhere_reach_a_phone_that_leaves_out_what_it_has(server: ServerProcess) {
    eprintln!("backend: {}", server.backend());
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().expect("dir")).collect();
    let a = phone(&server, &dirs[0], "listing-phone-a").await;

    // Nothing stored on the phone: the listing names the demo's documents.
    let first = sync(&a).await;
    assert_eq!(first.documents_synced, 2, "{first:?}");
    assert!(first.changes_down > 0, "{first:?}");
    let demo_visits = a
        .list_visits(VisitQuery {
            from_ms: None,
            until_ms: None,
            kind: None,
            text: None,
            include_deleted: false,
            limit: 10_000,
            offset: 0,
        })
        .expect("visits")
        .len();
    assert!(demo_visits > 0, "the demo diary arrived");

    assert_nothing_new(&sync(&a).await);

    // Another phone of the same cadre records a visit and raises a
    // petition from it.
    let b = phone(&server, &dirs[1], "listing-phone-b").await;
    sync(&b).await;
    let mut rng = StdRng::seed_from_u64(8);
    let recorded = b
        .add_visit(fixtures::visit(&mut rng, now_ms()))
        .expect("record");
    let petition = b
        .raise_petition(fixtures::petition(
            &mut rng,
            recorded.id.clone(),
            "2099-12-31",
        ))
        .expect("raise a petition");
    sync(&b).await;
    let got = sync(&a).await;
    assert!(got.changes_down >= 2, "{got:?}");
    a.visit(recorded.id.clone())
        .expect("the other phone's visit reached this one");
    a.petition(petition.id.clone()).expect("and its petition");

    // A supervisor acts on the petition through the API: a write the
    // server makes itself.
    let supervisor = server.login("sup-town1", "desk").await;
    let (status, body) = server
        .post_json(
            &format!("/api/v1/petitions/{}/supervise", petition.id),
            &supervisor,
            &json!({"note": "请本周内回复群众。"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = sync(&a).await;
    assert!(got.changes_down >= 1, "{got:?}");
    let history = a.petition_history(petition.id.clone()).expect("history");
    assert!(
        history
            .iter()
            .any(|e| e.kind == "supervised" && e.by == "sup-town1"),
        "the supervisor's note reached the phone: {history:?}"
    );

    assert_nothing_new(&sync(&a).await);
    // The other phone's next sync brings the supervisor's note; the one
    // after has nothing new.
    let got = sync(&b).await;
    assert!(got.changes_down >= 1, "{got:?}");
    assert_nothing_new(&sync(&b).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_elsewhere_reach_a_listing_phone_on_sqlite() {
    changes_elsewhere_reach_a_phone_that_leaves_out_what_it_has(
        ServerProcess::start_on(Database::Sqlite).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_elsewhere_reach_a_listing_phone_on_postgres() {
    let Some(database) = Database::postgres().await else {
        println!("note: TEST_DATABASE_URL is not set; skipping the PostgreSQL run");
        return;
    };
    changes_elsewhere_reach_a_phone_that_leaves_out_what_it_has(
        ServerProcess::start_on(database).await,
    )
    .await;
}
