//! Document ids in the automerge-repo format, so `automerge:<id>` URLs work in any
//! automerge-repo client.

use std::fmt;
use std::str::FromStr;

/// The id of a document: 16 random bytes, written as base58check (the encoding
/// automerge-repo uses: base58 of the bytes followed by the first four bytes of
/// their double SHA-256).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocumentId([u8; 16]);

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentIdError {
    /// The string is not base58, or its checksum does not match.
    #[error("document id {0:?} is not valid base58check")]
    Encoding(String),
    /// The decoded bytes are not 16 bytes long.
    #[error("document id {0:?} does not hold 16 bytes")]
    Length(String),
}

impl DocumentId {
    /// A document id from 16 random bytes; the caller supplies the randomness.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The `automerge:<id>` URL of this document.
    pub fn url(&self) -> String {
        format!("automerge:{self}")
    }

    /// Parses either a bare id or an `automerge:` URL.
    pub fn parse_url(s: &str) -> Result<Self, DocumentIdError> {
        s.strip_prefix("automerge:").unwrap_or(s).parse()
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.0).with_check().into_string())
    }
}

impl fmt::Debug for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DocumentId({self})")
    }
}

impl FromStr for DocumentId {
    type Err = DocumentIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A base58 string of 16 bytes plus checksum is at most 28 characters;
        // refusing long input first keeps decoding cheap for hostile peers.
        if s.len() > 64 {
            return Err(DocumentIdError::Length(s.chars().take(64).collect()));
        }
        let bytes = bs58::decode(s)
            .with_check(None)
            .into_vec()
            .map_err(|_| DocumentIdError::Encoding(s.to_owned()))?;
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| DocumentIdError::Length(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

/// For row decoders that take an owned string (sqlx's `try_from = "String"`).
impl TryFrom<String> for DocumentId {
    type Error = DocumentIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl serde::Serialize for DocumentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DocumentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = DocumentId::from_bytes([7; 16]);
        let text = id.to_string();
        assert_eq!(text.parse::<DocumentId>(), Ok(id));
        assert_eq!(DocumentId::parse_url(&id.url()), Ok(id));
    }

    #[test]
    fn matches_automerge_repo_encoding() {
        // An id produced by automerge-repo's `generateAutomergeUrl()`; it must
        // parse, and print back unchanged.
        let text = "4NMNnkMhL8jXrdJ9jamS58PAVdXu";
        let id: DocumentId = text.parse().expect("valid id");
        assert_eq!(id.to_string(), text);
    }

    #[test]
    fn refuses_bad_checksum_and_length() {
        assert!(matches!(
            "4NMNnkMhL8jXrdJ9jamS58PAVdXv".parse::<DocumentId>(),
            Err(DocumentIdError::Encoding(_))
        ));
        let short = bs58::encode([1u8; 8]).with_check().into_string();
        assert!(matches!(
            short.parse::<DocumentId>(),
            Err(DocumentIdError::Length(_))
        ));
        assert!("".parse::<DocumentId>().is_err());
    }
}
