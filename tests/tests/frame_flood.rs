//! One user's connections each send a frame as large as the server takes,
//! all at once, against the real server: the WebSocket layer reads a frame
//! whole before the per-user budget of bytes being merged sees it, so what
//! bounds memory here is the frame cap (`sync.max_message_bytes`) times the
//! connections a user may open. A frame over the cap is refused; another
//! user keeps syncing.
//!
//! The same flood runs against two servers in one test: one with the default
//! cap (8 MiB) and one with the cap raised to 32 MiB (the largest frame
//! before the cap existed), and their peak memory is compared.

use std::time::{Duration, Instant};

use e2e_tests::{
    Database, MemoryGrowth, ServerProcess, TokenIn, assert_bound_keeps_memory_down, open_socket,
};
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sync_core::protocol::DocSyncStatus;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message as Frame;

/// Sync connections one user may open (the server's default).
const CONNECTIONS: usize = 8;
const MIB: usize = 1024 * 1024;

struct Flood {
    /// Peak resident memory minus resident memory before, in MiB.
    growth_mib: f64,
    /// Frames the server answered with an error frame or a close.
    answered: usize,
    seconds: f64,
}

/// A masked binary WebSocket frame's head for `len` payload bytes, as a
/// client sends it; the mask key is zero, so the payload goes as it is.
fn frame_head(len: usize) -> Vec<u8> {
    let mut head = vec![0x82, 0x80 | 127];
    head.extend_from_slice(&(len as u64).to_be_bytes());
    head.extend_from_slice(&[0, 0, 0, 0]);
    head
}

/// One cadre's `CONNECTIONS` connections each send a frame of `frame_bytes`
/// random bytes: all but the last byte first, so the server holds every
/// frame at once, then the last bytes together. Waits until every
/// connection has been answered.
async fn flood(server: &ServerProcess, frame_bytes: usize) -> Flood {
    let token = server.login("cadre01", "flood").await;
    let mut frame = frame_head(frame_bytes);
    let mut payload = vec![0u8; frame_bytes];
    StdRng::seed_from_u64(5).fill_bytes(&mut payload);
    frame.extend_from_slice(&payload);
    drop(payload);
    let mut sockets = Vec::new();
    for _ in 0..CONNECTIONS {
        sockets.push(
            open_socket(server.addr(), Some(&token), TokenIn::Header)
                .await
                .expect("upgrade"),
        );
    }
    let mut memory = MemoryGrowth::start(server.pid());
    let started = Instant::now();
    let (most, last) = frame.split_at(frame.len() - 1);
    let writes = sockets.iter_mut().map(|socket| async {
        let MaybeTlsStream::Plain(tcp) = socket.get_mut() else {
            panic!("plain TCP")
        };
        // The server may close a connection before the whole frame is in
        // (over the cap); what it answers is what counts.
        let _ = tcp.write_all(most).await;
    });
    futures_util::future::join_all(writes).await;
    // Every frame but its last byte is in; give the server a moment to read
    // them all, then finish them together.
    tokio::time::sleep(Duration::from_millis(500)).await;
    memory.sample();
    let finish = sockets.iter_mut().map(|socket| async {
        if let MaybeTlsStream::Plain(tcp) = socket.get_mut() {
            let _ = tcp.write_all(last).await;
        }
        loop {
            match tokio::time::timeout(Duration::from_secs(60), socket.next()).await {
                Ok(Some(Ok(Frame::Binary(_) | Frame::Close(_))) | Some(Err(_)) | None) => {
                    return true;
                }
                Ok(Some(Ok(_))) => {}
                Err(_) => return false,
            }
        }
    });
    let answered = futures_util::future::join_all(finish)
        .await
        .into_iter()
        .filter(|a| *a)
        .count();
    let seconds = started.elapsed().as_secs_f64();
    Flood {
        growth_mib: memory.mib(),
        answered,
        seconds,
    }
}

/// Another cadre syncs a new diary: the server still serves.
async fn another_user_syncs(server: &ServerProcess) {
    let mut rng = StdRng::seed_from_u64(6);
    let mut phone = server.device("cadre02", "phone").await;
    let (id, _) = phone.create_diary(&mut rng);
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Synced)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_frames_from_one_user_keep_memory_bounded() {
    // Each frame just under the cap (its envelope aside), so it is read
    // whole and then refused as no sync message.
    let capped = ServerProcess::start_with(Database::Sqlite, &[]).await;
    let bounded = flood(&capped, 8 * MIB - 1024).await;
    another_user_syncs(&capped).await;

    // Over the cap: refused as it is read.
    let over = flood(&capped, 9 * MIB).await;
    another_user_syncs(&capped).await;

    let raised = ServerProcess::start_with(
        Database::Sqlite,
        &[("VISIT_DIARY_MAX_MESSAGE_BYTES", &(32 * MIB).to_string())],
    )
    .await;
    let unbounded = flood(&raised, 32 * MIB - 1024).await;
    another_user_syncs(&raised).await;

    for (name, f) in [
        ("8 MiB cap, frames of 8 MiB", &bounded),
        ("8 MiB cap, frames of 9 MiB", &over),
        ("32 MiB cap, frames of 32 MiB", &unbounded),
    ] {
        eprintln!(
            "{CONNECTIONS} connections of one cadre, {name}: peak memory +{:.0} MiB, \
             {} of {CONNECTIONS} answered, in {:.1} s",
            f.growth_mib, f.answered, f.seconds
        );
        assert_eq!(f.answered, CONNECTIONS, "every connection answered");
    }
    // Refused from the length in the frame's head, before its payload is
    // buffered.
    assert!(
        over.growth_mib < 16.0,
        "frames over the cap are not held: {:.0} MiB",
        over.growth_mib
    );
    assert_bound_keeps_memory_down(
        "the cap",
        &format!("{CONNECTIONS} frames of 8 MiB"),
        120.0,
        bounded.growth_mib,
        unbounded.growth_mib,
    );
}
