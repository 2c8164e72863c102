//! A sync connection ends with the login it was opened under: on logout and
//! when a reused refresh token revokes the login, at once; another login of
//! the same cadre (another phone) keeps syncing. A connection that answers
//! nothing, not even pings, is closed as idle.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use server::store::Store;

use test_support::Served;

/// `POST path` with a JSON body (and a bearer token); the status and the
/// JSON answer (`Null` when there is none).
async fn post(server: &Served, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Logs cadre01 in with `password`; the status and the tokens, if any.
async fn login_with(server: &Served, password: &str, device: &str) -> (u16, Value) {
    let body = json!({"username": "cadre01", "password": password, "device_id": device});
    post(server, "/api/v1/auth/login", None, body).await
}

/// Logs cadre01 in; returns (access token, refresh token).
async fn login(server: &Served, device: &str) -> (String, String) {
    let (status, tokens) = login_with(server, test_support::DEMO_PASSWORD, device).await;
    assert_eq!(status, 200, "{tokens}");
    (
        tokens["access_token"].as_str().expect("access").to_owned(),
        tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    )
}

/// Presents a refresh token; the status and the tokens, if any.
async fn refresh(server: &Served, refresh_token: &str) -> (u16, Value) {
    let body = json!({ "refresh_token": refresh_token });
    post(server, "/api/v1/auth/refresh", None, body).await
}

async fn logging_out_ends_that_logins_sync_connection_only(store: Arc<dyn Store>) {
    let server = Served::on_store(store, |_| {}).await;
    let (access_a, refresh_a) = login(&server, "phone-a").await;
    let (access_b, _) = login(&server, "phone-b").await;
    let mut a = test_support::Device::connect(server.addr, &access_a, "phone-a").await;
    let mut b = test_support::Device::connect(server.addr, &access_b, "phone-b").await;

    let body = json!({ "refresh_token": refresh_a });
    assert_eq!(
        post(&server, "/api/v1/auth/logout", None, body).await.0,
        204
    );
    let ended = tokio::time::timeout(Duration::from_secs(5), a.expect_error_and_close())
        .await
        .expect("phone a's socket ends at once, not at the session check");
    assert!(ended.contains("logged out"), "{ended}");

    // The other phone's login is untouched.
    let answer = b.request(sync_core::diary_id("cadre01", 2026)).await;
    assert!(answer.is_some(), "phone b still syncs");
}

async fn a_reused_refresh_token_ends_the_logins_sync_connection(store: Arc<dyn Store>) {
    let server = Served::on_store(store, |_| {}).await;
    let (access, refresh_token) = login(&server, "phone").await;
    let mut phone = test_support::Device::connect(server.addr, &access, "phone").await;
    // The phone refreshes twice (its successor is used, so no retry grace
    // applies); then a stolen copy of the first token comes back.
    let (_, first) = refresh(&server, &refresh_token).await;
    let first = first["refresh_token"].as_str().expect("rotated").to_owned();
    assert_eq!(refresh(&server, &first).await.0, 200);
    assert_eq!(refresh(&server, &refresh_token).await.0, 401);
    let ended = tokio::time::timeout(Duration::from_secs(5), phone.expect_error_and_close())
        .await
        .expect("the socket ends at once");
    assert!(ended.contains("logged out"), "{ended}");
}

// On SQLite only: it counts from the process's metrics, which a second
// backend's copy of it would add to meanwhile, and the store takes no part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_sync_connection_is_closed_and_one_answering_pings_is_not() {
    let server = Served::start_with(|c| c.sync_idle_timeout = Duration::from_secs(1)).await;
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
async fn idle_ends(server: &Served) -> u64 {
    let text = reqwest::get(format!("{}/metrics", server.base_url()))
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

async fn change_password(server: &Served, access: &str, current: &str, new: &str) -> u16 {
    let body = json!({ "current_password": current, "new_password": new });
    post(server, "/api/v1/me/password", Some(access), body)
        .await
        .0
}

async fn a_password_change_logs_the_other_phones_out(store: Arc<dyn Store>) {
    let server = Served::on_store(store, |_| {}).await;
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
    assert_eq!(refresh(&server, &refresh_b).await.0, 401);
    // Phone a keeps its login.
    assert_eq!(refresh(&server, &refresh_a).await.0, 200);
    // Only the new password logs in.
    assert_eq!(login_with(&server, "demo-pass", "phone-c").await.0, 401);
    assert_eq!(login_with(&server, new, "phone-c").await.0, 200);
}

test_support::backends!(
    logging_out_ends_that_logins_sync_connection_only,
    a_reused_refresh_token_ends_the_logins_sync_connection,
    a_password_change_logs_the_other_phones_out,
);
