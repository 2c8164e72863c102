//! Running the server: open the store, build the app, serve until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::app::{AppState, router};
use crate::backup;
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
    let Some(path) = backup::sqlite_path(url) else {
        return;
    };
    let files = [
        backup::with_suffix(&path, "-wal"),
        backup::with_suffix(&path, "-shm"),
        path.clone(),
    ];
    for file in files.iter().filter(|f| f.exists()) {
        backup::set_mode(file, 0o600);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        backup::set_mode(dir, 0o700);
    }
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

/// How often the ledger's per-unit counts are folded (PostgreSQL adds a
/// row per change; a total sums the rows of its keys).
const LEDGER_COUNTS_FOLD_EVERY: Duration = Duration::from_secs(60);

/// How often idle live documents are looked for.
const LIVE_EVICTION_EVERY: Duration = Duration::from_secs(30);

/// [`serve`] with a store that is already open and migrated (`main` uses it
/// to seed the demo before serving).
pub async fn serve_with_store(
    config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let header_read_timeout = config.header_read_timeout;
    let state = AppState::new(store.clone(), config)?;
    let signal = state.shutdown.clone();
    // Drops live documents nobody synced for a while.
    tokio::spawn({
        let live = state.sync_hub.live().clone();
        let signal = signal.clone();
        async move {
            live.evict_periodically(LIVE_EVICTION_EVERY, signal.triggered())
                .await;
        }
    });
    // Folds documents' chunks into snapshots, off the syncs' path.
    tokio::spawn({
        let (hub, permits) = (state.sync_hub.clone(), state.merge_permits.clone());
        let (store, signal) = (store.clone(), signal.clone());
        async move {
            crate::sync::compactor::run(hub, store, permits, signal.triggered()).await;
        }
    });
    // Keeps the ledger's per-unit counts one row per key.
    tokio::spawn({
        let (store, signal) = (store.clone(), signal.clone());
        async move {
            crate::ledger::fold_counts_periodically(
                store,
                LEDGER_COUNTS_FOLD_EVERY,
                signal.triggered(),
            )
            .await;
        }
    });
    // Other processes' writes on the same database reach this one's
    // connections.
    if let Some(mut writes) = store.other_writes().await? {
        let (hub, signal) = (state.sync_hub.clone(), signal.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = signal.triggered() => return,
                    write = writes.recv() => match write {
                        Some(write) => hub.other_write(write),
                        None => return,
                    },
                }
            }
        });
    }
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
    let server = accept_loop(listener, app, header_read_timeout, signal.clone());
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

/// Accepts connections and serves each as HTTP/1.1 until `signal` fires,
/// then waits for the open ones to finish.
///
/// Not `axum::serve`, because it cannot bound how long a client takes to
/// send its request head: a client that connects and sends nothing, or half
/// its headers, or keeps an idle keep-alive connection, would hold a socket
/// and a task forever. hyper's `header_read_timeout` runs from the moment
/// the server waits for a request head, on a new connection and between
/// requests alike; past it the connection is closed. HTTP/1.1 only: phones
/// and the reverse proxies in front of this server speak it, and HTTP/2's
/// protocol detection would read the first bytes without that timer.
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    header_read_timeout: Duration,
    signal: crate::shutdown::ShutdownSignal,
) -> std::io::Result<()> {
    use axum::extract::ConnectInfo;
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    // Each connection's task holds a sender; when all are dropped, every
    // connection has finished.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // it was accepted: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = signal.triggered() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(addr));
                request
            },
        );
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .serve_connection(
                TokioIo::new(stream),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .with_upgrades();
        let signal = signal.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let _open = open;
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = signal.triggered() => {
                    // Finish the request in flight, then close. An upgraded
                    // WebSocket watches the same signal and closes itself.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(open);
    let _ = all_closed.recv().await;
    Ok(())
}
