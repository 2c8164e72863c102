//! The authorization matrix: every route of the OpenAPI document (generated
//! from the route table, so a new route is covered the day it is added) against every kind of caller:
//! no token, an expired token, a forged token, the owner cadre, another
//! cadre, the supervisor of the owner's town, of the county above it, of
//! the sibling town, and the admin.
//!
//! What must hold:
//! - without a valid token every authenticated route answers 401;
//! - a petition that is not the caller's to see answers exactly (status and
//!   body) as a petition that does not exist, on every petition route;
//! - what a caller may not touch is refused: the audit log (admins only),
//!   another town's unit in a query, another cadre's petition in a list;
//! - and the callers who may see something do (the matrix is not a wall).
//!
//! It prints how many forbidden accesses were tried and refused.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{Value, json};
use server::auth::JwtKeys;
use test_support::{Served, TokenIn, open_socket};

/// A petition id nobody holds.
const MISSING: &str = "00000000-0000-4000-8000-000000000000";

struct Caller {
    name: &'static str,
    token: Option<String>,
}

/// The routes the OpenAPI document describes: (method, path) and whether
/// they need a token.
fn documented_routes() -> Vec<(String, String, bool)> {
    let spec: Value =
        serde_json::from_str(server::routes::openapi::document_json()).expect("openapi.json");
    let mut routes = Vec::new();
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let public = op["security"].as_array().is_some_and(Vec::is_empty);
            routes.push((method.to_uppercase(), path.clone(), !public));
        }
    }
    routes
}

/// A body the route accepts, so that a refusal is about the caller.
fn body_for(path: &str) -> Value {
    match path.rsplit('/').next().unwrap_or("") {
        "deadline" => {
            // A month ahead (China time): after every demo item's creation.
            let day = Utc::now() + chrono::TimeDelta::hours(8) + chrono::TimeDelta::days(30);
            json!({"deadline": day.format("%Y-%m-%d").to_string()})
        }
        "assign" => json!({"to": "cadre02"}),
        "reopen" => json!({"reason": "群众反映问题仍未解决"}),
        "password" => {
            json!({"current_password": "wrong-pass", "new_password": "河湾村走访2026年春"})
        }
        _ => json!({"note": "核实情况"}),
    }
}

/// A query that makes list routes answer (the lists want a month).
fn query_for(path: &str) -> &'static str {
    if path.contains("lists") {
        "?month=2026-11"
    } else {
        ""
    }
}

async fn call(served: &Served, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", served.base_url());
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url).json(&body_for(path)),
        other => panic!("no {other} routes expected"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, body)
}

/// The body without the per-request id, so two answers can be compared.
fn comparable(body: &str) -> Value {
    let mut value: Value = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    if let Some(error) = value.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("request_id");
    }
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_against_every_caller() {
    let served = Served::start_with_records().await;
    let config = &served.config;
    let keys_with = |secret: &[u8]| {
        JwtKeys::new(
            secret,
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl,
        )
    };
    let keys = keys_with(config.jwt_secret.as_ref().expect("a key").expose());
    let other_keys = keys_with(&[9; 32]);
    let store = server::open_store(&served.config).await.expect("store");
    let cadre01 = store
        .get_user_by_username("cadre01")
        .await
        .expect("user")
        .expect("cadre01");
    store.close().await;
    let expired = {
        let mut claims = keys.claims_for(&cadre01, "phone", Utc::now());
        claims.exp = Utc::now().timestamp() - 3600;
        claims.iat = claims.exp - 900;
        keys.sign(&claims).expect("sign")
    };
    let forged = other_keys
        .issue(&cadre01, "phone", Utc::now())
        .expect("sign");

    let mut callers = vec![
        Caller {
            name: "no token",
            token: None,
        },
        Caller {
            name: "expired token",
            token: Some(expired),
        },
        Caller {
            name: "forged token",
            token: Some(forged),
        },
    ];
    for name in [
        "cadre01",
        "cadre07",
        "sup-town1",
        "sup-county",
        "sup-town2",
        "admin",
    ] {
        callers.push(Caller {
            name,
            token: Some(served.login(name, "desk").await),
        });
    }
    let token = |name: &str| {
        callers
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.token.clone())
            .expect("caller")
    };

    // A petition of cadre01 (village under town 1), as its supervisor sees it.
    let (status, ledger) = call(
        &served,
        "GET",
        "/api/v1/ledger?per_page=200",
        Some(&token("sup-town1")),
    )
    .await;
    assert_eq!(status, 200, "{ledger}");
    let ledger: Value = serde_json::from_str(&ledger).expect("json");
    let petition = ledger["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["owner"] == "cadre01")
        .and_then(|p| p["id"].as_str())
        .expect("a petition of cadre01")
        .to_owned();

    let mut tried = 0usize;
    let mut refused = 0usize;
    let mut by_caller: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (method, path, needs_token) in documented_routes() {
        if !needs_token {
            continue;
        }
        if path == "/api/v1/sync" {
            // The WebSocket upgrade: checked below with a real socket.
            continue;
        }
        for caller in &callers[..3] {
            let concrete = path.replace("{id}", &petition) + query_for(&path);
            let (status, body) = call(&served, &method, &concrete, caller.token.as_deref()).await;
            tried += 1;
            assert_eq!(status, 401, "{} {method} {concrete}: {body}", caller.name);
            refused += 1;
            let e = by_caller.entry(caller.name).or_default();
            e.0 += 1;
            e.1 += 1;
        }
        if path.contains("{id}") {
            // Not theirs to see: exactly like a petition that does not exist.
            for name in ["cadre07", "sup-town2"] {
                let real = path.replace("{id}", &petition);
                let missing = path.replace("{id}", MISSING);
                let (s1, b1) = call(&served, &method, &real, Some(&token(name))).await;
                let (s2, b2) = call(&served, &method, &missing, Some(&token(name))).await;
                tried += 1;
                assert!(s1 >= 400, "{name} {method} {real} was allowed: {s1} {b1}");
                assert_eq!(
                    (s1, comparable(&b1)),
                    (s2, comparable(&b2)),
                    "{name} {method} {path}: another's petition and a missing one differ"
                );
                refused += 1;
                let e = by_caller.entry(name).or_default();
                e.0 += 1;
                e.1 += 1;
            }
        }
    }

    // The audit log is the admin's.
    for name in ["cadre01", "cadre07", "sup-town1", "sup-county", "sup-town2"] {
        let (status, body) = call(&served, "GET", "/api/v1/audit", Some(&token(name))).await;
        tried += 1;
        assert_eq!(status, 403, "{name} read the audit log: {body}");
        refused += 1;
        let e = by_caller.entry(name).or_default();
        e.0 += 1;
        e.1 += 1;
    }
    // Another town's unit in a query is refused; the town's own is not.
    for path in [
        "/api/v1/ledger?unit=town1",
        "/api/v1/visits?unit=town1",
        "/api/v1/stats?unit=town1",
        "/api/v1/lists?month=2026-11&unit=town1",
        "/api/v1/ledger/export.csv?unit=town1",
    ] {
        let (status, body) = call(&served, "GET", path, Some(&token("sup-town2"))).await;
        tried += 1;
        assert_eq!(status, 403, "sup-town2 {path}: {body}");
        refused += 1;
        let e = by_caller.entry("sup-town2").or_default();
        e.0 += 1;
        e.1 += 1;
        let (status, body) = call(&served, "GET", path, Some(&token("sup-town1"))).await;
        assert_eq!(status, 200, "sup-town1 {path}: {body}");
    }
    // Lists hold what the caller may see, and only that.
    for (name, sees) in [
        ("cadre01", true),
        ("cadre07", false),
        ("sup-town1", true),
        ("sup-county", true),
        ("sup-town2", false),
        ("admin", true),
    ] {
        let (status, body) = call(
            &served,
            "GET",
            "/api/v1/ledger?per_page=200",
            Some(&token(name)),
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        let listed = body.contains(&petition);
        if !sees {
            tried += 1;
            refused += usize::from(!listed);
            let e = by_caller.entry(name).or_default();
            e.0 += 1;
            e.1 += usize::from(!listed);
        }
        assert_eq!(listed, sees, "{name} and cadre01's petition in the ledger");
        let (status, body) = call(
            &served,
            "GET",
            &format!("/api/v1/petitions/{petition}"),
            Some(&token(name)),
        )
        .await;
        assert_eq!(
            status == 200,
            sees,
            "{name} GET the petition: {status} {body}"
        );
    }
    // The sync upgrade without a valid token.
    for caller in &callers[..3] {
        let result = open_socket(served.addr, caller.token.as_deref(), TokenIn::Header).await;
        tried += 1;
        let status = match result {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                response.status().as_u16()
            }
            other => panic!(
                "{}: the sync upgrade was not refused: {other:?}",
                caller.name
            ),
        };
        assert_eq!(status, 401, "{}", caller.name);
        refused += 1;
        let e = by_caller.entry(caller.name).or_default();
        e.0 += 1;
        e.1 += 1;
    }

    eprintln!("forbidden accesses tried: {tried}, refused: {refused}");
    for (name, (t, r)) in &by_caller {
        eprintln!("  {name}: {t} tried, {r} refused");
    }
    assert_eq!(tried, refused);
}
