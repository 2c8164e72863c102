//! Checks on the changes a sync message carries, made before automerge
//! touches them, so a hostile payload is refused instead of exhausting the
//! server.
//!
//! Two payloads are known to hurt: a DEFLATE-compressed chunk of a few
//! hundred kilobytes that inflates to hundreds of megabytes (automerge
//! inflates it whole), and a document nested so deep that code walking it
//! recursively overflows its stack. So, before a message is applied:
//!
//! - every chunk's header is read here; a compressed change is inflated into
//!   a counting sink that stops at the limit, and the total decoded size of
//!   the message is bounded by the document limit;
//! - whole-document chunks (automerge's "v2" sync messages) are refused: the
//!   server never advertises v2 (`ServerConnection::push` sends no
//!   capability flags), so a
//!   well-behaved peer only ever sends change chunks, whose columns automerge
//!   refuses to see compressed;
//! - the number of operations is bounded (run-length encoding makes millions
//!   of operations cost a few bytes);
//! - the nesting depth of every object the changes create is measured
//!   without recursion and bounded.

use std::collections::HashMap;
use std::io::{self, Write};

use automerge::legacy::{ObjectId, OpType};
use automerge::sync;
use automerge::{ActorId, Automerge, Change, ReadDoc};

/// The leading bytes of every automerge chunk.
const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk types (the byte after the magic and the 4-byte checksum).
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED_CHANGE: u8 = 2;

/// What a sync message may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLimits {
    /// Largest stored document (snapshot plus chunks, or its `save()`).
    pub max_document_bytes: usize,
    /// Total bytes of the message's changes once inflated.
    pub max_decoded_bytes: usize,
    /// Total operations in the message's changes.
    pub max_ops: usize,
    /// Deepest object (an object in the root is at depth 1).
    pub max_depth: usize,
}

impl PayloadLimits {
    /// Limits derived from the server's document limit and nesting limit.
    /// One operation per four bytes of the document limit leaves room for
    /// text typed character by character (about 1.5 bytes a character once
    /// saved) while bounding the memory automerge needs for a message.
    pub fn new(max_document_bytes: usize, max_depth: usize) -> Self {
        PayloadLimits {
            max_document_bytes,
            max_decoded_bytes: max_document_bytes,
            max_ops: (max_document_bytes / 4).max(1024),
            max_depth,
        }
    }
}

/// Why a message's changes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// The changes inflate to more than the limit.
    #[error("changes inflate to more than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The changes hold more operations than the limit.
    #[error("changes hold {ops} operations, more than the limit of {limit}")]
    TooManyOps {
        /// How many were counted (at least).
        ops: usize,
        /// The limit.
        limit: usize,
    },
    /// An object would be nested deeper than the limit.
    #[error("objects nested more than {limit} deep")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A whole-document chunk, which this server does not accept.
    #[error("document chunks are not accepted; send changes (sync message v1)")]
    DocumentChunk,
    /// Bytes that are not a change chunk.
    #[error("unreadable change chunk: {0}")]
    Malformed(String),
}

impl PayloadError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PayloadError::TooLarge { .. } => "too_large",
            PayloadError::TooManyOps { .. } => "too_many_ops",
            PayloadError::TooDeep { .. } => "too_deep",
            PayloadError::DocumentChunk => "document_chunk",
            PayloadError::Malformed(_) => "malformed",
        }
    }
}

/// Checks the changes of `message` against `limits`, given the document
/// (`doc`, before the merge) they would be applied to.
pub fn check(
    doc: &Automerge,
    message: &sync::Message,
    limits: &PayloadLimits,
) -> Result<(), PayloadError> {
    let mut chunks = Vec::new();
    let mut decoded = 0usize;
    for bytes in message.changes.iter() {
        split_chunks(bytes, limits, &mut decoded, &mut chunks)?;
    }
    let mut changes = Vec::with_capacity(chunks.len());
    let mut ops = 0usize;
    for chunk in chunks {
        // Inflating is safe now: the size was measured above.
        let change = Change::try_from(chunk).map_err(|e| PayloadError::Malformed(e.to_string()))?;
        ops = ops.saturating_add(change.len());
        if ops > limits.max_ops {
            return Err(PayloadError::TooManyOps {
                ops,
                limit: limits.max_ops,
            });
        }
        changes.push(change);
    }
    check_depth(doc, &changes, limits.max_depth)
}

/// Splits `bytes` (one or more concatenated chunks) into chunks, adding
/// each one's decoded size to `decoded`.
fn split_chunks<'a>(
    mut bytes: &'a [u8],
    limits: &PayloadLimits,
    decoded: &mut usize,
    out: &mut Vec<&'a [u8]>,
) -> Result<(), PayloadError> {
    let malformed = |what: &str| PayloadError::Malformed(what.to_owned());
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return Err(malformed("missing chunk header"));
        }
        let chunk_type = bytes[8];
        let (len, len_bytes) = uleb128(&bytes[9..]).ok_or_else(|| malformed("bad chunk length"))?;
        let header = 9 + len_bytes;
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| header.checked_add(len))
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| malformed("chunk longer than the message"))?;
        let body = &bytes[header..end];
        let size = match chunk_type {
            CHUNK_DOCUMENT => return Err(PayloadError::DocumentChunk),
            CHUNK_CHANGE => body.len(),
            CHUNK_COMPRESSED_CHANGE => {
                inflated_size(body, limits.max_decoded_bytes.saturating_sub(*decoded))?
            }
            other => return Err(PayloadError::Malformed(format!("chunk type {other}"))),
        };
        *decoded = decoded.saturating_add(header + size);
        if *decoded > limits.max_decoded_bytes {
            return Err(PayloadError::TooLarge {
                limit: limits.max_decoded_bytes,
            });
        }
        out.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    Ok(())
}

/// An unsigned LEB128 number and how many bytes it took.
pub(crate) fn uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f).checked_shl(7 * u32::try_from(i).ok()?)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Counts bytes written to it and fails once there are more than `cap`.
struct CountingSink {
    count: usize,
    cap: usize,
}

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.count = self.count.saturating_add(buf.len());
        if self.count > self.cap {
            return Err(io::Error::other("inflated size over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How many bytes the raw DEFLATE stream `body` inflates to, without ever
/// holding more than a small buffer of it; `TooLarge` past `cap`.
fn inflated_size(body: &[u8], cap: usize) -> Result<usize, PayloadError> {
    let mut decoder = flate2::write::DeflateDecoder::new(CountingSink { count: 0, cap });
    let result = decoder.write_all(body).and_then(|()| decoder.try_finish());
    let count = decoder.get_ref().count;
    match result {
        Ok(()) => Ok(count),
        Err(_) if count > cap => Err(PayloadError::TooLarge { limit: cap }),
        Err(e) => Err(PayloadError::Malformed(format!("bad DEFLATE data: {e}"))),
    }
}

/// Measures how deep the objects `changes` create would be nested, without
/// recursion: objects made by the changes are looked up in a map, objects
/// the document already has by walking their parents (bounded, as the stored
/// document passed this check).
fn check_depth(doc: &Automerge, changes: &[Change], limit: usize) -> Result<(), PayloadError> {
    // Every object the changes create, and the object it is created in.
    let mut parent_of: HashMap<(u64, ActorId), ObjectId> = HashMap::new();
    for change in changes {
        let expanded = expand(change)?;
        let start = expanded.start_op.get();
        for (i, op) in expanded.operations.into_iter().enumerate() {
            if matches!(op.action, OpType::Make(_)) {
                let counter = start.saturating_add(i as u64);
                parent_of.insert((counter, expanded.actor_id.clone()), op.obj);
            }
        }
    }
    let too_deep = PayloadError::TooDeep { limit };
    let mut depth: HashMap<(u64, ActorId), usize> = HashMap::with_capacity(parent_of.len());
    for start in parent_of.keys() {
        if depth.contains_key(start) {
            continue;
        }
        // Climb until the root, an object whose depth is known, or one the
        // document already has; then fill in the depths on the way down.
        let mut chain = vec![start.clone()];
        let base = loop {
            let top = chain.last().expect("chain is never empty");
            match &parent_of[top] {
                ObjectId::Root => break 0,
                ObjectId::Id(id) => {
                    let key = (id.counter(), id.actor().clone());
                    if let Some(d) = depth.get(&key) {
                        break *d;
                    }
                    if parent_of.contains_key(&key) {
                        if chain.len() > limit {
                            return Err(too_deep);
                        }
                        chain.push(key);
                        continue;
                    }
                    break existing_depth(doc, &key, limit);
                }
            }
        };
        for (i, key) in chain.into_iter().rev().enumerate() {
            let d = base + i + 1;
            if d > limit {
                return Err(too_deep);
            }
            depth.insert(key, d);
        }
    }
    Ok(())
}

/// The change's operations spelled out. automerge 0.12 parses a change
/// whose operations name an actor index past the change's actor table, then
/// panics expanding it (it unwraps the actor lookup); such a change is
/// refused here, before automerge applies it.
fn expand(change: &Change) -> Result<automerge::ExpandedChange, PayloadError> {
    std::panic::catch_unwind(|| change.decode()).map_err(|_| {
        PayloadError::Malformed("an operation names an actor the change does not list".to_owned())
    })
}

/// Depth of an object the document already has (0 if it has no such object:
/// automerge then refuses the change itself). Counts at most `limit + 1`.
fn existing_depth(doc: &Automerge, (counter, actor): &(u64, ActorId), limit: usize) -> usize {
    doc.import_obj(&format!("{counter}@{actor}"))
        .ok()
        .and_then(|obj| doc.parents(obj).ok())
        .map_or(0, |parents| parents.take(limit + 1).count())
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ObjType, ROOT};

    use super::*;

    fn limits() -> PayloadLimits {
        PayloadLimits::new(1024 * 1024, 8)
    }

    fn message_with(changes: Vec<Vec<u8>>) -> sync::Message {
        sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: changes.into(),
            flags: None,
            version: sync::MessageVersion::V1,
        }
    }

    fn nested(depth: usize) -> Automerge {
        let mut doc = Automerge::new();
        let mut tx = doc.transaction();
        let mut obj = ROOT;
        for _ in 0..depth {
            obj = tx.put_object(&obj, "a", ObjType::Map).expect("put");
        }
        tx.commit();
        doc
    }

    fn changes_of(doc: &Automerge) -> Vec<Vec<u8>> {
        doc.get_changes(&[])
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect()
    }

    #[test]
    fn ordinary_changes_pass() {
        let doc = nested(8);
        let m = message_with(changes_of(&doc));
        assert_eq!(check(&Automerge::new(), &m, &limits()), Ok(()));
    }

    #[test]
    fn deep_nesting_is_refused_also_below_existing_objects() {
        let deep = nested(9);
        let m = message_with(changes_of(&deep));
        assert_eq!(
            check(&Automerge::new(), &m, &limits()),
            Err(PayloadError::TooDeep { limit: 8 })
        );
        // Depth 6 stored, two more levels fit, three do not.
        let mut doc = nested(6);
        let heads = doc.get_heads();
        let mut fork = doc.fork();
        let mut obj = ROOT;
        for _ in 0..6 {
            obj = fork.get(&obj, "a").expect("get").expect("obj").1;
        }
        let mut tx = fork.transaction();
        let a = tx.put_object(&obj, "b", ObjType::Map).expect("put");
        let b = tx.put_object(&a, "b", ObjType::List).expect("put");
        tx.commit();
        let two: Vec<Vec<u8>> = fork
            .get_changes(&heads)
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        assert_eq!(check(&doc, &message_with(two), &limits()), Ok(()));
        let mut tx = fork.transaction();
        tx.insert_object(&b, 0, ObjType::Text).expect("insert");
        tx.commit();
        let three: Vec<Vec<u8>> = fork
            .get_changes(&heads)
            .into_iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect();
        assert_eq!(
            check(&doc, &message_with(three), &limits()),
            Err(PayloadError::TooDeep { limit: 8 })
        );
        doc.load_incremental(&fork.save_after(&heads))
            .expect("the refused changes are ordinary automerge");
    }

    #[test]
    fn a_deflate_bomb_is_refused_without_inflating_it() {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..8 {
            encoder.write_all(&zeros).expect("compress");
        }
        let body = encoder.finish().expect("compress");
        let mut chunk = MAGIC.to_vec();
        chunk.extend([0, 0, 0, 0, CHUNK_COMPRESSED_CHANGE]);
        let mut len = body.len();
        loop {
            let byte = u8::try_from(len & 0x7f).expect("7 bits");
            len >>= 7;
            if len == 0 {
                chunk.push(byte);
                break;
            }
            chunk.push(byte | 0x80);
        }
        chunk.extend(body);
        assert_eq!(
            check(&Automerge::new(), &message_with(vec![chunk]), &limits()),
            Err(PayloadError::TooLarge { limit: 1024 * 1024 })
        );
    }

    #[test]
    fn document_chunks_and_garbage_are_refused() {
        let doc = nested(2);
        let m = message_with(vec![doc.save()]);
        assert_eq!(
            check(&Automerge::new(), &m, &limits()),
            Err(PayloadError::DocumentChunk)
        );
        let m = message_with(vec![vec![1, 2, 3]]);
        assert!(matches!(
            check(&Automerge::new(), &m, &limits()),
            Err(PayloadError::Malformed(_))
        ));
    }

    /// A change by actor B to a map actor A made, with A removed from the
    /// change's table of other actors (length and checksum made right
    /// again): its operation names actor index 1 in a table of one.
    fn change_naming_a_missing_actor() -> Vec<u8> {
        use sha2::{Digest, Sha256};

        let mut a = Automerge::new().with_actor(ActorId::from([0xaa; 16].as_slice()));
        let mut tx = a.transaction();
        tx.put_object(ROOT, "m", ObjType::Map).expect("map");
        tx.commit();
        let mut b = a.fork().with_actor(ActorId::from([0xbb; 16].as_slice()));
        let map = b.get(ROOT, "m").expect("get").expect("m").1;
        let mut tx = b.transaction();
        tx.put(&map, "k", 1).expect("put");
        tx.commit();
        let raw = b
            .get_last_local_change()
            .expect("change")
            .raw_bytes()
            .to_vec();

        // magic 4 | checksum 4 | type 1 | uleb length | body
        let (len, n) = uleb128(&raw[9..]).expect("length");
        let body = &raw[9 + n..];
        assert_eq!(body.len() as u64, len);
        let mut at = 0;
        let skip_uleb = |at: &mut usize| {
            let (v, n) = uleb128(&body[*at..]).expect("uleb");
            *at += n;
            v
        };
        let deps = skip_uleb(&mut at);
        at += 32 * deps as usize;
        let actor_len = skip_uleb(&mut at);
        at += actor_len as usize;
        skip_uleb(&mut at); // seq
        skip_uleb(&mut at); // start op
        skip_uleb(&mut at); // time (one byte of sleb here, also valid uleb)
        let message_len = skip_uleb(&mut at);
        at += message_len as usize;
        let others_at = at;
        assert_eq!(skip_uleb(&mut at), 1, "one other actor: A");
        let other_len = skip_uleb(&mut at);
        at += other_len as usize;
        let mut new_body = body[..others_at].to_vec();
        new_body.push(0); // no other actors
        new_body.extend_from_slice(&body[at..]);

        let mut hashed = vec![raw[8]];
        let mut length = new_body.len() as u64;
        loop {
            let byte = (length & 0x7f) as u8;
            length >>= 7;
            if length == 0 {
                hashed.push(byte);
                break;
            }
            hashed.push(byte | 0x80);
        }
        hashed.extend_from_slice(&new_body);
        let checksum = Sha256::digest(&hashed);
        let mut out = raw[..4].to_vec();
        out.extend_from_slice(&checksum[..4]);
        out.extend_from_slice(&hashed);
        out
    }

    #[test]
    fn a_change_naming_an_actor_it_does_not_list_is_refused_not_a_panic() {
        let bytes = change_naming_a_missing_actor();
        let change = Change::try_from(bytes.as_slice()).expect("automerge parses it");
        // automerge itself panics expanding it (it unwraps the actor lookup).
        let expanded = std::panic::catch_unwind(|| change.decode());
        assert!(expanded.is_err(), "confirmed: decode() panics on it");

        let doc = Automerge::new();
        let message = sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: vec![bytes].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        match check(&doc, &message, &limits()) {
            Err(PayloadError::Malformed(reason)) => assert!(reason.contains("actor"), "{reason}"),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}
