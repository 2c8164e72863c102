//! `server::serve` in this process on 127.0.0.1:0, with the demo
//! organisation seeded, for tests that need real sockets and the server's
//! configuration (the end-to-end suite runs the binary instead).

use std::net::SocketAddr;
use std::sync::Arc;

use server::config::Config;
use server::store::Store;

/// Password of every demo account.
pub const DEMO_PASSWORD: &str = "demo-pass";

/// A running server; it shuts down when dropped.
#[derive(Debug)]
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its configuration (to open its store beside it).
    pub config: Config,
    /// The store it serves, when it was given one ([`Self::on_store`]).
    served_store: Option<Arc<dyn Store>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServeError>>>,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Serves the demo organisation with test defaults changed by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::start_seeded(adjust, false).await
    }

    /// Serves the demo organisation and its diaries, contacts and ledger
    /// (what `serve --demo` shows), with the test defaults.
    pub async fn start_with_records() -> Self {
        Self::start_seeded(|_| {}, true).await
    }

    async fn start_seeded(adjust: impl FnOnce(&mut Config), records: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path(), &[7; 32]);
        adjust(&mut config);
        let store = server::open_store(&config).await.expect("open store");
        server::seed_demo(store.as_ref(), DEMO_PASSWORD)
            .await
            .expect("seed demo");
        if records {
            server::demo::seed_demo_records(store.as_ref())
                .await
                .expect("seed demo records");
        }
        store.close().await;
        Self::launch(config, dir, None).await
    }

    /// Serves the demo organisation from `store` (any backend, e.g. one of
    /// [`backends!`](crate::backends)), with test defaults changed by
    /// `adjust`; the configuration's database URL is not used.
    pub async fn on_store(store: Arc<dyn Store>, adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path(), &[7; 32]);
        adjust(&mut config);
        server::seed_demo(store.as_ref(), DEMO_PASSWORD)
            .await
            .expect("seed demo");
        Self::launch(config, dir, Some(store)).await
    }

    async fn launch(config: Config, dir: tempfile::TempDir, store: Option<Arc<dyn Store>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let served_store = store.clone();
        let task = match store {
            Some(store) => tokio::spawn(server::serve_with_store(
                config.clone(),
                store,
                listener,
                stopped,
            )),
            None => tokio::spawn(server::serve(config.clone(), listener, stopped)),
        };
        Served {
            addr,
            config,
            served_store,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The store the server runs on, to look into beside it: the one given
    /// to [`Self::on_store`] (shared with the server: drop it, never close
    /// it), else the configuration's database opened again.
    pub async fn store(&self) -> Arc<dyn Store> {
        match &self.served_store {
            Some(store) => store.clone(),
            None => server::open_store(&self.config).await.expect("open store"),
        }
    }

    /// Serves the demo organisation with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// This server's [`metric`](crate::metric) `series`.
    pub async fn metric(&self, series: &str) -> f64 {
        crate::metric(&self.base_url(), series).await
    }

    /// Logs a demo user in; returns the access token.
    pub async fn login(&self, username: &str, device: &str) -> String {
        crate::login(&self.base_url(), username, DEMO_PASSWORD, device).await
    }

    /// A logged-in device of a demo user, past the sync handshake.
    pub async fn device(&self, username: &str, device: &str) -> crate::Device {
        let token = self.login(username, device).await;
        crate::Device::connect(self.addr, &token, device).await
    }

    /// `GET path` with a bearer token: the status and the JSON body
    /// (`Null` when the body is not JSON).
    pub async fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base_url()))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `POST path` with a bearer token and a JSON body: the status and the
    /// JSON answer (`Null` when it is not JSON).
    pub async fn post(
        &self,
        token: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base_url()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Shuts the server down and waits until `serve` has returned.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(std::time::Duration::from_secs(40), task)
                .await
                .expect("the server stops")
                .expect("serve task")
                .expect("serve");
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
