//! When the benches' recorded visits happened.

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(since_epoch.as_millis()).expect("ms")
}

/// `count` instants ten minutes apart, the last ten minutes before `now_ms`
/// (milliseconds since the Unix epoch), oldest first.
pub fn ten_minutes_apart_until(now_ms: i64, count: usize) -> impl Iterator<Item = i64> {
    (0..count).map(move |i| now_ms - 600_000 * i64::try_from(count - i).expect("count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oldest_first_up_to_ten_minutes_ago() {
        let at: Vec<i64> = ten_minutes_apart_until(10_000_000, 3).collect();
        assert_eq!(at, [8_200_000, 8_800_000, 9_400_000]);
    }
}
