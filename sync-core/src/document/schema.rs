//! Schema versions, document kinds and forward migration.

use automerge::transaction::Transaction;
use automerge::{Automerge, ROOT};

use super::fields::{get_i64, get_string};
use super::{DocumentError, commit};
use crate::{Edit, Timestamp};

/// The schema version this code writes. Opening an older document migrates it
/// forward; a newer one is refused so this code never corrupts what it does
/// not understand.
pub const CURRENT_SCHEMA: i64 = 1;

/// One forward migration step: turns a document of schema `n` into `n + 1`
/// within one transaction. Steps must be idempotent, because two devices may
/// migrate the same document concurrently and both changes will merge.
pub type Migration = fn(&mut Transaction<'_>) -> Result<(), automerge::AutomergeError>;

/// The migrations of this code: `MIGRATIONS[i]` turns schema `i + 1` into
/// `i + 2`. Schema 1 is the first published schema, so there are none yet;
/// the mechanism is exercised by the tests with their own steps.
pub(crate) const MIGRATIONS: &[Migration] = &[];

/// The kinds of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// A cadre's visit diary for one year.
    Diary,
    /// A cadre's contacts (service cards).
    Contacts,
}

impl DocumentKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Diary => "diary",
            Self::Contacts => "contacts",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "diary" => Some(Self::Diary),
            "contacts" => Some(Self::Contacts),
            _ => None,
        }
    }
}

/// What the root of a document says about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocumentMeta {
    pub kind: DocumentKind,
    /// Its schema version.
    pub schema: i64,
    /// The owning cadre's username, as written by the creating client.
    pub owner: String,
    /// The year of a diary.
    pub year: Option<i32>,
}

/// Reads the root fields of any automerge document, e.g. one a client just
/// created on the server. Refuses documents that are not ours or are newer.
pub fn read_meta(doc: &Automerge) -> Result<DocumentMeta, DocumentError> {
    read_meta_upto(doc, CURRENT_SCHEMA)
}

/// Checks a document's kind and schema, and migrates it forward with
/// `migrations` (each step its own change). Returns the metadata after
/// migration.
pub(crate) fn open(
    doc: &mut Automerge,
    expected: DocumentKind,
    migrations: &[Migration],
    target: i64,
) -> Result<DocumentMeta, DocumentError> {
    let meta = read_meta_upto(doc, target)?;
    if meta.kind != expected {
        return Err(DocumentError::WrongKind {
            expected: expected.as_str(),
            found: meta.kind.as_str().to_owned(),
        });
    }
    let mut schema = meta.schema;
    while schema < target {
        let Some(step) = usize::try_from(schema - 1)
            .ok()
            .and_then(|i| migrations.get(i))
        else {
            break;
        };
        let next = schema + 1;
        // Migration changes have no user author and a fixed time: they carry
        // no user data, and a fixed time keeps history free of device clocks.
        let edit = Edit::new("schema-migration", Timestamp(0));
        commit(
            doc,
            &edit,
            &format!("migrate schema {schema} to {next}"),
            |tx| {
                step(tx).map_err(|source| DocumentError::Migration {
                    from: schema,
                    source: Box::new(source),
                })?;
                automerge::transaction::Transactable::put(tx, ROOT, "schema", next)?;
                Ok(())
            },
        )?;
        schema = next;
    }
    read_meta_upto(doc, target)
}

fn read_meta_upto(doc: &Automerge, target: i64) -> Result<DocumentMeta, DocumentError> {
    let kind = get_string(doc, &ROOT, "kind");
    let schema = get_i64(doc, &ROOT, "schema");
    let (Some(kind_s), Some(schema)) = (kind, schema) else {
        return Err(DocumentError::NotOurs);
    };
    if schema > target {
        return Err(DocumentError::NewerSchema {
            found: schema,
            supported: target,
        });
    }
    if schema < 1 {
        return Err(DocumentError::NotOurs);
    }
    let kind = DocumentKind::parse(&kind_s).ok_or(DocumentError::WrongKind {
        expected: "diary or contacts",
        found: kind_s,
    })?;
    Ok(DocumentMeta {
        kind,
        schema,
        owner: get_string(doc, &ROOT, "owner").unwrap_or_default(),
        year: get_i64(doc, &ROOT, "year").and_then(|y| i32::try_from(y).ok()),
    })
}
