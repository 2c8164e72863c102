//! Forcing a Bloom-filter false positive, deterministically.
//!
//! A sync message summarises the changes its sender has in a Bloom filter
//! (about 1 % false positives by design). When a device's new change falsely
//! matches the server's filter, the device believes the server has it and
//! sends only the changes made on top of it: the server receives a change
//! whose dependency it has never seen. Which change collides depends on its
//! hash, so on the device's actor id: trying actor ids in order finds one.

use automerge::sync::BloomFilter;
use automerge::{ActorId, Automerge, ChangeHash};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::records::visit::VisitUpdate;
use crate::{DiaryDocument, Edit, RecordId, Timestamp, fixtures};

/// A device's document whose first offline change the server's Bloom
/// filter falsely claims to have.
#[derive(Debug)]
pub struct Collision {
    /// The seed of the actor id that collided ([`actor`]).
    pub seed: u64,
    /// The device's document: the shared base plus both offline changes.
    pub doc: Automerge,
    /// The first change, which the device will not send.
    pub hidden: ChangeHash,
    /// The second change (it depends on the first), which it will send.
    pub sent: ChangeHash,
}

/// The device actor id tried for `seed`.
pub fn actor(seed: u64) -> ActorId {
    let mut bytes = [0xb1; 16];
    bytes[8..].copy_from_slice(&seed.to_be_bytes());
    ActorId::from(bytes)
}

/// Tries seeds `0..max_seeds` for a device that starts from `base` (what
/// the server holds, all of it unsynced with this device's fresh sync
/// state) and makes two changes offline with `edit` (called with the
/// document and 0, then 1). Returns the first seed whose first change falls
/// in the server's filter while the second does not.
pub fn find_collision(
    base: &Automerge,
    max_seeds: u64,
    mut edit: impl FnMut(&mut Automerge, u32),
) -> Option<Collision> {
    // What a server with a fresh sync state summarises: every change it has.
    let server_has: Vec<ChangeHash> = base.get_changes(&[]).iter().map(|c| c.hash()).collect();
    let filter = BloomFilter::from_hashes(server_has.iter());
    (0..max_seeds).find_map(|seed| {
        let mut doc = base.fork().with_actor(actor(seed));
        let mut new = Vec::new();
        for step in 0..2 {
            let before = doc.get_heads();
            edit(&mut doc, step);
            new.extend(doc.get_changes(&before).iter().map(|c| c.hash()));
        }
        let [hidden, sent] = new[..] else {
            return None;
        };
        (filter.contains_hash(&hidden) && !filter.contains_hash(&sent)).then_some(Collision {
            seed,
            doc,
            hidden,
            sent,
        })
    })
}

/// Two dependent offline edits of a diary for [`find_collision`]: step 0
/// records a visit, step 1 adds a follow-up note to it. Written as the
/// diary's owner at fixed times, so the changes depend only on the document
/// and the actor id.
///
/// # Panics
/// If `doc` is not a diary (a test setup error).
pub fn visit_then_note(doc: &mut Automerge, step: u32) {
    let mut diary = DiaryDocument::from_automerge(std::mem::take(doc)).expect("a diary");
    let owner = diary.meta().expect("a diary names its owner").owner;
    let edit = Edit::new(
        owner.as_str(),
        Timestamp(1_795_400_000_000 + 60_000 * i64::from(step + 1)),
    );
    let id = RecordId::from_random_bytes([0x5a; 16]);
    if step == 0 {
        let mut visit = fixtures::visit(&mut ChaCha8Rng::seed_from_u64(2), edit.at, &owner);
        visit.id = id;
        diary.add_visit(&edit, &visit).expect("visit");
    } else {
        let update = VisitUpdate {
            notes: Some("回访：已联系村委会，下周落实。".to_owned()),
            ..Default::default()
        };
        diary.update_visit(&edit, id, &update).expect("note");
    }
    *doc = diary.into_automerge();
}
