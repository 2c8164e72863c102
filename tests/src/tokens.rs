//! Access tokens made by hand: the server must refuse every one of them
//! except [`resigned`], which proves the crafting itself is right.
//!
//! Each starts from a real token the server issued and changes one thing,
//! so a refusal can only be due to that one thing.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub use test_support::jwt_claims as claims;

fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit")
}

fn sign(claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key),
    )
    .expect("sign")
}

/// The same claims with a fresh `iat`/`exp`, signed with `key`. With the
/// server's key this must be accepted.
pub fn resigned(token: &str, key: &[u8]) -> String {
    let mut c = claims(token);
    c["iat"] = json!(now());
    c["exp"] = json!(now() + 600);
    sign(&c, key)
}

/// Signed with the server's key but expired an hour ago (beyond any leeway).
pub fn expired(token: &str, key: &[u8]) -> String {
    let mut c = claims(token);
    c["iat"] = json!(now() - 7200);
    c["exp"] = json!(now() - 3600);
    sign(&c, key)
}

/// Fresh claims signed with a key that is not the server's.
pub fn forged(token: &str) -> String {
    resigned(token, &[0x5a; 32])
}

/// Fresh claims with `"alg": "none"` and no signature.
pub fn alg_none(token: &str) -> String {
    let mut c = claims(token);
    c["iat"] = json!(now());
    c["exp"] = json!(now() + 600);
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(c.to_string());
    format!("{header}.{payload}.")
}
