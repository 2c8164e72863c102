//! What a sync stores as messages arrive.

use sync_core::automerge::sync::{self, MessageVersion};
use sync_core::automerge::transaction::Transactable;
use sync_core::automerge::{Automerge, ROOT};
use sync_core::protocol::PROTOCOL_VERSION;

use super::*;
use crate::ClientConfig;
use crate::core::Docs;

fn open(dir: &std::path::Path) -> Core {
    Core::open(ClientConfig {
        data_dir: dir.to_string_lossy().into_owned(),
        server_url: "http://127.0.0.1:9".to_owned(),
        device_id: "test-phone".to_owned(),
        at_rest_key: None,
    })
    .expect("open")
}

/// Two changes on the server's side, the second depending on the first.
fn parent_and_child() -> (Automerge, Vec<u8>, Vec<u8>) {
    let mut doc = Automerge::new();
    let mut raw = Vec::new();
    for key in ["first", "second"] {
        let mut tx = doc.transaction();
        tx.put(ROOT, key, 1).expect("put");
        tx.commit();
        raw.push(
            doc.get_last_local_change()
                .expect("change")
                .raw_bytes()
                .to_vec(),
        );
    }
    let child = raw.pop().expect("child");
    let parent = raw.pop().expect("parent");
    (doc, parent, child)
}

#[test]
fn a_received_change_that_waits_for_its_parent_is_stored_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = sync_core::diary_id("cadre01", 2026);
    let (server_doc, parent, child) = parent_and_child();
    {
        let core = open(dir.path());
        let (mut conn, _join) = ClientConnection::new("phone", None);
        let peer = Message::Peer {
            sender_id: "server".to_owned(),
            target_id: "phone".to_owned(),
            selected_protocol_version: PROTOCOL_VERSION.to_owned(),
            metadata: None,
        };
        conn.handle(peer, &mut Docs::new()).expect("handshake");
        // The server skipped the parent (a Bloom filter false positive)
        // and sent the child alone: the heads do not move.
        let data = sync::Message {
            heads: server_doc.get_heads(),
            need: vec![],
            have: vec![],
            changes: vec![child].into(),
            flags: None,
            version: MessageVersion::V1,
        }
        .encode();
        let message = Message::Sync {
            document_id: id,
            sender_id: "server".to_owned(),
            target_id: "phone".to_owned(),
            data,
        };
        let mut report = SyncReport::default();
        let mut changed = BTreeSet::new();
        core.receive(&mut conn, message, &mut report, &mut changed)
            .expect("receive");
        assert_eq!(report.changes_down, 0, "nothing applied yet");
        // The phone is killed here, before the sync ends.
    }
    let core = open(dir.path());
    let mut docs = Docs::new();
    assert!(
        Core::load_into(&mut docs, &lock(&core.store), &id).expect("load"),
        "the document was stored"
    );
    let mut doc = docs.remove(&id).expect("loaded");
    assert!(sync_core::storage::has_waiting_changes(&doc));
    doc.load_incremental(&parent).expect("the parent arrives");
    assert_eq!(doc.get_heads(), server_doc.get_heads());
}
