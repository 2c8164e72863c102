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

/// How long a rotated refresh token may be presented again and get the same
/// successor. A phone on a weak link often loses the answer to a refresh and
/// retries with the token it still holds; without this it would be locked out
/// (reuse revokes the family). Short, and only while the successor is unused,
/// so a stolen token replayed later still revokes the family.
pub const RETRY_GRACE: std::time::Duration = std::time::Duration::from_secs(120);

/// The successor of `presented`: derived with the server's key, so a retry
/// of the same refresh derives the same token (the server stores only hashes
/// and could not hand the successor out again otherwise). Unpredictable to
/// anyone without the key, like a random token.
pub fn successor_refresh_token(key: &[u8], presented: &str) -> IssuedRefreshToken {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length; the error is unreachable but handled
    // by falling back to a random token (a retry then revokes, as before).
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return new_refresh_token();
    };
    mac.update(b"visit-diary/refresh-successor/v1\0");
    mac.update(presented.as_bytes());
    let token = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
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

    #[test]
    fn successors_are_keyed_and_repeatable() {
        let t = new_refresh_token().token;
        let a = successor_refresh_token(b"key one", &t);
        assert_eq!(a.token, successor_refresh_token(b"key one", &t).token);
        assert_ne!(a.token, successor_refresh_token(b"key two", &t).token);
        assert_ne!(a.token, successor_refresh_token(b"key one", &a.token).token);
        assert!(looks_like_refresh_token(&a.token));
        assert_eq!(a.hash, hash_refresh_token(&a.token));
    }
}
