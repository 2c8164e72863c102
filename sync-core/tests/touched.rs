//! `touched_since`: the records a batch of changes wrote into. What a server
//! keeping rows per record relies on: every record whose typed value a
//! change alters is reported, so redoing only those rows gives the same
//! rows as redoing all of them.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transactable;
use automerge::{ActorId, ObjType, ROOT, ReadDoc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sync_core::document::{Touched, TouchedRecords, touched_since};
use sync_core::fixtures;
use sync_core::records::petition::{Petition, PetitionEventKind};
use sync_core::records::service_card::ServiceCard;
use sync_core::records::visit::{Visit, VisitUpdate};
use sync_core::{ContactsDocument, DiaryDocument, Edit, RecordId, Timestamp};

const NOW: Timestamp = Timestamp(1_795_400_000_000);

fn edit(at: i64) -> Edit {
    Edit::new("cadre01", Timestamp(NOW.0 + at))
}

fn records(t: Touched) -> TouchedRecords {
    match t {
        Touched::Records(r) => r,
        Touched::Everything => panic!("expected some records, got everything"),
    }
}

#[test]
fn creating_a_document_touches_everything() {
    let diary = DiaryDocument::create_shared("cadre01", 2026, ActorId::random()).expect("edit");
    assert_eq!(touched_since(diary.automerge(), &[]), Touched::Everything);
}

#[test]
fn edits_touch_only_their_records() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut diary = DiaryDocument::create_shared("cadre01", 2026, ActorId::random()).expect("edit");
    let first = diary
        .add_visit(&edit(1), &fixtures::visit(&mut rng, NOW, "cadre01"))
        .expect("edit");
    let heads = diary.automerge().get_heads();
    assert_eq!(
        records(touched_since(diary.automerge(), &heads)),
        TouchedRecords::default(),
        "nothing since the heads"
    );

    let second = diary
        .add_visit(&edit(2), &fixtures::visit(&mut rng, NOW, "cadre01"))
        .expect("edit");
    let t = records(touched_since(diary.automerge(), &heads));
    assert_eq!(t.visits, BTreeSet::from([second]));
    assert!(t.petitions.is_empty() && t.cards.is_empty());

    // A petition raised in the first visit (which lists it) and a tombstone.
    let heads = diary.automerge().get_heads();
    let petition = diary
        .add_petition(&edit(3), &fixtures::petition(&mut rng, NOW, Some(first)))
        .expect("edit");
    diary.delete_visit(&edit(4), second).expect("edit");
    let t = records(touched_since(diary.automerge(), &heads));
    assert_eq!(t.visits, BTreeSet::from([first, second]));
    assert_eq!(t.petitions, BTreeSet::from([petition]));

    // An event appended to the petition's event list, and text edited
    // inside the first visit.
    let heads = diary.automerge().get_heads();
    diary
        .record_petition_event(
            &edit(5),
            petition,
            fixtures::id(&mut rng),
            &PetitionEventKind::ProgressNoted {
                note: "已电话联系申请人".into(),
            },
        )
        .expect("edit");
    let t = records(touched_since(diary.automerge(), &heads));
    assert_eq!(t.petitions, BTreeSet::from([petition]));
    assert!(t.visits.is_empty());
    let heads = diary.automerge().get_heads();
    let update = VisitUpdate {
        notes: Some("补记：村委会已协调".into()),
        ..VisitUpdate::default()
    };
    diary.update_visit(&edit(6), first, &update).expect("edit");
    let t = records(touched_since(diary.automerge(), &heads));
    assert_eq!(t.visits, BTreeSet::from([first]));
}

#[test]
fn writes_outside_the_record_maps() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut contacts = ContactsDocument::create_shared("cadre01", ActorId::random()).expect("edit");
    let heads = contacts.automerge().get_heads();
    let card = contacts
        .add_card(&edit(1), &fixtures::card(&mut rng, NOW))
        .expect("edit");
    let t = records(touched_since(contacts.automerge(), &heads));
    assert_eq!(t.cards, BTreeSet::from([card]));

    // A client writing on the root touches everything; inside an object of
    // its own under the root, no record; a key that is no UUID is no record.
    let doc = contacts.automerge_mut();
    let on_root = doc.get_heads();
    let mut tx = doc.transaction();
    let extra = tx.put_object(ROOT, "extra", ObjType::Map).expect("edit");
    tx.commit();
    let after_root = doc.get_heads();
    let mut tx = doc.transaction();
    tx.put(&extra, "x", 1).expect("edit");
    let (_, cards) = tx.get(ROOT, "cards").expect("read").expect("the cards map");
    tx.put(&cards, "not-a-uuid", 1).expect("edit");
    tx.commit();
    assert_eq!(touched_since(doc, &on_root), Touched::Everything);
    assert_eq!(
        records(touched_since(doc, &after_root)),
        TouchedRecords::default()
    );
}

fn visits(d: &DiaryDocument) -> BTreeMap<RecordId, Visit> {
    d.all_visits().into_iter().map(|v| (v.id, v)).collect()
}

fn petitions(d: &DiaryDocument) -> BTreeMap<RecordId, Petition> {
    d.all_petitions().into_iter().map(|p| (p.id, p)).collect()
}

fn cards(c: &ContactsDocument) -> BTreeMap<RecordId, ServiceCard> {
    c.all_cards().into_iter().map(|c| (c.id, c)).collect()
}

/// Ids whose value differs between `before` and `after` (added, removed or
/// changed).
fn changed<T: PartialEq>(
    before: &BTreeMap<RecordId, T>,
    after: &BTreeMap<RecordId, T>,
) -> BTreeSet<RecordId> {
    before
        .keys()
        .chain(after.keys())
        .filter(|id| before.get(id) != after.get(id))
        .copied()
        .collect()
}

/// Random edits on two devices, merged in random batches: after every
/// merge, each record whose typed value changed is among the touched ones.
#[test]
fn every_changed_record_is_touched() {
    for seed in 0..20 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut server =
            DiaryDocument::create_shared("cadre01", 2026, ActorId::random()).expect("edit");
        let mut phones = [
            DiaryDocument::create_shared("cadre01", 2026, ActorId::random()).expect("edit"),
            DiaryDocument::create_shared("cadre01", 2026, ActorId::random()).expect("edit"),
        ];
        let mut at = 0;
        for _round in 0..12 {
            for phone in &mut phones {
                for _ in 0..rng.random_range(0..4) {
                    at += 1;
                    random_edit(&mut rng, phone, &edit(at));
                }
            }
            let before_heads = server.automerge().get_heads();
            let (v0, p0) = (visits(&server), petitions(&server));
            let which = rng.random_range(0..phones.len());
            server
                .automerge_mut()
                .merge(&mut phones[which].automerge().clone())
                .expect("edit");
            let (v1, p1) = (visits(&server), petitions(&server));
            let t = records(touched_since(server.automerge(), &before_heads));
            let (cv, cp) = (changed(&v0, &v1), changed(&p0, &p1));
            assert!(
                cv.is_subset(&t.visits),
                "seed {seed}: changed visits {cv:?} not all in touched {:?}",
                t.visits
            );
            assert!(
                cp.is_subset(&t.petitions),
                "seed {seed}: changed petitions {cp:?} not all in touched {:?}",
                t.petitions
            );
            // Each phone also takes what the server has.
            let server_copy = server.automerge().clone();
            phones[1 - which]
                .automerge_mut()
                .merge(&mut server_copy.clone())
                .expect("edit");
        }
    }
}

fn random_edit(rng: &mut ChaCha8Rng, d: &mut DiaryDocument, e: &Edit) {
    let visit_ids: Vec<RecordId> = d.visits().iter().map(|v| v.id).collect();
    let petition_ids: Vec<RecordId> = d.petitions().iter().map(|p| p.id).collect();
    match rng.random_range(0..6) {
        0 | 1 => {
            d.add_visit(e, &fixtures::visit(rng, NOW, "cadre01"))
                .expect("edit");
        }
        2 if !visit_ids.is_empty() => {
            let v = visit_ids[rng.random_range(0..visit_ids.len())];
            let update = VisitUpdate {
                notes: Some(format!("补记 {}", rng.random_range(0..1000))),
                place: rng
                    .random_bool(0.5)
                    .then(|| format!("{}组", rng.random_range(1..9))),
                ..VisitUpdate::default()
            };
            d.update_visit(e, v, &update).expect("edit");
        }
        3 if !visit_ids.is_empty() => {
            let v = visit_ids[rng.random_range(0..visit_ids.len())];
            d.add_petition(e, &fixtures::petition(rng, NOW, Some(v)))
                .expect("edit");
        }
        4 if !petition_ids.is_empty() => {
            let p = petition_ids[rng.random_range(0..petition_ids.len())];
            let id = fixtures::id(rng);
            // A closed petition refuses further events: that is fine here.
            let _ = d.record_petition_event(
                e,
                p,
                id,
                &PetitionEventKind::ProgressNoted {
                    note: "已走访核实".into(),
                },
            );
        }
        5 if !visit_ids.is_empty() && rng.random_bool(0.3) => {
            let v = visit_ids[rng.random_range(0..visit_ids.len())];
            d.delete_visit(e, v).expect("edit");
        }
        _ => {
            d.add_visit(e, &fixtures::visit(rng, NOW, "cadre01"))
                .expect("edit");
        }
    }
}

#[test]
fn every_changed_card_is_touched() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut contacts = ContactsDocument::create_shared("cadre01", ActorId::random()).expect("edit");
    for at in 0..30 {
        let before_heads = contacts.automerge().get_heads();
        let c0 = cards(&contacts);
        let ids: Vec<RecordId> = c0.keys().copied().collect();
        if ids.is_empty() || rng.random_bool(0.4) {
            contacts
                .add_card(&edit(at), &fixtures::card(&mut rng, NOW))
                .expect("edit");
        } else {
            let c = ids[rng.random_range(0..ids.len())];
            let id = fixtures::id(&mut rng);
            let _ = contacts.add_follow_up(&edit(at), c, id, "电话回访，已解决");
        }
        let t = records(touched_since(contacts.automerge(), &before_heads));
        let cc = changed(&c0, &cards(&contacts));
        assert!(cc.is_subset(&t.cards), "{cc:?} not in {:?}", t.cards);
    }
}

/// What `touched_since` relies on to place an object a change makes without
/// looking it up: the object's id is its operation's (the change's start
/// op plus the operation's index, and the change's actor).
#[test]
fn an_object_made_by_a_change_has_its_operations_id() {
    use automerge::legacy::OpType;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut diary = DiaryDocument::create_shared("cadre01", 2026, ActorId::random()).expect("edit");
    let visit = diary
        .add_visit(&edit(1), &fixtures::visit(&mut rng, NOW, "cadre01"))
        .expect("edit");
    let doc = diary.automerge();
    let change = doc.get_last_local_change().expect("a change").decode();
    let actor = change.actor_id.to_hex_string();
    let made: Vec<String> = (change.start_op.get()..)
        .zip(&change.operations)
        .filter(|(_, op)| matches!(op.action, OpType::Make(_)))
        .map(|(counter, _)| format!("{counter}@{actor}"))
        .collect();
    let (_, visits) = doc.get(ROOT, "visits").expect("read").expect("visits");
    let (_, record) = doc
        .get(&visits, visit.to_string())
        .expect("read")
        .expect("the visit");
    let (_, notes) = doc.get(&record, "notes").expect("read").expect("notes");
    assert!(
        made.contains(&record.to_string()),
        "{made:?} lacks {record}"
    );
    assert!(made.contains(&notes.to_string()), "{made:?} lacks {notes}");
    for id in &made {
        assert!(doc.import_obj(id).is_ok(), "{id} is no object");
    }
}
