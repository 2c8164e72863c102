//! Automerge storage chunks built by hand, for tests of what a receiver
//! refuses before automerge reads a chunk (so the checksum is left zero).

use crate::protocol::payload::{CHUNK_COMPRESSED_CHANGE, CHUNK_DOCUMENT, MAGIC};

/// A chunk of `chunk_type` around `body`, its checksum zero.
fn chunk(chunk_type: u8, body: &[u8]) -> Vec<u8> {
    let mut chunk = MAGIC.to_vec();
    chunk.extend([0, 0, 0, 0, chunk_type]);
    push_uleb(&mut chunk, body.len() as u64);
    chunk.extend_from_slice(body);
    chunk
}

/// A whole-document chunk (type 0) around `body`.
pub fn document_chunk(body: &[u8]) -> Vec<u8> {
    chunk(CHUNK_DOCUMENT, body)
}

/// A compressed change chunk (type 2) around `body`.
pub fn compressed_change_chunk(body: &[u8]) -> Vec<u8> {
    chunk(CHUNK_COMPRESSED_CHANGE, body)
}

/// The body of a document chunk with no actors, heads or change columns
/// and the given operation columns (specification, data).
pub fn document_body(op_columns: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![0, 0, 0]; // actors, heads, change columns
    push_uleb(&mut body, op_columns.len() as u64);
    for (spec, data) in op_columns {
        push_uleb(&mut body, u64::from(*spec));
        push_uleb(&mut body, data.len() as u64);
    }
    for (_, data) in op_columns {
        body.extend_from_slice(data);
    }
    body
}

/// Appends `value` as an unsigned LEB128 number, as automerge writes
/// lengths and counts.
pub fn push_uleb(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = u8::try_from(value & 0x7f).expect("7 bits");
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
