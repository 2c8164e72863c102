//! A `sync` frame's automerge message as the server handles it: the
//! protocol decodes it (`ServerConnection::handle`), `payload::check`
//! measures its changes (in `ServerConnection::apply_checked`) against a
//! stored diary and against an empty document, and only then automerge
//! applies them and the server answers. Nothing may panic: whatever a peer
//! sends is refused with an error or merged.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sync_core::automerge::{ActorId, Automerge};
use sync_core::protocol::payload::PayloadLimits;
use sync_core::protocol::{
    Access, Message, PROTOCOL_VERSION, ServerConnection, ServerStep, SyncStep,
};
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp, fixtures};

const OWNER: &str = "cadre01";

/// A diary with a few visits, saved once.
fn stored_diary() -> &'static [u8] {
    static SAVED: OnceLock<Vec<u8>> = OnceLock::new();
    SAVED.get_or_init(|| {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let start = Timestamp::from_millis(1_780_000_000_000);
        let mut diary =
            DiaryDocument::create_shared(OWNER, 2026, ActorId::random()).expect("diary");
        for i in 0..3 {
            let at = Timestamp::from_millis(start.millis() + i * 60_000);
            let visit = fixtures::visit(&mut rng, at, OWNER);
            diary
                .add_visit(&Edit::new(OWNER, at), &visit)
                .expect("visit");
        }
        diary.into_automerge().save()
    })
}

/// libFuzzer's panic hook aborts on every panic, even one the code under
/// test catches. `payload::check` deliberately catches automerge 0.12's
/// panics on hostile changes: `Change::decode` unwraps the actor of an
/// operation naming an index past the change's actor table (`change.rs`),
/// and `Change::try_from` unwraps a counter past 32 bits (`types.rs`); the
/// check refuses such a change as malformed. So a panic raised inside
/// automerge is let through the hook. Every other panic still aborts there,
/// and one that escapes uncaught (automerge's included) aborts in
/// libfuzzer-sys, which runs each input under `catch_unwind`.
fn let_caught_decode_panics_through() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_automerge = info
            .location()
            .is_some_and(|at| at.file().contains("automerge-0.12"));
        if !in_automerge {
            abort(info);
        }
    }));
}

fuzz_target!(init: let_caught_decode_panics_through(), |data: &[u8]| {
    // Against the stored diary, and against an empty document (a first
    // upload, where a document chunk the check loaded is taken as it is).
    for stored in [true, false] {
        sync_as_the_server(data, stored);
    }
});

/// The frame through the server's path: `ServerConnection::handle`, then
/// `apply_checked` (the payload check, at 1 MiB documents and depth 64,
/// then the merge), then `reply`.
fn sync_as_the_server(data: &[u8], stored: bool) {
    let policy = |_: &DocumentId| Access::ReadWrite;
    let mut conn = ServerConnection::new("server");
    let join = Message::Join {
        sender_id: "phone".to_owned(),
        supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
        metadata: None,
    };
    conn.handle_with(join, &policy).expect("handshake");
    let frame = Message::Sync {
        document_id: sync_core::diary_id(OWNER, 2026),
        sender_id: "phone".to_owned(),
        target_id: "server".to_owned(),
        data: data.to_vec(),
    };
    let Ok(ServerStep::Sync(SyncStep {
        document_id,
        message,
        is_request,
        ..
    })) = conn.handle_with(frame, &policy)
    else {
        return;
    };
    let mut doc = if stored {
        Automerge::load(stored_diary()).expect("the stored diary loads")
    } else {
        Automerge::new()
    };
    let limits = PayloadLimits::new(1 << 20, 64);
    if conn
        .apply_checked(&document_id, &mut doc, *message, &limits)
        .is_err()
    {
        return;
    }
    let _ = conn.reply(&document_id, &doc, is_request);
}
