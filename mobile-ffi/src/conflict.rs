//! The conflicts view: fields two devices set concurrently.

use sync_core::ConflictValue;

/// A field with several concurrent values. Nothing was dropped: a person
/// may settle it when convenient, or leave it (the first value is shown).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Conflict {
    pub document_id: String,
    /// Where the field is, from the root (e.g. `["visits", "<id>", "place"]`).
    pub path: Vec<String>,
    /// Every value as text, the one shown first.
    pub values: Vec<String>,
}

impl Conflict {
    pub(crate) fn from_core(document_id: String, c: sync_core::Conflict) -> Self {
        Self {
            document_id,
            path: c.path,
            values: c.values.into_iter().map(value_text).collect(),
        }
    }
}

fn value_text(v: ConflictValue) -> String {
    match v {
        ConflictValue::Text(s) | ConflictValue::Other(s) => s,
        ConflictValue::Int(i) => i.to_string(),
        ConflictValue::Float(f) => f.to_string(),
        ConflictValue::Bool(b) => b.to_string(),
        ConflictValue::Null => "null".to_owned(),
        ConflictValue::Object => "{…}".to_owned(),
    }
}
