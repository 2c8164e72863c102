//! The diary document: one per cadre per year, holding visits and the
//! petitions raised in them.
//!
//! Layout (schema 1):
//! ```text
//! { schema: 1, kind: "diary", owner, year, created_at,
//!   visits:    { <uuid>: { kind, at, place, subject_kind, subject_name, subject_address?,
//!                          tags: {tag: true}, participants: {name: true},
//!                          answers: { basic_situation: text, … }, notes: text,
//!                          lat?, lon?, aid_fen, aid_goods, resolved_on_spot: [str],
//!                          petition_ids: {uuid: true}, card_ids: {uuid: true},
//!                          created_at, created_by, deleted_at?, deleted_by? } },
//!   petitions: { <uuid>: { visit_id?, applicant_name, applicant_phone?, applicant_address?,
//!                          matter: text, category, created_at, created_by,
//!                          events: [ { id, at, by, type, …fields of the type } ],
//!                          deleted_at?, deleted_by? } } }
//! ```
//! Times are integers (milliseconds since the epoch); dates are `YYYY-MM-DD`.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc};

use super::fields::*;
use super::genesis;
use super::origin::{EventOrigin, event_origin};
use super::schema::{self, DocumentKind};
use super::{Conflict, DocumentError, commit, conflicts};
use crate::records::petition::{
    self, Applicant, Category, Level, NewPetition, Petition, PetitionEvent, PetitionEventKind,
    PetitionState, PetitionUpdate, Satisfaction,
};
use crate::records::visit::{
    Aid, GeoPoint, NewVisit, SixQuestions, Subject, SubjectKind, Visit, VisitKind, VisitUpdate,
};
use crate::timestamp::format_date;
use crate::{Edit, RecordId, Timestamp};

const VISIT: &str = "visit";
const PETITION: &str = "petition";

/// A cadre's visit diary for one year.
#[derive(Debug, Clone)]
pub struct DiaryDocument {
    doc: Automerge,
}

super::typed_document!(DiaryDocument, DocumentKind::Diary, "diary");

impl DiaryDocument {
    /// A new, empty diary for `owner` and `year`, written by the device with
    /// `actor` (a fresh random actor id per device and document).
    pub fn create(
        owner: &str,
        year: i32,
        actor: ActorId,
        edit: &Edit,
    ) -> Result<Self, DocumentError> {
        crate::validation::required("owner", owner)?;
        let mut doc = Automerge::new().with_actor(actor);
        commit(&mut doc, edit, "create diary", |tx| {
            tx.put(ROOT, "schema", schema::CURRENT_SCHEMA)?;
            tx.put(ROOT, "kind", DocumentKind::Diary.as_str())?;
            tx.put(ROOT, "owner", owner)?;
            tx.put(ROOT, "year", i64::from(year))?;
            put_time(tx, &ROOT, "created_at", edit.at)?;
            tx.put_object(ROOT, "visits", ObjType::Map)?;
            tx.put_object(ROOT, "petitions", ObjType::Map)?;
            Ok(())
        })?;
        Ok(Self { doc })
    }

    /// `owner`'s diary for `year` as every device creates it: the id is
    /// [`super::diary_id`] and the first change is the same bytes on every
    /// device, so two phones that both create it offline hold one document
    /// and their visits merge. Edits after this one are made as `actor`.
    pub fn create_shared(owner: &str, year: i32, actor: ActorId) -> Result<Self, DocumentError> {
        let genesis = genesis::genesis_actor(DocumentKind::Diary, owner, Some(year));
        let mut diary = Self::create(
            owner,
            year,
            genesis,
            &genesis::genesis_edit(owner, Some(year)),
        )?;
        diary.doc.set_actor(actor);
        Ok(diary)
    }

    fn records(tx: &mut Transaction<'_>, key: &str) -> Result<ObjId, DocumentError> {
        // A client that built the document by hand may not have created the
        // map; create it on first use.
        match get_object(tx, &ROOT, key, ObjType::Map) {
            Some(m) => Ok(m),
            None => Ok(tx.put_object(ROOT, key, ObjType::Map)?),
        }
    }

    fn record_obj(
        &self,
        key: &str,
        record: &'static str,
        id: RecordId,
    ) -> Result<ObjId, DocumentError> {
        let map = get_object(&self.doc, &ROOT, key, ObjType::Map)
            .ok_or(DocumentError::NotFound { record, id })?;
        let obj = get_object(&self.doc, &map, &id.to_string(), ObjType::Map)
            .ok_or(DocumentError::NotFound { record, id })?;
        if get_tombstone(&self.doc, &obj).is_some() {
            return Err(DocumentError::Deleted { record, id });
        }
        Ok(obj)
    }

    // ----- visits -----

    /// Records a visit.
    pub fn add_visit(&mut self, edit: &Edit, v: &NewVisit) -> Result<RecordId, DocumentError> {
        v.validate()?;
        commit(&mut self.doc, edit, "add visit", |tx| {
            let visits = Self::records(tx, "visits")?;
            let key = v.id.to_string();
            if tx.get(&visits, key.as_str())?.is_some() {
                return Err(DocumentError::Duplicate {
                    record: VISIT,
                    id: v.id,
                });
            }
            let o = tx.put_object(&visits, key.as_str(), ObjType::Map)?;
            put_str(tx, &o, "kind", v.kind.as_str())?;
            put_time(tx, &o, "at", v.at)?;
            put_str(tx, &o, "place", &v.place)?;
            write_subject(tx, &o, &v.subject)?;
            update_set(tx, &o, "tags", v.tags.iter().map(String::as_str), [])?;
            update_set(
                tx,
                &o,
                "participants",
                v.participants.iter().map(String::as_str),
                [],
            )?;
            let answers = tx.put_object(&o, "answers", ObjType::Map)?;
            for (field, text) in SixQuestions::FIELDS.iter().zip(v.answers.as_array()) {
                put_text(tx, &answers, field, text)?;
            }
            put_text(tx, &o, "notes", &v.notes)?;
            write_location(tx, &o, v.location)?;
            write_aid(tx, &o, &v.aid)?;
            append_strings(
                tx,
                &o,
                "resolved_on_spot",
                v.resolved_on_spot.iter().map(String::as_str),
            )?;
            tx.put_object(&o, "petition_ids", ObjType::Map)?;
            tx.put_object(&o, "card_ids", ObjType::Map)?;
            put_time(tx, &o, "created_at", edit.at)?;
            put_str(tx, &o, "created_by", &edit.author)?;
            Ok(v.id)
        })
    }

    /// Changes a visit; text fields merge with concurrent edits.
    pub fn update_visit(
        &mut self,
        edit: &Edit,
        id: RecordId,
        u: &VisitUpdate,
    ) -> Result<(), DocumentError> {
        u.validate()?;
        let o = self.record_obj("visits", VISIT, id)?;
        commit(&mut self.doc, edit, "update visit", |tx| {
            if let Some(k) = u.kind {
                put_str(tx, &o, "kind", k.as_str())?;
            }
            if let Some(at) = u.at {
                put_time(tx, &o, "at", at)?;
            }
            if let Some(p) = &u.place {
                put_str(tx, &o, "place", p)?;
            }
            if let Some(s) = &u.subject {
                write_subject(tx, &o, s)?;
            }
            update_set(
                tx,
                &o,
                "tags",
                u.add_tags.iter().map(String::as_str),
                u.remove_tags.iter().map(String::as_str),
            )?;
            update_set(
                tx,
                &o,
                "participants",
                u.add_participants.iter().map(String::as_str),
                u.remove_participants.iter().map(String::as_str),
            )?;
            if let Some(a) = &u.answers {
                let answers = match get_object(tx, &o, "answers", ObjType::Map) {
                    Some(m) => m,
                    None => tx.put_object(&o, "answers", ObjType::Map)?,
                };
                for (field, text) in SixQuestions::FIELDS.iter().zip(a.as_array()) {
                    put_text(tx, &answers, field, text)?;
                }
            }
            if let Some(n) = &u.notes {
                put_text(tx, &o, "notes", n)?;
            }
            if let Some(loc) = u.location {
                write_location(tx, &o, loc)?;
            }
            if let Some(a) = &u.aid {
                write_aid(tx, &o, a)?;
            }
            if !u.add_resolved_on_spot.is_empty() {
                append_strings(
                    tx,
                    &o,
                    "resolved_on_spot",
                    u.add_resolved_on_spot.iter().map(String::as_str),
                )?;
            }
            let cards: Vec<String> = u.link_cards.iter().map(RecordId::to_string).collect();
            update_set(tx, &o, "card_ids", cards.iter().map(String::as_str), [])?;
            Ok(())
        })
    }

    /// Marks a visit deleted (a tombstone; its petitions stay in the ledger).
    pub fn delete_visit(&mut self, edit: &Edit, id: RecordId) -> Result<(), DocumentError> {
        let o = self.record_obj("visits", VISIT, id)?;
        commit(&mut self.doc, edit, "delete visit", |tx| {
            put_tombstone(tx, &o, edit)
        })
    }

    /// Reads this diary in place (see [`DiaryView`]).
    pub fn view(&self) -> DiaryView<'_> {
        DiaryView { doc: &self.doc }
    }

    /// One visit, deleted or not.
    pub fn visit(&self, id: RecordId) -> Option<Visit> {
        self.view().visit(id)
    }

    /// Live visits, oldest first.
    pub fn visits(&self) -> Vec<Visit> {
        self.view().visits()
    }

    /// Every readable visit, deleted ones included, in key order.
    pub fn all_visits(&self) -> Vec<Visit> {
        self.view().all_visits()
    }

    // ----- petitions -----

    /// Records a petition raised in a visit (or at a duty-day reception);
    /// the recorder is responsible unless `responsible` says otherwise.
    pub fn add_petition(
        &mut self,
        edit: &Edit,
        p: &NewPetition,
    ) -> Result<RecordId, DocumentError> {
        p.validate(edit.at)?;
        let visit_obj = match p.visit_id {
            Some(v) => Some(self.record_obj("visits", VISIT, v)?),
            None => None,
        };
        commit(&mut self.doc, edit, "add petition", |tx| {
            let petitions = Self::records(tx, "petitions")?;
            let key = p.id.to_string();
            if tx.get(&petitions, key.as_str())?.is_some() {
                return Err(DocumentError::Duplicate {
                    record: PETITION,
                    id: p.id,
                });
            }
            let o = tx.put_object(&petitions, key.as_str(), ObjType::Map)?;
            if let Some(v) = p.visit_id {
                put_str(tx, &o, "visit_id", &v.to_string())?;
            }
            write_applicant(tx, &o, &p.applicant)?;
            put_text(tx, &o, "matter", &p.matter)?;
            put_str(tx, &o, "category", p.category.as_str())?;
            put_time(tx, &o, "created_at", edit.at)?;
            put_str(tx, &o, "created_by", &edit.author)?;
            let events = tx.put_object(&o, "events", ObjType::List)?;
            let created = PetitionEventKind::Created {
                responsible: p.responsible.clone().unwrap_or_else(|| edit.author.clone()),
                level: p.level,
                deadline: p.deadline,
            };
            write_event(tx, &events, p.created_event_id, edit, &created)?;
            if let Some(vo) = &visit_obj {
                update_set(tx, vo, "petition_ids", [key.as_str()], [])?;
            }
            Ok(p.id)
        })
    }

    /// Changes a petition's applicant, matter or category.
    pub fn update_petition(
        &mut self,
        edit: &Edit,
        id: RecordId,
        u: &PetitionUpdate,
    ) -> Result<(), DocumentError> {
        u.validate()?;
        let o = self.record_obj("petitions", PETITION, id)?;
        commit(&mut self.doc, edit, "update petition", |tx| {
            if let Some(a) = &u.applicant {
                write_applicant(tx, &o, a)?;
            }
            if let Some(m) = &u.matter {
                put_text(tx, &o, "matter", m)?;
            }
            if let Some(c) = u.category {
                put_str(tx, &o, "category", c.as_str())?;
            }
            Ok(())
        })
    }

    /// Appends an event to a petition's history (progress, resolution,
    /// a supervisor's deadline or 督办, closure …).
    pub fn record_petition_event(
        &mut self,
        edit: &Edit,
        petition_id: RecordId,
        event_id: RecordId,
        kind: &PetitionEventKind,
    ) -> Result<(), DocumentError> {
        let current = self.petition(petition_id).ok_or(DocumentError::NotFound {
            record: PETITION,
            id: petition_id,
        })?;
        self.record_petition_event_on(edit, petition_id, event_id, kind, &current.state)
    }

    /// As [`Self::record_petition_event`], but the event is checked against
    /// `state` instead of the state the document's own events add up to.
    /// For a writer (the server) that believes only some of the events, so
    /// that, say, an event a device forged does not stop a supervisor from
    /// doing what the believed state allows.
    pub fn record_petition_event_on(
        &mut self,
        edit: &Edit,
        petition_id: RecordId,
        event_id: RecordId,
        kind: &PetitionEventKind,
        state: &PetitionState,
    ) -> Result<(), DocumentError> {
        let mut current = self.petition(petition_id).ok_or(DocumentError::NotFound {
            record: PETITION,
            id: petition_id,
        })?;
        if current.deleted.is_some() {
            return Err(DocumentError::Deleted {
                record: PETITION,
                id: petition_id,
            });
        }
        current.state = state.clone();
        petition::check_event(&current, kind)?;
        let o = self.record_obj("petitions", PETITION, petition_id)?;
        commit(
            &mut self.doc,
            edit,
            &format!("petition {}", kind.type_name()),
            |tx| {
                let events = match get_object(tx, &o, "events", ObjType::List) {
                    Some(l) => l,
                    None => tx.put_object(&o, "events", ObjType::List)?,
                };
                write_event(tx, &events, event_id, edit, kind)
            },
        )
    }

    /// A petition's readable events in list order, each with the actor that
    /// wrote it ([`EventOrigin`]); `None` if there is no such petition.
    pub fn petition_events_with_origin(
        &self,
        petition_id: RecordId,
    ) -> Option<Vec<(PetitionEvent, EventOrigin)>> {
        self.view().petition_events_with_origin(petition_id)
    }

    /// Marks a petition deleted (an entry made by mistake).
    pub fn delete_petition(&mut self, edit: &Edit, id: RecordId) -> Result<(), DocumentError> {
        let o = self.record_obj("petitions", PETITION, id)?;
        commit(&mut self.doc, edit, "delete petition", |tx| {
            put_tombstone(tx, &o, edit)
        })
    }

    /// One petition, deleted or not.
    pub fn petition(&self, id: RecordId) -> Option<Petition> {
        self.view().petition(id)
    }

    /// Live petitions, oldest first.
    pub fn petitions(&self) -> Vec<Petition> {
        self.view().petitions()
    }

    /// Every readable petition, deleted ones included, in key order.
    pub fn all_petitions(&self) -> Vec<Petition> {
        self.view().all_petitions()
    }

    /// Records that could not be read (written by a buggy or foreign client),
    /// as `(path, reason)`. They are kept in the document, never dropped.
    pub fn unreadable(&self) -> Vec<(String, String)> {
        self.view().unreadable()
    }
}

/// A diary read in place: the typed reads of [`DiaryDocument`] on an
/// automerge document the caller keeps (the server's copy of a document
/// being synced), without cloning or migrating it.
#[derive(Debug, Clone, Copy)]
pub struct DiaryView<'a> {
    doc: &'a Automerge,
}

impl<'a> DiaryView<'a> {
    /// `doc` as a diary, if it is one of the current schema. An older schema
    /// needs migrating first ([`DiaryDocument::from_automerge`] on a copy).
    pub fn new(doc: &'a Automerge) -> Option<Self> {
        let meta = schema::read_meta(doc).ok()?;
        (meta.kind == DocumentKind::Diary && meta.schema == schema::CURRENT_SCHEMA)
            .then_some(Self { doc })
    }

    /// One visit, deleted or not.
    pub fn visit(&self, id: RecordId) -> Option<Visit> {
        let map = get_object(self.doc, &ROOT, "visits", ObjType::Map)?;
        let o = get_object(self.doc, &map, &id.to_string(), ObjType::Map)?;
        read_visit(self.doc, id, &o).ok()
    }

    /// Live visits, oldest first.
    pub fn visits(&self) -> Vec<Visit> {
        let mut v: Vec<Visit> = self
            .all_visits()
            .into_iter()
            .filter(|v| v.deleted.is_none())
            .collect();
        v.sort_by_key(|v| (v.at, v.id));
        v
    }

    /// Every readable visit, deleted ones included, in key order.
    pub fn all_visits(&self) -> Vec<Visit> {
        self.read_all("visits", read_visit).0
    }

    /// A petition's readable events in list order, each with the actor that
    /// wrote it ([`EventOrigin`]); `None` if there is no such petition.
    pub fn petition_events_with_origin(
        &self,
        petition_id: RecordId,
    ) -> Option<Vec<(PetitionEvent, EventOrigin)>> {
        let map = get_object(self.doc, &ROOT, "petitions", ObjType::Map)?;
        let o = get_object(self.doc, &map, &petition_id.to_string(), ObjType::Map)?;
        let Some(list) = get_object(self.doc, &o, "events", ObjType::List) else {
            return Some(Vec::new());
        };
        Some(
            list_maps(self.doc, &list)
                .iter()
                .filter_map(|e| {
                    let event = read_event(self.doc, e).ok()?;
                    Some((event, event_origin(self.doc, e)?))
                })
                .collect(),
        )
    }

    /// One petition, deleted or not.
    pub fn petition(&self, id: RecordId) -> Option<Petition> {
        let map = get_object(self.doc, &ROOT, "petitions", ObjType::Map)?;
        let o = get_object(self.doc, &map, &id.to_string(), ObjType::Map)?;
        read_petition(self.doc, id, &o).ok()
    }

    /// Live petitions, oldest first.
    pub fn petitions(&self) -> Vec<Petition> {
        let mut v: Vec<Petition> = self
            .all_petitions()
            .into_iter()
            .filter(|p| p.deleted.is_none())
            .collect();
        v.sort_by_key(|p| (p.created_at, p.id));
        v
    }

    /// Every readable petition, deleted ones included, in key order.
    pub fn all_petitions(&self) -> Vec<Petition> {
        self.read_all("petitions", read_petition).0
    }

    /// Records that could not be read (written by a buggy or foreign client),
    /// as `(path, reason)`. They are kept in the document, never dropped.
    pub fn unreadable(&self) -> Vec<(String, String)> {
        let mut out = self.read_all("visits", read_visit).1;
        out.extend(self.read_all("petitions", read_petition).1);
        out
    }

    fn read_all<T>(
        &self,
        key: &str,
        read: fn(&Automerge, RecordId, &ObjId) -> Result<T, String>,
    ) -> (Vec<T>, Vec<(String, String)>) {
        let Some(map) = get_object(self.doc, &ROOT, key, ObjType::Map) else {
            return (Vec::new(), Vec::new());
        };
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for k in self.doc.keys(&map) {
            let path = format!("{key}/{k}");
            let Ok(id) = k.parse::<RecordId>() else {
                bad.push((path, "key is not a UUID".to_owned()));
                continue;
            };
            let Some(o) = get_object(self.doc, &map, &k, ObjType::Map) else {
                bad.push((path, "not a map".to_owned()));
                continue;
            };
            match read(self.doc, id, &o) {
                Ok(r) => ok.push(r),
                Err(reason) => bad.push((path, reason)),
            }
        }
        (ok, bad)
    }
}

fn write_subject(tx: &mut Transaction<'_>, o: &ObjId, s: &Subject) -> Result<(), DocumentError> {
    put_str(tx, o, "subject_kind", s.kind.as_str())?;
    put_str(tx, o, "subject_name", &s.name)?;
    put_opt_str(tx, o, "subject_address", s.address.as_deref())
}

fn write_location(
    tx: &mut Transaction<'_>,
    o: &ObjId,
    loc: Option<GeoPoint>,
) -> Result<(), DocumentError> {
    match loc {
        Some(p) => {
            tx.put(o, "lat", p.lat)?;
            tx.put(o, "lon", p.lon)?;
        }
        None => {
            for k in ["lat", "lon"] {
                if tx.get(o, k)?.is_some() {
                    tx.delete(o, k)?;
                }
            }
        }
    }
    Ok(())
}

fn write_aid(tx: &mut Transaction<'_>, o: &ObjId, a: &Aid) -> Result<(), DocumentError> {
    put_i64(tx, o, "aid_fen", a.money_fen)?;
    put_str(tx, o, "aid_goods", &a.goods)
}

fn write_applicant(
    tx: &mut Transaction<'_>,
    o: &ObjId,
    a: &Applicant,
) -> Result<(), DocumentError> {
    put_str(tx, o, "applicant_name", &a.name)?;
    put_opt_str(tx, o, "applicant_phone", a.phone.as_deref())?;
    put_opt_str(tx, o, "applicant_address", a.address.as_deref())
}

fn write_event(
    tx: &mut Transaction<'_>,
    events: &ObjId,
    id: RecordId,
    edit: &Edit,
    kind: &PetitionEventKind,
) -> Result<(), DocumentError> {
    let len = tx.length(events);
    let e = tx.insert_object(events, len, ObjType::Map)?;
    put_str(tx, &e, "id", &id.to_string())?;
    put_time(tx, &e, "at", edit.at)?;
    put_str(tx, &e, "by", &edit.author)?;
    put_str(tx, &e, "type", kind.type_name())?;
    match kind {
        PetitionEventKind::Created {
            responsible,
            level,
            deadline,
        } => {
            put_str(tx, &e, "responsible", responsible)?;
            put_str(tx, &e, "level", level.as_str())?;
            if let Some(d) = deadline {
                put_str(tx, &e, "deadline", &format_date(*d))?;
            }
        }
        PetitionEventKind::Assigned { to } => put_str(tx, &e, "to", to)?,
        PetitionEventKind::DeadlineSet { deadline } => {
            put_str(tx, &e, "deadline", &format_date(*deadline))?
        }
        PetitionEventKind::Escalated { to, note } => {
            put_str(tx, &e, "to", to.as_str())?;
            put_str(tx, &e, "note", note)?;
        }
        PetitionEventKind::Rated { satisfaction } => {
            put_str(tx, &e, "satisfaction", satisfaction.as_str())?
        }
        PetitionEventKind::Reopened { reason } => put_str(tx, &e, "reason", reason)?,
        PetitionEventKind::ProgressNoted { note }
        | PetitionEventKind::Supervised { note }
        | PetitionEventKind::Resolved { note }
        | PetitionEventKind::FeedbackGiven { note }
        | PetitionEventKind::Closed { note } => put_str(tx, &e, "note", note)?,
    }
    Ok(())
}

fn parse_enum<T: std::str::FromStr>(doc: &Automerge, o: &ObjId, key: &str) -> Result<T, String> {
    let s = get_string(doc, o, key).ok_or_else(|| format!("missing {key}"))?;
    s.parse().map_err(|_| format!("unknown {key} {s:?}"))
}

fn read_visit(doc: &Automerge, id: RecordId, o: &ObjId) -> Result<Visit, String> {
    let kind: VisitKind = parse_enum(doc, o, "kind")?;
    let at = get_time(doc, o, "at").ok_or("missing at")?;
    let answers = match get_object(doc, o, "answers", ObjType::Map) {
        Some(a) => SixQuestions::from_array(
            SixQuestions::FIELDS.map(|f| get_string(doc, &a, f).unwrap_or_default()),
        ),
        None => SixQuestions::default(),
    };
    let location = match (get_f64(doc, o, "lat"), get_f64(doc, o, "lon")) {
        (Some(lat), Some(lon)) => Some(GeoPoint { lat, lon }),
        _ => None,
    };
    Ok(Visit {
        id,
        kind,
        at,
        place: get_string(doc, o, "place").unwrap_or_default(),
        subject: Subject {
            kind: parse_enum(doc, o, "subject_kind").unwrap_or(SubjectKind::Household),
            name: get_string(doc, o, "subject_name").unwrap_or_default(),
            address: get_string(doc, o, "subject_address"),
        },
        tags: get_set(doc, o, "tags"),
        participants: get_set(doc, o, "participants"),
        answers,
        notes: get_string(doc, o, "notes").unwrap_or_default(),
        location,
        aid: Aid {
            money_fen: get_i64(doc, o, "aid_fen").unwrap_or(0),
            goods: get_string(doc, o, "aid_goods").unwrap_or_default(),
        },
        resolved_on_spot: get_string_list(doc, o, "resolved_on_spot"),
        petition_ids: get_id_set(doc, o, "petition_ids"),
        card_ids: get_id_set(doc, o, "card_ids"),
        created_at: get_time(doc, o, "created_at").unwrap_or(at),
        created_by: get_string(doc, o, "created_by").unwrap_or_default(),
        deleted: get_tombstone(doc, o),
    })
}

fn read_event(doc: &Automerge, e: &ObjId) -> Result<PetitionEvent, String> {
    let id = get_string(doc, e, "id")
        .and_then(|s| s.parse().ok())
        .ok_or("event without a valid id")?;
    let at: Timestamp = get_time(doc, e, "at").ok_or("event without a time")?;
    let ty = get_string(doc, e, "type").ok_or("event without a type")?;
    let s = |k: &str| get_string(doc, e, k).unwrap_or_default();
    let date = |k: &str| get_date(doc, e, k);
    let kind = match ty.as_str() {
        "created" => PetitionEventKind::Created {
            responsible: s("responsible"),
            level: parse_enum(doc, e, "level").unwrap_or(Level::Village),
            deadline: date("deadline"),
        },
        "assigned" => PetitionEventKind::Assigned { to: s("to") },
        "deadline_set" => PetitionEventKind::DeadlineSet {
            deadline: date("deadline").ok_or("deadline_set without a valid deadline")?,
        },
        "escalated" => PetitionEventKind::Escalated {
            to: parse_enum(doc, e, "to")?,
            note: s("note"),
        },
        "progress_noted" => PetitionEventKind::ProgressNoted { note: s("note") },
        "supervised" => PetitionEventKind::Supervised { note: s("note") },
        "resolved" => PetitionEventKind::Resolved { note: s("note") },
        "feedback_given" => PetitionEventKind::FeedbackGiven { note: s("note") },
        "rated" => PetitionEventKind::Rated {
            satisfaction: parse_enum::<Satisfaction>(doc, e, "satisfaction")?,
        },
        "closed" => PetitionEventKind::Closed { note: s("note") },
        "reopened" => PetitionEventKind::Reopened {
            reason: s("reason"),
        },
        other => return Err(format!("unknown event type {other:?}")),
    };
    Ok(PetitionEvent {
        id,
        at,
        by: s("by"),
        kind,
    })
}

fn read_petition(doc: &Automerge, id: RecordId, o: &ObjId) -> Result<Petition, String> {
    let category: Category = parse_enum(doc, o, "category")?;
    let created_at = get_time(doc, o, "created_at").ok_or("missing created_at")?;
    let created_by = get_string(doc, o, "created_by").unwrap_or_default();
    // An unreadable event is left out of the derived state but stays in the
    // document; `unreadable()` is about whole records.
    let mut events: Vec<PetitionEvent> = get_object(doc, o, "events", ObjType::List)
        .map(|l| {
            list_maps(doc, &l)
                .iter()
                .filter_map(|e| read_event(doc, e).ok())
                .collect()
        })
        .unwrap_or_default();
    events.sort_by_key(|e| (e.at, e.id));
    let state = PetitionState::derive(&created_by, &events);
    Ok(Petition {
        id,
        visit_id: get_string(doc, o, "visit_id").and_then(|s| s.parse().ok()),
        applicant: Applicant {
            name: get_string(doc, o, "applicant_name").unwrap_or_default(),
            phone: get_string(doc, o, "applicant_phone"),
            address: get_string(doc, o, "applicant_address"),
        },
        matter: get_string(doc, o, "matter").unwrap_or_default(),
        category,
        created_at,
        created_by,
        events,
        deleted: get_tombstone(doc, o),
        state,
    })
}
