//! Which records some changes wrote into: what a server that keeps rows per
//! record (the ledger) has to redo after a sync, instead of every record of
//! the document.
//!
//! Every operation of a change names the object it writes into. A record is
//! a map directly under one of the root's record maps (`visits`,
//! `petitions`, `cards`), so the record an operation belongs to is found by
//! walking from its object up to the root (automerge's `parents`), which
//! costs the depth of the object, not the size of the document.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{Automerge, Change, ChangeHash, Prop, ReadDoc};

use crate::RecordId;

/// What changes wrote into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// The document's root itself (its creation, a schema migration, a
    /// record map replaced) or something whose place could not be worked
    /// out: treat every record as touched.
    Everything,
    /// Only these records (possibly none).
    Records(TouchedRecords),
}

/// Records by the root map they live in. Keys that are not UUIDs are left
/// out: they are no readable record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TouchedRecords {
    /// Under `visits` (a diary).
    pub visits: BTreeSet<RecordId>,
    /// Under `petitions` (a diary).
    pub petitions: BTreeSet<RecordId>,
    /// Under `cards` (contacts).
    pub cards: BTreeSet<RecordId>,
}

impl TouchedRecords {
    /// How many records.
    pub fn len(&self) -> usize {
        self.visits.len() + self.petitions.len() + self.cards.len()
    }

    /// Whether no record was touched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, collection: &str, key: &str) {
        let Ok(id) = key.parse::<RecordId>() else {
            return;
        };
        match collection {
            "visits" => self.visits.insert(id),
            "petitions" => self.petitions.insert(id),
            "cards" => self.cards.insert(id),
            _ => false,
        };
    }
}

/// Where an object sits, as far as records go.
#[derive(Debug, Clone)]
enum Place {
    /// A root map of records (`visits`, …): an operation on it names the
    /// record by its key.
    Collection(String),
    /// Inside the record `key` of `collection`.
    Record(String, String),
    /// Under the root but in no record map: no record depends on it.
    Elsewhere,
    /// Could not be worked out.
    Unknown,
}

/// The records that the changes `doc` holds beyond `since` wrote into.
/// `doc` must hold those changes (they were applied).
pub fn touched_since(doc: &Automerge, since: &[ChangeHash]) -> Touched {
    // From nothing: the root was written, and a document loaded from a
    // document chunk would have to build every change again to say so.
    if since.is_empty() {
        return Touched::Everything;
    }
    touched_by(doc, &doc.get_changes(since))
}

/// The records `changes` wrote into; `doc` must hold them (they were
/// applied). What [`touched_since`] finds, for a caller that has the
/// changes already (a server that received them), without asking the
/// document to build them again.
pub fn touched_by(doc: &Automerge, changes: &[Change]) -> Touched {
    let mut touched = TouchedRecords::default();
    let mut places: HashMap<String, Place> = HashMap::new();
    for change in changes {
        let change = change.decode();
        let actor = change.actor_id.to_hex_string();
        for (counter, op) in (change.start_op.get()..).zip(&change.operations) {
            let ObjectId::Id(obj) = &op.obj else {
                return Touched::Everything;
            };
            let place = places
                .entry(obj.to_string())
                .or_insert_with_key(|obj| place_of(doc, obj))
                .clone();
            let inside = match (&place, &op.key) {
                (Place::Collection(collection), Key::Map(key)) => {
                    touched.insert(collection, key);
                    Place::Record(collection.clone(), key.to_string())
                }
                (Place::Record(collection, key), _) => {
                    touched.insert(collection, key);
                    place
                }
                (Place::Elsewhere, _) => place,
                // A list as a record map, or an unknown place.
                _ => return Touched::Everything,
            };
            // An object made here sits where its operation wrote: no walk
            // up the document needed for what a change creates (the walk
            // looks the object up among all operations).
            if matches!(op.action, OpType::Make(_)) {
                places.insert(format!("{counter}@{actor}"), inside);
            }
        }
    }
    Touched::Records(touched)
}

fn place_of(doc: &Automerge, obj: &str) -> Place {
    let Ok(id) = doc.import_obj(obj) else {
        return Place::Unknown;
    };
    // automerge's parent walk expects a consistent document and unwraps on
    // the way; a document that breaks that gets the safe answer.
    let path = catch_unwind(AssertUnwindSafe(|| {
        doc.parents(&id).ok().map(automerge::Parents::path)
    }));
    let Ok(Some(path)) = path else {
        return Place::Unknown;
    };
    let mut props = path.into_iter().map(|(_, prop)| prop);
    match (props.next(), props.next()) {
        (Some(Prop::Map(collection)), None) if is_collection(&collection) => {
            Place::Collection(collection)
        }
        (Some(Prop::Map(collection)), Some(Prop::Map(key))) if is_collection(&collection) => {
            Place::Record(collection, key)
        }
        (Some(Prop::Map(collection)), Some(Prop::Seq(_))) if is_collection(&collection) => {
            Place::Unknown
        }
        (Some(_), _) => Place::Elsewhere,
        // The root itself never comes as an `Id`.
        (None, _) => Place::Unknown,
    }
}

fn is_collection(key: &str) -> bool {
    matches!(key, "visits" | "petitions" | "cards")
}
