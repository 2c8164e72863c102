//! Reading and writing record fields in automerge maps. Readers are lenient
//! about what another client may have written (a string where we write text, a
//! timestamp where we write an integer) and never panic on what they find.

use std::collections::BTreeSet;

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value};

use crate::{RecordId, Timestamp};

use super::DocumentError;

/// A string field: a scalar string or an automerge text object.
pub(crate) fn get_string<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Str(s) => Some(s.to_string()),
            _ => None,
        },
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        _ => None,
    }
}

pub(crate) fn get_i64<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Some(*i),
            ScalarValue::Uint(u) => i64::try_from(*u).ok(),
            ScalarValue::F64(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn get_f64<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<f64> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::F64(f) => Some(*f),
            ScalarValue::Int(i) => Some(*i as f64),
            ScalarValue::Uint(u) => Some(*u as f64),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn get_bool<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<bool> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => match s.as_ref() {
            ScalarValue::Boolean(b) => Some(*b),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn get_time<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<Timestamp> {
    get_i64(doc, obj, key).map(Timestamp)
}

pub(crate) fn get_date<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<time::Date> {
    get_string(doc, obj, key).and_then(|s| crate::timestamp::parse_date(&s))
}

pub(crate) fn get_object<R: ReadDoc>(
    doc: &R,
    obj: &ObjId,
    key: &str,
    ty: ObjType,
) -> Option<ObjId> {
    match doc.get(obj, key).ok()?? {
        (Value::Object(t), id) if t == ty => Some(id),
        _ => None,
    }
}

/// A map used as a set: the keys whose value is `true`.
pub(crate) fn get_set<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> BTreeSet<String> {
    let Some(map) = get_object(doc, obj, key, ObjType::Map) else {
        return BTreeSet::new();
    };
    doc.keys(&map)
        .filter(|k| get_bool(doc, &map, k) == Some(true))
        .collect()
}

pub(crate) fn get_id_set<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> BTreeSet<RecordId> {
    get_set(doc, obj, key)
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// A list of strings (or texts).
pub(crate) fn get_string_list<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Vec<String> {
    let Some(list) = get_object(doc, obj, key, ObjType::List) else {
        return Vec::new();
    };
    (0..doc.length(&list))
        .filter_map(|i| match doc.get(&list, i).ok()?? {
            (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
            (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
            _ => None,
        })
        .collect()
}

/// The maps of a list, in list order.
pub(crate) fn list_maps<R: ReadDoc>(doc: &R, list: &ObjId) -> Vec<ObjId> {
    (0..doc.length(list))
        .filter_map(|i| match doc.get(list, i).ok()?? {
            (Value::Object(ObjType::Map), id) => Some(id),
            _ => None,
        })
        .collect()
}

/// The maps of a map, with their keys.
pub(crate) fn map_entries<R: ReadDoc>(doc: &R, map: &ObjId) -> Vec<(String, ObjId)> {
    doc.keys(map)
        .filter_map(|k| get_object(doc, map, &k, ObjType::Map).map(|id| (k, id)))
        .collect()
}

pub(crate) fn put_str(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    v: &str,
) -> Result<(), DocumentError> {
    Ok(tx.put(obj, key, v)?)
}

pub(crate) fn put_opt_str(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    v: Option<&str>,
) -> Result<(), DocumentError> {
    match v {
        Some(v) => put_str(tx, obj, key, v),
        None => {
            if tx.get(obj, key)?.is_some() {
                tx.delete(obj, key)?;
            }
            Ok(())
        }
    }
}

pub(crate) fn put_i64(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    v: i64,
) -> Result<(), DocumentError> {
    Ok(tx.put(obj, key, v)?)
}

pub(crate) fn put_time(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    v: Timestamp,
) -> Result<(), DocumentError> {
    put_i64(tx, obj, key, v.millis())
}

/// Writes free text so that concurrent edits merge: an existing text object is
/// updated with a minimal diff, otherwise a new one is created.
pub(crate) fn put_text(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    v: &str,
) -> Result<(), DocumentError> {
    if let Some(text) = get_object(tx, obj, key, ObjType::Text) {
        if tx.text(&text)? != v {
            tx.update_text(&text, v)?;
        }
    } else {
        let text = tx.put_object(obj, key, ObjType::Text)?;
        tx.splice_text(&text, 0, 0, v)?;
    }
    Ok(())
}

/// Sets keys of a set-map to `true` (adds) or deletes them (removes).
pub(crate) fn update_set<'a>(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    add: impl IntoIterator<Item = &'a str>,
    remove: impl IntoIterator<Item = &'a str>,
) -> Result<(), DocumentError> {
    let map = match get_object(tx, obj, key, ObjType::Map) {
        Some(m) => m,
        None => tx.put_object(obj, key, ObjType::Map)?,
    };
    for a in add {
        tx.put(&map, a, true)?;
    }
    for r in remove {
        if tx.get(&map, r)?.is_some() {
            tx.delete(&map, r)?;
        }
    }
    Ok(())
}

/// Appends strings to a list, creating it if needed.
pub(crate) fn append_strings<'a>(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    items: impl IntoIterator<Item = &'a str>,
) -> Result<(), DocumentError> {
    let list = match get_object(tx, obj, key, ObjType::List) {
        Some(l) => l,
        None => tx.put_object(obj, key, ObjType::List)?,
    };
    for item in items {
        let len = tx.length(&list);
        tx.insert(&list, len, item)?;
    }
    Ok(())
}

/// Marks a record deleted.
pub(crate) fn put_tombstone(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    edit: &crate::Edit,
) -> Result<(), DocumentError> {
    put_time(tx, obj, "deleted_at", edit.at)?;
    put_str(tx, obj, "deleted_by", &edit.author)
}

pub(crate) fn get_tombstone<R: ReadDoc>(doc: &R, obj: &ObjId) -> Option<crate::records::Tombstone> {
    Some(crate::records::Tombstone {
        at: get_time(doc, obj, "deleted_at")?,
        by: get_string(doc, obj, "deleted_by").unwrap_or_default(),
    })
}
