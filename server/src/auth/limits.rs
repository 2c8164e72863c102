//! Limits on password checks, so that guessing is slow and a flood of logins
//! cannot exhaust the server:
//!
//! - failed logins back off, per username and per client address: after a
//!   few free failures each further one locks that name (or address) for
//!   twice as long as the last, up to [`MAX_LOCK`]; a locked attempt is
//!   answered at once (429 with `Retry-After`) without checking the
//!   password. Unknown and existing usernames are tracked alike, so the
//!   answers do not tell them apart;
//! - only a few argon2 checks run at once (each takes tens of milliseconds
//!   and 19 MiB); a login that cannot get a turn within [`QUEUE_WAIT`] is
//!   answered 503 with `Retry-After`.
//!
//! The tables are in memory (a restart forgets them, which only gives an
//! attacker a few more guesses) and bounded: past [`MAX_TRACKED`] entries,
//! forgotten failures are dropped first, then unlocked entries.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::password::{PasswordCheckers, PasswordError};

/// Failures further apart than this start counting again from zero.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// The longest a name or an address is locked.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// How long a login waits for a turn at password checking.
pub const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Entries per table (usernames, addresses) kept at most.
pub const MAX_TRACKED: usize = 100_000;

/// The knobs, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimitSettings {
    /// Failed logins of one username before it backs off.
    pub free_failures_per_user: u32,
    /// Failed logins from one address before it backs off (a village office
    /// behind one NAT address has many users).
    pub free_failures_per_address: u32,
    /// Password checks running at once.
    pub concurrent_password_checks: usize,
}

/// Why a login was not even checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures: try again after this long.
    BackOff(Duration),
    /// Every password-checking turn is taken: try again shortly.
    Busy,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
struct Table {
    free: u32,
    entries: Mutex<HashMap<String, Failures>>,
}

impl Table {
    fn new(free: u32) -> Self {
        Table {
            free,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn locked_for(&self, key: &str, now: Instant) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let until = entries.get(key)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns how many there have been lately.
    fn fail(&self, key: &str, now: Instant) -> u32 {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_TRACKED && !entries.contains_key(key) {
            make_room(&mut entries, now);
        }
        let entry = entries.entry(key.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
            locked_until: None,
        });
        if now.saturating_duration_since(entry.last) > FORGET_AFTER {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        if entry.count > self.free {
            let doublings = (entry.count - self.free - 1).min(20);
            let lock = Duration::from_secs(1u64 << doublings).min(MAX_LOCK);
            entry.locked_until = Some(now + lock);
        }
        entry.count
    }

    fn forget(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Drops forgotten failures, then (if still full) every unlocked entry.
fn make_room(entries: &mut HashMap<String, Failures>, now: Instant) {
    entries.retain(|_, f| now.saturating_duration_since(f.last) <= FORGET_AFTER);
    if entries.len() >= MAX_TRACKED {
        entries.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
    }
    if entries.len() >= MAX_TRACKED {
        entries.clear();
    }
}

/// The login limits of one server process.
#[derive(Debug)]
pub struct LoginLimits {
    users: Table,
    addresses: Table,
    checks: Semaphore,
    checkers: PasswordCheckers,
}

impl LoginLimits {
    /// Limits with these settings.
    pub fn new(settings: LoginLimitSettings) -> Self {
        LoginLimits {
            users: Table::new(settings.free_failures_per_user),
            addresses: Table::new(settings.free_failures_per_address),
            checks: Semaphore::new(settings.concurrent_password_checks.max(1)),
            checkers: PasswordCheckers::new(settings.concurrent_password_checks),
        }
    }

    /// Whether a login for `username` from `address` may be checked now.
    pub fn check(
        &self,
        username: &str,
        address: Option<&str>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let user = self.users.locked_for(username, now);
        let addr = address.and_then(|a| self.addresses.locked_for(a, now));
        match user.max(addr) {
            Some(wait) => Err(Refusal::BackOff(wait)),
            None => Ok(()),
        }
    }

    /// Checks a password (see [`super::password::verify_password`]) once a
    /// turn is free, waiting up to [`QUEUE_WAIT`] for one.
    pub async fn check_password(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<Result<bool, PasswordError>, Refusal> {
        let Ok(Ok(_turn)) = tokio::time::timeout(QUEUE_WAIT, self.checks.acquire()).await else {
            return Err(Refusal::Busy);
        };
        Ok(self.checkers.verify(password, hash).await)
    }

    /// Records a failed login; returns the username's recent failure count.
    pub fn failed(&self, username: &str, address: Option<&str>, now: Instant) -> u32 {
        if let Some(address) = address {
            self.addresses.fail(address, now);
        }
        self.users.fail(username, now)
    }

    /// Records a successful login: the username starts afresh (its
    /// address does not: one success does not excuse a spray of guesses).
    pub fn succeeded(&self, username: &str) {
        self.users.forget(username);
    }

    /// Entries held (usernames, addresses), for tests and metrics.
    pub fn tracked(&self) -> (usize, usize) {
        (self.users.len(), self.addresses.len())
    }
}

/// Whether the `n`th recent failure of a username gets an audit row: each
/// of the first `free` ones, then the 2nd, 4th, 8th … beyond, so a
/// guessing attack adds a few rows per name, not one per guess.
pub fn audit_failure(n: u32, free: u32) -> bool {
    n <= free || n.is_power_of_two()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LoginLimits {
        LoginLimits::new(LoginLimitSettings {
            free_failures_per_user: 3,
            free_failures_per_address: 5,
            concurrent_password_checks: 1,
        })
    }

    #[test]
    fn a_name_backs_off_after_its_free_failures_doubling_each_time() {
        let l = limits();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.check("alice", None, t0), Ok(()));
            assert_eq!(l.failed("alice", None, t0), i + 1);
        }
        assert_eq!(l.check("alice", None, t0), Ok(()), "three free failures");
        l.failed("alice", None, t0);
        assert_eq!(
            l.check("alice", None, t0),
            Err(Refusal::BackOff(Duration::from_secs(1)))
        );
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(l.check("alice", None, t1), Ok(()), "the lock runs out");
        l.failed("alice", None, t1);
        assert_eq!(
            l.check("alice", None, t1),
            Err(Refusal::BackOff(Duration::from_secs(2)))
        );
        assert_eq!(l.check("bob", None, t1), Ok(()), "other names unaffected");
    }

    #[test]
    fn locks_are_capped_and_failures_are_forgotten() {
        let l = limits();
        let t0 = Instant::now();
        for _ in 0..40 {
            l.failed("mallory", None, t0);
        }
        assert_eq!(
            l.check("mallory", None, t0),
            Err(Refusal::BackOff(MAX_LOCK))
        );
        let later = t0 + MAX_LOCK + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(l.check("mallory", None, later), Ok(()));
        assert_eq!(l.failed("mallory", None, later), 1, "counting starts again");
    }

    #[test]
    fn an_address_that_sprays_many_names_backs_off() {
        let l = limits();
        let t0 = Instant::now();
        for i in 0..6 {
            l.failed(&format!("user{i}"), Some("10.0.0.9"), t0);
        }
        assert!(matches!(
            l.check("someone-else", Some("10.0.0.9"), t0),
            Err(Refusal::BackOff(_))
        ));
        assert_eq!(l.check("someone-else", Some("10.0.0.10"), t0), Ok(()));
    }

    #[test]
    fn success_clears_the_name() {
        let l = limits();
        let t0 = Instant::now();
        for _ in 0..4 {
            l.failed("alice", None, t0);
        }
        l.succeeded("alice");
        assert_eq!(l.check("alice", None, t0), Ok(()));
        assert_eq!(l.failed("alice", None, t0), 1);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let l = limits();
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED + 10) {
            l.failed(&format!("name{i}"), None, t0);
        }
        assert!(l.tracked().0 <= MAX_TRACKED);
    }

    #[tokio::test]
    async fn a_full_queue_is_busy() {
        let l = limits();
        let _held = l.checks.acquire().await.expect("the only turn");
        assert!(matches!(
            l.check_password("x".to_owned(), None).await,
            Err(Refusal::Busy)
        ));
    }

    #[tokio::test]
    async fn passwords_are_checked_on_the_checker_threads() {
        let l = limits();
        let hash = super::super::password::hash_password("right".to_owned())
            .await
            .expect("hash");
        assert!(matches!(
            l.check_password("right".to_owned(), Some(hash.clone()))
                .await,
            Ok(Ok(true))
        ));
        assert!(matches!(
            l.check_password("wrong".to_owned(), Some(hash)).await,
            Ok(Ok(false))
        ));
    }

    #[test]
    fn audit_rows_thin_out_past_the_free_failures() {
        let audited: Vec<u32> = (1..=40).filter(|&n| audit_failure(n, 5)).collect();
        assert_eq!(audited, [1, 2, 3, 4, 5, 8, 16, 32]);
    }
}
