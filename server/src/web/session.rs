//! The pages' session cookie and CSRF tokens.
//!
//! A page login is an ordinary API login (`routes::v1::auth::login`: the
//! same password check, back-off and audit) whose refresh token is kept in
//! the `vd_session` cookie instead of being handed to a script. Every page
//! request looks that token up and accepts it only while its row is neither
//! revoked, rotated nor expired and its user is not disabled. So the session
//! ends exactly when an API login would: on logout (the family is revoked),
//! on a password change (other logins are revoked), on a disabled account,
//! and when its family is revoked for reuse. The token is never rotated by
//! the pages; presenting it to `/api/v1/auth/refresh` rotates it, which ends
//! the page session too.
//!
//! Cookie: `HttpOnly; SameSite=Strict; Path=/`, no `Max-Age` (it goes when
//! the browser closes; the row expires after `refresh_token_ttl` anyway),
//! and `Secure` when the request reached us through TLS, which this server
//! only learns from a front's `X-Forwarded-Proto: https` (or `Forwarded:
//! proto=https`). Trusting that header only ever adds `Secure`, which no
//! client can turn against anyone else.
//!
//! CSRF: every form carries `csrf` = HMAC-SHA256(server key, "csrf" ‖ session
//! family id), checked in constant time before anything is done. The login
//! form, which has no session yet, is tied the same way to a random nonce in
//! a short-lived `vd_login` cookie (double submit).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::layout::PageError;
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::auth::refresh::{hash_refresh_token, looks_like_refresh_token};
use crate::error::AppError;

/// The session cookie: a refresh token of this server.
pub const SESSION_COOKIE: &str = "vd_session";
/// The login form's nonce cookie.
pub const LOGIN_COOKIE: &str = "vd_login";
/// The device id page logins are recorded under (history, devices, audit).
pub const WEB_DEVICE: &str = "web";

/// The logged-in user of a page request, as an [`AuthUser`] built from the
/// session's refresh-token row and the user's current row.
#[derive(Debug, Clone)]
pub struct PageUser {
    /// Who, with `session` = the login's family id.
    pub user: AuthUser,
    /// The user's display name.
    pub name: String,
    /// The form token of this session.
    pub csrf: String,
    /// The session cookie's value (for logout).
    pub(crate) token: String,
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// Whether the request came through TLS, as a front says.
pub fn behind_tls(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value with the flags every cookie of ours has.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

fn mac(state: &AppState, purpose: &str, value: &str) -> Result<Hmac<Sha256>, AppError> {
    let key = state
        .config
        .jwt_secret
        .as_ref()
        .ok_or_else(|| AppError::internal("no server key configured"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose())
        .map_err(|e| AppError::internal(format!("hmac key: {e}")))?;
    mac.update(purpose.as_bytes());
    mac.update(&[0]);
    mac.update(value.as_bytes());
    Ok(mac)
}

/// The form token for `value` (a session family id, or a login nonce).
pub fn form_token(state: &AppState, purpose: &str, value: &str) -> Result<String, AppError> {
    Ok(hex::encode(
        mac(state, purpose, value)?.finalize().into_bytes(),
    ))
}

/// Checks a submitted form token in constant time; a Chinese 403 page if
/// it is missing or wrong.
pub fn check_form_token(
    state: &AppState,
    purpose: &str,
    value: &str,
    submitted: Option<&str>,
) -> Result<(), PageError> {
    let refused = || PageError::csrf();
    let submitted = submitted.filter(|s| !s.is_empty()).ok_or_else(refused)?;
    let bytes = hex::decode(submitted).map_err(|_| refused())?;
    mac(state, purpose, value)
        .map_err(PageError::from)?
        .verify_slice(&bytes)
        .map_err(|_| refused())
}

impl PageUser {
    /// Checks the form token of a `POST` from this session.
    pub fn check_csrf(&self, state: &AppState, submitted: Option<&str>) -> Result<(), PageError> {
        check_form_token(state, "csrf", &self.user.session, submitted)
    }

    /// The session of `headers`, if it is still valid.
    pub async fn from_headers(
        state: &AppState,
        headers: &HeaderMap,
    ) -> Result<Option<PageUser>, AppError> {
        let Some(token) = cookie(headers, SESSION_COOKIE).filter(|t| looks_like_refresh_token(t))
        else {
            return Ok(None);
        };
        let Some(row) = state
            .store
            .get_refresh_token(&hash_refresh_token(&token))
            .await?
        else {
            return Ok(None);
        };
        let now = Utc::now();
        if row.revoked_at.is_some() || row.rotated_at.is_some() || row.expires_at <= now {
            return Ok(None);
        }
        let Some(user) = state
            .store
            .get_user(row.user_id)
            .await?
            .filter(|u| !u.disabled)
        else {
            return Ok(None);
        };
        tracing::Span::current().record("user_id", user.id);
        let csrf = form_token(state, "csrf", &row.family_id)?;
        Ok(Some(PageUser {
            user: AuthUser {
                user_id: user.id,
                username: user.username,
                role: user.role,
                unit_id: user.unit_id,
                device_id: row.issued.device_id,
                expires_at: row.issued.expires_at.timestamp(),
                session: row.issued.family_id,
            },
            name: user.display_name,
            csrf,
            token,
        }))
    }
}

/// No valid session: a `GET` goes to the login page (and comes back after),
/// anything else gets a Chinese 401 page.
#[derive(Debug)]
pub enum NoSession {
    /// Go to the login page.
    Login(String),
    /// A page saying so.
    Page(PageError),
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::Login(next) => {
                Redirect::to(&format!("/login?next={}", super::layout::url_encode(&next)))
                    .into_response()
            }
            NoSession::Page(page) => page.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = NoSession;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match PageUser::from_headers(state, &parts.headers).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) if parts.method == axum::http::Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map_or("/ledger", |p| p.as_str())
                    .to_owned();
                Err(NoSession::Login(next))
            }
            Ok(None) => Err(NoSession::Page(PageError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "登录已失效",
                "您的登录已结束（已退出、密码已修改或账号已停用），请重新登录。",
            ))),
            Err(e) => Err(NoSession::Page(PageError::from(e))),
        }
    }
}
