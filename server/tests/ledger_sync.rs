//! The sync path writes ledger rows: a cadre's phone syncs a diary over a
//! real WebSocket, a supervisor sees the petition in `GET /api/v1/ledger`,
//! a later event changes its status, and `ledger rebuild` reproduces exactly
//! the rows the sync path wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use server::config::Config;
use server::ledger::LedgerQuery;
use sync_core::automerge::{ActorId, Automerge};
use sync_core::fixtures;
use sync_core::protocol::{ClientConnection, Message};
use sync_core::records::petition::PetitionEventKind;
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, http};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

async fn login(addr: std::net::SocketAddr, username: &str) -> String {
    let tokens: Value = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": "demo-pass", "device_id": "t"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    tokens["access_token"].as_str().expect("token").to_owned()
}

async fn ledger(addr: std::net::SocketAddr, token: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/ledger"))
        .bearer_auth(token)
        .send()
        .await
        .expect("ledger")
        .json()
        .await
        .expect("json")
}

struct Phone {
    ws: Ws,
    conn: ClientConnection,
    docs: BTreeMap<DocumentId, Automerge>,
    /// One line per frame sent (`->`) or received (`<-`), for failures.
    frames: Vec<String>,
}

impl Phone {
    async fn connect(addr: std::net::SocketAddr, token: &str) -> Phone {
        let mut request = format!("ws://{addr}/api/v1/sync")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("upgrade");
        let (conn, join) = ClientConnection::new("phone".to_owned(), None);
        let mut phone = Phone {
            ws,
            conn,
            docs: BTreeMap::new(),
            frames: Vec::new(),
        };
        phone.send(&join).await;
        while !phone.conn.is_ready() {
            phone.receive().await;
        }
        phone
    }

    fn recent_frames(&self) -> String {
        self.frames[self.frames.len().saturating_sub(16)..].join("\n")
    }

    async fn send(&mut self, message: &Message) {
        self.frames.push(format!("-> {}", message.summary()));
        self.ws
            .send(tungstenite::Message::Binary(message.encode().into()))
            .await
            .expect("send");
    }

    async fn receive(&mut self) {
        let frame = match tokio::time::timeout(FRAME_TIMEOUT, self.ws.next()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(other) => panic!(
                "socket failed: {other:?}; last frames:\n{}",
                self.recent_frames()
            ),
            Err(_) => panic!("no frame in time; last frames:\n{}", self.recent_frames()),
        };
        let tungstenite::Message::Binary(bytes) = frame else {
            panic!("unexpected frame {frame:?}");
        };
        let message = Message::decode(&bytes).expect("decodes");
        self.frames.push(format!("<- {}", message.summary()));
        self.conn
            .handle(message, &mut self.docs)
            .expect("client accepts");
    }

    /// Fails with the frames it saw if the sync does not settle within a
    /// few hundred frames.
    async fn sync(&mut self) {
        for _ in 0..200 {
            for m in self.conn.poll(&self.docs) {
                self.send(&m).await;
            }
            if self.conn.is_quiescent(&self.docs) {
                return;
            }
            self.receive().await;
        }
        panic!(
            "sync did not settle; last frames:\n{}",
            self.recent_frames()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_petitions_reach_the_ledger_and_rebuild_matches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::for_tests(dir.path(), &[5; 32]);
    let store = server::open_store(&config).await.expect("open store");
    server::seed_demo(store.as_ref(), "demo-pass")
        .await
        .expect("seed");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server::serve_with_store(
        config,
        store.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));

    // The phone records a visit and a petition offline, then syncs.
    let mut rng = StdRng::seed_from_u64(11);
    let now = Timestamp::from_millis(chrono::Utc::now().timestamp_millis());
    let edit = Edit::new("cadre01", now);
    let id = DocumentId::from_bytes(rng.random());
    let mut diary =
        DiaryDocument::create("cadre01", 2026, ActorId::random(), &edit).expect("create diary");
    let visit = diary
        .add_visit(&edit, &fixtures::visit(&mut rng, now, "cadre01"))
        .expect("visit");
    let petition = fixtures::petition(&mut rng, now, Some(visit));
    let pid = diary.add_petition(&edit, &petition).expect("petition");
    let cadre_token = login(addr, "cadre01").await;
    let mut phone = Phone::connect(addr, &cadre_token).await;
    phone.docs.insert(id, diary.into_automerge());
    phone.conn.add_document(id);
    phone.sync().await;

    let supervisor = login(addr, "sup-town1").await;
    let listed = ledger(addr, &supervisor).await;
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], pid.to_string());
    assert_eq!(listed["items"][0]["status"], "open");
    assert_eq!(listed["items"][0]["unit_code"], "village1");
    let other_town = ledger(addr, &login(addr, "sup-town2").await).await;
    assert_eq!(other_town["total"], 0);

    // A later event, synced, changes the derived status.
    let mut diary =
        DiaryDocument::from_automerge(phone.docs.remove(&id).expect("doc")).expect("diary");
    let later = Timestamp::from_millis(now.millis() + 60_000);
    diary
        .record_petition_event(
            &Edit::new("cadre01", later),
            pid,
            fixtures::id(&mut rng),
            &PetitionEventKind::Resolved {
                note: "已协调解决".to_owned(),
            },
        )
        .expect("resolve");
    phone.docs.insert(id, diary.into_automerge());
    phone.sync().await;
    let listed = ledger(addr, &supervisor).await;
    assert_eq!(listed["items"][0]["status"], "resolved", "{listed}");
    assert_eq!(listed["items"][0]["event_count"], 2);

    // Rebuild gives the rows the sync path wrote.
    let query = LedgerQuery {
        limit: 1000,
        ..LedgerQuery::default()
    };
    let before = store.query_ledger(&query).await.expect("query");
    let summary = server::ledger::rebuild(store.as_ref(), |_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(summary.documents, 1);
    assert_eq!(summary.rows, 1 + 1 + 2);
    assert_eq!(store.query_ledger(&query).await.expect("query"), before);

    let _ = stop.send(());
    running.await.expect("join").expect("serve");
}
