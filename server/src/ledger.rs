//! The canonical ledger (台账): relational rows projected from the documents.
//!
//! - [`projection`]: [`LedgerProjection`], the rows one automerge document
//!   stands for (a pure function, unit-tested).
//! - The SQL that replaces a document's rows (called by the store inside the
//!   transaction that stores a chunk, see
//!   [`DocumentWrite::ledger`](crate::store::DocumentWrite::ledger)) and
//!   answers ledger queries lives with each backend, under `store/`; this
//!   module holds only backend-free code and plain types.
//! - [`rebuild`]: `server ledger rebuild`, which projects every stored
//!   document again.
//!
//! The ledger is never the source of truth: it can be dropped and rebuilt
//! from the documents at any time.

pub mod attribution;
pub mod household;
pub mod projection;
pub mod rebuild;
pub mod report;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sync_core::records::petition::{Category, Level, PetitionStatus, Satisfaction};

use crate::store::Store;

pub use attribution::{Attribution, EventJudgement, Flag, Writer};
pub use projection::{
    CardRow, LedgerProjection, LedgerScope, PetitionEventRow, PetitionRow, ProjectionError,
    VisitRow,
};
pub use rebuild::{RebuildError, RebuildSummary, rebuild};

/// Folds `ledger_counts` every `every` until `stop` completes (see
/// [`Store::fold_ledger_counts`]); a failure is logged and tried again at
/// the next tick.
pub async fn fold_counts_periodically(
    store: std::sync::Arc<dyn Store>,
    every: std::time::Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = tick.tick() => match store.fold_ledger_counts().await {
                Ok(0) => {}
                Ok(removed) => tracing::debug!(removed, "folded ledger counts"),
                Err(error) => tracing::warn!(%error, "folding ledger counts failed"),
            },
            () = &mut stop => return,
        }
    }
}

/// Which petitions [`Store::query_ledger`](crate::store::Store::query_ledger)
/// returns. Every `Some` narrows the result; deleted petitions never appear.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerQuery {
    /// Only petitions whose owner's unit is one of these.
    pub unit_ids: Option<Vec<i64>>,
    /// Only petitions in documents of this user.
    pub owner_user_id: Option<i64>,
    pub status: Option<PetitionStatus>,
    pub category: Option<Category>,
    /// Today's China date (`YYYY-MM-DD`), which deadlines are compared with
    /// for [`LedgerItem::overdue`] and `overdue_only`.
    pub today: String,
    /// Only petitions overdue on `today`.
    pub overdue_only: bool,
    /// Only petitions this username is responsible for (whoever's diary
    /// they live in).
    pub responsible: Option<String>,
    pub level: Option<Level>,
    /// Only petitions recorded at or after this instant.
    pub created_from: Option<DateTime<Utc>>,
    /// Only petitions recorded before this instant.
    pub created_to: Option<DateTime<Utc>>,
    /// Only petitions whose matter, applicant, address, responsible person
    /// or feedback contains this text (taken literally).
    pub text: Option<String>,
    /// Only petitions still open or in progress.
    pub unfinished_only: bool,
    /// Only petitions last resolved at or after this instant.
    pub resolved_from: Option<DateTime<Utc>>,
    /// Only petitions last resolved before this instant.
    pub resolved_to: Option<DateTime<Utc>>,
    /// The order of the page.
    pub sort: LedgerSort,
    /// Skip counting the matches ([`LedgerPage::total`] is then 0): an
    /// export reading page after page needs no total.
    pub without_total: bool,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

impl LedgerQuery {
    /// Whether the total can be read from `ledger_counts` (live petitions
    /// per unit, status, category and level, kept by the database with
    /// every write) instead of counting the matching rows: true when the
    /// query narrows by nothing else than those four.
    pub fn total_from_counts(&self) -> bool {
        let LedgerQuery {
            unit_ids: _,
            owner_user_id,
            status: _,
            category: _,
            today: _,
            overdue_only,
            responsible,
            level: _,
            created_from,
            created_to,
            text,
            unfinished_only: _,
            resolved_from,
            resolved_to,
            sort: _,
            without_total: _,
            limit: _,
            offset: _,
        } = self;
        owner_user_id.is_none()
            && !overdue_only
            && responsible.is_none()
            && created_from.is_none()
            && created_to.is_none()
            && text.is_none()
            && resolved_from.is_none()
            && resolved_to.is_none()
    }

    /// Whether the total can be read from the counts of petitions per unit
    /// that have a two-character piece of text (a backend's index of
    /// bigrams): true when the query searches for exactly two characters
    /// and narrows by nothing else than the units. Such a text is in a
    /// petition exactly when that piece is.
    pub fn total_from_bigram_counts(&self) -> bool {
        let LedgerQuery {
            unit_ids: _,
            owner_user_id,
            status,
            category,
            today: _,
            overdue_only,
            responsible,
            level,
            created_from,
            created_to,
            text,
            unfinished_only,
            resolved_from,
            resolved_to,
            sort: _,
            without_total: _,
            limit: _,
            offset: _,
        } = self;
        text.as_deref().is_some_and(|t| t.chars().count() == 2)
            && owner_user_id.is_none()
            && status.is_none()
            && category.is_none()
            && !overdue_only
            && responsible.is_none()
            && level.is_none()
            && created_from.is_none()
            && created_to.is_none()
            && !unfinished_only
            && resolved_from.is_none()
            && resolved_to.is_none()
    }
}

/// How many different two-character pieces `text` has (characters, not
/// bytes), as the bigram index of the ledger's text search splits it.
pub fn distinct_bigrams(text: &str) -> usize {
    let chars: Vec<char> = text.chars().collect();
    let pieces: std::collections::HashSet<&[char]> = chars.windows(2).collect();
    pieces.len()
}

/// The order of a ledger page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LedgerSort {
    /// Newest first (the default).
    #[default]
    Newest,
    /// Oldest first.
    Oldest,
    /// Soonest deadline first; items without one last.
    Deadline,
}

impl LedgerSort {
    /// The name used in the API and bound into the query.
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerSort::Newest => "newest",
            LedgerSort::Oldest => "oldest",
            LedgerSort::Deadline => "deadline",
        }
    }

    /// Parses [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [LedgerSort::Newest, LedgerSort::Oldest, LedgerSort::Deadline]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One page of petitions and the number matching in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerPage {
    /// The page, newest first.
    pub items: Vec<LedgerItem>,
    /// Rows matching the query, all pages together.
    pub total: i64,
}

/// A petition as the ledger list shows it, with its unit and owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LedgerItem {
    /// Petition record id.
    pub id: String,
    /// The diary it lives in.
    pub document_id: String,
    /// Owner's unit code.
    pub unit_code: String,
    /// Owner's unit name.
    pub unit_name: String,
    /// Owner's username.
    pub owner: String,
    /// Owner's display name.
    pub owner_name: String,
    pub applicant_name: String,
    /// Applicant's phone, unmasked (the API masks it).
    pub applicant_phone: Option<String>,
    /// Applicant's address, unmasked.
    pub applicant_address: Option<String>,
    pub matter: String,
    pub category: Category,
    pub level: Level,
    /// Responsible username.
    pub responsible: String,
    /// `YYYY-MM-DD`.
    pub deadline: Option<String>,
    pub status: PetitionStatus,
    /// Last feedback to the resident.
    pub feedback: Option<String>,
    pub satisfaction: Option<Satisfaction>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Last resolution.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Its China date.
    pub resolved_on: Option<String>,
    /// Number of events in its history.
    pub event_count: i64,
    /// Open or in progress with a deadline before the query's `today`; the
    /// same SQL as the `overdue_only` filter decides it.
    pub overdue: bool,
}

/// One event of a petition's history as the ledger holds it: who the server
/// knows wrote it, what the event claims, and whether it counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LedgerEvent {
    /// Event id.
    pub id: String,
    /// When, by the writing device's clock (or the server's).
    pub at: DateTime<Utc>,
    /// Username of the writer the server recorded (the claim when the
    /// writer is unknown, flagged `unknown_writer`).
    pub actor: String,
    /// What the event's own `by` field says.
    pub claimed_by: String,
    /// The device that sent it, if a device did.
    pub device_id: Option<String>,
    /// Written by the server on the writer's behalf (through the API).
    pub via_server: bool,
    /// Whether it counts towards the petition's state.
    pub believed: bool,
    /// Why it does not count, or what is odd about it.
    pub flag: Option<Flag>,
    /// `PetitionEventKind::type_name`.
    pub event_type: String,
    /// The note or reason.
    pub note: Option<String>,
    /// The whole event as JSON.
    pub detail: String,
}
