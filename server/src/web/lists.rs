//! `GET /lists`: 三个清单 — the month's 问题清单, 任务清单 and 效果清单 with
//! the four-category summary, from `GET /api/v1/lists`'s handler.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{
    Nav, PageError, empty, export_buttons, html_response, page, query_string, rate,
};
use super::session::PageUser;
use crate::app::AppState;
use crate::extract::ApiQuery;
use crate::routes::v1::ledger::china_today;
use crate::routes::v1::lists::{List, ListsParams, MAX_LIST_ITEMS};
use crate::scope::Scope;
use crate::store::Role;

/// Query of `GET /lists`.
#[derive(Debug, Default, Deserialize)]
pub struct ListsQuery {
    #[serde(default)]
    month: String,
    #[serde(default)]
    unit: String,
}

fn list_section(anchor: &str, list: &List, what: &str) -> maud::Markup {
    html! {
        section.list id=(anchor) {
            h2 { (list.title_zh) " " small { "共 " (list.total) " 项" } }
            p.hint { (what) }
            @if list.items.is_empty() {
                (empty("本月没有事项。"))
            } @else {
                @if list.total > MAX_LIST_ITEMS { p.hint { "只显示前 " (MAX_LIST_ITEMS) " 项；完整清单请导出。" } }
                (super::ledger::table(&list.items))
            }
        }
    }
}

/// `GET /lists`.
pub async fn get(
    State(state): State<AppState>,
    user: PageUser,
    Query(q): Query<ListsQuery>,
) -> Result<Response, PageError> {
    let month = match q.month.trim() {
        "" => china_today()?.get(..7).unwrap_or_default().to_owned(),
        m => m.to_owned(),
    };
    let unit = Some(q.unit.trim().to_owned()).filter(|u| !u.is_empty());
    let export_query = query_string(&[("month", Some(&month)), ("unit", unit.as_deref())]);
    let r = crate::routes::v1::lists::get(
        State(state.clone()),
        user.user.clone(),
        ApiQuery(ListsParams {
            month: Some(month.clone()),
            unit,
        }),
    )
    .await?
    .0;
    let supervisor = user.user.role != Role::Cadre;
    let own_units = if supervisor {
        Scope::resolve(&state, &user.user, None, None).await?.units
    } else {
        Vec::new()
    };
    let body = html! {
        h1 { (r.unit.name) " · " (r.month) " 三个清单" }
        form.filters method="get" action="/lists" {
            label { "月份" input type="month" name="month" value=(r.month) required; }
            @if supervisor {
                label { "单位" select name="unit" {
                    @for u in &own_units { option value=(u.code) selected[u.code == r.unit.code] { (u.name) } }
                } }
            }
            div.actions { button type="submit" { "查看" } }
        }
        div.bar {
            nav.jump { a href="#problems" { "问题清单" } a href="#tasks" { "任务清单" } a href="#results" { "效果清单" } }
            (export_buttons(&format!("/lists/export.xlsx{export_query}"), &format!("/lists/export.csv{export_query}")))
        }
        h2 { "分类汇总" }
        div.table-wrap { table.figures {
            thead { tr { th { "分类" } th { "诉求" } th { "未办结" } th { "已办结" } th { "已销号" } th { "超期" } th { "反馈率" } th { "满意率" } } }
            tbody { @for b in &r.summary {
                tr { th scope="row" { (b.label_zh) } td { (b.figures.petitions) } td { (b.figures.unfinished) } td { (b.figures.resolved) } td { (b.figures.closed) } td.late[b.figures.overdue > 0] { (b.figures.overdue) } td { (rate(b.figures.feedback_rate)) } td { (rate(b.figures.satisfaction_rate)) } }
            } }
        } }
        (list_section("problems", &r.problems, "本月登记的问题。"))
        (list_section("tasks", &r.tasks, "截至月底仍未办结的任务，按办结时限排列。"))
        (list_section("results", &r.results, "本月办结的事项。"))
    };
    Ok(html_response(
        StatusCode::OK,
        page("三个清单", Some(&user), Nav::Lists, body),
    ))
}
