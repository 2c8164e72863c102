//! The WebSocket sync endpoint against a real server on 127.0.0.1:0, with
//! sync-core's own client (`ClientConnection`, in test-support's `Device`)
//! driving real sockets. The scenarios that need the real binary (offline
//! merges, access between users, malformed frames, a killed server) are in
//! the end-to-end suite; these need the server's configuration or its store.

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::store::Store;
use sync_core::automerge::{ActorId, Automerge};
use sync_core::fixtures;
use sync_core::protocol::{DocSyncStatus, Message};
use sync_core::testing::chunks::{compressed_change_chunk, document_body, document_chunk};
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp};
use test_support::Served as TestServer;
use test_support::{TokenIn, Ws, next_test_year, open_socket};
use tokio_tungstenite::tungstenite::{self, http};

/// A WebSocket upgrade to `server`, the token (if any) in the header.
async fn socket(server: &TestServer, token: Option<&str>) -> Result<Ws, tungstenite::Error> {
    open_socket(server.addr, token, TokenIn::Header).await
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// cadre01's phone on `server`, having synced a new diary whose root names
/// `owner`; the phone and the diary's id.
async fn phone_with_a_diary_of(
    server: &TestServer,
    rng: &mut StdRng,
    owner: &str,
) -> (test_support::Device, DocumentId) {
    let mut phone = server.device("cadre01", "phone").await;
    let id = phone.create_diary_owned_by(rng, owner).0;
    phone.sync().await;
    (phone, id)
}

/// `device` asks for `id`: synced, holding `visits` visits.
async fn assert_synced_with_visits(
    device: &mut test_support::Device,
    id: DocumentId,
    visits: usize,
) {
    assert_eq!(
        device.request(id).await,
        Some(DocSyncStatus::Synced),
        "{id}"
    );
    assert_eq!(device.visit_count(&id), visits, "{id}");
}

/// cadre01 as the store holds them.
async fn cadre01(store: &dyn Store) -> server::store::User {
    store
        .get_user_by_username("cadre01")
        .await
        .expect("user")
        .expect("cadre01")
}

/// Document ids are derived from a username and a year, which anyone may
/// know. A cadre probing a colleague's ids gets the same answer whether the
/// diary exists or not, and cannot take the id of one not made yet.
async fn a_colleagues_diary_looks_missing_and_its_id_cannot_be_taken(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    let mut rng = rng(15);
    let mut colleague = server.device("cadre02", "phone").await;
    let (existing, _) = colleague.create_diary(&mut rng);
    colleague.sync().await;
    assert_eq!(
        colleague.conn.status(&existing, &colleague.docs),
        Some(DocSyncStatus::Synced)
    );
    let next_year = next_test_year();
    let not_yet = sync_core::diary_id("cadre02", next_year);
    let random = DocumentId::from_bytes(rng.random());

    // A sync with nothing to add, and one asking for the document: the same
    // doc-unavailable for the colleague's diary, their diary not made yet,
    // and an id nobody holds. (Before, the missing ones got a sync answer.)
    let mut probe = server.device("cadre01", "probe").await;
    for id in [existing, not_yet, random] {
        probe.send(&raw_sync(id, vec![])).await;
        match next_message(&mut probe).await {
            Message::DocUnavailable { document_id, .. } => assert_eq!(document_id, id),
            other => panic!("{id}: expected doc-unavailable, got {other:?}"),
        }
        assert_eq!(probe.request(id).await, Some(DocSyncStatus::Unavailable));
    }

    // cadre01 makes a diary of their own (their name in the root) at the id
    // of the colleague's next one: refused, and the colleague still gets it.
    let mut squatter = server.device("cadre01", "phone").await;
    assert_eq!(
        sync_new_diary(&mut squatter, not_yet, "cadre01", next_year).await,
        Some(DocSyncStatus::Unavailable)
    );
    assert_eq!(
        sync_new_diary(&mut colleague, not_yet, "cadre02", next_year).await,
        Some(DocSyncStatus::Synced)
    );
}

/// A new document stands at the id derived from its own root: a diary of
/// one year at the id of another year is refused.
async fn a_new_diary_at_the_id_of_another_year_is_refused(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    let (year, other_year) = (next_test_year(), next_test_year());
    let id = sync_core::diary_id("cadre01", year);
    let mut phone = server.device("cadre01", "phone").await;
    assert_eq!(
        sync_new_diary(&mut phone, id, "cadre01", other_year).await,
        Some(DocSyncStatus::Unavailable)
    );
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(
        sync_new_diary(&mut tablet, id, "cadre01", year).await,
        Some(DocSyncStatus::Synced)
    );
}

/// Syncs a new, empty diary of `owner` for `year` from `device` at `id`;
/// how the server took it.
async fn sync_new_diary(
    device: &mut test_support::Device,
    id: DocumentId,
    owner: &str,
    year: i32,
) -> Option<DocSyncStatus> {
    let diary = DiaryDocument::create_shared(owner, year, ActorId::random())
        .expect("diary")
        .into_automerge();
    device.docs.insert(id, diary);
    device.conn.add_document(id);
    device.sync().await;
    device.conn.status(&id, &device.docs)
}

/// Text holding a NUL byte (which PostgreSQL's text columns cannot hold)
/// syncs like any other and reaches the ledger, the NUL shown as U+FFFD.
async fn text_with_a_nul_byte_syncs_and_reaches_the_ledger(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    let mut rng = rng(16);
    let mut phone = server.device("cadre01", "phone").await;
    let (id, visit) = phone.create_diary(&mut rng);
    let mut petition = fixtures::petition(&mut rng, test_support::EDIT_TIME, Some(visit));
    petition.matter = "屋顶\0漏雨".to_owned();
    let pid = phone.add_this_petition(&id, &petition);
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Synced)
    );
    let token = server.login("cadre01", "web").await;
    let (status, body) = server
        .get(&token, &format!("/api/v1/petitions/{pid}"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["petition"]["matter"], "屋顶\u{FFFD}漏雨", "{body}");
    // A fresh device gets the text as it was written.
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(tablet.request(id).await, Some(DocSyncStatus::Synced));
    let stored = tablet.diary(&id).petition(pid).expect("petition");
    assert_eq!(stored.matter, "屋顶\0漏雨");
}

async fn creating_a_document_for_someone_else_is_refused(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    // The root names cadre02 as the owner: not cadre01's to create.
    let (phone, id) = phone_with_a_diary_of(&server, &mut rng(3), "cadre02").await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Unavailable)
    );
    let mut owner = server.device("cadre02", "phone").await;
    assert_eq!(owner.request(id).await, Some(DocSyncStatus::Unavailable));
}

async fn upgrade_without_a_valid_token_is_401(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    for token in [None, Some("not-a-token")] {
        match socket(&server, token).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), http::StatusCode::UNAUTHORIZED);
            }
            Ok(_) => panic!("upgraded without a valid token"),
            Err(e) => panic!("unexpected error {e}"),
        }
    }
}

/// Keeps syncing until the server sends `error`, then expects the close.
/// Returns the error's text.
async fn oversized_changes_and_frames_are_refused(store: Arc<dyn Store>) {
    const LIMIT: usize = 4 * 1024;
    let server = TestServer::on_store(store, |c| c.max_document_bytes = LIMIT).await;
    let mut rng = rng(6);

    // A sync message whose changes exceed the document limit.
    let mut phone = server.device("cadre01", "phone").await;
    let year = next_test_year();
    let id = sync_core::diary_id("cadre01", year);
    let at = Timestamp::from_millis(1_780_000_000_000);
    let mut diary = DiaryDocument::create(
        "cadre01",
        year,
        ActorId::random(),
        &Edit::new("cadre01", at),
    )
    .expect("create diary");
    let mut visit = fixtures::visit(&mut rng, at, "cadre01");
    // Random text, so compression cannot shrink it under the limit.
    visit.notes = (0..4 * LIMIT)
        .map(|_| char::from(rng.random_range(b'!'..=b'~')))
        .collect();
    diary
        .add_visit(&Edit::new("cadre01", at), &visit)
        .expect("add visit");
    phone.docs.insert(id, diary.into_automerge());
    phone.conn.add_document(id);
    for m in phone.conn.poll(&phone.docs) {
        phone.send(&m).await;
    }
    phone.expect_error_and_close().await;

    // A frame over the message limit (document limit plus envelope).
    let mut other = server.device("cadre01", "tablet").await;
    other
        .ws
        .send(tungstenite::Message::Binary(
            vec![0u8; LIMIT + 128 * 1024].into(),
        ))
        .await
        .expect("send");
    other.expect_error_and_close().await;

    // Nothing was stored.
    let mut check = server.device("cadre01", "laptop").await;
    assert_eq!(check.request(id).await, Some(DocSyncStatus::Unavailable));
}

/// A raw DEFLATE stream of `mib` MiB of zeros, built without compressing
/// them all: one megabyte compressed with a sync flush (byte aligned, not
/// final) repeated, then an empty final block. Each segment starts with a
/// literal zero and copies it, so it is valid wherever it sits.
fn deflate_bomb(mib: usize) -> Vec<u8> {
    let mut compress = flate2::Compress::new(flate2::Compression::best(), false);
    let zeros = vec![0u8; 1024 * 1024];
    let mut segment = Vec::with_capacity(8 * 1024);
    compress
        .compress_vec(&zeros, &mut segment, flate2::FlushCompress::Sync)
        .expect("compress");
    assert_eq!(
        compress.total_in(),
        zeros.len() as u64,
        "whole megabyte taken"
    );
    let mut stream = Vec::with_capacity(segment.len() * mib + 2);
    for _ in 0..mib {
        stream.extend_from_slice(&segment);
    }
    // BFINAL = 1, fixed Huffman, end of block.
    stream.extend_from_slice(&[0x03, 0x00]);
    stream
}

/// The body of a document chunk with no actors, heads or change columns and
/// one operation column, the values (column 5, type 7), marked
/// DEFLATE-compressed (bit 3) and holding `deflated`.
fn document_body_with_compressed_column(deflated: &[u8]) -> Vec<u8> {
    document_body(&[((5 << 4) | 7 | 0b1000, deflated.to_vec())])
}

/// The next message from the server, skipping pings.
async fn next_message(device: &mut test_support::Device) -> Message {
    loop {
        match device.next_frame().await {
            tungstenite::Message::Binary(bytes) => {
                return Message::decode(&bytes).expect("server message decodes");
            }
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// A sync message for `id` carrying `chunks` as its changes.
fn raw_sync(id: DocumentId, chunks: Vec<Vec<u8>>) -> Message {
    let data = sync_core::automerge::sync::Message {
        heads: vec![],
        need: vec![],
        have: vec![],
        changes: chunks.into(),
        flags: None,
        version: sync_core::automerge::sync::MessageVersion::V1,
    }
    .encode();
    Message::Sync {
        document_id: id,
        sender_id: "hostile".to_owned(),
        target_id: server::sync::session::SERVER_PEER_ID.to_owned(),
        data,
    }
}

/// A new diary of `owner` for `year` whose root also holds maps nested
/// `depth` deep.
fn deeply_nested_diary(owner: &str, year: i32, depth: usize) -> Automerge {
    use sync_core::automerge::transaction::Transactable;
    use sync_core::automerge::{ObjType, ROOT};
    let at = Timestamp::from_millis(1_780_000_000_000);
    let mut doc = DiaryDocument::create(owner, year, ActorId::random(), &Edit::new(owner, at))
        .expect("create diary")
        .into_automerge();
    let mut tx = doc.transaction();
    let mut obj = tx.put_object(ROOT, "nested", ObjType::Map).expect("put");
    for _ in 1..depth {
        obj = tx.put_object(&obj, "n", ObjType::Map).expect("put");
    }
    tx.commit();
    doc
}

/// A change after `deps` making two maps in the root, its operations
/// counted from `u32::MAX`.
fn change_counting_past_32_bits(deps: Vec<sync_core::automerge::ChangeHash>) -> Vec<u8> {
    use sync_core::automerge::legacy::{Key, ObjectId, Op, OpType, SortedVec};
    let make_map = |key: &str| Op {
        action: OpType::Make(sync_core::automerge::ObjType::Map),
        obj: ObjectId::Root,
        key: Key::Map(key.into()),
        pred: SortedVec::new(),
        insert: false,
    };
    let change = sync_core::automerge::ExpandedChange {
        operations: vec![make_map("a"), make_map("b")],
        actor_id: ActorId::random(),
        hash: None,
        seq: 1,
        start_op: std::num::NonZeroU64::new(u64::from(u32::MAX)).expect("non-zero"),
        time: 0,
        message: None,
        deps,
        extra_bytes: vec![],
        author: None,
    };
    sync_core::automerge::Change::from(change)
        .raw_bytes()
        .to_vec()
}

async fn metrics_text(server: &TestServer) -> String {
    reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics text")
}

async fn hostile_payloads_are_refused_and_others_keep_syncing(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    let mut rng = rng(7);
    // An honest device, connected throughout.
    let (mut phone, honest) = phone_with_a_diary_of(&server, &mut rng, "cadre01").await;

    // 1. A compressed change of ~256 KB that inflates to 256 MiB.
    let bomb = compressed_change_chunk(&deflate_bomb(256));
    assert!(bomb.len() < 300 * 1024, "bomb is {} bytes", bomb.len());
    let bomb_id = sync_core::diary_id("cadre01", next_test_year());
    let mut attacker = server.device("cadre01", "tablet").await;
    let started = std::time::Instant::now();
    attacker.send(&raw_sync(bomb_id, vec![bomb])).await;
    let error = attacker.expect_error_and_close().await;
    assert!(error.contains("inflate"), "error says why: {error}");
    eprintln!("deflate bomb refused in {:?}", started.elapsed());

    // 2. A diary with maps nested 100,000 deep, synced by the ordinary client.
    let started = std::time::Instant::now();
    let year = next_test_year();
    let deep = deeply_nested_diary("cadre01", year, 100_000);
    eprintln!("built the 100,000-deep document in {:?}", started.elapsed());
    let deep_id = sync_core::diary_id("cadre01", year);
    let mut attacker = server.device("cadre01", "laptop").await;
    attacker.docs.insert(deep_id, deep);
    attacker.conn.add_document(deep_id);
    let started = std::time::Instant::now();
    for m in attacker.conn.poll(&attacker.docs) {
        attacker.send(&m).await;
    }
    let error = attacker.expect_error_and_close().await;
    assert!(error.contains("nested"), "error says why: {error}");
    eprintln!("deep document refused in {:?}", started.elapsed());

    // 3. Whole documents in one chunk (automerge's v2 sync message, how a
    // first upload comes): one with a DEFLATE bomb in a column is refused
    // before anything inflates it whole, one naming another owner is
    // answered like a missing document, an honest one is stored.
    let v2_id = sync_core::diary_id("cadre01", next_test_year());
    let mut attacker = server.device("cadre01", "watch").await;
    let bomb_column = document_chunk(&document_body_with_compressed_column(&deflate_bomb(256)));
    attacker.send(&raw_sync(v2_id, vec![bomb_column])).await;
    let error = attacker.expect_error_and_close().await;
    assert!(error.contains("inflate"), "error says why: {error}");

    let mut sender = server.device("cadre01", "watch").await;
    // At an id of cadre01's, so the root's owner is what refuses it.
    let year = next_test_year();
    let stranger_id = sync_core::diary_id("cadre01", year);
    let theirs = deeply_nested_diary("cadre02", year, 2).save();
    sender.send(&raw_sync(stranger_id, vec![theirs])).await;
    match next_message(&mut sender).await {
        Message::DocUnavailable { document_id, .. } => assert_eq!(document_id, stranger_id),
        other => panic!("expected doc-unavailable, got {other:?}"),
    }
    let year = next_test_year();
    let whole_id = sync_core::diary_id("cadre01", year);
    let whole = deeply_nested_diary("cadre01", year, 2);
    sender.send(&raw_sync(whole_id, vec![whole.save()])).await;
    match next_message(&mut sender).await {
        Message::Sync { document_id, .. } => assert_eq!(document_id, whole_id),
        other => panic!("expected the server's answer, got {other:?}"),
    }

    // 4. A change to the honest diary whose operations count past 32 bits:
    // automerge 0.12 parses it, then panics applying it and leaves the
    // document unable to save. Refused before the merge.
    let mut attacker = server.device("cadre01", "pager").await;
    let heads = phone.docs[&honest].get_heads();
    attacker
        .send(&raw_sync(honest, vec![change_counting_past_32_bits(heads)]))
        .await;
    let error = attacker.expect_error_and_close().await;
    assert!(error.contains("counter"), "error says why: {error}");

    // The honest device kept its connection and keeps syncing.
    phone.add_visit(&honest, &mut rng);
    phone.sync().await;
    let mut check = server.device("cadre01", "desk").await;
    assert_synced_with_visits(&mut check, honest, 2).await;
    // Nothing of either hostile document was stored.
    for id in [bomb_id, deep_id, v2_id, stranger_id] {
        assert_eq!(check.request(id).await, Some(DocSyncStatus::Unavailable));
    }
    // The honest whole document was stored, as it was sent.
    assert_eq!(check.request(whole_id).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.docs[&whole_id].get_heads(), whole.get_heads());
    let store = server.store().await;
    for id in [bomb_id, deep_id, v2_id, stranger_id] {
        assert!(store.load_document(&id).await.expect("load").is_none());
    }
    let metrics = metrics_text(&server).await;
    for reason in ["too_large", "too_deep"] {
        assert!(
            metrics.contains(&format!(
                "sync_refused_payloads_total{{reason=\"{reason}\"}}"
            )),
            "refusals counted: {metrics}"
        );
    }
}

/// A diary the server has none of goes up as one document chunk: the
/// bytes on the wire (both ways, handshake included) stay within 1.1 times
/// its `save()` size, where one change at a time took about ten times it,
/// and it is stored at about that size.
async fn a_first_upload_costs_about_the_saved_size(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    let mut rng = rng(11);
    let start = Timestamp::from_millis(1_780_000_000_000);
    let diary =
        fixtures::diary(&mut rng, "cadre01", ActorId::random(), 300, start).into_automerge();
    let saved = diary.save().len();
    // fixtures::diary is of 2026; the server runs without the demo's diaries.
    let id = sync_core::diary_id("cadre01", 2026);
    let mut phone = server.device("cadre01", "phone").await;
    let handshake = phone.bytes;
    phone.docs.insert(id, diary.clone());
    phone.conn.add_document(id);
    phone.sync().await;
    let wire = phone.bytes;
    eprintln!(
        "first upload of a 300-visit diary: {wire} bytes ({handshake} handshake), save() {saved}"
    );
    assert!(
        wire * 10 <= saved * 11,
        "{wire} bytes on the wire for a document of {saved}"
    );

    let store = server.store().await;
    let stored = store
        .load_document(&id)
        .await
        .expect("load")
        .expect("stored");
    let stored_bytes = server::sync::documents::stored_size(Some(&stored));
    assert!(
        stored_bytes * 10 <= saved * 11,
        "{stored_bytes} bytes stored for a document of {saved}"
    );
    let doc = server::sync::documents::load(id, Some(&stored)).expect("loads");
    assert_eq!(doc.get_heads(), diary.get_heads());
    // Its visits reached the ledger.
    let mut check = server.device("cadre01", "desk").await;
    assert_synced_with_visits(&mut check, id, 300).await;
}

async fn many_small_syncs_are_compacted_and_audited(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    let mut rng = rng(8);
    let (mut phone, id) = phone_with_a_diary_of(&server, &mut rng, "cadre01").await;
    const ROUNDS: usize = 40;
    for _ in 0..ROUNDS {
        phone.add_visit(&id, &mut rng);
        phone.sync().await;
    }

    // Compaction runs in the background, after the syncs were answered.
    let store = server.store().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let stored = loop {
        let stored = store
            .load_document(&id)
            .await
            .expect("load")
            .expect("stored");
        if stored.snapshot.is_some() && stored.chunks.len() < ROUNDS / 2
            || std::time::Instant::now() > deadline
        {
            break stored;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(stored.snapshot.is_some(), "compacted into a snapshot");
    assert!(stored.meta.snapshot_heads.is_some());
    assert!(
        stored.chunks.len() < ROUNDS / 2,
        "{} chunks left",
        stored.chunks.len()
    );
    // Snapshot plus the chunks still hold every change.
    let doc = server::sync::documents::load(id, Some(&stored)).expect("loads");
    assert_eq!(doc.get_heads(), phone.docs[&id].get_heads());
    let diary = DiaryDocument::from_automerge(doc).expect("a diary");
    assert_eq!(diary.visits().len(), ROUNDS + 1);

    // Every stored sync is in the audit log, with who, what and where from.
    let audit = store.list_audit(100).await.expect("audit");
    let writes: Vec<_> = audit
        .iter()
        .filter(|e| e.target == id.to_string() && e.action.starts_with("document."))
        .collect();
    assert_eq!(writes.len(), ROUNDS + 1);
    assert_eq!(
        writes
            .iter()
            .filter(|e| e.action == "document.create")
            .count(),
        1
    );
    for entry in &writes {
        assert!(entry.user_id.is_some());
        assert_eq!(entry.remote_addr.as_deref(), Some("127.0.0.1"));
        // The create carries the diary's first two changes, each later
        // sync one visit.
        let changes = if entry.action == "document.create" {
            2
        } else {
            1
        };
        assert!(
            entry.detail.contains(&format!("sync: {changes} change(s)")),
            "{}",
            entry.detail
        );
    }
    // And a device that starts afresh gets all of it.
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_synced_with_visits(&mut tablet, id, ROUNDS + 1).await;
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains("document_compactions_total{result=\"ok\"}"),
        "{metrics}"
    );
}

async fn a_device_that_kept_its_sync_state_reconnects_cheaply(store: Arc<dyn Store>) {
    const VISITS: usize = 300;
    let server = TestServer::on_store(store, |_| {}).await;
    let mut rng = rng(9);
    // Two diaries of the same size, synced by one device.
    let mut phone = server.device("cadre01", "phone").await;
    let kept = phone.create_diary_owned_by(&mut rng, "cadre01").0;
    let fresh = phone.create_diary_owned_by(&mut rng, "cadre01").0;
    for _ in 1..VISITS {
        phone.add_visit(&kept, &mut rng);
        phone.add_visit(&fresh, &mut rng);
    }
    phone.sync().await;
    let state = phone.conn.sync_state(&kept).expect("client state");
    let mut docs = std::mem::take(&mut phone.docs);
    phone.close().await;
    // The server kept its side too, per device.
    let store = server.store().await;
    let cadre = cadre01(store.as_ref()).await;
    for (device, saved) in [("phone", true), ("phone-2", false)] {
        let state = store
            .load_sync_state(&kept, cadre.id, device)
            .await
            .expect("load state");
        assert_eq!(state.is_some(), saved, "{device}");
    }

    // The same device comes back with its state and one new visit.
    let mut again = server.device("cadre01", "phone").await;
    again.docs.insert(kept, docs.remove(&kept).expect("doc"));
    again.add_visit(&kept, &mut rng);
    again.conn.add_document_with_state(kept, &state);
    let handshake = again.bytes;
    again.sync().await;
    let with_state = again.bytes - handshake;

    // A device with the same history but no kept state on either side.
    let mut other = server.device("cadre01", "phone-2").await;
    other.docs.insert(fresh, docs.remove(&fresh).expect("doc"));
    other.add_visit(&fresh, &mut rng);
    other.conn.add_document(fresh);
    let handshake = other.bytes;
    other.sync().await;
    let without_state = other.bytes - handshake;

    eprintln!(
        "one new visit on a {VISITS}-visit diary: {with_state} bytes with kept sync states, \
         {without_state} without"
    );
    assert!(
        with_state < without_state,
        "{with_state} bytes with state, {without_state} without"
    );
    let mut check = server.device("cadre01", "desk").await;
    assert_synced_with_visits(&mut check, kept, VISITS + 1).await;
    assert_synced_with_visits(&mut check, fresh, VISITS + 1).await;
}

/// A device's last sync (the devices page) moves with every connection,
/// one with nothing new included, while a document whose sync state did
/// not change keeps the state it had: the server writes that row again
/// only when no other row of the connection records the sync.
async fn a_devices_last_sync_moves_with_each_connection(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |_| {}).await;
    let mut rng = rng(21);
    let mut phone = server.device("cadre01", "phone").await;
    let busy = phone.create_diary_owned_by(&mut rng, "cadre01").0;
    let quiet = phone.create_diary_owned_by(&mut rng, "cadre01").0;
    phone.sync().await;
    let mut docs = std::mem::take(&mut phone.docs);
    let mut states = [busy, quiet].map(|id| phone.conn.sync_state(&id).expect("client state"));
    phone.close().await;

    let store = server.store().await;
    let cadre = cadre01(store.as_ref()).await;
    let last_sync = || async {
        let devices = store
            .list_devices(cadre.unit_id, Some(cadre.id))
            .await
            .expect("devices");
        let phone = devices
            .iter()
            .find(|d| d.device_id == "phone")
            .expect("the phone is listed");
        assert_eq!(phone.documents, 2, "{devices:?}");
        phone.last_sync
    };
    let saved = |id: DocumentId| {
        let store = store.clone();
        async move {
            store
                .load_sync_state(&id, cadre.id, "phone")
                .await
                .expect("load state")
                .expect("a state is kept")
        }
    };
    let mut synced_at = last_sync().await;
    let quiet_state = saved(quiet).await;

    // One new visit in one diary, nothing new in the other; then a
    // connection with nothing new at all. Each moves the last sync; the
    // quiet diary's state stays what it was.
    for new_visit in [true, false] {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut again = server.device("cadre01", "phone").await;
        for (id, state) in [busy, quiet].iter().zip(&states) {
            again.docs.insert(*id, docs.remove(id).expect("doc"));
            again.conn.add_document_with_state(*id, state);
        }
        if new_visit {
            again.add_visit(&busy, &mut rng);
        }
        again.sync().await;
        docs = std::mem::take(&mut again.docs);
        states = [busy, quiet].map(|id| again.conn.sync_state(&id).expect("client state"));
        again.close().await;
        let now = last_sync().await;
        assert!(
            now > synced_at,
            "new visit: {new_visit}: last sync {now} after {synced_at}"
        );
        synced_at = now;
        assert_eq!(saved(quiet).await, quiet_state, "new visit: {new_visit}");
    }
    let mut check = server.device("cadre01", "desk").await;
    assert_synced_with_visits(&mut check, busy, 2).await;
}

async fn a_sync_connection_ends_with_its_token(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |c| c.access_token_ttl = Duration::from_secs(2)).await;
    let (mut phone, _) = phone_with_a_diary_of(&server, &mut rng(12), "cadre01").await;
    let started = std::time::Instant::now();
    let error = phone.expect_error_and_close().await;
    assert!(error.contains("access token expired"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

async fn a_disabled_users_sync_connection_ends(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |c| c.session_check = Duration::from_secs(1)).await;
    let mut rng = rng(13);
    let (mut phone, _) = phone_with_a_diary_of(&server, &mut rng, "cadre01").await;
    let mut other = server.device("cadre02", "phone").await;

    let store = server.store().await;
    let cadre = cadre01(store.as_ref()).await;
    store
        .set_user_disabled(cadre.id, true)
        .await
        .expect("disable");
    let error = phone.expect_error_and_close().await;
    assert!(error.contains("user disabled"), "{error}");

    // Others keep syncing.
    other.create_diary_owned_by(&mut rng, "cadre02");
    other.sync().await;
}

async fn sync_connections_are_bounded_per_user(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |c| c.max_sync_connections_per_user = 2).await;
    let first = server.device("cadre01", "phone").await;
    let _second = server.device("cadre01", "tablet").await;
    let token = server.login("cadre01", "third").await;
    match socket(&server, Some(&token)).await {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), http::StatusCode::TOO_MANY_REQUESTS);
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // Other users are not affected.
    let mut other = server.device("cadre02", "phone").await;
    other.sync().await;
    // A closed connection frees its place.
    first.close().await;
    let mut admitted = false;
    for _ in 0..100 {
        if socket(&server, Some(&token)).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a place was freed");
}

async fn documents_per_connection_are_bounded(store: Arc<dyn Store>) {
    let server = TestServer::on_store(store, |c| c.max_documents_per_connection = 3).await;
    let mut rng = rng(14);
    let mut phone = server.device("cadre01", "phone").await;
    for _ in 0..3 {
        let id = DocumentId::from_bytes(rng.random());
        assert_eq!(phone.request(id).await, Some(DocSyncStatus::Unavailable));
    }
    phone
        .conn
        .add_document(DocumentId::from_bytes(rng.random()));
    phone.flush().await;
    let error = phone.expect_error_and_close().await;
    assert!(error.contains("more than 3 documents"), "{error}");
}

test_support::backends!(
    text_with_a_nul_byte_syncs_and_reaches_the_ledger,
    a_colleagues_diary_looks_missing_and_its_id_cannot_be_taken,
    a_new_diary_at_the_id_of_another_year_is_refused,
    creating_a_document_for_someone_else_is_refused,
    upgrade_without_a_valid_token_is_401,
    oversized_changes_and_frames_are_refused,
    hostile_payloads_are_refused_and_others_keep_syncing,
    a_first_upload_costs_about_the_saved_size,
    many_small_syncs_are_compacted_and_audited,
    a_device_that_kept_its_sync_state_reconnects_cheaply,
    a_devices_last_sync_moves_with_each_connection,
    a_sync_connection_ends_with_its_token,
    a_disabled_users_sync_connection_ends,
    sync_connections_are_bounded_per_user,
    documents_per_connection_are_bounded,
);
