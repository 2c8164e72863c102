//! Group commit: the sync path's writes (a sync's chunk with its ledger
//! rows, its audit row, a device's sync state) from many connections are
//! committed together, one `fsync` for the lot instead of one each.
//!
//! With `synchronous=FULL` every commit waits for the disk; SQLite has one
//! writer, so concurrent syncs otherwise queue up behind each other's
//! `fsync` (a few hundred a second on a VM's disk, three per sync). One task
//! owns these writes: it takes every job waiting (up to [`MAX_BATCH`]),
//! runs them in one `BEGIN IMMEDIATE` transaction, commits once, and only
//! then answers each caller, so nothing is acknowledged before it is
//! durable. A job that fails undoes only its own writes (an append runs in
//! a savepoint; a single statement undoes itself) and gets its own error;
//! the others still commit. A failed commit fails every job of the batch
//! (none was written).
//!
//! Each statement is a round trip to the connection's thread (about 60 µs
//! here, far more than SQLite's own work on these rows), so what a batch
//! costs is mostly how many statements it runs. The audit rows and device
//! sync states of the batch's appends are written after all of them, with
//! one statement each for the whole batch, and only for the appends that
//! succeeded: a refused append leaves neither behind.
//!
//! Other writes (users, units, refresh tokens, compaction, a ledger
//! rebuild) keep their own transactions on the pool; they wait for the
//! write lock like the batches do.
//!
//! PostgreSQL needs no such task: concurrent transactions on its pool
//! commit independently, and its WAL writer flushes commits that arrive
//! together in one go.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::sqlite::{Sqlite, SqliteConnection, SqlitePool};
use sqlx::{Connection, QueryBuilder};
use tokio::sync::{mpsc, oneshot};

use super::super::{
    AppendOutcome, DocumentWrite, NewAuditEntry, StoreError, StoreResult, SyncStateWrite,
};
use super::Q;

/// The most jobs committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// Jobs that may wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4 * MAX_BATCH;

/// One write for the writer task, with where to send its outcome.
enum Job {
    Append(
        Box<DocumentWrite>,
        oneshot::Sender<StoreResult<AppendOutcome>>,
    ),
    SyncState(SyncStateWrite, oneshot::Sender<StoreResult<()>>),
    Audit(NewAuditEntry, oneshot::Sender<StoreResult<i64>>),
}

/// A job's outcome, held until its batch is committed.
enum Done {
    Append(
        oneshot::Sender<StoreResult<AppendOutcome>>,
        StoreResult<AppendOutcome>,
    ),
    SyncState(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
    Audit(oneshot::Sender<StoreResult<i64>>, StoreResult<i64>),
}

impl Done {
    /// Whether the job itself failed.
    fn failed(&self) -> bool {
        match self {
            Done::Append(_, outcome) => outcome.is_err(),
            Done::SyncState(_, outcome) => outcome.is_err(),
            Done::Audit(_, outcome) => outcome.is_err(),
        }
    }

    /// Answers the caller: its own outcome if the batch committed, else
    /// the commit's failure.
    fn answer(self, committed: &Result<(), String>) {
        fn settle<T>(outcome: StoreResult<T>, committed: &Result<(), String>) -> StoreResult<T> {
            match committed {
                Ok(()) => outcome,
                Err(reason) if outcome.is_ok() => Err(StoreError::backend(reason.clone())),
                // Its own error says more than the batch's.
                Err(_) => outcome,
            }
        }
        // A caller that went away (its connection closed) no longer waits.
        match self {
            Done::Append(reply, outcome) => drop(reply.send(settle(outcome, committed))),
            Done::SyncState(reply, outcome) => drop(reply.send(settle(outcome, committed))),
            Done::Audit(reply, outcome) => drop(reply.send(settle(outcome, committed))),
        }
    }
}

/// The handle to the writer task; cloned with the store.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    /// Transactions committed so far (what the tests look at; `/metrics`
    /// has them as `sqlite_group_commits_total`).
    #[cfg(test)]
    commits: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Starts the writer task on `pool`. It ends when every handle is
    /// dropped.
    pub fn start(pool: SqlitePool) -> Self {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(pool, receiver, commits.clone()));
        GroupCommit {
            jobs,
            #[cfg(test)]
            commits,
        }
    }

    /// Transactions the writer has committed (or tried to).
    #[cfg(test)]
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Job,
    ) -> StoreResult<T> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(job(reply))
            .await
            .map_err(|_| StoreError::backend("the store's writer has stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::backend("the store's writer stopped before committing"))?
    }

    /// [`Store::append_changes`](crate::store::Store::append_changes).
    pub async fn append(&self, write: DocumentWrite) -> StoreResult<AppendOutcome> {
        self.submit(|reply| Job::Append(Box::new(write), reply))
            .await
    }

    /// [`Store::save_sync_state`](crate::store::Store::save_sync_state).
    pub async fn save_sync_state(&self, write: SyncStateWrite) -> StoreResult<()> {
        self.submit(|reply| Job::SyncState(write, reply)).await
    }

    /// [`Store::append_audit`](crate::store::Store::append_audit).
    pub async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<i64> {
        self.submit(|reply| Job::Audit(entry, reply)).await
    }
}

/// The writer task: a batch of whatever waits, one commit each.
async fn run(pool: SqlitePool, mut receiver: mpsc::Receiver<Job>, commits: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&pool, std::mem::take(&mut batch)).await;
        commits.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `jobs` in one transaction, commits, answers. A job of several
/// statements (an append) runs in a savepoint when others share the
/// transaction; a job of one statement needs none (SQLite undoes a failed
/// statement's own effects). A lone job runs as it would without the group:
/// a single statement in autocommit, an append in its own transaction,
/// rolled back if it fails.
async fn commit_batch(pool: &SqlitePool, mut jobs: Vec<Job>) {
    let size = jobs.len();
    if size == 1 && !matches!(jobs[0], Job::Append(..)) {
        let job = jobs.pop().expect("one job");
        let done = match pool.acquire().await {
            Ok(mut conn) => run_job(&mut conn, job, false, &mut BatchRecords::default()).await,
            Err(e) => not_run(job, StoreError::from(e)),
        };
        crate::metrics::group_commit(1);
        done.answer(&Ok(()));
        return;
    }
    let mut done = Vec::with_capacity(size);
    let committed = match pool.begin_with(super::BEGIN_WRITE).await {
        Ok(mut tx) => {
            let mut records = BatchRecords::default();
            for job in jobs {
                done.push(run_job(&mut tx, job, size > 1, &mut records).await);
            }
            let result = if size == 1 && done[0].failed() {
                // The lone append failed: nothing of it is kept.
                tx.rollback().await
            } else {
                match records.write(&mut tx).await {
                    Ok(()) => tx.commit().await,
                    // Nothing of the batch is kept: each job gets the
                    // failure.
                    Err(e) => tx.rollback().await.and(Err(e)),
                }
            };
            result.map_err(|e| {
                let e = StoreError::from(e);
                tracing::error!(error = %crate::error::error_chain(&e), jobs = size, "a group commit failed");
                e.to_string()
            })
        }
        Err(e) => {
            let e = StoreError::from(e);
            tracing::error!(error = %crate::error::error_chain(&e), jobs = size, "a group commit could not begin");
            let reason = e.to_string();
            // Nothing ran: each job gets the failure.
            for job in jobs {
                done.push(not_run(job, StoreError::backend(reason.clone())));
            }
            Err(reason)
        }
    };
    crate::metrics::group_commit(size);
    for d in done {
        d.answer(&committed);
    }
}

/// A job that never ran, failed with `error`.
fn not_run(job: Job, error: StoreError) -> Done {
    match job {
        Job::Append(_, reply) => Done::Append(reply, Err(error)),
        Job::SyncState(_, reply) => Done::SyncState(reply, Err(error)),
        Job::Audit(_, reply) => Done::Audit(reply, Err(error)),
    }
}

/// Runs one job on `conn`; an append in a savepoint when `shared`. An
/// append's audit row and sync state go to `records` if it succeeded.
async fn run_job(
    conn: &mut SqliteConnection,
    job: Job,
    shared: bool,
    records: &mut BatchRecords,
) -> Done {
    match job {
        Job::Append(mut write, reply) => {
            let sync = write.sync.take();
            let (document_id, at) = (write.document_id, write.at);
            let outcome = if shared {
                append_in_savepoint(conn, *write).await
            } else {
                super::append_in(conn, *write).await
            };
            if let (Ok(appended), Some(sync)) = (&outcome, sync) {
                records.audit.push(sync.audit_entry(
                    document_id,
                    at,
                    appended.created,
                    appended.chunk_id,
                ));
                records.sync_states.extend(sync.sync_state);
            }
            Done::Append(reply, outcome)
        }
        Job::SyncState(write, reply) => {
            Done::SyncState(reply, Q::save_sync_state(conn, &write).await)
        }
        Job::Audit(entry, reply) => Done::Audit(reply, Q::append_audit(conn, entry).await),
    }
}

/// The audit rows and sync states of a batch's appends that succeeded,
/// written together before the commit.
#[derive(Default)]
struct BatchRecords {
    audit: Vec<NewAuditEntry>,
    sync_states: Vec<SyncStateWrite>,
}

impl BatchRecords {
    /// Writes them in one statement each (the rows of the single-row
    /// `append_audit` and `save_sync_state`; each state's document was
    /// just written, so it exists). A device's later state in the batch
    /// replaces its earlier one. Their text differs with the batch's size,
    /// so they are not kept in the connection's statement cache, where
    /// they would push out the appends' own statements.
    async fn write(self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        if !self.audit.is_empty() {
            QueryBuilder::<Sqlite>::new(
                "INSERT INTO audit_log (at, user_id, action, target, detail, remote_addr) ",
            )
            .push_values(&self.audit, |mut row, e| {
                row.push_bind(e.at)
                    .push_bind(e.user_id)
                    .push_bind(e.action.as_str())
                    .push_bind(e.target.as_str())
                    .push_bind(e.detail.as_str())
                    .push_bind(e.remote_addr.as_deref());
            })
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await?;
        }
        if !self.sync_states.is_empty() {
            QueryBuilder::<Sqlite>::new(
                "INSERT INTO sync_states (document_id, user_id, device_id, state, updated_at) ",
            )
            .push_values(&self.sync_states, |mut row, s| {
                row.push_bind(s.document_id.to_string())
                    .push_bind(s.user_id)
                    .push_bind(s.device_id.as_str())
                    .push_bind(s.state.as_slice())
                    .push_bind(s.at);
            })
            .push(
                " ON CONFLICT (document_id, user_id, device_id)
                  DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// An append in a savepoint of the transaction `conn` is in: released if
/// it succeeded, rolled back if it failed, so it leaves nothing behind.
async fn append_in_savepoint(
    conn: &mut SqliteConnection,
    write: DocumentWrite,
) -> StoreResult<AppendOutcome> {
    let mut savepoint = conn.begin().await?;
    let outcome = super::append_in(&mut savepoint, write).await;
    match &outcome {
        Ok(_) => savepoint.commit().await?,
        Err(_) => savepoint.rollback().await?,
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use crate::store::{ConnectOptions, NewAuditEntry, Store};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_arrive_together_share_a_commit() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("group.db").display());
        let store = SqliteStore::connect(&url, ConnectOptions::default())
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        const WRITES: usize = 200;
        let before = store.group.commits();
        let tasks: Vec<_> = (0..WRITES)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .append_audit(NewAuditEntry {
                            at: chrono::Utc::now(),
                            user_id: None,
                            action: "test.write".to_owned(),
                            target: i.to_string(),
                            detail: String::new(),
                            remote_addr: None,
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("join").expect("audit row");
        }
        let commits = store.group.commits() - before;
        // Every write is stored, in far fewer commits than writes: each
        // commit waits for the disk, and the writes that queued meanwhile
        // go into the next one.
        assert_eq!(store.list_audit(1_000).await.expect("audit").len(), WRITES);
        assert!(
            commits < WRITES as u64 / 4,
            "{commits} commits for {WRITES} writes"
        );
    }
}
