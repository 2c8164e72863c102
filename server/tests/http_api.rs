//! The HTTP API through `router()` with `tower::ServiceExt::oneshot`: no
//! sockets, a real SQLite store in a temporary directory.

use test_support::store::{self as common, named_id};
use test_support::{Answer, Routed};

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde_json::{Value, json};
use server::auth::JwtKeys;
use server::config::Config;
use server::store::{Role, Store, StoredKind, Unit, User};

const KEY: [u8; 32] = [42; 32];
const PASSWORD: &str = "correct horse battery";

/// The router on a fresh store, called as a client on this machine.
struct TestApp(Routed);

impl std::ops::Deref for TestApp {
    type Target = Routed;

    fn deref(&self) -> &Routed {
        &self.0
    }
}

/// A migrated store with `alice` (cadre of village1 under county) who can log
/// in, and `dora`, who is disabled.
async fn test_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let app = Routed::sqlite(&KEY, adjust).await;
    let s = app.state.store.as_ref();
    let county = common::unit(s, "county", None, "county").await;
    let village = common::unit(s, "village1", Some(&county), "village").await;
    common::user_with_password(s, "alice", Role::Cadre, &village, PASSWORD).await;
    let dora = common::user_with_password(s, "dora", Role::Cadre, &village, PASSWORD).await;
    s.set_user_disabled(dora.id, true).await.expect("disable");
    TestApp(app)
}

async fn test_app() -> TestApp {
    test_app_with(|_| {}).await
}

impl TestApp {
    /// Sends `request` as a client on this machine would (the server sees
    /// a loopback peer address unless the request names another).
    async fn call(&self, mut request: Request<Body>) -> Answer {
        if request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .is_none()
        {
            let local: SocketAddr = "127.0.0.1:50000".parse().expect("address");
            request.extensions_mut().insert(ConnectInfo(local));
        }
        self.0.call(request).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
    }

    /// `POST /api/v1/auth/login` with `body`.
    async fn post_login(&self, body: Value) -> Answer {
        self.post("/api/v1/auth/login", body).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.call(request.body(Body::empty()).expect("request"))
            .await
    }

    /// Logs alice in and returns (access token, refresh token).
    async fn login(&self) -> (String, String) {
        let answer = self
            .post_login(json!({"username": "alice", "password": PASSWORD, "device_id": "phone-1"}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let body = answer.json();
        (
            body["access_token"].as_str().expect("access").to_owned(),
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }

    async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
        )
        .await
    }

    /// Refreshes `refresh_token`, which must work, and returns its successor.
    async fn rotate(&self, refresh_token: &str) -> String {
        let answer = self.refresh(refresh_token).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned()
    }

    /// The account `username`, which must exist.
    async fn user(&self, username: &str) -> User {
        self.state
            .store
            .get_user_by_username(username)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("no user {username}"))
    }

    /// Whether the audit log holds a row of `action`.
    async fn audited(&self, action: &str) -> bool {
        self.audit_actions().await.iter().any(|a| a == action)
    }

    async fn audit_actions(&self) -> Vec<String> {
        self.state
            .store
            .list_audit(100)
            .await
            .expect("audit")
            .into_iter()
            .map(|e| e.action)
            .collect()
    }
}

#[tokio::test]
async fn login_answers_a_token_pair() {
    let app = test_app().await;
    let answer = app
        .post_login(json!({"username": "alice", "password": PASSWORD, "device_id": "phone-1"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let claims = app
        .state
        .jwt
        .verify(body["access_token"].as_str().expect("access"))
        .expect("a valid token");
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.role, Role::Cadre);
    assert_eq!(claims.device, "phone-1");
    assert_eq!(claims.iss, "visit-diary");
    assert_eq!(claims.aud, "visit-diary");
    assert_eq!(
        body["refresh_token"].as_str().map(str::len),
        Some(43),
        "32 bytes, base64url"
    );
    assert_eq!(app.audit_actions().await, ["auth.login"]);

    // device_id is optional.
    let answer = app
        .post_login(json!({"username": "alice", "password": PASSWORD}))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn bad_credentials_all_look_the_same() {
    let app = test_app().await;
    // A wrong password, an unknown name, a disabled account.
    let mut answers = Vec::new();
    for (username, password) in [("alice", "wrong"), ("nobody", PASSWORD), ("dora", PASSWORD)] {
        answers.push(
            app.post_login(json!({"username": username, "password": password}))
                .await,
        );
    }
    for answer in &answers {
        answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(
            answer
                .headers
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
    }
    let [wrong, unknown, disabled] = &answers[..] else {
        unreachable!("three logins")
    };
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, disabled.body);
    assert_eq!(
        app.audit_actions().await,
        [
            "auth.login_failed",
            "auth.login_failed",
            "auth.login_failed"
        ]
    );
}

#[tokio::test]
async fn malformed_login_requests_get_json_errors() {
    let app = test_app().await;
    let missing = app.post_login(json!({"username": "alice"})).await;
    missing.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request");
    assert!(
        missing.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("password")),
        "{}",
        missing.text()
    );

    // A NUL character, which PostgreSQL cannot hold in text, is refused in
    // a body and in a query string before anything reaches the database.
    let nul = app
        .post_login(json!({"username": "al\u{0}ice", "password": PASSWORD}))
        .await;
    assert_eq!(nul.status, StatusCode::BAD_REQUEST, "{}", nul.text());
    assert!(nul.text().contains("NUL"), "{}", nul.text());
    let (access, _) = app.login().await;
    for uri in [
        "/api/v1/ledger?q=%00",
        "/api/v1/ledger?unit=a%00",
        "/api/v1/visits?q=%00",
        "/api/v1/ledger/export.csv?q=%00",
    ] {
        let answer = app.get(uri, Some(&access)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.text()
        );
        assert_eq!(answer.error_code(), "bad_request", "{uri}");
    }

    let not_json = app
        .call(
            Request::post("/api/v1/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
        )
        .await;
    not_json.assert_error(StatusCode::BAD_REQUEST, "bad_request");

    let no_content_type = app
        .call(
            Request::post("/api/v1/auth/login")
                .body(Body::from("{}"))
                .expect("request"),
        )
        .await;
    no_content_type.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    // A device id too long, an empty name.
    for body in [
        json!({"username": "alice", "password": PASSWORD, "device_id": "x".repeat(500)}),
        json!({"username": "", "password": PASSWORD}),
    ] {
        let answer = app.post_login(body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = test_app().await;
    let (_, r1) = app.login().await;

    let second = app.refresh(&r1).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    let body = second.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let r2 = body["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(r1, r2);
    let claims = app
        .state
        .jwt
        .verify(body["access_token"].as_str().expect("access"))
        .expect("valid");
    assert_eq!(claims.device, "phone-1", "the device survives rotation");

    let r3 = app.rotate(&r2).await;

    // r1 again: someone kept a copy. Refused, and the whole family dies.
    let replay = app.refresh(&r1).await;
    replay.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let after = app.refresh(&r3).await;
    assert_eq!(
        after.status,
        StatusCode::UNAUTHORIZED,
        "the newest token of the family is revoked too"
    );
    assert!(app.audited("auth.refresh_reuse").await);

    // A fresh login is a new family and works.
    let (_, other) = app.login().await;
    assert_eq!(app.refresh(&other).await.status, StatusCode::OK);

    for junk in ["", "short", &"A".repeat(43), &"!".repeat(43)] {
        assert_eq!(app.refresh(junk).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_refresh_retried_after_a_lost_answer_gets_the_same_successor() {
    let app = test_app().await;
    let (_, r1) = app.login().await;

    let r2 = app.rotate(&r1).await;
    // The answer never reached the phone: it retries with r1.
    let retry = app.refresh(&r1).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    let body = retry.json();
    assert_eq!(body["refresh_token"].as_str(), Some(r2.as_str()));
    app.state
        .jwt
        .verify(body["access_token"].as_str().expect("access"))
        .expect("a valid access token");
    assert!(app.audited("auth.refresh_retry").await);

    // The family lives on: r2 rotates normally.
    let r3 = app.rotate(&r2).await;
    // r1 once more, now that its successor was used: reuse, family revoked.
    assert_eq!(app.refresh(&r1).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&r3).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_refused_once_the_user_is_disabled() {
    let app = test_app().await;
    let (_, r1) = app.login().await;
    let alice = app.user("alice").await;
    app.state
        .store
        .set_user_disabled(alice.id, true)
        .await
        .expect("disable");
    assert_eq!(app.refresh(&r1).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_revokes_the_family() {
    let app = test_app().await;
    let (_, r1) = app.login().await;
    let r2 = app.rotate(&r1).await;

    let answer = app
        .post("/api/v1/auth/logout", json!({ "refresh_token": r2 }))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(app.refresh(&r2).await.status, StatusCode::UNAUTHORIZED);
    assert!(app.audited("auth.logout").await);

    // Twice, or with junk: still 204.
    let again = app
        .post("/api/v1/auth/logout", json!({ "refresh_token": r2 }))
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let junk = app
        .post("/api/v1/auth/logout", json!({ "refresh_token": "nope" }))
        .await;
    assert_eq!(junk.status, StatusCode::NO_CONTENT);
    let malformed = app.post("/api/v1/auth/logout", json!({})).await;
    assert_eq!(malformed.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn me_identifies_the_caller() {
    let app = test_app().await;
    let (access, _) = app.login().await;

    let answer = app.get("/api/v1/me", Some(&access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let me = answer.json();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["role"], "cadre");
    assert_eq!(me["unit_code"], "village1");
    assert_eq!(me["device_id"], "phone-1");
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let app = test_app().await;
    let alice = app.user("alice").await;
    let keys = &app.state.jwt;

    let missing = app.get("/api/v1/me", None).await;
    missing.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let expired = keys
        .issue(&alice, "", Utc::now() - chrono::Duration::hours(1))
        .expect("sign");
    let answer = app.get("/api/v1/me", Some(&expired)).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "token_expired");

    let forged = JwtKeys::new(
        &[1; 32],
        "visit-diary",
        "visit-diary",
        Duration::from_secs(900),
    )
    .issue(&alice, "", Utc::now())
    .expect("sign");
    let answer = app.get("/api/v1/me", Some(&forged)).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // Same claims, signed correctly, then the signature cut off.
    let valid = keys.issue(&alice, "", Utc::now()).expect("sign");
    let unsigned = valid
        .rsplit_once('.')
        .map(|(head, _)| format!("{head}."))
        .expect("jwt");
    assert_eq!(
        app.get("/api/v1/me", Some(&unsigned)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // alg: none, with perfectly good claims.
    let claims = keys.claims_for(&alice, "", Utc::now());
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"))
    );
    let answer = app.get("/api/v1/me", Some(&none)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = app.get(&format!("/api/v1/me?token={none}"), None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // A valid token in the URL counts only on a WebSocket upgrade, not on
    // ordinary routes (URLs end up in logs and histories).
    let answer = app.get(&format!("/api/v1/me?token={valid}"), None).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.get("/api/v1/me", Some(&valid)).await.status,
        StatusCode::OK
    );

    // Another issuer's token with our key.
    let foreign = JwtKeys::new(
        &KEY,
        "someone-else",
        "visit-diary",
        Duration::from_secs(900),
    )
    .issue(&alice, "", Utc::now())
    .expect("sign");
    assert_eq!(
        app.get("/api/v1/me", Some(&foreign)).await.status,
        StatusCode::UNAUTHORIZED
    );

    for header_value in ["Basic YWxpY2U6eA==", "Bearer", "Bearer ", "garbage"] {
        let answer = app
            .call(
                Request::get("/api/v1/me")
                    .header(header::AUTHORIZATION, header_value)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{header_value}");
        assert_eq!(answer.error_code(), "unauthorized");
    }
}

#[tokio::test]
async fn me_documents_lists_only_the_callers_documents() {
    let app = test_app().await;
    let (access, _) = app.login().await;
    let store = app.state.store.as_ref();
    let alice = app.user("alice").await;
    let dora = app.user("dora").await;
    for (id, owner, kind, year) in [
        ("diaryA", alice.id, StoredKind::Diary, Some(2025)),
        ("contactsA", alice.id, StoredKind::Contacts, None),
        ("diaryD", dora.id, StoredKind::Diary, Some(2025)),
    ] {
        store
            .append_changes(common::creation(named_id(id), kind, owner, year))
            .await
            .expect("append");
    }

    let answer = app.get("/api/v1/me/documents", Some(&access)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let docs = answer.json();
    let docs = docs.as_array().expect("array");
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["id"], named_id("contactsA").to_string());
    assert_eq!(docs[0]["kind"], "contacts");
    assert_eq!(docs[0]["year"], Value::Null);
    assert_eq!(docs[1]["id"], named_id("diaryA").to_string());
    assert_eq!(docs[1]["kind"], "diary");
    assert_eq!(docs[1]["year"], 2025);
    assert_eq!(docs[1]["owner"], "alice");

    assert_eq!(
        app.get("/api/v1/me/documents", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = test_app().await;
    let health = app.get("/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.text(), "ok");

    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.text(), "ready");

    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = metrics.text();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    assert!(text.contains("# TYPE sync_connections gauge"), "{text}");
    assert!(text.contains("db_errors_total"), "{text}");

    // Made-up methods all count as one series.
    for method in ["BREW", "WHEN", "PROPFIND"] {
        let answer = app
            .call(
                Request::builder()
                    .method(method)
                    .uri("/healthz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = app.get("/metrics", None).await.text();
    assert!(
        !text.contains("BREW") && !text.contains("PROPFIND"),
        "{text}"
    );
    assert!(text.contains(r#"method="other""#), "{text}");

    // The helpers the sync endpoint will call show up too.
    server::metrics::sync_connection_opened();
    server::metrics::sync_message(server::metrics::Direction::In);
    server::metrics::merge_seconds(Duration::from_millis(3));
    server::metrics::sync_connection_closed();
    let text = app.get("/metrics", None).await.text();
    assert!(
        text.contains(r#"sync_messages_total{direction="in"}"#),
        "{text}"
    );
    assert!(text.contains("merge_seconds_bucket"), "{text}");
}

#[tokio::test]
async fn readyz_reports_a_dead_database() {
    let app = test_app().await;
    app.state.store.close().await;
    let answer = app.get("/readyz", None).await;
    answer.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    // Liveness does not depend on the database.
    assert_eq!(app.get("/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = test_app().await;
    let missing = app.get("/api/v1/nothing-here", None).await;
    missing.assert_error(StatusCode::NOT_FOUND, "not_found");

    let wrong_method = app.get("/api/v1/auth/login", None).await;
    wrong_method.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn request_ids_are_made_and_propagated() {
    let app = test_app().await;
    let made = app.get("/healthz", None).await;
    let id = made
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("a request id");
    assert_eq!(id.len(), 36, "a UUID: {id}");

    let given = app
        .call(
            Request::get("/healthz")
                .header("x-request-id", "from-the-client-1")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        given.headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(&b"from-the-client-1"[..])
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_json() {
    let app = test_app_with(|config| config.body_limit_bytes = 256).await;
    let answer = app
        .post_login(json!({"username": "alice", "password": "x".repeat(1000)}))
        .await;
    answer.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // With a Content-Length, the request is refused before the body is read.
    let declared = app
        .call(
            Request::post("/api/v1/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, "1000")
                .body(Body::from(vec![b' '; 1000]))
                .expect("request"),
        )
        .await;
    declared.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

/// The unit `code`, which must exist.
async fn unit(s: &dyn Store, code: &str) -> Unit {
    s.get_unit_by_code(code)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("no unit {code}"))
}

#[tokio::test]
async fn demo_seed_refuses_a_database_with_real_accounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::for_tests(dir.path(), &KEY);
    let store = server::open_store(&config).await.expect("open store");
    let county = common::unit(store.as_ref(), "county", None, "county").await;
    common::user(store.as_ref(), "wang.jianguo", Role::Supervisor, &county).await;
    let err = server::seed_demo(store.as_ref(), "demo-pass")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("wang.jianguo"), "{err}");
    // Nothing was added.
    assert!(
        store
            .get_user_by_username("cadre01")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(store.list_units().await.expect("units").len(), 1);
    store.close().await;

    // A demo database with an account added by hand still restarts with
    // --demo (nothing new is created).
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::for_tests(dir.path(), &KEY);
    let store = server::open_store(&config).await.expect("open store");
    server::seed_demo(store.as_ref(), "demo-pass")
        .await
        .expect("seed");
    let county = unit(store.as_ref(), "county").await;
    common::user(store.as_ref(), "cadre13", Role::Cadre, &county).await;
    let again = server::seed_demo(store.as_ref(), "demo-pass")
        .await
        .expect("seed again");
    assert_eq!((again.units_created, again.users_created), (0, 0));
    store.close().await;
}

#[tokio::test]
async fn demo_seed_is_idempotent_and_its_accounts_log_in() {
    let app = TestApp(Routed::sqlite(&KEY, |_| {}).await);
    let store = app.state.store.clone();
    let first = server::seed_demo(store.as_ref(), "demo-pass")
        .await
        .expect("seed");
    assert_eq!(first.units_created, 7);
    assert_eq!(first.users_created, 16);
    let second = server::seed_demo(store.as_ref(), "other-pass")
        .await
        .expect("seed again");
    assert_eq!(second.units_created, 0);
    assert_eq!(second.users_created, 0);

    let s: &dyn Store = store.as_ref();
    let town1 = unit(s, "town1").await;
    let subtree: Vec<String> = s
        .unit_subtree(town1.id)
        .await
        .expect("subtree")
        .into_iter()
        .map(|u| u.code)
        .collect();
    assert_eq!(subtree, ["town1", "village1", "village2"]);
    let village3 = unit(s, "village3").await;
    let cadres: Vec<String> = s
        .list_users_in_units(&[village3.id])
        .await
        .expect("list")
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(cadres, ["cadre07", "cadre08", "cadre09"]);
    assert_eq!(app.user("sup-county").await.role, Role::Supervisor);

    let answer = app
        .post_login(json!({"username": "sup-town1", "password": "demo-pass"}))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let access = answer.json()["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let me = app.get("/api/v1/me", Some(&access)).await.json();
    assert_eq!(me["role"], "supervisor");
    assert_eq!(me["unit_code"], "town1");
    assert_eq!(me["unit_name"], "一镇");
}

#[tokio::test]
async fn slow_requests_time_out_with_json() {
    // A password check takes tens of milliseconds; one millisecond is not enough.
    let app = test_app_with(|config| config.request_timeout = Duration::from_millis(1)).await;
    let answer = app
        .post_login(json!({"username": "alice", "password": PASSWORD}))
        .await;
    answer.assert_error(StatusCode::REQUEST_TIMEOUT, "timeout");
}

/// Every route of `server::app::router()`, as (method, path). The route
/// table (`app::api_routes`) registers each route with its OpenAPI
/// description, so the two agree by construction; this list is the third,
/// hand-kept view that the tests below hold both to, so that a route added
/// outside `routes!` (undocumented) or a description without a handler is
/// caught.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/me/documents"),
    ("GET", "/api/v1/me/assigned"),
    ("POST", "/api/v1/me/password"),
    ("GET", "/api/v1/ledger"),
    ("GET", "/api/v1/ledger/export.xlsx"),
    ("GET", "/api/v1/ledger/export.csv"),
    ("GET", "/api/v1/visits"),
    ("GET", "/api/v1/visits/export.xlsx"),
    ("GET", "/api/v1/visits/export.csv"),
    ("GET", "/api/v1/cards"),
    ("GET", "/api/v1/devices"),
    ("GET", "/api/v1/stats"),
    ("GET", "/api/v1/lists"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/exports/lists.xlsx"),
    ("GET", "/api/v1/exports/lists.csv"),
    ("GET", "/api/v1/exports/stats.xlsx"),
    ("GET", "/api/v1/exports/stats.csv"),
    ("GET", "/api/v1/petitions/{id}"),
    ("POST", "/api/v1/petitions/{id}/deadline"),
    ("POST", "/api/v1/petitions/{id}/assign"),
    ("POST", "/api/v1/petitions/{id}/escalate"),
    ("POST", "/api/v1/petitions/{id}/supervise"),
    ("POST", "/api/v1/petitions/{id}/close"),
    ("POST", "/api/v1/petitions/{id}/reopen"),
    ("POST", "/api/v1/petitions/{id}/progress"),
    ("POST", "/api/v1/petitions/{id}/resolve"),
    ("POST", "/api/v1/petitions/{id}/feedback"),
    ("GET", "/api/v1/sync"),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn openapi_document(app: &TestApp) -> Value {
    let answer = app.get("/api/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    answer.json()
}

/// Every (METHOD, path) the document describes.
fn documented_operations(doc: &Value) -> Vec<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths object");
    let mut operations = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("path item object");
        for method in item.keys().filter(|k| HTTP_METHODS.contains(&k.as_str())) {
            operations.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn openapi_document_is_served() {
    let app = test_app().await;
    let doc = openapi_document(&app).await;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "openapi {version:?}");
    assert!(doc["info"]["title"].is_string());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = test_app().await;
    let doc = openapi_document(&app).await;
    let operations = documented_operations(&doc);
    assert!(!operations.is_empty());
    for (method, template) in operations {
        // The one path parameter is a petition id.
        let path = template.replace("{id}", "00000000-0000-4000-8000-000000000000");
        assert!(
            !path.contains('{'),
            "path templates need a concrete value here: {template}"
        );
        let request = Request::builder()
            .method(method.as_str())
            .uri(&path)
            .body(Body::empty())
            .expect("request");
        let answer = app.call(request).await;
        assert!(
            answer.status != StatusCode::NOT_FOUND
                && answer.status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but answers {}: {}",
            answer.status,
            answer.text()
        );
    }
}

#[tokio::test]
async fn every_route_is_documented() {
    let app = test_app().await;
    let doc = openapi_document(&app).await;
    let mut documented = documented_operations(&doc);
    documented.sort();
    let mut routed: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    routed.sort();
    assert_eq!(
        documented, routed,
        "the OpenAPI document and the route table differ"
    );
}

/// The other direction, on the router itself: on every path the router
/// serves (the list above), each method is routed exactly when the
/// document describes it, so no handler hides beside a documented one and
/// no path is served undocumented.
#[tokio::test]
async fn the_router_serves_exactly_the_documented_operations() {
    let app = test_app().await;
    let doc = openapi_document(&app).await;
    let documented = documented_operations(&doc);
    let mut paths: Vec<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
    paths.dedup();
    for template in paths {
        let path = template.replace("{id}", "00000000-0000-4000-8000-000000000000");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let request = Request::builder()
                .method(method)
                .uri(&path)
                .body(Body::empty())
                .expect("request");
            let answer = app.call(request).await;
            let routed = answer.status != StatusCode::NOT_FOUND
                && answer.status != StatusCode::METHOD_NOT_ALLOWED;
            let is_documented = documented.iter().any(|(m, p)| m == method && p == template);
            assert_eq!(
                routed, is_documented,
                "{method} {template}: routed {routed} ({}), documented {is_documented}",
                answer.status
            );
        }
    }
}

/// The document is generated: the operations name their error responses,
/// and those are the JSON error body.
#[tokio::test]
async fn openapi_errors_are_the_json_error_body() {
    let app = test_app().await;
    let doc = openapi_document(&app).await;
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    let ledger = &doc["paths"]["/api/v1/ledger"]["get"];
    for status in ["400", "401", "403"] {
        let reference = ledger["responses"][status]["$ref"]
            .as_str()
            .unwrap_or_default();
        let name = reference.rsplit('/').next().unwrap_or_default();
        assert_eq!(
            doc["components"]["responses"][name]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status} of GET /api/v1/ledger"
        );
    }
    assert_eq!(ledger["security"], json!([{"bearer": []}]));
    assert_eq!(
        doc["paths"]["/api/v1/auth/login"]["post"]["security"],
        json!([])
    );
    let xlsx = &doc["paths"]["/api/v1/ledger/export.xlsx"]["get"]["responses"]["200"]["content"];
    assert!(
        xlsx["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"].is_object(),
        "{xlsx}"
    );
    assert!(
        doc["paths"]["/api/v1/ledger/export.csv"]["get"]["responses"]["200"]["content"]["text/csv"]
            .is_object()
    );
    assert!(doc["paths"]["/api/v1/sync"]["get"]["responses"]["101"].is_object());
}
