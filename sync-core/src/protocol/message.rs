//! The protocol's messages and their CBOR encoding.
//!
//! Field names follow the "Wire Protocol" section of the automerge-repo
//! websocket adapter README. One divergence is deliberate: the README names
//! the handshake's metadata field `metadata`, while the JavaScript and Rust
//! implementations send `peerMetadata`; we send `peerMetadata` and accept both.

use automerge::ChangeHash;
use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use super::ProtocolError;
use crate::DocumentId;

/// The only protocol version there is.
pub const PROTOCOL_VERSION: &str = "1";

/// The largest frame a decoder accepts by default (a first sync of a large
/// diary fits comfortably; a server may choose a smaller limit).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Most documents a `peer` may list ([`PeerMetadata::documents`]); a
/// longer list is refused as malformed.
pub const MAX_LISTED_DOCUMENTS: usize = 10_000;

/// Most heads a listed document may carry; a server lists a document with
/// more as having unknown heads.
pub const MAX_LISTED_HEADS: usize = 64;

/// Metadata a peer announces in `join` and `peer`.
///
/// `documents` is this project's extension, under the key `documents`,
/// which other automerge-repo peers ignore: `true` in a `join` asks the
/// server to list the user's documents in its `peer`, as an array of
/// `[id, heads]` (the id's 16 bytes; the heads as 32-byte strings, or
/// `null` when the server does not know them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerMetadata {
    /// Id of the peer's persistent storage, if it has one.
    pub storage_id: Option<String>,
    /// Whether the peer will not come back with the same storage.
    pub is_ephemeral: bool,
    /// In `join`: the client asks for [`Self::documents`] in the `peer`.
    pub list_documents: bool,
    /// In `peer`: the documents the user owns, with their stored heads.
    pub documents: Option<Vec<ListedDocument>>,
}

/// One document a server lists in its `peer` ([`PeerMetadata::documents`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDocument {
    pub id: DocumentId,
    /// The heads of what the server has stored, sorted; `None` when it
    /// does not know them (the peer then syncs the document as usual).
    pub heads: Option<Vec<ChangeHash>>,
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The initiating peer's first message.
    Join {
        /// Its peer id.
        sender_id: String,
        /// Versions it speaks.
        supported_protocol_versions: Vec<String>,
        metadata: Option<PeerMetadata>,
    },
    /// The receiving peer's answer to `join`.
    Peer {
        /// Its peer id.
        sender_id: String,
        /// The initiating peer's id.
        target_id: String,
        /// The chosen version.
        selected_protocol_version: String,
        metadata: Option<PeerMetadata>,
    },
    /// An advisory goodbye.
    Leave {
        /// Who is leaving.
        sender_id: String,
    },
    /// Begin syncing a document, asking for `doc-unavailable` if the other
    /// side does not have it.
    Request {
        document_id: DocumentId,
        sender_id: String,
        /// Recipient.
        target_id: String,
        /// An automerge sync message.
        data: Vec<u8>,
    },
    /// An automerge sync message for a document.
    Sync {
        document_id: DocumentId,
        sender_id: String,
        /// Recipient.
        target_id: String,
        /// An automerge sync message.
        data: Vec<u8>,
    },
    /// The sender does not have the document (or may not share it).
    DocUnavailable {
        document_id: DocumentId,
        sender_id: String,
        /// Recipient.
        target_id: String,
    },
    /// An ephemeral message about a document (presence, cursors).
    Ephemeral {
        document_id: DocumentId,
        sender_id: String,
        /// Recipient.
        target_id: String,
        /// Sequence number in the session.
        count: u64,
        session_id: String,
        /// Arbitrary CBOR, as bytes.
        data: Vec<u8>,
    },
    /// A protocol error; the sender closes the connection.
    Error {
        /// What went wrong.
        message: String,
    },
    /// A message type this implementation does not act on
    /// (`remote-subscription-change`, `remote-heads-changed`, or a future
    /// one); kept so the caller can log it.
    Other { type_name: String },
}

impl Message {
    /// The message's `type` field.
    pub fn type_name(&self) -> &str {
        match self {
            Message::Join { .. } => "join",
            Message::Peer { .. } => "peer",
            Message::Leave { .. } => "leave",
            Message::Request { .. } => "request",
            Message::Sync { .. } => "sync",
            Message::DocUnavailable { .. } => "doc-unavailable",
            Message::Ephemeral { .. } => "ephemeral",
            Message::Error { .. } => "error",
            Message::Other { type_name } => type_name,
        }
    }

    /// A one-line account of the message for logs and failing tests: its
    /// type and, for `sync`/`request`, what the automerge sync message says
    /// (heads and needed changes as short hashes, Bloom filters, changes
    /// carried).
    pub fn summary(&self) -> String {
        let (Message::Sync { data, .. } | Message::Request { data, .. }) = self else {
            return match self {
                Message::Error { message } => format!("error {message:?}"),
                other => other.type_name().to_owned(),
            };
        };
        let short = |hashes: &[automerge::ChangeHash]| {
            hashes
                .iter()
                .map(|h| h.to_string()[..8].to_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        match automerge::sync::Message::decode(data) {
            Ok(m) => format!(
                "{} heads=[{}] need=[{}] have={} changes={} ({} B){}",
                self.type_name(),
                short(&m.heads),
                short(&m.need),
                m.have.len(),
                m.changes.len(),
                data.len(),
                if m.flags.is_some() { " flags" } else { "" },
            ),
            Err(e) => format!("{} (undecodable: {e})", self.type_name()),
        }
    }

    /// The document the message is about, if any.
    pub fn document_id(&self) -> Option<&DocumentId> {
        match self {
            Message::Request { document_id, .. }
            | Message::Sync { document_id, .. }
            | Message::DocUnavailable { document_id, .. }
            | Message::Ephemeral { document_id, .. } => Some(document_id),
            _ => None,
        }
    }

    /// Encodes the message as one CBOR map.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new(Vec::new());
        // Writing to a Vec cannot fail; the only error source is the writer.
        encode_into(self, &mut e).expect("writing CBOR to a Vec cannot fail");
        e.into_writer()
    }

    /// Decodes one message, refusing frames over [`MAX_MESSAGE_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        Self::decode_with_limit(bytes, MAX_MESSAGE_BYTES)
    }

    /// Decodes one message, refusing frames over `limit` bytes. Any input,
    /// however malformed, gives an error value, never a panic.
    pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<Self, ProtocolError> {
        if bytes.len() > limit {
            return Err(ProtocolError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let mut d = Decoder::new(bytes);
        let fields = Fields::read(&mut d)?;
        if d.position() != bytes.len() {
            return Err(malformed("trailing bytes after the message"));
        }
        fields.into_message()
    }
}

fn malformed(why: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(why.into())
}

fn cbor_err(e: minicbor::decode::Error) -> ProtocolError {
    malformed(e.to_string())
}

type EncodeResult = Result<(), minicbor::encode::Error<std::convert::Infallible>>;

fn encode_metadata(e: &mut Encoder<Vec<u8>>, m: &PeerMetadata) -> EncodeResult {
    e.str("peerMetadata")?;
    let listing = m.list_documents || m.documents.is_some();
    e.map(1 + u64::from(m.storage_id.is_some()) + u64::from(listing))?;
    if let Some(s) = &m.storage_id {
        e.str("storageId")?.str(s)?;
    }
    e.str("isEphemeral")?.bool(m.is_ephemeral)?;
    match &m.documents {
        Some(documents) => {
            e.str("documents")?.array(documents.len() as u64)?;
            for d in documents {
                e.array(2)?.bytes(d.id.as_bytes())?;
                match &d.heads {
                    Some(heads) => {
                        e.array(heads.len() as u64)?;
                        for h in heads {
                            e.bytes(h.as_ref())?;
                        }
                    }
                    None => {
                        e.null()?;
                    }
                }
            }
        }
        None if m.list_documents => {
            e.str("documents")?.bool(true)?;
        }
        None => {}
    }
    Ok(())
}

/// Reads a definite-length array header of at most `max` entries.
fn bounded_array(d: &mut Decoder<'_>, what: &str, max: usize) -> Result<usize, ProtocolError> {
    let n = match d.datatype().map_err(cbor_err)? {
        Type::Array => d.array().map_err(cbor_err)?,
        other => return Err(malformed(format!("{what} is a {other}, expected an array"))),
    };
    match n {
        Some(n) if n <= max as u64 => Ok(n as usize),
        _ => Err(malformed(format!("{what} has more than {max} entries"))),
    }
}

/// Reads [`PeerMetadata::documents`]: `[[id, heads | null], ...]`.
fn read_listed(d: &mut Decoder<'_>) -> Result<Vec<ListedDocument>, ProtocolError> {
    let n = bounded_array(d, "documents", MAX_LISTED_DOCUMENTS)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if bounded_array(d, "a listed document", 2)? != 2 {
            return Err(malformed("a listed document is not [id, heads]"));
        }
        let id = <[u8; 16]>::try_from(read_bytes(d)?.as_slice())
            .map_err(|_| malformed("a listed document's id is not 16 bytes"))?;
        let heads = match d.datatype().map_err(cbor_err)? {
            Type::Null => {
                d.skip().map_err(cbor_err)?;
                None
            }
            _ => {
                let count = bounded_array(d, "a listed document's heads", MAX_LISTED_HEADS)?;
                let mut heads = Vec::with_capacity(count);
                for _ in 0..count {
                    let bytes = read_bytes(d)?;
                    heads.push(
                        ChangeHash::try_from(bytes.as_slice())
                            .map_err(|_| malformed("a listed head is not 32 bytes"))?,
                    );
                }
                heads.sort();
                Some(heads)
            }
        };
        out.push(ListedDocument {
            id: DocumentId::from_bytes(id),
            heads,
        });
    }
    Ok(out)
}

fn encode_into(m: &Message, e: &mut Encoder<Vec<u8>>) -> EncodeResult {
    match m {
        Message::Join {
            sender_id,
            supported_protocol_versions,
            metadata,
        } => {
            e.map(3 + u64::from(metadata.is_some()))?;
            e.str("type")?.str("join")?;
            e.str("senderId")?.str(sender_id)?;
            e.str("supportedProtocolVersions")?
                .array(supported_protocol_versions.len() as u64)?;
            for v in supported_protocol_versions {
                e.str(v)?;
            }
            if let Some(md) = metadata {
                encode_metadata(e, md)?;
            }
        }
        Message::Peer {
            sender_id,
            target_id,
            selected_protocol_version,
            metadata,
        } => {
            e.map(4 + u64::from(metadata.is_some()))?;
            e.str("type")?.str("peer")?;
            e.str("senderId")?.str(sender_id)?;
            e.str("selectedProtocolVersion")?
                .str(selected_protocol_version)?;
            e.str("targetId")?.str(target_id)?;
            if let Some(md) = metadata {
                encode_metadata(e, md)?;
            }
        }
        Message::Leave { sender_id } => {
            e.map(2)?;
            e.str("type")?.str("leave")?;
            e.str("senderId")?.str(sender_id)?;
        }
        Message::Request {
            document_id,
            sender_id,
            target_id,
            data,
        }
        | Message::Sync {
            document_id,
            sender_id,
            target_id,
            data,
        } => {
            e.map(5)?;
            e.str("type")?.str(m.type_name())?;
            e.str("documentId")?.str(&document_id.to_string())?;
            e.str("senderId")?.str(sender_id)?;
            e.str("targetId")?.str(target_id)?;
            e.str("data")?.bytes(data)?;
        }
        Message::DocUnavailable {
            document_id,
            sender_id,
            target_id,
        } => {
            e.map(4)?;
            e.str("type")?.str("doc-unavailable")?;
            e.str("senderId")?.str(sender_id)?;
            e.str("targetId")?.str(target_id)?;
            e.str("documentId")?.str(&document_id.to_string())?;
        }
        Message::Ephemeral {
            document_id,
            sender_id,
            target_id,
            count,
            session_id,
            data,
        } => {
            e.map(7)?;
            e.str("type")?.str("ephemeral")?;
            e.str("senderId")?.str(sender_id)?;
            e.str("targetId")?.str(target_id)?;
            e.str("count")?.u64(*count)?;
            e.str("sessionId")?.str(session_id)?;
            e.str("documentId")?.str(&document_id.to_string())?;
            e.str("data")?.bytes(data)?;
        }
        Message::Error { message } => {
            e.map(2)?;
            e.str("type")?.str("error")?;
            e.str("message")?.str(message)?;
        }
        Message::Other { type_name } => {
            e.map(1)?;
            e.str("type")?.str(type_name)?;
        }
    }
    Ok(())
}

/// The fields of a message map, gathered before the message is built so the
/// key order on the wire does not matter.
#[derive(Default)]
struct Fields {
    type_name: Option<String>,
    sender_id: Option<String>,
    target_id: Option<String>,
    document_id: Option<String>,
    data: Option<Vec<u8>>,
    versions: Option<Vec<String>>,
    selected: Option<String>,
    metadata: Option<PeerMetadata>,
    count: Option<u64>,
    session_id: Option<String>,
    message: Option<String>,
}

fn set<T>(slot: &mut Option<T>, key: &str, v: T) -> Result<(), ProtocolError> {
    if slot.replace(v).is_some() {
        return Err(malformed(format!("duplicate key {key:?}")));
    }
    Ok(())
}

/// Reads a definite or indefinite map header; returns the entry count if known.
fn map_header(d: &mut Decoder<'_>, what: &str) -> Result<Option<u64>, ProtocolError> {
    match d.datatype().map_err(cbor_err)? {
        Type::Map | Type::MapIndef => d.map().map_err(cbor_err),
        other => Err(malformed(format!("{what} is a {other}, expected a map"))),
    }
}

/// Iterates a map's entries, calling `f` with each key; `f` must consume the value.
fn for_each_entry(
    d: &mut Decoder<'_>,
    len: Option<u64>,
    mut f: impl FnMut(&mut Decoder<'_>, &str) -> Result<(), ProtocolError>,
) -> Result<(), ProtocolError> {
    let mut seen = 0u64;
    loop {
        match len {
            Some(n) if seen == n => return Ok(()),
            None if d.datatype().map_err(cbor_err)? == Type::Break => {
                d.skip().map_err(cbor_err)?;
                return Ok(());
            }
            _ => {}
        }
        let key = match d.datatype().map_err(cbor_err)? {
            Type::String => d.str().map_err(cbor_err)?.to_owned(),
            other => {
                return Err(malformed(format!(
                    "map key is a {other}, expected a string"
                )));
            }
        };
        f(d, &key)?;
        seen += 1;
    }
}

fn read_bytes(d: &mut Decoder<'_>) -> Result<Vec<u8>, ProtocolError> {
    // Accept a byte string, optionally tagged as a typed array (tag 64, as
    // some CBOR encoders write a Uint8Array).
    if d.datatype().map_err(cbor_err)? == Type::Tag {
        let tag = d.tag().map_err(cbor_err)?;
        if tag.as_u64() != 64 {
            return Err(malformed(format!(
                "unexpected tag {} on data",
                tag.as_u64()
            )));
        }
    }
    match d.datatype().map_err(cbor_err)? {
        Type::Bytes => Ok(d.bytes().map_err(cbor_err)?.to_vec()),
        Type::BytesIndef => {
            let mut out = Vec::new();
            for chunk in d.bytes_iter().map_err(cbor_err)? {
                out.extend_from_slice(chunk.map_err(cbor_err)?);
            }
            Ok(out)
        }
        other => Err(malformed(format!("data is a {other}, expected bytes"))),
    }
}

fn read_str(d: &mut Decoder<'_>, key: &str) -> Result<String, ProtocolError> {
    match d.datatype().map_err(cbor_err)? {
        Type::String => Ok(d.str().map_err(cbor_err)?.to_owned()),
        other => Err(malformed(format!("{key} is a {other}, expected a string"))),
    }
}

impl Fields {
    fn read(d: &mut Decoder<'_>) -> Result<Self, ProtocolError> {
        let len = map_header(d, "message")?;
        let mut f = Fields::default();
        for_each_entry(d, len, |d, key| match key {
            "type" => set(&mut f.type_name, key, read_str(d, key)?),
            "senderId" => set(&mut f.sender_id, key, read_str(d, key)?),
            "targetId" => set(&mut f.target_id, key, read_str(d, key)?),
            "documentId" => set(&mut f.document_id, key, read_str(d, key)?),
            "sessionId" => set(&mut f.session_id, key, read_str(d, key)?),
            "selectedProtocolVersion" => set(&mut f.selected, key, read_str(d, key)?),
            "message" => set(&mut f.message, key, read_str(d, key)?),
            "data" => set(&mut f.data, key, read_bytes(d)?),
            "count" => {
                let n = match d.datatype().map_err(cbor_err)? {
                    Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().map_err(cbor_err)?,
                    other => {
                        return Err(malformed(format!(
                            "count is a {other}, expected an unsigned integer"
                        )));
                    }
                };
                set(&mut f.count, key, n)
            }
            "supportedProtocolVersions" => {
                let n = match d.datatype().map_err(cbor_err)? {
                    Type::Array | Type::ArrayIndef => d.array().map_err(cbor_err)?,
                    other => {
                        return Err(malformed(format!("{key} is a {other}, expected an array")));
                    }
                };
                let mut versions = Vec::new();
                loop {
                    match n {
                        Some(n) if versions.len() as u64 == n => break,
                        None if d.datatype().map_err(cbor_err)? == Type::Break => {
                            d.skip().map_err(cbor_err)?;
                            break;
                        }
                        _ => {}
                    }
                    if versions.len() >= 64 {
                        return Err(malformed("too many protocol versions"));
                    }
                    versions.push(read_str(d, key)?);
                }
                set(&mut f.versions, key, versions)
            }
            "peerMetadata" | "metadata" => {
                let len = match d.datatype().map_err(cbor_err)? {
                    // Some clients send `undefined`/`null` for no metadata.
                    Type::Null | Type::Undefined => {
                        d.skip().map_err(cbor_err)?;
                        return Ok(());
                    }
                    _ => map_header(d, key)?,
                };
                let mut md = PeerMetadata::default();
                for_each_entry(d, len, |d, k| {
                    match (k, d.datatype().map_err(cbor_err)?) {
                        ("storageId", Type::String) => md.storage_id = Some(read_str(d, k)?),
                        ("isEphemeral", Type::Bool) => {
                            md.is_ephemeral = d.bool().map_err(cbor_err)?
                        }
                        ("documents", Type::Bool) => {
                            md.list_documents = d.bool().map_err(cbor_err)?
                        }
                        ("documents", Type::Array) => md.documents = Some(read_listed(d)?),
                        _ => d.skip().map_err(cbor_err)?,
                    }
                    Ok(())
                })?;
                set(&mut f.metadata, "peerMetadata", md)
            }
            // Unknown fields are allowed: newer peers may add some.
            _ => d.skip().map_err(cbor_err),
        })?;
        Ok(f)
    }

    fn into_message(self) -> Result<Message, ProtocolError> {
        let type_name = self
            .type_name
            .ok_or_else(|| malformed("message has no type"))?;
        let need = |v: Option<String>, key: &str| {
            v.ok_or_else(|| malformed(format!("{type_name} message has no {key}")))
        };
        let doc = |v: Option<String>| -> Result<DocumentId, ProtocolError> {
            let s = v.ok_or_else(|| malformed(format!("{type_name} message has no documentId")))?;
            s.parse().map_err(|_| ProtocolError::DocumentId(s))
        };
        let data = |v: Option<Vec<u8>>| {
            v.ok_or_else(|| malformed(format!("{type_name} message has no data")))
        };
        Ok(match type_name.as_str() {
            "join" => Message::Join {
                sender_id: need(self.sender_id, "senderId")?,
                supported_protocol_versions: self
                    .versions
                    .ok_or_else(|| malformed("join message has no supportedProtocolVersions"))?,
                metadata: self.metadata,
            },
            "peer" => Message::Peer {
                sender_id: need(self.sender_id, "senderId")?,
                target_id: need(self.target_id, "targetId")?,
                selected_protocol_version: need(self.selected, "selectedProtocolVersion")?,
                metadata: self.metadata,
            },
            "leave" => Message::Leave {
                sender_id: need(self.sender_id, "senderId")?,
            },
            "request" | "sync" => {
                let document_id = doc(self.document_id)?;
                let sender_id = need(self.sender_id, "senderId")?;
                let target_id = need(self.target_id, "targetId")?;
                let data = data(self.data)?;
                if type_name == "request" {
                    Message::Request {
                        document_id,
                        sender_id,
                        target_id,
                        data,
                    }
                } else {
                    Message::Sync {
                        document_id,
                        sender_id,
                        target_id,
                        data,
                    }
                }
            }
            "doc-unavailable" => Message::DocUnavailable {
                document_id: doc(self.document_id)?,
                sender_id: need(self.sender_id, "senderId")?,
                target_id: need(self.target_id, "targetId")?,
            },
            "ephemeral" => Message::Ephemeral {
                document_id: doc(self.document_id)?,
                sender_id: need(self.sender_id, "senderId")?,
                target_id: need(self.target_id, "targetId")?,
                count: self
                    .count
                    .ok_or_else(|| malformed("ephemeral message has no count"))?,
                session_id: need(self.session_id, "sessionId")?,
                data: data(self.data)?,
            },
            "error" => Message::Error {
                message: self.message.unwrap_or_default(),
            },
            _ => Message::Other { type_name },
        })
    }
}
