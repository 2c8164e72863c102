//! Who did what, as the server knows it, and which petition events count.
//!
//! A document says who wrote each event (`PetitionEvent::by`), but any
//! device can write anything into its owner's diary. What a device cannot
//! fake is the automerge actor id of the change that created an event's
//! object ([`EventOrigin`]), and the server records whom every actor id
//! belongs to (`document_actors`): the user and device whose authenticated
//! connection first sent a change made with it, or the user on whose behalf
//! the server itself wrote it. [`judge`] compares the two:
//!
//! - the event is shown as its writer's, whatever `by` says;
//! - it counts towards the petition's state ([`EventJudgement::believed`])
//!   only if `by` names its writer, nobody else changed it afterwards, and,
//!   for a supervision event (assignment, deadline, escalation, 督办 note,
//!   销号, reopening), the server wrote it: the server writes those only for
//!   a supervisor entitled to act on the item. What a cadre may do himself
//!   (record the item with its first deadline, note progress, resolve, give
//!   feedback, record satisfaction) counts from his own devices.
//!
//! Events whose actor the server never recorded (documents stored before it
//! kept the record) are shown with their claimed author and flagged; they
//! count only as a cadre's own events would.

use std::collections::HashMap;

use sync_core::DiaryView;
use sync_core::automerge::ActorId;
use sync_core::document::EventOrigin;
use sync_core::records::petition::{Petition, PetitionEvent, PetitionEventKind, PetitionState};

use crate::store::DocumentActor;

/// Whom an actor's changes are attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// The user's name.
    pub username: String,
    pub user_id: i64,
    /// The device that sent the changes ("" for the server).
    pub device_id: String,
    /// The server wrote them on the user's behalf.
    pub via_server: bool,
}

/// The writers of one document's actors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    writers: HashMap<ActorId, Writer>,
}

impl Attribution {
    /// From the store's rows; a row whose actor is not hex is skipped.
    pub fn from_rows(rows: &[DocumentActor]) -> Self {
        let writers = rows
            .iter()
            .filter_map(|r| {
                let bytes = hex::decode(&r.actor).ok()?;
                Some((
                    ActorId::from(bytes),
                    Writer {
                        username: r.username.clone(),
                        user_id: r.user_id,
                        device_id: r.device_id.clone(),
                        via_server: r.via_server,
                    },
                ))
            })
            .collect();
        Attribution { writers }
    }

    /// Records `actor` as `writer`'s (the caller has checked it was free).
    pub fn insert(&mut self, actor: ActorId, writer: Writer) {
        self.writers.insert(actor, writer);
    }

    /// Adds the actors of `other` that this does not know: a copy's own
    /// claims, not stored yet, kept when its attribution is read again from
    /// the store.
    pub fn add_missing(&mut self, other: &Attribution) {
        for (actor, writer) in &other.writers {
            self.writers
                .entry(actor.clone())
                .or_insert_with(|| writer.clone());
        }
    }

    /// Whom `actor` belongs to, if known.
    pub fn writer(&self, actor: &ActorId) -> Option<&Writer> {
        self.writers.get(actor)
    }

    /// Whether the server wrote with any actor of the document.
    pub fn has_server_writes(&self) -> bool {
        self.writers.values().any(|w| w.via_server)
    }

    /// Whether the server wrote with `actor` (on someone's behalf).
    pub fn is_server(&self, actor: &ActorId) -> bool {
        self.writers.get(actor).is_some_and(|w| w.via_server)
    }

    /// Whether `actor` belongs to someone other than `user_id` writing
    /// directly (`via_server` false) or through the server (true). Another
    /// device of the same user is not someone else.
    pub fn taken_by_another(&self, actor: &ActorId, user_id: i64, via_server: bool) -> bool {
        self.writers
            .get(actor)
            .is_some_and(|w| (w.user_id, w.via_server) != (user_id, via_server))
    }
}

sync_core::text_enum! {
    /// Why an event does not count, or what is odd about it.
    Flag, "flag" {
        /// `by` names someone other than the writer.
        ClaimedAuthorMismatch = "claimed_author_mismatch", "署名与写入者不符";
        /// Someone other than the writer changed the event's fields afterwards.
        ChangedAfterWriting = "changed_after_writing", "写入后被他人改动";
        /// A supervision event written by a device rather than by the server
        /// for a supervisor.
        SupervisionNotByServer = "supervision_not_by_server", "督办类记录未经服务器写入";
        /// The server has no record of the actor that wrote it.
        UnknownWriter = "unknown_writer", "写入者不明";
    }
}

/// What the server makes of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventJudgement {
    /// The writer's username (the claim, when the writer is unknown).
    pub actor: String,
    /// The device that sent it, if known and a device did.
    pub device_id: Option<String>,
    /// Written by the server on the writer's behalf.
    pub via_server: bool,
    /// Counts towards the petition's state.
    pub believed: bool,
    /// Why not, or what is odd.
    pub flag: Option<Flag>,
}

/// Whether only a supervisor (through the server) may write this kind of
/// event for it to count.
pub fn is_supervision(kind: &PetitionEventKind) -> bool {
    matches!(
        kind,
        PetitionEventKind::Assigned { .. }
            | PetitionEventKind::DeadlineSet { .. }
            | PetitionEventKind::Escalated { .. }
            | PetitionEventKind::Supervised { .. }
            | PetitionEventKind::Closed { .. }
            | PetitionEventKind::Reopened { .. }
    )
}

/// Judges one event (see the module docs).
pub fn judge(
    event: &PetitionEvent,
    origin: &EventOrigin,
    attribution: &Attribution,
) -> EventJudgement {
    let supervision = is_supervision(&event.kind);
    let Some(writer) = attribution.writer(&origin.actor) else {
        return EventJudgement {
            actor: event.by.clone(),
            device_id: None,
            via_server: false,
            believed: !supervision && origin.is_untouched(),
            flag: Some(Flag::UnknownWriter),
        };
    };
    let flag = if event.by != writer.username {
        Some(Flag::ClaimedAuthorMismatch)
    } else if !origin.is_untouched() {
        Some(Flag::ChangedAfterWriting)
    } else if supervision && !writer.via_server {
        Some(Flag::SupervisionNotByServer)
    } else {
        None
    };
    EventJudgement {
        actor: writer.username.clone(),
        device_id: (!writer.via_server).then(|| writer.device_id.clone()),
        via_server: writer.via_server,
        believed: flag.is_none(),
        flag,
    }
}

/// A petition's events with their judgements, in the order the state is
/// derived in (time, then id).
pub fn judged_events(
    diary: DiaryView<'_>,
    petition: &Petition,
    attribution: &Attribution,
) -> Vec<(PetitionEvent, EventJudgement)> {
    let mut events: Vec<(PetitionEvent, EventJudgement)> = diary
        .petition_events_with_origin(petition.id)
        .unwrap_or_default()
        .into_iter()
        .map(|(event, origin)| {
            let judgement = judge(&event, &origin, attribution);
            (event, judgement)
        })
        .collect();
    events.sort_by_key(|(e, _)| (e.at, e.id));
    events
}

/// The state the believed events add up to.
pub fn believed_state(
    petition: &Petition,
    judged: &[(PetitionEvent, EventJudgement)],
) -> PetitionState {
    let believed: Vec<PetitionEvent> = judged
        .iter()
        .filter(|(_, j)| j.believed)
        .map(|(e, _)| e.clone())
        .collect();
    PetitionState::derive(&petition.created_by, &believed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::{RecordId, Timestamp};

    fn writer(name: &str, via_server: bool) -> Writer {
        Writer {
            username: name.to_owned(),
            user_id: if name == "cadre01" { 1 } else { 2 },
            device_id: if via_server {
                String::new()
            } else {
                "phone".to_owned()
            },
            via_server,
        }
    }

    fn event(by: &str, kind: PetitionEventKind) -> PetitionEvent {
        PetitionEvent {
            id: RecordId::from_random_bytes([1; 16]),
            at: Timestamp(1),
            by: by.to_owned(),
            kind,
        }
    }

    fn origin(actor: u8, others: &[u8]) -> EventOrigin {
        EventOrigin {
            actor: ActorId::from(vec![actor; 16]),
            also_written_by: others.iter().map(|a| ActorId::from(vec![*a; 16])).collect(),
        }
    }

    #[test]
    fn the_writer_not_the_claim_decides() {
        let mut a = Attribution::default();
        a.insert(ActorId::from(vec![1; 16]), writer("cadre01", false));
        a.insert(ActorId::from(vec![2; 16]), writer("sup-town1", true));
        let close = || PetitionEventKind::Closed {
            note: String::new(),
        };
        let progress = || PetitionEventKind::ProgressNoted {
            note: "已对接".into(),
        };

        // A device claiming to be the supervisor.
        let j = judge(&event("sup-town1", close()), &origin(1, &[]), &a);
        assert_eq!(j.actor, "cadre01");
        assert_eq!(j.flag, Some(Flag::ClaimedAuthorMismatch));
        assert!(!j.believed);
        // A device closing in its own name.
        let j = judge(&event("cadre01", close()), &origin(1, &[]), &a);
        assert_eq!(j.flag, Some(Flag::SupervisionNotByServer));
        assert!(!j.believed);
        // The server for the supervisor.
        let j = judge(&event("sup-town1", close()), &origin(2, &[]), &a);
        assert!(j.believed && j.via_server && j.flag.is_none());
        // The cadre's own progress counts; changed by someone else it does not.
        assert!(judge(&event("cadre01", progress()), &origin(1, &[]), &a).believed);
        let j = judge(&event("sup-town1", close()), &origin(2, &[1]), &a);
        assert_eq!(j.flag, Some(Flag::ChangedAfterWriting));
        assert!(!j.believed);
        // Unknown actors never supervise.
        let j = judge(&event("sup-town1", close()), &origin(9, &[]), &a);
        assert_eq!((j.flag, j.believed), (Some(Flag::UnknownWriter), false));
        assert!(judge(&event("cadre01", progress()), &origin(9, &[]), &a).believed);
    }

    #[test]
    fn another_user_cannot_take_an_actor() {
        let mut a = Attribution::default();
        let actor = ActorId::from(vec![2; 16]);
        a.insert(actor.clone(), writer("sup-town1", true));
        assert!(a.taken_by_another(&actor, 1, false));
        assert!(
            a.taken_by_another(&actor, 2, false),
            "the server's, not a device's"
        );
        assert!(!a.taken_by_another(&actor, 2, true));
        assert!(!a.taken_by_another(&ActorId::from(vec![3; 16]), 1, false));
    }
}
