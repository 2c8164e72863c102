//! Demo visits, petitions and service cards for `serve --demo`: a diary for
//! the current year and a contacts document for every demo cadre, stored
//! like a phone's first sync would store them (chunk and ledger rows in one
//! transaction), so the ledger has something to show.

use chrono::{Datelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_core::automerge::ActorId;
use sync_core::records::petition::{
    Category, Level, NewPetition, PetitionEventKind, PetitionStatus, Satisfaction,
};
use sync_core::{ContactsDocument, DiaryDocument, DocumentError, DocumentId, Edit, Timestamp};
use sync_core::{fixtures, records::visit::Visit};

use super::DEMO_USERS;
use crate::ledger::LedgerProjection;
use crate::store::{DocumentWrite, NewDocument, Role, Store, StoreError, StoredKind};

const DAY_MS: i64 = 24 * 3600 * 1000;
const VISITS_PER_CADRE: usize = 25;

/// Why seeding the demo records failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoRecordsError {
    /// The database refused.
    #[error("cannot store the demo documents")]
    Store(#[from] StoreError),
    /// sync-core refused a fixture (a bug in this file).
    #[error("cannot build the demo documents")]
    Document(#[from] DocumentError),
    /// The building task panicked.
    #[error("demo task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// What [`seed_demo_records`] created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoRecordsSummary {
    /// Cadres that got documents (cadres that had any are skipped).
    pub cadres: usize,
    /// Documents stored.
    pub documents: usize,
    /// Visits in them.
    pub visits: usize,
    /// Petitions in them.
    pub petitions: usize,
    /// Service cards in them.
    pub cards: usize,
}

/// For every demo cadre without documents, creates a diary for this year
/// (≈25 visits, 8–9 petitions in every status and category, some overdue)
/// and a contacts document (5–8 service cards). Idempotent per cadre.
pub async fn seed_demo_records(store: &dyn Store) -> Result<DemoRecordsSummary, DemoRecordsError> {
    let mut summary = DemoRecordsSummary::default();
    let now = Utc::now();
    let cadres = DEMO_USERS.iter().filter(|u| u.2 == Role::Cadre).enumerate();
    for (index, &(username, _, _, unit_code)) in cadres {
        let Some(user) = store.get_user_by_username(username).await? else {
            continue;
        };
        if !store.list_documents_for_owner(user.id).await?.is_empty() {
            continue;
        }
        let supervisor = if matches!(unit_code, "village1" | "village2") {
            "sup-town1"
        } else {
            "sup-town2"
        };
        let petitions = 8 + usize::from(index % 3 == 0);
        let now_ts = Timestamp(now.timestamp_millis());
        let year = now.year();
        let built = tokio::task::spawn_blocking(move || {
            build(username, supervisor, index, petitions, year, now_ts)
        })
        .await??;
        for (kind, year, doc_id, data, ledger) in [
            (
                StoredKind::Diary,
                Some(year),
                built.diary_id,
                built.diary.save(),
                LedgerProjection::of_diary(&built.diary),
            ),
            (
                StoredKind::Contacts,
                None,
                built.contacts_id,
                built.contacts.save(),
                LedgerProjection::of_contacts(&built.contacts),
            ),
        ] {
            summary.visits += ledger.visits.len();
            summary.petitions += ledger.petitions.len();
            summary.cards += ledger.cards.len();
            store
                .append_changes(DocumentWrite {
                    document_id: doc_id,
                    create: Some(NewDocument {
                        kind,
                        owner_user_id: user.id,
                        year,
                    }),
                    data,
                    at: now,
                    ledger: Some(ledger),
                })
                .await?;
            summary.documents += 1;
        }
        summary.cadres += 1;
    }
    Ok(summary)
}

struct Built {
    diary_id: DocumentId,
    diary: DiaryDocument,
    contacts_id: DocumentId,
    contacts: ContactsDocument,
}

/// One cadre's documents. Pure apart from fresh randomness.
fn build(
    cadre: &str,
    supervisor: &str,
    index: usize,
    petitions: usize,
    year: i32,
    now: Timestamp,
) -> Result<Built, DocumentError> {
    let mut rng = StdRng::from_os_rng();
    let now = now.millis();
    // Spread over the past months of this year (China time), never before 1 January.
    let year_start = chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(now - 300 * DAY_MS, |d| {
            d.and_utc().timestamp_millis() - 8 * 3600 * 1000
        });
    let start = year_start.max(now - 300 * DAY_MS);
    let end = (now - DAY_MS).max(start + 1);
    let at = |ms: i64| Edit::new(cadre, Timestamp(ms));

    let diary_id = DocumentId::from_bytes(rng.random());
    let mut diary = DiaryDocument::create(cadre, year, actor(&mut rng), &at(start))?;
    let mut times: Vec<i64> = (0..VISITS_PER_CADRE)
        .map(|_| rng.random_range(start..end))
        .collect();
    times.sort_unstable();
    let mut visits: Vec<Visit> = Vec::new();
    for t in times {
        let v = fixtures::visit(&mut rng, Timestamp(t), cadre);
        let id = diary.add_visit(&at(t), &v)?;
        if let Some(v) = diary.visit(id) {
            visits.push(v);
        }
    }
    for scenario in 0..petitions {
        let wanted = Category::ALL[(scenario + index) % Category::ALL.len()];
        add_petition(
            &mut rng, &mut diary, &visits, cadre, supervisor, scenario, wanted, now,
        )?;
    }

    let contacts_id = DocumentId::from_bytes(rng.random());
    let mut contacts = ContactsDocument::create(cadre, actor(&mut rng), &at(start))?;
    let mut card_times: Vec<i64> = (0..rng.random_range(5..=8))
        .map(|_| rng.random_range(start..end))
        .collect();
    card_times.sort_unstable();
    for t in card_times {
        let c = fixtures::card(&mut rng, Timestamp(t));
        contacts.add_card(&at(t), &c)?;
    }
    Ok(Built {
        diary_id,
        diary,
        contacts_id,
        contacts,
    })
}

fn actor(rng: &mut StdRng) -> ActorId {
    ActorId::from(rng.random::<[u8; 16]>().to_vec())
}

/// One petition, taken through the history `scenario` names:
/// 0 open; 1 open, overdue; 2 in progress; 3 in progress with 督办, overdue;
/// 4 resolved; 5 resolved, feedback given and rated; 6 closed (销号);
/// 7 escalated, resolved and closed; 8 reassigned with an extended deadline.
#[allow(clippy::too_many_arguments)]
fn add_petition(
    rng: &mut StdRng,
    diary: &mut DiaryDocument,
    visits: &[Visit],
    cadre: &str,
    supervisor: &str,
    scenario: usize,
    wanted: Category,
    now: i64,
) -> Result<(), DocumentError> {
    // How long ago it was raised, in days.
    let age = match scenario {
        0 => 6,
        1 => 60,
        2 => 15,
        3 => 90,
        8 => 40,
        _ => 120 + 10 * i64::try_from(scenario).unwrap_or(0),
    };
    // Raised in the last visit at or before that time (or the first visit).
    let target = now - age * DAY_MS;
    let visit = visits
        .iter()
        .rev()
        .find(|v| v.at.millis() <= target)
        .or_else(|| visits.first());
    let created = visit.map_or(target, |v| v.at.millis());
    let mut p: NewPetition = fixtures::petition(rng, Timestamp(created), visit.map(|v| v.id));
    for _ in 0..20 {
        if p.category == wanted {
            break;
        }
        p = fixtures::petition(rng, Timestamp(created), visit.map(|v| v.id));
    }
    p.category = wanted;
    if scenario == 7 {
        // Escalated below: start at the lowest level.
        p.level = Level::Village;
    }
    if matches!(scenario, 1 | 3) {
        // Overdue: a deadline between creation and now.
        let span = ((now - created) / DAY_MS).max(2);
        p.deadline = Timestamp(created + span / 2 * DAY_MS).china_date();
    }
    let by_cadre = |ms: i64| Edit::new(cadre, Timestamp(ms.min(now)));
    let by_sup = |ms: i64| Edit::new(supervisor, Timestamp(ms.min(now)));
    let pid = diary.add_petition(&by_cadre(created), &p)?;
    let day = |n: i64| created + n * DAY_MS;
    let mut events: Vec<(Edit, PetitionEventKind)> = Vec::new();
    let progress = PetitionEventKind::ProgressNoted {
        note: "已与相关部门对接，正在协调解决。".to_owned(),
    };
    let resolved = PetitionEventKind::Resolved {
        note: "问题已解决，现场核实完毕。".to_owned(),
    };
    let feedback = PetitionEventKind::FeedbackGiven {
        note: "已上门向群众反馈办理结果。".to_owned(),
    };
    let rated = |s| PetitionEventKind::Rated { satisfaction: s };
    let closed = PetitionEventKind::Closed {
        note: "月度审核通过，予以销号。".to_owned(),
    };
    match scenario {
        0 | 1 => {}
        2 => events.push((by_cadre(day(3)), progress)),
        3 => {
            events.push((by_cadre(day(5)), progress));
            events.push((
                by_sup(day(age - 2)),
                PetitionEventKind::Supervised {
                    note: "已超过办结时限，请抓紧办理并报告进展。".to_owned(),
                },
            ));
        }
        4 => {
            events.push((by_cadre(day(4)), progress));
            events.push((by_cadre(day(12)), resolved));
        }
        5 => {
            events.push((by_cadre(day(10)), resolved));
            events.push((by_cadre(day(12)), feedback));
            events.push((by_cadre(day(12)), rated(Satisfaction::BasicallySatisfied)));
        }
        6 => {
            events.push((by_cadre(day(3)), progress));
            events.push((by_cadre(day(9)), resolved));
            events.push((by_cadre(day(10)), feedback));
            events.push((by_cadre(day(10)), rated(Satisfaction::Satisfied)));
            events.push((by_sup(day(25)), closed));
        }
        7 => {
            events.push((
                by_cadre(day(2)),
                PetitionEventKind::Escalated {
                    to: Level::County,
                    note: "涉及跨镇协调，申请上报县级办理。".to_owned(),
                },
            ));
            events.push((by_cadre(day(20)), resolved));
            events.push((by_cadre(day(22)), feedback));
            events.push((by_cadre(day(22)), rated(Satisfaction::Satisfied)));
            events.push((by_sup(day(30)), closed));
        }
        _ => {
            events.push((
                by_sup(day(2)),
                PetitionEventKind::Assigned {
                    to: supervisor.to_owned(),
                },
            ));
            if let Some(d) = Timestamp(now + 15 * DAY_MS).china_date() {
                events.push((
                    by_sup(day(35)),
                    PetitionEventKind::DeadlineSet { deadline: d },
                ));
            }
        }
    }
    for (edit, kind) in events {
        diary.record_petition_event(&edit, pid, fixtures::id(rng), &kind)?;
    }
    debug_assert!(
        diary
            .petition(pid)
            .is_some_and(|p| scenario != 6 || p.state.status == PetitionStatus::Closed),
        "scenario 6 ends closed"
    );
    Ok(())
}
