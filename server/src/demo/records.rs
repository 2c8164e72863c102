//! Demo visits, petitions and service cards for `serve --demo`: the diaries
//! of the last 300 days (this year's, and last year's when those days reach
//! back before 1 January) and a contacts document for every demo cadre,
//! stored like a phone's first sync would store them (chunk and ledger rows
//! in one transaction), so the ledger has something to show.

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_core::automerge::{ActorId, Automerge};
use sync_core::records::petition::{
    Category, Level, NewPetition, PetitionEventKind, PetitionStatus, Satisfaction,
};
use sync_core::{ContactsDocument, DiaryDocument, DocumentError, DocumentId, Edit, Timestamp};
use sync_core::{fixtures, records::visit::Visit};

use super::DEMO_USERS;
use crate::ledger::{Attribution, LedgerProjection, Writer};
use crate::store::{ActorClaim, DocumentWrite, NewDocument, Role, Store, StoreError, StoredKind};

const DAY_MS: i64 = 24 * 3600 * 1000;
const VISITS_PER_CADRE: usize = 25;
/// How far back the demo's records reach. Less than a year, so they touch
/// at most two diaries: a demo started in January still shows months of
/// work, in last year's diary.
const DEMO_DAYS: i64 = 300;

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

/// For every demo cadre without documents, creates this year's diary and,
/// when the last 300 days reach back before 1 January, last year's (≈25
/// visits over those days, 8–9 petitions in every status and category,
/// some overdue), and a contacts document (5–8 service cards). Idempotent
/// per cadre.
pub async fn seed_demo_records(store: &dyn Store) -> Result<DemoRecordsSummary, DemoRecordsError> {
    let mut summary = DemoRecordsSummary::default();
    let now = Utc::now();
    for &(username, post) in DEMO_POSTS {
        if let Some(user) = store.get_user_by_username(username).await? {
            store.set_user_post(user.id, post.as_str()).await?;
        }
    }
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
        let Some(supervisor_user) = store.get_user_by_username(supervisor).await? else {
            continue;
        };
        let built = tokio::task::spawn_blocking(move || {
            build(username, supervisor, index, petitions, now_ts)
        })
        .await??;
        let cadre_writer = Writer {
            username: username.to_owned(),
            user_id: user.id,
            device_id: DEMO_DEVICE.to_owned(),
            via_server: false,
        };
        let supervisor_writer = Writer {
            username: supervisor.to_owned(),
            user_id: supervisor_user.id,
            device_id: String::new(),
            via_server: true,
        };
        let writer_of = |actor: &ActorId| {
            if *actor == built.supervisor_actor {
                supervisor_writer.clone()
            } else {
                cadre_writer.clone()
            }
        };
        let mut documents = Vec::new();
        for (year, doc_id, diary) in &built.diaries {
            let (attribution, claims) = attribute(diary.automerge(), writer_of);
            documents.push((
                StoredKind::Diary,
                Some(*year),
                *doc_id,
                diary.save(),
                diary.automerge().get_heads(),
                LedgerProjection::of_diary(diary, &attribution),
                claims,
            ));
        }
        let (_, contacts_claims) = attribute(built.contacts.automerge(), writer_of);
        documents.push((
            StoredKind::Contacts,
            None,
            built.contacts_id,
            built.contacts.save(),
            built.contacts.automerge().get_heads(),
            LedgerProjection::of_contacts(&built.contacts),
            contacts_claims,
        ));
        for (kind, year, doc_id, data, heads, ledger, actors) in documents {
            summary.visits += ledger.visits.len();
            summary.petitions += ledger.petitions.len();
            summary.cards += ledger.cards.len();
            store
                .append_changes(DocumentWrite {
                    heads: Some(heads),
                    document_id: doc_id,
                    create: Some(NewDocument {
                        kind,
                        owner_user_id: user.id,
                        year,
                    }),
                    data,
                    at: now,
                    ledger: Some(ledger),
                    actors,
                    based_on: None,
                    sync: None,
                })
                .await?;
            summary.documents += 1;
        }
        summary.cadres += 1;
    }
    Ok(summary)
}

struct Built {
    /// Year, id and document of each diary, oldest first.
    diaries: Vec<(i32, DocumentId, DiaryDocument)>,
    /// The actor of the supervisor's events in the diaries; every other
    /// actor of the documents is the cadre's.
    supervisor_actor: ActorId,
    contacts_id: DocumentId,
    contacts: ContactsDocument,
}

/// One cadre's documents. Pure apart from fresh randomness.
fn build(
    cadre: &str,
    supervisor: &str,
    index: usize,
    petitions: usize,
    now: Timestamp,
) -> Result<Built, DocumentError> {
    let mut rng = StdRng::from_os_rng();
    let now = now.millis();
    // Spread over the last DEMO_DAYS, across 1 January when they reach it:
    // each record goes into the diary of its year (China time), as a phone
    // files it.
    let start = now - DEMO_DAYS * DAY_MS;
    // Some cadres have gone quiet: nothing in the last 45 days, so the
    // statistics of the last month show them (and village 4) as 零战果.
    let quiet = QUIET_CADRES.contains(&index);
    let end = (now - if quiet { 45 } else { 1 } * DAY_MS).max(start + 1);
    let at = |ms: i64| Edit::new(cadre, Timestamp(ms));
    // The supervisor's events are the server's changes for them, made with
    // an actor of their own, as the supervision API makes them.
    let cadre_actor = actor(&mut rng);
    let supervisor_actor = actor(&mut rng);

    let mut diaries = Diaries::new(cadre, Timestamp(start), Timestamp(now), &cadre_actor)?;
    let mut times: Vec<i64> = (0..VISITS_PER_CADRE)
        .map(|_| rng.random_range(start..end))
        .collect();
    times.sort_unstable();
    let mut visits: Vec<Visit> = Vec::new();
    for (n, t) in times.into_iter().enumerate() {
        let mut v = fixtures::visit(&mut rng, Timestamp(t), cadre);
        // Every fifth visit goes back to a household visited before (回访),
        // so distinct households are fewer than visits.
        if n % 5 == 4
            && let Some(earlier) = visits
                .iter()
                .rev()
                .find(|e| e.subject.kind == sync_core::records::visit::SubjectKind::Household)
        {
            v.kind = sync_core::records::visit::VisitKind::FollowUp;
            v.subject = earlier.subject.clone();
        }
        let diary = diaries.of(t);
        let id = diary.add_visit(&at(t), &v)?;
        if let Some(v) = diary.visit(id) {
            visits.push(v);
        }
    }
    let authors = Authors {
        cadre,
        supervisor,
        now,
        cadre_actor,
        supervisor_actor: supervisor_actor.clone(),
    };
    for n in 0..petitions {
        let wanted = Category::ALL[(n + index) % Category::ALL.len()];
        add_petition(
            &mut rng,
            &mut diaries,
            &visits,
            &authors,
            Scenario::nth(n),
            wanted,
            Followed::of_cadre(index),
        )?;
    }

    let contacts_id = sync_core::document::contacts_id(cadre);
    let mut contacts = ContactsDocument::create_shared(cadre, actor(&mut rng))?;
    let mut card_times: Vec<i64> = (0..rng.random_range(5..=8))
        .map(|_| rng.random_range(start..end))
        .collect();
    card_times.sort_unstable();
    for t in card_times {
        let c = fixtures::card(&mut rng, Timestamp(t));
        contacts.add_card(&at(t), &c)?;
    }
    Ok(Built {
        diaries: diaries.into_documents(cadre),
        supervisor_actor,
        contacts_id,
        contacts,
    })
}

/// The China year of an instant (the year of the epoch for one the `time`
/// crate cannot represent, which no demo record is).
fn china_year(ms: i64) -> i32 {
    Timestamp(ms).china_date().map_or(1970, |d| d.year())
}

/// A cadre's demo diaries: this year's, and last year's when the demo's
/// days begin before 1 January (never more: they span less than a year).
struct Diaries {
    year: i32,
    this: DiaryDocument,
    last: Option<DiaryDocument>,
}

impl Diaries {
    /// The diaries of the China years from `start` to `now`, with the
    /// shared genesis and (in [`Self::into_documents`]) at the ids every
    /// phone of the cadre derives, so a phone that records a visit offline
    /// writes into the demo diary.
    fn new(
        cadre: &str,
        start: Timestamp,
        now: Timestamp,
        actor: &ActorId,
    ) -> Result<Self, DocumentError> {
        let year = china_year(now.millis());
        let last = if china_year(start.millis()) < year {
            Some(DiaryDocument::create_shared(
                cadre,
                year - 1,
                actor.clone(),
            )?)
        } else {
            None
        };
        Ok(Diaries {
            year,
            this: DiaryDocument::create_shared(cadre, year, actor.clone())?,
            last,
        })
    }

    /// The diary a record made at `ms` goes into: the one of its year.
    fn of(&mut self, ms: i64) -> &mut DiaryDocument {
        match &mut self.last {
            Some(last) if china_year(ms) < self.year => last,
            _ => &mut self.this,
        }
    }

    /// Year, derived id and document of each, oldest first.
    fn into_documents(self, cadre: &str) -> Vec<(i32, DocumentId, DiaryDocument)> {
        let this_year = self.year;
        let last = self.last.map(|d| (this_year - 1, d));
        last.into_iter()
            .chain([(this_year, self.this)])
            .map(|(year, d)| (year, sync_core::document::diary_id(cadre, year), d))
            .collect()
    }
}

/// Indexes (in `DEMO_USERS`' cadres) of the cadres with nothing in the
/// last 45 days: cadre06 and all of village 4 (cadre10 to cadre12).
const QUIET_CADRES: [usize; 4] = [5, 9, 10, 11];

/// The demo's posts (`user_posts`), which set each cadre's quota; the
/// others are 包村干部.
pub const DEMO_POSTS: &[(&str, crate::stats::Post)] = &[
    ("cadre01", crate::stats::Post::VillageLeader),
    ("cadre07", crate::stats::Post::VillageLeader),
    ("cadre04", crate::stats::Post::VillageHead),
    ("cadre10", crate::stats::Post::VillageHead),
];

/// What happens after a demo cadre's plain "resolved" item, so feedback and
/// satisfaction rates differ between cadres (some below the targets of 90 %
/// and 95 %, some above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Followed {
    /// No feedback yet (feedback rate 3 of 4).
    NotYet,
    /// Feedback given, rated dissatisfied (satisfaction 3 of 4).
    Dissatisfied,
    /// Feedback given, rated satisfied (both 100 %).
    Satisfied,
}

impl Followed {
    fn of_cadre(index: usize) -> Self {
        match index % 4 {
            1 => Followed::Dissatisfied,
            2 => Followed::Satisfied,
            _ => Followed::NotYet,
        }
    }
}

/// The device id the demo's cadre changes are recorded as sent from.
const DEMO_DEVICE: &str = "demo-seed";

/// Every actor of `doc` with its writer, as the ledger's attribution and as
/// the claims to store.
fn attribute(
    doc: &Automerge,
    writer_of: impl Fn(&ActorId) -> Writer,
) -> (Attribution, Vec<ActorClaim>) {
    let mut attribution = Attribution::default();
    let mut claims = Vec::new();
    for change in doc.get_changes(&[]) {
        let actor = change.actor_id();
        if attribution.writer(actor).is_some() {
            continue;
        }
        let writer = writer_of(actor);
        claims.push(ActorClaim {
            actor: actor.to_hex_string(),
            user_id: writer.user_id,
            device_id: writer.device_id.clone(),
            via_server: writer.via_server,
        });
        attribution.insert(actor.clone(), writer);
    }
    (attribution, claims)
}

fn actor(rng: &mut StdRng) -> ActorId {
    ActorId::from(rng.random::<[u8; 16]>().to_vec())
}

/// The history a demo petition is taken through, so the ledger shows every
/// status, overdue items and supervision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Open,
    OpenOverdue,
    InProgress,
    /// In progress, overdue, with a 督办 note.
    SupervisedOverdue,
    Resolved,
    /// Resolved, feedback given and rated.
    FeedbackRated,
    /// Resolved, feedback given, rated and struck off (销号).
    Closed,
    /// Escalated to the county, resolved and closed.
    EscalatedClosed,
    /// Reassigned to the supervisor, with an extended deadline.
    Reassigned,
}

/// Who wrote an event.
#[derive(Debug, Clone, Copy)]
enum By {
    Cadre,
    Supervisor,
}

impl Scenario {
    const ALL: [Scenario; 9] = [
        Scenario::Open,
        Scenario::OpenOverdue,
        Scenario::InProgress,
        Scenario::SupervisedOverdue,
        Scenario::Resolved,
        Scenario::FeedbackRated,
        Scenario::Closed,
        Scenario::EscalatedClosed,
        Scenario::Reassigned,
    ];

    /// The `n`th cadre petition's scenario (the last one repeats).
    fn nth(n: usize) -> Self {
        Self::ALL[n.min(Self::ALL.len() - 1)]
    }

    /// How long ago it was raised, in days. The resolved ones are recent,
    /// so the last month's 效果清单 has items.
    fn age_days(self) -> i64 {
        match self {
            Scenario::Open => 6,
            Scenario::OpenOverdue => 60,
            Scenario::InProgress => 15,
            Scenario::SupervisedOverdue => 90,
            Scenario::Resolved => 30,
            Scenario::FeedbackRated => 45,
            Scenario::Closed => 180,
            Scenario::EscalatedClosed => 190,
            Scenario::Reassigned => 40,
        }
    }

    /// The events after it was raised: days after creation, who, what.
    fn events(self, supervisor: &str, now: i64) -> Vec<(i64, By, PetitionEventKind)> {
        let progress = || PetitionEventKind::ProgressNoted {
            note: "已与相关部门对接，正在协调解决。".to_owned(),
        };
        let resolved = || PetitionEventKind::Resolved {
            note: "问题已解决，现场核实完毕。".to_owned(),
        };
        let feedback = || PetitionEventKind::FeedbackGiven {
            note: "已上门向群众反馈办理结果。".to_owned(),
        };
        let rated = |satisfaction| PetitionEventKind::Rated { satisfaction };
        let closed = || PetitionEventKind::Closed {
            note: "月度审核通过，予以销号。".to_owned(),
        };
        match self {
            Scenario::Open | Scenario::OpenOverdue => vec![],
            Scenario::InProgress => vec![(3, By::Cadre, progress())],
            Scenario::SupervisedOverdue => vec![
                (5, By::Cadre, progress()),
                (
                    self.age_days() - 2,
                    By::Supervisor,
                    PetitionEventKind::Supervised {
                        note: "已超过办结时限，请抓紧办理并报告进展。".to_owned(),
                    },
                ),
            ],
            Scenario::Resolved => vec![(4, By::Cadre, progress()), (12, By::Cadre, resolved())],
            Scenario::FeedbackRated => vec![
                (10, By::Cadre, resolved()),
                (12, By::Cadre, feedback()),
                (12, By::Cadre, rated(Satisfaction::BasicallySatisfied)),
            ],
            Scenario::Closed => vec![
                (3, By::Cadre, progress()),
                (9, By::Cadre, resolved()),
                (10, By::Cadre, feedback()),
                (10, By::Cadre, rated(Satisfaction::Satisfied)),
                (25, By::Supervisor, closed()),
            ],
            Scenario::EscalatedClosed => vec![
                (
                    2,
                    By::Supervisor,
                    PetitionEventKind::Escalated {
                        to: Level::County,
                        note: "涉及跨镇协调，经申请上报县级办理。".to_owned(),
                    },
                ),
                (20, By::Cadre, resolved()),
                (22, By::Cadre, feedback()),
                (22, By::Cadre, rated(Satisfaction::Satisfied)),
                (30, By::Supervisor, closed()),
            ],
            Scenario::Reassigned => {
                let mut events = vec![(
                    2,
                    By::Supervisor,
                    PetitionEventKind::Assigned {
                        to: supervisor.to_owned(),
                    },
                )];
                if let Some(deadline) = Timestamp(now + 15 * DAY_MS).china_date() {
                    events.push((
                        35,
                        By::Supervisor,
                        PetitionEventKind::DeadlineSet { deadline },
                    ));
                }
                events
            }
        }
    }
}

/// Who writes a cadre's demo petitions, and when "now" is.
struct Authors<'a> {
    cadre: &'a str,
    supervisor: &'a str,
    now: i64,
    cadre_actor: ActorId,
    supervisor_actor: ActorId,
}

/// One petition of category `wanted`, raised in one of `visits` and taken
/// through `scenario`, in the diary of the visit (which keeps its later
/// events, also those of the next year).
fn add_petition(
    rng: &mut StdRng,
    diaries: &mut Diaries,
    visits: &[Visit],
    authors: &Authors<'_>,
    scenario: Scenario,
    wanted: Category,
    followed: Followed,
) -> Result<(), DocumentError> {
    let now = authors.now;
    // Raised in the last visit at or before that time (or the first visit).
    let target = now - scenario.age_days() * DAY_MS;
    let visit = visits
        .iter()
        .rev()
        .find(|v| v.at.millis() <= target)
        .or_else(|| visits.first());
    let created = visit.map_or(target, |v| v.at.millis());
    let diary = diaries.of(created);
    let mut p: NewPetition = fixtures::petition(rng, Timestamp(created), visit.map(|v| v.id));
    for _ in 0..20 {
        if p.category == wanted {
            break;
        }
        p = fixtures::petition(rng, Timestamp(created), visit.map(|v| v.id));
    }
    p.category = wanted;
    if scenario == Scenario::EscalatedClosed {
        // Escalated later: start at the lowest level.
        p.level = Level::Village;
    }
    if matches!(
        scenario,
        Scenario::OpenOverdue | Scenario::SupervisedOverdue
    ) {
        // Overdue: a deadline between creation and now.
        let span = ((now - created) / DAY_MS).max(2);
        p.deadline = Timestamp(created + span / 2 * DAY_MS).china_date();
    }
    let edit = |by: By, ms: i64| {
        let who = match by {
            By::Cadre => authors.cadre,
            By::Supervisor => authors.supervisor,
        };
        Edit::new(who, Timestamp(ms.min(now)))
    };
    let pid = diary.add_petition(&edit(By::Cadre, created), &p)?;
    let mut events = scenario.events(authors.supervisor, now);
    if scenario == Scenario::Resolved {
        let feedback = || PetitionEventKind::FeedbackGiven {
            note: "已电话告知群众办理结果。".to_owned(),
        };
        match followed {
            Followed::NotYet => {}
            Followed::Dissatisfied => {
                events.push((14, By::Cadre, feedback()));
                events.push((
                    14,
                    By::Cadre,
                    PetitionEventKind::Rated {
                        satisfaction: Satisfaction::Dissatisfied,
                    },
                ));
            }
            Followed::Satisfied => {
                events.push((14, By::Cadre, feedback()));
                events.push((
                    14,
                    By::Cadre,
                    PetitionEventKind::Rated {
                        satisfaction: Satisfaction::Satisfied,
                    },
                ));
            }
        }
    }
    for (days, by, kind) in events {
        let at = edit(by, created + days * DAY_MS);
        let actor = match by {
            By::Cadre => &authors.cadre_actor,
            By::Supervisor => &authors.supervisor_actor,
        };
        diary.automerge_mut().set_actor(actor.clone());
        diary.record_petition_event(&at, pid, fixtures::id(rng), &kind)?;
    }
    diary.automerge_mut().set_actor(authors.cadre_actor.clone());
    debug_assert!(
        diary.petition(pid).is_some_and(
            |p| scenario != Scenario::Closed || p.state.status == PetitionStatus::Closed
        ),
        "the closed scenario ends closed"
    );
    Ok(())
}
