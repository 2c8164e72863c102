//! Live documents (`server::sync::live`): a document's copy in memory is
//! always the stored document: it picks up writes that did not go through
//! it, it never keeps what a refused or failed merge put into it, and
//! dropping it (idle, over budget) loses nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::SeedableRng;
use rand::rngs::StdRng;
use server::ledger::report::RecordQuery;
use server::ledger::{LedgerProjection, Writer};
use server::store::{ActorClaim, AppendOutcome, DocumentWrite, Role, Store, StoredKind};
use server::sync::{DocumentGuard, LiveDocument, LiveError, LiveLimits, SyncHub, store_write};
use sync_core::automerge::{ActorId, Automerge};
use sync_core::records::visit::{VisitKind, VisitUpdate};
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp};
use test_support::store as common;
use test_support::{Device, Served};

test_support::backends!(
    a_copy_picks_up_chunks_stored_past_it,
    a_copy_not_put_back_is_loaded_again,
    idle_and_over_budget_copies_are_dropped,
    a_write_on_a_copy_that_missed_another_process_is_made_again,
    a_document_stored_without_heads_gets_them_when_loaded,
);

const AT: Timestamp = test_support::EDIT_TIME;

/// A one-visit diary of `owner` and its first stored write.
fn diary(owner: &str) -> (DiaryDocument, Vec<u8>) {
    let edit = Edit::new(owner, AT);
    let mut diary = DiaryDocument::create(owner, 2026, ActorId::random(), &edit).expect("create");
    let mut rng = StdRng::seed_from_u64(1);
    diary
        .add_visit(&edit, &sync_core::fixtures::visit(&mut rng, AT, owner))
        .expect("visit");
    let bytes = diary.automerge().save();
    (diary, bytes)
}

/// Adds a visit to `diary` with a fresh actor; returns the change's bytes.
fn one_more_visit(diary: &mut DiaryDocument, owner: &str, seed: u64) -> (Vec<u8>, ActorId) {
    let heads = diary.automerge().get_heads();
    let actor = ActorId::random();
    diary.automerge_mut().set_actor(actor.clone());
    let mut rng = StdRng::seed_from_u64(seed);
    let edit = Edit::new(owner, AT);
    diary
        .add_visit(&edit, &sync_core::fixtures::visit(&mut rng, AT, owner))
        .expect("visit");
    (diary.automerge().save_after(&heads), actor)
}

async fn store_diary(store: &dyn Store, id: DocumentId, owner_id: i64, bytes: Vec<u8>) -> i64 {
    store
        .append_changes(DocumentWrite {
            data: bytes,
            ..common::creation(id, StoredKind::Diary, owner_id, Some(2026))
        })
        .await
        .expect("store")
        .chunk_id
}

async fn owner(store: &dyn Store) -> i64 {
    let unit = common::unit(store, "V1", None, "village").await;
    common::user(store, "cadre01", Role::Cadre, &unit).await.id
}

/// The copy of `id` under `guard`; the document must be stored.
async fn copy(guard: &mut DocumentGuard, store: &dyn Store, id: DocumentId) -> LiveDocument {
    guard
        .current(store, id)
        .await
        .expect("current")
        .expect("stored")
}

fn visits(doc: &Automerge) -> usize {
    DiaryDocument::from_automerge(doc.clone())
        .expect("diary")
        .visits()
        .len()
}

/// A chunk stored without the copy (another process, a restored backup)
/// is applied to the copy before it is used, and so are the writer's
/// claims on its actors.
async fn a_copy_picks_up_chunks_stored_past_it(store: Arc<dyn Store>) {
    let owner_id = owner(store.as_ref()).await;
    let id = DocumentId::from_bytes([7; 16]);
    let (mut diary, bytes) = diary("cadre01");
    store_diary(store.as_ref(), id, owner_id, bytes).await;
    let hub = SyncHub::new();

    let mut guard = hub.lock(id).await;
    let live = copy(&mut guard, store.as_ref(), id).await;
    assert_eq!(visits(&live.doc), 1);
    guard.keep(live);
    drop(guard);
    assert_eq!(hub.live().held_documents(), 1);

    let (chunk, actor) = one_more_visit(&mut diary, "cadre01", 2);
    store
        .append_changes(DocumentWrite {
            heads: None,
            document_id: id,
            create: None,
            data: chunk,
            at: Utc::now(),
            ledger: None,
            actors: vec![ActorClaim {
                actor: actor.to_hex_string(),
                user_id: owner_id,
                device_id: "elsewhere".into(),
                via_server: false,
            }],
            based_on: None,
            sync: None,
        })
        .await
        .expect("a write past the copy");

    let mut guard = hub.lock(id).await;
    let live = copy(&mut guard, store.as_ref(), id).await;
    assert_eq!(visits(&live.doc), 2, "the chunk stored past the copy");
    assert_eq!(
        live.doc.get_heads(),
        diary.automerge().get_heads(),
        "the copy equals the stored document"
    );
    assert_eq!(
        live.known.writer(&actor).map(|w| w.device_id.as_str()),
        Some("elsewhere")
    );
    let stored = store.load_document(&id).await.expect("load").expect("doc");
    assert_eq!(live.version, stored.version());
    assert_eq!(
        live.stored_bytes,
        server::sync::documents::stored_size(Some(&stored))
    );
    guard.keep(live);
}

/// A caller that takes the copy and does not put it back (its merge was
/// refused, its write failed) leaves the slot empty: whatever it did to the
/// copy is gone, and the next use loads the stored document.
async fn a_copy_not_put_back_is_loaded_again(store: Arc<dyn Store>) {
    let owner_id = owner(store.as_ref()).await;
    let id = DocumentId::from_bytes([8; 16]);
    let (diary, bytes) = diary("cadre01");
    store_diary(store.as_ref(), id, owner_id, bytes).await;
    let hub = SyncHub::new();

    let mut guard = hub.lock(id).await;
    let mut live = copy(&mut guard, store.as_ref(), id).await;
    let mut unstored = DiaryDocument::from_automerge(live.doc.clone()).expect("diary");
    let (change, _) = one_more_visit(&mut unstored, "cadre01", 3);
    live.doc.load_incremental(&change).expect("apply");
    assert_eq!(visits(&live.doc), 2);
    drop(live);
    drop(guard);
    assert_eq!(hub.live().held_documents(), 0);

    let mut guard = hub.lock(id).await;
    let live = copy(&mut guard, store.as_ref(), id).await;
    assert_eq!(visits(&live.doc), 1, "only what is stored");
    assert_eq!(live.doc.get_heads(), diary.automerge().get_heads());
    guard.keep(live);
    // A document that is not stored has no copy.
    let mut other = hub.lock(DocumentId::from_bytes([9; 16])).await;
    assert!(
        other
            .current(store.as_ref(), DocumentId::from_bytes([9; 16]))
            .await
            .expect("current")
            .is_none()
    );
}

/// Copies unused past the idle limit, and the least recently used past the
/// memory budget, are dropped; the documents load again, whole.
async fn idle_and_over_budget_copies_are_dropped(store: Arc<dyn Store>) {
    let owner_id = owner(store.as_ref()).await;
    let ids: Vec<DocumentId> = (0..3u8)
        .map(|n| DocumentId::from_bytes([20 + n; 16]))
        .collect();
    for id in &ids {
        let (_, bytes) = diary("cadre01");
        store_diary(store.as_ref(), *id, owner_id, bytes).await;
    }
    let use_all = |hub: Arc<SyncHub>| {
        let store = store.clone();
        let ids = ids.clone();
        async move {
            for id in ids {
                let mut guard = hub.lock(id).await;
                let live = copy(&mut guard, store.as_ref(), id).await;
                assert_eq!(visits(&live.doc), 1);
                guard.keep(live);
            }
        }
    };

    // Idle: nothing is dropped before the limit, everything after it.
    let hub = Arc::new(SyncHub::with_live_limits(LiveLimits {
        memory_bytes: usize::MAX,
        idle: Duration::from_millis(200),
    }));
    use_all(hub.clone()).await;
    hub.live().evict();
    assert_eq!(hub.live().held_documents(), 3);
    tokio::time::sleep(Duration::from_millis(250)).await;
    hub.live().evict();
    assert_eq!(hub.live().held_documents(), 0);
    assert_eq!(hub.live().held_bytes(), 0);
    use_all(hub.clone()).await;

    // Over budget: room for about one copy; the latest used stays.
    let one = {
        let hub = Arc::new(SyncHub::new());
        use_all(hub.clone()).await;
        hub.live().held_bytes() / 3
    };
    let hub = Arc::new(SyncHub::with_live_limits(LiveLimits {
        memory_bytes: one + one / 2,
        idle: Duration::from_secs(3600),
    }));
    use_all(hub.clone()).await;
    assert_eq!(hub.live().held_documents(), 1);
    let mut guard = hub.lock(ids[2]).await;
    assert!(
        guard
            .current(store.as_ref(), ids[2])
            .await
            .expect("current")
            .is_some()
    );
    drop(guard);
    // A copy whose lock is held is never dropped from under its holder.
    let held = hub.lock(ids[0]).await;
    hub.live().evict();
    drop(held);
    use_all(hub.clone()).await;
}

/// Edits the diary in `live` as cadre01's `device` (a fresh actor) and
/// stores the change with its ledger rows, as a sync or a petition action
/// does ([`store_write`]).
async fn edit_and_store(
    store: &dyn Store,
    id: DocumentId,
    mut live: LiveDocument,
    (owner_id, device): (i64, &str),
    edit: impl FnOnce(&mut DiaryDocument, &Edit),
) -> Result<(LiveDocument, AppendOutcome), LiveError> {
    let doc = std::mem::replace(&mut live.doc, Automerge::new());
    let mut diary = DiaryDocument::from_automerge(doc).expect("diary");
    let heads = diary.automerge().get_heads();
    let actor = ActorId::random();
    diary.automerge_mut().set_actor(actor.clone());
    edit(&mut diary, &Edit::new("cadre01", AT));
    live.doc = diary.into_automerge();
    let writer = Writer {
        username: "cadre01".into(),
        user_id: owner_id,
        device_id: device.into(),
        via_server: false,
    };
    live.known.insert(actor.clone(), writer);
    let ledger = LedgerProjection::after_changes(&live.doc, &live.known, &heads, None);
    let write = DocumentWrite {
        heads: None,
        document_id: id,
        create: None,
        data: live.doc.save_after(&heads),
        at: Utc::now(),
        ledger: Some(ledger),
        actors: vec![ActorClaim {
            actor: actor.to_hex_string(),
            user_id: owner_id,
            device_id: device.into(),
            via_server: false,
        }],
        based_on: None,
        sync: None,
    };
    store_write(store, live, write, heads).await
}

/// Two server processes on one database (two hubs on one store): process
/// B reads its copy, process A stores an edit of a visit, then B stores
/// its own edit of the same visit from the copy that missed A's. B's write
/// is refused as stale, B's copy takes in A's chunk, and the write is made
/// again: the visit's ledger row shows both edits, as a rebuild of the
/// ledger from the stored document does.
async fn a_write_on_a_copy_that_missed_another_process_is_made_again(store: Arc<dyn Store>) {
    let unit = common::unit(store.as_ref(), "V1", None, "village").await;
    let owner_id = common::user(store.as_ref(), "cadre01", Role::Cadre, &unit)
        .await
        .id;
    let id = DocumentId::from_bytes([10; 16]);
    let (diary, bytes) = diary("cadre01");
    let visit = diary.visits()[0].id;
    store_diary(store.as_ref(), id, owner_id, bytes).await;
    let (process_a, process_b) = (SyncHub::new(), SyncHub::new());

    let mut guard_b = process_b.lock(id).await;
    let live_b = copy(&mut guard_b, store.as_ref(), id).await;

    let mut guard_a = process_a.lock(id).await;
    let live_a = copy(&mut guard_a, store.as_ref(), id).await;
    let rename = VisitUpdate {
        place: Some("东头新村文化广场".into()),
        ..VisitUpdate::default()
    };
    let (live_a, _) = edit_and_store(store.as_ref(), id, live_a, (owner_id, "phone"), |d, e| {
        d.update_visit(e, visit, &rename).expect("rename");
    })
    .await
    .expect("A stores its edit");
    guard_a.keep(live_a);

    let follow_up = VisitUpdate {
        kind: Some(VisitKind::FollowUp),
        ..VisitUpdate::default()
    };
    let (live_b, _) = edit_and_store(store.as_ref(), id, live_b, (owner_id, "tablet"), |d, e| {
        d.update_visit(e, visit, &follow_up).expect("kind");
    })
    .await
    .expect("B stores its edit once its copy has A's");
    let stored = store.load_document(&id).await.expect("load").expect("doc");
    assert_eq!(live_b.version, stored.version());
    let merged = DiaryDocument::from_automerge(live_b.doc.clone()).expect("diary");
    let merged = merged.visit(visit).expect("visit");
    assert_eq!(
        (merged.place.as_str(), merged.kind),
        ("东头新村文化广场", VisitKind::FollowUp)
    );
    guard_b.keep(live_b);

    let query = RecordQuery {
        root_unit_id: unit.id,
        owner_user_id: None,
        from: None,
        to: None,
        kind: None,
        text: None,
        limit: 10,
        offset: 0,
    };
    let (rows, _) = store.query_visits(&query).await.expect("visits");
    let row = rows
        .iter()
        .find(|r| r.id == visit.to_string())
        .expect("the visit's row");
    assert_eq!(
        (row.place.as_str(), row.kind),
        ("东头新村文化广场", VisitKind::FollowUp),
        "the row has both processes' edits"
    );
    server::ledger::rebuild(store.as_ref(), |_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(store.query_visits(&query).await.expect("visits").0, rows);
}

/// Over real sockets: a refused message (a change in the server's name) is
/// not kept in memory. The cadre's next device, and the next supervisor
/// action (which writes from the copy), see only what was stored.
/// A document stored before rows kept their heads (a write without them)
/// gets them from its first load, so the listing in the next handshake
/// has them.
async fn a_document_stored_without_heads_gets_them_when_loaded(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let owner_id = owner(s).await;
    let (diary, bytes) = diary("cadre01");
    let id = DocumentId::from_bytes([31; 16]);
    store_diary(s, id, owner_id, bytes).await;
    let listed = || async {
        s.list_document_heads(owner_id)
            .await
            .expect("list")
            .into_iter()
            .find(|d| d.id == id)
            .expect("listed")
            .heads
    };
    assert_eq!(listed().await, None, "stored without heads");
    let hub = SyncHub::new();
    let mut guard = hub.lock(id).await;
    let copy = copy(&mut guard, s, id).await;
    let mut heads = diary.automerge().get_heads();
    heads.sort();
    assert_eq!(copy.doc.get_heads(), diary.automerge().get_heads());
    assert_eq!(listed().await, Some(heads));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sync_leaves_nothing_in_memory() {
    use sync_core::records::petition::PetitionEventKind;

    let running = Served::start().await;
    let mut rng = StdRng::seed_from_u64(5);
    let mut phone = running.device("cadre01", "phone-a").await;
    let (doc, visit) = phone.create_diary(&mut rng);
    let pid = phone.add_petition(&doc, &mut rng, Some(visit));
    phone.sync().await;
    let sup = running.login("sup-town1", "desk").await;
    let client = reqwest::Client::new();
    let supervise = |note: &'static str| {
        let client = client.clone();
        let sup = sup.clone();
        let url = format!("{}/api/v1/petitions/{pid}/supervise", running.base_url());
        async move {
            let r = client
                .post(url)
                .bearer_auth(sup)
                .json(&serde_json::json!({ "note": note }))
                .send()
                .await
                .expect("post");
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        }
    };
    supervise("请一周内办结。").await;
    let supervised = |d: &Device| {
        d.diary(&doc)
            .petition(pid)
            .is_some_and(|p| p.events.iter().any(|e| e.by == "sup-town1"))
    };
    phone.sync_until(supervised).await;
    // A sign-off forged in the server's name: applied to the copy, then
    // refused.
    let diary = phone.forge_server_sign_off(doc, pid);
    phone.docs.insert(doc, diary.into_automerge());
    phone.flush().await;
    let error = phone.expect_error_and_close().await;
    assert!(error.contains("belongs to another writer"), "{error}");

    // The next supervisor action writes from the document as stored.
    supervise("请今天内反馈。").await;
    let mut second = running.device("cadre01", "phone-b").await;
    second.request(doc).await;
    let has_both = |d: &Device| {
        d.docs.contains_key(&doc)
            && d.diary(&doc)
                .petition(pid)
                .is_some_and(|p| p.events.iter().filter(|e| e.by == "sup-town1").count() == 2)
    };
    second.sync_until(has_both).await;
    let petition = second.diary(&doc).petition(pid).expect("petition");
    assert!(
        !petition
            .events
            .iter()
            .any(|e| e.by == "sup-town1" && matches!(e.kind, PetitionEventKind::Closed { .. })),
        "the refused sign-off reached another device: {:?}",
        petition.events
    );
    // And the store holds exactly what that device has.
    let store = running.store().await;
    let stored = store.load_document(&doc).await.expect("load").expect("doc");
    let loaded = server::sync::documents::load(doc, Some(&stored)).expect("loads");
    assert_eq!(loaded.get_heads(), second.docs[&doc].get_heads());
    running.stop().await;
}

/// Over real sockets with a memory budget that holds no copy at all: every
/// sync loads the document, and two devices still converge on everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncing_works_with_no_room_for_live_copies() {
    let running = Served::start_with(|c| c.live_documents_memory_bytes = 1).await;
    let mut rng = StdRng::seed_from_u64(6);
    let mut a = running.device("cadre01", "phone-a").await;
    let (doc, _) = a.create_diary(&mut rng);
    a.sync().await;
    let mut b = running.device("cadre01", "phone-b").await;
    b.request(doc).await;
    for round in 0..3 {
        a.add_visit(&doc, &mut rng);
        b.sync_until(|d| d.docs.contains_key(&doc)).await;
        b.add_visit(&doc, &mut rng);
        a.sync().await;
        b.sync().await;
        let want = 1 + 2 * (round + 1);
        a.sync_until(|d| d.visit_count(&doc) == want).await;
        b.sync_until(|d| d.visit_count(&doc) == want).await;
    }
    running.stop().await;
}
