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

struct TestServer {
    addr: std::net::SocketAddr,
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
        tokio::spawn(server::serve(config, listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
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
}

impl Device {
    async fn send(&mut self, message: &Message) {
        self.ws
            .send(tungstenite::Message::Binary(message.encode().into()))
            .await
            .expect("send");
    }

    async fn next_frame(&mut self) -> tungstenite::Message {
        tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("frame")
    }

    async fn receive(&mut self) {
        match self.next_frame().await {
            tungstenite::Message::Binary(bytes) => {
                let message = Message::decode(&bytes).expect("server message decodes");
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
    async fn sync_until(&mut self, done: impl Fn(&Self) -> bool) {
        loop {
            for m in self.conn.poll(&self.docs) {
                self.send(&m).await;
            }
            if self.conn.is_quiescent(&self.docs) && done(self) {
                return;
            }
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
async fn expect_error_and_close(device: &mut Device) {
    loop {
        match device.next_frame().await {
            tungstenite::Message::Binary(bytes) => {
                match Message::decode(&bytes).expect("decodes") {
                    Message::Error { .. } => break,
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
    }
    match tokio::time::timeout(FRAME_TIMEOUT, device.ws.next())
        .await
        .expect("close in time")
    {
        None | Some(Ok(tungstenite::Message::Close(_))) | Some(Err(_)) => {}
        Some(Ok(other)) => panic!("expected the connection to close, got {other:?}"),
    }
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
