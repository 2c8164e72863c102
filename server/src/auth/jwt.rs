//! Access tokens: HS256 JWTs.
//!
//! The algorithm is pinned (`Validation::new(HS256)`), so a token whose
//! header names another algorithm (`none`, `RS256` with our key as a "public
//! key"…) is refused before its signature is looked at. `exp`, `iss`, `aud`
//! and `sub` are required and checked on every request, with the library's
//! default 60 s leeway for clock skew.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::store::{Role, User};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Username.
    pub sub: String,
    /// User id.
    pub uid: i64,
    /// Role at the time of issue.
    pub role: Role,
    /// Unit id at the time of issue.
    pub unit: i64,
    /// Device id given at login, or "".
    pub device: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
    /// Issuer; must equal the configured issuer.
    pub iss: String,
    /// Audience; must equal the configured audience.
    pub aud: String,
    /// The login (refresh-token family) the token was issued under, so that
    /// logging out ends the sync connections opened with it. Empty in
    /// tokens made before this claim existed.
    #[serde(default)]
    pub sid: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The token was valid once but `exp` has passed: the client should refresh.
    #[error("token expired")]
    Expired,
    /// Anything else: bad shape, bad signature, wrong algorithm, wrong
    /// issuer or audience, missing claims.
    #[error("invalid token")]
    Invalid,
    /// Signing failed (a server fault, not the client's).
    #[error("cannot sign token: {0}")]
    Signing(String),
}

/// Signing and verification keys plus the rules tokens are checked against.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
}

// By hand: the key material must never reach a log.
impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("keys", &"[redacted]")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish()
    }
}

impl JwtKeys {
    /// Keys from a shared secret (see `config::parse_jwt_secret`).
    pub fn new(secret: &[u8], issuer: &str, audience: &str, access_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.validate_exp = true;
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl,
        }
    }

    /// Lifetime of the tokens [`JwtKeys::issue`] makes.
    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// The claims an access token for `user` on `device` issued at `now` carries.
    pub fn claims_for(&self, user: &User, device: &str, now: DateTime<Utc>) -> Claims {
        let ttl = i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX);
        Claims {
            sub: user.username.clone(),
            uid: user.id,
            role: user.role,
            unit: user.unit_id,
            device: device.to_owned(),
            iat: now.timestamp(),
            exp: now.timestamp().saturating_add(ttl),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sid: String::new(),
        }
    }

    /// Signs an access token for `user`.
    pub fn issue(&self, user: &User, device: &str, now: DateTime<Utc>) -> Result<String, JwtError> {
        self.sign(&self.claims_for(user, device, now))
    }

    /// Signs an access token for `user` under the login `session` (its
    /// refresh-token family).
    pub fn issue_in_session(
        &self,
        user: &User,
        device: &str,
        session: &str,
        now: DateTime<Utc>,
    ) -> Result<String, JwtError> {
        let mut claims = self.claims_for(user, device, now);
        claims.sid = session.to_owned();
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use this to make expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, JwtError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| JwtError::Signing(e.to_string()))
    }

    /// Checks a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn user() -> User {
        User {
            id: 7,
            username: "cadre01".to_owned(),
            display_name: "张伟".to_owned(),
            role: Role::Cadre,
            unit_id: 3,
            password_hash: String::new(),
            created_at: Utc::now(),
            disabled: false,
        }
    }

    fn keys() -> JwtKeys {
        JwtKeys::new(
            &[7u8; 32],
            "visit-diary",
            "visit-diary",
            Duration::from_secs(900),
        )
    }

    #[test]
    fn round_trip() {
        let keys = keys();
        let token = keys.issue(&user(), "phone-1", Utc::now()).expect("sign");
        let claims = keys.verify(&token).expect("verify");
        assert_eq!(claims.sub, "cadre01");
        assert_eq!(claims.uid, 7);
        assert_eq!(claims.role, Role::Cadre);
        assert_eq!(claims.unit, 3);
        assert_eq!(claims.device, "phone-1");
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn refuses_expired_forged_and_foreign_tokens() {
        let keys = keys();
        let long_ago = Utc::now() - chrono::Duration::hours(2);
        let expired = keys.issue(&user(), "", long_ago).expect("sign");
        assert_eq!(keys.verify(&expired), Err(JwtError::Expired));

        let other = JwtKeys::new(
            &[8u8; 32],
            "visit-diary",
            "visit-diary",
            Duration::from_secs(900),
        );
        let forged = other.issue(&user(), "", Utc::now()).expect("sign");
        assert_eq!(keys.verify(&forged), Err(JwtError::Invalid));

        let wrong_aud = JwtKeys::new(
            &[7u8; 32],
            "visit-diary",
            "elsewhere",
            Duration::from_secs(900),
        )
        .issue(&user(), "", Utc::now())
        .expect("sign");
        assert_eq!(keys.verify(&wrong_aud), Err(JwtError::Invalid));

        let wrong_iss = JwtKeys::new(
            &[7u8; 32],
            "elsewhere",
            "visit-diary",
            Duration::from_secs(900),
        )
        .issue(&user(), "", Utc::now())
        .expect("sign");
        assert_eq!(keys.verify(&wrong_iss), Err(JwtError::Invalid));

        // alg "none": valid claims, no signature.
        let claims = keys.claims_for(&user(), "", Utc::now());
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
        assert_eq!(
            keys.verify(&format!("{header}.{body}.")),
            Err(JwtError::Invalid)
        );

        // HS512 with the right key is still refused: the algorithm is pinned.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(&[7u8; 32]),
        )
        .expect("sign");
        assert_eq!(keys.verify(&hs512), Err(JwtError::Invalid));

        assert_eq!(keys.verify("garbage"), Err(JwtError::Invalid));
        assert_eq!(keys.verify(""), Err(JwtError::Invalid));
    }

    #[test]
    fn debug_hides_keys() {
        let debug = format!("{:?}", keys());
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains("7, 7, 7"));
    }
}
