//! Real `server` processes and real clients syncing over real sockets:
//! offline edits merging, who may read what, and hostile frames.

use std::collections::BTreeMap;

use futures_util::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sync_core::protocol::{DocSyncStatus, Message};
use sync_core::records::petition::{PetitionEventKind, PetitionStatus};
use sync_core::records::visit::VisitUpdate;
use sync_core::{DocumentId, RecordId};
use tokio_tungstenite::tungstenite;

use e2e_tests::{Device, ServerProcess};

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn notes(device: &Device, doc: &DocumentId, visit: RecordId) -> String {
    device.diary(doc).visit(visit).expect("the visit").notes
}

/// The entry for `id` in a `/api/v1/me/documents` list.
fn listed<'a>(documents: &'a [Value], id: &DocumentId) -> Option<&'a Value> {
    let id = id.to_string();
    documents.iter().find(|d| d["id"] == id.as_str())
}

/// Two devices of one cadre edit the same diary offline (each adds a visit,
/// both edit the same visit's notes), sync through the server and end with
/// identical documents holding every edit. Returns the server and the
/// document for further checks.
async fn merge_offline_edits(seed: u64) -> (ServerProcess, DocumentId) {
    let server = ServerProcess::start().await;
    let mut rng = rng(seed);
    let mut phone = server.device("cadre01", "phone").await;
    let (id, first) = phone.create_diary(&mut rng);
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Synced)
    );

    // A second device with nothing stored asks for the document and gets it.
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(tablet.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(tablet.visit_count(&id), 1);
    assert_eq!(tablet.diary(&id).meta().expect("meta").owner, "cadre01");

    // Offline on both: each adds a visit and edits the same notes text.
    let original = notes(&phone, &id, first);
    let from_phone = phone.add_visit(&id, &mut rng);
    phone.update_visit(
        &id,
        first,
        &VisitUpdate {
            notes: Some(format!("{original}（手机补记：已电话回访）")),
            ..VisitUpdate::default()
        },
    );
    let from_tablet = tablet.add_visit(&id, &mut rng);
    tablet.update_visit(
        &id,
        first,
        &VisitUpdate {
            notes: Some(format!("【平板】{original}")),
            ..VisitUpdate::default()
        },
    );
    let merged = format!("【平板】{original}（手机补记：已电话回访）");

    phone.sync().await;
    let done = |d: &Device| d.visit_count(&id) == 3 && notes(d, &id, first) == merged;
    tablet.sync_until(done).await;
    // The tablet's changes reach the phone by the server's push.
    phone.sync_until(done).await;

    assert_eq!(phone.docs[&id].get_heads(), tablet.docs[&id].get_heads());
    assert_eq!(phone.diary(&id).visits(), tablet.diary(&id).visits());
    let visits: Vec<RecordId> = phone.diary(&id).visits().iter().map(|v| v.id).collect();
    for v in [first, from_phone, from_tablet] {
        assert!(visits.contains(&v), "visit {v} lost in the merge");
    }

    // A third device gets the stored merge from the server.
    let mut laptop = server.device("cadre01", "laptop").await;
    assert_eq!(laptop.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(laptop.docs[&id].get_heads(), phone.docs[&id].get_heads());
    assert_eq!(notes(&laptop, &id, first), merged);

    (server, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_edit_offline_and_both_see_the_merge() {
    let (server, id) = merge_offline_edits(1).await;

    let token = server.login("cadre01", "check").await;
    let documents = server.my_documents(&token).await;
    let entry = listed(&documents, &id).expect("the diary is listed for its owner");
    assert_eq!(entry["kind"], "diary");
    let mut reader = server.device("cadre01", "reader").await;
    assert_eq!(reader.request(id).await, Some(DocSyncStatus::Synced));
    let year = reader
        .diary(&id)
        .meta()
        .expect("meta")
        .year
        .expect("a year");
    assert_eq!(entry["year"], year);
    assert_eq!(entry["owner"], "cadre01");
}

/// The entries of `GET /api/v1/ledger` (largest page) from `document`,
/// keyed by petition id.
async fn ledger_entries(
    server: &ServerProcess,
    user: &str,
    document: &DocumentId,
) -> BTreeMap<String, Value> {
    let token = server.login(user, "desk").await;
    let (status, body) = server.get_json("/api/v1/ledger?per_page=200", &token).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    let total = body["total"].as_u64().expect("total");
    assert!(total >= items.len() as u64, "{body}");
    items
        .iter()
        .filter(|e| e["document_id"] == document.to_string().as_str())
        .map(|e| (e["id"].as_str().expect("id").to_owned(), e.clone()))
        .collect()
}

/// Petitions edited offline on two devices reach the canonical ledger
/// merged: one device resolves a petition while the other records a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_offline_edits_show_in_the_ledger() {
    let server = ServerProcess::start().await;
    let mut rng = rng(6);
    let mut phone = server.device("cadre01", "phone").await;
    let (id, visit) = phone.create_diary(&mut rng);
    let resolved = phone.add_petition(&id, &mut rng, Some(visit));
    phone.sync().await;
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(tablet.request(id).await, Some(DocSyncStatus::Synced));

    // Offline: the phone resolves the petition, the tablet records another.
    phone.record_petition_event(
        &id,
        &mut rng,
        resolved,
        &PetitionEventKind::Resolved {
            note: "已协调村委会修复路灯".to_owned(),
        },
    );
    let recorded = tablet.add_petition(&id, &mut rng, None);
    phone.sync().await;
    let merged = |d: &Device| {
        let diary = d.diary(&id);
        diary.petitions().len() == 2
            && diary
                .petition(resolved)
                .is_some_and(|p| p.state.status == PetitionStatus::Resolved)
    };
    tablet.sync_until(merged).await;
    phone.sync_until(merged).await;

    let ledger = ledger_entries(&server, "cadre01", &id).await;
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    let resolved_entry = &ledger[&resolved.to_string()];
    assert_eq!(resolved_entry["status"], "resolved", "{resolved_entry}");
    assert_eq!(resolved_entry["event_count"], 2);
    assert_eq!(resolved_entry["owner"], "cadre01");
    assert_eq!(ledger[&recorded.to_string()]["status"], "open");

    // The town's supervisor sees them; the other town's does not.
    let town1 = ledger_entries(&server, "sup-town1", &id).await;
    assert_eq!(town1.len(), 2);
    let town2 = ledger_entries(&server, "sup-town2", &id).await;
    assert!(town2.is_empty(), "{town2:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_documents_sync_to_their_owner_only() {
    let server = ServerProcess::start().await;
    let mut rng = rng(2);
    let mut cadre01 = server.device("cadre01", "phone").await;
    let (town1_doc, _) = cadre01.create_diary(&mut rng);
    cadre01.sync().await;
    let missing = DocumentId::from_bytes(rng.random());

    // Supervisors and the admin read through the API (masked), never the
    // raw document, even in their own subtree: it looks like a missing one.
    for user in ["sup-town1", "sup-county", "admin"] {
        let mut reader = server.device(user, "desk").await;
        assert_eq!(
            reader.request(town1_doc).await,
            Some(DocSyncStatus::Unavailable),
            "{user}"
        );
        assert_eq!(
            reader.request(missing).await,
            Some(DocSyncStatus::Unavailable),
            "{user}"
        );
        assert!(
            reader
                .docs
                .get(&town1_doc)
                .is_none_or(|d| d.get_heads().is_empty()),
            "nothing of the diary reached {user}"
        );
    }
    let mut check = server.device("cadre01", "tablet").await;
    assert_eq!(check.request(town1_doc).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.visit_count(&town1_doc), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cadre_cannot_reach_another_cadres_diary() {
    let server = ServerProcess::start().await;
    let mut rng = rng(3);
    let mut owner = server.device("cadre01", "phone").await;
    let (id, _) = owner.create_diary(&mut rng);
    owner.sync().await;

    let mut other = server.device("cadre02", "phone").await;
    assert_eq!(other.request(id).await, Some(DocSyncStatus::Unavailable));
    let denied = other.last_unavailable().cloned().expect("doc-unavailable");
    // A denied document looks exactly like one that does not exist.
    let unknown = DocumentId::from_bytes(rng.random());
    assert_eq!(
        other.request(unknown).await,
        Some(DocSyncStatus::Unavailable)
    );
    let missing = other.last_unavailable().cloned().expect("doc-unavailable");
    match (denied, missing) {
        (
            Message::DocUnavailable {
                document_id: a,
                sender_id: sa,
                target_id: ta,
            },
            Message::DocUnavailable {
                document_id: b,
                sender_id: sb,
                target_id: tb,
            },
        ) => {
            assert_eq!((a, b), (id, unknown));
            assert_eq!((sa, ta), (sb, tb));
        }
        other => panic!("expected two doc-unavailable messages, got {other:?}"),
    }
    assert!(other.docs.get(&id).is_none_or(|d| d.get_heads().is_empty()));

    // Nor can cadre02 write into it by syncing a diary of their own under
    // its id.
    let mut forger = server.device("cadre02", "tablet").await;
    forger.create_diary_under(id);
    forger.sync().await;
    assert_eq!(
        forger.conn.status(&id, &forger.docs),
        Some(DocSyncStatus::Unavailable)
    );
    let mut check = server.device("cadre01", "laptop").await;
    assert_eq!(check.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.docs[&id].get_heads(), owner.docs[&id].get_heads());

    // Nor is it listed for cadre02, while it is for its owner.
    let token = server.login("cadre02", "check").await;
    assert!(listed(&server.my_documents(&token).await, &id).is_none());
    let token = server.login("cadre01", "check").await;
    assert!(listed(&server.my_documents(&token).await, &id).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_only_its_own_connection() {
    let server = ServerProcess::start().await;
    let mut rng = rng(4);
    let mut phone = server.device("cadre01", "phone").await;
    let (id, _) = phone.create_diary(&mut rng);
    phone.sync().await;

    // The phone has an edit on its way when the bad frames arrive.
    phone.add_visit(&id, &mut rng);
    phone.flush().await;
    for bad in [
        tungstenite::Message::Binary(vec![0xff, 0x00, 0x13, 0x37].into()),
        tungstenite::Message::Text("{\"type\":\"join\"}".into()),
    ] {
        let mut victim = server.device("cadre01", "tablet").await;
        victim.ws.send(bad).await.expect("send");
        victim.expect_error_and_close().await;
    }

    // The phone's connection carries on: its edit lands, and another one.
    phone.sync().await;
    phone.add_visit(&id, &mut rng);
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Synced)
    );
    let mut laptop = server.device("cadre01", "laptop").await;
    assert_eq!(laptop.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(laptop.visit_count(&id), 3);
    assert_eq!(laptop.docs[&id].get_heads(), phone.docs[&id].get_heads());
}

/// Acknowledged means durable: once the server has answered a sync, the
/// changes survive the process being killed outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_a_killed_server() {
    let mut server = ServerProcess::start().await;
    let mut rng = rng(7);
    let mut phone = server.device("cadre01", "phone").await;
    let (id, _) = phone.create_diary(&mut rng);
    phone.add_visit(&id, &mut rng);
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Synced)
    );
    let heads = phone.docs[&id].get_heads();

    server.kill_and_restart().await;
    let mut laptop = server.device("cadre01", "laptop").await;
    assert_eq!(laptop.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(laptop.docs[&id].get_heads(), heads);
    assert_eq!(laptop.visit_count(&id), 2);
}
