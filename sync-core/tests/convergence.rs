//! Replicas that edit offline and sync in random orders over a faulty network
//! all converge to identical documents and identical typed views, with no
//! record lost.

use std::collections::BTreeSet;

use automerge::{ActorId, Automerge};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::fixtures;
use sync_core::protocol::Access;
use sync_core::records::petition::{Level, PetitionEventKind, PetitionUpdate, Satisfaction};
use sync_core::records::service_card::ServiceCardUpdate;
use sync_core::records::visit::VisitUpdate;
use sync_core::testing::{Faults, Network, ServerMode};
use sync_core::{ContactsDocument, DiaryDocument, DocumentId, Edit, RecordId, Timestamp};

const NOW: Timestamp = Timestamp(1_795_400_000_000);
const DIARY: DocumentId = doc_id(1);
const CONTACTS: DocumentId = doc_id(2);

const fn doc_id(n: u8) -> DocumentId {
    DocumentId::from_bytes([n; 16])
}

/// Who makes an edit: a cadre's device, or the server acting for a supervisor.
#[derive(Debug, Clone, Copy)]
enum Editor {
    Device(usize),
    Supervisor,
}

#[derive(Debug, Clone)]
enum Op {
    AddVisit(Editor),
    EditNotes(Editor, usize, String),
    EditPlace(Editor, usize, String),
    DeleteVisit(Editor, usize),
    AddPetition(Editor, Option<usize>),
    EditMatter(Editor, usize, String),
    EditCategory(Editor, usize, u8),
    Event(Editor, usize, u8),
    AddCard(Editor),
    EditCardNotes(Editor, usize, String),
    FollowUp(Editor, usize),
    /// Connect device and run some waves over a faulty link, then maybe drop it.
    Sync(usize, u8, bool),
}

fn editor(devices: usize) -> impl Strategy<Value = Editor> {
    prop_oneof![
        4 => (0..devices).prop_map(Editor::Device),
        1 => Just(Editor::Supervisor),
    ]
}

fn op(devices: usize) -> impl Strategy<Value = Op> {
    let text = "[走访群众反映道路问题已解决 abc]{0,12}";
    prop_oneof![
        3 => editor(devices).prop_map(Op::AddVisit),
        2 => (editor(devices), any::<usize>(), text).prop_map(|(e, i, s)| Op::EditNotes(e, i, s)),
        1 => (editor(devices), any::<usize>(), "[村组一二三]{1,6}").prop_map(|(e, i, s)| Op::EditPlace(e, i, s)),
        1 => (editor(devices), any::<usize>()).prop_map(|(e, i)| Op::DeleteVisit(e, i)),
        2 => (editor(devices), proptest::option::of(any::<usize>())).prop_map(|(e, v)| Op::AddPetition(e, v)),
        1 => (editor(devices), any::<usize>(), text).prop_map(|(e, i, s)| Op::EditMatter(e, i, s)),
        1 => (editor(devices), any::<usize>(), 0u8..4).prop_map(|(e, i, c)| Op::EditCategory(e, i, c)),
        3 => (editor(devices), any::<usize>(), 0u8..9).prop_map(|(e, i, k)| Op::Event(e, i, k)),
        1 => editor(devices).prop_map(Op::AddCard),
        1 => (editor(devices), any::<usize>(), text).prop_map(|(e, i, s)| Op::EditCardNotes(e, i, s)),
        1 => (editor(devices), any::<usize>()).prop_map(|(e, i)| Op::FollowUp(e, i)),
        3 => (0..devices, 1u8..6, any::<bool>()).prop_map(|(d, w, k)| Op::Sync(d, w, k)),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, u64)> {
    (2usize..=4).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::vec(op(n), 1..40),
            any::<u64>(),
        )
    })
}

/// Ids of everything successfully written; all must be in the end state.
#[derive(Default)]
struct Written {
    visits: BTreeSet<RecordId>,
    petitions: BTreeSet<RecordId>,
    events: BTreeSet<RecordId>,
    cards: BTreeSet<RecordId>,
    follow_ups: BTreeSet<RecordId>,
}

struct World {
    net: Network,
    rng: ChaCha8Rng,
    clock: i64,
    written: Written,
}

impl World {
    /// Runs `f` on the editor's copy of document `id`: a device's own copy
    /// (if it has one yet), or the server's, stored as the server stores its
    /// own edits.
    fn edit(&mut self, who: Editor, id: DocumentId, f: impl FnOnce(&mut Automerge)) {
        match who {
            Editor::Device(i) => {
                if let Some(doc) = self
                    .net
                    .clients
                    .get_mut(i)
                    .and_then(|c| c.docs.get_mut(&id))
                {
                    f(doc);
                }
            }
            Editor::Supervisor => {
                self.net.server_edit(&id, f);
            }
        }
    }

    fn actor(who: Editor) -> ActorId {
        match who {
            Editor::Device(i) => ActorId::from([10 + i as u8; 16]),
            Editor::Supervisor => ActorId::from([99u8; 16]),
        }
    }

    fn author(who: Editor) -> &'static str {
        match who {
            Editor::Device(_) => "cadre01",
            Editor::Supervisor => "sup-town1",
        }
    }

    /// Runs `f` on the editor's copy of the diary (if it has one yet).
    fn with_diary(
        &mut self,
        who: Editor,
        f: impl FnOnce(&mut DiaryDocument, &Edit, &mut ChaCha8Rng, &mut Written),
    ) {
        self.clock += 1000;
        let edit = Edit::new(Self::author(who), Timestamp(NOW.0 + self.clock));
        let (mut rng, mut written) = (self.rng.clone(), std::mem::take(&mut self.written));
        self.edit(who, DIARY, |slot| {
            let doc = std::mem::take(slot).with_actor(Self::actor(who));
            let mut diary = DiaryDocument::from_automerge(doc).expect("our own diary opens");
            f(&mut diary, &edit, &mut rng, &mut written);
            *slot = diary.into_automerge();
        });
        (self.rng, self.written) = (rng, written);
    }

    fn with_contacts(
        &mut self,
        who: Editor,
        f: impl FnOnce(&mut ContactsDocument, &Edit, &mut ChaCha8Rng, &mut Written),
    ) {
        self.clock += 1000;
        let edit = Edit::new(Self::author(who), Timestamp(NOW.0 + self.clock));
        let (mut rng, mut written) = (self.rng.clone(), std::mem::take(&mut self.written));
        self.edit(who, CONTACTS, |slot| {
            let doc = std::mem::take(slot).with_actor(Self::actor(who));
            let mut contacts =
                ContactsDocument::from_automerge(doc).expect("our own contacts open");
            f(&mut contacts, &edit, &mut rng, &mut written);
            *slot = contacts.into_automerge();
        });
        (self.rng, self.written) = (rng, written);
    }

    fn apply(&mut self, op: Op) {
        fn nth<T: Clone>(v: &[T], i: usize) -> Option<T> {
            (!v.is_empty()).then(|| v[i % v.len()].clone())
        }
        match op {
            Op::AddVisit(who) => self.with_diary(who, |d, e, r, w| {
                let v = fixtures::visit(r, e.at, e.author.as_str());
                d.add_visit(e, &v).expect("valid visit");
                w.visits.insert(v.id);
            }),
            Op::EditNotes(who, i, text) => self.with_diary(who, |d, e, _, _| {
                if let Some(v) = nth(&d.visits(), i) {
                    let notes = format!("{}{}", v.notes, text);
                    d.update_visit(
                        e,
                        v.id,
                        &VisitUpdate {
                            notes: Some(notes),
                            ..Default::default()
                        },
                    )
                    .expect("edit");
                }
            }),
            Op::EditPlace(who, i, place) => self.with_diary(who, |d, e, _, _| {
                if let Some(v) = nth(&d.visits(), i) {
                    d.update_visit(
                        e,
                        v.id,
                        &VisitUpdate {
                            place: Some(place),
                            ..Default::default()
                        },
                    )
                    .expect("edit");
                }
            }),
            Op::DeleteVisit(who, i) => self.with_diary(who, |d, e, _, _| {
                if let Some(v) = nth(&d.visits(), i) {
                    d.delete_visit(e, v.id).expect("delete");
                }
            }),
            Op::AddPetition(who, visit) => self.with_diary(who, |d, e, r, w| {
                let visit_id = visit.and_then(|i| nth(&d.visits(), i)).map(|v| v.id);
                let p = fixtures::petition(r, e.at, visit_id);
                d.add_petition(e, &p).expect("valid petition");
                w.petitions.insert(p.id);
                w.events.insert(p.created_event_id);
            }),
            Op::EditMatter(who, i, text) => self.with_diary(who, |d, e, _, _| {
                if let Some(p) = nth(&d.petitions(), i) {
                    let matter = format!("{}{}", p.matter, text);
                    d.update_petition(
                        e,
                        p.id,
                        &PetitionUpdate {
                            matter: Some(matter),
                            ..Default::default()
                        },
                    )
                    .expect("edit");
                }
            }),
            Op::EditCategory(who, i, c) => self.with_diary(who, |d, e, _, _| {
                if let Some(p) = nth(&d.petitions(), i) {
                    let category = sync_core::records::petition::Category::ALL[usize::from(c) % 4];
                    d.update_petition(
                        e,
                        p.id,
                        &PetitionUpdate {
                            category: Some(category),
                            ..Default::default()
                        },
                    )
                    .expect("edit");
                }
            }),
            Op::Event(who, i, k) => self.with_diary(who, |d, e, r, w| {
                let Some(p) = nth(&d.petitions(), i) else {
                    return;
                };
                let deadline =
                    e.at.china_date()
                        .and_then(|x| x.checked_add(time::Duration::days(10)));
                let kind = match k {
                    0 => PetitionEventKind::ProgressNoted {
                        note: "已协调镇交通办".into(),
                    },
                    1 => PetitionEventKind::Resolved {
                        note: "已办结".into(),
                    },
                    2 => PetitionEventKind::FeedbackGiven {
                        note: "已电话反馈".into(),
                    },
                    3 => PetitionEventKind::Rated {
                        satisfaction: Satisfaction::Satisfied,
                    },
                    4 => PetitionEventKind::Closed {
                        note: "销号".into(),
                    },
                    5 => PetitionEventKind::Reopened {
                        reason: "群众再次反映".into(),
                    },
                    6 => PetitionEventKind::Supervised {
                        note: "请加快办理".into(),
                    },
                    7 => PetitionEventKind::Escalated {
                        to: Level::County,
                        note: "需县级协调".into(),
                    },
                    _ => match deadline {
                        Some(deadline) => PetitionEventKind::DeadlineSet { deadline },
                        None => return,
                    },
                };
                let id = fixtures::id(r);
                // Some events do not apply in the current state; that is a
                // refused edit, not a lost one.
                if d.record_petition_event(e, p.id, id, &kind).is_ok() {
                    w.events.insert(id);
                }
            }),
            Op::AddCard(who) => self.with_contacts(who, |c, e, r, w| {
                let card = fixtures::card(r, e.at);
                c.add_card(e, &card).expect("valid card");
                w.cards.insert(card.id);
            }),
            Op::EditCardNotes(who, i, text) => self.with_contacts(who, |c, e, _, _| {
                if let Some(card) = nth(&c.cards(), i) {
                    let notes = format!("{text}{}", card.notes);
                    c.update_card(
                        e,
                        card.id,
                        &ServiceCardUpdate {
                            notes: Some(notes),
                            ..Default::default()
                        },
                    )
                    .expect("edit");
                }
            }),
            Op::FollowUp(who, i) => self.with_contacts(who, |c, e, r, w| {
                if let Some(card) = nth(&c.cards(), i) {
                    let id = fixtures::id(r);
                    c.add_follow_up(e, card.id, id, "回访了解情况")
                        .expect("follow-up");
                    w.follow_ups.insert(id);
                }
            }),
            Op::Sync(device, waves, keep) => {
                self.net.faults = Faults {
                    drop: 0.1,
                    duplicate: 0.1,
                    reorder: 0.3,
                    max_delay: 2,
                    disconnect: 0.02,
                };
                if !self.net.is_connected(device) {
                    self.net.connect(device);
                }
                for _ in 0..waves {
                    self.net.step();
                }
                if !keep {
                    self.net.disconnect(device);
                }
            }
        }
    }
}

/// How the devices learn which documents to sync.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Devices {
    /// Each is told the cadre's documents.
    Told,
    /// Each asks the server to list them in the handshake, and leaves out
    /// those whose listed heads it already has, as the phone library does.
    Listing,
}

fn run(
    mode: ServerMode,
    devices_learn: Devices,
    devices: usize,
    ops: Vec<Op>,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut net = Network::with_mode(seed, mode);
    for i in 0..devices {
        net.add_client(&format!("device-{i}"), |_| Access::ReadWrite);
        net.clients[i].lists = devices_learn == Devices::Listing;
    }
    // The first device creates the cadre's documents; every device gets them.
    let start = Edit::new("cadre01", NOW);
    let diary =
        DiaryDocument::create("cadre01", 2026, ActorId::from([10u8; 16]), &start).expect("create");
    let contacts =
        ContactsDocument::create("cadre01", ActorId::from([10u8; 16]), &start).expect("create");
    net.clients[0].docs.insert(DIARY, diary.into_automerge());
    net.clients[0]
        .docs
        .insert(CONTACTS, contacts.into_automerge());
    for i in 0..devices {
        if devices_learn == Devices::Told {
            net.clients[i].wanted.extend([DIARY, CONTACTS]);
        }
        net.connect(i);
        net.run_until_quiescent(200).expect("initial sync");
        net.disconnect(i);
    }
    let mut world = World {
        net,
        rng: ChaCha8Rng::seed_from_u64(seed),
        clock: 0,
        written: Written::default(),
    };
    for op in ops {
        world.apply(op);
    }

    // Signal returns everywhere: reconnect each device on a clean network
    // until nobody has anything left to say.
    let net = &mut world.net;
    net.faults = Faults::default();
    for _ in 0..3 {
        for i in 0..devices {
            net.connect(i);
        }
        net.run_until_quiescent(500)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // A listing device's sync brings what the server had stored at
        // its handshake: what other devices uploaded since comes the next
        // time, as on a phone.
        let same_heads = |c: &sync_core::testing::SimClient| {
            [DIARY, CONTACTS].iter().all(|id| {
                c.docs.get(id).map(Automerge::get_heads)
                    == net.server.docs.get(id).map(Automerge::get_heads)
            })
        };
        if (0..devices).all(|i| net.client_is_synced(i)) && net.clients.iter().all(same_heads) {
            break;
        }
    }
    prop_assert!(
        (0..devices).all(|i| net.client_is_synced(i)),
        "devices synced"
    );

    let server_diary =
        DiaryDocument::from_automerge(net.server.docs[&DIARY].clone()).expect("diary");
    let server_contacts =
        ContactsDocument::from_automerge(net.server.docs[&CONTACTS].clone()).expect("contacts");
    for c in &net.clients {
        let diary = DiaryDocument::from_automerge(c.docs[&DIARY].clone()).expect("diary");
        let contacts =
            ContactsDocument::from_automerge(c.docs[&CONTACTS].clone()).expect("contacts");
        prop_assert_eq!(
            diary.automerge().get_heads(),
            server_diary.automerge().get_heads()
        );
        prop_assert_eq!(
            contacts.automerge().get_heads(),
            server_contacts.automerge().get_heads()
        );
        prop_assert_eq!(diary.all_visits(), server_diary.all_visits());
        prop_assert_eq!(diary.petitions(), server_diary.petitions());
        prop_assert_eq!(diary.conflicts(), server_diary.conflicts());
        prop_assert_eq!(contacts.all_cards(), server_contacts.all_cards());
        prop_assert_eq!(contacts.conflicts(), server_contacts.conflicts());
    }

    let w = &world.written;
    let visits: BTreeSet<RecordId> = server_diary.all_visits().iter().map(|v| v.id).collect();
    let petitions = server_diary.all_petitions();
    let petition_ids: BTreeSet<RecordId> = petitions.iter().map(|p| p.id).collect();
    let events: BTreeSet<RecordId> = petitions
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.id))
        .collect();
    let cards = server_contacts.all_cards();
    let card_ids: BTreeSet<RecordId> = cards.iter().map(|c| c.id).collect();
    let follow_ups: BTreeSet<RecordId> = cards
        .iter()
        .flat_map(|c| c.follow_ups.iter().map(|f| f.id))
        .collect();
    prop_assert_eq!(&visits, &w.visits, "no visit lost");
    prop_assert_eq!(&petition_ids, &w.petitions, "no petition lost");
    prop_assert_eq!(&events, &w.events, "no petition event lost");
    prop_assert_eq!(&card_ids, &w.cards, "no card lost");
    prop_assert_eq!(&follow_ups, &w.follow_ups, "no follow-up lost");
    prop_assert!(server_diary.unreadable().is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_without_losing_records((devices, ops, seed) in scenario()) {
        run(ServerMode::Live, Devices::Told, devices, ops, seed)?;
    }

    /// The same, against a server that keeps nothing in memory between
    /// messages: every merge starts from the stored snapshot and chunks.
    #[test]
    fn replicas_converge_through_a_reloading_server((devices, ops, seed) in scenario()) {
        run(ServerMode::Reload, Devices::Told, devices, ops, seed)?;
    }

    /// The same, with devices that learn the cadre's documents and the
    /// server's heads from the handshake and sync only those that differ.
    #[test]
    fn replicas_converge_when_devices_skip_what_the_listing_says_they_have((devices, ops, seed) in scenario()) {
        run(ServerMode::Reload, Devices::Listing, devices, ops, seed)?;
    }
}
