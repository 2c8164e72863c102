//! The typed document layer: validation, edits as changes, merges, conflicts,
//! tombstones and schema versions.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ROOT, ReadDoc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sync_core::document::{Migration, change_author};
use sync_core::fixtures;
use sync_core::records::petition::{
    Category, Level, NewPetition, PetitionEventKind, PetitionStatus, PetitionUpdate,
};
use sync_core::records::service_card::ServiceCardUpdate;
use sync_core::records::visit::VisitUpdate;
use sync_core::{
    ConflictValue, ContactsDocument, DiaryDocument, DocumentError, Edit, RecordId, Timestamp,
    ValidationError,
};
use time::macros::date;

const NOW: Timestamp = Timestamp(1_795_400_000_000); // 2026-11-23, Beijing

fn edit(who: &str, dt: i64) -> Edit {
    Edit::new(who, Timestamp(NOW.0 + dt))
}

fn actor(n: u8) -> ActorId {
    ActorId::from([n; 16])
}

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

/// cadre01's diary of 2026, created at `NOW` on actor 1.
fn diary() -> DiaryDocument {
    DiaryDocument::create("cadre01", 2026, actor(1), &edit("cadre01", 0)).expect("create")
}

/// [`diary`] with one petition added.
fn diary_with_petition(r: &mut ChaCha8Rng) -> (DiaryDocument, NewPetition) {
    let mut d = diary();
    let p = fixtures::petition(r, NOW, None);
    d.add_petition(&edit("cadre01", 1), &p).expect("add");
    (d, p)
}

/// Records `kind` on petition `p` as `who`, `dt` after `NOW`, under a fresh
/// event id.
fn record(
    d: &mut DiaryDocument,
    r: &mut ChaCha8Rng,
    (who, dt): (&str, i64),
    p: RecordId,
    kind: &PetitionEventKind,
) -> Result<(), DocumentError> {
    d.record_petition_event(&edit(who, dt), p, fixtures::id(r), kind)
}

fn merge(a: &mut DiaryDocument, b: &mut DiaryDocument) {
    a.automerge_mut()
        .merge(&mut b.automerge().clone())
        .expect("merge");
    b.automerge_mut()
        .merge(&mut a.automerge().clone())
        .expect("merge");
}

#[test]
fn every_edit_is_one_change_with_author_and_time() {
    let mut r = rng();
    let mut d = diary();
    let before = d.automerge().get_changes(&[]).len();
    let v = fixtures::visit(&mut r, NOW, "cadre01");
    d.add_visit(&edit("cadre01", 1000), &v).expect("add");
    d.update_visit(
        &edit("cadre01", 2000),
        v.id,
        &VisitUpdate {
            notes: Some("补充：已联系镇卫生院。".into()),
            ..Default::default()
        },
    )
    .expect("update");
    let changes = d.automerge().get_changes(&[]);
    assert_eq!(changes.len(), before + 2, "one change per edit");
    let last = changes.last().expect("a change");
    assert_eq!(
        last.message().and_then(|m| change_author(m)),
        Some("cadre01")
    );
    assert_eq!(last.timestamp(), (NOW.0 + 2000) / 1000);
}

#[test]
fn validation_refuses_bad_records_and_writes_nothing() {
    let mut r = rng();
    let mut d = diary();
    let heads = d.automerge().get_heads();

    let mut v = fixtures::visit(&mut r, NOW, "cadre01");
    v.place = "  ".into();
    assert!(matches!(
        d.add_visit(&edit("cadre01", 1), &v),
        Err(DocumentError::Invalid(ValidationError::Required {
            field: "place"
        }))
    ));

    let mut p = fixtures::petition(&mut r, NOW, None);
    p.applicant.phone = Some("12345".into());
    assert!(matches!(
        d.add_petition(&edit("cadre01", 1), &p),
        Err(DocumentError::Invalid(ValidationError::InvalidPhone { .. }))
    ));

    let mut p = fixtures::petition(&mut r, NOW, None);
    p.deadline = Some(date!(2026 - 11 - 01));
    assert!(matches!(
        d.add_petition(&edit("cadre01", 1), &p),
        Err(DocumentError::Invalid(
            ValidationError::DeadlineBeforeCreation { .. }
        ))
    ));

    assert!(matches!(
        "housing".parse::<Category>(),
        Err(ValidationError::UnknownValue {
            field: "category",
            ..
        })
    ));
    assert_eq!(d.automerge().get_heads(), heads, "nothing written");
}

#[test]
fn concurrent_visits_and_text_edits_merge() {
    let mut r = rng();
    let mut phone = diary();
    let v = fixtures::visit(&mut r, NOW, "cadre01");
    phone.add_visit(&edit("cadre01", 1), &v).expect("add");
    let mut tablet = DiaryDocument::load(&phone.save(), actor(2)).expect("load");

    let notes = |s: &str| VisitUpdate {
        notes: Some(s.into()),
        ..Default::default()
    };
    let base = phone.visit(v.id).expect("visit").notes;
    phone
        .update_visit(&edit("cadre01", 2), v.id, &notes(&format!("上午：{base}")))
        .expect("edit");
    tablet
        .update_visit(
            &edit("cadre01", 3),
            v.id,
            &notes(&format!("{base}下午再次回访。")),
        )
        .expect("edit");
    let other = fixtures::visit(&mut r, NOW, "cadre01");
    tablet.add_visit(&edit("cadre01", 4), &other).expect("add");

    merge(&mut phone, &mut tablet);
    let merged = phone.visit(v.id).expect("visit").notes;
    assert_eq!(
        merged,
        format!("上午：{base}下午再次回访。"),
        "both text edits kept"
    );
    assert_eq!(phone.visits(), tablet.visits());
    assert_eq!(phone.visits().len(), 2);
    assert!(phone.conflicts().is_empty(), "text edits are not conflicts");
}

#[test]
fn concurrent_scalar_edits_show_as_conflicts_until_settled() {
    let mut r = rng();
    let mut a = diary();
    let p = fixtures::petition(&mut r, NOW, None);
    a.add_petition(&edit("cadre01", 1), &p).expect("add");
    let mut b;
    let set = |c| PetitionUpdate {
        category: Some(c),
        ..Default::default()
    };
    // Two values different from the recorded one (writing the same value is no change).
    let mut p = p;
    p.category = Category::DevelopmentSuggestion;
    a.update_petition(&edit("cadre01", 2), p.id, &set(p.category))
        .expect("reset");
    b = DiaryDocument::load(&a.save(), actor(2)).expect("load");
    a.update_petition(&edit("cadre01", 2), p.id, &set(Category::CadreConduct))
        .expect("edit");
    b.update_petition(&edit("cadre01", 3), p.id, &set(Category::WorkShortcoming))
        .expect("edit");
    merge(&mut a, &mut b);

    let conflicts = a.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let c = &conflicts[0];
    assert_eq!(
        c.path,
        vec![
            "petitions".to_owned(),
            p.id.to_string(),
            "category".to_owned()
        ]
    );
    let mut values: Vec<_> = c.values.clone();
    values.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        values,
        vec![
            ConflictValue::Text("cadre_conduct".into()),
            ConflictValue::Text("work_shortcoming".into())
        ]
    );
    // The visible value is the first one listed.
    let shown = a.petition(p.id).expect("petition").category;
    assert_eq!(c.values[0], ConflictValue::Text(shown.as_str().into()));
    assert_eq!(
        b.conflicts(),
        conflicts,
        "both replicas see the same conflict"
    );

    let keep = c
        .values
        .iter()
        .position(|v| *v == ConflictValue::Text("work_shortcoming".into()))
        .expect("value");
    a.settle_conflict(&edit("cadre01", 4), c, keep)
        .expect("settle");
    assert!(a.conflicts().is_empty());
    assert_eq!(
        a.petition(p.id).expect("petition").category,
        Category::WorkShortcoming
    );
}

#[test]
fn cadre_and_supervisor_events_both_survive() {
    let mut r = rng();
    let (mut phone, p) = diary_with_petition(&mut r);
    let mut server = DiaryDocument::load(&phone.save(), actor(9)).expect("load");

    record(
        &mut phone,
        &mut r,
        ("cadre01", 60_000),
        p.id,
        &PetitionEventKind::Resolved {
            note: "道路已硬化".into(),
        },
    )
    .expect("resolve");
    let extended = date!(2027 - 01 - 31);
    record(
        &mut server,
        &mut r,
        ("sup-town1", 30_000),
        p.id,
        &PetitionEventKind::DeadlineSet { deadline: extended },
    )
    .expect("extend");
    merge(&mut phone, &mut server);

    let merged = phone.petition(p.id).expect("petition");
    assert_eq!(merged, server.petition(p.id).expect("petition"));
    assert_eq!(merged.events.len(), 3);
    assert_eq!(merged.state.status, PetitionStatus::Resolved);
    assert_eq!(merged.state.deadline, Some(extended));
    assert_eq!(
        merged.state.responsible, "cadre01",
        "first-visitor responsibility"
    );
}

#[test]
fn event_origins_name_the_actor_that_wrote_each_event() {
    let mut r = rng();
    let (mut phone, p) = diary_with_petition(&mut r);
    let mut server = DiaryDocument::load(&phone.save(), actor(9)).expect("load");
    record(
        &mut server,
        &mut r,
        ("sup-town1", 30_000),
        p.id,
        &PetitionEventKind::Supervised {
            note: "请抓紧办理".into(),
        },
    )
    .expect("supervise");
    merge(&mut phone, &mut server);

    let origins = phone.petition_events_with_origin(p.id).expect("petition");
    let actors: Vec<(&str, &ActorId, bool)> = origins
        .iter()
        .map(|(e, o)| (e.kind.type_name(), &o.actor, o.is_untouched()))
        .collect();
    assert_eq!(
        actors,
        vec![
            ("created", &actor(1), true),
            ("supervised", &actor(9), true)
        ]
    );

    // The phone rewrites the supervisor's note: the event still belongs to
    // the server's actor, and shows who else wrote it.
    let doc = phone.automerge_mut();
    let object = |doc: &Automerge, parent: &automerge::ObjId, prop: automerge::Prop| {
        doc.get(parent, prop).expect("get").expect("present").1
    };
    let petitions = object(doc, &ROOT, "petitions".into());
    let petition = object(doc, &petitions, p.id.to_string().into());
    let events = object(doc, &petition, "events".into());
    let supervised = object(doc, &events, 1usize.into());
    let mut tx = doc.transaction();
    tx.put(&supervised, "note", "已办结，无需督办")
        .expect("put");
    tx.commit();
    let origins = phone.petition_events_with_origin(p.id).expect("petition");
    assert_eq!(origins[1].1.actor, actor(9));
    assert_eq!(origins[1].1.also_written_by, vec![actor(1)]);
    assert!(
        phone
            .petition_events_with_origin(fixtures::id(&mut r))
            .is_none()
    );

    // An event is checked against the state the caller believes, not the
    // one the document's own events add up to.
    let mut believed = phone.petition(p.id).expect("petition").state;
    believed.status = PetitionStatus::Closed;
    let resolve = PetitionEventKind::Resolved {
        note: "已修复".into(),
    };
    assert!(matches!(
        phone.record_petition_event_on(
            &edit("cadre01", 60_000),
            p.id,
            fixtures::id(&mut r),
            &resolve,
            &believed
        ),
        Err(DocumentError::Invalid(
            ValidationError::InvalidTransition { .. }
        ))
    ));
}

#[test]
fn events_that_make_no_sense_are_refused() {
    let mut r = rng();
    let (mut d, p) = diary_with_petition(&mut r);
    let close = PetitionEventKind::Closed {
        note: "销号".into(),
    };
    record(&mut d, &mut r, ("sup-town1", 2), p.id, &close).expect("close");
    assert!(matches!(
        record(&mut d, &mut r, ("sup-town1", 3), p.id, &close),
        Err(DocumentError::Invalid(
            ValidationError::InvalidTransition { .. }
        ))
    ));
    let lower = PetitionEventKind::Escalated {
        to: Level::Village,
        note: "x".into(),
    };
    let reopen = PetitionEventKind::Reopened {
        reason: "群众不满意".into(),
    };
    record(&mut d, &mut r, ("sup-town1", 4), p.id, &reopen).expect("reopen");
    assert!(record(&mut d, &mut r, ("cadre01", 5), p.id, &lower).is_err());
    assert_eq!(
        d.petition(p.id).expect("p").state.status,
        PetitionStatus::InProgress
    );
}

#[test]
fn deletes_are_tombstones_that_survive_concurrent_edits() {
    let mut r = rng();
    let mut a = diary();
    let v = fixtures::visit(&mut r, NOW, "cadre01");
    a.add_visit(&edit("cadre01", 1), &v).expect("add");
    let mut b = DiaryDocument::load(&a.save(), actor(2)).expect("load");
    a.delete_visit(&edit("cadre01", 2), v.id).expect("delete");
    b.update_visit(
        &edit("cadre01", 3),
        v.id,
        &VisitUpdate {
            place: Some("王庄村六组".into()),
            ..Default::default()
        },
    )
    .expect("edit");
    merge(&mut a, &mut b);
    assert!(a.visits().is_empty());
    let all = a.all_visits();
    assert_eq!(all.len(), 1);
    let tomb = all[0].deleted.as_ref().expect("tombstone");
    assert_eq!(tomb.by, "cadre01");
    assert_eq!(
        all[0].place, "王庄村六组",
        "the concurrent edit is kept too"
    );
    assert!(matches!(
        a.update_visit(&edit("cadre01", 4), v.id, &VisitUpdate::default()),
        Err(DocumentError::Deleted { .. })
    ));
}

#[test]
fn corrupt_foreign_and_newer_documents_are_refused() {
    assert!(matches!(
        DiaryDocument::load(b"not an automerge file", actor(1)),
        Err(DocumentError::Load(_))
    ));
    let good = diary();
    let bytes = good.save();
    assert!(matches!(
        DiaryDocument::load(&bytes[..bytes.len() / 2], actor(1)),
        Err(DocumentError::Load(_))
    ));
    assert!(matches!(
        ContactsDocument::load(&bytes, actor(1)),
        Err(DocumentError::WrongKind { .. })
    ));

    let mut foreign = Automerge::new();
    foreign
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "title", "todo list")?;
            Ok(())
        })
        .expect("write");
    assert!(matches!(
        DiaryDocument::from_automerge(foreign),
        Err(DocumentError::NotOurs)
    ));

    let mut newer = good.into_automerge();
    newer
        .transact::<_, _, automerge::AutomergeError>(|tx| {
            tx.put(ROOT, "schema", 99)?;
            Ok(())
        })
        .expect("write");
    let err = DiaryDocument::from_automerge(newer).expect_err("refused");
    assert!(matches!(
        err,
        DocumentError::NewerSchema {
            found: 99,
            supported: 1
        }
    ));
    assert!(err.to_string().contains("update the app"));
}

#[test]
fn older_schemas_migrate_forward_once() {
    fn add_region(
        tx: &mut automerge::transaction::Transaction<'_>,
    ) -> Result<(), automerge::AutomergeError> {
        if tx.get(ROOT, "region")?.is_none() {
            tx.put(ROOT, "region", "示范县")?;
        }
        Ok(())
    }
    const STEPS: &[Migration] = &[add_region];
    let mut r = rng();
    let mut d = diary();
    let v = fixtures::visit(&mut r, NOW, "cadre01");
    d.add_visit(&edit("cadre01", 1), &v).expect("add");

    let migrated =
        DiaryDocument::from_automerge_with(d.automerge().clone(), STEPS, 2).expect("migrate");
    let doc = migrated.automerge();
    assert_eq!(
        doc.get(ROOT, "schema")
            .expect("get")
            .and_then(|(v, _)| v.as_scalar().and_then(|s| s.as_i64())),
        Some(2)
    );
    assert_eq!(
        doc.get(ROOT, "region")
            .expect("get")
            .and_then(|(v, _)| v.into_string().ok()),
        Some("示范县".into())
    );
    assert_eq!(migrated.visits().len(), 1, "records survive migration");
    // Opening again does nothing more.
    let again = DiaryDocument::from_automerge_with(doc.clone(), STEPS, 2).expect("open");
    assert_eq!(again.automerge().get_heads(), doc.get_heads());
    // Code that only knows schema 1 refuses the migrated document.
    assert!(matches!(
        DiaryDocument::from_automerge(doc.clone()),
        Err(DocumentError::NewerSchema { found: 2, .. })
    ));
}

#[test]
fn contacts_cards_follow_ups_and_pairing() {
    let mut r = rng();
    let mut c = ContactsDocument::create("cadre01", actor(1), &edit("cadre01", 0)).expect("create");
    let mut ids = Vec::new();
    for _ in 0..8 {
        let card = fixtures::card(&mut r, NOW);
        ids.push(c.add_card(&edit("cadre01", 1), &card).expect("add"));
    }
    c.add_follow_up(
        &edit("cadre01", 2),
        ids[0],
        fixtures::id(&mut r),
        "电话回访，问题已解决。",
    )
    .expect("follow-up");
    assert!(
        c.add_follow_up(&edit("cadre01", 2), ids[0], fixtures::id(&mut r), " ")
            .is_err()
    );
    assert!(matches!(
        c.update_card(
            &edit("cadre01", 3),
            ids[1],
            &ServiceCardUpdate {
                phone: Some(Some("110".into())),
                ..Default::default()
            }
        ),
        Err(DocumentError::Invalid(ValidationError::InvalidPhone { .. }))
    ));
    c.delete_card(&edit("cadre01", 4), ids[2]).expect("delete");
    assert_eq!(c.cards().len(), 7);
    assert_eq!(c.all_cards().len(), 8);
    assert_eq!(c.card(ids[0]).expect("card").follow_ups.len(), 1);
    let summary = c.pairing_summary();
    let expected = c.cards().iter().filter(|k| k.pairing.is_some()).count() as u32;
    assert_eq!(summary.party_members + summary.residents, expected);
}

#[test]
fn petition_links_to_its_visit() {
    let mut r = rng();
    let mut d = diary();
    let v = fixtures::visit(&mut r, NOW, "cadre01");
    d.add_visit(&edit("cadre01", 1), &v).expect("add");
    let p = fixtures::petition(&mut r, NOW, Some(v.id));
    d.add_petition(&edit("cadre01", 2), &p).expect("add");
    assert!(d.visit(v.id).expect("visit").petition_ids.contains(&p.id));
    let missing = fixtures::petition(&mut r, NOW, Some(RecordId::from_random_bytes([0; 16])));
    assert!(matches!(
        d.add_petition(&edit("cadre01", 3), &missing),
        Err(DocumentError::NotFound {
            record: "visit",
            ..
        })
    ));
    assert!(matches!(
        d.add_petition(&edit("cadre01", 3), &p),
        Err(DocumentError::Duplicate { .. })
    ));
}
