//! `server backup` and `server restore` for the SQLite store.
//!
//! A backup is SQLite's `VACUUM INTO`: one read transaction, so the copy is
//! the database as of one instant even while servers keep syncing (WAL lets
//! writers go on meanwhile). It is written beside the target and renamed
//! into place only once complete and checked, so a crash never leaves a
//! half-written file under the target's name. PostgreSQL has its own tools
//! (`pg_dump`, see README).

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions, Connection};

/// What a backup or a restore found in the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    /// User accounts.
    pub users: i64,
    /// Stored documents.
    pub documents: i64,
    /// Ledger rows (petitions).
    pub petitions: i64,
}

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The configured database is not SQLite.
    #[error(
        "the database is not SQLite; back PostgreSQL up with pg_dump \
         (see README, \"Backup and restore\")"
    )]
    NotSqlite,
    /// The target (or the restore's database file) exists already.
    #[error("{0} exists already; choose a new file (nothing was overwritten)")]
    Exists(PathBuf),
    /// The copy failed its integrity check.
    #[error("the copy in {path} is damaged: {detail}")]
    Damaged {
        /// The file checked.
        path: PathBuf,
        /// What `PRAGMA integrity_check` said.
        detail: String,
    },
    /// SQLite failed.
    #[error("database error")]
    Sqlite(#[from] sqlx::Error),
    /// A file could not be written or moved.
    #[error("file error")]
    Io(#[from] std::io::Error),
}

/// The SQLite file a `sqlite:` URL names, or `None` for another backend.
pub fn sqlite_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

/// Copies the SQLite database at `database_url` into `target`.
pub async fn backup(database_url: &str, target: &Path) -> Result<Contents, BackupError> {
    let source = sqlite_path(database_url).ok_or(BackupError::NotSqlite)?;
    if target.exists() {
        return Err(BackupError::Exists(target.to_owned()));
    }
    let partial = with_suffix(target, ".partial");
    // Left over from a backup that was killed: never a valid copy.
    let _ = std::fs::remove_file(&partial);
    let mut conn = SqliteConnectOptions::new()
        .filename(&source)
        .read_only(true)
        .connect()
        .await?;
    let copied = sqlx::query("VACUUM INTO ?1")
        .bind(partial.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await;
    conn.close().await?;
    copied?;
    let contents = match check(&partial).await {
        Ok(contents) => contents,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    restrict(&partial);
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, target)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself survives a power cut once the folder is synced.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(contents)
}

/// Puts the backup `source` in place as the SQLite database at
/// `database_url`, which must not exist yet. The caller then opens the
/// store, which applies any migrations newer than the backup.
pub async fn restore(source: &Path, database_url: &str) -> Result<Contents, BackupError> {
    let target = sqlite_path(database_url).ok_or(BackupError::NotSqlite)?;
    if target.exists() {
        return Err(BackupError::Exists(target));
    }
    let contents = check(source).await?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let partial = with_suffix(&target, ".partial");
    std::fs::copy(source, &partial)?;
    restrict(&partial);
    std::fs::File::open(&partial)?.sync_all()?;
    std::fs::rename(&partial, &target)?;
    Ok(contents)
}

/// Opens a copy read-only, checks it whole and counts what it holds.
async fn check(path: &Path) -> Result<Contents, BackupError> {
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnectOptions::from_str(&url)?
        .read_only(true)
        .journal_mode(SqliteJournalMode::Delete)
        .connect()
        .await?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await?;
    if verdict != "ok" {
        conn.close().await?;
        return Err(BackupError::Damaged {
            path: path.to_owned(),
            detail: verdict,
        });
    }
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut conn)
        .await?;
    let documents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents")
        .fetch_one(&mut conn)
        .await?;
    let petitions: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_petitions")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(Contents {
        users,
        documents,
        petitions,
    })
}

pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Residents' data: readable by this user only.
fn restrict(path: &Path) {
    set_mode(path, 0o600);
}

/// Sets `path`'s Unix permission bits to `mode` (nothing elsewhere); a
/// failure is logged, not fatal.
pub(crate) fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(path = %path.display(), error = %e, "could not restrict permissions");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}
