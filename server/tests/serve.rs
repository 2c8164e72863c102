//! `serve` on a real socket: a real HTTP client logs in, then a oneshot
//! shuts the server down gracefully.

use test_support::store as common;

use serde_json::{Value, json};
use server::config::Config;
use server::store::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_in_over_real_http_and_shuts_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::for_tests(dir.path(), &[9; 32]);

    // Seed one cadre through a store of our own, closed before serving.
    let store = server::open_store(&config).await.expect("open store");
    let village = common::unit(store.as_ref(), "village1", None, "village").await;
    common::user_with_password(
        store.as_ref(),
        "cadre01",
        Role::Cadre,
        &village,
        "demo-pass",
    )
    .await;
    store.close().await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server::serve(config.clone(), listener, async {
        let _ = stopped.await;
    }));

    let client = reqwest::Client::new();
    let login = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "cadre01", "password": "demo-pass", "device_id": "phone"}))
        .send()
        .await
        .expect("login request");
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    assert!(login.headers().contains_key("x-request-id"));
    let tokens: Value = login.json().await.expect("json");
    assert_eq!(tokens["token_type"], "Bearer");
    let access = tokens["access_token"].as_str().expect("access token");

    let me: Value = client
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(access)
        .send()
        .await
        .expect("me request")
        .json()
        .await
        .expect("json");
    assert_eq!(me["username"], "cadre01");
    assert_eq!(me["unit_code"], "village1");

    let wrong = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "cadre01", "password": "nope"}))
        .send()
        .await
        .expect("login request");
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);
    let error: Value = wrong.json().await.expect("json");
    assert_eq!(error["error"]["code"], "unauthorized");
    drop(client);

    stop.send(()).expect("server still running");
    running
        .await
        .expect("serve task")
        .expect("serve returns Ok after a graceful shutdown");

    // The audit log saw the client's real address.
    let store = server::open_store(&config).await.expect("reopen store");
    let audit = store.list_audit(10).await.expect("audit");
    let login_row = audit
        .iter()
        .find(|e| e.action == "auth.login")
        .expect("login audited");
    assert_eq!(login_row.remote_addr.as_deref(), Some("127.0.0.1"));
    store.close().await;
}

/// The database holds residents' personal data: only the server's user may
/// read it.
#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_is_private_to_the_server_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = Config::for_tests(&data, &[9; 32]);
    let store = server::open_store(&config).await.expect("open store");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("server.db")), 0o600);
    let wal = data.join("server.db-wal");
    if wal.exists() {
        assert_eq!(mode(&wal), 0o600);
    }
    store.close().await;
}
