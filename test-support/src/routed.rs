//! `server::router` called in this process through
//! `tower::ServiceExt::oneshot`: no socket and no port, for tests of HTTP
//! answers that need neither ([`Served`](crate::Served) runs the server on
//! a socket).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use chrono::Utc;
use serde_json::Value;
use server::config::Config;
use server::store::Store;
use server::{AppState, router};
use tower::ServiceExt;

/// The largest body an [`Answer`] reads (exports of a large ledger fit).
const MAX_BODY: usize = 1 << 24;

/// The router and its state; the temporary data directory lives as long as
/// it.
#[allow(missing_debug_implementations)]
pub struct Routed {
    /// What requests go through.
    pub router: Router,
    /// Its state (store, configuration, token keys).
    pub state: AppState,
    _dir: tempfile::TempDir,
}

/// A status, the headers and the whole body of an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON; panics, showing the body, when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `error.code` of a JSON error body, or `<none>`.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("<none>")
            .to_owned()
    }

    /// Asserts that this is the JSON error `code` with `status`.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.error_code(), code);
    }
}

impl Routed {
    /// The router over a fresh SQLite store in a temporary directory, with
    /// `Config::for_tests` (token key `key`) changed by `adjust`. The store
    /// is empty but migrated; fill it through `state.store`.
    pub async fn sqlite(key: &[u8; 32], adjust: impl FnOnce(&mut Config)) -> Routed {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_tests(dir.path(), key);
        adjust(&mut config);
        let store = server::open_store(&config).await.expect("open store");
        Self::new(store, config, dir)
    }

    /// The router over `store` (any backend), with `Config::for_tests`
    /// (token key `key`); the configuration's database URL is not used.
    pub fn on_store(store: Arc<dyn Store>, key: &[u8; 32]) -> Routed {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::for_tests(dir.path(), key);
        Self::new(store, config, dir)
    }

    fn new(store: Arc<dyn Store>, config: Config, dir: tempfile::TempDir) -> Routed {
        let state = AppState::new(store, config).expect("state");
        Routed {
            router: router(state.clone()),
            state,
            _dir: dir,
        }
    }

    /// Sends `request` as it is (without `ConnectInfo` the server sees no
    /// client address) and reads the whole answer.
    pub async fn call(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), MAX_BODY)
            .await
            .expect("body")
            .to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// An access token for `username` (device `test`), signed with this
    /// server's key as a login would be.
    pub async fn token(&self, username: &str) -> String {
        let user = self
            .state
            .store
            .get_user_by_username(username)
            .await
            .expect("get")
            .expect("user");
        self.state
            .jwt
            .issue(&user, "test", Utc::now())
            .expect("token")
    }

    /// `GET uri` as `username`.
    pub async fn get_as(&self, username: &str, uri: &str) -> Answer {
        let token = self.token(username).await;
        self.call(
            Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }
}
