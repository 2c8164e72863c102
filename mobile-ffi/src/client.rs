//! `DiaryClient`: the one object the app holds.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sync_core::records::petition::{self as core_petition, PetitionEventKind};
use sync_core::records::service_card as core_card;
use sync_core::records::visit as core_visit;
use sync_core::{ContactsDocument, DiaryDocument, Edit, RecordId};

use crate::clock::{self, new_id, year_of};
use crate::core::{Core, Target, lock};
use crate::error::parse_id;
use crate::observer::SyncObserver;
use crate::records::petition::{
    Level, NewPetition, Petition, PetitionEdit, PetitionEvent, PetitionQuery, Satisfaction,
};
use crate::records::service_card::{NewServiceCard, ServiceCard, ServiceCardEdit};
use crate::records::visit::{NewVisit, Visit, VisitEdit, VisitQuery};
use crate::store::{IndexRow, PetitionFilter, VisitFilter, keys};
use crate::{ClientConfig, ClientError, Conflict, Me, Progress, SyncReport, SyncStatus};

/// A cadre's diary on this phone: the local store, offline edits and reads,
/// and `sync_now`. Thread-safe; one per data directory.
#[derive(Debug, uniffi::Object)]
pub struct DiaryClient {
    inner: Arc<Core>,
}

fn not_found(record: &str, id: RecordId) -> ClientError {
    ClientError::NotFound {
        record: record.to_owned(),
        id: id.to_string(),
    }
}

fn document_error_or_deleted(record: &str, id: RecordId) -> ClientError {
    ClientError::Deleted {
        record: record.to_owned(),
        id: id.to_string(),
    }
}

impl DiaryClient {
    /// The document holding a record, from the index.
    fn located(
        &self,
        table: &'static str,
        record: &str,
        id: RecordId,
    ) -> Result<Target, ClientError> {
        self.inner.refresh_indexes()?;
        lock(&self.inner.store)
            .document_of(table, id)?
            .map(Target::Existing)
            .ok_or_else(|| not_found(record, id))
    }

    /// Changes visit `id` in the diary that holds it: `change` writes the
    /// change, and the visit as it then stands is indexed and returned.
    fn change_visit(
        &self,
        id: RecordId,
        change: impl FnOnce(&mut DiaryDocument, &Edit) -> Result<(), ClientError>,
    ) -> Result<core_visit::Visit, ClientError> {
        let target = self.located("visits", "visit", id)?;
        self.inner.edit(target, |doc, e| {
            Core::with_diary(doc, |diary| {
                change(diary, e)?;
                let v = diary.visit(id).ok_or_else(|| not_found("visit", id))?;
                Ok((v.clone(), vec![IndexRow::Visit(v)]))
            })
        })
    }

    /// As [`Self::change_visit`] for petition `id`.
    fn change_petition(
        &self,
        id: RecordId,
        change: impl FnOnce(&mut DiaryDocument, &Edit) -> Result<(), ClientError>,
    ) -> Result<core_petition::Petition, ClientError> {
        let target = self.located("petitions", "petition", id)?;
        self.inner.edit(target, |doc, e| {
            Core::with_diary(doc, |diary| {
                change(diary, e)?;
                let p = diary
                    .petition(id)
                    .ok_or_else(|| not_found("petition", id))?;
                Ok((p.clone(), vec![IndexRow::Petition(p)]))
            })
        })
    }

    /// As [`Self::change_visit`] for service card `id`, in the contacts.
    fn change_card(
        &self,
        id: RecordId,
        change: impl FnOnce(&mut ContactsDocument, &Edit) -> Result<(), ClientError>,
    ) -> Result<core_card::ServiceCard, ClientError> {
        let target = self.located("cards", "service card", id)?;
        self.inner.edit(target, |doc, e| {
            Core::with_contacts(doc, |contacts| {
                change(contacts, e)?;
                let c = contacts
                    .card(id)
                    .ok_or_else(|| not_found("service card", id))?;
                Ok((c.clone(), vec![IndexRow::Card(c)]))
            })
        })
    }

    /// Appends an event to a petition's history.
    fn petition_event(
        &self,
        petition_id: &str,
        kind: PetitionEventKind,
    ) -> Result<Petition, ClientError> {
        let id = parse_id("petition_id", petition_id)?;
        let petition = self.change_petition(id, |diary, edit| {
            Ok(diary.record_petition_event(edit, id, new_id(), &kind)?)
        })?;
        Ok(Petition::from_core(petition, clock::today()))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl DiaryClient {
    /// Opens (or creates) the store in `config.data_dir`. A damaged store is
    /// `CorruptStore`, and is left untouched.
    #[uniffi::constructor]
    pub fn open(config: ClientConfig) -> Result<Arc<Self>, ClientError> {
        Ok(Arc::new(Self {
            inner: Arc::new(Core::open(config)?),
        }))
    }

    // ----- session -----

    /// Logs in and keeps the tokens in the store. Logging in as someone
    /// else on a phone with another cadre's unsynced edits is refused
    /// (field `username`) rather than losing them.
    pub async fn login(&self, username: String, password: String) -> Result<Me, ClientError> {
        if username.trim().is_empty() {
            return Err(ClientError::invalid("username", "username is required"));
        }
        let now = clock::now().millis();
        let tokens = self
            .inner
            .http
            .login(&username, &password, &self.inner.config.device_id, now)
            .await?;
        let me = self.inner.http.me(&tokens.access).await?;
        let profile = serde_json::to_string(&me).map_err(ClientError::internal)?;
        let mut docs = lock(&self.inner.docs);
        let mut store = lock(&self.inner.store);
        let previous = store.setting(keys::USERNAME)?;
        if previous.as_deref().is_some_and(|p| p != me.username) {
            if store.pending_changes()? > 0 {
                return Err(ClientError::invalid(
                    "username",
                    format!(
                        "this phone holds unsynced edits of {}; they must log in and sync first",
                        previous.unwrap_or_default()
                    ),
                ));
            }
            // Another cadre's documents are on their server; start empty.
            store.wipe()?;
            docs.clear();
        }
        store.set_settings(&[
            (keys::USERNAME, Some(&me.username)),
            (keys::PROFILE, Some(&profile)),
            (keys::ACCESS_TOKEN, Some(&tokens.access)),
            (
                keys::ACCESS_EXPIRES_MS,
                Some(&tokens.access_expires_ms.to_string()),
            ),
            (keys::REFRESH_TOKEN, Some(&tokens.refresh)),
        ])?;
        Ok(me)
    }

    /// Revokes the login on the server (when reachable) and forgets the
    /// tokens. The documents stay, so logging in again continues where the
    /// cadre left off; unsynced edits are synced after that login.
    pub async fn logout(&self) -> Result<(), ClientError> {
        let refresh = lock(&self.inner.store).setting(keys::REFRESH_TOKEN)?;
        if let Some(refresh) = refresh {
            // Offline: the token is forgotten here and expires there.
            let _ = self.inner.http.logout(&refresh).await;
        }
        lock(&self.inner.store).set_settings(&[
            (keys::ACCESS_TOKEN, None),
            (keys::ACCESS_EXPIRES_MS, None),
            (keys::REFRESH_TOKEN, None),
        ])
    }

    /// Who is logged in, as the server said at login (works offline).
    pub fn me(&self) -> Result<Me, ClientError> {
        let store = lock(&self.inner.store);
        if store.setting(keys::REFRESH_TOKEN)?.is_none() {
            return Err(ClientError::NotLoggedIn);
        }
        let profile = store
            .setting(keys::PROFILE)?
            .ok_or(ClientError::NotLoggedIn)?;
        serde_json::from_str(&profile).map_err(|e| ClientError::CorruptStore {
            detail: format!("stored profile: {e}"),
        })
    }

    // ----- visits -----

    /// Records a visit in the diary of its year; returns it.
    pub fn add_visit(&self, visit: NewVisit) -> Result<Visit, ClientError> {
        let v = visit.into_core(new_id())?;
        let year = year_of(v.at);
        let added = self.inner.edit(Target::Diary(year), |doc, edit| {
            Core::with_diary(doc, |diary| {
                let id = diary.add_visit(edit, &v)?;
                let added = diary.visit(id).ok_or_else(|| not_found("visit", id))?;
                Ok((added.clone(), vec![IndexRow::Visit(added)]))
            })
        })?;
        Ok(added.into())
    }

    /// Changes a visit; answers and notes merge with other devices' edits.
    pub fn edit_visit(&self, visit_id: String, edit: VisitEdit) -> Result<Visit, ClientError> {
        let id = parse_id("visit_id", &visit_id)?;
        let updated = self.change_visit(id, |diary, e| {
            let current = diary.visit(id).ok_or_else(|| not_found("visit", id))?;
            if current.deleted.is_some() {
                return Err(document_error_or_deleted("visit", id));
            }
            Ok(diary.update_visit(e, id, &edit.into_core(&current)?)?)
        })?;
        Ok(updated.into())
    }

    /// Deletes a visit (a tombstone: it stays in history and in the ledger's
    /// audit, and its petitions stay open).
    pub fn delete_visit(&self, visit_id: String) -> Result<(), ClientError> {
        let id = parse_id("visit_id", &visit_id)?;
        self.change_visit(id, |diary, e| Ok(diary.delete_visit(e, id)?))
            .map(drop)
    }

    /// One visit (deleted ones too).
    pub fn visit(&self, visit_id: String) -> Result<Visit, ClientError> {
        let id = parse_id("visit_id", &visit_id)?;
        self.inner.refresh_indexes()?;
        lock(&self.inner.store)
            .visit(id)?
            .map(Into::into)
            .ok_or_else(|| not_found("visit", id))
    }

    /// Visits matching `query`, newest first.
    pub fn list_visits(&self, query: VisitQuery) -> Result<Vec<Visit>, ClientError> {
        self.inner.refresh_indexes()?;
        let filter = VisitFilter {
            from_ms: query.from_ms,
            until_ms: query.until_ms,
            kind: query.kind.map(Into::into),
            text: query.text,
            include_deleted: query.include_deleted,
            limit: query.limit,
            offset: query.offset,
        };
        Ok(lock(&self.inner.store)
            .visits(&filter)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    // ----- petitions -----

    /// Records a petition: in the diary of the visit it was raised in, or
    /// this year's diary.
    pub fn raise_petition(&self, petition: NewPetition) -> Result<Petition, ClientError> {
        let p = petition.into_core(new_id(), new_id())?;
        let target = match p.visit_id {
            Some(v) => self.located("visits", "visit", v)?,
            None => Target::Diary(year_of(clock::now())),
        };
        let added = self.inner.edit(target, |doc, edit| {
            Core::with_diary(doc, |diary| {
                let id = diary.add_petition(edit, &p)?;
                let added = diary
                    .petition(id)
                    .ok_or_else(|| not_found("petition", id))?;
                let mut rows = vec![IndexRow::Petition(added.clone())];
                if let Some(visit) = p.visit_id.and_then(|v| diary.visit(v)) {
                    rows.push(IndexRow::Visit(visit));
                }
                Ok((added, rows))
            })
        })?;
        Ok(Petition::from_core(added, clock::today()))
    }

    /// Changes a petition's applicant, matter or category.
    pub fn edit_petition(
        &self,
        petition_id: String,
        edit: PetitionEdit,
    ) -> Result<Petition, ClientError> {
        let id = parse_id("petition_id", &petition_id)?;
        let p = self.change_petition(id, |diary, e| {
            let current = diary
                .petition(id)
                .ok_or_else(|| not_found("petition", id))?;
            if current.deleted.is_some() {
                return Err(document_error_or_deleted("petition", id));
            }
            Ok(diary.update_petition(e, id, &edit.into_core(&current))?)
        })?;
        Ok(Petition::from_core(p, clock::today()))
    }

    /// Deletes a petition entered by mistake (a tombstone).
    pub fn delete_petition(&self, petition_id: String) -> Result<(), ClientError> {
        let id = parse_id("petition_id", &petition_id)?;
        self.change_petition(id, |diary, e| Ok(diary.delete_petition(e, id)?))
            .map(drop)
    }

    /// Notes progress on a petition (办理进展).
    pub fn note_progress(
        &self,
        petition_id: String,
        note: String,
    ) -> Result<Petition, ClientError> {
        self.petition_event(&petition_id, PetitionEventKind::ProgressNoted { note })
    }

    /// Applies to escalate a petition to a higher level.
    pub fn request_escalation(
        &self,
        petition_id: String,
        to: Level,
        note: String,
    ) -> Result<Petition, ClientError> {
        self.petition_event(
            &petition_id,
            PetitionEventKind::Escalated {
                to: to.into(),
                note,
            },
        )
    }

    /// Marks a petition solved.
    pub fn mark_resolved(
        &self,
        petition_id: String,
        note: String,
    ) -> Result<Petition, ClientError> {
        self.petition_event(&petition_id, PetitionEventKind::Resolved { note })
    }

    /// Records the feedback given to the resident (反馈).
    pub fn record_feedback(
        &self,
        petition_id: String,
        note: String,
    ) -> Result<Petition, ClientError> {
        self.petition_event(&petition_id, PetitionEventKind::FeedbackGiven { note })
    }

    /// Records the resident's satisfaction (满意度).
    pub fn record_satisfaction(
        &self,
        petition_id: String,
        satisfaction: Satisfaction,
    ) -> Result<Petition, ClientError> {
        self.petition_event(
            &petition_id,
            PetitionEventKind::Rated {
                satisfaction: satisfaction.into(),
            },
        )
    }

    /// One petition.
    pub fn petition(&self, petition_id: String) -> Result<Petition, ClientError> {
        let id = parse_id("petition_id", &petition_id)?;
        self.inner.refresh_indexes()?;
        lock(&self.inner.store)
            .petition(id)?
            .map(|p| Petition::from_core(p, clock::today()))
            .ok_or_else(|| not_found("petition", id))
    }

    /// A petition's history, oldest first.
    pub fn petition_history(&self, petition_id: String) -> Result<Vec<PetitionEvent>, ClientError> {
        let id = parse_id("petition_id", &petition_id)?;
        self.inner.refresh_indexes()?;
        let p = lock(&self.inner.store)
            .petition(id)?
            .ok_or_else(|| not_found("petition", id))?;
        Ok(p.events.into_iter().map(Into::into).collect())
    }

    /// Petitions matching `query`, newest first.
    pub fn list_petitions(&self, query: PetitionQuery) -> Result<Vec<Petition>, ClientError> {
        self.inner.refresh_indexes()?;
        let today = clock::today();
        let filter = PetitionFilter {
            from_ms: query.from_ms,
            until_ms: query.until_ms,
            category: query.category.map(Into::into),
            status: query.status.map(Into::into),
            overdue_on: if query.overdue_only { today } else { None },
            text: query.text,
            limit: query.limit,
            offset: query.offset,
        };
        Ok(lock(&self.inner.store)
            .petitions(&filter)?
            .into_iter()
            .map(|p| Petition::from_core(p, today))
            .collect())
    }

    // ----- service cards -----

    /// Records a service card handed out.
    pub fn add_service_card(&self, card: NewServiceCard) -> Result<ServiceCard, ClientError> {
        let c = card.into_core(new_id());
        let added = self.inner.edit(Target::Contacts, |doc, edit| {
            Core::with_contacts(doc, |contacts| {
                let id = contacts.add_card(edit, &c)?;
                let added = contacts
                    .card(id)
                    .ok_or_else(|| not_found("service card", id))?;
                Ok((added.clone(), vec![IndexRow::Card(added)]))
            })
        })?;
        Ok(added.into())
    }

    /// Changes a card.
    pub fn edit_service_card(
        &self,
        card_id: String,
        edit: ServiceCardEdit,
    ) -> Result<ServiceCard, ClientError> {
        let id = parse_id("card_id", &card_id)?;
        let update = edit.into();
        let card = self.change_card(id, |contacts, e| Ok(contacts.update_card(e, id, &update)?))?;
        Ok(card.into())
    }

    /// Deletes a card (a tombstone).
    pub fn delete_service_card(&self, card_id: String) -> Result<(), ClientError> {
        let id = parse_id("card_id", &card_id)?;
        self.change_card(id, |contacts, e| Ok(contacts.delete_card(e, id)?))
            .map(drop)
    }

    /// Records a follow-up with a card holder.
    pub fn add_follow_up(&self, card_id: String, note: String) -> Result<ServiceCard, ClientError> {
        let id = parse_id("card_id", &card_id)?;
        let card = self.change_card(id, |contacts, edit| {
            Ok(contacts.add_follow_up(edit, id, new_id(), &note)?)
        })?;
        Ok(card.into())
    }

    /// Live cards, newest first; `text` searches names, phones, notes.
    pub fn list_service_cards(
        &self,
        text: Option<String>,
    ) -> Result<Vec<ServiceCard>, ClientError> {
        self.inner.refresh_indexes()?;
        Ok(lock(&self.inner.store)
            .cards(text.as_deref())?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    // ----- overviews -----

    /// Fields two devices set concurrently, in every document on the phone.
    pub fn conflicts(&self) -> Result<Vec<Conflict>, ClientError> {
        let mut docs = lock(&self.inner.docs);
        let store = lock(&self.inner.store);
        let mut out = Vec::new();
        for stored in store.documents()? {
            Core::load_into(&mut docs, &store, &stored.id)?;
            let Some(doc) = docs.get(&stored.id) else {
                continue;
            };
            let conflicts = match stored.kind.as_str() {
                "diary" => sync_core::DiaryDocument::from_automerge(doc.clone())
                    .map(|d| d.conflicts())
                    .unwrap_or_default(),
                "contacts" => sync_core::ContactsDocument::from_automerge(doc.clone())
                    .map(|c| c.conflicts())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            out.extend(
                conflicts
                    .into_iter()
                    .map(|c| Conflict::from_core(stored.id.to_string(), c)),
            );
        }
        Ok(out)
    }

    /// Settles a conflict by choosing one of its values (an index into
    /// `Conflict.values`); the choice becomes a new edit that supersedes every
    /// concurrent value, on every device after the next sync.
    pub fn settle_conflict(
        &self,
        document_id: String,
        path: Vec<String>,
        choose: u32,
    ) -> Result<(), ClientError> {
        let id: sync_core::DocumentId = document_id
            .parse()
            .map_err(|e| ClientError::invalid("document_id", e))?;
        let no_such = || ClientError::invalid("path", "no such conflict (settled meanwhile?)");
        let choose =
            usize::try_from(choose).map_err(|_| ClientError::invalid("choose", "too large"))?;
        self.inner.edit(Target::Existing(id), |doc, edit| {
            let kind = sync_core::document::read_meta(doc).map(|m| m.kind)?;
            let settle = |conflicts: Vec<sync_core::Conflict>| {
                conflicts
                    .into_iter()
                    .find(|c| c.path == path)
                    .ok_or_else(no_such)
            };
            match kind {
                sync_core::DocumentKind::Diary => Core::with_diary(doc, |d| {
                    let c = settle(d.conflicts())?;
                    Ok(d.settle_conflict(edit, &c, choose)?)
                })?,
                sync_core::DocumentKind::Contacts => Core::with_contacts(doc, |d| {
                    let c = settle(d.conflicts())?;
                    Ok(d.settle_conflict(edit, &c, choose)?)
                })?,
            }
            Ok(((), crate::core::index_rows(doc)))
        })
    }

    /// This year's visits and households against the quota.
    pub fn progress(&self) -> Result<Progress, ClientError> {
        self.inner.refresh_indexes()?;
        let year = year_of(clock::now());
        let (visits, households, petitions, petitions_open) =
            lock(&self.inner.store).year_counts(year)?;
        Ok(Progress {
            year,
            visits,
            households,
            household_quota: crate::progress::HOUSEHOLD_QUOTA,
            petitions,
            petitions_open,
        })
    }

    /// The ids of the documents on this phone (`automerge:<id>` works in any
    /// automerge-repo client).
    pub fn document_ids(&self) -> Result<Vec<String>, ClientError> {
        Ok(lock(&self.inner.store)
            .documents()?
            .into_iter()
            .map(|d| d.id.to_string())
            .collect())
    }

    // ----- sync -----

    /// Syncs every document of the user with the server within
    /// `deadline_ms`, over one connection. Never throws: the report carries
    /// the error kind. Safe to cancel or kill at any point.
    pub async fn sync_now(&self, deadline_ms: u64) -> SyncReport {
        self.inner
            .sync_now(Duration::from_millis(deadline_ms))
            .await
    }

    /// Where syncing stands.
    pub fn sync_status(&self) -> Result<SyncStatus, ClientError> {
        let store = lock(&self.inner.store);
        let ms = |key| -> Result<Option<i64>, ClientError> {
            Ok(store.setting(key)?.and_then(|s| s.parse().ok()))
        };
        let last_error = store
            .setting(keys::LAST_ERROR)?
            .and_then(|s| parse_kind(&s));
        Ok(SyncStatus {
            last_success_ms: ms(keys::LAST_SUCCESS_MS)?,
            last_attempt_ms: ms(keys::LAST_ATTEMPT_MS)?,
            last_error,
            pending_changes: store.pending_changes()?,
            syncing: self.inner.syncing.load(Ordering::SeqCst),
        })
    }

    /// Sets (or with `None` removes) the observer told about changes a sync brought.
    pub fn set_observer(&self, observer: Option<Arc<dyn SyncObserver>>) {
        *lock(&self.inner.observer) = observer;
    }
}

fn parse_kind(s: &str) -> Option<crate::report::SyncErrorKind> {
    use crate::report::SyncErrorKind as K;
    [
        K::NotLoggedIn,
        K::Offline,
        K::Unauthorised,
        K::ServerRefused,
        K::Deadline,
        K::CorruptStore,
        K::Storage,
        K::Internal,
    ]
    .into_iter()
    .find(|k| format!("{k:?}") == s)
}
