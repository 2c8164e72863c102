//! Opaque refresh tokens.
//!
//! A refresh token is 32 random bytes, base64url without padding. Only its
//! sha256 (hex) is stored, so a copy of the database cannot be replayed as
//! tokens; sha256 (not argon2) is enough because the token has 256 bits of
//! entropy and cannot be guessed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Length of a token as handed to clients (43 characters).
pub const TOKEN_LEN: usize = 43;

/// A fresh token and the hash to store for it.
#[derive(Clone)]
pub struct IssuedRefreshToken {
    /// The value handed to the client, once.
    pub token: String,
    /// sha256 (hex) of `token`, stored in `refresh_tokens.token_hash`.
    pub hash: String,
}

impl std::fmt::Debug for IssuedRefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedRefreshToken")
            .field("token", &"[redacted]")
            .field("hash", &self.hash)
            .finish()
    }
}

/// Makes a new random token.
pub fn new_refresh_token() -> IssuedRefreshToken {
    let bytes: [u8; 32] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_refresh_token(&token);
    IssuedRefreshToken { token, hash }
}

/// The stored form of a token.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Cheap shape check before touching the database: right length, base64url
/// alphabet. Anything else cannot be one of our tokens.
pub fn looks_like_refresh_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new family id for a login: 16 random bytes, hex.
pub fn new_family_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = new_refresh_token();
        let b = new_refresh_token();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), TOKEN_LEN);
        assert!(looks_like_refresh_token(&a.token));
        assert_eq!(a.hash, hash_refresh_token(&a.token));
        assert_eq!(a.hash.len(), 64);
        assert!(!looks_like_refresh_token("short"));
        assert!(!looks_like_refresh_token(&"!".repeat(TOKEN_LEN)));
        assert!(!format!("{a:?}").contains(&a.token));
    }
}
