//! Who did what is the server's record, and supervisors act on petitions
//! through the API: a cadre's device that writes an event in a
//! supervisor's name is shown as itself and not believed; every supervision
//! action, reassignment and the assignee's own work is written into the
//! diary by the server and reaches the ledger. Each case runs on SQLite and,
//! with `TEST_DATABASE_URL`, on PostgreSQL, against `serve_with_store` on a
//! real socket with real WebSocket devices.

use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};
use server::store::Store;
use sync_core::records::petition::{PetitionEventKind, PetitionStatus};
use sync_core::{DiaryDocument, DocumentId, Edit, RecordId, Timestamp};
use test_support::{Device, EDIT_TIME, Served};

/// A phone of cadre01 with a new diary holding one petition, synced.
async fn phone_with_petition(running: &Served, rng: &mut StdRng) -> (Device, DocumentId, RecordId) {
    let mut phone = running.device("cadre01", "phone").await;
    let (doc, visit) = phone.create_diary(rng);
    // At the village, so the tests can escalate it.
    let mut petition = sync_core::fixtures::petition(rng, EDIT_TIME, Some(visit));
    petition.level = sync_core::records::petition::Level::Village;
    let petition = phone.add_this_petition(&doc, &petition);
    phone.sync().await;
    (phone, doc, petition)
}

/// As [`phone_with_petition`] (its rng seeded with `seed`), with a 督办 note
/// that sup-town1 wrote through the API, synced to the phone; and
/// sup-town1's token.
async fn phone_with_supervised_petition(
    running: &Served,
    seed: u64,
) -> (Device, DocumentId, RecordId, String) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut phone, doc, pid) = phone_with_petition(running, &mut rng).await;
    let sup = running.login("sup-town1", "web").await;
    let (status, body) = running
        .post(
            &sup,
            &format!("/api/v1/petitions/{pid}/supervise"),
            json!({"note": "请一周内办结。"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let supervised = |d: &Device| {
        d.diary(&doc)
            .petition(pid)
            .is_some_and(|p| p.events.iter().any(|e| e.by == "sup-town1"))
    };
    phone.sync_until(supervised).await;
    (phone, doc, pid, sup)
}

/// The phone's connection was closed for writing as another writer, and the
/// forged 销号 is nowhere in the petition's history.
async fn assert_forgery_refused(running: &Served, phone: &mut Device, sup: &str, pid: RecordId) {
    let error = phone.expect_error_and_close().await;
    assert!(error.contains("belongs to another writer"), "{error}");
    let (_, detail) = running.get(sup, &format!("/api/v1/petitions/{pid}")).await;
    assert!(event(&detail, "closed").is_empty(), "{detail}");
    assert_eq!(detail["petition"]["status"], "in_progress");
}

/// Appends an event on the phone with whatever author it claims.
fn write_as(
    phone: &mut Device,
    doc: &DocumentId,
    petition: RecordId,
    by: &str,
    kind: PetitionEventKind,
) {
    let am = phone.docs.remove(doc).expect("document");
    let mut diary = DiaryDocument::from_automerge(am).expect("diary");
    let at = Timestamp(EDIT_TIME.millis() + 60_000);
    diary
        .record_petition_event(
            &Edit::new(by, at),
            petition,
            RecordId::from_random_bytes(rand::random()),
            &kind,
        )
        .expect("event");
    phone.docs.insert(*doc, diary.into_automerge());
}

fn event<'a>(detail: &'a Value, event_type: &str) -> Vec<&'a Value> {
    detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == event_type)
        .collect()
}

/// A cadre's phone writes a 销号 claiming to be `sup-town1`: the ledger
/// shows it as the cadre's, from the phone, flagged and not believed, and
/// the item stays resolved. A 销号 in the cadre's own name counts no more.
/// The real supervisor can still sign it off through the API.
async fn a_forged_sign_off_is_the_cadres_and_not_believed(store: Arc<dyn Store>) {
    let running = Served::on_store(store, |_| {}).await;
    let mut rng = StdRng::seed_from_u64(91);
    let (mut phone, doc, pid) = phone_with_petition(&running, &mut rng).await;
    write_as(
        &mut phone,
        &doc,
        pid,
        "cadre01",
        PetitionEventKind::Resolved {
            note: "路灯已修复".into(),
        },
    );
    write_as(
        &mut phone,
        &doc,
        pid,
        "cadre01",
        PetitionEventKind::FeedbackGiven {
            note: "已电话告知".into(),
        },
    );
    write_as(
        &mut phone,
        &doc,
        pid,
        "sup-town1",
        PetitionEventKind::Closed {
            note: "月度审核通过，予以销号。".into(),
        },
    );
    write_as(
        &mut phone,
        &doc,
        pid,
        "cadre01",
        PetitionEventKind::Supervised {
            note: "自己督办自己".into(),
        },
    );
    phone.sync().await;
    // The document itself believes the forgery.
    assert_eq!(
        phone
            .diary(&doc)
            .petition(pid)
            .expect("petition")
            .state
            .status
            .as_str(),
        "closed"
    );

    let sup = running.login("sup-town1", "web").await;
    let (status, detail) = running.get(&sup, &format!("/api/v1/petitions/{pid}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["petition"]["status"], "resolved", "{detail}");
    let closed = event(&detail, "closed");
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0]["by"], "cadre01");
    assert_eq!(closed[0]["claimed_by"], "sup-town1");
    assert_eq!(closed[0]["device_id"], "phone");
    assert_eq!(closed[0]["via_server"], false);
    assert_eq!(closed[0]["believed"], false);
    assert_eq!(closed[0]["flag"], "claimed_author_mismatch");
    let supervised = event(&detail, "supervised");
    assert_eq!(supervised[0]["flag"], "supervision_not_by_server");
    assert_eq!(supervised[0]["believed"], false);
    for own in ["created", "resolved", "feedback_given"] {
        let e = event(&detail, own);
        assert_eq!(
            (e[0]["by"].as_str(), e[0]["believed"].as_bool()),
            (Some("cadre01"), Some(true)),
            "{own}"
        );
        assert!(e[0]["flag"].is_null(), "{own}");
    }
    let (_, closed_list) = running.get(&sup, "/api/v1/ledger?status=closed").await;
    assert!(
        closed_list["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["id"] != pid.to_string()),
        "the forged sign-off does not close it in the ledger"
    );

    // The supervisor signs it off for real.
    let (status, body) = running
        .post(
            &sup,
            &format!("/api/v1/petitions/{pid}/close"),
            json!({"note": "经核实，予以销号。"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["petition"]["status"], "closed");
    let (_, detail) = running.get(&sup, &format!("/api/v1/petitions/{pid}")).await;
    let closed = event(&detail, "closed");
    assert_eq!(closed.len(), 2);
    let real: Vec<_> = closed.iter().filter(|e| e["believed"] == true).collect();
    assert_eq!(real.len(), 1);
    assert_eq!(
        (real[0]["by"].as_str(), real[0]["via_server"].as_bool()),
        (Some("sup-town1"), Some(true))
    );
    assert!(real[0]["device_id"].is_null());
    phone.close().await;
    running.stop().await;
}

/// The ledger rows of `doc` as written are exactly what `ledger rebuild`
/// writes from the stored document.
async fn assert_rows_match_rebuild(store: &dyn Store, doc: DocumentId, step: &str) {
    let written = store.ledger_rows(&doc).await.expect("ledger rows");
    server::ledger::rebuild(store, |_, _| {})
        .await
        .expect("rebuild");
    let rebuilt = store.ledger_rows(&doc).await.expect("ledger rows");
    assert_eq!(written, rebuilt, "after {step}");
}

/// A write rewrites only the ledger rows of the records its changes
/// touched. After every sync from two phones editing one diary offline, and
/// after every supervisor action, the rows are those a rebuild from the
/// whole document gives.
async fn ledger_rows_after_each_write_match_a_rebuild(store: Arc<dyn Store>) {
    use rand::Rng;
    use sync_core::records::visit::VisitUpdate;
    let running = Served::on_store(store.clone(), |_| {}).await;
    let mut rng = StdRng::seed_from_u64(93);
    let mut a = running.device("cadre01", "phone-a").await;
    let (doc, _) = a.create_diary(&mut rng);
    a.sync().await;
    assert_rows_match_rebuild(store.as_ref(), doc, "the first upload").await;
    let mut b = running.device("cadre01", "phone-b").await;
    assert!(
        b.request(doc).await.is_some(),
        "the second phone gets the diary"
    );
    let sup = running.login("sup-town1", "web").await;
    for round in 0..5 {
        for (name, phone) in [("a", &mut a), ("b", &mut b)] {
            for _ in 0..rng.random_range(1..4) {
                let diary = phone.diary(&doc);
                let visits: Vec<RecordId> = diary.visits().iter().map(|v| v.id).collect();
                let petitions: Vec<RecordId> = diary.petitions().iter().map(|p| p.id).collect();
                match rng.random_range(0..5) {
                    0 => {
                        phone.add_visit(&doc, &mut rng);
                    }
                    1 => {
                        let visit = visits[rng.random_range(0..visits.len())];
                        let update = VisitUpdate {
                            notes: Some(format!("第{round}轮补记：已回访")),
                            ..VisitUpdate::default()
                        };
                        phone.update_visit(&doc, visit, &update);
                    }
                    2 | 3 if !petitions.is_empty() => {
                        let petition = petitions[rng.random_range(0..petitions.len())];
                        phone.record_petition_event(
                            &doc,
                            &mut rng,
                            petition,
                            &PetitionEventKind::ProgressNoted {
                                note: format!("第{round}轮：已联系相关部门"),
                            },
                        );
                    }
                    _ => {
                        let visit = visits[rng.random_range(0..visits.len())];
                        phone.add_petition(&doc, &mut rng, Some(visit));
                    }
                }
            }
            phone.sync().await;
            assert_rows_match_rebuild(store.as_ref(), doc, &format!("round {round}, phone {name}"))
                .await;
        }
        let petitions = a.diary(&doc).petitions();
        if !petitions.is_empty() {
            let pid = petitions[rng.random_range(0..petitions.len())].id;
            let (status, body) = running
                .post(
                    &sup,
                    &format!("/api/v1/petitions/{pid}/supervise"),
                    json!({"note": format!("第{round}轮督办：请按期办结。")}),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            assert_rows_match_rebuild(store.as_ref(), doc, &format!("round {round}, supervision"))
                .await;
        }
    }
    // The second phone synced last, so it holds every visit and petition.
    let rows = store.ledger_rows(&doc).await.expect("ledger rows");
    let diary = b.diary(&doc);
    assert_eq!(rows.visits.len(), diary.all_visits().len());
    assert_eq!(rows.petitions.len(), diary.all_petitions().len());
    assert!(
        rows.petitions.len() >= 2 && !rows.events.is_empty(),
        "{rows:?}"
    );
    a.close().await;
    b.close().await;
    running.stop().await;
}

/// A device that reuses the actor the server wrote a supervisor's change
/// with is refused, and nothing of that change is stored.
async fn a_device_cannot_write_with_the_servers_actor(store: Arc<dyn Store>) {
    let running = Served::on_store(store, |_| {}).await;
    let (mut phone, doc, pid, sup) = phone_with_supervised_petition(&running, 92).await;
    let diary = phone.forge_server_sign_off(doc, pid);
    phone.docs.insert(doc, diary.into_automerge());
    phone.flush().await;
    assert_forgery_refused(&running, &mut phone, &sup, pid).await;
    running.stop().await;
}

/// The same forgery inside a whole document (automerge's v2 sync message,
/// which a peer sends when the server lacks more than a third of the
/// document's changes) is refused just the same: the rules hold for every
/// change a document chunk adds, not only for change chunks.
async fn a_whole_document_cannot_carry_the_servers_actor(store: Arc<dyn Store>) {
    let running = Served::on_store(store, |_| {}).await;
    let (mut phone, doc, pid, sup) = phone_with_supervised_petition(&running, 93).await;
    let diary = phone.forge_server_sign_off(doc, pid);
    let whole = diary.automerge();
    let mut heads = whole.get_heads();
    heads.sort();
    let data = sync_core::automerge::sync::Message {
        heads,
        need: vec![],
        have: vec![],
        changes: vec![whole.save()].into(),
        flags: None,
        version: sync_core::automerge::sync::MessageVersion::V2,
    }
    .encode();
    phone
        .send(&sync_core::protocol::Message::Sync {
            document_id: doc,
            sender_id: "phone".to_owned(),
            target_id: "visit-diary-server".to_owned(),
            data,
        })
        .await;
    assert_forgery_refused(&running, &mut phone, &sup, pid).await;
    running.stop().await;
}

/// A device may append to a petition's history but not change or delete
/// what the server wrote: rewriting a 督办 note, or removing the event from
/// the list, is refused and nothing of it is stored.
async fn a_device_cannot_alter_what_the_server_wrote(store: Arc<dyn Store>) {
    use sync_core::automerge::transaction::Transactable;
    use sync_core::automerge::{Automerge, ObjId, Prop, ROOT, ReadDoc};

    let running = Served::on_store(store, |_| {}).await;
    let (phone, doc, pid, sup) = phone_with_supervised_petition(&running, 94).await;
    let base = phone.docs[&doc].clone();
    phone.close().await;
    let object = |doc: &Automerge, parent: &ObjId, prop: Prop| {
        doc.get(parent, prop).expect("get").expect("present").1
    };
    let events_list = |doc: &Automerge| {
        let petitions = object(doc, &ROOT, "petitions".into());
        let petition = object(doc, &petitions, pid.to_string().into());
        object(doc, &petition, "events".into())
    };

    for (n, alter) in ["rewrite the note", "delete the event"]
        .into_iter()
        .enumerate()
    {
        let mut device = running.device("cadre01", &format!("phone-{n}")).await;
        let mut am = base.fork();
        let events = events_list(&am);
        let supervised = object(&am, &events, 1usize.into());
        let mut tx = am.transaction();
        if n == 0 {
            tx.put(&supervised, "note", "无需督办").expect("put");
        } else {
            tx.delete(&events, 1usize).expect("delete");
        }
        tx.commit();
        device.docs.insert(doc, am);
        device.conn.add_document(doc);
        device.flush().await;
        let error = device.expect_error_and_close().await;
        assert!(
            error.contains("alters what the server wrote"),
            "{alter}: {error}"
        );
    }
    let (_, detail) = running.get(&sup, &format!("/api/v1/petitions/{pid}")).await;
    let supervised = event(&detail, "supervised");
    assert_eq!(supervised.len(), 1, "{detail}");
    assert_eq!(supervised[0]["note"], "请一周内办结。");
    assert_eq!(supervised[0]["believed"], true);
    running.stop().await;
}

/// The server does not write a diary past the size the sync endpoint
/// accepts: the action is refused (409) and nothing is stored.
async fn a_full_diary_takes_no_more_supervision(store: Arc<dyn Store>) {
    use rand::Rng;
    use server::ledger::LedgerQuery;

    server::seed_demo(store.as_ref(), "demo-pass")
        .await
        .expect("seed");
    server::demo::seed_demo_records(store.as_ref())
        .await
        .expect("demo records");
    let cadre = store
        .get_user_by_username("cadre01")
        .await
        .expect("get")
        .expect("cadre01");
    let open = store
        .query_ledger(&LedgerQuery {
            owner_user_id: Some(cadre.id),
            status: Some(PetitionStatus::Open),
            limit: 1,
            ..LedgerQuery::default()
        })
        .await
        .expect("ledger");
    let item = open.items.first().expect("an open demo petition");
    let doc: DocumentId = item.document_id.parse().expect("document id");
    let stored = store
        .load_document(&doc)
        .await
        .expect("load")
        .expect("diary");
    let size = stored.snapshot.as_ref().map_or(0, Vec::len)
        + stored.chunks.iter().map(|c| c.data.len()).sum::<usize>();
    let running = Served::on_store(store.clone(), |c| c.max_document_bytes = size + 1024).await;
    let sup = running.login("sup-town1", "web").await;
    let mut rng = StdRng::seed_from_u64(95);
    // Text that does not compress: 2,000 random CJK characters.
    let note: String = (0..2000)
        .map(|_| char::from_u32(rng.random_range(0x4E00..0x9FA5)).unwrap_or('督'))
        .collect();
    let (status, body) = running
        .post(
            &sup,
            &format!("/api/v1/petitions/{}/supervise", item.id),
            json!({ "note": note }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("size limit")),
        "{body}"
    );
    let after = store
        .load_document(&doc)
        .await
        .expect("load")
        .expect("diary");
    assert_eq!(after.chunks.len(), stored.chunks.len(), "nothing stored");
    // A short note still fits.
    let (status, body) = running
        .post(
            &sup,
            &format!("/api/v1/petitions/{}/supervise", item.id),
            json!({ "note": "请抓紧办理。" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    running.stop().await;
}

/// Record ids come from phones: when two diaries hold the same petition id
/// the caller must say which (409 without `document_id`).
async fn a_petition_id_in_two_diaries_needs_its_document(store: Arc<dyn Store>) {
    let running = Served::on_store(store, |_| {}).await;
    let mut rng = StdRng::seed_from_u64(96);
    let mut phone = running.device("cadre01", "phone").await;
    let petition = sync_core::fixtures::petition(&mut rng, EDIT_TIME, None);
    let mut docs = Vec::new();
    for _ in 0..2 {
        let (doc, _) = phone.create_diary(&mut rng);
        let am = phone.docs.remove(&doc).expect("doc");
        let mut diary = DiaryDocument::from_automerge(am).expect("diary");
        diary
            .add_petition(&Edit::new("cadre01", EDIT_TIME), &petition)
            .expect("petition");
        phone.docs.insert(doc, diary.into_automerge());
        docs.push(doc);
    }
    phone.sync().await;
    let sup = running.login("sup-town1", "web").await;
    let pid = petition.id;
    let (status, body) = running
        .post(
            &sup,
            &format!("/api/v1/petitions/{pid}/supervise"),
            json!({"note": "请核实"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("document_id")),
        "{body}"
    );
    let (status, _) = running.get(&sup, &format!("/api/v1/petitions/{pid}")).await;
    assert_eq!(status, 409);
    let (status, body) = running
        .post(
            &sup,
            &format!("/api/v1/petitions/{pid}/supervise?document_id={}", docs[1]),
            json!({"note": "请核实"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["petition"]["document_id"], docs[1].to_string());
    let (_, other) = running
        .get(
            &sup,
            &format!("/api/v1/petitions/{pid}?document_id={}", docs[0]),
        )
        .await;
    assert!(event(&other, "supervised").is_empty(), "{other}");
    phone.close().await;
    running.stop().await;
}

/// Every supervision action, its errors, the audit log, and the person an
/// item is reassigned or escalated to working on it through the API.
async fn supervisors_act_and_assignees_work_through_the_api(store: Arc<dyn Store>) {
    let running = Served::on_store(store.clone(), |_| {}).await;
    let mut rng = StdRng::seed_from_u64(93);
    let (mut phone, doc, pid) = phone_with_petition(&running, &mut rng).await;
    let sup = running.login("sup-town1", "web").await;
    let other_town = running.login("sup-town2", "web").await;
    let cadre = running.login("cadre01", "web").await;
    let cadre02 = running.login("cadre02", "web").await;
    let path = |action: &str| format!("/api/v1/petitions/{pid}/{action}");

    // Errors.
    let unknown = RecordId::from_random_bytes(rand::random());
    let (status, body) = running
        .post(
            &sup,
            &format!("/api/v1/petitions/{unknown}/supervise"),
            json!({"note": "x"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, _) = running
        .post(
            &sup,
            "/api/v1/petitions/not-a-uuid/supervise",
            json!({"note": "x"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = running
        .post(&cadre, &path("supervise"), json!({"note": "督办"}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, _) = running
        .post(
            &other_town,
            &path("deadline"),
            json!({"deadline": "2026-12-31"}),
        )
        .await;
    // Out of the other town's reach: as missing as an unknown petition.
    assert_eq!(status, 404);
    let (status, body) = running.post(&sup, &path("close"), json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    let (status, body) = running
        .post(&sup, &path("deadline"), json!({"deadline": "12/31/2026"}))
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = running
        .post(&sup, &path("deadline"), json!({"deadline": "2020-01-01"}))
        .await;
    assert_eq!(
        status, 422,
        "a deadline before the item was recorded: {body}"
    );
    let (status, _) = running
        .post(&sup, &path("supervise"), json!({"note": "   "}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = running
        .post(&sup, &path("supervise"), json!({"memo": "x"}))
        .await;
    assert_eq!(status, 422);
    let (status, _) = running
        .post(&sup, &path("reopen"), json!({"reason": "群众不满意"}))
        .await;
    assert_eq!(status, 409, "an open item cannot be reopened");
    let (status, _) = running
        .post(&sup, &path("assign"), json!({"to": "cadre07"}))
        .await;
    assert_eq!(status, 422, "cadre07 is in the other town");

    // Deadline and 督办.
    let (status, body) = running
        .post(&sup, &path("deadline"), json!({"deadline": "2026-12-31"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["petition"]["deadline"], "2026-12-31");
    let (status, body) = running
        .post(&sup, &path("supervise"), json!({"note": "请抓紧办理。"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["petition"]["status"], "in_progress");

    // Escalated to the town, to its supervisor, who then works on it.
    let (status, body) = running
        .post(
            &sup,
            &path("escalate"),
            json!({"note": "需镇里协调", "to": "sup-town1"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["petition"]["level"], "town");
    assert_eq!(body["petition"]["responsible"], "sup-town1");
    let (_, mine) = running.get(&sup, "/api/v1/me/assigned").await;
    assert!(
        mine["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["id"] == pid.to_string()),
        "{mine}"
    );
    let (status, body) = running
        .post(&sup, &path("progress"), json!({"note": "已协调水利站"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = running
        .post(&cadre, &path("progress"), json!({"note": "我也来"}))
        .await;
    assert_eq!(status, 403, "cadre01 is no longer responsible");

    // Reassigned to cadre02, whose diary it is not.
    let (status, body) = running
        .post(&sup, &path("assign"), json!({"to": "cadre02"}))
        .await;
    assert_eq!(status, 200, "{body}");
    for bad in ["status=nope", "page=0", "per_page=500"] {
        let (status, _) = running
            .get(&cadre02, &format!("/api/v1/me/assigned?{bad}"))
            .await;
        assert_eq!(status, 400, "{bad}");
    }
    let (_, mine) = running
        .get(&cadre02, "/api/v1/me/assigned?status=in_progress")
        .await;
    let items = mine["items"].as_array().expect("items");
    assert!(
        items
            .iter()
            .any(|i| i["id"] == pid.to_string() && i["owner"] == "cadre01"),
        "{mine}"
    );
    let (status, body) = running
        .post(&cadre02, &path("progress"), json!({"note": "已上门查看"}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = running
        .post(&cadre02, &path("resolve"), json!({"note": "水管已修复"}))
        .await;
    assert_eq!(
        (status, body["petition"]["status"].as_str()),
        (200, Some("resolved")),
        "{body}"
    );
    let (status, _) = running
        .post(
            &cadre02,
            &path("feedback"),
            json!({"note": "x", "satisfaction": "happy"}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = running
        .post(
            &cadre02,
            &path("feedback"),
            json!({"note": "已当面反馈", "satisfaction": "satisfied"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event_ids"].as_array().map(Vec::len), Some(2));

    // Signed off (town level: the town's supervisor may), then reopened.
    let (status, _) = running.post(&other_town, &path("close"), json!({})).await;
    assert_eq!(
        status, 404,
        "another town's supervisor cannot tell it exists"
    );
    let (status, body) = running
        .post(&sup, &path("close"), json!({"note": "予以销号"}))
        .await;
    assert_eq!(
        (status, body["petition"]["status"].as_str()),
        (200, Some("closed")),
        "{body}"
    );
    let (status, _) = running.post(&sup, &path("close"), json!({})).await;
    assert_eq!(status, 409);
    let (status, body) = running
        .post(&sup, &path("reopen"), json!({"reason": "群众反映仍漏水"}))
        .await;
    assert_eq!(
        (status, body["petition"]["status"].as_str()),
        (200, Some("in_progress")),
        "{body}"
    );

    // The history: every event the server wrote is its actor's, believed.
    let (status, detail) = running
        .get(&cadre02, &format!("/api/v1/petitions/{pid}"))
        .await;
    assert_eq!(status, 200, "the responsible person sees it: {detail}");
    let events = detail["events"].as_array().expect("events");
    let written: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["via_server"] == true)
        .map(|e| {
            (
                e["type"].as_str().unwrap_or(""),
                e["by"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        written,
        vec![
            ("deadline_set", "sup-town1"),
            ("supervised", "sup-town1"),
            ("escalated", "sup-town1"),
            ("assigned", "sup-town1"),
            ("progress_noted", "sup-town1"),
            ("assigned", "sup-town1"),
            ("progress_noted", "cadre02"),
            ("resolved", "cadre02"),
            ("feedback_given", "cadre02"),
            ("rated", "cadre02"),
            ("closed", "sup-town1"),
            ("reopened", "sup-town1"),
        ]
    );
    assert!(events.iter().all(|e| e["believed"] == true), "{detail}");
    let (status, _) = running
        .get(&other_town, &format!("/api/v1/petitions/{pid}"))
        .await;
    assert_eq!(status, 404, "outside the other town's subtree");

    // Audited, with the acting user.
    let audit = store.list_audit(200).await.expect("audit");
    let sup_id = store
        .get_user_by_username("sup-town1")
        .await
        .expect("get")
        .expect("sup")
        .id;
    for action in [
        "petition.deadline_set",
        "petition.supervised",
        "petition.escalated",
        "petition.closed",
        "petition.reopened",
    ] {
        assert!(
            audit.iter().any(|a| a.action == action
                && a.user_id == Some(sup_id)
                && a.target == format!("{doc}/{pid}")),
            "{action} audited"
        );
    }

    // `ledger rebuild` gives the same attributed history: attribution comes
    // from the stored actors, not from whatever wrote the rows.
    let before = running
        .get(&sup, &format!("/api/v1/petitions/{pid}"))
        .await
        .1;
    server::ledger::rebuild(store.as_ref(), |_, _| {})
        .await
        .expect("rebuild");
    let after = running
        .get(&sup, &format!("/api/v1/petitions/{pid}"))
        .await
        .1;
    assert_eq!(before, after);

    // The phone gets all of it on its next sync.
    let all_there = |d: &Device| {
        d.diary(&doc)
            .petition(pid)
            .is_some_and(|p| p.events.len() == 13)
    };
    phone.sync_until(all_there).await;
    phone.close().await;
    running.stop().await;
}

test_support::backends!(
    ledger_rows_after_each_write_match_a_rebuild,
    a_forged_sign_off_is_the_cadres_and_not_believed,
    a_device_cannot_write_with_the_servers_actor,
    a_whole_document_cannot_carry_the_servers_actor,
    a_device_cannot_alter_what_the_server_wrote,
    a_full_diary_takes_no_more_supervision,
    a_petition_id_in_two_diaries_needs_its_document,
    supervisors_act_and_assignees_work_through_the_api,
);
