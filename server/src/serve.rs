//! Running the server: open the store, build the app, serve until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{AppState, router};
use crate::config::{Config, ConfigError};
use crate::store::{self, ConnectOptions, Store, StoreError};

/// After shutdown begins, how long open connections get to finish before
/// `serve` returns anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot run a server (no JWT key).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("database unavailable")]
    Store(#[from] StoreError),
    /// Accepting connections failed.
    #[error("server I/O error")]
    Io(#[from] std::io::Error),
}

/// Connects to the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    let store = store::connect(
        config.database_url.expose(),
        ConnectOptions {
            max_connections: config.database_max_connections,
        },
    )
    .await?;
    store.migrate().await?;
    restrict_sqlite_files(config.database_url.expose());
    tracing::info!(backend = %store.backend(), url = %config.database_url, "database ready");
    Ok(store)
}

/// Makes an SQLite database readable by this user only: its folder `0700`,
/// the database and its `-wal`/`-shm` files `0600` (they hold residents'
/// names, phones and problems). A failure is logged, not fatal.
fn restrict_sqlite_files(url: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        else {
            return;
        };
        let path = std::path::Path::new(rest.split('?').next().unwrap_or(rest));
        if path.as_os_str().is_empty() || rest.starts_with(":memory:") {
            return;
        }
        let mut targets = vec![(path.to_path_buf(), 0o600)];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            targets.push((name.into(), 0o600));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            targets.push((dir.to_path_buf(), 0o700));
        }
        for (target, mode) in targets {
            if !target.exists() {
                continue;
            }
            if let Err(e) = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            {
                tracing::warn!(path = %target.display(), error = %e, "could not restrict permissions");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = url;
}

/// Opens the store (running migrations first), then serves HTTP on
/// `listener` until `shutdown` completes. Tests pass a listener bound to
/// `127.0.0.1:0` and a oneshot receiver; `main` passes ctrl-c/SIGTERM.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let store = open_store(&config).await?;
    serve_with_store(config, store, listener, shutdown).await
}

/// [`serve`] with a store that is already open and migrated (`main` uses it
/// to seed the demo before serving).
pub async fn serve_with_store(
    config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let state = AppState::new(store.clone(), config)?;
    let signal = state.shutdown.clone();
    let app = router(state);
    tokio::task::spawn_blocking(crate::auth::password::warm_up);

    tracing::info!(addr = %listener.local_addr()?, "listening");
    // Forward the caller's shutdown future into the signal that handlers
    // watch, so WebSockets can close themselves.
    let forward = {
        let signal = signal.clone();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            signal.trigger();
        })
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown({
        let signal = signal.clone();
        async move { signal.triggered().await }
    });
    let result = tokio::select! {
        result = server => result,
        () = async {
            signal.triggered().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("connections still open after the grace period; stopping anyway");
            Ok(())
        }
    };
    forward.abort();
    store.close().await;
    result.map_err(ServeError::Io)
}
