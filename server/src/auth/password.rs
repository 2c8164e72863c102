//! argon2id password hashes (PHC strings).
//!
//! Hashing is deliberately slow (tens of milliseconds, 19 MiB), so both
//! functions run on the blocking thread pool instead of stalling the async
//! workers that serve everyone else.

use std::cell::RefCell;
use std::sync::OnceLock;

use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher, Version};

/// Why hashing failed (never because of a wrong password).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// argon2 rejected its input or parameters.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The blocking task was cancelled or panicked.
    #[error("password hashing task failed")]
    Join(#[source] tokio::task::JoinError),
    /// The checker thread is gone or the check panicked.
    #[error("password check failed")]
    Gone,
}

/// Fewest characters a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Most bytes a password may have (argon2 takes any length; this bounds work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Passwords guessed first, lower-cased: keyboard walks, number runs and the
/// favourites of leaked Chinese password lists that pass the length rule.
const COMMON_PASSWORDS: &[&str] = &[
    "1234567890",
    "0123456789",
    "12345678910",
    "123456789a",
    "a123456789",
    "1234567890a",
    "qwertyuiop",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "qazwsxedcrfv",
    "zxcvbnm123",
    "password123",
    "password1234",
    "passw0rd123",
    "iloveyou123",
    "woaini1314520",
    "5201314woaini",
    "woaini520",
    "abc1234567",
    "abcd123456",
    "admin12345",
    "admin123456",
    "aa123456789",
    "qq123456789",
];

/// Whether `password` may be set for `username`: at least
/// [`MIN_PASSWORD_CHARS`] characters (Chinese characters count one each), at
/// most [`MAX_PASSWORD_BYTES`] bytes, at least four different characters,
/// not containing the username, not a common password. The answer says what
/// is wrong, in words a person can act on.
pub fn check_policy(username: &str, password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "the password must have at most {MAX_PASSWORD_BYTES} bytes"
        ));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err("the password needs at least four different characters".to_owned());
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err("the password must not contain the username".to_owned());
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err("this password is among the first ones guessed; choose another".to_owned());
    }
    Ok(())
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
    tokio::task::spawn_blocking(move || verify_password_blocking(&password, hash))
        .await
        .map_err(PasswordError::Join)?
}

/// Synchronous form of [`verify_password`].
pub fn verify_password_blocking(
    password: &str,
    hash: Option<String>,
) -> Result<bool, PasswordError> {
    let known = hash.is_some();
    let hash = match hash {
        Some(hash) => hash,
        None => dummy_hash()?.to_owned(),
    };
    let matches = verify_reusing_memory(password.as_bytes(), &hash);
    Ok(known && matches)
}

/// The most argon2 memory a stored hash may ask for (ours use 19 MiB); a
/// hash asking for more is not ours and never matches.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

thread_local! {
    /// This thread's argon2 working memory, allocated once and reused:
    /// allocating 19 MiB per check and freeing it left the C allocator
    /// holding hundreds of megabytes after a burst of logins.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2's `verify_password`, with the working memory of this thread.
fn verify_reusing_memory(password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::new(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version {
        Some(v) => Version::try_from(v),
        None => Ok(Version::default()),
    };
    let (Ok(version), Ok(params)) = (version, Params::try_from(&hash)) else {
        return false;
    };
    if params.m_cost() > MAX_MEMORY_KIB {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let hashed = MEMORY.with_borrow_mut(|memory| {
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password,
                salt.as_ref(),
                &mut out,
                &mut memory[..blocks],
            )
            .is_ok()
    });
    // `Output`'s comparison is constant-time.
    hashed && Output::new(&out).is_ok_and(|computed| &computed == expected)
}

type Job = Box<dyn FnOnce() + Send>;

/// A few threads that do nothing but check passwords.
///
/// Not tokio's blocking pool: each check allocates 19 MiB, and the C
/// allocator keeps freed memory in a per-thread arena, so checks spread over
/// the blocking pool's many threads left hundreds of megabytes resident after
/// a burst of logins even when only a few ran at once. On a fixed set of
/// threads that memory is reused. The threads end when this is dropped.
#[derive(Debug)]
pub struct PasswordCheckers {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl PasswordCheckers {
    /// Starts `threads` checker threads (at least one).
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = std::sync::Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("password-check-{i}"))
                .spawn(move || {
                    loop {
                        let next = queue
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        let Ok(job) = next else { return };
                        // A panicking check fails that login, not the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password-check thread");
            }
        }
        PasswordCheckers { jobs }
    }

    /// [`verify_password`] on these threads.
    pub async fn verify(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, PasswordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(verify_password_blocking(&password, hash));
            }))
            .map_err(|_| PasswordError::Gone)?;
        rx.await.map_err(|_| PasswordError::Gone)?
    }
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

    #[test]
    fn the_policy_names_what_is_wrong() {
        assert!(check_policy("cadre01", "河湾村走访2026年春").is_ok());
        assert!(check_policy("cadre01", "s3cret pass").is_ok());
        let refused = |p: &str, why: &str| {
            let err = check_policy("cadre01", p).expect_err(p);
            assert!(err.contains(why), "{p}: {err}");
        };
        refused("short1", "at least 10");
        refused("1111111111", "four different");
        refused("Cadre01-2026!", "username");
        refused("Woaini1314520", "first ones guessed");
        refused(&"长".repeat(600), "at most 1024 bytes");
    }

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
