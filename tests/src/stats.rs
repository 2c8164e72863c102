//! Medians and percentiles of measured durations, and how the benches'
//! tables print them.

use std::time::Duration;

/// The nearest-rank `p`th percentile of `sorted` (ascending); zero when
/// there is none.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// The median of `v`: the upper one of an even count.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Milliseconds to one decimal place.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let ms: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&ms, 50), Duration::from_millis(100));
        assert_eq!(percentile(&ms, 99), Duration::from_millis(198));
        assert_eq!(percentile(&ms[..1], 99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
        assert_eq!(median(ms[..4].to_vec()), Duration::from_millis(3));
    }

    #[test]
    fn milliseconds() {
        assert_eq!(ms(Duration::from_micros(12_345)), "12.3");
    }
}
