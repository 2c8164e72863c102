//! Typed visit diaries, petitions and service cards over automerge documents,
//! and the automerge-repo sync protocol, with no I/O.
//!
//! The core never touches sockets, files, clocks or global randomness: callers
//! pass the time ([`Timestamp`]) and fresh ids in, and get back data to send or
//! store. The server and the phone library carry those out.
//!
//! Two devices of one cadre edit the same diary offline and converge:
//!
//! ```
//! use automerge::ActorId;
//! use sync_core::{DiaryDocument, Edit, RecordId, Timestamp};
//! use sync_core::records::visit::{NewVisit, Subject, SubjectKind, VisitKind};
//!
//! let edit = Edit::new("cadre01", Timestamp(1_795_400_000_000));
//! let mut phone = DiaryDocument::create("cadre01", 2026, ActorId::from([1u8; 16]), &edit)?;
//! // The tablet starts from the phone's copy and goes offline.
//! let mut tablet = DiaryDocument::load(&phone.save(), ActorId::from([2u8; 16]))?;
//!
//! let visit = |n: u8, place: &str| NewVisit {
//!     id: RecordId::from_random_bytes([n; 16]),
//!     kind: VisitKind::HomeVisit,
//!     at: edit.at,
//!     place: place.into(),
//!     subject: Subject { kind: SubjectKind::Household, name: "王秀英".into(), address: None },
//!     tags: Default::default(),
//!     participants: Default::default(),
//!     answers: Default::default(),
//!     notes: String::new(),
//!     location: None,
//!     aid: Default::default(),
//!     resolved_on_spot: vec![],
//! };
//! phone.add_visit(&edit, &visit(10, "李家村三组"))?;
//! tablet.add_visit(&edit, &visit(11, "李家村五组"))?;
//!
//! // Sync both ways (here by exchanging changes directly).
//! let from_tablet = tablet.automerge().save();
//! phone.automerge_mut().load_incremental(&from_tablet)?;
//! let from_phone = phone.automerge().save();
//! tablet.automerge_mut().load_incremental(&from_phone)?;
//!
//! assert_eq!(phone.visits(), tablet.visits());
//! assert_eq!(phone.visits().len(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod document;
mod document_id;
mod edit;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod protocol;
mod record_id;
pub mod records;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamp;
pub mod validation;

pub use automerge;
pub use document::{
    Conflict, ConflictValue, ContactsDocument, ContactsView, DiaryDocument, DiaryView,
    DocumentError, DocumentKind, DocumentMeta, EventOrigin, contacts_id, derived_for, derived_id,
    diary_id,
};
pub use document_id::{DocumentId, DocumentIdError};
pub use edit::Edit;
pub use record_id::RecordId;
pub use timestamp::Timestamp;
pub use validation::ValidationError;

#[cfg(feature = "sqlx")]
#[doc(hidden)]
pub use sqlx as __sqlx;
