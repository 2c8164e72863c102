//! argon2id password hashes (PHC strings).
//!
//! Hashing is deliberately slow (tens of milliseconds, 19 MiB), so both
//! functions run on the blocking thread pool instead of stalling the async
//! workers that serve everyone else.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Why hashing failed (never because of a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 rejected its input or parameters.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task was cancelled or panicked.
    #[error("password hashing task failed")]
    Join(#[source] tokio::task::JoinError),
}

/// Hashes a password with argon2id (default parameters: m=19 MiB, t=2, p=1,
/// the OWASP recommendation) and a random salt.
pub async fn hash_password(password: String) -> Result<String, PasswordError> {
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(PasswordError::Join)?
}

/// Synchronous form of [`hash_password`], for code already off the async
/// workers.
pub fn hash_password_blocking(password: &str) -> Result<String, PasswordError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches `hash`. A malformed hash counts as a mismatch.
///
/// `hash: None` (unknown user) still spends the time of a real check against
/// a fixed dummy hash, so the answer time does not tell whether a username
/// exists.
pub async fn verify_password(
    password: String,
    hash: Option<String>,
) -> Result<bool, PasswordError> {
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = match hash {
            Some(hash) => hash,
            None => dummy_hash()?.to_owned(),
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok();
        Ok(known && matches)
    })
    .await
    .map_err(PasswordError::Join)?
}

/// Computes the dummy hash used for unknown users ahead of time, so the first
/// login attempt for an unknown name is not slower than the others. Blocking:
/// call it from `spawn_blocking`.
pub fn warm_up() {
    if let Err(e) = dummy_hash() {
        tracing::warn!(error = %e, "cannot prepare the dummy password hash");
    }
}

fn dummy_hash() -> Result<&'static str, PasswordError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_password_blocking("not a real password")?;
    Ok(DUMMY.get_or_init(|| hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let hash = hash_password("correct horse".to_owned())
            .await
            .expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password("correct horse".to_owned(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !verify_password("wrong".to_owned(), Some(hash))
                .await
                .expect("verify")
        );
        assert!(
            !verify_password("x".to_owned(), Some("not a hash".to_owned()))
                .await
                .expect("verify")
        );
        assert!(
            !verify_password("not a real password".to_owned(), None)
                .await
                .expect("verify"),
            "an unknown user never matches"
        );
    }
}
