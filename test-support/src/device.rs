//! A logged-in client device: sync-core's `ClientConnection` over a real
//! WebSocket, with its documents in memory (as a phone holds them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use sync_core::automerge::{ActorId, Automerge};
use sync_core::protocol::{ClientConnection, ClientEvent, DocSyncStatus, Message};
use sync_core::records::petition::{NewPetition, PetitionEventKind};
use sync_core::records::visit::{NewVisit, VisitUpdate};
use sync_core::{DiaryDocument, DocumentId, Edit, RecordId, Timestamp, fixtures};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any one frame may take before the test fails instead of hanging
/// (the default of [`Device::frame_timeout`]).
const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

/// A diary year for a test device to create, another on each call in this
/// process: 2000 to 2024, then round again. The demo seeds this year's
/// and last year's diaries (2025 at the earliest), so these never meet
/// them; a test making more than 25 diaries for one user would.
pub fn next_test_year() -> i32 {
    static NEXT: AtomicI32 = AtomicI32::new(0);
    2000 + NEXT.fetch_add(1, Ordering::Relaxed).rem_euclid(25)
}

/// A fixed time for edits (2026-05-28), so documents are reproducible.
pub const EDIT_TIME: Timestamp = Timestamp(1_780_000_000_000);

/// More frames than any sync in these tests needs by far.
pub const MAX_FRAMES_PER_SYNC: usize = 200;

/// How many of the last frames a failure shows.
const FRAMES_SHOWN: usize = 16;

/// One device of one user, connected to the sync endpoint.
#[derive(Debug)]
pub struct Device {
    /// The socket (tests may send raw frames on it).
    pub ws: Ws,
    /// The protocol state.
    pub conn: ClientConnection,
    /// The documents this device holds.
    pub docs: BTreeMap<DocumentId, Automerge>,
    /// Every event the connection reported.
    pub events: Vec<ClientEvent>,
    /// Every message the server sent.
    pub received: Vec<Message>,
    /// One line per frame sent (`->`) or received (`<-`), for failures.
    pub frames: Vec<String>,
    /// Bytes of binary frames sent and received.
    pub bytes: usize,
    /// Bytes of binary frames sent (the rest of `bytes` were received).
    pub bytes_sent: usize,
    /// How long a frame may take before the test fails (20 s; a bench
    /// uploading a large document over a slow link needs longer).
    pub frame_timeout: Duration,
    user: String,
}

impl Device {
    /// Opens the sync socket of the server at `addr` with `token` in the
    /// Authorization header and completes the handshake.
    pub async fn connect(addr: SocketAddr, token: &str, device: &str) -> Device {
        let ws = open_socket(addr, Some(token), TokenIn::Header)
            .await
            .expect("upgrade");
        Self::on_socket(ws, token, device).await
    }

    /// Completes the handshake on a sync socket opened with `token` (for
    /// tests that open it themselves, e.g. with a small receive buffer).
    pub async fn on_socket(ws: Ws, token: &str, device: &str) -> Device {
        // The announced peer id claims to be someone else: it must not matter.
        let (conn, join) = ClientConnection::new(format!("{device}-claims-to-be-admin"), None);
        let user = jwt_subject(token);
        let mut device = Device {
            ws,
            conn,
            docs: BTreeMap::new(),
            events: Vec::new(),
            received: Vec::new(),
            frames: Vec::new(),
            bytes: 0,
            bytes_sent: 0,
            frame_timeout: FRAME_TIMEOUT,
            user,
        };
        device.send(&join).await;
        while !device.conn.is_ready() {
            device.receive().await;
        }
        device
    }

    /// The last frames sent and received, one per line.
    pub fn recent_frames(&self) -> String {
        let from = self.frames.len().saturating_sub(FRAMES_SHOWN);
        self.frames[from..].join("\n")
    }

    /// Sends one protocol message.
    pub async fn send(&mut self, message: &Message) {
        self.frames.push(format!("-> {}", message.summary()));
        let frame = message.encode();
        self.bytes += frame.len();
        self.bytes_sent += frame.len();
        self.ws
            .send(tungstenite::Message::Binary(frame.into()))
            .await
            .expect("send");
    }

    /// The next frame, failing the test (with the frames seen so far)
    /// after [`Self::frame_timeout`].
    pub async fn next_frame(&mut self) -> tungstenite::Message {
        match tokio::time::timeout(self.frame_timeout, self.ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!(
                "socket failed: {other:?}; last frames:\n{}",
                self.recent_frames()
            ),
            Err(_) => panic!(
                "no frame within {:?}; last frames:\n{}",
                self.frame_timeout,
                self.recent_frames()
            ),
        }
    }

    /// Receives one message and hands it to the connection.
    pub async fn receive(&mut self) {
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
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }

    /// Sends what is due without waiting for answers.
    pub async fn flush(&mut self) {
        for m in self.conn.poll(&self.docs) {
            self.send(&m).await;
        }
    }

    /// Exchanges messages until every document is synced or unavailable and
    /// `done` holds.
    ///
    /// Gives up with a panic after [`MAX_FRAMES_PER_SYNC`] frames from the
    /// server: a sync that never settles is a bug to report, not to wait out.
    pub async fn sync_until(&mut self, done: impl Fn(&Self) -> bool) {
        let start = self.received.len();
        loop {
            self.flush().await;
            if self.conn.is_quiescent(&self.docs) && done(self) {
                return;
            }
            let got = self.received.len() - start;
            assert!(
                got < MAX_FRAMES_PER_SYNC,
                "sync did not settle after {got} frames from the server; last frames:\n{}",
                self.recent_frames()
            );
            self.receive().await;
        }
    }

    /// Exchanges messages until every document is synced or unavailable.
    pub async fn sync(&mut self) {
        self.sync_until(|_| true).await;
    }

    /// Asks for a document (which this device may not have) and returns how
    /// the server answered.
    pub async fn request(&mut self, id: DocumentId) -> Option<DocSyncStatus> {
        self.conn.add_document(id);
        self.sync().await;
        self.conn.status(&id, &self.docs)
    }

    /// The document as a diary.
    pub fn diary(&self, id: &DocumentId) -> DiaryDocument {
        DiaryDocument::from_automerge(self.docs.get(id).expect("document").clone())
            .expect("a diary")
    }

    /// How many live visits the document has here (0 if it is not a diary).
    pub fn visit_count(&self, id: &DocumentId) -> usize {
        self.docs
            .get(id)
            .and_then(|d| DiaryDocument::from_automerge(d.clone()).ok())
            .map_or(0, |d| d.visits().len())
    }

    /// Creates a diary of this user with one visit, and starts syncing it.
    /// Each call takes another year (see [`next_test_year`]), so it is a
    /// new document: the server accepts new documents only at the id
    /// sync-core derives from owner, kind and year.
    pub fn create_diary(&mut self, rng: &mut impl Rng) -> (DocumentId, RecordId) {
        self.create_diary_owned_by(rng, &self.user.clone())
    }

    /// As [`Self::create_diary`], at this user's id but naming `owner` in
    /// the root.
    pub fn create_diary_owned_by(
        &mut self,
        rng: &mut impl Rng,
        owner: &str,
    ) -> (DocumentId, RecordId) {
        let year = next_test_year();
        let id = sync_core::diary_id(&self.user, year);
        let diary =
            DiaryDocument::create_shared(owner, year, ActorId::random()).expect("create diary");
        self.docs.insert(id, diary.into_automerge());
        self.conn.add_document(id);
        let visit = self.add_visit(&id, rng);
        (id, visit)
    }

    /// Creates an empty diary of this device's user under a given id
    /// (which may be someone else's) and starts syncing it.
    pub fn create_diary_under(&mut self, id: DocumentId) {
        let edit = Edit::new(self.user.as_str(), EDIT_TIME);
        let diary = DiaryDocument::create(&self.user, next_test_year(), ActorId::random(), &edit)
            .expect("create diary");
        self.docs.insert(id, diary.into_automerge());
        self.conn.add_document(id);
    }

    /// A realistic new visit by this device's user.
    pub fn new_visit(&self, rng: &mut impl Rng) -> NewVisit {
        fixtures::visit(rng, EDIT_TIME, &self.user)
    }

    /// Adds a realistic visit to a document this device holds.
    pub fn add_visit(&mut self, id: &DocumentId, rng: &mut impl Rng) -> RecordId {
        let visit = self.new_visit(rng);
        self.edit_diary(id, |diary, edit| diary.add_visit(edit, &visit))
    }

    /// Changes a visit.
    pub fn update_visit(&mut self, id: &DocumentId, visit: RecordId, update: &VisitUpdate) {
        self.edit_diary(id, |diary, edit| diary.update_visit(edit, visit, update));
    }

    /// Records a realistic petition (raised in `visit`, if given).
    pub fn add_petition(
        &mut self,
        id: &DocumentId,
        rng: &mut impl Rng,
        visit: Option<RecordId>,
    ) -> RecordId {
        let petition = fixtures::petition(rng, EDIT_TIME, visit);
        self.add_this_petition(id, &petition)
    }

    /// Adds `petition` to a document this device holds.
    pub fn add_this_petition(&mut self, id: &DocumentId, petition: &NewPetition) -> RecordId {
        self.edit_diary(id, |diary, edit| diary.add_petition(edit, petition))
    }

    /// Takes this device's diary `doc` out and forges a 销号 of `pid` in
    /// it in sup-town1's name, with the actor the server wrote sup-town1's
    /// event with (what a device must never be able to store).
    pub fn forge_server_sign_off(&mut self, doc: DocumentId, pid: RecordId) -> DiaryDocument {
        let server_actor = self
            .diary(&doc)
            .petition_events_with_origin(pid)
            .expect("petition")
            .into_iter()
            .find(|(e, _)| e.by == "sup-town1")
            .expect("the supervisor's event")
            .1
            .actor;
        let am = self.docs.remove(&doc).expect("doc");
        let mut diary = DiaryDocument::from_automerge(am).expect("diary");
        diary.automerge_mut().set_actor(server_actor);
        diary
            .record_petition_event(
                &Edit::new("sup-town1", Timestamp(EDIT_TIME.millis() + 120_000)),
                pid,
                RecordId::from_random_bytes(rand::random()),
                &PetitionEventKind::Closed {
                    note: "伪造销号".into(),
                },
            )
            .expect("forge");
        diary
    }

    /// Appends an event to a petition's history.
    pub fn record_petition_event(
        &mut self,
        id: &DocumentId,
        rng: &mut impl Rng,
        petition: RecordId,
        kind: &PetitionEventKind,
    ) {
        let event = fixtures::id(rng);
        self.edit_diary(id, |diary, edit| {
            diary.record_petition_event(edit, petition, event, kind)
        });
    }

    fn edit_diary<T>(
        &mut self,
        id: &DocumentId,
        f: impl FnOnce(&mut DiaryDocument, &Edit) -> Result<T, sync_core::DocumentError>,
    ) -> T {
        let doc = self.docs.remove(id).expect("document");
        let mut diary = DiaryDocument::from_automerge(doc).expect("a diary");
        let out = f(&mut diary, &Edit::new(self.user.as_str(), EDIT_TIME)).expect("edit");
        self.docs.insert(*id, diary.into_automerge());
        out
    }

    /// The last `doc-unavailable` the server sent.
    pub fn last_unavailable(&self) -> Option<&Message> {
        self.received
            .iter()
            .rev()
            .find(|m| matches!(m, Message::DocUnavailable { .. }))
    }

    /// Keeps syncing until the server sends `error`, then expects the
    /// socket to close; returns the error's message.
    pub async fn expect_error_and_close(&mut self) -> String {
        let error = loop {
            match self.next_frame().await {
                tungstenite::Message::Binary(bytes) => {
                    match Message::decode(&bytes).expect("decodes") {
                        Message::Error { message } => break message,
                        m => {
                            let _ = self.conn.handle(m, &mut self.docs);
                            self.flush().await;
                        }
                    }
                }
                tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
                other => panic!(
                    "expected an error message, got {other:?}; last frames:\n{}",
                    self.recent_frames()
                ),
            }
        };
        match tokio::time::timeout(self.frame_timeout, self.ws.next())
            .await
            .expect("close in time")
        {
            None | Some(Ok(tungstenite::Message::Close(_))) | Some(Err(_)) => {}
            Some(Ok(other)) => panic!("expected the connection to close, got {other:?}"),
        }
        error
    }

    /// Closes the connection and waits until the server has closed its end
    /// (it saves the device's sync states before that).
    pub async fn close(mut self) {
        self.ws.close(None).await.expect("close");
        while let Ok(Some(Ok(_))) = tokio::time::timeout(self.frame_timeout, self.ws.next()).await {
        }
    }
}

/// Where a token travels at the WebSocket upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenIn {
    /// `Authorization: Bearer …`.
    Header,
    /// `?token=…` (what browsers use).
    Query,
}

/// Opens a socket to `/api/v1/sync` of the server at `addr`; an
/// `Err(Http(response))` is a refused upgrade.
pub async fn open_socket(
    addr: SocketAddr,
    token: Option<&str>,
    token_in: TokenIn,
) -> Result<Ws, tungstenite::Error> {
    let mut url = format!("ws://{addr}/api/v1/sync");
    if let (Some(token), TokenIn::Query) = (token, token_in) {
        url.push_str("?token=");
        url.push_str(token);
    }
    let mut request = url.into_client_request().expect("request");
    if let (Some(token), TokenIn::Header) = (token, token_in) {
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// The `sub` claim of a token (read without checking: the server does that).
fn jwt_subject(token: &str) -> String {
    crate::jwt_claims(token)["sub"]
        .as_str()
        .expect("sub claim")
        .to_owned()
}
