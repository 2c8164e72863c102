//! Points in time and calendar dates, as the records store them.

use std::fmt;

/// Milliseconds since the Unix epoch, UTC. The core never reads a clock: the
/// caller passes `now` in.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

/// China Standard Time: calendar dates (deadlines, "the visit's day") are
/// reckoned in UTC+8, where every user of the system lives.
pub const CHINA_OFFSET_SECONDS: i32 = 8 * 3600;

impl Timestamp {
    /// From milliseconds since the epoch.
    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (automerge change times are in seconds).
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// The calendar date of this instant in China Standard Time, or `None` for
    /// instants outside the range the `time` crate represents.
    pub fn china_date(self) -> Option<time::Date> {
        let offset = time::UtcOffset::from_whole_seconds(CHINA_OFFSET_SECONDS).ok()?;
        let nanos = i128::from(self.0).checked_mul(1_000_000)?;
        let utc = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        Some(utc.to_offset(offset).date())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.0)
    }
}

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<time::Date> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// Formats a date as `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn china_date_rolls_over_at_utc_16() {
        // 2026-11-23T15:59:59Z is 23:59:59 in Beijing; one second later is the 24th.
        let before = Timestamp(1_795_449_599_000);
        let after = Timestamp(1_795_449_600_000);
        assert_eq!(
            before.china_date().map(format_date).as_deref(),
            Some("2026-11-23")
        );
        assert_eq!(
            after.china_date().map(format_date).as_deref(),
            Some("2026-11-24")
        );
    }

    #[test]
    fn dates_round_trip() {
        let d = parse_date("2026-02-28").expect("valid");
        assert_eq!(format_date(d), "2026-02-28");
        assert!(parse_date("2026-02-30").is_none());
        assert!(parse_date("tomorrow").is_none());
    }
}
