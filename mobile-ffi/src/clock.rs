//! The phone's clock and randomness, which sync-core takes as arguments.

use sync_core::{RecordId, Timestamp};

/// Now, by the phone's clock. A clock before 1970 reads as the epoch rather
/// than failing: the edit still gets recorded.
pub(crate) fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp(ms)
}

/// A fresh record id.
pub(crate) fn new_id() -> RecordId {
    RecordId::from_random_bytes(rand::random())
}

/// Today in China time (petitions' deadlines are dates there).
pub(crate) fn today() -> Option<time::Date> {
    now().china_date()
}

/// The year of an instant in China time; a diary holds one such year.
pub(crate) fn year_of(at: Timestamp) -> i32 {
    at.china_date().map_or(1970, |d| d.year())
}
