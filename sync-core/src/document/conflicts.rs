//! Fields that two devices set concurrently. automerge keeps every concurrent
//! value and picks one deterministically as the visible one; this view lists
//! them all so a person can settle them when convenient. Nothing is dropped.

use automerge::transaction::Transactable;
use automerge::{Automerge, ObjId, ObjType, Prop, ReadDoc, ScalarValue, Value};

use super::{DocumentError, commit};
use crate::Edit;

/// Deeper than any record of our schema; bounds the walk over documents
/// written by other clients so a hostile document cannot exhaust the stack.
const MAX_DEPTH: usize = 12;

/// One field with concurrent values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Conflict {
    /// Where the field is, from the root: e.g. `["petitions", "<uuid>", "category"]`.
    pub path: Vec<String>,
    /// Every value, the visible one first.
    pub values: Vec<ConflictValue>,
}

/// One of a conflict's values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ConflictValue {
    /// A string (or a text object's content).
    Text(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Null.
    Null,
    /// A nested map or list.
    Object,
    /// Something else (bytes, counters, values of a future automerge).
    Other(String),
}

impl ConflictValue {
    fn of(doc: &Automerge, v: &Value<'_>, id: &ObjId) -> Self {
        match v {
            Value::Object(ObjType::Text) => doc.text(id).map_or(Self::Object, Self::Text),
            Value::Object(_) => Self::Object,
            Value::Scalar(s) => match s.as_ref() {
                ScalarValue::Str(s) => Self::Text(s.to_string()),
                ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Self::Int(*i),
                ScalarValue::Uint(u) => {
                    i64::try_from(*u).map_or_else(|_| Self::Other(u.to_string()), Self::Int)
                }
                ScalarValue::F64(f) => Self::Float(*f),
                ScalarValue::Boolean(b) => Self::Bool(*b),
                ScalarValue::Null => Self::Null,
                other => Self::Other(other.to_string()),
            },
        }
    }
}

pub(crate) fn find(doc: &Automerge) -> Vec<Conflict> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(doc, &automerge::ROOT, &mut path, 0, &mut out);
    out
}

fn walk(
    doc: &Automerge,
    obj: &ObjId,
    path: &mut Vec<String>,
    depth: usize,
    out: &mut Vec<Conflict>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let props: Vec<Prop> = match doc.object_type(obj) {
        Ok(ObjType::Map) => doc.keys(obj).map(Prop::Map).collect(),
        Ok(ObjType::List) => (0..doc.length(obj)).map(Prop::Seq).collect(),
        _ => return,
    };
    for prop in props {
        let Ok(all) = doc.get_all(obj, prop.clone()) else {
            continue;
        };
        let name = match &prop {
            Prop::Map(k) => k.clone(),
            Prop::Seq(i) => i.to_string(),
        };
        path.push(name);
        if all.len() > 1 {
            // `get_all` lists values in op order; the visible one (what
            // `get` returns) goes first.
            let winner = doc.get(obj, prop.clone()).ok().flatten().map(|(_, id)| id);
            let mut values: Vec<(bool, ConflictValue)> = all
                .iter()
                .map(|(v, id)| (Some(id) == winner.as_ref(), ConflictValue::of(doc, v, id)))
                .collect();
            values.sort_by_key(|(is_winner, _)| !is_winner);
            out.push(Conflict {
                path: path.clone(),
                values: values.into_iter().map(|(_, v)| v).collect(),
            });
        }
        if let Ok(Some((Value::Object(ObjType::Map | ObjType::List), child))) = doc.get(obj, prop) {
            walk(doc, &child, path, depth + 1, out);
        }
        path.pop();
    }
}

/// Re-writes the chosen value so it supersedes the concurrent ones. Only
/// scalar and text values can be chosen; the conflict must still be there.
pub(crate) fn settle(
    doc: &mut Automerge,
    edit: &Edit,
    conflict: &Conflict,
    choose: usize,
) -> Result<(), DocumentError> {
    let current = find(doc);
    let still = current
        .iter()
        .find(|c| c.path == conflict.path)
        .ok_or(DocumentError::NoSuchConflict)?;
    let chosen = still
        .values
        .get(choose)
        .cloned()
        .ok_or(DocumentError::NoSuchConflict)?;
    let (parent_path, key) = conflict
        .path
        .split_at(conflict.path.len().saturating_sub(1));
    let key = key.first().ok_or(DocumentError::NoSuchConflict)?.clone();
    let mut obj = automerge::ROOT;
    for segment in parent_path {
        obj = match doc.get(&obj, segment.as_str())? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => return Err(DocumentError::NoSuchConflict),
        };
    }
    commit(doc, edit, "settle conflict", |tx| {
        match chosen {
            ConflictValue::Text(s) => {
                // A text object is replaced by a fresh one holding the chosen content.
                if matches!(
                    tx.get(&obj, key.as_str())?,
                    Some((Value::Object(ObjType::Text), _))
                ) {
                    let t = tx.put_object(&obj, key.as_str(), ObjType::Text)?;
                    tx.splice_text(&t, 0, 0, &s)?;
                } else {
                    tx.put(&obj, key.as_str(), s)?;
                }
            }
            ConflictValue::Int(i) => tx.put(&obj, key.as_str(), i)?,
            ConflictValue::Float(f) => tx.put(&obj, key.as_str(), f)?,
            ConflictValue::Bool(b) => tx.put(&obj, key.as_str(), b)?,
            ConflictValue::Null => tx.put(&obj, key.as_str(), ScalarValue::Null)?,
            ConflictValue::Object | ConflictValue::Other(_) => {
                return Err(DocumentError::NoSuchConflict);
            }
        }
        Ok(())
    })
}
