//! A sync peer that stops reading (a dead radio link, a hostile client) is
//! closed once one write to it takes longer than `sync.send_timeout_secs`,
//! and holds nobody up meanwhile: another phone of the same cadre keeps
//! syncing the same document, promptly, and nothing it stored is lost.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::config::DatabaseUrl;
use sync_core::DocumentId;
use sync_core::automerge::transaction::Transactable;
use sync_core::automerge::{ROOT, ReadDoc, ScalarValue};
use test_support::{Device, Served, Ws};
use tokio::net::TcpSocket;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;

/// The server's send timeout in this test.
const SEND_TIMEOUT: Duration = Duration::from_secs(4);

/// Random (incompressible) bytes each of phone B's large changes carries.
const LARGE_CHANGE_BYTES: usize = 256 * 1024;

/// What phone B sends in large changes, all pushed on to phone A: more than
/// the server's socket can buffer towards A (Linux grows a send buffer to 4
/// MiB at most by default; A's receive buffer is made small), so the
/// server's writes to A stall well before the end.
const FILL_BYTES: usize = 6 * 1024 * 1024;

/// The longest one of phone B's syncs may take: well under the send
/// timeout, which it would wait out if a write to A held anything B needs.
const PROMPT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_and_holds_nobody_up() {
    // The backends one after the other, not in parallel: the metrics asserted
    // on are the process's.
    stalled_peer(None).await;
    if let Some(schema) = test_support::store::postgres_schema().await {
        stalled_peer(Some(schema.url.clone())).await;
        schema.cleanup().await;
    }
}

async fn stalled_peer(database_url: Option<String>) {
    let server = Served::start_with(|c| {
        c.sync_send_timeout = SEND_TIMEOUT;
        // One merge at a time: a connection that kept the merge permit while
        // writing to a stalled peer would hold up every other sync.
        c.max_concurrent_merges = 1;
        if let Some(url) = database_url {
            c.database_url = DatabaseUrl::new(url);
        }
    })
    .await;
    let timeouts_before = server.metric("sync_send_timeouts_total").await;
    let mut rng = StdRng::seed_from_u64(2);
    let mut b = server.device("cadre01", "phone-b").await;
    let (id, _) = b.create_diary(&mut rng);
    b.sync().await;

    // Phone A syncs the diary, then never reads its socket again.
    let token = server.login("cadre01", "phone-a").await;
    let socket = open_with_small_receive_buffer(server.addr, &token).await;
    let mut a = Device::on_socket(socket, &token, "phone-a").await;
    assert!(a.request(id).await.is_some(), "phone a has the diary");
    assert_eq!(server.metric("sync_connections").await, 2.0);

    // Phone B keeps changing the diary; the server pushes every change to A.
    let mut changes = 0;
    let mut sent = 0;
    let mut filled_at = None;
    let timed_out_at = loop {
        let size = if filled_at.is_none() {
            LARGE_CHANGE_BYTES
        } else {
            1024
        };
        add_attachment(&mut b, &id, changes, size, &mut rng);
        changes += 1;
        let started = Instant::now();
        b.sync().await;
        let took = started.elapsed();
        assert!(
            took < PROMPT,
            "phone b's sync {changes} took {took:?}: held up by the phone that stopped reading"
        );
        sent += size;
        if filled_at.is_none() && sent >= FILL_BYTES {
            filled_at = Some(Instant::now());
        }
        if let Some(filled) = filled_at {
            if server.metric("sync_send_timeouts_total").await > timeouts_before {
                break Instant::now();
            }
            assert!(
                filled.elapsed() < SEND_TIMEOUT + Duration::from_secs(5),
                "no send timed out {:?} after the buffers towards phone a were full",
                filled.elapsed()
            );
        }
    };
    assert_eq!(
        server.metric("sync_send_timeouts_total").await,
        timeouts_before + 1.0,
        "exactly the one stalled connection timed out"
    );

    // The server has closed A: what its buffers held, then the end.
    let ended = tokio::time::timeout(Duration::from_secs(5), read_to_end(&mut a.ws)).await;
    assert!(
        ended.is_ok(),
        "phone a's socket still open {:?} after its send timed out",
        timed_out_at.elapsed()
    );
    assert_eq!(
        server.metric("sync_connections").await,
        1.0,
        "only phone b is connected"
    );

    // Phone A reconnects with the diary as it had it and gets every change.
    let mut again = server.device("cadre01", "phone-a").await;
    again.docs.insert(id, a.docs[&id].clone());
    assert!(again.request(id).await.is_some());
    assert_eq!(attachments(&again, &id), changes);
    assert_eq!(attachments(&b, &id), changes);
    again.close().await;
    b.close().await;
    server.stop().await;
}

/// Opens the sync socket with a small receive buffer, so that a client
/// that stops reading soon leaves the server's writes nowhere to go.
async fn open_with_small_receive_buffer(addr: SocketAddr, token: &str) -> Ws {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(16 * 1024)
        .expect("receive buffer");
    let stream = socket.connect(addr).await.expect("connect");
    let mut request = format!("ws://{addr}/api/v1/sync")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream))
        .await
        .expect("upgrade")
        .0
}

/// A change putting `size` random bytes under a key of the diary's root
/// (readers ignore keys they do not know).
fn add_attachment(device: &mut Device, id: &DocumentId, n: usize, size: usize, rng: &mut impl Rng) {
    let mut bytes = vec![0u8; size];
    rng.fill(&mut bytes[..]);
    let doc = device.docs.get_mut(id).expect("document");
    let mut tx = doc.transaction();
    tx.put(ROOT, format!("attachment_{n}"), ScalarValue::Bytes(bytes))
        .expect("put");
    tx.commit();
}

/// How many attachments the device's copy of the diary holds.
fn attachments(device: &Device, id: &DocumentId) -> usize {
    device.docs[id]
        .keys(ROOT)
        .filter(|k| k.starts_with("attachment_"))
        .count()
}

/// Reads frames until the stream ends (closed, reset, or cut mid-frame).
async fn read_to_end(ws: &mut Ws) {
    while let Some(Ok(_)) = ws.next().await {}
}
