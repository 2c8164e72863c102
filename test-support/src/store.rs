//! Fresh stores on each backend, the [`backends!`](crate::backends) macro
//! that runs a test case on every one, a small organisation to log in
//! with, and documents to create.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use server::auth::password::hash_password;
use server::store::postgres::PostgresStore;
use server::store::sqlite::SqliteStore;
use server::store::{
    ConnectOptions, DocumentWrite, NewDocument, NewUnit, NewUser, Role, Store, StoredKind, Unit,
    User,
};
use sqlx::postgres::PgConnectOptions;
use sync_core::DocumentId;

use crate::{TEST_DATABASE_URL, test_database_url};

/// Runs each named test case on every backend: always on SQLite, and on
/// PostgreSQL when `TEST_DATABASE_URL` is set, each in a fresh store that is
/// dropped afterwards. A case is an `async fn(Arc<dyn Store>)` in the module
/// that invokes the macro (or imported into it); the tests are named
/// `sqlite::<case>` and `postgres::<case>`.
#[macro_export]
macro_rules! backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let harness = $crate::store::sqlite().await;
                    super::$case(harness.store()).await;
                    harness.cleanup().await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(harness) = $crate::store::postgres().await else {
                        return;
                    };
                    super::$case(harness.store()).await;
                    harness.cleanup().await;
                }
            )*
        }
    };
}

/// A store plus whatever must live as long as it (a temp dir, a schema).
#[allow(missing_debug_implementations)]
pub struct Harness {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgCleanup>,
}

struct PgCleanup {
    url: String,
    schema: String,
}

impl Harness {
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Drops the PostgreSQL schema (a test that panics leaves it behind; the
    /// `vd_test_` prefix makes leftovers easy to find).
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some(pg) = self.pg {
            let admin = sqlx::PgPool::connect(&pg.url)
                .await
                .expect("connect to TEST_DATABASE_URL");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                pg.schema
            )))
            .execute(&admin)
            .await
            .expect("drop test schema");
            admin.close().await;
        }
    }
}

/// A migrated SQLite store in a fresh temporary directory.
pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/test.db", dir.path().display());
    let store = SqliteStore::connect(&url, ConnectOptions::default())
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    Harness {
        store: Arc::new(store),
        _dir: Some(dir),
        pg: None,
    }
}

/// A fresh, empty schema in the database named by `TEST_DATABASE_URL`, or
/// `None` (with a note) when it is not set.
async fn create_schema() -> Option<PgCleanup> {
    let Some(url) = test_database_url() else {
        println!("note: {TEST_DATABASE_URL} is not set; skipping the PostgreSQL run of this test");
        return None;
    };
    let schema = format!("vd_test_{}", hex::encode(rand::random::<[u8; 8]>()));
    let admin = sqlx::PgPool::connect(&url)
        .await
        .expect("connect to TEST_DATABASE_URL");
    // The name is generated above from hex digits only, so formatting it into
    // the statement is safe.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create test schema");
    admin.close().await;
    Some(PgCleanup { url, schema })
}

/// A fresh schema for a server configured by URL (`Served` with its
/// `database_url` set to [`PgSchema::url`]), which migrates it itself.
#[allow(missing_debug_implementations)]
pub struct PgSchema {
    /// `TEST_DATABASE_URL` with the schema as its search path.
    pub url: String,
    cleanup: PgCleanup,
}

impl PgSchema {
    /// Drops the schema (stop the server first).
    pub async fn cleanup(self) {
        Harness {
            store: Arc::new(
                PostgresStore::connect(&self.url, ConnectOptions { max_connections: 1 })
                    .await
                    .expect("open postgres"),
            ),
            _dir: None,
            pg: Some(self.cleanup),
        }
        .cleanup()
        .await;
    }
}

/// A fresh schema of the database named by `TEST_DATABASE_URL` for a
/// served server, or `None` (with a note) when it is not set.
pub async fn postgres_schema() -> Option<PgSchema> {
    let cleanup = create_schema().await?;
    let separator = if cleanup.url.contains('?') { '&' } else { '?' };
    let url = format!(
        "{}{separator}options[search_path]={}",
        cleanup.url, cleanup.schema
    );
    Some(PgSchema { url, cleanup })
}

/// A migrated PostgreSQL store in a fresh schema of the database named by
/// `TEST_DATABASE_URL`, or `None` (with a note) when it is not set.
pub async fn postgres() -> Option<Harness> {
    let PgCleanup { url, schema } = create_schema().await?;
    let options = PgConnectOptions::from_str(&url)
        .expect("parse TEST_DATABASE_URL")
        .options([("search_path", schema.as_str())]);
    let store = PostgresStore::connect_with(options, ConnectOptions { max_connections: 8 })
        .await
        .expect("open postgres");
    store.migrate().await.expect("migrate postgres");
    Some(Harness {
        store: Arc::new(store),
        _dir: None,
        pg: Some(PgCleanup { url, schema }),
    })
}

/// A fixed instant plus `secs` seconds, whole seconds so it survives every
/// backend's timestamp precision.
pub fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0)
        .single()
        .expect("valid timestamp")
}

/// A document id spelled by a short name (at most 16 bytes), so a test
/// reads `diaryA` where the store sees an id.
pub fn named_id(name: &str) -> DocumentId {
    let mut bytes = [0u8; 16];
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    DocumentId::from_bytes(bytes)
}

/// A write that creates the document `id` (`kind`, `year`) for
/// `owner_user_id`: a placeholder chunk stored now, no ledger rows, no
/// actor claims. A test changes what it needs with `..creation(..)`.
pub fn creation(
    id: DocumentId,
    kind: StoredKind,
    owner_user_id: i64,
    year: Option<i32>,
) -> DocumentWrite {
    DocumentWrite {
        heads: None,
        document_id: id,
        create: Some(NewDocument {
            kind,
            owner_user_id,
            year,
        }),
        data: vec![1, 2, 3],
        at: Utc::now(),
        ledger: None,
        actors: Vec::new(),
        based_on: None,
        sync: None,
    }
}

/// A unit named after its code.
pub async fn unit(store: &dyn Store, code: &str, parent: Option<&Unit>, kind: &str) -> Unit {
    store
        .create_unit(NewUnit {
            code: code.to_owned(),
            name: format!("{code} 单位"),
            parent_id: parent.map(|p| p.id),
            kind: kind.to_owned(),
        })
        .await
        .expect("create unit")
}

/// A user with a placeholder hash (stores do not look inside it).
pub async fn user(store: &dyn Store, username: &str, role: Role, unit: &Unit) -> User {
    create_user(
        store,
        username,
        role,
        unit,
        "$argon2id$placeholder".to_owned(),
    )
    .await
}

/// A user who can really log in with `password`.
pub async fn user_with_password(
    store: &dyn Store,
    username: &str,
    role: Role,
    unit: &Unit,
    password: &str,
) -> User {
    let hash = hash_password(password.to_owned()).await.expect("hash");
    create_user(store, username, role, unit, hash).await
}

async fn create_user(
    store: &dyn Store,
    username: &str,
    role: Role,
    unit: &Unit,
    password_hash: String,
) -> User {
    store
        .create_user(NewUser {
            username: username.to_owned(),
            display_name: format!("{username} 同志"),
            role,
            unit_id: unit.id,
            password_hash,
        })
        .await
        .expect("create user")
}
