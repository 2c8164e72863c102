//! Logging in over HTTP.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// Logs `username` in at `base_url` (`http://host:port`) as `device` and
/// returns the access token; fails the test if the login is refused.
pub async fn login(base_url: &str, username: &str, password: &str, device: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": password, "device_id": device}))
        .send()
        .await
        .expect("login request");
    assert!(
        response.status().is_success(),
        "login of {username}: {}",
        response.status()
    );
    let tokens: Value = response.json().await.expect("login json");
    tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned()
}

/// The claims of a token, decoded without any check (the server does that).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
