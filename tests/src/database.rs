//! The database a [`crate::ServerProcess`] runs on: SQLite in its data
//! directory (the server's default), or, when `TEST_DATABASE_URL` is set, a
//! fresh PostgreSQL database of its own, dropped with it.

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

use test_support::{TEST_DATABASE_URL, test_database_url};

/// The backend of one server process.
#[derive(Debug)]
pub enum Database {
    /// The server's default: SQLite in its data directory.
    Sqlite,
    /// A database created for this server process alone.
    Postgres(PgDatabase),
    /// Another server process's PostgreSQL database (its URL), shared with
    /// it and dropped with that one.
    Shared(String),
}

impl Database {
    /// PostgreSQL when `TEST_DATABASE_URL` is set (and not empty), otherwise
    /// SQLite.
    pub async fn create() -> Self {
        match test_database_url() {
            Some(url) => Database::Postgres(PgDatabase::create(&url).await),
            None => Database::Sqlite,
        }
    }

    /// A fresh PostgreSQL database when `TEST_DATABASE_URL` is set, for
    /// tests that run on both backends in one run.
    pub async fn postgres() -> Option<Self> {
        Some(Database::Postgres(
            PgDatabase::create(&test_database_url()?).await,
        ))
    }

    /// A fresh PostgreSQL database created through `admin_url` (whose role
    /// needs CREATEDB), for a run given its URL on the command line.
    pub async fn postgres_at(admin_url: &str) -> Self {
        Database::Postgres(PgDatabase::create(admin_url).await)
    }

    /// The `DATABASE_URL` to hand the server, if any.
    pub fn url(&self) -> Option<&str> {
        match self {
            Database::Sqlite => None,
            Database::Postgres(db) => Some(&db.url),
            Database::Shared(url) => Some(url),
        }
    }

    /// Which backend, for the test output.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite => "SQLite (in the data directory)".to_owned(),
            Database::Postgres(db) => format!("PostgreSQL (database {})", db.name),
            Database::Shared(url) => format!("PostgreSQL (shared: {url})"),
        }
    }
}

/// A PostgreSQL database `e2e_<random hex>`, dropped (best effort) on drop.
#[derive(Debug)]
pub struct PgDatabase {
    /// Where `CREATE DATABASE` ran (`TEST_DATABASE_URL`).
    admin_url: String,
    /// The new database's name.
    name: String,
    /// The new database's URL.
    url: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Self {
        let name = format!("e2e_{}", hex::encode(rand::random::<[u8; 8]>()));
        let url = with_database(admin_url, &name);
        let mut conn = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {TEST_DATABASE_URL}: {e}"));
        // The name is ours (hex), so quoting it is enough.
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} (the role needs CREATEDB): {e}"));
        let _ = conn.close().await;
        PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside async code (possibly inside a runtime), so the
        // clean-up gets a thread and a runtime of its own.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(AssertSqlSafe(sql))
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("note: could not drop test database {name}: {e}"),
            Err(_) => eprintln!("note: dropping test database {name} panicked"),
        }
    }
}

/// `url` with its database (the path) replaced by `name`; the query string
/// (`?sslmode=…`) is kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // The server picks PostgreSQL by the `postgres://` prefix, so a
    // `postgresql://` URL is respelled.
    let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    let authority = rest
        .split_once('/')
        .map_or(rest, |(authority, _)| authority);
    let mut out = format!("postgres://{authority}/{name}");
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_replaces_the_path() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5432/vd_test", "e2e_ab"),
            "postgres://u:p@127.0.0.1:5432/e2e_ab"
        );
        assert_eq!(
            with_database("postgres://u:p@db/x?sslmode=disable", "e2e_ab"),
            "postgres://u:p@db/e2e_ab?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://db", "e2e_ab"),
            "postgres://db/e2e_ab"
        );
    }
}
