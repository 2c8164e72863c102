//! A sync connection ends with the login it was opened under: on logout and
//! when a reused refresh token revokes the login, at once; another login of
//! the same cadre (another phone) keeps syncing. A connection that answers
//! nothing, not even pings, is closed as idle.

use std::time::Duration;

use serde_json::{Value, json};
use server::config::Config;
use test_support::store as common;

struct Running {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start() -> Running {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::for_tests(dir.path(), &[6; 32]);
    adjust(&mut config);
    let store = server::open_store(&config).await.expect("open store");
    let village = common::unit(store.as_ref(), "village1", None, "village").await;
    common::user_with_password(
        store.as_ref(),
        "cadre01",
        server::store::Role::Cadre,
        &village,
        "demo-pass",
    )
    .await;
    store.close().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::serve(config, listener, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        _dir: dir,
    }
}

/// Logs in; returns (access token, refresh token).
async fn login(server: &Running, device: &str) -> (String, String) {
    let tokens: Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/login", server.addr))
        .json(&json!({"username": "cadre01", "password": "demo-pass", "device_id": device}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    (
        tokens["access_token"].as_str().expect("access").to_owned(),
        tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    )
}

/// Refreshes; returns the new refresh token.
async fn refresh_token_from(server: &Running, refresh: &str) -> String {
    let tokens: Value = reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/refresh", server.addr))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("json");
    tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned()
}

async fn post(server: &Running, path: &str, refresh: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}{path}", server.addr))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_that_logins_sync_connection_only() {
    let server = start().await;
    let (access_a, refresh_a) = login(&server, "phone-a").await;
    let (access_b, _) = login(&server, "phone-b").await;
    let mut a = test_support::Device::connect(server.addr, &access_a, "phone-a").await;
    let mut b = test_support::Device::connect(server.addr, &access_b, "phone-b").await;

    assert_eq!(post(&server, "/api/v1/auth/logout", &refresh_a).await, 204);
    let ended = tokio::time::timeout(Duration::from_secs(5), a.expect_error_and_close())
        .await
        .expect("phone a's socket ends at once, not at the session check");
    assert!(ended.contains("logged out"), "{ended}");

    // The other phone's login is untouched.
    let answer = b.request(sync_core::diary_id("cadre01", 2026)).await;
    assert!(answer.is_some(), "phone b still syncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_refresh_token_ends_the_logins_sync_connection() {
    let server = start().await;
    let (access, refresh) = login(&server, "phone").await;
    let mut phone = test_support::Device::connect(server.addr, &access, "phone").await;
    // The phone refreshes twice (its successor is used, so no retry grace
    // applies); then a stolen copy of the first token comes back.
    let first = refresh_token_from(&server, &refresh).await;
    refresh_token_from(&server, &first).await;
    assert_eq!(post(&server, "/api/v1/auth/refresh", &refresh).await, 401);
    let ended = tokio::time::timeout(Duration::from_secs(5), phone.expect_error_and_close())
        .await
        .expect("the socket ends at once");
    assert!(ended.contains("logged out"), "{ended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_sync_connection_is_closed_and_one_answering_pings_is_not() {
    let server = start_with(|c| c.sync_idle_timeout = Duration::from_secs(1)).await;
    let (access, _) = login(&server, "phone").await;
    let before = idle_ends(&server).await;
    assert_eq!(before, 0);
    let silent = test_support::Device::connect(server.addr, &access, "silent").await;
    let mut listening = test_support::Device::connect(server.addr, &access, "listening").await;
    // Reading answers the server's pings; the silent one reads nothing.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        let _ = tokio::time::timeout(Duration::from_millis(200), listening.next_frame()).await;
    }
    assert_eq!(
        idle_ends(&server).await,
        1,
        "the server ended exactly one session as idle"
    );
    drop(silent);
    let answer = listening
        .request(sync_core::diary_id("cadre01", 2026))
        .await;
    assert!(answer.is_some(), "the listening socket still syncs");
}

/// Sessions the server ended as idle, from its metrics (read from this
/// machine, which `/metrics` answers without a token).
async fn idle_ends(server: &Running) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with("sync_sessions_ended_total{") && l.contains("reason=\"idle\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

async fn change_password(server: &Running, access: &str, current: &str, new: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/api/v1/me/password", server.addr))
        .bearer_auth(access)
        .json(&json!({ "current_password": current, "new_password": new }))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn login_status(server: &Running, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/login", server.addr))
        .json(&json!({"username": "cadre01", "password": password}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_logs_the_other_phones_out() {
    let server = start().await;
    let (access_a, refresh_a) = login(&server, "phone-a").await;
    let (access_b, refresh_b) = login(&server, "phone-b").await;
    let mut b = test_support::Device::connect(server.addr, &access_b, "phone-b").await;

    let new = "河湾村走访2026年春";
    assert_eq!(
        change_password(&server, &access_a, "wrong-pass", new).await,
        403
    );
    assert_eq!(
        change_password(&server, &access_a, "demo-pass", "short").await,
        422
    );
    assert_eq!(
        change_password(&server, &access_a, "demo-pass", "cadre01-2026-spring").await,
        422,
        "a password holding the username"
    );
    assert_eq!(
        change_password(&server, &access_a, "demo-pass", new).await,
        204
    );

    // Phone b's login is revoked: its socket ends, its refresh fails.
    let ended = tokio::time::timeout(Duration::from_secs(5), b.expect_error_and_close())
        .await
        .expect("phone b's socket ends at once");
    assert!(ended.contains("logged out"), "{ended}");
    assert_eq!(post(&server, "/api/v1/auth/refresh", &refresh_b).await, 401);
    // Phone a keeps its login.
    assert_eq!(post(&server, "/api/v1/auth/refresh", &refresh_a).await, 200);
    // Only the new password logs in.
    assert_eq!(login_status(&server, "demo-pass").await, 401);
    assert_eq!(login_status(&server, new).await, 200);
}
