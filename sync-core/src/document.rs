//! Documents: a cadre's diary for one year, and a cadre's contacts. Each wraps
//! one automerge document and exposes typed records; every user edit is
//! committed as its own change, carrying its author and time.

/// The methods every typed document shares: loading (with migration),
/// saving, access to the automerge document, and the conflicts view.
macro_rules! typed_document {
    ($ty:ident, $kind:expr, $what:literal) => {
        impl $ty {
            #[doc = concat!("Loads a saved ", $what, ", migrating an older schema forward.")]
            pub fn load(bytes: &[u8], actor: automerge::ActorId) -> Result<Self, DocumentError> {
                Self::from_automerge($crate::document::load_bytes(bytes, actor)?)
            }

            /// Wraps an automerge document, checking its kind and migrating it forward.
            pub fn from_automerge(doc: automerge::Automerge) -> Result<Self, DocumentError> {
                Self::from_automerge_with(doc, schema::MIGRATIONS, schema::CURRENT_SCHEMA)
            }

            /// As [`Self::from_automerge`] with an explicit migration table and
            /// target schema (for testing the migration mechanism).
            #[doc(hidden)]
            pub fn from_automerge_with(
                mut doc: automerge::Automerge,
                migrations: &[schema::Migration],
                target: i64,
            ) -> Result<Self, DocumentError> {
                schema::open(&mut doc, $kind, migrations, target)?;
                Ok(Self { doc })
            }

            /// The whole document, compacted.
            pub fn save(&self) -> Vec<u8> {
                self.doc.save()
            }

            /// The automerge document (for syncing and storage).
            pub fn automerge(&self) -> &automerge::Automerge {
                &self.doc
            }

            /// The automerge document, mutably (for applying sync messages).
            pub fn automerge_mut(&mut self) -> &mut automerge::Automerge {
                &mut self.doc
            }

            /// Unwraps the automerge document.
            pub fn into_automerge(self) -> automerge::Automerge {
                self.doc
            }

            /// The document's root fields. Re-checked on every call because a
            /// sync may have brought changes from a newer app version.
            pub fn meta(&self) -> Result<schema::DocumentMeta, DocumentError> {
                schema::read_meta(&self.doc)
            }

            /// Every field that two devices set concurrently, with all values.
            pub fn conflicts(&self) -> Vec<Conflict> {
                conflicts::find(&self.doc)
            }

            /// Settles a conflict by writing value `choose` of it again, which
            /// supersedes every concurrent value.
            pub fn settle_conflict(
                &mut self,
                edit: &Edit,
                conflict: &Conflict,
                choose: usize,
            ) -> Result<(), DocumentError> {
                conflicts::settle(&mut self.doc, edit, conflict, choose)
            }
        }
    };
}
pub(crate) use typed_document;

mod conflicts;
mod contacts;
mod diary;
mod error;
mod fields;
mod genesis;
mod origin;
mod schema;
mod touched;

pub use conflicts::{Conflict, ConflictValue};
pub use contacts::{ContactsDocument, ContactsView};
pub use diary::{DiaryDocument, DiaryView};
pub use error::DocumentError;
pub use genesis::{contacts_id, derived_for, derived_id, diary_id};
pub use origin::EventOrigin;
pub use schema::{CURRENT_SCHEMA, DocumentKind, DocumentMeta, Migration, read_meta};
pub use touched::{Touched, TouchedRecords, touched_by, touched_since};

use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge};

use crate::Edit;

/// Prefix of every change message our code writes; the rest names the action
/// and the author, so history can be read back ([`change_author`]).
const MESSAGE_AUTHOR_SEPARATOR: &str = " | by ";

/// Commits `f` as one change made by `edit.author` at `edit.at`. On error the
/// transaction is rolled back and nothing is written.
pub(crate) fn commit<O>(
    doc: &mut Automerge,
    edit: &Edit,
    action: &str,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<O, DocumentError>,
) -> Result<O, DocumentError> {
    let message = format!("{action}{MESSAGE_AUTHOR_SEPARATOR}{}", edit.author);
    let seconds = edit.at.seconds();
    doc.transact_with(
        |_| {
            CommitOptions::default()
                .with_message(message)
                .with_time(seconds)
        },
        f,
    )
    .map(|ok| ok.result)
    .map_err(|failure| failure.error)
}

/// The author recorded in a change message written by this crate.
pub fn change_author(message: &str) -> Option<&str> {
    message
        .rsplit_once(MESSAGE_AUTHOR_SEPARATOR)
        .map(|(_, author)| author)
}

/// Loads automerge bytes with the given actor. A corrupt file is an error,
/// never a panic.
pub(crate) fn load_bytes(bytes: &[u8], actor: ActorId) -> Result<Automerge, DocumentError> {
    Automerge::load(bytes)
        .map(|d| d.with_actor(actor))
        .map_err(|e| DocumentError::Load(Box::new(e)))
}
