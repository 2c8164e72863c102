//! `GET /ledger`: the 台账 with every filter of `GET /api/v1/ledger`,
//! overdue rows highlighted, paging and sort, and its exports.
//!
//! The rows come from the JSON handler itself (`routes::v1::ledger::list`),
//! so scope, filters, masking and the overdue rule are the API's.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use sync_core::records::petition::{Category, Level, PetitionStatus};

use super::layout::{
    Nav, PageError, empty, export_buttons, html_response, page, query_string, url_encode,
};
use super::session::PageUser;
use crate::app::AppState;
use crate::extract::ApiQuery;
use crate::routes::v1::ledger::{LedgerEntry, LedgerParams};
use crate::scope::Scope;
use crate::store::Role;

/// Rows per page.
const PER_PAGE: u32 = 30;

/// The filter form as submitted: every field a string, empty meaning "any".
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filters {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    cadre: String,
    #[serde(default)]
    responsible: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    overdue: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: String,
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl Filters {
    /// Parses a query string leniently (unknown keys ignored).
    pub fn parse(raw: Option<&str>) -> Result<Filters, PageError> {
        let uri: axum::http::Uri = format!("/?{}", raw.unwrap_or(""))
            .parse()
            .map_err(|_| PageError::from(crate::error::AppError::BadRequest("query".into())))?;
        axum::extract::Query::<Filters>::try_from_uri(&uri)
            .map(|q| q.0)
            .map_err(|e| PageError::from(crate::error::AppError::BadRequest(e.to_string())))
    }

    /// The API's parameters for these filters.
    pub fn params(&self) -> Result<LedgerParams, PageError> {
        let page = match some(&self.page) {
            None => None,
            Some(p) => Some(p.parse::<u32>().map_err(|_| {
                PageError::from(crate::error::AppError::BadRequest(format!(
                    "page: {p:?} is not a page number"
                )))
            })?),
        };
        Ok(LedgerParams {
            unit: some(&self.unit),
            cadre: some(&self.cadre),
            responsible: some(&self.responsible),
            status: some(&self.status),
            category: some(&self.category),
            level: some(&self.level),
            overdue: (self.overdue == "true").then_some(true),
            from: some(&self.from),
            to: some(&self.to),
            q: some(&self.q),
            sort: some(&self.sort),
            page,
            per_page: Some(PER_PAGE),
        })
    }

    /// The query string of these filters (without the page).
    fn query(&self) -> String {
        query_string(&[
            ("unit", Some(&self.unit)),
            ("cadre", Some(&self.cadre)),
            ("responsible", Some(&self.responsible)),
            ("status", Some(&self.status)),
            ("category", Some(&self.category)),
            ("level", Some(&self.level)),
            ("overdue", Some(&self.overdue)),
            ("from", Some(&self.from)),
            ("to", Some(&self.to)),
            ("q", Some(&self.q)),
            ("sort", Some(&self.sort)),
        ])
    }
}

fn select(name: &str, current: &str, any: &str, options: &[(String, String)]) -> Markup {
    html! {
        select name=(name) id=(name) {
            option value="" { (any) }
            @for (value, label) in options {
                option value=(value) selected[current == value] { (label) }
            }
        }
    }
}

fn labelled<T: Copy>(
    all: &[T],
    code: fn(T) -> &'static str,
    zh: fn(T) -> &'static str,
) -> Vec<(String, String)> {
    all.iter()
        .map(|v| (code(*v).to_owned(), zh(*v).to_owned()))
        .collect()
}

/// One ledger table (also used by the three lists).
pub fn table(items: &[LedgerEntry]) -> Markup {
    html! {
        div.table-wrap {
            table.ledger {
                thead { tr {
                    th { "登记日期" } th { "单位" } th { "登记人" } th { "诉求人" } th { "联系电话" }
                    th.matter { "诉求事项" } th { "分类" } th { "层级" } th { "责任人" }
                    th { "办结时限" } th { "办理情况" } th { "满意度" }
                } }
                tbody {
                    @for e in items {
                        tr.overdue[e.overdue] {
                            td.nowrap { (super::layout::china_day(&e.created_at)) }
                            td { (e.unit_name) }
                            td { (e.owner_name) }
                            td { (e.applicant_name) }
                            td.nowrap { (e.applicant_phone.as_deref().unwrap_or("")) }
                            td.matter { a href=(format!("/petitions/{}?document_id={}", url_encode(&e.id), url_encode(&e.document_id))) { (e.matter) } }
                            td { (e.category_zh) }
                            td { (e.level_zh) }
                            td { (e.responsible) }
                            td.nowrap { (e.deadline.as_deref().unwrap_or("—")) }
                            td.nowrap {
                                span class=(format!("status s-{}", e.status)) { (e.status_zh) }
                                @if e.overdue { " " span.badge.late { "超期" } }
                            }
                            td { (e.satisfaction_zh.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ledger`.
pub async fn get(
    State(state): State<AppState>,
    user: PageUser,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let filters = Filters::parse(raw.as_deref())?;
    let params = filters.params()?;
    let page_no = params.page.unwrap_or(1);
    let found =
        crate::routes::v1::ledger::list(State(state.clone()), user.user.clone(), ApiQuery(params))
            .await?
            .0;
    let supervisor = user.user.role != Role::Cadre;
    let (units, cadres) = if supervisor {
        let scope = Scope::resolve(&state, &user.user, None, None).await?;
        let mut cadres: Vec<(String, String)> = state
            .store
            .list_users_in_units(&scope.unit_ids())
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Cadre)
            .map(|u| {
                (
                    u.username.clone(),
                    format!("{}（{}）", u.display_name, u.username),
                )
            })
            .collect();
        cadres.sort();
        let units = scope
            .units
            .iter()
            .map(|u| (u.code.clone(), u.name.clone()))
            .collect::<Vec<_>>();
        (units, cadres)
    } else {
        (Vec::new(), Vec::new())
    };
    let pages = (found.total + i64::from(PER_PAGE) - 1) / i64::from(PER_PAGE);
    let base = filters.query();
    let page_link = |n: i64| {
        if base.is_empty() {
            format!("/ledger?page={n}")
        } else {
            format!("/ledger{base}&page={n}")
        }
    };
    let overdue_on = filters.overdue == "true";
    let body = html! {
        h1 { "民情台账" @if !supervisor { "（本人登记的事项）" } }
        form.filters method="get" action="/ledger" {
            @if supervisor {
                label { "单位" (select("unit", &filters.unit, "全部单位", &units)) }
                label { "登记人" (select("cadre", &filters.cadre, "全部干部", &cadres)) }
                label { "责任人" input name="responsible" value=(filters.responsible) placeholder="用户名"; }
            }
            label { "办理情况" (select("status", &filters.status, "全部", &labelled(PetitionStatus::ALL, PetitionStatus::as_str, PetitionStatus::label_zh))) }
            label { "分类" (select("category", &filters.category, "全部", &labelled(Category::ALL, Category::as_str, Category::label_zh))) }
            label { "层级" (select("level", &filters.level, "全部", &labelled(Level::ALL, Level::as_str, Level::label_zh))) }
            label { "登记自" input type="date" name="from" value=(filters.from); }
            label { "至" input type="date" name="to" value=(filters.to); }
            label.wide { "关键词" input type="search" name="q" value=(filters.q) placeholder="诉求事项、诉求人、地址、责任人"; }
            label { "排序" (select("sort", &filters.sort, "最新登记", &[("oldest".to_owned(), "最早登记".to_owned()), ("deadline".to_owned(), "按办结时限".to_owned())])) }
            label.check { input type="checkbox" name="overdue" value="true" checked[overdue_on]; "只看超期" }
            div.actions {
                button type="submit" { "筛选" }
                a.button.secondary href="/ledger" { "清除" }
            }
        }
        div.bar {
            p.count { "共 " strong { (found.total) } " 条" @if overdue_on { "超期" } "事项" }
            (export_buttons(&format!("/ledger/export.xlsx{base}"), &format!("/ledger/export.csv{base}")))
        }
        @if found.items.is_empty() {
            (empty(if found.total == 0 { "没有符合条件的事项。可以放宽筛选条件，或点“清除”查看全部。" } else { "本页没有事项，请回到第一页。" }))
        } @else {
            (table(&found.items))
            @if pages > 1 {
                nav.pager aria-label="分页" {
                    @if i64::from(page_no) > 1 { a href=(page_link(i64::from(page_no) - 1)) { "上一页" } }
                    span { "第 " (page_no) " / " (pages) " 页" }
                    @if i64::from(page_no) < pages { a href=(page_link(i64::from(page_no) + 1)) { "下一页" } }
                }
            }
        }
    };
    Ok(html_response(
        axum::http::StatusCode::OK,
        page("台账", Some(&user), Nav::Ledger, body),
    ))
}
