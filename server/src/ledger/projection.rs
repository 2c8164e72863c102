//! [`LedgerProjection`]: the ledger rows one automerge document stands for.
//!
//! A pure function of the document: no database, no clock. The store writes
//! the rows in the same transaction as the chunk that produced the document
//! (see `DocumentWrite::ledger`), and `server ledger rebuild` writes them
//! again from the stored documents, which gives identical rows because the
//! function is the same.
//!
//! After a sync only the records its changes wrote into need new rows
//! ([`LedgerProjection::of_records`], from sync-core's
//! [`touched_since`](sync_core::document::touched_since)): every row is a
//! function of its own record (a petition's rows of the petition with its
//! events), so replacing those rows gives what projecting the whole
//! document would.

use chrono::{DateTime, Utc};
use sync_core::automerge::{Automerge, Change, ChangeHash};
use sync_core::document::{
    DocumentError, Touched, TouchedRecords, read_meta, touched_by, touched_since,
};
use sync_core::records::petition::{
    Category, Level, Petition, PetitionEvent, PetitionStatus, Satisfaction,
};
use sync_core::records::service_card::{PairingRole, ServiceCard};
use sync_core::records::visit::{SubjectKind, Visit, VisitKind};
use sync_core::timestamp::format_date;
use sync_core::{
    ContactsDocument, ContactsView, DiaryDocument, DiaryView, DocumentKind, Timestamp,
};

use super::attribution::{Attribution, EventJudgement, Flag, believed_state, judged_events};
use super::household::household_key;

/// Why a document has no projection.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The document is not a diary or contacts document of a schema this
    /// server knows (a foreign automerge document, a newer app version).
    #[error("document cannot be projected")]
    Document(#[from] DocumentError),
}

/// Ledger rows of one document: all of them, or those of some records
/// ([`LedgerScope`]). Owner and unit are not here: the store copies them
/// from the document's row when it writes these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerProjection {
    /// Which rows these replace.
    pub scope: LedgerScope,
    /// Visits of a diary, tombstoned ones included (flagged).
    pub visits: Vec<VisitRow>,
    /// Petitions of a diary, tombstoned ones included (flagged).
    pub petitions: Vec<PetitionRow>,
    /// Events of every petition above.
    pub events: Vec<PetitionEventRow>,
    /// Service cards of a contacts document.
    pub cards: Vec<CardRow>,
}

/// Which of a document's rows a [`LedgerProjection`] replaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LedgerScope {
    /// Every row of the document.
    #[default]
    Document,
    /// The rows of these records only (record ids as text): a record with
    /// no row in the projection has none afterwards. A petition's rows are
    /// its own and its events'.
    Records {
        /// Visit ids.
        visits: Vec<String>,
        /// Petition ids.
        petitions: Vec<String>,
        /// Service card ids.
        cards: Vec<String>,
    },
}

/// One row of `ledger_visits`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VisitRow {
    /// Record id (UUID text).
    pub id: String,
    pub kind: VisitKind,
    /// When the visit took place.
    pub at: DateTime<Utc>,
    /// Where.
    pub place: String,
    pub subject_kind: SubjectKind,
    /// Household, enterprise or unit visited.
    pub subject_name: String,
    /// The household it counts towards (see [`household_key`]).
    pub household_key: String,
    /// Sorted tags joined by commas.
    pub tags: String,
    /// Money handed over, in fen.
    pub aid_money_fen: i64,
    /// Goods handed over.
    pub aid_goods: String,
    /// Matters solved on the spot (they do not enter the ledger as petitions).
    pub resolved_on_spot: i64,
    /// Petitions raised in this visit.
    pub petition_count: i64,
    /// The six answers (六问) as a JSON array of six strings, in the order
    /// of `SixQuestions::FIELDS`.
    pub answers: String,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// Username of its recorder.
    pub created_by: String,
    pub deleted: bool,
}

/// One row of `ledger_petitions`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PetitionRow {
    /// Record id.
    pub id: String,
    /// The visit it was raised in.
    pub visit_id: Option<String>,
    pub applicant_name: String,
    /// Applicant's phone (stored whole; masked by the API).
    pub applicant_phone: Option<String>,
    /// Applicant's address or household.
    pub applicant_address: Option<String>,
    pub matter: String,
    pub category: Category,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Who recorded it.
    pub created_by: String,
    /// Derived from the events.
    pub status: PetitionStatus,
    /// Responsible username.
    pub responsible: String,
    pub level: Level,
    /// `YYYY-MM-DD` (China date).
    pub deadline: Option<String>,
    /// Last feedback to the resident.
    pub feedback: Option<String>,
    pub satisfaction: Option<Satisfaction>,
    /// Last resolution time.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Its China date, `YYYY-MM-DD` (compared with `deadline` for "on time").
    pub resolved_on: Option<String>,
    /// Closure (销号) time.
    pub closed_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    /// Number of events.
    pub event_count: i64,
}

/// One row of `ledger_petition_events`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PetitionEventRow {
    pub petition_id: String,
    /// Event id.
    pub id: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Username of its writer as the server knows it (see
    /// [`attribution`](super::attribution)).
    pub actor: String,
    /// What the event's `by` field claims.
    pub claimed_by: String,
    /// The device that sent it, if a device did.
    pub device_id: Option<String>,
    /// The server wrote it on the writer's behalf.
    pub via_server: bool,
    /// It counts towards the petition's state.
    pub believed: bool,
    pub flag: Option<Flag>,
    /// `PetitionEventKind::type_name`.
    pub event_type: String,
    /// The note or reason, if the event carries one.
    pub note: Option<String>,
    /// The whole event as JSON.
    pub detail: String,
}

/// One row of `ledger_cards`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CardRow {
    /// Record id.
    pub id: String,
    /// Resident's name.
    pub resident: String,
    /// Resident's phone.
    pub phone: Option<String>,
    /// Resident's address.
    pub address: Option<String>,
    pub household: Option<String>,
    /// When the card was handed over.
    pub handed_over_at: DateTime<Utc>,
    /// If the card is one of the "123" pairings.
    pub pairing_role: Option<PairingRole>,
    /// Whether the pairing is with a needy person.
    pub pairing_needy: Option<bool>,
    /// Number of follow-ups.
    pub follow_ups: i64,
    /// When the record was created.
    pub created_at: DateTime<Utc>,
    /// Who created it.
    pub created_by: String,
    pub deleted: bool,
}

/// Free text from a document, as a ledger column holds it: a NUL byte
/// (which PostgreSQL's text cannot hold, so the whole write would fail and
/// the document never sync again) becomes U+FFFD on both backends. The
/// document keeps the text as written.
fn text(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// A record time as chrono. Times outside chrono's range (only a hostile
/// client writes them) become the epoch rather than failing the write.
fn time(t: Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.millis()).unwrap_or(DateTime::UNIX_EPOCH)
}

impl LedgerProjection {
    /// Projects a diary or contacts document. A document of the current
    /// schema is read in place; an older one is migrated on a copy first.
    pub fn of_document(
        doc: &Automerge,
        attribution: &Attribution,
    ) -> Result<Self, ProjectionError> {
        if let Some(diary) = DiaryView::new(doc) {
            return Ok(Self::of_diary_view(diary, attribution));
        }
        if let Some(contacts) = ContactsView::new(doc) {
            return Ok(Self::of_contacts_view(contacts));
        }
        let meta = read_meta(doc)?;
        Ok(match meta.kind {
            DocumentKind::Diary => {
                Self::of_diary(&DiaryDocument::from_automerge(doc.clone())?, attribution)
            }
            DocumentKind::Contacts => {
                Self::of_contacts(&ContactsDocument::from_automerge(doc.clone())?)
            }
        })
    }

    /// As [`Self::of_document`], but a document that cannot be projected has
    /// no rows. Used on the write path: its chunk is stored all the same.
    pub fn of_document_or_empty(doc: &Automerge, attribution: &Attribution) -> Self {
        Self::of_document(doc, attribution).unwrap_or_else(|e| {
            tracing::debug!(error = %e, "document has no ledger rows");
            Self::default()
        })
    }

    /// The rows a write changed: `doc` holds changes beyond `since`
    /// (`added`, when the caller has them), and only the records they wrote
    /// into get new rows, unless they wrote on the root (a new document) or
    /// the document is not read in place, when the whole document is
    /// projected.
    pub fn after_changes(
        doc: &Automerge,
        attribution: &Attribution,
        since: &[ChangeHash],
        added: Option<&[Change]>,
    ) -> Self {
        let touched = match added {
            Some(changes) if !since.is_empty() => touched_by(doc, changes),
            _ => touched_since(doc, since),
        };
        if let Touched::Records(touched) = touched
            && let Some(rows) = Self::of_records(doc, attribution, &touched)
        {
            return rows;
        }
        Self::of_document_or_empty(doc, attribution)
    }

    /// The rows of the records `touched` only, scoped to replace just
    /// theirs. `None` when `doc` is not a document of the current schema
    /// read in place (project the whole document then).
    pub fn of_records(
        doc: &Automerge,
        attribution: &Attribution,
        touched: &TouchedRecords,
    ) -> Option<Self> {
        let ids = |set: &std::collections::BTreeSet<sync_core::RecordId>| {
            set.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let mut p = LedgerProjection {
            scope: LedgerScope::Records {
                visits: ids(&touched.visits),
                petitions: ids(&touched.petitions),
                cards: ids(&touched.cards),
            },
            ..Self::default()
        };
        if let Some(diary) = DiaryView::new(doc) {
            p.visits = touched
                .visits
                .iter()
                .filter_map(|id| diary.visit(*id))
                .map(|v| visit_row(&v))
                .collect();
            for id in &touched.petitions {
                if let Some(petition) = diary.petition(*id) {
                    p.push_petition(diary, petition, attribution);
                }
            }
        } else if let Some(contacts) = ContactsView::new(doc) {
            p.cards = touched
                .cards
                .iter()
                .filter_map(|id| contacts.card(*id))
                .map(|c| card_row(&c))
                .collect();
        } else {
            return None;
        }
        Some(p)
    }

    /// Rows of a diary. Each event is attributed to its writer by
    /// `attribution`, and a petition's state is what its believed events
    /// add up to (see [`attribution`](super::attribution)).
    pub fn of_diary(diary: &DiaryDocument, attribution: &Attribution) -> Self {
        Self::of_diary_view(diary.view(), attribution)
    }

    fn of_diary_view(diary: DiaryView<'_>, attribution: &Attribution) -> Self {
        let mut p = LedgerProjection {
            visits: diary.all_visits().iter().map(visit_row).collect(),
            ..Self::default()
        };
        for petition in diary.all_petitions() {
            p.push_petition(diary, petition, attribution);
        }
        p
    }

    fn push_petition(
        &mut self,
        diary: DiaryView<'_>,
        mut petition: Petition,
        attribution: &Attribution,
    ) {
        let judged = judged_events(diary, &petition, attribution);
        petition.state = believed_state(&petition, &judged);
        self.events.extend(event_rows(&petition, &judged));
        self.petitions.push(petition_row(&petition));
    }

    /// Rows of a contacts document.
    pub fn of_contacts(contacts: &ContactsDocument) -> Self {
        Self::of_contacts_view(contacts.view())
    }

    fn of_contacts_view(contacts: ContactsView<'_>) -> Self {
        LedgerProjection {
            cards: contacts.all_cards().iter().map(card_row).collect(),
            ..Self::default()
        }
    }

    /// Total number of rows.
    pub fn len(&self) -> usize {
        self.visits.len() + self.petitions.len() + self.events.len() + self.cards.len()
    }

    /// Whether there are no rows at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn visit_row(v: &Visit) -> VisitRow {
    VisitRow {
        id: v.id.to_string(),
        kind: v.kind,
        at: time(v.at),
        place: text(&v.place),
        subject_kind: v.subject.kind,
        subject_name: text(&v.subject.name),
        household_key: text(&household_key(
            v.subject.kind.as_str(),
            &v.subject.name,
            v.subject.address.as_deref(),
        )),
        tags: text(&v.tags.iter().cloned().collect::<Vec<_>>().join(",")),
        aid_money_fen: v.aid.money_fen,
        aid_goods: text(&v.aid.goods),
        resolved_on_spot: i64::try_from(v.resolved_on_spot.len()).unwrap_or(i64::MAX),
        petition_count: i64::try_from(v.petition_ids.len()).unwrap_or(i64::MAX),
        answers: serde_json::to_string(&v.answers.as_array()).unwrap_or_default(),
        created_at: time(v.created_at),
        created_by: text(&v.created_by),
        deleted: v.deleted.is_some(),
    }
}

fn petition_row(p: &Petition) -> PetitionRow {
    let s = &p.state;
    PetitionRow {
        id: p.id.to_string(),
        visit_id: p.visit_id.map(|v| v.to_string()),
        applicant_name: text(&p.applicant.name),
        applicant_phone: p.applicant.phone.as_deref().map(text),
        applicant_address: p.applicant.address.as_deref().map(text),
        matter: text(&p.matter),
        category: p.category,
        created_at: time(p.created_at),
        created_by: text(&p.created_by),
        status: s.status,
        responsible: text(&s.responsible),
        level: s.level,
        deadline: s.deadline.map(format_date),
        feedback: s.feedback.as_deref().map(text),
        satisfaction: s.satisfaction,
        resolved_at: s.resolved_at.map(time),
        resolved_on: s.resolved_at.and_then(|t| t.china_date()).map(format_date),
        closed_at: s.closed_at.map(time),
        deleted: p.deleted.is_some(),
        event_count: i64::try_from(p.events.len()).unwrap_or(i64::MAX),
    }
}

fn event_rows<'a>(
    p: &'a Petition,
    judged: &'a [(PetitionEvent, EventJudgement)],
) -> impl Iterator<Item = PetitionEventRow> + 'a {
    judged.iter().map(|(e, j)| PetitionEventRow {
        petition_id: p.id.to_string(),
        id: e.id.to_string(),
        at: time(e.at),
        actor: j.actor.clone(),
        claimed_by: text(&e.by),
        device_id: j.device_id.clone(),
        via_server: j.via_server,
        believed: j.believed,
        flag: j.flag,
        event_type: e.kind.type_name().to_owned(),
        note: e.kind.note().map(text),
        detail: serde_json::to_string(&e.kind).unwrap_or_default(),
    })
}

fn card_row(c: &ServiceCard) -> CardRow {
    CardRow {
        id: c.id.to_string(),
        resident: text(&c.resident),
        phone: c.phone.as_deref().map(text),
        address: c.address.as_deref().map(text),
        household: c.household.as_deref().map(text),
        handed_over_at: time(c.handed_over_at),
        pairing_role: c.pairing.map(|x| x.role),
        pairing_needy: c.pairing.map(|x| x.needy),
        follow_ups: i64::try_from(c.follow_ups.len()).unwrap_or(i64::MAX),
        created_at: time(c.created_at),
        created_by: text(&c.created_by),
        deleted: c.deleted.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use sync_core::Edit;
    use sync_core::automerge::ActorId;
    use sync_core::fixtures;
    use sync_core::records::petition::PetitionEventKind;

    const T0: i64 = 1_780_000_000_000; // 2026-05-29 in China

    fn edit(at: i64) -> Edit {
        Edit::new("cadre01", Timestamp(at))
    }

    /// The diary's one actor is cadre01's phone.
    fn cadre_writes(diary: &DiaryDocument) -> Attribution {
        let mut a = Attribution::default();
        a.insert(
            diary.automerge().get_actor().clone(),
            super::super::Writer {
                username: "cadre01".into(),
                user_id: 1,
                device_id: "phone".into(),
                via_server: false,
            },
        );
        a
    }

    #[test]
    fn diary_projects_visits_petitions_and_events() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut diary =
            DiaryDocument::create("cadre01", 2026, ActorId::from(vec![1u8; 16]), &edit(T0))
                .expect("create");
        let visit = fixtures::visit(&mut rng, Timestamp(T0), "cadre01");
        let visit_id = diary.add_visit(&edit(T0), &visit).expect("visit");
        let petition = fixtures::petition(&mut rng, Timestamp(T0), Some(visit_id));
        let pid = diary.add_petition(&edit(T0), &petition).expect("petition");
        diary
            .record_petition_event(
                &edit(T0 + 1000),
                pid,
                fixtures::id(&mut rng),
                &PetitionEventKind::Resolved {
                    note: "已修好".into(),
                },
            )
            .expect("event");

        let p = LedgerProjection::of_document(diary.automerge(), &cadre_writes(&diary))
            .expect("projects");
        assert_eq!(p.visits.len(), 1);
        assert_eq!(p.visits[0].petition_count, 1);
        assert_eq!(p.petitions.len(), 1);
        let row = &p.petitions[0];
        assert_eq!(row.id, pid.to_string());
        assert_eq!(row.visit_id, Some(visit_id.to_string()));
        assert_eq!(row.status, PetitionStatus::Resolved);
        assert_eq!(row.event_count, 2);
        assert_eq!(row.deadline.as_deref(), Some("2026-06-28"));
        assert!(row.resolved_at.is_some());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.events[1].event_type, "resolved");
        assert_eq!(p.events[1].note.as_deref(), Some("已修好"));
        assert!(p.cards.is_empty());
        // Pure: the same document gives the same rows.
        assert_eq!(
            LedgerProjection::of_document(diary.automerge(), &cadre_writes(&diary)).expect("again"),
            p
        );
    }

    #[test]
    fn contacts_project_cards() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut contacts =
            ContactsDocument::create("cadre01", ActorId::from(vec![2u8; 16]), &edit(T0))
                .expect("create");
        for _ in 0..3 {
            let card = fixtures::card(&mut rng, Timestamp(T0));
            contacts.add_card(&edit(T0), &card).expect("card");
        }
        let p = LedgerProjection::of_document(contacts.automerge(), &Attribution::default())
            .expect("projects");
        assert_eq!(p.cards.len(), 3);
        assert_eq!(p.len(), 3);
        assert!(p.visits.is_empty() && p.petitions.is_empty());
    }

    #[test]
    fn foreign_document_has_no_projection() {
        let doc = Automerge::new();
        let none = Attribution::default();
        assert!(LedgerProjection::of_document(&doc, &none).is_err());
        assert!(LedgerProjection::of_document_or_empty(&doc, &none).is_empty());
    }
}
