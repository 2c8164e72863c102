//! The contacts document: one per cadre, holding the service cards handed out.
//!
//! Layout (schema 1):
//! ```text
//! { schema: 1, kind: "contacts", owner, created_at,
//!   cards: { <uuid>: { resident, phone?, address?, household?, handed_over_at,
//!                      pairing_role?, pairing_needy?, notes: text,
//!                      follow_ups: [ { id, at, by, note } ],
//!                      created_at, created_by, deleted_at?, deleted_by? } } }
//! ```

use automerge::transaction::{Transactable, Transaction};
use automerge::{ActorId, Automerge, ObjId, ObjType, ROOT, ReadDoc};

use super::fields::*;
use super::genesis;
use super::schema::{self, DocumentKind};
use super::{Conflict, DocumentError, commit, conflicts};
use crate::records::service_card::{
    FollowUp, NewServiceCard, Pairing, PairingRole, PairingSummary, ServiceCard, ServiceCardUpdate,
};
use crate::validation::{self, MAX_LONG};
use crate::{Edit, RecordId};

const CARD: &str = "service card";

/// A cadre's contacts: the service cards they handed out.
#[derive(Debug, Clone)]
pub struct ContactsDocument {
    doc: Automerge,
}

super::typed_document!(ContactsDocument, DocumentKind::Contacts, "contacts");

impl ContactsDocument {
    /// A new, empty contacts document for `owner`.
    pub fn create(owner: &str, actor: ActorId, edit: &Edit) -> Result<Self, DocumentError> {
        validation::required("owner", owner)?;
        let mut doc = Automerge::new().with_actor(actor);
        commit(&mut doc, edit, "create contacts", |tx| {
            tx.put(ROOT, "schema", schema::CURRENT_SCHEMA)?;
            tx.put(ROOT, "kind", DocumentKind::Contacts.as_str())?;
            tx.put(ROOT, "owner", owner)?;
            put_time(tx, &ROOT, "created_at", edit.at)?;
            tx.put_object(ROOT, "cards", ObjType::Map)?;
            Ok(())
        })?;
        Ok(Self { doc })
    }

    /// `owner`'s contacts as every device creates them: the id is
    /// [`super::contacts_id`] and the first change is the same bytes on every
    /// device, so cards handed out on two phones merge into one document.
    /// Edits after this one are made as `actor`.
    pub fn create_shared(owner: &str, actor: ActorId) -> Result<Self, DocumentError> {
        let genesis = genesis::genesis_actor(DocumentKind::Contacts, owner, None);
        let mut contacts = Self::create(owner, genesis, &genesis::genesis_edit(owner, None))?;
        contacts.doc.set_actor(actor);
        Ok(contacts)
    }

    fn card_obj(&self, id: RecordId) -> Result<ObjId, DocumentError> {
        let not_found = DocumentError::NotFound { record: CARD, id };
        let map = get_object(&self.doc, &ROOT, "cards", ObjType::Map).ok_or(not_found)?;
        let o = get_object(&self.doc, &map, &id.to_string(), ObjType::Map)
            .ok_or(DocumentError::NotFound { record: CARD, id })?;
        if get_tombstone(&self.doc, &o).is_some() {
            return Err(DocumentError::Deleted { record: CARD, id });
        }
        Ok(o)
    }

    /// Records a card handed over.
    pub fn add_card(&mut self, edit: &Edit, c: &NewServiceCard) -> Result<RecordId, DocumentError> {
        c.validate()?;
        commit(&mut self.doc, edit, "add service card", |tx| {
            let cards = match get_object(tx, &ROOT, "cards", ObjType::Map) {
                Some(m) => m,
                None => tx.put_object(ROOT, "cards", ObjType::Map)?,
            };
            let key = c.id.to_string();
            if tx.get(&cards, key.as_str())?.is_some() {
                return Err(DocumentError::Duplicate {
                    record: CARD,
                    id: c.id,
                });
            }
            let o = tx.put_object(&cards, key.as_str(), ObjType::Map)?;
            put_str(tx, &o, "resident", &c.resident)?;
            put_opt_str(tx, &o, "phone", c.phone.as_deref())?;
            put_opt_str(tx, &o, "address", c.address.as_deref())?;
            put_opt_str(tx, &o, "household", c.household.as_deref())?;
            put_time(tx, &o, "handed_over_at", c.handed_over_at)?;
            write_pairing(tx, &o, c.pairing)?;
            put_text(tx, &o, "notes", &c.notes)?;
            tx.put_object(&o, "follow_ups", ObjType::List)?;
            put_time(tx, &o, "created_at", edit.at)?;
            put_str(tx, &o, "created_by", &edit.author)?;
            Ok(c.id)
        })
    }

    /// Changes a card.
    pub fn update_card(
        &mut self,
        edit: &Edit,
        id: RecordId,
        u: &ServiceCardUpdate,
    ) -> Result<(), DocumentError> {
        u.validate()?;
        let o = self.card_obj(id)?;
        commit(&mut self.doc, edit, "update service card", |tx| {
            if let Some(r) = &u.resident {
                put_str(tx, &o, "resident", r)?;
            }
            if let Some(p) = &u.phone {
                put_opt_str(tx, &o, "phone", p.as_deref())?;
            }
            if let Some(a) = &u.address {
                put_opt_str(tx, &o, "address", a.as_deref())?;
            }
            if let Some(h) = &u.household {
                put_opt_str(tx, &o, "household", h.as_deref())?;
            }
            if let Some(p) = u.pairing {
                write_pairing(tx, &o, p)?;
            }
            if let Some(n) = &u.notes {
                put_text(tx, &o, "notes", n)?;
            }
            Ok(())
        })
    }

    /// Appends a follow-up with the card holder.
    pub fn add_follow_up(
        &mut self,
        edit: &Edit,
        card: RecordId,
        id: RecordId,
        note: &str,
    ) -> Result<(), DocumentError> {
        if note.trim().is_empty() {
            return Err(validation::ValidationError::Required { field: "note" }.into());
        }
        validation::max_len("note", note, MAX_LONG)?;
        let o = self.card_obj(card)?;
        commit(&mut self.doc, edit, "add follow-up", |tx| {
            let list = match get_object(tx, &o, "follow_ups", ObjType::List) {
                Some(l) => l,
                None => tx.put_object(&o, "follow_ups", ObjType::List)?,
            };
            let len = tx.length(&list);
            let f = tx.insert_object(&list, len, ObjType::Map)?;
            put_str(tx, &f, "id", &id.to_string())?;
            put_time(tx, &f, "at", edit.at)?;
            put_str(tx, &f, "by", &edit.author)?;
            put_str(tx, &f, "note", note)
        })
    }

    /// Marks a card deleted.
    pub fn delete_card(&mut self, edit: &Edit, id: RecordId) -> Result<(), DocumentError> {
        let o = self.card_obj(id)?;
        commit(&mut self.doc, edit, "delete service card", |tx| {
            put_tombstone(tx, &o, edit)
        })
    }

    /// Reads these contacts in place (see [`ContactsView`]).
    pub fn view(&self) -> ContactsView<'_> {
        ContactsView { doc: &self.doc }
    }

    /// One card, deleted or not.
    pub fn card(&self, id: RecordId) -> Option<ServiceCard> {
        self.view().card(id)
    }

    /// Live cards, in the order they were handed over.
    pub fn cards(&self) -> Vec<ServiceCard> {
        self.view().cards()
    }

    /// Every readable card, deleted ones included.
    pub fn all_cards(&self) -> Vec<ServiceCard> {
        self.view().all_cards()
    }

    /// How the live cards measure against the "123" pairing rule.
    pub fn pairing_summary(&self) -> PairingSummary {
        PairingSummary::of(&self.cards())
    }
}

/// Contacts read in place: the typed reads of [`ContactsDocument`] on an
/// automerge document the caller keeps, without cloning or migrating it.
#[derive(Debug, Clone, Copy)]
pub struct ContactsView<'a> {
    doc: &'a Automerge,
}

impl<'a> ContactsView<'a> {
    /// `doc` as contacts, if it is a contacts document of the current
    /// schema. An older schema needs migrating first
    /// ([`ContactsDocument::from_automerge`] on a copy).
    pub fn new(doc: &'a Automerge) -> Option<Self> {
        let meta = schema::read_meta(doc).ok()?;
        (meta.kind == DocumentKind::Contacts && meta.schema == schema::CURRENT_SCHEMA)
            .then_some(Self { doc })
    }

    /// One card, deleted or not.
    pub fn card(&self, id: RecordId) -> Option<ServiceCard> {
        let map = get_object(self.doc, &ROOT, "cards", ObjType::Map)?;
        let o = get_object(self.doc, &map, &id.to_string(), ObjType::Map)?;
        read_card(self.doc, id, &o)
    }

    /// Live cards, in the order they were handed over.
    pub fn cards(&self) -> Vec<ServiceCard> {
        let mut v: Vec<ServiceCard> = self
            .all_cards()
            .into_iter()
            .filter(|c| c.deleted.is_none())
            .collect();
        v.sort_by_key(|c| (c.handed_over_at, c.id));
        v
    }

    /// Every readable card, deleted ones included.
    pub fn all_cards(&self) -> Vec<ServiceCard> {
        let Some(map) = get_object(self.doc, &ROOT, "cards", ObjType::Map) else {
            return Vec::new();
        };
        map_entries(self.doc, &map)
            .into_iter()
            .filter_map(|(k, o)| read_card(self.doc, k.parse().ok()?, &o))
            .collect()
    }
}

fn write_pairing(
    tx: &mut Transaction<'_>,
    o: &ObjId,
    p: Option<Pairing>,
) -> Result<(), DocumentError> {
    match p {
        Some(p) => {
            put_str(tx, o, "pairing_role", p.role.as_str())?;
            tx.put(o, "pairing_needy", p.needy)?;
        }
        None => {
            put_opt_str(tx, o, "pairing_role", None)?;
            if tx.get(o, "pairing_needy")?.is_some() {
                tx.delete(o, "pairing_needy")?;
            }
        }
    }
    Ok(())
}

fn read_card(doc: &Automerge, id: RecordId, o: &ObjId) -> Option<ServiceCard> {
    let handed_over_at = get_time(doc, o, "handed_over_at")?;
    let pairing = get_string(doc, o, "pairing_role")
        .and_then(|r| r.parse::<PairingRole>().ok())
        .map(|role| Pairing {
            role,
            needy: get_bool(doc, o, "pairing_needy").unwrap_or(false),
        });
    let mut follow_ups: Vec<FollowUp> = get_object(doc, o, "follow_ups", ObjType::List)
        .map(|l| {
            list_maps(doc, &l)
                .iter()
                .filter_map(|f| {
                    Some(FollowUp {
                        id: get_string(doc, f, "id")?.parse().ok()?,
                        at: get_time(doc, f, "at")?,
                        by: get_string(doc, f, "by").unwrap_or_default(),
                        note: get_string(doc, f, "note").unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    follow_ups.sort_by_key(|f| (f.at, f.id));
    Some(ServiceCard {
        id,
        resident: get_string(doc, o, "resident").unwrap_or_default(),
        phone: get_string(doc, o, "phone"),
        address: get_string(doc, o, "address"),
        household: get_string(doc, o, "household"),
        handed_over_at,
        pairing,
        notes: get_string(doc, o, "notes").unwrap_or_default(),
        follow_ups,
        created_at: get_time(doc, o, "created_at").unwrap_or(handed_over_at),
        created_by: get_string(doc, o, "created_by").unwrap_or_default(),
        deleted: get_tombstone(doc, o),
    })
}
