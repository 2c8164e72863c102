//! Prometheus metrics, served at `/metrics`.
//!
//! Built on the `metrics` facade: recording is a cheap call anywhere in the
//! server, and the one process-wide Prometheus recorder renders the text
//! format. The helpers below are the only names the rest of the server
//! should use, so the metric names stay in one file.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// HTTP requests answered, by method, route pattern and status.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// Database operations that failed with a backend error.
pub const DB_ERRORS_TOTAL: &str = "db_errors_total";
/// Open sync (WebSocket) connections.
pub const SYNC_CONNECTIONS: &str = "sync_connections";
/// Sync protocol messages, by direction (`in` / `out`).
pub const SYNC_MESSAGES_TOTAL: &str = "sync_messages_total";
/// Time to merge incoming changes into a document and store them.
pub const MERGE_SECONDS: &str = "merge_seconds";
/// Sync messages refused for what they carried (inflating past the limit,
/// nesting too deep, too many operations, unreadable), by reason.
pub const SYNC_REFUSED_PAYLOADS_TOTAL: &str = "sync_refused_payloads_total";
/// Document compactions, by result (`ok` / `conflict` / `error`).
pub const COMPACTIONS_TOTAL: &str = "document_compactions_total";
/// Transactions of SQLite's group commit (`store/sqlite/group_commit.rs`).
pub const GROUP_COMMITS_TOTAL: &str = "sqlite_group_commits_total";
/// Writes committed by those transactions (divided by the commits: the
/// mean batch).
pub const GROUP_COMMIT_WRITES_TOTAL: &str = "sqlite_group_commit_writes_total";
/// Documents made current for a sync or an action, by whether the copy in
/// memory was reused (`live`) or loaded from the store (`loaded`).
pub const LIVE_DOCUMENT_USES_TOTAL: &str = "live_document_uses_total";
/// Seconds spent making a document current (checking the stored version,
/// applying newer chunks, or loading it whole).
pub const LIVE_DOCUMENT_SECONDS: &str = "live_document_seconds";
/// Live document copies dropped from memory (idle, or over the budget).
pub const LIVE_DOCUMENTS_EVICTED_TOTAL: &str = "live_documents_evicted_total";
/// Received changes stored while they wait for a dependency that has not
/// arrived yet (after a Bloom-filter false positive on the peer's side).
pub const SYNC_CHANGES_WAITING_TOTAL: &str = "sync_changes_waiting_total";
/// Writes tried again because another server process wrote the same
/// document first.
pub const STALE_WRITES_TOTAL: &str = "stale_writes_total";
/// Document syncs restarted because they made no progress.
pub const SYNC_RESTARTS_TOTAL: &str = "sync_restarts_total";
/// Sync upgrades refused because too many connections were open, by whose
/// (`user` / `address`).
pub const SYNC_CONNECTIONS_REFUSED_TOTAL: &str = "sync_connections_refused_total";
/// Sync connections closed because their session ended, by reason.
pub const SYNC_SESSIONS_ENDED_TOTAL: &str = "sync_sessions_ended_total";
/// Sync connections closed because the peer took no data within the send
/// timeout (it stopped reading).
pub const SYNC_SEND_TIMEOUTS_TOTAL: &str = "sync_send_timeouts_total";

/// Logins refused before their password was checked, by reason
/// (`back_off`, `busy`).
pub const LOGINS_REFUSED_TOTAL: &str = "logins_refused_total";
/// Logins whose password (or username) was wrong.
pub const LOGINS_FAILED_TOTAL: &str = "logins_failed_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder's handle, installing the recorder on first use.
///
/// The recorder is global (the `metrics` macros write to it from anywhere),
/// so it is installed once per process even when a test builds many apps. If
/// some other recorder was installed first, recording goes there and
/// `/metrics` renders an empty but valid page.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(MERGE_SECONDS.to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route and status"
    );
    metrics::describe_counter!(DB_ERRORS_TOTAL, "Database operations that failed");
    metrics::describe_gauge!(SYNC_CONNECTIONS, "Open sync WebSocket connections");
    metrics::describe_counter!(SYNC_MESSAGES_TOTAL, "Sync messages, by direction");
    metrics::describe_histogram!(
        MERGE_SECONDS,
        metrics::Unit::Seconds,
        "Time to merge and store incoming changes of one document"
    );
    metrics::describe_counter!(
        SYNC_REFUSED_PAYLOADS_TOTAL,
        "Sync messages refused for a hostile or unreadable payload, by reason"
    );
    metrics::describe_counter!(COMPACTIONS_TOTAL, "Document compactions, by result");
    metrics::describe_counter!(
        GROUP_COMMITS_TOTAL,
        "Transactions of SQLite's group commit of sync writes"
    );
    metrics::describe_counter!(
        GROUP_COMMIT_WRITES_TOTAL,
        "Sync writes (chunks, audit rows, sync states) committed by SQLite's group commit"
    );
    metrics::describe_counter!(
        LIVE_DOCUMENT_USES_TOTAL,
        "Documents made current, by whether the copy in memory was reused (live) or loaded"
    );
    metrics::describe_histogram!(
        LIVE_DOCUMENT_SECONDS,
        metrics::Unit::Seconds,
        "Time to make a document current before a merge"
    );
    metrics::describe_counter!(
        LIVE_DOCUMENTS_EVICTED_TOTAL,
        "Live document copies dropped from memory (idle or over budget)"
    );
    metrics::describe_counter!(
        SYNC_CHANGES_WAITING_TOTAL,
        "Received changes stored while they wait for a missing dependency"
    );
    metrics::describe_counter!(
        SYNC_CONNECTIONS_REFUSED_TOTAL,
        "Sync upgrades refused for too many open connections, by whose"
    );
    metrics::describe_counter!(
        SYNC_SESSIONS_ENDED_TOTAL,
        "Sync connections closed because their session ended, by reason"
    );
    metrics::describe_counter!(
        SYNC_SEND_TIMEOUTS_TOTAL,
        "Sync connections closed because the peer took no data within the send timeout"
    );
    metrics::describe_counter!(
        STALE_WRITES_TOTAL,
        "Writes tried again because another server process wrote the document first"
    );
    metrics::describe_counter!(
        SYNC_RESTARTS_TOTAL,
        "Document syncs restarted after rounds without progress"
    );
    metrics::describe_counter!(
        LOGINS_REFUSED_TOTAL,
        "Logins refused before the password was checked, by reason"
    );
    metrics::describe_counter!(
        LOGINS_FAILED_TOTAL,
        "Logins with a wrong username or password"
    );
    // Register the series so they appear (at zero) before the first event.
    metrics::counter!(DB_ERRORS_TOTAL).absolute(0);
    metrics::counter!(SYNC_CHANGES_WAITING_TOTAL).absolute(0);
    metrics::counter!(SYNC_RESTARTS_TOTAL).absolute(0);
    metrics::counter!(STALE_WRITES_TOTAL).absolute(0);
    metrics::counter!(SYNC_SEND_TIMEOUTS_TOTAL).absolute(0);
    metrics::counter!(LOGINS_FAILED_TOTAL).absolute(0);
    metrics::gauge!(SYNC_CONNECTIONS).set(0.0);
}

/// Renders the Prometheus text exposition format.
pub fn render() -> String {
    let handle = handle();
    // Histograms are drained into their buckets on upkeep; doing it on each
    // scrape keeps them current without a background task.
    handle.run_upkeep();
    handle.render()
}

/// Counts one answered HTTP request. `route` is the matched pattern
/// (`/api/v1/auth/login`), never the raw path, and `method` one of the
/// standard methods or `other`, so a client cannot make new series.
pub fn http_request(method: &str, route: &str, status: u16) {
    const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let method = KNOWN
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other");
    metrics::counter!(
        HTTP_REQUESTS_TOTAL,
        "method" => method,
        "route" => route.to_owned(),
        "status" => status.to_string()
    )
    .increment(1);
}

/// Counts one failed database operation (called by `StoreError::backend`).
pub fn db_error() {
    metrics::counter!(DB_ERRORS_TOTAL).increment(1);
}

/// A sync connection was accepted: call once after the WebSocket upgrade.
pub fn sync_connection_opened() {
    metrics::gauge!(SYNC_CONNECTIONS).increment(1.0);
}

/// A sync connection ended: call exactly once per
/// [`sync_connection_opened`] (a drop guard is the safe way).
pub fn sync_connection_closed() {
    metrics::gauge!(SYNC_CONNECTIONS).decrement(1.0);
}

/// Direction of a sync message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received from a client.
    In,
    /// Sent to a client.
    Out,
}

/// Counts one sync protocol message.
pub fn sync_message(direction: Direction) {
    let label = match direction {
        Direction::In => "in",
        Direction::Out => "out",
    };
    metrics::counter!(SYNC_MESSAGES_TOTAL, "direction" => label).increment(1);
}

/// Records how long one merge (apply + store) took.
pub fn merge_seconds(elapsed: Duration) {
    metrics::histogram!(MERGE_SECONDS).record(elapsed.as_secs_f64());
}

/// Counts one sync message refused for its payload; `reason` is one of a
/// few fixed labels (`PayloadError::kind`).
pub fn sync_payload_refused(reason: &'static str) {
    metrics::counter!(SYNC_REFUSED_PAYLOADS_TOTAL, "reason" => reason).increment(1);
}

/// Records one document made current: `reused` when its copy in memory
/// served, else loaded from the store.
pub fn live_document_use(reused: bool, elapsed: Duration) {
    let how = if reused { "live" } else { "loaded" };
    metrics::counter!(LIVE_DOCUMENT_USES_TOTAL, "how" => how).increment(1);
    metrics::histogram!(LIVE_DOCUMENT_SECONDS).record(elapsed.as_secs_f64());
}

/// Counts live copies dropped from memory.
pub fn live_documents_evicted(count: usize) {
    metrics::counter!(LIVE_DOCUMENTS_EVICTED_TOTAL).increment(count as u64);
}

/// Counts received changes stored while they wait for their dependencies.
pub fn sync_changes_waiting(changes: usize) {
    metrics::counter!(SYNC_CHANGES_WAITING_TOTAL).increment(changes as u64);
}

/// Counts one sync upgrade refused for too many open connections; `whose`
/// is `user` or `address`.
pub fn sync_connection_refused(whose: &'static str) {
    metrics::counter!(SYNC_CONNECTIONS_REFUSED_TOTAL, "whose" => whose).increment(1);
}

/// Counts one sync connection closed because its session ended; `reason`
/// is one of a few fixed texts.
pub fn sync_session_ended(reason: &'static str) {
    metrics::counter!(SYNC_SESSIONS_ENDED_TOTAL, "reason" => reason).increment(1);
}

/// Counts one sync connection closed because a write to it timed out.
pub fn sync_send_timeout() {
    metrics::counter!(SYNC_SEND_TIMEOUTS_TOTAL).increment(1);
}

/// Counts one login refused before its password was checked.
pub fn login_refused(reason: &'static str) {
    metrics::counter!(LOGINS_REFUSED_TOTAL, "reason" => reason).increment(1);
}

/// Counts one login with a wrong username or password.
pub fn login_failed() {
    metrics::counter!(LOGINS_FAILED_TOTAL).increment(1);
}

/// Counts one document sync restarted after rounds without progress.
pub fn sync_restarted() {
    metrics::counter!(SYNC_RESTARTS_TOTAL).increment(1);
}

/// Counts one write tried again after another process wrote its
/// document first.
pub fn stale_write() {
    metrics::counter!(STALE_WRITES_TOTAL).increment(1);
}

/// Counts one group commit of `writes` writes.
pub fn group_commit(writes: usize) {
    metrics::counter!(GROUP_COMMITS_TOTAL).increment(1);
    metrics::counter!(GROUP_COMMIT_WRITES_TOTAL).increment(writes as u64);
}

/// Counts one compaction attempt; `result` is `ok`, `conflict` or `error`.
pub fn compaction(result: &'static str) {
    metrics::counter!(COMPACTIONS_TOTAL, "result" => result).increment(1);
}
