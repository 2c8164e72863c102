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
//! durable. A job that fails undoes only its own writes and gets its own
//! error; the others still commit. A failed commit fails every job of the
//! batch (none was written).
//!
//! A single statement that fails undoes itself. An append is several
//! statements, but its refusals (a missing document, another owner's, a
//! stale copy) come from its first read, before it writes anything; so a
//! batch runs its appends without savepoints, which would cost two
//! statements each. Only an append that fails after its first write (an
//! actor that is another writer's, a failing database) leaves writes
//! behind: then the transaction is rolled back and the batch runs again
//! with each append in a savepoint.
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

use super::super::sql::{audit_log_columns, sync_state_replaces, sync_states_columns};
use super::super::{
    AppendOutcome, DocumentWrite, NewAuditEntry, StaleWrite, StoreError, StoreResult,
    SyncStateWrite,
};
use super::{AppendFailure, Q};

/// The most jobs committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// Jobs that may wait for the writer before callers wait to enqueue.
const QUEUE: usize = 4 * MAX_BATCH;

/// One write for the writer task: what to write, where to send its
/// outcome, and that outcome once it ran (`ran`), held until its batch is
/// committed.
enum Job {
    Append {
        write: Box<DocumentWrite>,
        reply: oneshot::Sender<StoreResult<AppendOutcome>>,
        ran: Option<Result<AppendOutcome, AppendFailure>>,
    },
    SyncState {
        write: SyncStateWrite,
        reply: oneshot::Sender<StoreResult<()>>,
        ran: Option<StoreResult<()>>,
    },
    Audit {
        entry: NewAuditEntry,
        reply: oneshot::Sender<StoreResult<i64>>,
        ran: Option<StoreResult<i64>>,
    },
}

impl Job {
    /// Whether the job ran and failed.
    fn failed(&self) -> bool {
        match self {
            Job::Append { ran, .. } => matches!(ran, Some(Err(_))),
            Job::SyncState { ran, .. } => matches!(ran, Some(Err(_))),
            Job::Audit { ran, .. } => matches!(ran, Some(Err(_))),
        }
    }

    /// Forgets an outcome of an earlier run of its batch.
    fn reset(&mut self) {
        match self {
            Job::Append { ran, .. } => *ran = None,
            Job::SyncState { ran, .. } => *ran = None,
            Job::Audit { ran, .. } => *ran = None,
        }
    }

    /// Runs the job on `conn`; an append in a savepoint when `savepoint`.
    /// A job of one statement needs none: SQLite undoes a failed
    /// statement's own effects.
    async fn run(&mut self, conn: &mut SqliteConnection, savepoint: bool) {
        match self {
            Job::Append { write, ran, .. } => {
                *ran = Some(if savepoint {
                    append_in_savepoint(conn, write).await
                } else {
                    super::append_in(conn, write).await
                });
            }
            Job::SyncState { write, ran, .. } => *ran = Some(Q::save_sync_state(conn, write).await),
            Job::Audit { entry, ran, .. } => *ran = Some(Q::append_audit(conn, entry).await),
        }
    }

    /// The error of an append that failed after writing.
    fn wrote_and_failed(&self) -> Option<&StoreError> {
        match self {
            Job::Append {
                ran: Some(Err(AppendFailure::AfterWriting(e))),
                ..
            } => Some(e),
            _ => None,
        }
    }

    /// Answers the caller: its own outcome if the batch committed, else
    /// the commit's failure.
    fn answer(self, committed: &Result<(), String>) {
        fn settle<T>(
            ran: Option<StoreResult<T>>,
            committed: &Result<(), String>,
        ) -> StoreResult<T> {
            match (ran, committed) {
                (Some(outcome), Ok(())) => outcome,
                // Its own error says more than the batch's.
                (Some(Err(e)), Err(_)) => Err(e),
                (_, Err(reason)) => Err(StoreError::backend(reason.clone())),
                (None, Ok(())) => Err(StoreError::backend("the write was not run")),
            }
        }
        // A caller that went away (its connection closed) no longer waits.
        match self {
            Job::Append { write, reply, ran } => {
                let ran = ran.map(|appended| {
                    appended.map_err(|failure| match failure {
                        AppendFailure::BeforeWriting(e) | AppendFailure::AfterWriting(e) => e,
                        // Nothing was written: the caller gets its write back.
                        AppendFailure::Stale => StoreError::Stale(StaleWrite(write)),
                    })
                });
                drop(reply.send(settle(ran, committed)));
            }
            Job::SyncState { reply, ran, .. } => drop(reply.send(settle(ran, committed))),
            Job::Audit { reply, ran, .. } => drop(reply.send(settle(ran, committed))),
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
        self.submit(|reply| Job::Append {
            write: Box::new(write),
            reply,
            ran: None,
        })
        .await
    }

    /// [`Store::save_sync_state`](crate::store::Store::save_sync_state).
    pub async fn save_sync_state(&self, write: SyncStateWrite) -> StoreResult<()> {
        self.submit(|reply| Job::SyncState {
            write,
            reply,
            ran: None,
        })
        .await
    }

    /// [`Store::append_audit`](crate::store::Store::append_audit).
    pub async fn append_audit(&self, entry: NewAuditEntry) -> StoreResult<i64> {
        self.submit(|reply| Job::Audit {
            entry,
            reply,
            ran: None,
        })
        .await
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

/// Runs `jobs` in one transaction, commits, answers; again with a savepoint
/// for each append if one of them failed after writing. A lone job runs as
/// it would without the group: a single statement in autocommit, an append
/// in its own transaction, rolled back if it fails.
async fn commit_batch(pool: &SqlitePool, mut jobs: Vec<Job>) {
    let size = jobs.len();
    let committed = match jobs.as_mut_slice() {
        [lone @ (Job::SyncState { .. } | Job::Audit { .. })] => match pool.acquire().await {
            Ok(mut conn) => {
                lone.run(&mut conn, false).await;
                Ok(())
            }
            Err(e) => Err(failed(
                "a write could not get a connection",
                StoreError::from(e),
                1,
            )),
        },
        _ => match run_batch(pool, &mut jobs, false).await {
            Some(committed) => committed,
            None => run_batch(pool, &mut jobs, true)
                .await
                .unwrap_or_else(|| Err("the batch failed with savepoints".to_owned())),
        },
    };
    crate::metrics::group_commit(size);
    for job in jobs {
        job.answer(&committed);
    }
}

/// Logs a failure of the whole batch and says why, for each job's answer.
fn failed(what: &str, error: StoreError, jobs: usize) -> String {
    tracing::error!(error = %crate::error::error_chain(&error), jobs, "{what}");
    error.to_string()
}

/// Runs `jobs` in one transaction, each append in a savepoint when
/// `savepoints`, keeping each job's outcome in it, and commits unless the
/// lone job failed. Returns whether the batch committed, or `None` when an
/// append failed after writing without a savepoint around it (when
/// `savepoints` is false and other jobs share the batch): the transaction
/// is rolled back then, and the batch is to run again with savepoints.
async fn run_batch(
    pool: &SqlitePool,
    jobs: &mut [Job],
    savepoints: bool,
) -> Option<Result<(), String>> {
    let size = jobs.len();
    jobs.iter_mut().for_each(Job::reset);
    let mut tx = match pool.begin_with(super::BEGIN_WRITE).await {
        Ok(tx) => tx,
        Err(e) => {
            let why = "a group commit could not begin";
            return Some(Err(failed(why, StoreError::from(e), size)));
        }
    };
    for job in jobs.iter_mut() {
        job.run(&mut tx, savepoints).await;
        if let Some(e) = job.wrote_and_failed()
            && size > 1
            && !savepoints
        {
            tracing::warn!(error = %crate::error::error_chain(e), jobs = size,
                "an append failed after writing: its batch runs again, each append in a savepoint");
            if let Err(e) = tx.rollback().await {
                // Dropped, the transaction is rolled back all the same.
                tracing::error!(error = %e, "rolling back a group commit failed");
            }
            return None;
        }
    }
    let result = if size == 1 && jobs[0].failed() {
        // The lone append failed: nothing of it is kept.
        tx.rollback().await
    } else {
        match BatchRecords::of(jobs).write(&mut tx).await {
            Ok(()) => tx.commit().await,
            // Nothing of the batch is kept: each job gets the failure.
            Err(e) => tx.rollback().await.and(Err(e)),
        }
    };
    Some(result.map_err(|e| failed("a group commit failed", StoreError::from(e), size)))
}

/// The audit rows and sync states of a batch's appends that succeeded,
/// written together before the commit.
struct BatchRecords<'a> {
    audit: Vec<NewAuditEntry>,
    sync_states: Vec<&'a SyncStateWrite>,
}

impl<'a> BatchRecords<'a> {
    /// Those of the appends of `jobs` that succeeded.
    fn of(jobs: &'a [Job]) -> Self {
        let mut records = BatchRecords {
            audit: Vec::new(),
            sync_states: Vec::new(),
        };
        for job in jobs {
            if let Job::Append {
                write,
                ran: Some(Ok(appended)),
                ..
            } = job
                && let Some(sync) = &write.sync
            {
                records.audit.push(sync.audit_entry(
                    write.document_id,
                    write.at,
                    appended.created,
                    appended.chunk_id,
                ));
                records.sync_states.extend(sync.sync_state.as_ref());
            }
        }
        records
    }

    /// Writes them in one statement each (the rows of the single-row
    /// `append_audit` and `save_sync_state`; each state's document was
    /// just written, so it exists). A device's later state in the batch
    /// replaces its earlier one. Their text differs with the batch's size,
    /// so they are not kept in the connection's statement cache, where
    /// they would push out the appends' own statements.
    async fn write(self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        if !self.audit.is_empty() {
            QueryBuilder::<Sqlite>::new(concat!("INSERT INTO ", audit_log_columns!(), " "))
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
            QueryBuilder::<Sqlite>::new(concat!("INSERT INTO ", sync_states_columns!(), " "))
                .push_values(&self.sync_states, |mut row, s| {
                    row.push_bind(s.document_id.to_string())
                        .push_bind(s.user_id)
                        .push_bind(s.device_id.as_str())
                        .push_bind(s.state.as_slice())
                        .push_bind(s.at);
                })
                .push(sync_state_replaces!())
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
    write: &DocumentWrite,
) -> Result<AppendOutcome, AppendFailure> {
    let mut savepoint = conn
        .begin()
        .await
        .map_err(|e| AppendFailure::BeforeWriting(e.into()))?;
    let outcome = super::append_in(&mut savepoint, write).await;
    let ended = match &outcome {
        Ok(_) => savepoint.commit().await,
        Err(_) => savepoint.rollback().await,
    };
    ended.map_err(|e| AppendFailure::AfterWriting(e.into()))?;
    outcome
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::super::SqliteStore;
    use super::{Job, commit_batch};
    use crate::store::{
        ActorClaim, AppendOutcome, ConnectOptions, DocumentWrite, NewAuditEntry, NewDocument,
        NewUnit, NewUser, Role, Store, StoreError, StoreResult, StoredKind, SyncRecords,
        SyncStateWrite,
    };
    use sync_core::DocumentId;

    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("group.db").display());
        let store = SqliteStore::connect(&url, ConnectOptions::default())
            .await
            .expect("open");
        store.migrate().await.expect("migrate");
        (dir, store)
    }

    /// A write creating the diary `name` for `owner`, its chunk `[1, 2, 3]`.
    fn creation(name: &str, owner: i64) -> DocumentWrite {
        DocumentWrite {
            heads: None,
            document_id: named_id(name),
            create: Some(NewDocument {
                kind: StoredKind::Diary,
                owner_user_id: owner,
                year: Some(2026),
            }),
            data: vec![1, 2, 3],
            at: chrono::Utc::now(),
            ledger: None,
            actors: Vec::new(),
            based_on: None,
            sync: None,
        }
    }

    fn named_id(name: &str) -> DocumentId {
        let mut bytes = [0u8; 16];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        DocumentId::from_bytes(bytes)
    }

    /// An append job for `commit_batch`, and where its answer arrives.
    fn append(write: DocumentWrite) -> (Job, oneshot::Receiver<StoreResult<AppendOutcome>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job::Append {
            write: Box::new(write),
            reply,
            ran: None,
        };
        (job, answer)
    }

    /// `write` as a sync connection of `user_id`'s device `device` makes it.
    fn by_sync(write: DocumentWrite, user_id: i64, device: &str) -> DocumentWrite {
        DocumentWrite {
            sync: Some(SyncRecords {
                user_id,
                device_id: device.to_owned(),
                remote_addr: None,
                changes_added: 1,
                changes_waiting: 0,
                sync_state: Some(SyncStateWrite {
                    document_id: write.document_id,
                    user_id,
                    device_id: device.to_owned(),
                    state: vec![1],
                    at: write.at,
                }),
                owner_limits: None,
            }),
            ..write
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_refused_after_writing_leaves_nothing_in_its_batch() {
        let (_dir, store) = store().await;
        let village = store
            .create_unit(NewUnit {
                code: "village".to_owned(),
                name: "村".to_owned(),
                parent_id: None,
                kind: "village".to_owned(),
            })
            .await
            .expect("unit");
        let cadre = |username: &str| NewUser {
            username: username.to_owned(),
            display_name: username.to_owned(),
            role: Role::Cadre,
            unit_id: village.id,
            password_hash: "$argon2id$placeholder".to_owned(),
        };
        let alice = store.create_user(cadre("alice")).await.expect("alice");
        let bob = store.create_user(cadre("bob")).await.expect("bob");
        let claim = |user_id| ActorClaim {
            actor: "a1ce".to_owned(),
            user_id,
            device_id: "phone".to_owned(),
            via_server: false,
        };
        let alices = named_id("alices");
        store
            .append_changes(DocumentWrite {
                actors: vec![claim(alice.id)],
                ..creation("alices", alice.id)
            })
            .await
            .expect("alice's diary");
        let audit_before = store.list_audit(100).await.expect("audit").len();

        // One batch: a new document, a write that is refused only after
        // its chunk is written (Alice's actor claimed for Bob), another new
        // document, and a write to a document that does not exist.
        let (first, first_answer) = append(by_sync(creation("one", alice.id), alice.id, "phone-1"));
        let (refused, refused_answer) = append(by_sync(
            DocumentWrite {
                create: None,
                data: vec![9, 9, 9],
                actors: vec![claim(bob.id)],
                ..creation("alices", bob.id)
            },
            bob.id,
            "phone-2",
        ));
        let (second, second_answer) =
            append(by_sync(creation("two", alice.id), alice.id, "phone-3"));
        let (missing, missing_answer) = append(by_sync(
            DocumentWrite {
                create: None,
                ..creation("missing", alice.id)
            },
            alice.id,
            "phone-4",
        ));
        commit_batch(&store.pool, vec![first, refused, second, missing]).await;

        assert!(first_answer.await.expect("answer").expect("first").created);
        let r = refused_answer.await.expect("answer");
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
        assert!(
            second_answer
                .await
                .expect("answer")
                .expect("second")
                .created
        );
        let r = missing_answer.await.expect("answer");
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");

        // The refused write left no chunk, no audit row and no sync state.
        let stored = store
            .load_document(&alices)
            .await
            .expect("load")
            .expect("alice's");
        assert_eq!(stored.chunks.len(), 1, "only the diary's creation");
        assert_eq!(stored.chunks[0].data, vec![1, 2, 3]);
        let audit = store.list_audit(100).await.expect("audit");
        let targets: Vec<_> = audit[..audit.len() - audit_before]
            .iter()
            .map(|e| e.target.clone())
            .collect();
        assert_eq!(
            targets,
            vec![named_id("two").to_string(), named_id("one").to_string()]
        );
        for (document, device, kept) in [
            (named_id("one"), "phone-1", true),
            (alices, "phone-2", false),
            (named_id("two"), "phone-3", true),
        ] {
            let user_id = if device == "phone-2" {
                bob.id
            } else {
                alice.id
            };
            let state = store
                .load_sync_state(&document, user_id, device)
                .await
                .expect("sync state");
            assert_eq!(state.is_some(), kept, "{device}");
        }
        // Both new documents are whole: their chunk and the row that
        // counts it.
        for name in ["one", "two"] {
            let doc = store
                .load_document(&named_id(name))
                .await
                .expect("load")
                .expect(name);
            assert_eq!(doc.chunks.len(), 1, "{name}");
            assert_eq!(doc.meta.last_chunk_id, doc.chunks[0].id, "{name}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_that_arrive_together_share_a_commit() {
        let (_dir, store) = store().await;
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
