//! `POST /api/v1/auth/login`, `/refresh` and `/logout`.
//!
//! Login and refresh answer the same shape:
//! `{"access_token", "refresh_token", "token_type": "Bearer", "expires_in"}`.
//! Every outcome that matters is written to the audit log, failures included.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::auth::limits::{Refusal, audit_failure};
use crate::auth::password::{check_policy, hash_password};
use crate::auth::refresh::{
    RETRY_GRACE, hash_refresh_token, looks_like_refresh_token, new_family_id, new_refresh_token,
    successor_refresh_token,
};
use crate::error::AppError;
use crate::extract::{ApiJson, ClientAddr};
use crate::store::{
    NewAuditEntry, NewRefreshToken, RefreshReplacement, RefreshRotation, StoreError, User,
};

/// Longest username, password and device id accepted (bytes). Generous for
/// people, small enough that nobody can make us hash megabytes.
const MAX_USERNAME: usize = 64;
const MAX_PASSWORD: usize = crate::auth::password::MAX_PASSWORD_BYTES;
const MAX_DEVICE_ID: usize = 128;

/// Body of `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// Identifies the phone or browser; carried into the access token's
    /// `device` claim and the refresh token row.
    #[serde(default)]
    pub device_id: Option<String>,
}

/// Body of `POST /api/v1/auth/refresh` and `/logout`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Answer of login and refresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque, single-use token for `/api/v1/auth/refresh`.
    pub refresh_token: String,
    /// Always `"Bearer"`.
    pub token_type: &'static str,
    /// Seconds until `access_token` expires.
    pub expires_in: u64,
}

const BAD_CREDENTIALS: &str = "wrong username or password";

/// Checks a password and starts a new token family.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, description = "A new login: access and refresh tokens", body = TokenResponse), crate::routes::openapi::LoginErrors)
)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(remote_addr): ClientAddr,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, AppError> {
    if body.username.is_empty() || body.username.len() > MAX_USERNAME {
        return Err(AppError::BadRequest(format!(
            "username must be 1 to {MAX_USERNAME} bytes"
        )));
    }
    if body.password.len() > MAX_PASSWORD {
        return Err(AppError::BadRequest(format!(
            "password must be at most {MAX_PASSWORD} bytes"
        )));
    }
    let device_id = body.device_id.unwrap_or_default();
    if device_id.len() > MAX_DEVICE_ID || device_id.chars().any(char::is_control) {
        return Err(AppError::BadRequest(format!(
            "device_id must be at most {MAX_DEVICE_ID} bytes without control characters"
        )));
    }

    // Before the database and the password: a locked name or address, and
    // a full queue, cost nothing.
    let limits = &state.login_limits;
    limits
        .check(&body.username, remote_addr.as_deref(), Instant::now())
        .map_err(refused)?;
    let user = state.store.get_user_by_username(&body.username).await?;
    // Unknown and disabled users go through a dummy hash check too, so they
    // answer exactly like a wrong password, in about the same time.
    let stored_hash = user
        .as_ref()
        .filter(|u| !u.disabled)
        .map(|u| u.password_hash.clone());
    let matches = limits
        .check_password(body.password, stored_hash)
        .await
        .map_err(refused)?
        .map_err(AppError::internal)?;
    let now = Utc::now();
    let user = match user {
        Some(user) if matches => user,
        user => {
            let failures = limits.failed(&body.username, remote_addr.as_deref(), Instant::now());
            crate::metrics::login_failed();
            if audit_failure(failures, state.config.login_free_failures_per_user) {
                audit(
                    &state,
                    now,
                    user.as_ref().map(|u| u.id),
                    "auth.login_failed",
                    &body.username,
                    &format!("failure {failures} in a row"),
                    remote_addr,
                )
                .await?;
            }
            return Err(AppError::Unauthorized(BAD_CREDENTIALS.to_owned()));
        }
    };
    limits.succeeded(&body.username);

    let refresh = new_refresh_token();
    let family_id = new_family_id();
    state
        .store
        .insert_refresh_token(NewRefreshToken {
            user_id: user.id,
            family_id: family_id.clone(),
            token_hash: refresh.hash,
            device_id: device_id.clone(),
            created_at: now,
            expires_at: now + refresh_ttl(&state)?,
        })
        .await?;
    let response = token_response(&state, &user, &device_id, &family_id, refresh.token, now)?;
    audit(
        &state,
        now,
        Some(user.id),
        "auth.login",
        &user.username,
        &format!("device={device_id}"),
        remote_addr,
    )
    .await?;
    Ok(Json(response))
}

/// Exchanges a refresh token for a new pair. A token works once: presenting
/// it again revokes every token of its login (someone holds a copy).
///
/// Except on a weak link: if the answer to a refresh is lost, the phone still
/// holds the old token and retries with it. Within [`RETRY_GRACE`] of the
/// rotation, and while the successor is unused, the retry gets the same
/// successor (derived from the presented token with the server's key) and a
/// fresh access token, instead of revoking the family.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, description = "The next pair of tokens (the refresh token is single-use)", body = TokenResponse), crate::routes::openapi::RefreshErrors)
)]
pub async fn refresh(
    State(state): State<AppState>,
    ClientAddr(remote_addr): ClientAddr,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, AppError> {
    let invalid = || AppError::Unauthorized("invalid refresh token".to_owned());
    if !looks_like_refresh_token(&body.refresh_token) {
        return Err(invalid());
    }
    let now = Utc::now();
    let key = state
        .config
        .jwt_secret
        .as_ref()
        .ok_or_else(|| AppError::internal("no JWT key configured"))?;
    let replacement = successor_refresh_token(key.expose(), &body.refresh_token);
    let retry_grace = chrono::Duration::from_std(RETRY_GRACE)
        .map_err(|e| AppError::internal(format!("retry grace: {e}")))?;
    let outcome = state
        .store
        .rotate_refresh_token(
            &hash_refresh_token(&body.refresh_token),
            RefreshReplacement {
                token_hash: replacement.hash,
                expires_at: now + refresh_ttl(&state)?,
                retry_grace,
            },
            now,
        )
        .await;
    let retried = matches!(outcome, Ok(RefreshRotation::Retried { .. }));
    match outcome {
        Err(StoreError::NotFound) => Err(invalid()),
        Err(other) => Err(other.into()),
        Ok(RefreshRotation::Expired) => Err(AppError::Unauthorized(
            "refresh token expired; log in again".to_owned(),
        )),
        Ok(RefreshRotation::Revoked) => Err(AppError::Unauthorized(
            "refresh token revoked; log in again".to_owned(),
        )),
        Ok(RefreshRotation::Reused { family_id, user_id }) => {
            tracing::warn!(user_id, %family_id, "refresh token reused; family revoked");
            state.sync_hub.end_session(&family_id);
            audit(
                &state,
                now,
                Some(user_id),
                "auth.refresh_reuse",
                &family_id,
                "rotated refresh token presented again; family revoked",
                remote_addr,
            )
            .await?;
            Err(AppError::Unauthorized(
                "refresh token already used; this login is revoked, log in again".to_owned(),
            ))
        }
        Ok(RefreshRotation::Rotated { current, .. } | RefreshRotation::Retried { current, .. }) => {
            let user = match state.store.get_user(current.user_id).await? {
                Some(user) if !user.disabled => user,
                _ => {
                    state
                        .store
                        .revoke_refresh_family(&current.family_id, now)
                        .await?;
                    state.sync_hub.end_session(&current.family_id);
                    return Err(AppError::Unauthorized("account disabled".to_owned()));
                }
            };
            let response = token_response(
                &state,
                &user,
                &current.device_id,
                &current.family_id,
                replacement.token,
                now,
            )?;
            audit(
                &state,
                now,
                Some(user.id),
                if retried {
                    "auth.refresh_retry"
                } else {
                    "auth.refresh"
                },
                &user.username,
                &format!("device={}", current.device_id),
                remote_addr,
            )
            .await?;
            Ok(Json(response))
        }
    }
}

/// Revokes the refresh token's whole family (this login on this device).
/// Always `204`: logging out twice, or with an unknown token, is not an error
/// and reveals nothing.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Logged out (also for an unknown token)"), crate::routes::openapi::BodyErrors)
)]
pub async fn logout(
    State(state): State<AppState>,
    ClientAddr(remote_addr): ClientAddr,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<StatusCode, AppError> {
    if !looks_like_refresh_token(&body.refresh_token) {
        return Ok(StatusCode::NO_CONTENT);
    }
    let hash = hash_refresh_token(&body.refresh_token);
    if let Some(token) = state.store.get_refresh_token(&hash).await? {
        let now = Utc::now();
        let revoked = state
            .store
            .revoke_refresh_family(&token.family_id, now)
            .await?;
        state.sync_hub.end_session(&token.family_id);
        audit(
            &state,
            now,
            Some(token.user_id),
            "auth.logout",
            &token.family_id,
            &format!("revoked={revoked}"),
            remote_addr,
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

fn refresh_ttl(state: &AppState) -> Result<chrono::Duration, AppError> {
    chrono::Duration::from_std(state.config.refresh_token_ttl).map_err(AppError::internal)
}

fn token_response(
    state: &AppState,
    user: &User,
    device_id: &str,
    session: &str,
    refresh_token: String,
    now: DateTime<Utc>,
) -> Result<TokenResponse, AppError> {
    let access_token = state
        .jwt
        .issue_in_session(user, device_id, session, now)
        .map_err(AppError::internal)?;
    Ok(TokenResponse {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.jwt.access_ttl().as_secs(),
    })
}

/// `POST /api/v1/me/password` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now.
    pub current_password: String,
    /// The password from now on (see `auth::password::check_policy`).
    pub new_password: String,
}

/// Changes the caller's password. The current one is checked like a login
/// (its failures back off the same way); the new one must pass the policy.
/// Every other login of the user is revoked and its sync connections end;
/// the one that made the change stays. `204`.
#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    tag = "auth",
    request_body = PasswordChange,
    responses((status = 204, description = "Changed; the other logins of the caller are revoked"), crate::routes::openapi::PasswordErrors),
    security(("bearer" = []))
)]
pub async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(remote_addr): ClientAddr,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<StatusCode, AppError> {
    if body.current_password.len() > MAX_PASSWORD {
        return Err(AppError::BadRequest(format!(
            "current_password must be at most {MAX_PASSWORD} bytes"
        )));
    }
    if let Err(why) = check_policy(&user.username, &body.new_password) {
        return Err(AppError::Rejected {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("new_password: {why}"),
        });
    }
    let limits = &state.login_limits;
    limits
        .check(&user.username, remote_addr.as_deref(), Instant::now())
        .map_err(refused)?;
    let stored = state
        .store
        .get_user(user.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(|| AppError::Unauthorized("account disabled".to_owned()))?;
    let matches = limits
        .check_password(body.current_password, Some(stored.password_hash))
        .await
        .map_err(refused)?
        .map_err(AppError::internal)?;
    let now = Utc::now();
    if !matches {
        limits.failed(&user.username, remote_addr.as_deref(), Instant::now());
        audit(
            &state,
            now,
            Some(user.user_id),
            "auth.password_change_failed",
            &user.username,
            "wrong current password",
            remote_addr,
        )
        .await?;
        return Err(AppError::Forbidden(
            "current_password is not the password of this account".to_owned(),
        ));
    }
    let hash = hash_password(body.new_password)
        .await
        .map_err(AppError::internal)?;
    state.store.set_user_password(user.user_id, &hash).await?;
    let revoked = state
        .store
        .revoke_other_logins(user.user_id, &user.session, now)
        .await?;
    for family in &revoked {
        state.sync_hub.end_session(family);
    }
    audit(
        &state,
        now,
        Some(user.user_id),
        "auth.password_changed",
        &user.username,
        &format!("other logins revoked={}", revoked.len()),
        remote_addr,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to a login that was not checked.
fn refused(refusal: Refusal) -> AppError {
    crate::metrics::login_refused(match refusal {
        Refusal::BackOff(_) => "back_off",
        Refusal::Busy => "busy",
    });
    match refusal {
        Refusal::BackOff(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            AppError::RetryLater {
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after_secs: secs,
                message: format!("too many failed logins; try again in {secs} s"),
            }
        }
        Refusal::Busy => AppError::RetryLater {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after_secs: 1,
            message: "too many logins at once; try again in a moment".to_owned(),
        },
    }
}

async fn audit(
    state: &AppState,
    at: DateTime<Utc>,
    user_id: Option<i64>,
    action: &str,
    target: &str,
    detail: &str,
    remote_addr: Option<String>,
) -> Result<(), AppError> {
    state
        .store
        .append_audit(NewAuditEntry {
            at,
            user_id,
            action: action.to_owned(),
            target: target.to_owned(),
            detail: detail.to_owned(),
            remote_addr,
        })
        .await?;
    Ok(())
}
