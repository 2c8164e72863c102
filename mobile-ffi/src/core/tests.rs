//! How documents are stored: a change per edit, compacted now and then, and
//! received changes that wait for a parent kept across a restart.

use rand::SeedableRng;
use sync_core::automerge::transaction::Transactable;
use sync_core::automerge::{Automerge, ROOT};
use sync_core::{DiaryDocument, Timestamp};

use super::*;

const OWNER: &str = "cadre01";

fn open(dir: &std::path::Path) -> Core {
    let core = Core::open(ClientConfig {
        data_dir: dir.to_string_lossy().into_owned(),
        server_url: "http://127.0.0.1:9".to_owned(),
        device_id: "test-phone".to_owned(),
        at_rest_key: None,
    })
    .expect("open");
    lock(&core.store)
        .set_settings(&[(keys::USERNAME, Some(OWNER))])
        .expect("log in offline");
    core
}

fn add_visit(core: &Core, rng: &mut rand::rngs::StdRng) {
    let at = Timestamp::from_millis(1_780_000_000_000);
    let visit = sync_core::fixtures::visit(rng, at, OWNER);
    core.edit(Target::Diary(2026), |doc, edit| {
        Core::with_diary(doc, |diary| {
            diary.add_visit(edit, &visit)?;
            Ok(((), vec![]))
        })
    })
    .expect("edit");
}

fn visits_on_disk(dir: &std::path::Path) -> usize {
    let core = open(dir);
    let mut docs = Docs::new();
    let id = sync_core::diary_id(OWNER, 2026);
    let store = lock(&core.store);
    assert!(Core::load_into(&mut docs, &store, &id).expect("load"));
    let doc = docs.remove(&id).expect("loaded");
    DiaryDocument::from_automerge(doc)
        .expect("a diary")
        .all_visits()
        .len()
}

#[test]
fn an_edit_stores_its_change_and_compaction_keeps_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let core = open(dir.path());
    let id = sync_core::diary_id(OWNER, 2026);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let total = COMPACT_AFTER_CHUNKS * 2 + 10;
    let mut most = 0;
    for _ in 0..total {
        add_visit(&core, &mut rng);
        most = most.max(lock(&core.store).chunk_count(&id).expect("count"));
    }
    assert_eq!(most, COMPACT_AFTER_CHUNKS, "chunks are compacted");
    let stored = lock(&core.store)
        .document(&id)
        .expect("read")
        .expect("held");
    assert!(!stored.chunks.is_empty(), "recent edits are chunks");
    let biggest_chunk = stored.chunks.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        biggest_chunk * 10 < stored.snapshot.len(),
        "an edit writes its change ({biggest_chunk} bytes), not the document ({})",
        stored.snapshot.len()
    );
    assert_eq!(
        lock(&core.store).pending_changes().expect("pending"),
        total as u64
    );
    drop(core);
    assert_eq!(visits_on_disk(dir.path()), total);
}

#[test]
fn a_received_change_waiting_for_its_parent_survives_a_restart() {
    // Two changes on another device, the second depending on the first.
    let mut other = Automerge::new();
    let mut tx = other.transaction();
    tx.put(ROOT, "first", 1).expect("put");
    tx.commit();
    let parent = other
        .get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec();
    let mut tx = other.transaction();
    tx.put(ROOT, "second", 2).expect("put");
    tx.commit();
    let child = other
        .get_last_local_change()
        .expect("change")
        .raw_bytes()
        .to_vec();

    // The phone got the child alone (the parent was skipped after a Bloom
    // filter false positive) and stored what it received.
    let dir = tempfile::tempdir().expect("tempdir");
    let id = sync_core::diary_id(OWNER, 2026);
    let mut doc = Automerge::new();
    doc.load_incremental(&child).expect("queue the child");
    assert!(sync_core::storage::has_waiting_changes(&doc));
    {
        let core = open(dir.path());
        lock(&core.store)
            .save_received(
                &describe(id, &doc),
                &sync_core::storage::snapshot(&doc),
                None,
                0,
            )
            .expect("store");
    }

    // After a restart the child still waits, and the parent completes it.
    let core = open(dir.path());
    let mut docs = Docs::new();
    assert!(Core::load_into(&mut docs, &lock(&core.store), &id).expect("load"));
    let mut loaded = docs.remove(&id).expect("loaded");
    assert!(sync_core::storage::has_waiting_changes(&loaded));
    loaded.load_incremental(&parent).expect("the parent");
    assert_eq!(loaded.get_heads(), other.get_heads());
}

#[test]
fn damage_inside_the_store_is_a_typed_error_and_the_file_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    {
        let core = open(dir.path());
        for _ in 0..100 {
            add_visit(&core, &mut rng);
        }
    } // closing checkpoints the journal into the file
    let file = dir.path().join(crate::store::FILE_NAME);
    let mut bytes = std::fs::read(&file).expect("read");
    assert!(bytes.len() > 16 * 4096, "a store of many pages");
    // Every page but the first (the header and the start of the schema).
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i % 251) as u8;
    }
    std::fs::write(&file, &bytes).expect("damage");

    let outcome = Core::open(ClientConfig {
        data_dir: dir.path().to_string_lossy().into_owned(),
        server_url: "http://127.0.0.1:9".to_owned(),
        device_id: "test-phone".to_owned(),
        at_rest_key: None,
    })
    .and_then(|core| {
        let mut docs = Docs::new();
        let store = lock(&core.store);
        Core::load_into(&mut docs, &store, &sync_core::diary_id(OWNER, 2026))
    });
    assert!(
        matches!(outcome, Err(ClientError::CorruptStore { .. })),
        "expected CorruptStore, got {outcome:?}"
    );
    assert_eq!(std::fs::read(&file).expect("read"), bytes, "file untouched");
}
