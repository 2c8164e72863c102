//! Which automerge actor wrote a petition event.
//!
//! A document can claim anything in its `by` fields; what it cannot fake is
//! the actor id of the change that created an object, which automerge keeps
//! in the object's id. A server that knows which user or device sent each
//! actor's changes can therefore tell who really wrote an event
//! ([`EventOrigin::actor`]) and whether anyone else changed it afterwards
//! ([`EventOrigin::also_written_by`]). This module only reads ids; deciding
//! whom an actor belongs to is the caller's business.

use automerge::{ActorId, ObjId, ReadDoc};

/// Who wrote one petition event, as the document's operation ids say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventOrigin {
    /// The actor whose change created the event's map.
    pub actor: ActorId,
    /// Other actors whose values are among the event's current fields
    /// (someone changed the event after it was written), sorted, without
    /// duplicates.
    pub also_written_by: Vec<ActorId>,
}

impl EventOrigin {
    /// Whether only the creating actor wrote the event's current fields.
    pub fn is_untouched(&self) -> bool {
        self.also_written_by.is_empty()
    }
}

/// The origin of the event map `event`, or `None` for the root (which is
/// never an event).
pub(crate) fn event_origin<R: ReadDoc>(doc: &R, event: &ObjId) -> Option<EventOrigin> {
    let ObjId::Id(_, actor, _) = event else {
        return None;
    };
    let mut others: Vec<ActorId> = Vec::new();
    for key in doc.keys(event) {
        // Every value, concurrent ones included: a field two actors set at
        // once is also a field someone else wrote.
        for (_, id) in doc.get_all(event, key.as_str()).unwrap_or_default() {
            if let ObjId::Id(_, writer, _) = id
                && writer != *actor
                && !others.contains(&writer)
            {
                others.push(writer);
            }
        }
    }
    others.sort();
    Some(EventOrigin {
        actor: actor.clone(),
        also_written_by: others,
    })
}
