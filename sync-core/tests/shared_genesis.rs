//! Two phones of one cadre that each create this year's diary (or their
//! contacts) offline end up with one document holding the records of both.

use automerge::ActorId;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::records::visit::VisitUpdate;
use sync_core::{
    ContactsDocument, DiaryDocument, Edit, Timestamp, contacts_id, diary_id, fixtures,
};

const NOW: Timestamp = Timestamp(1_795_400_000_000); // 2026-11-23, Beijing

fn genesis_bytes(doc: &automerge::Automerge) -> Vec<u8> {
    let changes = doc.get_changes(&[]);
    changes
        .first()
        .expect("a genesis change")
        .raw_bytes()
        .to_vec()
}

#[test]
fn two_phones_create_the_same_diary_offline_and_merge_into_one() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let edit = Edit::new("cadre01", NOW);

    // Each phone derives the id and creates the diary on its own, with its own actor.
    let id_a = diary_id("cadre01", 2026);
    let id_b = diary_id("cadre01", 2026);
    assert_eq!(id_a, id_b);
    let mut phone =
        DiaryDocument::create_shared("cadre01", 2026, ActorId::from([1u8; 16])).expect("create");
    let mut tablet =
        DiaryDocument::create_shared("cadre01", 2026, ActorId::from([2u8; 16])).expect("create");
    assert_eq!(
        genesis_bytes(phone.automerge()),
        genesis_bytes(tablet.automerge())
    );

    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            phone
                .add_visit(&edit, &fixtures::visit(&mut rng, NOW, "cadre01"))
                .expect("add on phone"),
        );
        ids.push(
            tablet
                .add_visit(&edit, &fixtures::visit(&mut rng, NOW, "cadre01"))
                .expect("add on tablet"),
        );
    }
    // Later edits are the devices' own, not the shared genesis actor's.
    assert_eq!(phone.automerge().get_actor(), &ActorId::from([1u8; 16]));

    // Both edit the notes of the same visit (one the phone made) after a first exchange.
    let from_phone = phone.automerge().save();
    tablet
        .automerge_mut()
        .load_incremental(&from_phone)
        .expect("merge");
    let shared = ids[0];
    let notes = |text: &str| VisitUpdate {
        notes: Some(text.to_owned()),
        ..Default::default()
    };
    let before = phone.visit(shared).expect("visit").notes;
    phone
        .update_visit(&edit, shared, &notes(&format!("{before}手机补充。")))
        .expect("edit on phone");
    tablet
        .update_visit(&edit, shared, &notes(&format!("平板补充。{before}")))
        .expect("edit on tablet");

    let from_tablet = tablet.automerge().save();
    phone
        .automerge_mut()
        .load_incremental(&from_tablet)
        .expect("merge");
    let from_phone = phone.automerge().save();
    tablet
        .automerge_mut()
        .load_incremental(&from_phone)
        .expect("merge");

    assert_eq!(phone.visits(), tablet.visits());
    assert_eq!(phone.visits().len(), 6, "every visit of both phones");
    for id in &ids {
        assert!(phone.visit(*id).is_some(), "visit {id} kept");
    }
    let merged = phone.visit(shared).expect("visit").notes;
    assert!(
        merged.contains("手机补充。") && merged.contains("平板补充。"),
        "{merged}"
    );
    // One document: one root, so no conflicting `visits` maps.
    assert!(phone.conflicts().is_empty(), "{:?}", phone.conflicts());
    assert_eq!(phone.meta().expect("meta").year, Some(2026));
}

#[test]
fn diaries_of_other_years_and_owners_are_other_documents() {
    let a = DiaryDocument::create_shared("cadre01", 2026, ActorId::random()).expect("create");
    let b = DiaryDocument::create_shared("cadre01", 2027, ActorId::random()).expect("create");
    let c = DiaryDocument::create_shared("cadre02", 2026, ActorId::random()).expect("create");
    assert_ne!(genesis_bytes(a.automerge()), genesis_bytes(b.automerge()));
    assert_ne!(genesis_bytes(a.automerge()), genesis_bytes(c.automerge()));
    assert_ne!(diary_id("cadre01", 2026), diary_id("cadre01", 2027));
}

#[test]
fn contacts_created_on_two_phones_merge() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let edit = Edit::new("cadre01", NOW);
    assert_eq!(contacts_id("cadre01"), contacts_id("cadre01"));
    let mut phone =
        ContactsDocument::create_shared("cadre01", ActorId::from([1u8; 16])).expect("create");
    let mut tablet =
        ContactsDocument::create_shared("cadre01", ActorId::from([2u8; 16])).expect("create");
    phone
        .add_card(&edit, &fixtures::card(&mut rng, NOW))
        .expect("card");
    tablet
        .add_card(&edit, &fixtures::card(&mut rng, NOW))
        .expect("card");
    let from_tablet = tablet.automerge().save();
    phone
        .automerge_mut()
        .load_incremental(&from_tablet)
        .expect("merge");
    assert_eq!(phone.cards().len(), 2);
}
