//! The [`AuthUser`] extractor.

use axum::extract::{FromRequestParts, Query};
use axum::http::header::{AUTHORIZATION, UPGRADE};
use axum::http::request::Parts;
use serde::Deserialize;

use super::JwtError;
use crate::app::AppState;
use crate::error::AppError;
use crate::store::Role;

/// The caller of an authenticated route, taken from a valid access token.
///
/// The token comes from `Authorization: Bearer <token>`, or, on a WebSocket
/// upgrade only, from a `?token=<token>` query parameter (browsers cannot
/// set headers there). Anywhere else a token in the URL is ignored: URLs end
/// up in logs, histories and `Referer` headers. Missing, malformed, forged, expired, `alg: none` and
/// wrong-issuer/audience tokens are all refused with 401 before the handler
/// runs.
///
/// Identity comes from the token only: the claims were signed by this server
/// at login or refresh. The extractor does not read the database, so a user
/// disabled a moment ago keeps access until the token expires (at most the
/// access token lifetime, 15 minutes by default); refreshing is refused at
/// once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// The user's unit id.
    pub unit_id: i64,
    /// The device id given at login, or "".
    pub device_id: String,
    /// When the access token expires (unix seconds): a sync connection
    /// opened with it ends then.
    pub expires_at: i64,
    /// The login the token belongs to (its refresh-token family), or "".
    pub session: String,
}

impl AuthUser {
    /// Refuses (403) unless the caller has one of `roles`.
    pub fn require_role(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(
                "your role does not allow this".to_owned(),
            ))
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Whether the request asks to become a WebSocket.
fn is_websocket_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The bearer token of a request: the header first, then, on a WebSocket
/// upgrade, `?token=`.
fn bearer_token(parts: &Parts) -> Result<Option<String>, AppError> {
    if let Some(value) = parts.headers.get(AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| AppError::Unauthorized("malformed Authorization header".to_owned()))?;
        let mut words = value.splitn(2, ' ');
        let scheme = words.next().unwrap_or_default();
        let token = words.next().unwrap_or_default().trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(AppError::Unauthorized(
                "expected Authorization: Bearer <token>".to_owned(),
            ));
        }
        return Ok(Some(token.to_owned()));
    }
    if !is_websocket_upgrade(parts) {
        return Ok(None);
    }
    // A malformed query string is not this extractor's business: treat it as
    // "no token here".
    let token = Query::<TokenQuery>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(q)| q.token)
        .filter(|t| !t.is_empty());
    Ok(token)
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer_token(parts)?
            .ok_or_else(|| AppError::Unauthorized("missing bearer token".to_owned()))?;
        let claims = state.jwt.verify(&token).map_err(|e| match e {
            JwtError::Expired => AppError::TokenExpired,
            JwtError::Invalid | JwtError::Signing(_) => {
                AppError::Unauthorized("invalid access token".to_owned())
            }
        })?;
        // The request span (see `app::router`) has an empty `user_id` field
        // waiting for this.
        tracing::Span::current().record("user_id", claims.uid);
        Ok(AuthUser {
            user_id: claims.uid,
            username: claims.sub,
            role: claims.role,
            unit_id: claims.unit,
            device_id: claims.device,
            expires_at: claims.exp,
            session: claims.sid,
        })
    }
}
