//! A supervisor acts on a petition through the API while its cadre works on
//! it offline; after the phone's next sync every fact is in the phone's
//! diary, in the stored document and in the ledger, each attributed to
//! whoever did it. Against the real server binary, on SQLite and on
//! PostgreSQL.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use sync_core::automerge::Automerge;
use sync_core::records::petition::{PetitionEventKind, PetitionStatus};
use sync_core::{DiaryDocument, DocumentId, Edit, RecordId, Timestamp};

use e2e_tests::{Database, Device, EDIT_TIME, ServerProcess};

async fn post(server: &ServerProcess, token: &str, path: &str, body: Value) -> Value {
    let (status, body) = server.post_json(path, token, &body).await;
    assert_eq!(status, 200, "POST {path}: {body}");
    body
}

/// The petition's history from `GET /api/v1/petitions/{id}`.
async fn detail(server: &ServerProcess, token: &str, petition: RecordId) -> Value {
    let (status, body) = server
        .get_json(&format!("/api/v1/petitions/{petition}"), token)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `(type, by, via_server, believed)` of every event, oldest first.
fn history(detail: &Value) -> Vec<(String, String, bool, bool)> {
    detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["by"].as_str().unwrap_or_default().to_owned(),
                e["via_server"].as_bool().unwrap_or_default(),
                e["believed"].as_bool().unwrap_or_default(),
            )
        })
        .collect()
}

/// The phone's events of `petition`, as `(type, by)` in derived order.
fn phone_events(phone: &Device, doc: &DocumentId, petition: RecordId) -> Vec<(String, String)> {
    phone
        .diary(doc)
        .petition(petition)
        .expect("petition")
        .events
        .iter()
        .map(|e| (e.kind.type_name().to_owned(), e.by.clone()))
        .collect()
}

/// A phone's documents while it has no connection.
type Offline = BTreeMap<DocumentId, Automerge>;

/// Takes a phone offline: its socket closes, its documents stay.
async fn go_offline(phone: Device) -> Offline {
    let docs = phone.docs.clone();
    phone.close().await;
    docs
}

/// Brings the phone back with what it holds; nothing is exchanged yet.
async fn come_back(server: &ServerProcess, docs: Offline) -> Device {
    let mut phone = server.device("cadre01", "phone").await;
    for (id, doc) in docs {
        phone.docs.insert(id, doc);
        phone.conn.add_document(id);
    }
    phone
}

/// The cadre's edit on the offline phone, `minutes` after the usual edit
/// time.
fn offline_event(
    docs: &mut Offline,
    doc: &DocumentId,
    petition: RecordId,
    minutes: i64,
    kind: PetitionEventKind,
) {
    let mut diary =
        DiaryDocument::from_automerge(docs.remove(doc).expect("document")).expect("diary");
    let edit = Edit::new("cadre01", Timestamp(EDIT_TIME.millis() + minutes * 60_000));
    diary
        .record_petition_event(
            &edit,
            petition,
            RecordId::from_random_bytes(rand::random()),
            &kind,
        )
        .expect("event");
    docs.insert(*doc, diary.into_automerge());
}

fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The cadre records progress and marks the item resolved offline while
/// the supervisor extends its deadline and adds a 督办 note; after the
/// phone's next sync all four are on the phone, in the stored document and
/// in the ledger.
async fn offline_work_and_supervision_both_arrive(server: ServerProcess) {
    eprintln!("backend: {}", server.backend());
    let mut rng = StdRng::seed_from_u64(21);
    let mut phone = server.device("cadre01", "phone").await;
    let (doc, visit) = phone.create_diary(&mut rng);
    let pid = phone.add_petition(&doc, &mut rng, Some(visit));
    phone.sync().await;

    let mut docs = go_offline(phone).await;
    offline_event(
        &mut docs,
        &doc,
        pid,
        10,
        PetitionEventKind::ProgressNoted {
            note: "已联系自来水公司上门查看".to_owned(),
        },
    );
    offline_event(
        &mut docs,
        &doc,
        pid,
        20,
        PetitionEventKind::Resolved {
            note: "水管已更换，供水恢复".to_owned(),
        },
    );
    let sup = server.login("sup-town1", "desk").await;
    post(
        &server,
        &sup,
        &format!("/api/v1/petitions/{pid}/deadline"),
        json!({"deadline": "2026-12-31"}),
    )
    .await;
    post(
        &server,
        &sup,
        &format!("/api/v1/petitions/{pid}/supervise"),
        json!({"note": "请于月底前办结并反馈群众。"}),
    )
    .await;

    let mut phone = come_back(&server, docs).await;
    let all_four = |d: &Device| {
        d.diary(&doc)
            .petition(pid)
            .is_some_and(|p| p.events.len() == 5)
    };
    phone.sync_until(all_four).await;

    // On the phone.
    let on_phone = phone.diary(&doc).petition(pid).expect("petition");
    let expected = owned(&[
        ("created", "cadre01"),
        ("progress_noted", "cadre01"),
        ("resolved", "cadre01"),
        ("deadline_set", "sup-town1"),
        ("supervised", "sup-town1"),
    ]);
    assert_eq!(phone_events(&phone, &doc, pid), expected);
    assert_eq!(on_phone.state.status, PetitionStatus::Resolved);
    assert_eq!(
        on_phone.state.deadline,
        sync_core::timestamp::parse_date("2026-12-31")
    );

    // In the ledger, attributed: the cadre's from the phone, the
    // supervisor's written by the server.
    let ledger = detail(&server, &sup, pid).await;
    assert_eq!(ledger["petition"]["status"], "resolved", "{ledger}");
    assert_eq!(ledger["petition"]["deadline"], "2026-12-31");
    let rows: Vec<(String, String, bool, bool)> = history(&ledger);
    let as_rows = |v: &[(&str, &str, bool)]| -> Vec<(String, String, bool, bool)> {
        v.iter()
            .map(|(t, b, s)| ((*t).to_owned(), (*b).to_owned(), *s, true))
            .collect()
    };
    assert_eq!(
        rows,
        as_rows(&[
            ("created", "cadre01", false),
            ("progress_noted", "cadre01", false),
            ("resolved", "cadre01", false),
            ("deadline_set", "sup-town1", true),
            ("supervised", "sup-town1", true),
        ])
    );
    let devices: Vec<&Value> = ledger["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["device_id"])
        .collect();
    assert_eq!(
        devices[..3],
        [&json!("phone"), &json!("phone"), &json!("phone")]
    );

    // In the stored document: a device with nothing gets the same heads.
    let mut tablet = server.device("cadre01", "tablet").await;
    tablet.request(doc).await;
    assert_eq!(tablet.docs[&doc].get_heads(), phone.docs[&doc].get_heads());
    assert_eq!(phone_events(&tablet, &doc, pid), expected);
}

/// The server writes into the diary again and again (a 督办 note, a deadline,
/// a reassignment, the assignee's progress through the API) between and
/// during the cadre's offline edits; it reloads the diary from storage for
/// each, and nothing is lost, also after a restart.
async fn repeated_server_edits_and_offline_cadre_edits_merge(mut server: ServerProcess) {
    eprintln!("backend: {}", server.backend());
    let mut rng = StdRng::seed_from_u64(22);
    let mut phone = server.device("cadre01", "phone").await;
    let (doc, visit) = phone.create_diary(&mut rng);
    let pid = phone.add_petition(&doc, &mut rng, Some(visit));
    phone.sync().await;
    let sup = server.login("sup-town1", "desk").await;
    let path = |action: &str| format!("/api/v1/petitions/{pid}/{action}");

    post(
        &server,
        &sup,
        &path("supervise"),
        json!({"note": "请尽快核实情况。"}),
    )
    .await;
    let mut docs = go_offline(phone).await;
    offline_event(
        &mut docs,
        &doc,
        pid,
        5,
        PetitionEventKind::ProgressNoted {
            note: "已入户核实".to_owned(),
        },
    );
    post(
        &server,
        &sup,
        &path("deadline"),
        json!({"deadline": "2026-12-20"}),
    )
    .await;
    let mut phone = come_back(&server, docs).await;
    let six = |n: usize| {
        move |d: &Device| {
            d.diary(&doc)
                .petition(pid)
                .is_some_and(|p| p.events.len() == n)
        }
    };
    phone.sync_until(six(4)).await;

    // Again, with the phone offline: the supervisor reassigns, the assignee
    // notes progress through the API, the cadre notes progress too.
    let mut docs = go_offline(phone).await;
    post(&server, &sup, &path("assign"), json!({"to": "cadre02"})).await;
    let cadre02 = server.login("cadre02", "desk").await;
    post(
        &server,
        &cadre02,
        &path("progress"),
        json!({"note": "已与施工队约定维修时间"}),
    )
    .await;
    offline_event(
        &mut docs,
        &doc,
        pid,
        30,
        PetitionEventKind::ProgressNoted {
            note: "已向群众说明进度".to_owned(),
        },
    );
    let mut phone = come_back(&server, docs).await;
    phone.sync_until(six(7)).await;

    let expected = owned(&[
        ("created", "cadre01"),
        ("progress_noted", "cadre01"),
        ("progress_noted", "cadre01"),
        ("supervised", "sup-town1"),
        ("deadline_set", "sup-town1"),
        ("assigned", "sup-town1"),
        ("progress_noted", "cadre02"),
    ]);
    assert_eq!(phone_events(&phone, &doc, pid), expected);
    let heads = phone.docs[&doc].get_heads();
    let ledger = detail(&server, &sup, pid).await;
    assert_eq!(history(&ledger).len(), 7, "{ledger}");
    assert!(
        history(&ledger).iter().all(|(.., believed)| *believed),
        "{ledger}"
    );
    assert_eq!(ledger["petition"]["responsible"], "cadre02");
    phone.close().await;

    // Everything was stored, not only held in memory.
    server.kill_and_restart().await;
    let mut tablet = server.device("cadre01", "tablet").await;
    tablet.request(doc).await;
    assert_eq!(tablet.docs[&doc].get_heads(), heads);
    assert_eq!(phone_events(&tablet, &doc, pid), expected);
    let sup = server.login("sup-town1", "desk").await;
    assert_eq!(history(&detail(&server, &sup, pid).await).len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_work_and_supervision_both_arrive_on_sqlite() {
    offline_work_and_supervision_both_arrive(ServerProcess::start_on(Database::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_work_and_supervision_both_arrive_on_postgres() {
    let Some(database) = Database::postgres().await else {
        println!("note: TEST_DATABASE_URL is not set; skipping the PostgreSQL run");
        return;
    };
    offline_work_and_supervision_both_arrive(ServerProcess::start_on(database).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_server_edits_and_offline_cadre_edits_merge_on_sqlite() {
    repeated_server_edits_and_offline_cadre_edits_merge(
        ServerProcess::start_on(Database::Sqlite).await,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_server_edits_and_offline_cadre_edits_merge_on_postgres() {
    let Some(database) = Database::postgres().await else {
        println!("note: TEST_DATABASE_URL is not set; skipping the PostgreSQL run");
        return;
    };
    repeated_server_edits_and_offline_cadre_edits_merge(ServerProcess::start_on(database).await)
        .await;
}
