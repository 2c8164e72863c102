//! Who makes an edit, and when.

use crate::Timestamp;

/// The author and time of one user edit. Every edit becomes its own automerge
/// change carrying both, so history says who did what and an incremental sync
/// sends only what changed since the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The username of the person making the edit (a cadre, or a supervisor
    /// acting through the server).
    pub author: String,
    /// When the edit was made, on the editing device's clock.
    pub at: Timestamp,
}

impl Edit {
    /// An edit by `author` at `at`.
    pub fn new(author: impl Into<String>, at: Timestamp) -> Self {
        Self {
            author: author.into(),
            at,
        }
    }
}
