//! Clients that hold a socket without sending a request: one that connects
//! and says nothing, one that sends half its headers, one that keeps an idle
//! keep-alive connection. Each is closed once `header_read_timeout` passes,
//! while a WebSocket that has finished its upgrade stays open.

use std::time::{Duration, Instant};

use test_support::Served;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(1);

async fn start() -> Served {
    Served::start_with(|c| c.header_read_timeout = TIMEOUT).await
}

/// How long until the server closes `stream` (reads to end of file),
/// giving up after 10 s.
async fn closed_after(stream: &mut TcpStream) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

fn assert_closed_in_time(what: &str, after: Option<Duration>) {
    let after = after.unwrap_or_else(|| panic!("{what}: still open after 10 s"));
    assert!(
        after < TIMEOUT * 3,
        "{what}: closed only after {after:?} (timeout {TIMEOUT:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_sent_and_idle_connections_are_closed() {
    let server = start().await;

    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    assert_closed_in_time("a silent connection", closed_after(&mut silent).await);

    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    assert_closed_in_time("half a request head", closed_after(&mut half).await);

    // A whole request is answered; the kept-alive connection is then closed
    // when no next request comes.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.expect("answer");
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert_closed_in_time(
        "an idle keep-alive connection",
        closed_after(&mut idle).await,
    );

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_websocket_outlives_the_header_timeout() {
    let server = start().await;
    let mut device = server.device("cadre01", "phone").await;
    tokio::time::sleep(TIMEOUT * 3).await;
    // Still connected: the socket still answers a request.
    let answer = device.request(sync_core::diary_id("cadre01", 2026)).await;
    assert!(answer.is_some(), "the socket still syncs");
    device.close().await;
    server.stop().await;
}
