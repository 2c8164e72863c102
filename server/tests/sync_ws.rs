//! The WebSocket sync endpoint against a real server on 127.0.0.1:0, with
//! sync-core's own client (`ClientConnection`) driving real sockets.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use server::config::Config;
use sync_core::automerge::{ActorId, Automerge};
use sync_core::fixtures;
use sync_core::protocol::{ClientConnection, ClientEvent, DocSyncStatus, Message};
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any one frame may take before the test fails instead of hanging.
const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

/// More frames than any sync in these tests needs by far.
const MAX_FRAMES_PER_SYNC: usize = 200;

struct TestServer {
    addr: std::net::SocketAddr,
    /// The server's configuration (to open its store beside it).
    config: Config,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path(), &[7; 32]);
        adjust(&mut config);
        let store = server::open_store(&config).await.expect("open store");
        server::seed_demo(store.as_ref(), "demo-pass")
            .await
            .expect("seed demo");
        store.close().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve(config.clone(), listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            config,
            _stop: stop,
            _dir: dir,
        }
    }

    async fn login(&self, username: &str, device: &str) -> String {
        let tokens: Value = reqwest::Client::new()
            .post(format!("http://{}/api/v1/auth/login", self.addr))
            .json(&json!({"username": username, "password": "demo-pass", "device_id": device}))
            .send()
            .await
            .expect("login request")
            .json()
            .await
            .expect("login json");
        tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    async fn socket(&self, token: Option<&str>) -> Result<Ws, tungstenite::Error> {
        let mut request = format!("ws://{}/api/v1/sync", self.addr)
            .into_client_request()
            .expect("request");
        if let Some(token) = token {
            request.headers_mut().insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(ws, _)| ws)
    }

    /// A logged-in device, past the handshake.
    async fn device(&self, username: &str, device: &str) -> Device {
        let token = self.login(username, device).await;
        let ws = self.socket(Some(&token)).await.expect("upgrade");
        // The announced peer id claims to be someone else: it must not matter.
        let (conn, join) = ClientConnection::new(format!("{device}-claims-to-be-admin"), None);
        let mut device = Device {
            ws,
            conn,
            docs: BTreeMap::new(),
            events: Vec::new(),
            received: Vec::new(),
            frames: Vec::new(),
            bytes: 0,
        };
        device.send(&join).await;
        while !device.conn.is_ready() {
            device.receive().await;
        }
        device
    }
}

struct Device {
    ws: Ws,
    conn: ClientConnection,
    docs: BTreeMap<DocumentId, Automerge>,
    events: Vec<ClientEvent>,
    received: Vec<Message>,
    /// One line per frame sent (`->`) or received (`<-`), for failures.
    frames: Vec<String>,
    /// Bytes of binary frames sent and received.
    bytes: usize,
}

impl Device {
    /// The last frames sent and received, one per line.
    fn recent_frames(&self) -> String {
        self.frames[self.frames.len().saturating_sub(16)..].join("\n")
    }

    async fn send(&mut self, message: &Message) {
        self.frames.push(format!("-> {}", message.summary()));
        let frame = message.encode();
        self.bytes += frame.len();
        self.ws
            .send(tungstenite::Message::Binary(frame.into()))
            .await
            .expect("send");
    }

    async fn next_frame(&mut self) -> tungstenite::Message {
        match tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!(
                "socket failed: {other:?}; last frames:\n{}",
                self.recent_frames()
            ),
            Err(_) => panic!("no frame in time; last frames:\n{}", self.recent_frames()),
        }
    }

    async fn receive(&mut self) {
        match self.next_frame().await {
            tungstenite::Message::Binary(bytes) => {
                self.bytes += bytes.len();
                let message = Message::decode(&bytes).expect("server message decodes");
                self.frames.push(format!("<- {}", message.summary()));
                self.received.push(message.clone());
                let events = self
                    .conn
                    .handle(message, &mut self.docs)
                    .expect("client accepts the server's message");
                self.events.extend(events);
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }

    /// Exchanges messages until every document is synced or unavailable and
    /// `done` holds.
    ///
    /// A sync that does not settle within [`MAX_FRAMES_PER_SYNC`] frames
    /// from the server fails with the frames it saw.
    async fn sync_until(&mut self, done: impl Fn(&Self) -> bool) {
        let start = self.received.len();
        loop {
            for m in self.conn.poll(&self.docs) {
                self.send(&m).await;
            }
            if self.conn.is_quiescent(&self.docs) && done(self) {
                return;
            }
            let got = self.received.len() - start;
            assert!(
                got < MAX_FRAMES_PER_SYNC,
                "sync did not settle after {got} frames; last frames:\n{}",
                self.recent_frames()
            );
            self.receive().await;
        }
    }

    async fn sync(&mut self) {
        self.sync_until(|_| true).await;
    }

    fn diary(&self, id: &DocumentId) -> DiaryDocument {
        DiaryDocument::from_automerge(self.docs.get(id).expect("document").clone())
            .expect("a diary")
    }

    fn visits(&self, id: &DocumentId) -> usize {
        self.docs
            .get(id)
            .and_then(|d| DiaryDocument::from_automerge(d.clone()).ok())
            .map_or(0, |d| d.visits().len())
    }

    fn add_visit(&mut self, id: &DocumentId, rng: &mut StdRng, author: &str) {
        let doc = self.docs.remove(id).expect("document");
        let mut diary = DiaryDocument::from_automerge(doc).expect("a diary");
        let at = Timestamp::from_millis(1_780_000_000_000);
        diary
            .add_visit(&Edit::new(author, at), &fixtures::visit(rng, at, author))
            .expect("add visit");
        self.docs.insert(*id, diary.into_automerge());
    }

    /// Creates a diary owned by `owner` and starts syncing it.
    fn create_diary(&mut self, rng: &mut StdRng, owner: &str) -> DocumentId {
        let id = DocumentId::from_bytes(rng.random());
        let at = Timestamp::from_millis(1_780_000_000_000);
        let mut diary =
            DiaryDocument::create(owner, 2026, ActorId::random(), &Edit::new(owner, at))
                .expect("create diary");
        diary
            .add_visit(&Edit::new(owner, at), &fixtures::visit(rng, at, owner))
            .expect("add visit");
        self.docs.insert(id, diary.into_automerge());
        self.conn.add_document(id);
        id
    }

    /// Asks for a document we do not have and returns how the server answered.
    async fn request(&mut self, id: DocumentId) -> Option<DocSyncStatus> {
        self.conn.add_document(id);
        self.sync().await;
        self.conn.status(&id, &self.docs)
    }

    fn last_unavailable(&self) -> Message {
        self.received
            .iter()
            .rev()
            .find(|m| matches!(m, Message::DocUnavailable { .. }))
            .cloned()
            .expect("a doc-unavailable message")
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_of_a_cadre_converge_through_the_server() {
    let server = TestServer::start().await;
    let mut rng = rng(1);
    let mut phone = server.device("cadre01", "phone").await;
    let id = phone.create_diary(&mut rng, "cadre01");
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Synced)
    );

    // A second device with nothing stored asks for the document and gets it.
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(tablet.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(tablet.visits(&id), 1);
    assert_eq!(tablet.diary(&id).meta().expect("meta").owner, "cadre01");

    // Both edit without syncing, then sync.
    phone.add_visit(&id, &mut rng, "cadre01");
    tablet.add_visit(&id, &mut rng, "cadre01");
    phone.sync().await;
    tablet.sync_until(|d| d.visits(&id) == 3).await;
    // The tablet's changes reach the phone by the server's push.
    phone.sync_until(|d| d.visits(&id) == 3).await;

    let phone_heads = phone.docs[&id].get_heads();
    assert_eq!(phone_heads, tablet.docs[&id].get_heads());
    assert_eq!(phone.diary(&id).visits(), tablet.diary(&id).visits());

    // A third device sees the stored result.
    let mut third = server.device("cadre01", "laptop").await;
    assert_eq!(third.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(third.docs[&id].get_heads(), phone_heads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cadres_document_looks_missing() {
    let server = TestServer::start().await;
    let mut rng = rng(2);
    let mut phone = server.device("cadre01", "phone").await;
    let id = phone.create_diary(&mut rng, "cadre01");
    phone.sync().await;

    let mut other = server.device("cadre02", "phone").await;
    assert_eq!(other.request(id).await, Some(DocSyncStatus::Unavailable));
    let denied = other.last_unavailable();
    let unknown_id = DocumentId::from_bytes(rng.random());
    assert_eq!(
        other.request(unknown_id).await,
        Some(DocSyncStatus::Unavailable)
    );
    let missing = other.last_unavailable();
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
            assert_eq!((a, b), (id, unknown_id));
            assert_eq!((sa, ta), (sb, tb));
        }
        _ => unreachable!(),
    }
    // Nothing of the document reached cadre02.
    assert!(other.docs.get(&id).is_none_or(|d| d.get_heads().is_empty()));

    // Nor can cadre02 write into it by syncing changes of their own.
    let mut forger = server.device("cadre02", "tablet").await;
    let at = Timestamp::from_millis(1_780_000_000_000);
    let forged = DiaryDocument::create(
        "cadre02",
        2026,
        ActorId::random(),
        &Edit::new("cadre02", at),
    )
    .expect("create");
    forger.docs.insert(id, forged.into_automerge());
    forger.conn.add_document(id);
    forger.sync().await;
    assert_eq!(
        forger.conn.status(&id, &forger.docs),
        Some(DocSyncStatus::Unavailable)
    );
    let mut check = server.device("cadre01", "laptop").await;
    assert_eq!(check.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.docs[&id].get_heads(), phone.docs[&id].get_heads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_a_document_for_someone_else_is_refused() {
    let server = TestServer::start().await;
    let mut rng = rng(3);
    let mut phone = server.device("cadre01", "phone").await;
    // The root names cadre02 as the owner: not cadre01's to create.
    let id = phone.create_diary(&mut rng, "cadre02");
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Unavailable)
    );
    let mut owner = server.device("cadre02", "phone").await;
    assert_eq!(owner.request(id).await, Some(DocSyncStatus::Unavailable));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_reads_within_their_subtree_only() {
    let server = TestServer::start().await;
    let mut rng = rng(4);
    let mut cadre01 = server.device("cadre01", "phone").await;
    let town1_doc = cadre01.create_diary(&mut rng, "cadre01");
    cadre01.sync().await;
    let mut cadre07 = server.device("cadre07", "phone").await;
    let town2_doc = cadre07.create_diary(&mut rng, "cadre07");
    cadre07.sync().await;

    let mut sup = server.device("sup-town1", "desk").await;
    assert_eq!(sup.request(town1_doc).await, Some(DocSyncStatus::Synced));
    assert_eq!(sup.visits(&town1_doc), 1);
    assert_eq!(
        sup.request(town2_doc).await,
        Some(DocSyncStatus::Unavailable)
    );

    // Read only: the supervisor's own edits are not stored.
    sup.add_visit(&town1_doc, &mut rng, "sup-town1");
    // The server answers a read-only peer's changes with nothing; a request
    // sent after them tells us when it has handled them.
    let marker = DocumentId::from_bytes(rng.random());
    sup.conn.add_document(marker);
    for m in sup.conn.poll(&sup.docs) {
        sup.send(&m).await;
    }
    while !sup.events.contains(&ClientEvent::Unavailable {
        document_id: marker,
    }) {
        sup.receive().await;
    }
    let mut check = server.device("cadre01", "tablet").await;
    assert_eq!(check.request(town1_doc).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.visits(&town1_doc), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_frame_closes_only_its_own_connection() {
    let server = TestServer::start().await;
    let mut rng = rng(5);
    let mut phone = server.device("cadre01", "phone").await;
    let id = phone.create_diary(&mut rng, "cadre01");
    phone.sync().await;

    for bad in [
        tungstenite::Message::Binary(vec![0xff, 0x00, 0x13, 0x37].into()),
        tungstenite::Message::Text("{\"type\":\"join\"}".into()),
    ] {
        let mut victim = server.device("cadre01", "tablet").await;
        victim.ws.send(bad).await.expect("send");
        expect_error_and_close(&mut victim).await;
    }

    // The other connection carries on.
    phone.add_visit(&id, &mut rng, "cadre01");
    phone.sync().await;
    let mut check = server.device("cadre01", "laptop").await;
    assert_eq!(check.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.visits(&id), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_without_a_valid_token_is_401() {
    let server = TestServer::start().await;
    for token in [None, Some("not-a-token")] {
        match server.socket(token).await {
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
async fn expect_error_and_close(device: &mut Device) -> String {
    let error = loop {
        match device.next_frame().await {
            tungstenite::Message::Binary(bytes) => {
                match Message::decode(&bytes).expect("decodes") {
                    Message::Error { message } => break message,
                    m => {
                        device.conn.handle(m, &mut device.docs).expect("handle");
                        for m in device.conn.poll(&device.docs) {
                            device.send(&m).await;
                        }
                    }
                }
            }
            other => panic!("expected an error message, got {other:?}"),
        }
    };
    match tokio::time::timeout(FRAME_TIMEOUT, device.ws.next())
        .await
        .expect("close in time")
    {
        None | Some(Ok(tungstenite::Message::Close(_))) | Some(Err(_)) => {}
        Some(Ok(other)) => panic!("expected the connection to close, got {other:?}"),
    }
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_changes_and_frames_are_refused() {
    const LIMIT: usize = 4 * 1024;
    let server = TestServer::start_with(|c| c.max_document_bytes = LIMIT).await;
    let mut rng = rng(6);

    // A sync message whose changes exceed the document limit.
    let mut phone = server.device("cadre01", "phone").await;
    let id = DocumentId::from_bytes(rng.random());
    let at = Timestamp::from_millis(1_780_000_000_000);
    let mut diary = DiaryDocument::create(
        "cadre01",
        2026,
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
    expect_error_and_close(&mut phone).await;

    // A frame over the message limit (document limit plus envelope).
    let mut other = server.device("cadre01", "tablet").await;
    other
        .ws
        .send(tungstenite::Message::Binary(
            vec![0u8; LIMIT + 128 * 1024].into(),
        ))
        .await
        .expect("send");
    expect_error_and_close(&mut other).await;

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

/// An automerge "compressed change" chunk (type 2) around `body`. The
/// checksum is not computed: the server must refuse the chunk before
/// automerge would look at it.
fn compressed_change_chunk(body: &[u8]) -> Vec<u8> {
    let mut chunk = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 2];
    let mut len = body.len();
    loop {
        let byte = u8::try_from(len & 0x7f).expect("7 bits");
        len >>= 7;
        if len == 0 {
            chunk.push(byte);
            break;
        }
        chunk.push(byte | 0x80);
    }
    chunk.extend_from_slice(body);
    chunk
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
        target_id: "visit-diary-server".to_owned(),
        data,
    }
}

/// A new diary of `owner` whose root also holds maps nested `depth` deep.
fn deeply_nested_diary(owner: &str, depth: usize) -> Automerge {
    use sync_core::automerge::transaction::Transactable;
    use sync_core::automerge::{ObjType, ROOT};
    let at = Timestamp::from_millis(1_780_000_000_000);
    let mut doc = DiaryDocument::create(owner, 2026, ActorId::random(), &Edit::new(owner, at))
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

async fn metrics_text(server: &TestServer) -> String {
    reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_payloads_are_refused_and_others_keep_syncing() {
    let server = TestServer::start().await;
    let mut rng = rng(7);
    // An honest device, connected throughout.
    let mut phone = server.device("cadre01", "phone").await;
    let honest = phone.create_diary(&mut rng, "cadre01");
    phone.sync().await;

    // 1. A compressed change of ~256 KB that inflates to 256 MiB.
    let bomb = compressed_change_chunk(&deflate_bomb(256));
    assert!(bomb.len() < 300 * 1024, "bomb is {} bytes", bomb.len());
    let bomb_id = DocumentId::from_bytes(rng.random());
    let mut attacker = server.device("cadre01", "tablet").await;
    let started = std::time::Instant::now();
    attacker.send(&raw_sync(bomb_id, vec![bomb])).await;
    let error = expect_error_and_close(&mut attacker).await;
    assert!(error.contains("inflate"), "error says why: {error}");
    eprintln!("deflate bomb refused in {:?}", started.elapsed());

    // 2. A diary with maps nested 100,000 deep, synced by the ordinary client.
    let started = std::time::Instant::now();
    let deep = deeply_nested_diary("cadre01", 100_000);
    eprintln!("built the 100,000-deep document in {:?}", started.elapsed());
    let deep_id = DocumentId::from_bytes(rng.random());
    let mut attacker = server.device("cadre01", "laptop").await;
    attacker.docs.insert(deep_id, deep);
    attacker.conn.add_document(deep_id);
    let started = std::time::Instant::now();
    for m in attacker.conn.poll(&attacker.docs) {
        attacker.send(&m).await;
    }
    let error = expect_error_and_close(&mut attacker).await;
    assert!(error.contains("nested"), "error says why: {error}");
    eprintln!("deep document refused in {:?}", started.elapsed());

    // 3. A whole document in one chunk (automerge's v2 sync message), which
    // the server never asks for.
    let v2_id = DocumentId::from_bytes(rng.random());
    let whole = deeply_nested_diary("cadre01", 2).save();
    let mut attacker = server.device("cadre01", "watch").await;
    attacker.send(&raw_sync(v2_id, vec![whole])).await;
    let error = expect_error_and_close(&mut attacker).await;
    assert!(error.contains("document chunks"), "error says why: {error}");

    // The honest device kept its connection and keeps syncing.
    phone.add_visit(&honest, &mut rng, "cadre01");
    phone.sync().await;
    let mut check = server.device("cadre01", "desk").await;
    assert_eq!(check.request(honest).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.visits(&honest), 2);
    // Nothing of either hostile document was stored.
    for id in [bomb_id, deep_id, v2_id] {
        assert_eq!(check.request(id).await, Some(DocSyncStatus::Unavailable));
    }
    let store = server::open_store(&server.config).await.expect("store");
    for id in [bomb_id, deep_id] {
        assert!(store.load_document(&id).await.expect("load").is_none());
    }
    store.close().await;
    let metrics = metrics_text(&server).await;
    for reason in ["too_large", "too_deep", "document_chunk"] {
        assert!(
            metrics.contains(&format!(
                "sync_refused_payloads_total{{reason=\"{reason}\"}}"
            )),
            "refusals counted: {metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_syncs_are_compacted_and_audited() {
    let server = TestServer::start().await;
    let mut rng = rng(8);
    let mut phone = server.device("cadre01", "phone").await;
    let id = phone.create_diary(&mut rng, "cadre01");
    phone.sync().await;
    const ROUNDS: usize = 40;
    for _ in 0..ROUNDS {
        phone.add_visit(&id, &mut rng, "cadre01");
        phone.sync().await;
    }

    let store = server::open_store(&server.config).await.expect("store");
    let stored = store
        .load_document(&id)
        .await
        .expect("load")
        .expect("stored");
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
    store.close().await;
    // And a device that starts afresh gets all of it.
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(tablet.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(tablet.visits(&id), ROUNDS + 1);
    let metrics = metrics_text(&server).await;
    assert!(
        metrics.contains("document_compactions_total{result=\"ok\"}"),
        "{metrics}"
    );
}

impl Device {
    /// Closes the connection and waits until the server has closed its end
    /// (it saves the device's sync states before that).
    async fn close(mut self) {
        self.ws.close(None).await.expect("close");
        while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_kept_its_sync_state_reconnects_cheaply() {
    const VISITS: usize = 300;
    let server = TestServer::start().await;
    let mut rng = rng(9);
    // Two diaries of the same size, synced by one device.
    let mut phone = server.device("cadre01", "phone").await;
    let kept = phone.create_diary(&mut rng, "cadre01");
    let fresh = phone.create_diary(&mut rng, "cadre01");
    for _ in 1..VISITS {
        phone.add_visit(&kept, &mut rng, "cadre01");
        phone.add_visit(&fresh, &mut rng, "cadre01");
    }
    phone.sync().await;
    let state = phone.conn.sync_state(&kept).expect("client state");
    let mut docs = std::mem::take(&mut phone.docs);
    phone.close().await;
    // The server kept its side too, per device.
    let store = server::open_store(&server.config).await.expect("store");
    let cadre = store
        .get_user_by_username("cadre01")
        .await
        .expect("user")
        .expect("cadre01");
    for (device, saved) in [("phone", true), ("phone-2", false)] {
        let state = store
            .load_sync_state(&kept, cadre.id, device)
            .await
            .expect("load state");
        assert_eq!(state.is_some(), saved, "{device}");
    }
    store.close().await;

    // The same device comes back with its state and one new visit.
    let mut again = server.device("cadre01", "phone").await;
    again.docs.insert(kept, docs.remove(&kept).expect("doc"));
    again.add_visit(&kept, &mut rng, "cadre01");
    again.conn.add_document_with_state(kept, &state);
    let handshake = again.bytes;
    again.sync().await;
    let with_state = again.bytes - handshake;

    // A device with the same history but no kept state on either side.
    let mut other = server.device("cadre01", "phone-2").await;
    other.docs.insert(fresh, docs.remove(&fresh).expect("doc"));
    other.add_visit(&fresh, &mut rng, "cadre01");
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
    assert_eq!(check.request(kept).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.visits(&kept), VISITS + 1);
    assert_eq!(check.request(fresh).await, Some(DocSyncStatus::Synced));
    assert_eq!(check.visits(&fresh), VISITS + 1);
}
