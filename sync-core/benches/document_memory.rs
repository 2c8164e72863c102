//! Memory a loaded diary takes per byte of its saved form: what the server's
//! budget for documents held in memory (`sync.live_documents_memory_bytes`,
//! `server/src/sync/live.rs`) estimates with.
//!
//! ```sh
//! cargo bench -p sync-core --bench document_memory
//! ```
//!
//! Loads `COPIES` copies of a realistic diary from its saved bytes and reads
//! the process's resident memory (`/proc/self/statm`) before and after;
//! the growth divided by the copies is one document's memory. Linux only.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::Timestamp;
use sync_core::automerge::{ActorId, Automerge};
use sync_core::fixtures;

const COPIES: usize = 20;
const START: Timestamp = Timestamp(1_767_225_600_000); // 2026-01-01, Beijing

/// Resident memory of this process, in bytes.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn main() {
    println!("| diary | save() size | memory per loaded copy | ratio |");
    println!("|---|---:|---:|---:|");
    for visits in [500, 2_000] {
        let mut rng = ChaCha8Rng::seed_from_u64(2026);
        let saved =
            fixtures::diary(&mut rng, "cadre01", ActorId::from([1u8; 16]), visits, START).save();
        let before = resident();
        let copies: Vec<Automerge> = (0..COPIES)
            .map(|_| Automerge::load(&saved).expect("load"))
            .collect();
        let per_copy = resident().saturating_sub(before) / COPIES;
        println!(
            "| {visits} visits, {} petitions | {} B | {} B | {:.1}× |",
            visits / 5,
            saved.len(),
            per_copy,
            per_copy as f64 / saved.len() as f64
        );
        drop(copies);
    }
}
