//! First upload: the server's CPU for a phone's first sync of a whole
//! diary, against this machine's floor for the same documents.
//!
//! ```sh
//! cargo bench -p server --bench first_upload
//! cargo bench -p server --bench first_upload -- --diaries 20 --visits 500
//! ```
//!
//! Each diary is a realistic Chinese diary (`sync_core::fixtures`, a
//! petition in every fifth visit). The message is the one a phone sends
//! once the server has said it has nothing: automerge's v2 sync message,
//! the whole document as one compressed chunk. Timed per document, on one
//! thread, one after the other:
//!
//! - **floor**: automerge `load` of the saved document, plus the ledger
//!   projection of every record (what any server must do to take the
//!   document and keep its ledger);
//! - **ours**: what the sync session does with the message under the
//!   document's lock, without the store: `ServerConnection` decodes and
//!   grants it, `sync::documents::merge` checks the payload, merges it into
//!   an empty document and works out the chunk to store, and the ledger rows
//!   are projected from the merged document.
//!
//! The parts of the check are timed on their own too (on the same
//! message, apart from the merge). The ratio, measured
//! in one run, is what counts (this machine is noisy). Results are printed
//! as a Markdown table for `docs/BENCHMARKS.md`.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use server::ledger::{Attribution, LedgerProjection};
use server::sync::PayloadLimits;
use server::sync::documents;
use sync_core::automerge::sync::{self, SyncDoc};
use sync_core::automerge::{ActorId, Automerge};
use sync_core::protocol::{Access, Message, ServerStep, SyncStep, payload};
use sync_core::{DocumentId, Timestamp, diary_id, fixtures};

/// 2026-03-01 08:00 China time.
const START: Timestamp = Timestamp(1_772_323_200_000);

/// What to run.
#[derive(clap::Parser)]
struct Options {
    /// How many diaries.
    #[arg(long, default_value_t = 20)]
    diaries: usize,
    /// Visits in each diary.
    #[arg(long, default_value_t = 500)]
    visits: usize,
    /// What `cargo bench` passes on.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One phone's diary and the first-upload message it sends.
struct Upload {
    owner: String,
    document_id: DocumentId,
    saved: Vec<u8>,
    /// The encoded automerge sync message carrying the whole document.
    message: Vec<u8>,
}

fn upload(i: usize, visits: usize) -> Upload {
    let owner = format!("cadre{i:04}");
    let mut rng = StdRng::seed_from_u64(i as u64);
    let diary = fixtures::diary(&mut rng, &owner, ActorId::random(), visits, START);
    let doc = diary.into_automerge();
    // The server speaks first with empty heads and its capabilities; the
    // phone answers with what the server lacks: the whole document.
    let mut server_state = sync::State::new();
    let mut phone_state = sync::State::new();
    let hello = Automerge::new()
        .generate_sync_message(&mut server_state)
        .expect("the server's first message");
    let mut phone = doc.clone();
    phone
        .receive_sync_message(&mut phone_state, hello)
        .expect("the phone takes it");
    let message = phone
        .generate_sync_message(&mut phone_state)
        .expect("the phone sends its document");
    Upload {
        document_id: diary_id(&owner, 2026),
        owner,
        saved: doc.save(),
        message: message.encode(),
    }
}

/// Time spent in each step, summed over the documents.
#[derive(Default)]
struct Times {
    floor_load: Duration,
    floor_projection: Duration,
    check: Duration,
    check_load: Duration,
    merge: Duration,
    projection: Duration,
}

fn per_doc(d: Duration, n: usize) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0 / n as f64)
}

fn main() {
    let o = <Options as clap::Parser>::parse();
    eprintln!(
        "building {} diaries of {} visits (not timed)",
        o.diaries, o.visits
    );
    let uploads: Vec<Upload> = (0..o.diaries).map(|i| upload(i, o.visits)).collect();
    let limits = PayloadLimits::new(4 << 20, 64);
    let known = Attribution::default();
    let mut t = Times::default();
    let mut rows = 0usize;
    let (mut wire, mut saved, mut stored) = (0usize, 0usize, 0usize);
    for u in &uploads {
        // The floor.
        let started = Instant::now();
        let doc = Automerge::load(&u.saved).expect("the saved diary loads");
        t.floor_load += started.elapsed();
        let started = Instant::now();
        let floor_rows = LedgerProjection::of_document(&doc, &known).expect("projected");
        t.floor_projection += started.elapsed();
        drop(doc);

        // The payload check on its own, and its scratch load.
        let decoded = sync::Message::decode(&u.message).expect("decodes");
        let started = Instant::now();
        payload::check(&Automerge::new(), &decoded, &limits).expect("passes");
        t.check += started.elapsed();
        let started = Instant::now();
        let scratch = Automerge::load(decoded.changes.iter().next().expect("one entry"))
            .expect("the chunk loads");
        t.check_load += started.elapsed();
        drop(scratch);

        // Ours: the session's merge and projection.
        let started = Instant::now();
        let mut conn = sync_core::testing::joined_server("server", "phone");
        let allow = |_: &DocumentId| Access::ReadWrite;
        let step = conn
            .handle_with(
                Message::Sync {
                    document_id: u.document_id,
                    sender_id: "phone".into(),
                    target_id: "server".into(),
                    data: u.message.clone(),
                },
                &allow,
            )
            .expect("handled");
        let ServerStep::Sync(SyncStep { message, .. }) = step else {
            panic!("a granted document is synced");
        };
        let mut doc = Automerge::new();
        let outcome = documents::merge(
            &mut conn,
            u.document_id,
            &mut doc,
            0,
            *message,
            (&u.owner, 1),
            &known,
            Access::ReadWrite,
            &limits,
        )
        .expect("merged");
        t.merge += started.elapsed();
        let started = Instant::now();
        let ours = LedgerProjection::after_changes(
            &doc,
            &known,
            &outcome.heads_before,
            outcome.added.as_deref(),
        );
        t.projection += started.elapsed();
        assert_eq!(ours.len(), floor_rows.len(), "the same ledger rows");
        rows += ours.len();
        wire += u.message.len();
        saved += u.saved.len();
        stored += outcome.chunk.as_ref().map_or(0, Vec::len);
    }
    let n = uploads.len();
    let floor = t.floor_load + t.floor_projection;
    let ours = t.merge + t.projection;
    println!(
        "{n} diaries of {} visits, {} ledger rows each; wire {:.2}× save(), stored chunk {:.2}× save()\n",
        o.visits,
        rows / n.max(1),
        wire as f64 / saved as f64,
        stored as f64 / saved as f64
    );
    println!("| step | ms per document |");
    println!("|---|---:|");
    println!("| floor: automerge `load` | {} |", per_doc(t.floor_load, n));
    println!(
        "| floor: ledger projection | {} |",
        per_doc(t.floor_projection, n)
    );
    println!("| **floor** | **{}** |", per_doc(floor, n));
    println!(
        "| ours: payload check (part of the merge) | {} |",
        per_doc(t.check, n)
    );
    println!(
        "| … of which loading the chunk into a scratch document | {} |",
        per_doc(t.check_load, n)
    );
    println!(
        "| … the rest: the chunk's sizes, its operations and objects read from its columns, the nesting depth | {} |",
        per_doc(t.check.saturating_sub(t.check_load), n)
    );
    println!(
        "| ours: merge (check, apply, chunk to store) | {} |",
        per_doc(t.merge, n)
    );
    println!("| ours: ledger projection | {} |", per_doc(t.projection, n));
    println!("| **ours** | **{}** |", per_doc(ours, n));
    println!(
        "| **ours / floor** | **{:.2}×** |",
        ours.as_secs_f64() / floor.as_secs_f64()
    );
}
