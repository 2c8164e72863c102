//! Two server processes on one PostgreSQL database, as an operator scales
//! out: a change acknowledged by one reaches a device connected to the
//! other within a second (`LISTEN/NOTIFY`), and a cadre's two devices and
//! two supervisors writing one diary through both processes at once lose
//! nothing, with ledger rows that `server ledger rebuild` leaves as they
//! are. PostgreSQL only: SQLite is one process's database.

use std::process::Command;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use sync_core::records::petition::PetitionEventKind;
use sync_core::records::visit::VisitUpdate;
use sync_core::{DocumentId, RecordId};

use e2e_tests::{Database, Device, ServerProcess, ms, server_binary};

/// Two processes on a fresh database, or `None` (and a note) without
/// `TEST_DATABASE_URL`. The second is dropped first (before the database).
async fn two_processes() -> Option<(ServerProcess, ServerProcess)> {
    let Some(database) = Database::postgres().await else {
        println!("note: TEST_DATABASE_URL is not set; skipping the two-process run");
        return None;
    };
    let a = ServerProcess::start_on(database).await;
    let b = a.another_process().await;
    Some((a, b))
}

/// A change the phone's process acknowledged is on the tablet, connected
/// to the other process, within a second, without the tablet asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_process_reaches_a_device_on_the_other_within_a_second() {
    let Some((a, b)) = two_processes().await else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(8);
    let mut phone = a.device("cadre01", "phone").await;
    let (doc, _) = phone.create_diary(&mut rng);
    phone.sync().await;
    let mut tablet = b.device("cadre01", "tablet").await;
    tablet.request(doc).await;
    assert_eq!(tablet.visit_count(&doc), 1);

    let mut waits = Vec::new();
    for _ in 0..5 {
        phone.add_visit(&doc, &mut rng);
        // Returns once process A has stored the visit and answered.
        phone.sync().await;
        let acknowledged = Instant::now();
        let want = phone.visit_count(&doc);
        while tablet.visit_count(&doc) < want {
            let left = Duration::from_secs(1).saturating_sub(acknowledged.elapsed());
            if tokio::time::timeout(left, tablet.receive()).await.is_err() {
                panic!(
                    "the visit acknowledged by one process did not reach the other's device \
                     within a second; tablet frames:\n{}\nlog of the tablet's process:\n{}",
                    tablet.recent_frames(),
                    b.log()
                );
            }
            tablet.flush().await;
        }
        waits.push(acknowledged.elapsed());
    }
    assert_eq!(tablet.docs[&doc].get_heads(), phone.docs[&doc].get_heads());
    let waits: Vec<String> = waits.iter().map(|w| format!("{:.1} ms", ms(*w))).collect();
    eprintln!(
        "acknowledged on A → on the device of B: {}",
        waits.join(", ")
    );
}

/// The petition's events, the owner's visits and the ledger page, as the
/// supervisor reads them from `server`.
async fn ledger_view(server: &ServerProcess, token: &str, petition: RecordId) -> Vec<Value> {
    let mut views = Vec::new();
    for path in [
        format!("/api/v1/petitions/{petition}"),
        "/api/v1/visits?cadre=cadre01&per_page=200".to_owned(),
        "/api/v1/ledger?cadre=cadre01&per_page=200".to_owned(),
    ] {
        let (status, body) = server.get_json(&path, token).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        views.push(body);
    }
    views
}

/// How many events the petition has on `device`.
fn events(device: &Device, doc: &DocumentId, petition: RecordId) -> usize {
    device
        .diary(doc)
        .petition(petition)
        .map_or(0, |p| p.events.len())
}

/// Rounds of concurrent writes in the second test.
const ROUNDS: usize = 8;

/// Each round, all at once: the phone (on A) renames a visit, adds one and
/// notes progress on a petition; the tablet (on B) tags that visit and
/// adds one; a supervisor on each process supervises the petition. After
/// the devices settle, both hold every write, the ledger shows every
/// event and visit, and a rebuild of the ledger from the stored documents
/// changes nothing: no process wrote rows from a copy that missed the
/// other's write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_through_two_processes_all_survive_in_document_and_ledger() {
    let Some((a, b)) = two_processes().await else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(9);
    let mut phone = a.device("cadre01", "phone").await;
    let (doc, visit) = phone.create_diary(&mut rng);
    let petition = phone.add_petition(&doc, &mut rng, Some(visit));
    phone.sync().await;
    let mut tablet = b.device("cadre01", "tablet").await;
    tablet.request(doc).await;
    let (sup_a, sup_b) = (
        a.login("sup-town1", "desk-a").await,
        b.login("sup-town1", "desk-b").await,
    );
    let stale_before = test_support::metric(&a.base_url(), "stale_writes_total").await
        + test_support::metric(&b.base_url(), "stale_writes_total").await;

    let tags = phone.diary(&doc).visit(visit).expect("visit").tags.len() + ROUNDS;
    let supervise = format!("/api/v1/petitions/{petition}/supervise");
    for round in 0..ROUNDS {
        phone.update_visit(
            &doc,
            visit,
            &VisitUpdate {
                place: Some(format!("河湾村{round}组")),
                ..VisitUpdate::default()
            },
        );
        phone.add_visit(&doc, &mut rng);
        phone.record_petition_event(
            &doc,
            &mut rng,
            petition,
            &PetitionEventKind::ProgressNoted {
                note: format!("第{round}次上门了解情况"),
            },
        );
        tablet.update_visit(
            &doc,
            visit,
            &VisitUpdate {
                add_tags: [format!("回访{round}")].into(),
                ..VisitUpdate::default()
            },
        );
        tablet.add_visit(&doc, &mut rng);
        let (note_a, note_b) = (
            json!({"note": format!("A督办{round}")}),
            json!({"note": format!("B督办{round}")}),
        );
        let (_, _, by_a, by_b) = tokio::join!(
            phone.sync(),
            tablet.sync(),
            a.post_json(&supervise, &sup_a, &note_a),
            b.post_json(&supervise, &sup_b, &note_b),
        );
        for (status, body) in [by_a, by_b] {
            assert_eq!(status, 200, "POST {supervise}: {body}");
        }
    }

    // Every write: the first visit and two a round; the petition's creation,
    // a progress note and two supervisions a round; a tag a round (`tags`).
    let visits = 1 + 2 * ROUNDS;
    let petition_events = 1 + 3 * ROUNDS;
    let settled = |d: &Device| {
        d.visit_count(&doc) == visits
            && events(d, &doc, petition) == petition_events
            && d.diary(&doc)
                .visit(visit)
                .is_some_and(|v| v.tags.len() == tags)
    };
    phone.sync_until(settled).await;
    tablet.sync_until(settled).await;
    phone.sync_until(settled).await;
    assert_eq!(
        phone.docs[&doc].get_heads(),
        tablet.docs[&doc].get_heads(),
        "both devices hold the same document"
    );
    let place = phone.diary(&doc).visit(visit).expect("visit").place;
    assert_eq!(place, format!("河湾村{}组", ROUNDS - 1));

    // The ledger, from either process, shows every write.
    let before = ledger_view(&a, &sup_a, petition).await;
    assert_eq!(before, ledger_view(&b, &sup_b, petition).await);
    let history = before[0]["events"].as_array().expect("events");
    assert_eq!(history.len(), petition_events, "{}", before[0]);
    let listed: Vec<&Value> = before[1]["items"]
        .as_array()
        .expect("visits")
        .iter()
        .filter(|v| v["document_id"] == doc.to_string())
        .collect();
    assert_eq!(listed.len(), visits, "{}", before[1]);
    let row = listed
        .iter()
        .find(|v| v["id"] == visit.to_string())
        .expect("the renamed visit's row");
    assert_eq!(row["place"], place.as_str(), "{row}");

    // Rows projected from the stored documents are the same rows.
    let rebuilt = Command::new(server_binary())
        .args(["ledger", "rebuild", "--data-dir"])
        .arg(b.data_dir())
        .env("DATABASE_URL", a.database_url().expect("PostgreSQL"))
        .output()
        .expect("run ledger rebuild");
    assert!(
        rebuilt.status.success(),
        "ledger rebuild: {}",
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    assert_eq!(ledger_view(&a, &sup_a, petition).await, before);

    let stale = test_support::metric(&a.base_url(), "stale_writes_total").await
        + test_support::metric(&b.base_url(), "stale_writes_total").await
        - stale_before;
    eprintln!("writes made again after the other process wrote first: {stale}");
}
