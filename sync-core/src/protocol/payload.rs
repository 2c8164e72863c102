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
//! - a whole-document chunk (what automerge sends in a "v2" sync message
//!   when the other side has nothing of the document, or lacks more than a
//!   third of it; `ServerConnection` advertises v2 so a first upload costs
//!   about the document's `save()` size) is read the way automerge will:
//!   its header and column metadata are parsed, each DEFLATE-compressed
//!   column is inflated with the cap that is left, and every column's rows
//!   are counted without expanding their run-length encoding (automerge
//!   expands some columns whole while loading). Only then is it loaded, into
//!   a scratch document apart from the live one (which an empty live
//!   document then takes as it is), and the objects its operations create
//!   are read from its columns for the checks below, without building its
//!   changes again;
//! - the number of operations is bounded (run-length encoding makes millions
//!   of operations cost a few bytes): a change's operations, or the
//!   operations a document chunk holds (all but deletions, which it keeps
//!   as marks on what they delete);
//! - the nesting depth of every object the changes create is measured
//!   without recursion and bounded.
//!
//! What the changes may say (their actors, the owner in the root, what the
//! server wrote) is the caller's to check once they are merged.

use std::collections::HashMap;
use std::io::{self, Write};

use automerge::legacy::{ObjectId, OpType};
use automerge::sync;
use automerge::{
    ActorId, Automerge, Change, LoadOptions, OnPartialLoad, ReadDoc, VerificationMode,
};

/// The leading bytes of every automerge chunk.
pub(crate) const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk types (the byte after the magic and the 4-byte checksum).
pub(crate) const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
pub(crate) const CHUNK_COMPRESSED_CHANGE: u8 = 2;

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
    TooLarge { limit: usize },
    /// The changes hold more operations than the limit.
    #[error("changes hold {ops} operations, more than the limit of {limit}")]
    TooManyOps {
        /// How many were counted (at least).
        ops: usize,
        limit: usize,
    },
    /// An object would be nested deeper than the limit.
    #[error("objects nested more than {limit} deep")]
    TooDeep { limit: usize },
    /// Bytes that are not a readable change or document chunk.
    #[error("unreadable chunk: {0}")]
    Malformed(String),
}

impl PayloadError {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PayloadError::TooLarge { .. } => "too_large",
            PayloadError::TooManyOps { .. } => "too_many_ops",
            PayloadError::TooDeep { .. } => "too_deep",
            PayloadError::Malformed(_) => "malformed",
        }
    }
}

/// Checks the changes of `message` against `limits`, given the document
/// (`doc`, before the merge) they would be applied to. A document chunk's
/// changes count like any others: all of them, as a scratch document
/// loaded from it holds them (`doc` is not touched).
pub fn check(
    doc: &Automerge,
    message: &sync::Message,
    limits: &PayloadLimits,
) -> Result<(), PayloadError> {
    check_keeping(doc, message, limits).map(drop)
}

/// [`check`], giving back the scratch document when the message's changes
/// are one document chunk and nothing else (a first upload): it is that
/// chunk loaded whole, so the caller can take it instead of having
/// automerge load the chunk a second time.
pub(crate) fn check_keeping(
    doc: &Automerge,
    message: &sync::Message,
    limits: &PayloadLimits,
) -> Result<Option<Automerge>, PayloadError> {
    let mut chunks = Vec::new();
    let mut decoded = 0usize;
    for bytes in message.changes.iter() {
        split_chunks(bytes, limits, &mut decoded, &mut chunks)?;
    }
    let mut parent_of: HashMap<ObjKey, Option<ObjKey>> = HashMap::new();
    let mut ops = 0usize;
    let mut count = |n: usize| {
        ops = ops.saturating_add(n);
        if ops > limits.max_ops {
            return Err(PayloadError::TooManyOps {
                ops,
                limit: limits.max_ops,
            });
        }
        Ok(())
    };
    let only_chunk = message.changes.len() == 1 && chunks.len() == 1;
    let mut kept = None;
    for (chunk_type, chunk) in chunks {
        if chunk_type == CHUNK_DOCUMENT {
            // Loaded apart from `doc`: only what passes is merged later.
            if chunk.len() > limits.max_document_bytes {
                return Err(PayloadError::TooLarge {
                    limit: limits.max_document_bytes,
                });
            }
            let scratch = load_document(chunk)?;
            // What the checks need of its operations, from its columns:
            // building its changes again would cost about what loading it did.
            let (rows, objects) = document_objects(chunk, limits.max_decoded_bytes)?;
            count(rows)?;
            parent_of.extend(objects);
            if only_chunk {
                kept = Some(scratch);
            }
            continue;
        }
        // Inflating is safe now: the size was measured above.
        let change = decode_change(chunk)?;
        count(change.len())?;
        change_objects(&change, &mut parent_of)?;
    }
    check_depth(doc, &parent_of, limits.max_depth)?;
    Ok(kept)
}

/// Parses one change chunk. automerge 0.12 holds an operation's counter in
/// 32 bits and unwraps the conversion (`OpId::new`): it panics parsing a
/// change that names a larger counter (as an object, a list element or a
/// predecessor), which is caught here, and panics applying one whose own
/// operations count past it, leaving the document unable to save, which is
/// refused here.
fn decode_change(chunk: &[u8]) -> Result<Change, PayloadError> {
    let change = std::panic::catch_unwind(|| Change::try_from(chunk))
        .map_err(|_| PayloadError::Malformed("change does not parse".to_owned()))?
        .map_err(|e| PayloadError::Malformed(e.to_string()))?;
    if change.max_op() > u64::from(u32::MAX) {
        return Err(PayloadError::Malformed(format!(
            "operation counters run past {}",
            u32::MAX
        )));
    }
    Ok(change)
}

/// Loads one document chunk, whose size and rows [`split_chunks`] bounded,
/// into a document of its own. automerge is not trusted not to panic on
/// hostile bytes: a panic is a malformed chunk.
fn load_document(chunk: &[u8]) -> Result<Automerge, PayloadError> {
    let options = LoadOptions::new()
        .on_partial_load(OnPartialLoad::Error)
        .verification_mode(VerificationMode::Check);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Automerge::load_with_options(chunk, options)
    }))
    .map_err(|_| PayloadError::Malformed("document chunk does not load".to_owned()))?
    .map_err(|e| PayloadError::Malformed(format!("document chunk does not load: {e}")))
}

/// The chunks `bytes` holds (one or more concatenated, as a sync message's
/// entry does: automerge's v2 messages put a whole document, or all their
/// changes, in one entry), each with its type; `None` if it is not a
/// sequence of whole chunks.
pub(crate) fn chunks_of(mut bytes: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (chunk_type, _, end) = chunk_header(bytes).ok()?;
        out.push((chunk_type, &bytes[..end]));
        bytes = &bytes[end..];
    }
    Some(out)
}

/// A chunk's type, where its body starts and where it ends.
fn chunk_header(bytes: &[u8]) -> Result<(u8, usize, usize), PayloadError> {
    let malformed = |what: &str| PayloadError::Malformed(what.to_owned());
    if bytes.len() < 9 || bytes[..4] != MAGIC {
        return Err(malformed("missing chunk header"));
    }
    let (len, len_bytes) = uleb128(&bytes[9..]).ok_or_else(|| malformed("bad chunk length"))?;
    let header = 9 + len_bytes;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| header.checked_add(len))
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| malformed("chunk longer than the message"))?;
    Ok((bytes[8], header, end))
}

/// Splits `bytes` (one or more concatenated chunks) into chunks, adding
/// each one's decoded size to `decoded`.
fn split_chunks<'a>(
    mut bytes: &'a [u8],
    limits: &PayloadLimits,
    decoded: &mut usize,
    out: &mut Vec<(u8, &'a [u8])>,
) -> Result<(), PayloadError> {
    while !bytes.is_empty() {
        let (chunk_type, header, end) = chunk_header(bytes)?;
        let body = &bytes[header..end];
        let cap = limits.max_decoded_bytes.saturating_sub(*decoded);
        let size = match chunk_type {
            CHUNK_DOCUMENT => document_size(body, cap, limits.max_ops)?,
            CHUNK_CHANGE => body.len(),
            CHUNK_COMPRESSED_CHANGE => inflated_size(body, cap)?,
            other => return Err(PayloadError::Malformed(format!("chunk type {other}"))),
        };
        *decoded = decoded.saturating_add(header + size);
        if *decoded > limits.max_decoded_bytes {
            return Err(PayloadError::TooLarge {
                limit: limits.max_decoded_bytes,
            });
        }
        out.push((chunk_type, &bytes[..end]));
        bytes = &bytes[end..];
    }
    Ok(())
}

/// Reads the body of a document chunk the way automerge will
/// (`storage/document.rs`: actors, heads, the change and operation column
/// metadata, the columns, the heads' indices) and returns its size once
/// every DEFLATE-compressed column is inflated; `TooLarge` past `cap`,
/// without inflating more than that. Every column's rows are counted
/// without expanding their run-length encoding, and `TooManyOps` past
/// `max_rows`: automerge expands some columns whole while loading, so a
/// run of a billion repeats in a few bytes must not reach it.
fn document_size(body: &[u8], cap: usize, max_rows: usize) -> Result<usize, PayloadError> {
    let malformed = |what: &str| PayloadError::Malformed(format!("document chunk: {what}"));
    let columns = DocumentBody::read(body)?.columns;
    let mut size = body.len();
    for (spec, data) in columns {
        let inflated;
        let column = if spec & COLUMN_DEFLATE == 0 {
            data
        } else {
            // The column's compressed bytes give way to its inflated ones.
            size = size.saturating_sub(data.len());
            let remaining = cap.saturating_sub(size);
            inflated = inflate_capped(data, remaining)?;
            size = size.saturating_add(inflated.len());
            &inflated[..]
        };
        let rows = column_rows(spec, column).ok_or_else(|| malformed("column encoding"))?;
        if rows > max_rows as u64 {
            return Err(PayloadError::TooManyOps {
                ops: usize::try_from(rows).unwrap_or(usize::MAX),
                limit: max_rows,
            });
        }
    }
    if size > cap {
        return Err(PayloadError::TooLarge { limit: cap });
    }
    Ok(size)
}

/// The bit of a column specification that says its data is DEFLATE-compressed.
const COLUMN_DEFLATE: u32 = 0b1000;

/// The operation columns of a document chunk that say which objects it
/// creates and where (automerge's storage format: a column's id shifted
/// left by 4, then its type: 1 actor index, 2 integer, 3 delta).
const OP_OBJ_ACTOR: u32 = 1;
const OP_OBJ_COUNTER: u32 = 2;
const OP_ID_ACTOR: u32 = (2 << 4) | 1;
const OP_ID_COUNTER: u32 = (2 << 4) | 3;
const OP_ACTION: u32 = (4 << 4) | 2;
/// The actions that create an object: a map, a list, a text, a table.
const MAKE_ACTIONS: [i64; 4] = [0, 2, 4, 6];

/// The body of a document chunk (`storage/document.rs`), as far as the
/// checks read it.
struct DocumentBody<'a> {
    /// The actors, as the columns' actor indices number them.
    actors: Vec<&'a [u8]>,
    /// Every column, the changes' first, with its specification and data.
    columns: Vec<(u32, &'a [u8])>,
    /// Where the operations' columns start in `columns`.
    op_columns: usize,
}

impl<'a> DocumentBody<'a> {
    fn read(body: &'a [u8]) -> Result<Self, PayloadError> {
        let malformed = |what: &str| PayloadError::Malformed(format!("document chunk: {what}"));
        let mut reader = Reader(body);
        let count = reader.uleb().ok_or_else(|| malformed("actors"))?;
        let mut actors = Vec::new();
        for _ in 0..count {
            let len = reader.uleb().ok_or_else(|| malformed("actor"))?;
            actors.push(reader.take(len).ok_or_else(|| malformed("actor"))?);
        }
        let heads = reader.uleb().ok_or_else(|| malformed("heads"))?;
        let heads_len = heads.checked_mul(32).ok_or_else(|| malformed("heads"))?;
        reader.take(heads_len).ok_or_else(|| malformed("heads"))?;
        let mut specs = Vec::new();
        let mut op_columns = 0;
        for part in 0..2 {
            if part == 1 {
                op_columns = specs.len();
            }
            let count = reader.uleb().ok_or_else(|| malformed("columns"))?;
            for _ in 0..count {
                let spec = reader
                    .uleb()
                    .and_then(|spec| u32::try_from(spec).ok())
                    .ok_or_else(|| malformed("column"))?;
                let len = reader.uleb().ok_or_else(|| malformed("column"))?;
                specs.push((spec, len));
            }
        }
        let mut columns = Vec::with_capacity(specs.len());
        for (spec, len) in specs {
            let data = reader.take(len).ok_or_else(|| malformed("column data"))?;
            columns.push((spec, data));
        }
        Ok(DocumentBody {
            actors,
            columns,
            op_columns,
        })
    }

    /// The operation column `spec` (without its compression bit),
    /// inflated if it is compressed, to at most `cap` bytes; empty if the
    /// chunk leaves it out (automerge then takes every row as null).
    fn op_column(&self, spec: u32, cap: usize) -> Result<std::borrow::Cow<'a, [u8]>, PayloadError> {
        let found = self.columns[self.op_columns..]
            .iter()
            .find(|(s, _)| s & !COLUMN_DEFLATE == spec);
        Ok(match found {
            None => std::borrow::Cow::Borrowed(&[][..]),
            Some((s, data)) if s & COLUMN_DEFLATE == 0 => std::borrow::Cow::Borrowed(*data),
            Some((_, data)) => std::borrow::Cow::Owned(inflate_capped(data, cap)?),
        })
    }
}

/// The objects a document chunk's operations create, each with the object
/// it is created in (`None`: the root), and how many operations it holds,
/// read from its id, object and action columns without building its changes
/// (which costs about what loading the document does). Deleted objects are
/// there too: a document keeps every operation. Columns are inflated to at
/// most `cap` bytes each. The chunk was loaded by automerge already, so it
/// is well formed; what does not read is refused all the same.
fn document_objects(chunk: &[u8], cap: usize) -> Result<(usize, Vec<Created>), PayloadError> {
    let malformed = |what: &str| PayloadError::Malformed(format!("document chunk: {what}"));
    let (_, header, end) = chunk_header(chunk)?;
    let body = DocumentBody::read(&chunk[header..end])?;
    let actors: Vec<ActorId> = body.actors.iter().map(|a| ActorId::from(*a)).collect();
    let id_actor_data = body.op_column(OP_ID_ACTOR, cap)?;
    let rows = column_rows(OP_ID_ACTOR, &id_actor_data).ok_or_else(|| malformed("id column"))?;
    let id_counter_data = body.op_column(OP_ID_COUNTER, cap)?;
    let obj_actor_data = body.op_column(OP_OBJ_ACTOR, cap)?;
    let obj_counter_data = body.op_column(OP_OBJ_COUNTER, cap)?;
    let action_data = body.op_column(OP_ACTION, cap)?;
    let mut id_actor = Runs::new(&id_actor_data, false);
    let mut id_counter = Runs::new(&id_counter_data, true);
    let mut obj_actor = Runs::new(&obj_actor_data, false);
    let mut obj_counter = Runs::new(&obj_counter_data, false);
    let mut action = Runs::new(&action_data, false);
    let key = |counter: Option<i64>, actor: Option<i64>| -> Result<Option<ObjKey>, PayloadError> {
        match (counter, actor) {
            (None, None) => Ok(None),
            (Some(counter), Some(actor)) => {
                let counter = u64::try_from(counter).map_err(|_| malformed("negative counter"))?;
                let actor = usize::try_from(actor)
                    .ok()
                    .and_then(|i| actors.get(i))
                    .ok_or_else(|| malformed("actor index past the actors"))?;
                Ok(Some((counter, actor.clone())))
            }
            _ => Err(malformed("an object id with half of it null")),
        }
    };
    let mut objects = Vec::new();
    let mut id_sum = 0i64;
    for _ in 0..rows {
        let column = |what: &str| malformed(what);
        let id_a = id_actor.next().ok_or_else(|| column("id column"))?;
        // A delta column: each value is the previous one plus its delta.
        let id_c = match id_counter.next().ok_or_else(|| column("id column"))? {
            Some(delta) => {
                id_sum = id_sum
                    .checked_add(delta)
                    .ok_or_else(|| column("id column"))?;
                Some(id_sum)
            }
            None => None,
        };
        let obj_a = obj_actor.next().ok_or_else(|| column("object column"))?;
        let obj_c = obj_counter.next().ok_or_else(|| column("object column"))?;
        let act = action.next().ok_or_else(|| column("action column"))?;
        if !act.is_some_and(|a| MAKE_ACTIONS.contains(&a)) {
            continue;
        }
        let id = key(id_c, id_a)?.ok_or_else(|| malformed("an object without an id"))?;
        objects.push((id, key(obj_c, obj_a)?));
    }
    let rows = usize::try_from(rows).unwrap_or(usize::MAX);
    Ok((rows, objects))
}

/// The values of a run-length encoded column of integers (automerge's
/// storage format, runs as [`run_header`] reads them), one row at a time.
/// Values are unsigned, or signed for a delta column's deltas. Past its end
/// a column gives nulls, as automerge reads a short column.
struct Runs<'a> {
    reader: Reader<'a>,
    signed: bool,
    kind: RunKind,
    /// The value a `Repeat` run repeats.
    repeated: i64,
    left: u64,
}

/// What a run of a run-length encoded column holds.
#[derive(Clone, Copy)]
enum RunKind {
    /// One value, repeated.
    Repeat,
    /// Values one after the other.
    Literal,
    /// Nulls.
    Null,
}

/// The start of a run of a run-length encoded column: a signed count, then,
/// for a count of 0, an unsigned count of nulls. Returns the run's kind
/// and length; its values (one for `Repeat`, one per row for `Literal`)
/// follow in the reader.
fn run_header(reader: &mut Reader<'_>) -> Option<(RunKind, u64)> {
    let count = reader.sleb()?;
    Some(if count > 0 {
        (RunKind::Repeat, count.unsigned_abs())
    } else if count < 0 {
        (RunKind::Literal, count.unsigned_abs())
    } else {
        (RunKind::Null, reader.uleb()?)
    })
}

impl<'a> Runs<'a> {
    fn new(data: &'a [u8], signed: bool) -> Self {
        Runs {
            reader: Reader(data),
            signed,
            kind: RunKind::Null,
            repeated: 0,
            left: 0,
        }
    }

    fn value(&mut self) -> Option<i64> {
        if self.signed {
            self.reader.sleb()
        } else {
            self.reader.uleb().and_then(|v| i64::try_from(v).ok())
        }
    }

    /// The next row's value (`Some(None)` for a null); `None` if the
    /// column does not read.
    fn next(&mut self) -> Option<Option<i64>> {
        while self.left == 0 {
            if self.reader.0.is_empty() {
                return Some(None);
            }
            (self.kind, self.left) = run_header(&mut self.reader)?;
            if let RunKind::Repeat = self.kind {
                self.repeated = self.value()?;
            }
        }
        self.left -= 1;
        match self.kind {
            RunKind::Repeat => Some(Some(self.repeated)),
            RunKind::Literal => self.value().map(Some),
            RunKind::Null => Some(None),
        }
    }
}

/// How many values a column holds, from its encoding (automerge's storage
/// format): run-length encoded integers, strings and actor indices count
/// the runs' lengths, a boolean column sums its alternating run lengths;
/// raw values (type 7) have no rows of their own.
fn column_rows(spec: u32, mut data: &[u8]) -> Option<u64> {
    let column_type = spec & 0b111;
    let mut rows = 0u64;
    match column_type {
        // Boolean: alternating runs of false and true.
        4 => {
            while !data.is_empty() {
                let (run, n) = uleb128(data)?;
                rows = rows.saturating_add(run);
                data = &data[n..];
            }
        }
        7 => {}
        _ => {
            let is_string = column_type == 5;
            let mut reader = Reader(data);
            let value = |reader: &mut Reader<'_>| -> Option<()> {
                if is_string {
                    let len = reader.uleb()?;
                    reader.take(len).map(|_| ())
                } else {
                    reader.uleb().map(|_| ()) // a sleb's bytes end the same way
                }
            };
            while !reader.0.is_empty() {
                let (kind, len) = run_header(&mut reader)?;
                match kind {
                    RunKind::Repeat => value(&mut reader)?,
                    RunKind::Literal => {
                        for _ in 0..len {
                            value(&mut reader)?;
                        }
                    }
                    RunKind::Null => {}
                }
                rows = rows.saturating_add(len);
            }
        }
    }
    Some(rows)
}

/// Reads numbers and byte strings off the front of a slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn uleb(&mut self) -> Option<u64> {
        let (value, n) = uleb128(self.0)?;
        self.0 = &self.0[n..];
        Some(value)
    }

    fn sleb(&mut self) -> Option<i64> {
        let mut value = 0i64;
        for (i, byte) in self.0.iter().take(10).enumerate() {
            let shift = 7 * u32::try_from(i).ok()?;
            value |= i64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                if shift + 7 < 64 && byte & 0x40 != 0 {
                    value |= -1i64 << (shift + 7);
                }
                self.0 = &self.0[i + 1..];
                return Some(value);
            }
        }
        None
    }

    fn take(&mut self, len: u64) -> Option<&'a [u8]> {
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= self.0.len())?;
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(taken)
    }
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

/// The raw DEFLATE stream `body` inflated, if it takes at most `cap` bytes
/// (a column of a document chunk, whose rows are counted next).
fn inflate_capped(body: &[u8], cap: usize) -> Result<Vec<u8>, PayloadError> {
    let mut decoder = flate2::write::DeflateDecoder::new(CappedVec {
        bytes: Vec::new(),
        cap,
    });
    let result = decoder.write_all(body).and_then(|()| decoder.try_finish());
    let over = decoder.get_ref().bytes.len() > cap;
    match result {
        Ok(()) if !over => Ok(decoder.get_mut().bytes.split_off(0)),
        Ok(()) => Err(PayloadError::TooLarge { limit: cap }),
        Err(_) if over => Err(PayloadError::TooLarge { limit: cap }),
        Err(e) => Err(PayloadError::Malformed(format!("bad DEFLATE data: {e}"))),
    }
}

/// Keeps what is written to it and fails once there is more than `cap`.
struct CappedVec {
    bytes: Vec<u8>,
    cap: usize,
}

impl Write for CappedVec {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.cap {
            // Keep the count honest for the caller's "over the cap" test.
            let room = self.cap.saturating_sub(self.bytes.len());
            self.bytes.extend_from_slice(&buf[..room.min(buf.len())]);
            self.bytes.push(0);
            return Err(io::Error::other("inflated size over the limit"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An object, by its make operation's counter and actor.
type ObjKey = (u64, ActorId);
/// An object and the object it is created in (`None`: the root).
type Created = (ObjKey, Option<ObjKey>);

/// Adds the objects `change` creates to `parent_of`, each with the object
/// it is created in (`None`: the root).
fn change_objects(
    change: &Change,
    parent_of: &mut HashMap<ObjKey, Option<ObjKey>>,
) -> Result<(), PayloadError> {
    let expanded = expand(change)?;
    let start = expanded.start_op.get();
    for (i, op) in expanded.operations.into_iter().enumerate() {
        if matches!(op.action, OpType::Make(_)) {
            let counter = start.saturating_add(i as u64);
            let parent = match op.obj {
                ObjectId::Root => None,
                ObjectId::Id(id) => Some((id.counter(), id.actor().clone())),
            };
            parent_of.insert((counter, expanded.actor_id.clone()), parent);
        }
    }
    Ok(())
}

/// Measures how deep the objects in `parent_of` (each with the object it
/// is created in) would be nested, without recursion: objects made by the
/// message are looked up in the map, objects the document already has by
/// walking their parents (bounded, as the stored document passed this
/// check).
fn check_depth(
    doc: &Automerge,
    parent_of: &HashMap<ObjKey, Option<ObjKey>>,
    limit: usize,
) -> Result<(), PayloadError> {
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
                None => break 0,
                Some(key) => {
                    if let Some(d) = depth.get(key) {
                        break *d;
                    }
                    if parent_of.contains_key(key) {
                        if chain.len() > limit {
                            return Err(too_deep);
                        }
                        chain.push(key.clone());
                        continue;
                    }
                    break existing_depth(doc, key, limit);
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
    use crate::testing::chunks::{
        compressed_change_chunk, document_body, document_chunk, push_uleb,
    };

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
        let bomb = compressed_change_chunk(&body);
        assert_eq!(
            check(&Automerge::new(), &message_with(vec![bomb]), &limits()),
            Err(PayloadError::TooLarge { limit: 1024 * 1024 })
        );
    }

    #[test]
    fn garbage_is_refused() {
        for bytes in [
            vec![1, 2, 3],
            MAGIC.to_vec(),
            vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 9, 0],
        ] {
            let m = message_with(vec![bytes]);
            assert!(matches!(
                check(&Automerge::new(), &m, &limits()),
                Err(PayloadError::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_whole_document_passes_and_is_bounded_like_changes() {
        // A document saved whole, as automerge sends a first upload in a v2
        // message, possibly with its columns compressed.
        let doc = nested(8);
        let mut tx_doc = doc.fork();
        let mut tx = tx_doc.transaction();
        tx.put(ROOT, "text", "x".repeat(4096)).expect("put");
        tx.commit();
        for whole in [doc.save(), tx_doc.save(), tx_doc.save_nocompress()] {
            let m = message_with(vec![whole]);
            assert_eq!(check(&Automerge::new(), &m, &limits()), Ok(()));
        }
        // A document followed by a loose change in the same entry.
        let mut more = tx_doc.fork();
        let heads = more.get_heads();
        let mut tx = more.transaction();
        tx.put(ROOT, "more", 1).expect("put");
        tx.commit();
        let mut entry = tx_doc.save();
        entry.extend(more.save_after(&heads));
        assert_eq!(
            check(&Automerge::new(), &message_with(vec![entry]), &limits()),
            Ok(())
        );

        // Too deep, as a document.
        let m = message_with(vec![nested(9).save()]);
        assert_eq!(
            check(&Automerge::new(), &m, &limits()),
            Err(PayloadError::TooDeep { limit: 8 })
        );
        // Too many operations, as a document.
        let few_ops = PayloadLimits {
            max_ops: 100,
            ..limits()
        };
        let mut many = Automerge::new();
        let mut tx = many.transaction();
        for i in 0..200 {
            tx.put(ROOT, format!("k{i}"), i).expect("put");
        }
        tx.commit();
        assert!(matches!(
            check(
                &Automerge::new(),
                &message_with(vec![many.save()]),
                &few_ops
            ),
            Err(PayloadError::TooManyOps { limit: 100, .. })
        ));
        // Larger than a stored document may be.
        let small = PayloadLimits {
            max_document_bytes: 64,
            ..limits()
        };
        assert!(matches!(
            check(
                &Automerge::new(),
                &message_with(vec![tx_doc.save()]),
                &small
            ),
            Err(PayloadError::TooLarge { .. })
        ));
    }

    /// The objects `doc`'s changes create, as the check reads them from
    /// each change.
    fn objects_from_changes(doc: &Automerge) -> HashMap<ObjKey, Option<ObjKey>> {
        let mut parent_of = HashMap::new();
        for change in doc.get_changes(&[]) {
            change_objects(&change, &mut parent_of).expect("decodes");
        }
        parent_of
    }

    #[test]
    fn a_documents_objects_read_from_its_columns_are_those_its_changes_create() {
        use rand::SeedableRng;
        // Nested maps; lists, text and a table in several actors' changes;
        // objects deleted later (a document keeps them); a realistic diary.
        let mut mixed = nested(6);
        let mut other = mixed.fork();
        let mut tx = mixed.transaction();
        let list = tx.put_object(ROOT, "list", ObjType::List).expect("put");
        for i in 0..30 {
            let item = tx.insert_object(&list, i, ObjType::Map).expect("insert");
            let text = tx.put_object(&item, "text", ObjType::Text).expect("put");
            tx.splice_text(&text, 0, 0, "走访记录").expect("splice");
        }
        let gone = tx.put_object(ROOT, "gone", ObjType::Map).expect("put");
        let deep = tx.put_object(&gone, "deeper", ObjType::List).expect("put");
        tx.insert_object(&deep, 0, ObjType::Table).expect("insert");
        tx.commit();
        let mut tx = mixed.transaction();
        tx.delete(ROOT, "gone").expect("delete");
        tx.commit();
        let mut tx = other.transaction();
        tx.put_object(ROOT, "theirs", ObjType::Map).expect("put");
        tx.commit();
        mixed.merge(&mut other).expect("merge");
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let diary = crate::fixtures::diary(
            &mut rng,
            "cadre",
            ActorId::random(),
            40,
            crate::Timestamp::from_millis(1_767_225_600_000),
        )
        .into_automerge();
        for doc in [nested(1), nested(8), mixed, diary] {
            let expected = objects_from_changes(&doc);
            let ops: usize = doc.get_changes(&[]).iter().map(|c| c.len()).sum();
            let deletes = doc
                .get_changes(&[])
                .iter()
                .flat_map(|c| c.decode().operations)
                .filter(|op| matches!(op.action, OpType::Delete))
                .count();
            for saved in [doc.save(), doc.save_nocompress()] {
                let (rows, objects) = document_objects(&saved, 1 << 24).expect("reads");
                // A document keeps every operation but its deletions,
                // which mark what they delete instead.
                assert_eq!(rows, ops - deletes);
                assert_eq!(objects.len(), expected.len(), "no object twice");
                let objects: HashMap<_, _> = objects.into_iter().collect();
                assert_eq!(objects, expected);
            }
        }
    }

    #[test]
    fn a_deflate_bomb_in_a_document_column_is_refused_before_loading() {
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..64 {
            encoder.write_all(&zeros).expect("compress");
        }
        let bomb = encoder.finish().expect("compress");
        assert!(bomb.len() < 100 * 1024, "{} bytes", bomb.len());
        // The operations' value column (id 5, type 7), compressed.
        let body = document_body(&[((5 << 4) | 7 | COLUMN_DEFLATE, bomb)]);
        let m = message_with(vec![document_chunk(&body)]);
        assert!(matches!(
            check(&Automerge::new(), &m, &limits()),
            Err(PayloadError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_run_of_a_billion_operations_is_refused_before_loading() {
        // The operations' actor column (id 2, type 1): one run of 2^40
        // repeats of actor 0, in seven bytes.
        let mut run = Vec::new();
        let count = 1u64 << 40;
        push_uleb(&mut run, count); // also a positive sleb: bit 6 of its last byte is clear
        run.push(0);
        let body = document_body(&[((2 << 4) | 1, run)]);
        let m = message_with(vec![document_chunk(&body)]);
        assert!(matches!(
            check(&Automerge::new(), &m, &limits()),
            Err(PayloadError::TooManyOps { .. })
        ));
        // The same in a compressed boolean column.
        let mut runs = Vec::new();
        push_uleb(&mut runs, 0);
        push_uleb(&mut runs, count);
        let mut encoder =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&runs).expect("compress");
        let body = document_body(&[(
            (3 << 4) | 4 | COLUMN_DEFLATE,
            encoder.finish().expect("compress"),
        )]);
        assert!(matches!(
            check(
                &Automerge::new(),
                &message_with(vec![document_chunk(&body)]),
                &limits()
            ),
            Err(PayloadError::TooManyOps { .. })
        ));
    }

    #[test]
    fn malformed_document_chunks_are_refused_not_a_panic() {
        let whole = nested(3).save_nocompress();
        let (len, n) = uleb128(&whole[9..]).expect("length");
        let body = &whole[9 + n..];
        assert_eq!(body.len() as u64, len);
        let malformed = |bytes: Vec<u8>| {
            let m = message_with(vec![bytes]);
            match check(&Automerge::new(), &m, &limits()) {
                Err(PayloadError::Malformed(_)) => {}
                other => panic!("expected Malformed, got {other:?}"),
            }
        };
        // Every truncation of the body, given a header that says so.
        for cut in 0..body.len() {
            malformed(document_chunk(&body[..cut]));
        }
        // A column longer than the chunk.
        let mut long_column = vec![0, 0, 0, 1, (2 << 4) | 1, 0x7f];
        long_column.extend([2, 0]);
        malformed(document_chunk(&long_column));
        // A bad checksum, and every byte of the body flipped in turn.
        let mut bad_checksum = whole.clone();
        bad_checksum[4] ^= 0xff;
        malformed(bad_checksum);
        for i in 0..body.len() {
            let mut flipped = body.to_vec();
            flipped[i] ^= 0x55;
            // Anything but a panic; some flips still read as a document
            // (the checksum is not computed here), most do not.
            let _ = check(
                &Automerge::new(),
                &message_with(vec![document_chunk(&flipped)]),
                &limits(),
            );
        }
        // Not a document, nor a change: a bundle (type 3) is not taken.
        let mut bundle = whole.clone();
        bundle[8] = 3;
        malformed(bundle);
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

    /// A change by a second actor, after `doc`, of the given operations.
    fn change_after(
        doc: &Automerge,
        start_op: u64,
        operations: Vec<automerge::legacy::Op>,
    ) -> Vec<u8> {
        let expanded = automerge::ExpandedChange {
            operations,
            actor_id: ActorId::from(b"second".as_slice()),
            hash: None,
            seq: 1,
            start_op: std::num::NonZeroU64::new(start_op).expect("start op"),
            time: 0,
            message: None,
            deps: doc.get_heads(),
            extra_bytes: vec![],
            author: None,
        };
        Change::from(expanded).raw_bytes().to_vec()
    }

    fn make_map_in(obj: ObjectId) -> automerge::legacy::Op {
        automerge::legacy::Op {
            action: OpType::Make(ObjType::Map),
            obj,
            key: automerge::legacy::Key::Map("x".into()),
            pred: automerge::legacy::SortedVec::new(),
            insert: false,
        }
    }

    #[test]
    fn counters_past_32_bits_are_refused_not_a_panic() {
        // automerge 0.12 holds counters in 32 bits and panics parsing a
        // change that names a larger one as an object, a list element or a
        // predecessor.
        let mut doc = Automerge::new();
        let first = ActorId::from(b"first".as_slice());
        doc.set_actor(first.clone());
        let mut tx = doc.transaction();
        tx.put_object(ROOT, "m", ObjType::Map).expect("map");
        tx.commit();
        let past = u64::from(u32::MAX) + 5;
        let id = automerge::legacy::OpId::new(past, &first);
        let in_object = make_map_in(ObjectId::Id(id.clone()));
        let mut after_element = make_map_in(ObjectId::Root);
        after_element.key =
            automerge::legacy::Key::Seq(automerge::legacy::ElementId::Id(id.clone()));
        after_element.insert = true;
        let mut replacing = make_map_in(ObjectId::Root);
        replacing.pred = vec![id].into();
        for (what, op) in [
            ("object", in_object),
            ("element", after_element),
            ("predecessor", replacing),
        ] {
            let message = message_with(vec![change_after(&doc, 2, vec![op])]);
            match check(&doc, &message, &limits()) {
                Err(PayloadError::Malformed(_)) => {}
                other => panic!("{what}: expected Malformed, got {other:?}"),
            }
        }
        // Operations counted past 32 bits: automerge parses the change,
        // then panics applying it.
        let start = u64::from(u32::MAX);
        let two = vec![make_map_in(ObjectId::Root), make_map_in(ObjectId::Root)];
        let message = message_with(vec![change_after(&doc, start, two)]);
        assert!(matches!(
            check(&doc, &message, &limits()),
            Err(PayloadError::Malformed(_))
        ));
    }
}
