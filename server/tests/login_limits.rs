//! Login abuse limits through `router()`: failed logins back off per name
//! and per address (unknown names exactly like known ones), password checks
//! are bounded, and a guessing attack adds a few audit rows, not one per
//! guess.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use server::config::Config;
use server::store::Role;
use test_support::Routed;
use test_support::store as common;

const KEY: [u8; 32] = [7; 32];
const PASSWORD: &str = "correct horse battery";

/// `alice` and `bob`, cadres of village1 under county; three free failures
/// per name and ten per address before the back-off, unless `adjust` says
/// otherwise.
async fn app_with(adjust: impl FnOnce(&mut Config)) -> Routed {
    let app = Routed::sqlite(&KEY, |config| {
        config.login_free_failures_per_user = 3;
        config.login_free_failures_per_address = 10;
        adjust(config);
    })
    .await;
    let s = app.state.store.as_ref();
    let county = common::unit(s, "county", None, "county").await;
    let village = common::unit(s, "village1", Some(&county), "village").await;
    common::user_with_password(s, "alice", Role::Cadre, &village, PASSWORD).await;
    common::user_with_password(s, "bob", Role::Cadre, &village, PASSWORD).await;
    app
}

/// One login from `addr`: the status and the `Retry-After` header, if any.
async fn login(
    app: &Routed,
    username: &str,
    password: &str,
    addr: &str,
) -> (StatusCode, Option<u64>) {
    let mut request = Request::post("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": username, "password": password}).to_string(),
        ))
        .expect("request");
    let addr: SocketAddr = format!("{addr}:40000").parse().expect("address");
    request.extensions_mut().insert(ConnectInfo(addr));
    let answer = app.call(request).await;
    let retry_after = answer
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (answer.status, retry_after)
}

#[tokio::test]
async fn wrong_passwords_back_off_and_unknown_names_answer_the_same() {
    let app = app_with(|_| {}).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..6 {
        known.push(login(&app, "alice", "wrong", "10.0.0.1").await);
        unknown.push(login(&app, "nobody", "wrong", "10.0.0.2").await);
    }
    let statuses: Vec<StatusCode> = known.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            // The fourth failure locks the name for a second.
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
    assert_eq!(known, unknown, "an unknown name is refused exactly alike");
    assert_eq!(known[4].1, Some(1), "Retry-After in whole seconds");

    // The right password is refused too while the name is locked, and
    // works once the lock has run out.
    let (status, _) = login(&app, "alice", PASSWORD, "10.0.0.1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Someone else, elsewhere, is not affected.
    assert_eq!(
        login(&app, "bob", PASSWORD, "10.0.0.3").await.0,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        login(&app, "alice", PASSWORD, "10.0.0.1").await.0,
        StatusCode::OK
    );
    // A success starts the name afresh.
    assert_eq!(
        login(&app, "alice", "wrong", "10.0.0.1").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_address_guessing_many_names_backs_off() {
    let app = app_with(|_| {}).await;
    for i in 0..10 {
        let (status, _) = login(&app, &format!("guess{i}"), "wrong", "10.9.9.9").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // The eleventh failure from the address locks it.
    assert_eq!(
        login(&app, "guess10", "wrong", "10.9.9.9").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&app, "alice", PASSWORD, "10.9.9.9").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        login(&app, "alice", PASSWORD, "10.9.9.8").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_guessing_attack_adds_a_few_audit_rows_not_one_per_guess() {
    let app = app_with(|_| {}).await;
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(login(&app, "alice", "wrong", "10.0.0.1").await.0);
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(checked, 4, "three free failures and the one that locks");
    assert_eq!(failed_rows(&app).await, 4, "refused guesses write nothing");
}

async fn failed_rows(app: &Routed) -> usize {
    app.state
        .store
        .list_audit(10_000)
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.action == "auth.login_failed")
        .count()
}

#[tokio::test]
async fn password_checks_are_bounded_and_the_rest_are_told_to_retry() {
    let app = app_with(|c| {
        c.concurrent_password_checks = 1;
        c.login_free_failures_per_address = 10_000;
    })
    .await;
    let attempts = (0..300).map(|i| {
        let app = &app;
        async move {
            login(
                app,
                &format!("user{i}"),
                "wrong",
                &format!("10.1.{}.{}", i / 200, i % 200),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let busy: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        answers
            .iter()
            .all(|(s, _)| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{answers:?}"
    );
    assert!(
        !busy.is_empty(),
        "one check at a time cannot serve 300 in 2 s: {answers:?}"
    );
    assert!(busy.iter().all(|(_, retry)| *retry == Some(1)));
}
