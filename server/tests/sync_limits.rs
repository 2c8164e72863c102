//! What one user can make the sync endpoint store and hold: documents per
//! user, stored bytes per user, and bytes of frames per user. Each limit is
//! refused with an error naming it, nothing of the refused write is stored,
//! and another user syncs meanwhile.

use std::sync::Arc;

use futures_util::SinkExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::store::{OwnerUsage, Store};
use sync_core::protocol::{DocSyncStatus, Message};
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp, fixtures};
use test_support::{Device, Served};
use tokio_tungstenite::tungstenite;

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// What the server's store holds for `username`.
async fn usage(server: &Served, username: &str) -> OwnerUsage {
    let store = server.store().await;
    let user = store
        .get_user_by_username(username)
        .await
        .expect("user")
        .expect("a demo user");
    store.owner_usage(user.id).await.expect("usage")
}

/// Another user creates a diary and gets it acknowledged.
async fn another_user_syncs(server: &Served, rng: &mut StdRng) {
    let mut other = server.device("cadre02", "phone").await;
    let id = other.create_diary(rng).0;
    other.sync().await;
    assert_eq!(
        other.conn.status(&id, &other.docs),
        Some(DocSyncStatus::Synced)
    );
}

/// Adds visits whose notes are `bytes` random characters in all
/// (compression cannot shrink them) to a diary `phone` holds.
fn add_large_visits(
    phone: &mut Device,
    id: &DocumentId,
    user: &str,
    bytes: usize,
    rng: &mut StdRng,
) {
    // A visit's notes are at most 20 000 characters.
    const PER_VISIT: usize = 16 * 1024;
    let at = Timestamp::from_millis(1_780_000_000_000);
    let doc = phone.docs.remove(id).expect("document");
    let mut diary = DiaryDocument::from_automerge(doc).expect("a diary");
    let mut left = bytes;
    while left > 0 {
        let mut visit = fixtures::visit(rng, at, user);
        visit.notes = (0..left.min(PER_VISIT))
            .map(|_| char::from(rng.random_range(b'!'..=b'~')))
            .collect();
        left -= left.min(PER_VISIT);
        diary
            .add_visit(&Edit::new(user, at), &visit)
            .expect("add visit");
    }
    phone.docs.insert(*id, diary.into_automerge());
}

async fn documents_past_the_per_user_limit_are_refused(store: Arc<dyn Store>) {
    let server = Served::on_store(store, |c| c.max_documents_per_user = 2).await;
    let mut rng = rng(21);
    let mut phone = server.device("cadre01", "phone").await;
    let first = phone.create_diary(&mut rng).0;
    let second = phone.create_diary(&mut rng).0;
    phone.sync().await;
    for id in [&first, &second] {
        assert_eq!(
            phone.conn.status(id, &phone.docs),
            Some(DocSyncStatus::Synced)
        );
    }
    let before = usage(&server, "cadre01").await;
    assert_eq!(before.documents, 2);

    phone.create_diary(&mut rng);
    phone.flush().await;
    let error = phone.expect_error_and_close().await;
    assert!(
        error.contains("already has 2 documents, the limit is 2 per user"),
        "{error}"
    );
    assert_eq!(usage(&server, "cadre01").await, before, "nothing stored");

    another_user_syncs(&server, &mut rng).await;

    // The existing documents keep syncing.
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(tablet.request(first).await, Some(DocSyncStatus::Synced));
    tablet.add_visit(&first, &mut rng);
    tablet.sync().await;
    assert_eq!(tablet.visit_count(&first), 2);
    assert_eq!(usage(&server, "cadre01").await.documents, 2);
}

/// Syncs `device`'s document `id` until the server acknowledges it
/// (`Ok`) or sends an error (`Err` with its text).
async fn synced_or_refused(device: &mut Device, id: DocumentId) -> Result<(), String> {
    loop {
        if device.conn.status(&id, &device.docs) == Some(DocSyncStatus::Synced) {
            return Ok(());
        }
        match device.next_frame().await {
            tungstenite::Message::Binary(bytes) => {
                match Message::decode(&bytes).expect("decodes") {
                    Message::Error { message } => return Err(message),
                    m => {
                        let _ = device.conn.handle(m, &mut device.docs);
                        device.flush().await;
                    }
                }
            }
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

async fn documents_created_at_once_on_two_connections_stay_within_the_limit(store: Arc<dyn Store>) {
    let server = Served::on_store(store, |c| c.max_documents_per_user = 1).await;
    let mut rng = rng(24);
    let mut phone = server.device("cadre01", "phone").await;
    let mut tablet = server.device("cadre01", "tablet").await;
    let a = phone.create_diary(&mut rng).0;
    let b = tablet.create_diary(&mut rng).0;
    // Both creations are in flight before either is answered.
    phone.flush().await;
    tablet.flush().await;
    let (a, b) = tokio::join!(
        synced_or_refused(&mut phone, a),
        synced_or_refused(&mut tablet, b)
    );
    // Which one wins is up to the server; the other is refused.
    let refused = match (a, b) {
        (Ok(()), Err(e)) | (Err(e), Ok(())) => e,
        other => panic!("expected one creation stored and one refused, got {other:?}"),
    };
    assert!(refused.contains("the limit is 1 per user"), "{refused}");
    assert_eq!(usage(&server, "cadre01").await.documents, 1);
}

async fn writes_past_the_per_user_stored_bytes_are_refused(store: Arc<dyn Store>) {
    const LIMIT: u64 = 16 * 1024;
    let server = Served::on_store(store, |c| c.max_stored_bytes_per_user = LIMIT).await;
    let mut rng = rng(22);
    let mut phone = server.device("cadre01", "phone").await;
    let id = phone.create_diary(&mut rng).0;
    phone.sync().await;
    assert_eq!(
        phone.conn.status(&id, &phone.docs),
        Some(DocSyncStatus::Synced)
    );
    let before = usage(&server, "cadre01").await;
    assert!(before.bytes > 0 && before.bytes < LIMIT, "{before:?}");

    add_large_visits(&mut phone, &id, "cadre01", 2 * LIMIT as usize, &mut rng);
    phone.flush().await;
    let error = phone.expect_error_and_close().await;
    assert!(
        error.contains(&format!("the limit is {LIMIT} bytes per user")),
        "{error}"
    );
    assert_eq!(usage(&server, "cadre01").await, before, "nothing stored");

    another_user_syncs(&server, &mut rng).await;

    // A fresh device gets the diary as it was before the refused write.
    let mut tablet = server.device("cadre01", "tablet").await;
    assert_eq!(tablet.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(tablet.visit_count(&id), 1);
}

async fn frames_past_the_per_user_buffer_budget_are_refused(store: Arc<dyn Store>) {
    const BUDGET: usize = 64 * 1024;
    // The document limit alone would allow frames of 32 MiB.
    let server = Served::on_store(store, |c| c.max_buffered_bytes_per_user = BUDGET).await;
    let mut rng = rng(23);
    let mut phone = server.device("cadre01", "phone").await;
    let id = phone.create_diary(&mut rng).0;
    phone.sync().await;
    let before = usage(&server, "cadre01").await;

    // A sync message larger than the budget, as the protocol sends it.
    add_large_visits(&mut phone, &id, "cadre01", 2 * BUDGET, &mut rng);
    phone.flush().await;
    let error = phone.expect_error_and_close().await;
    assert!(
        error.contains(&format!("> {BUDGET}")),
        "the frame limit is the budget: {error}"
    );

    // Raw frames from several connections of the user at once: each is
    // refused, none stored.
    let mut tablets = Vec::new();
    for n in 0..3 {
        tablets.push(server.device("cadre01", &format!("tablet{n}")).await);
    }
    for tablet in &mut tablets {
        tablet
            .ws
            .send(tungstenite::Message::Binary(vec![0u8; BUDGET + 1].into()))
            .await
            .expect("send");
    }
    for tablet in &mut tablets {
        let error = tablet.expect_error_and_close().await;
        assert!(error.contains(&format!("> {BUDGET}")), "{error}");
    }
    assert_eq!(usage(&server, "cadre01").await, before, "nothing stored");

    another_user_syncs(&server, &mut rng).await;
    let mut laptop = server.device("cadre01", "laptop").await;
    assert_eq!(laptop.request(id).await, Some(DocSyncStatus::Synced));
    assert_eq!(laptop.visit_count(&id), 1);
}

test_support::backends!(
    documents_past_the_per_user_limit_are_refused,
    documents_created_at_once_on_two_connections_stay_within_the_limit,
    writes_past_the_per_user_stored_bytes_are_refused,
    frames_past_the_per_user_buffer_budget_are_refused,
);
