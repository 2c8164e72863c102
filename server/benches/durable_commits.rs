//! Durable commits: how many "+1 visit" syncs a second the store commits,
//! one phone at a time and many at once.
//!
//! ```sh
//! cargo bench -p server --bench durable_commits                    # SQLite
//! TEST_DATABASE_URL=postgres://… cargo bench -p server --bench durable_commits
//! cargo bench -p server --bench durable_commits -- --writers 200 --syncs 10
//! ```
//!
//! It also times one statement on SQLite through sqlx (a round trip to the
//! connection's thread), what bounds one writer running appends.
//!
//! What a "+1 visit" sync writes is what the sync endpoint writes for it,
//! through the real store on a real database file (SQLite in WAL mode with
//! `synchronous=FULL`, a fresh PostgreSQL schema): the visit's change as a
//! chunk with the ledger rows of the records it touched, the audit row and
//! the device's sync state, all in one `append_changes` (one transaction).
//! As on the sync path, an actor is claimed once: each phone's first sync
//! claims the actor of its session (the phone library takes a new one each
//! time it opens a diary), the later ones claim nothing. Every write
//! carries the version of the diary its phone last stored (`based_on`), as
//! the sync path's writes do, so the store checks that nothing was stored
//! since before it writes, and the owner's per-user limits (the server's
//! defaults), which the store checks in the write's transaction.
//! Each writer is one phone's diary (a realistic Chinese diary of 20
//! visits, `sync_core::fixtures`); its syncs follow each other, each
//! waiting for its writes to be committed, as a connection does. The
//! merge's CPU is left out (the changes and rows are made before the clock
//! starts): this measures what the disk and the commits allow.
//!
//! Results are printed as a Markdown table for `docs/BENCHMARKS.md`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use server::ledger::{Attribution, LedgerProjection};
use server::store::{
    ActorClaim, DocumentWrite, NewDocument, OwnerLimits, Role, Store, StoredKind, StoredVersion,
    SyncRecords, SyncStateWrite,
};
use sync_core::automerge::ActorId;
use sync_core::{Edit, Timestamp, diary_id, fixtures};
use test_support::store as harness;

/// One phone's "+1 visit" syncs, made before the clock starts.
struct Phone {
    /// The stored state of the diary its writes are based on, as the sync
    /// path's copy of the document keeps it.
    version: StoredVersion,
    syncs: Vec<DocumentWrite>,
}

/// What to run.
#[derive(clap::Parser)]
struct Options {
    /// Phones syncing at once.
    #[arg(long, default_value_t = 200)]
    writers: usize,
    /// Each phone's "+1 visit" syncs.
    #[arg(long, default_value_t = 10)]
    syncs: usize,
    /// What `cargo bench` passes on.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Creates `count` phones' diaries in `store` and makes each phone's
/// `syncs` "+1 visit" writes.
async fn phones(store: &dyn Store, count: usize, syncs: usize, first: usize) -> Vec<Phone> {
    let unit = harness::unit(store, &format!("village{first}"), None, "village").await;
    let mut rng = StdRng::seed_from_u64(first as u64);
    let start = Timestamp(1_780_000_000_000);
    let mut phones = Vec::with_capacity(count);
    for i in first..first + count {
        let username = format!("cadre{i:04}");
        let user = harness::user(store, &username, Role::Cadre, &unit).await;
        let actor = ActorId::random();
        let claim = ActorClaim {
            actor: actor.to_hex_string(),
            user_id: user.id,
            device_id: "phone".to_owned(),
            via_server: false,
        };
        let document_id = diary_id(&username, 2026);
        let mut diary = fixtures::diary(&mut rng, &username, actor, 20, start);
        let attribution = Attribution::default();
        let created = store
            .append_changes(DocumentWrite {
                heads: None,
                document_id,
                create: Some(NewDocument {
                    kind: StoredKind::Diary,
                    owner_user_id: user.id,
                    year: Some(2026),
                }),
                data: diary.save(),
                at: chrono::Utc::now(),
                ledger: Some(LedgerProjection::of_diary(&diary, &attribution)),
                actors: vec![claim.clone()],
                based_on: None,
                sync: None,
            })
            .await
            .expect("the diary");
        let version = StoredVersion {
            snapshot_heads: created.meta.snapshot_heads,
            last_chunk_id: created.chunk_id,
        };
        // This session's visits are made by an actor the server has not
        // seen yet.
        let session = ActorId::random();
        diary.automerge_mut().set_actor(session.clone());
        let session_claim = ActorClaim {
            actor: session.to_hex_string(),
            ..claim.clone()
        };
        let mut writes = Vec::with_capacity(syncs);
        for s in 0..syncs {
            let heads = diary.automerge().get_heads();
            let at = Timestamp(start.millis() + 3_600_000 * (100 + s as i64));
            diary
                .add_visit(
                    &Edit::new(&username, at),
                    &fixtures::visit(&mut rng, at, &username),
                )
                .expect("a visit");
            let doc = diary.automerge();
            writes.push(DocumentWrite {
                heads: None,
                document_id,
                create: None,
                data: doc.save_after(&heads),
                at: chrono::Utc::now(),
                ledger: Some(LedgerProjection::after_changes(
                    doc,
                    &attribution,
                    &heads,
                    None,
                )),
                actors: if s == 0 {
                    vec![session_claim.clone()]
                } else {
                    Vec::new()
                },
                // Set when it is written, as the sync path does.
                based_on: None,
                sync: Some(SyncRecords {
                    user_id: user.id,
                    device_id: "phone".to_owned(),
                    remote_addr: Some("127.0.0.1".to_owned()),
                    changes_added: 1,
                    changes_waiting: 0,
                    sync_state: Some(SyncStateWrite {
                        document_id,
                        user_id: user.id,
                        device_id: "phone".to_owned(),
                        state: vec![7; 96],
                        at: chrono::Utc::now(),
                    }),
                    // The server's default limits, checked as the sync path
                    // checks them.
                    owner_limits: Some(OwnerLimits {
                        documents: 50,
                        bytes: 256 * 1024 * 1024,
                    }),
                }),
            });
        }
        phones.push(Phone {
            version,
            syncs: writes,
        });
    }
    phones
}

/// Commits every phone's syncs, the phones at once and each phone's syncs
/// one after another, and returns the syncs per second.
async fn run(store: Arc<dyn Store>, phones: Vec<Phone>) -> (usize, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = phones
        .into_iter()
        .map(|phone| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut done = 0;
                let mut version = phone.version;
                for mut write in phone.syncs {
                    write.based_on = Some(version.clone());
                    let appended = store.append_changes(write).await.expect("append");
                    version.last_chunk_id = version.last_chunk_id.max(appended.chunk_id);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut syncs = 0;
    for task in tasks {
        syncs += task.await.expect("a phone");
    }
    (syncs, started.elapsed())
}

/// One row per concurrency on `store`, whose name is `backend`.
async fn measure(backend: &str, store: Arc<dyn Store>, o: &Options) -> Vec<String> {
    let mut rows = Vec::new();
    let mut first = 0;
    for writers in [1, o.writers] {
        let syncs = if writers == 1 { o.syncs * 20 } else { o.syncs };
        let made = phones(store.as_ref(), writers, syncs, first).await;
        first += writers;
        let (done, took) = run(store.clone(), made).await;
        let per_second = done as f64 / took.as_secs_f64();
        rows.push(format!(
            "| {backend} | {writers} | {done} | {:.2} s | {per_second:.0} |",
            took.as_secs_f64()
        ));
        eprintln!("{}", rows.last().expect("a row"));
    }
    rows
}

/// What one statement costs on SQLite through sqlx, whose connection runs
/// on its own thread (each statement a round trip to it and back): a
/// trivial `SELECT` and a one-row insert inside a transaction, the median
/// of three rounds of 20,000 each. One writer runs an append's statements
/// one after another, so this bounds how many appends a second it makes.
async fn statement_round_trip() -> (Duration, Duration) {
    use sqlx::Connection;
    const STATEMENTS: u32 = 20_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("trips.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
    sqlx::query("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
        .execute(&mut conn)
        .await
        .expect("table");
    let (mut selects, mut inserts) = (Vec::new(), Vec::new());
    for round in 0..3 {
        let started = Instant::now();
        for i in 0..STATEMENTS {
            sqlx::query_scalar::<_, i64>("SELECT $1")
                .bind(i64::from(i))
                .fetch_one(&mut conn)
                .await
                .expect("select");
        }
        selects.push(started.elapsed() / STATEMENTS);
        let mut tx = conn.begin().await.expect("begin");
        let started = Instant::now();
        for i in 0..STATEMENTS {
            sqlx::query("INSERT INTO t (a, b) VALUES ($1, $2)")
                .bind(i64::from(round * STATEMENTS + i))
                .bind("一行")
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        inserts.push(started.elapsed() / STATEMENTS);
        tx.commit().await.expect("commit");
    }
    selects.sort();
    inserts.sort();
    (selects[1], inserts[1])
}

#[tokio::main]
async fn main() {
    let o = <Options as clap::Parser>::parse();
    let mut rows = Vec::new();
    let sqlite = harness::sqlite().await;
    rows.extend(measure("SQLite (WAL, synchronous=FULL)", sqlite.store(), &o).await);
    sqlite.cleanup().await;
    if let Some(pg) = harness::postgres().await {
        rows.extend(measure("PostgreSQL", pg.store(), &o).await);
        pg.cleanup().await;
    }
    println!(
        "\n| store | phones syncing at once | \"+1 visit\" syncs | time | syncs/s |\n|---|---:|---:|---:|---:|"
    );
    for row in rows {
        println!("{row}");
    }
    let (select, insert) = statement_round_trip().await;
    println!(
        "\nOne statement on SQLite through sqlx: `SELECT $1` {:.1} µs, a one-row insert {:.1} µs",
        select.as_secs_f64() * 1e6,
        insert.as_secs_f64() * 1e6
    );
}
