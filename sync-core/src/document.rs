//! Documents: a cadre's diary for one year, and a cadre's contacts. Each wraps
//! one automerge document and exposes typed records; every user edit is
//! committed as its own change, carrying its author and time.

mod conflicts;
mod contacts;
mod diary;
mod error;
mod fields;
mod schema;

pub use conflicts::{Conflict, ConflictValue};
pub use contacts::ContactsDocument;
pub use diary::DiaryDocument;
pub use error::DocumentError;
pub use schema::{CURRENT_SCHEMA, DocumentKind, DocumentMeta, Migration, read_meta};

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
