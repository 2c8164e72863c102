//! The frame every page shares (head, navigation, messages), the Chinese
//! error page, and small formatting helpers.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::PageUser;
use crate::error::AppError;
use crate::store::Role;

/// The style sheet, compiled in (`GET /assets/web.css`).
pub const CSS: &str = include_str!("../../assets/web.css");

/// Which navigation entry is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// 台账.
    Ledger,
    /// 统计.
    Stats,
    /// 三个清单.
    Lists,
    /// 设备.
    Devices,
    /// None (login, errors).
    None,
}

/// A whole page: `title`, the navigation for `user` (if logged in), `body`.
pub fn page(title: &str, user: Option<&PageUser>, nav: Nav, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · 走访台账" }
                link rel="stylesheet" href="/assets/web.css";
            }
            body {
                header.top {
                    a.brand href="/ledger" { "大走访 · 民情台账" }
                    @if let Some(u) = user {
                        nav {
                            (nav_link("/ledger", "台账", nav == Nav::Ledger))
                            (nav_link("/stats", "统计", nav == Nav::Stats))
                            (nav_link("/lists", "三个清单", nav == Nav::Lists))
                            @if u.user.role != Role::Cadre {
                                (nav_link("/devices", "设备同步", nav == Nav::Devices))
                            }
                        }
                        div.who {
                            span { (u.name) "（" (u.user.role.label_zh()) "）" }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(u.csrf);
                                button.link type="submit" { "退出" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

fn nav_link(href: &str, label: &str, current: bool) -> Markup {
    html! {
        @if current { a.current href=(href) aria-current="page" { (label) } }
        @else { a href=(href) { (label) } }
    }
}

/// An HTML answer.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Nothing but our own style sheet; no scripts at all.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// A failed page request, shown as a Chinese page with the right status.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    title: String,
    message: String,
    detail: Option<String>,
}

impl PageError {
    /// An error page.
    pub fn new(status: StatusCode, title: &str, message: &str) -> Self {
        PageError {
            status,
            title: title.to_owned(),
            message: message.to_owned(),
            detail: None,
        }
    }

    /// The form token was missing or wrong.
    pub fn csrf() -> Self {
        PageError::new(
            StatusCode::FORBIDDEN,
            "表单已失效",
            "提交被拒绝：表单校验码缺失或不正确（页面可能已过期，或请求并非来自本系统的页面）。请返回、刷新页面后重新提交。",
        )
    }
}

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        let status = e.status();
        let (title, message) = match &e {
            AppError::BadRequest(_) | AppError::Rejected { .. } => {
                ("输入有误", "请求的内容不正确，请检查后重试。")
            }
            AppError::Unauthorized(_) | AppError::TokenExpired => ("未登录", "请先登录。"),
            AppError::Forbidden(_) => ("无权操作", "您没有权限查看或进行此操作。"),
            AppError::NotFound => (
                "未找到",
                "没有找到该内容，或您无权查看（例如不属于本单位的诉求）。",
            ),
            AppError::Conflict(_) => (
                "当前状态不允许此操作",
                "该事项的当前状态不允许此操作，请刷新后查看最新情况。",
            ),
            AppError::RetryLater { .. } => ("请稍后再试", "操作过于频繁或系统繁忙，请稍后再试。"),
            AppError::Unavailable(_) | AppError::Internal(_) => (
                "系统错误",
                "服务器暂时无法完成请求，请稍后再试；如持续出现，请联系管理员。",
            ),
        };
        // 5xx details stay in the log (`AppError::into_response` logs them).
        let detail = if status.is_server_error() {
            let _ = e.into_response();
            None
        } else {
            match &e {
                AppError::NotFound => None,
                other => Some(other.to_string()),
            }
        };
        PageError {
            status,
            title: title.to_owned(),
            message: message.to_owned(),
            detail,
        }
    }
}

impl From<crate::store::StoreError> for PageError {
    fn from(e: crate::store::StoreError) -> Self {
        PageError::from(AppError::from(e))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = html! {
            section.error {
                h1 { (self.title) }
                p { (self.message) }
                @if let Some(d) = &self.detail { p.detail { "详情：" (d) } }
                p { a href="/ledger" { "回到台账" } }
            }
        };
        html_response(self.status, page(&self.title, None, Nav::None, body))
    }
}

/// Turns an error answer that is not already a page (an extractor's
/// rejection, a 405, the request timeout) into the Chinese error page for
/// its status, so a browser never sees a JSON or plain-text error.
pub async fn html_errors(response: Response) -> Response {
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (title, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => ("请求方式不正确", "该页面不支持这种请求方式。"),
        StatusCode::REQUEST_TIMEOUT => ("请求超时", "服务器处理时间过长，请稍后再试。"),
        StatusCode::PAYLOAD_TOO_LARGE => ("提交内容过大", "提交的内容超过了允许的大小。"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::BAD_REQUEST => ("输入有误", "提交的内容格式不正确，请返回后重试。"),
        s if s.is_server_error() => (
            "系统错误",
            "服务器暂时无法完成请求，请稍后再试；如持续出现，请联系管理员。",
        ),
        _ => ("请求未能完成", "请返回后重试。"),
    };
    PageError::new(status, title, message).into_response()
}

/// A China-time instant, `YYYY-MM-DD HH:MM`.
pub fn china_time(at: &DateTime<Utc>) -> String {
    (*at + chrono::Duration::hours(8))
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// A China-time date, `YYYY-MM-DD`.
pub fn china_day(at: &DateTime<Utc>) -> String {
    (*at + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

/// A rate as `87.5%`, or `—`.
pub fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{r:.1}%"))
}

/// Percent-encodes a query value.
pub fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the pairs whose value is not empty ("" if none).
pub fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", url_encode(v)))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// An empty-state box.
pub fn empty(text: &str) -> Markup {
    html! { p.empty { (text) } }
}

/// Export buttons for a table.
pub fn export_buttons(xlsx: &str, csv: &str) -> Markup {
    html! {
        div.exports {
            a.button href=(xlsx) download { "导出 Excel" }
            a.button.secondary href=(csv) download { "导出 CSV" }
        }
    }
}
