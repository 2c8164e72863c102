//! `GET /devices`: each cadre's phones and their last sync (from `GET
//! /api/v1/devices`'s handler); a phone silent for [`STALE_DAYS`] or more,
//! or a cadre who never synced, stands out.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use maud::html;
use serde::Deserialize;

use super::layout::{
    Nav, PageError, china_time, empty, export_buttons, html_response, page, query_string,
};
use super::session::PageUser;
use crate::app::AppState;
use crate::extract::ApiQuery;
use crate::routes::v1::devices::DevicesParams;

/// Days without a sync after which a phone is flagged.
pub const STALE_DAYS: i64 = 3;

/// Query of `GET /devices`.
#[derive(Debug, Default, Deserialize)]
pub struct DevicesQuery {
    #[serde(default)]
    unit: String,
}

/// `GET /devices`.
pub async fn get(
    State(state): State<AppState>,
    user: PageUser,
    Query(q): Query<DevicesQuery>,
) -> Result<Response, PageError> {
    let unit = Some(q.unit.trim().to_owned()).filter(|u| !u.is_empty());
    let export_query = query_string(&[("unit", unit.as_deref())]);
    let r = crate::routes::v1::devices::list(
        State(state.clone()),
        user.user.clone(),
        ApiQuery(DevicesParams { unit, cadre: None }),
    )
    .await?
    .0;
    // Unit names for the codes the API answers with (the caller's reach).
    let names: std::collections::BTreeMap<String, String> =
        crate::scope::Scope::resolve(&state, &user.user, None, None)
            .await?
            .units
            .into_iter()
            .map(|u| (u.code, u.name))
            .collect();
    let unit_name = |code: &str| names.get(code).cloned().unwrap_or_else(|| code.to_owned());
    let now = Utc::now();
    let days = |at: &chrono::DateTime<Utc>| (now - *at).num_days();
    let stale = r
        .users
        .iter()
        .filter(|u| u.last_sync.is_none_or(|t| days(&t) >= STALE_DAYS))
        .count();
    let body = html! {
        h1 { "设备同步情况" }
        p.hint { "超过 " (STALE_DAYS) " 天未同步的手机以红色标出：干部可能在无信号地区，或手机上的记录尚未上传。" }
        div.bar {
            p.count { "共 " strong { (r.users.len()) } " 名干部" }
            (export_buttons(&format!("/devices/export.xlsx{export_query}"), &format!("/devices/export.csv{export_query}")))
        }
        @if stale > 0 { p.alert { (stale) " 名干部的手机超过 " (STALE_DAYS) " 天未同步或从未同步。" } }
        @if r.users.is_empty() { (empty("该范围内没有干部。")) } @else {
            div.table-wrap { table.devices {
                thead { tr { th { "干部" } th { "单位" } th { "设备" } th { "最近同步" } th { "同步文档" } th { "状态" } } }
                tbody {
                    @for u in &r.users {
                        @if u.devices.is_empty() {
                            tr.stale { th scope="row" { (u.name) "（" (u.username) "）" } td { (unit_name(&u.unit_code)) } td { "—" } td { "从未同步" } td { "—" } td { span.badge.late { "从未同步" } } }
                        }
                        @for (i, d) in u.devices.iter().enumerate() {
                            @let late = days(&d.last_sync) >= STALE_DAYS;
                            tr.stale[late] {
                                th scope="row" { @if i == 0 { (u.name) "（" (u.username) "）" } }
                                td { @if i == 0 { (unit_name(&u.unit_code)) } }
                                td { (d.device_id) }
                                td.nowrap { (china_time(&d.last_sync)) }
                                td { (d.documents) }
                                td { @if late { span.badge.late { (days(&d.last_sync)) " 天未同步" } } @else { "正常" } }
                            }
                        }
                    }
                }
            } }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("设备", Some(&user), Nav::Devices, body),
    ))
}
