//! The cadre's own progress this year, against the quota.

/// A village-contact cadre visits at least 120 households a year (domain.md,
/// from the campaign's work plans). Leaders have other quotas; the server's
/// statistics are where those are judged.
pub(crate) const HOUSEHOLD_QUOTA: u32 = 120;

/// Visits and distinct households of this year, from this phone's store.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Progress {
    /// The year (China time).
    pub year: i32,
    /// Live visits of the year.
    pub visits: u32,
    /// Distinct households visited (by name and address).
    pub households: u32,
    /// The yearly household quota.
    pub household_quota: u32,
    /// Petitions recorded this year.
    pub petitions: u32,
    /// Of those, not yet resolved or closed.
    pub petitions_open: u32,
}
