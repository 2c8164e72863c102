//! How much a server's resident memory grows under a flood, and the check
//! that a bound is what keeps it down.

use crate::{reset_peak_rss, status_kib};

/// A process's resident memory from a starting point on: its peak since
/// then, less what it held at the start.
#[derive(Debug)]
pub struct MemoryGrowth {
    pid: u32,
    before_kib: u64,
    sampled_kib: u64,
}

impl MemoryGrowth {
    /// Starts the process's peak over (see [`reset_peak_rss`]) and notes its
    /// resident memory now.
    pub fn start(pid: u32) -> MemoryGrowth {
        reset_peak_rss(pid);
        let before_kib = status_kib(pid, "VmRSS:");
        MemoryGrowth {
            pid,
            before_kib,
            sampled_kib: before_kib,
        }
    }

    /// Reads the resident memory now, so the peak is at least that.
    pub fn sample(&mut self) {
        self.sampled_kib = self.sampled_kib.max(status_kib(self.pid, "VmRSS:"));
    }

    /// The peak since [`MemoryGrowth::start`] (`VmHWM:`, or a larger
    /// [`sample`](MemoryGrowth::sample)) less the resident memory then, in
    /// MiB.
    pub fn mib(&self) -> f64 {
        let peak = status_kib(self.pid, "VmHWM:").max(self.sampled_kib);
        peak.saturating_sub(self.before_kib) as f64 / 1024.0
    }
}

/// Asserts that a flood (`what`) grew the memory of a server with `bound` in
/// place by under `limit_mib` (`bounded_mib`), and that of a server without
/// it by more than twice as much (`unbounded_mib`): the bound is what keeps
/// memory down.
pub fn assert_bound_keeps_memory_down(
    bound: &str,
    what: &str,
    limit_mib: f64,
    bounded_mib: f64,
    unbounded_mib: f64,
) {
    assert!(
        bounded_mib < limit_mib,
        "{what} should stay well under {limit_mib} MiB: {bounded_mib:.0} MiB"
    );
    assert!(
        unbounded_mib > 2.0 * bounded_mib,
        "{bound} is what keeps memory down: {unbounded_mib:.0} vs {bounded_mib:.0} MiB"
    );
}
