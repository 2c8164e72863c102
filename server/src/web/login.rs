//! `GET`/`POST /login` and `POST /logout`.
//!
//! The form posts to the same login as `POST /api/v1/auth/login` (same
//! password check, back-off, limits and audit); the refresh token it
//! returns becomes the session cookie (see [`super::session`]). Logging out
//! is the API's logout of that token: the family is revoked.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, PageError, html_response, page};
use super::session::{
    LOGIN_COOKIE, PageUser, SESSION_COOKIE, WEB_DEVICE, behind_tls, check_form_token, cookie,
    form_token, set_cookie,
};
use crate::app::AppState;
use crate::error::AppError;
use crate::extract::{ApiJson, ClientAddr};
use crate::routes::v1::auth::{LoginRequest, RefreshRequest};

/// Query of `GET /login`.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    /// Where to go after logging in (a path of this site).
    #[serde(default)]
    next: Option<String>,
}

/// The login form's fields.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

/// A form with only the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    /// The session's form token.
    #[serde(default)]
    pub csrf: Option<String>,
}

/// Only paths of this site, never `//elsewhere` or `https://…`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/ledger".to_owned(),
    }
}

fn login_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    username: &str,
    next: &str,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    let token = form_token(state, "login", &nonce)?;
    let body = html! {
        section.login {
            h1 { "走访台账 · 登录" }
            p.hint { "供走访办、督导组查看和督办民情台账。" }
            @if let Some(e) = error { p.alert role="alert" { (e) } }
            form method="post" action="/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label { "用户名" input name="username" value=(username) autocomplete="username" required autofocus; }
                label { "密码" input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { "登录" }
            }
        }
    };
    let mut response = html_response(status, page("登录", None, Nav::None, body));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &nonce, Some(3600), behind_tls(headers)),
    );
    Ok(response)
}

/// `GET /login`: the form (or straight on, if already logged in).
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(query.next.as_deref());
    if PageUser::from_headers(&state, &headers).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    login_page(&state, &headers, StatusCode::OK, "", &next, None)
}

/// `POST /login`.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    addr: ClientAddr,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    // No nonce cookie (blocked cookies, or a form posted from elsewhere):
    // refused like a wrong token.
    let nonce = cookie(&headers, LOGIN_COOKIE)
        .filter(|n| !n.is_empty())
        .ok_or_else(PageError::csrf)?;
    check_form_token(&state, "login", &nonce, form.csrf.as_deref())?;
    let next = safe_next(form.next.as_deref());
    if form.username.trim().is_empty() || form.password.is_empty() {
        return login_page(
            &state,
            &headers,
            StatusCode::BAD_REQUEST,
            &form.username,
            &next,
            Some("请输入用户名和密码。"),
        );
    }
    let answer = crate::routes::v1::auth::login(
        State(state.clone()),
        addr,
        ApiJson(LoginRequest {
            username: form.username.trim().to_owned(),
            password: form.password,
            device_id: Some(WEB_DEVICE.to_owned()),
        }),
    )
    .await;
    let tokens = match answer {
        Ok(axum::Json(tokens)) => tokens,
        Err(e) => {
            let message = match &e {
                AppError::Unauthorized(_) => "用户名或密码错误。".to_owned(),
                AppError::RetryLater {
                    status,
                    retry_after_secs,
                    ..
                } if *status == StatusCode::TOO_MANY_REQUESTS => {
                    format!("登录失败次数过多，请 {retry_after_secs} 秒后再试。")
                }
                AppError::RetryLater { .. } => "登录请求过多，请稍后再试。".to_owned(),
                AppError::BadRequest(_) => "用户名或密码格式不正确。".to_owned(),
                _ => return Err(e.into()),
            };
            return login_page(
                &state,
                &headers,
                e.status(),
                &form.username,
                &next,
                Some(&message),
            );
        }
    };
    let secure = behind_tls(&headers);
    let mut response = Redirect::to(&next).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &tokens.refresh_token, None, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", Some(0), secure),
    );
    Ok(response)
}

/// `POST /logout`: revokes the session's login and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    addr: ClientAddr,
    user: PageUser,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&state, form.csrf.as_deref())?;
    crate::routes::v1::auth::logout(
        State(state.clone()),
        addr,
        ApiJson(RefreshRequest {
            refresh_token: user.token.clone(),
        }),
    )
    .await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), behind_tls(&headers)),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_of_this_site_are_followed_after_login() {
        assert_eq!(safe_next(Some("/stats?unit=town1")), "/stats?unit=town1");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "ledger",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ledger", "{bad}");
        }
        assert_eq!(safe_next(None), "/ledger");
    }
}
