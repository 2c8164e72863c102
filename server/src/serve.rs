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
    tracing::info!(backend = %store.backend(), url = %config.database_url, "database ready");
    Ok(store)
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
