//! `GET /stats`: 统计 — figures per unit and per cadre against quota, by
//! category, status and level, feedback and satisfaction rates, 零战果,
//! rankings, and two server-drawn charts (bars per unit, trend by month).
//!
//! The figures are `GET /api/v1/stats`'s (its handler is called); the
//! monthly trend calls the same `gather` once per month.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, NaiveDate};
use maud::{Markup, html};
use serde::Deserialize;

use super::charts::{self, Bar};
use super::layout::{
    Nav, PageError, empty, export_buttons, html_response, page, query_string, rate,
};
use super::session::PageUser;
use crate::app::AppState;
use crate::extract::ApiQuery;
use crate::routes::v1::stats::{StatsParams, gather};
use crate::scope::{Scope, china_midnight};
use crate::stats::{Breakdown, PetitionFigures};
use crate::store::Role;

/// Query of `GET /stats` (empty fields mean the defaults).
#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    #[serde(default)]
    unit: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// At most the last twelve months of `[from, to]`, as (label, first day,
/// first day of the next month).
fn months(from: NaiveDate, to: NaiveDate) -> Vec<(String, NaiveDate, NaiveDate)> {
    let mut out = Vec::new();
    let mut first = NaiveDate::from_ymd_opt(to.year(), to.month(), 1).unwrap_or(to);
    while out.len() < 12 {
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(first);
        let start = first.max(from);
        let end = next.min(to.succ_opt().unwrap_or(to));
        out.push((format!("{}月", first.month()), start, end));
        if first <= from {
            break;
        }
        match first.checked_sub_months(chrono::Months::new(1)) {
            Some(prev) => first = prev,
            None => break,
        }
    }
    out.reverse();
    out
}

fn breakdown_table(title: &str, rows: &[Breakdown]) -> Markup {
    html! {
        h3 { (title) }
        div.table-wrap { table.figures {
            thead { tr { th { "" } th { "诉求" } th { "未办结" } th { "已办结" } th { "已销号" } th { "超期" } th { "反馈率" } th { "满意率" } } }
            tbody { @for b in rows { (figures_row(b.label_zh, &b.figures)) } }
        } }
    }
}

fn figures_row(label: &str, f: &PetitionFigures) -> Markup {
    html! {
        tr {
            th scope="row" { (label) }
            td { (f.petitions) } td { (f.unfinished) } td { (f.resolved) } td { (f.closed) }
            td.late[f.overdue > 0] { (f.overdue) }
            td { (rate(f.feedback_rate)) } td { (rate(f.satisfaction_rate)) }
        }
    }
}

/// `GET /stats`.
pub async fn get(
    State(state): State<AppState>,
    user: PageUser,
    Query(q): Query<StatsQuery>,
) -> Result<Response, PageError> {
    let params = StatsParams {
        unit: some(&q.unit),
        from: some(&q.from),
        to: some(&q.to),
    };
    let export_query = query_string(&[
        ("unit", params.unit.as_deref()),
        ("from", params.from.as_deref()),
        ("to", params.to.as_deref()),
    ]);
    let unit = params.unit.clone();
    let r =
        crate::routes::v1::stats::get(State(state.clone()), user.user.clone(), ApiQuery(params))
            .await?
            .0;
    let scope = Scope::resolve(&state, &user.user, unit.as_deref(), None).await?;
    let mut trend = Vec::new();
    for (label, start, end) in months(r.from, r.to) {
        let s = gather(&state, &scope, china_midnight(start), china_midnight(end)).await?;
        trend.push((
            label,
            s.totals.visits.visits as f64,
            s.totals.petitions.petitions as f64,
        ));
    }
    let own_units = Scope::resolve(&state, &user.user, None, None).await?.units;
    let supervisor = user.user.role != Role::Cadre;
    let s = &r.stats;
    let t = &s.totals;
    let unit_bars: Vec<Bar> = s
        .units
        .iter()
        .map(|u| Bar::count(&u.name, u.visits.visits, u.nothing_reported))
        .collect();
    let cadre_bars: Vec<Bar> = s
        .cadres
        .iter()
        .map(|c| Bar::count(&c.name, c.quota.count, !c.quota.met))
        .collect();
    let body = html! {
        h1 { (r.unit.name) " · 走访统计" }
        form.filters method="get" action="/stats" {
            @if supervisor {
                label { "单位" select name="unit" {
                    @for u in &own_units { option value=(u.code) selected[u.code == r.unit.code] { (u.name) } }
                } }
            }
            label { "自" input type="date" name="from" value=(r.from.to_string()); }
            label { "至" input type="date" name="to" value=(r.to.to_string()); }
            div.actions { button type="submit" { "统计" } }
        }
        div.bar {
            p.count { (r.from.to_string()) " 至 " (r.to.to_string()) }
            (export_buttons(&format!("/stats/export.xlsx{export_query}"), &format!("/stats/export.csv{export_query}")))
        }
        div.tiles {
            div.tile { span.k { "走访次数" } span.v { (t.visits.visits) } }
            div.tile { span.k { "走访户数" } span.v { (t.visits.households) } }
            div.tile { span.k { "收集诉求" } span.v { (t.petitions.petitions) } }
            div.tile { span.k { "未办结" } span.v { (t.petitions.unfinished) } }
            div.tile.warn[t.petitions.overdue > 0] { span.k { "超期" } span.v { (t.petitions.overdue) } }
            div.tile.warn[t.feedback.met == Some(false)] { span.k { "反馈率（目标 " (t.feedback.target) "%）" } span.v { (rate(t.feedback.rate)) } }
            div.tile.warn[t.satisfaction.met == Some(false)] { span.k { "满意率（目标 " (t.satisfaction.target) "%）" } span.v { (rate(t.satisfaction.rate)) } }
            div.tile { span.k { "完成走访任务的干部" } span.v { (t.cadres_meeting_quota) " / " (t.cadres) } }
        }
        section.zero {
            h2 { "零战果" }
            @if s.nothing_reported.units.is_empty() && s.nothing_reported.cadres.is_empty() {
                p { "本期没有零战果的单位和干部。" }
            } @else {
                @if !s.nothing_reported.units.is_empty() { p.late { "单位：" (s.nothing_reported.units.join("、")) } }
                @if !s.nothing_reported.cadres.is_empty() { p.late { "干部：" (s.nothing_reported.cadres.join("、")) } }
            }
        }
        div.charts {
            (charts::horizontal("各单位走访次数（红色：零战果）", &unit_bars))
            (charts::trend("按月走访与诉求", &trend, "走访次数", "诉求"))
            (charts::horizontal("干部走访任务完成数（红色：未达标）", &cadre_bars))
        }
        h2 { "单位排名" }
        @if s.units.is_empty() { (empty("该范围内没有单位。")) } @else {
            div.table-wrap { table.figures {
                thead { tr { th { "名次" } th { "单位" } th { "干部" } th { "达标干部" } th { "走访次数" } th { "走访户数" } th { "诉求" } th { "超期" } th { "反馈率" } th { "满意率" } th { "" } } }
                tbody { @for u in &s.units {
                    tr.zero[u.nothing_reported] {
                        td { (u.rank) } th scope="row" { (u.name) } td { (u.cadres) } td { (u.cadres_meeting_quota) }
                        td { (u.visits.visits) } td { (u.visits.households) } td { (u.petitions.petitions) }
                        td.late[u.petitions.overdue > 0] { (u.petitions.overdue) }
                        td { (rate(u.petitions.feedback_rate)) } td { (rate(u.petitions.satisfaction_rate)) }
                        td { @if u.nothing_reported { span.badge.late { "零战果" } } }
                    }
                } }
            } }
        }
        h2 { "干部排名（对照走访任务）" }
        @if s.cadres.is_empty() { (empty("该范围内没有干部。")) } @else {
            div.table-wrap { table.figures {
                thead { tr { th { "名次" } th { "干部" } th { "单位" } th { "岗位" } th { "走访次数" } th { "走访户数" } th { "任务" } th { "诉求" } th { "超期" } th { "反馈率" } th { "满意率" } th { "" } } }
                tbody { @for c in &s.cadres {
                    tr.zero[c.nothing_reported] {
                        td { (c.rank) } th scope="row" { (c.name) } td { (c.unit_name) } td { (c.post_zh) }
                        td { (c.visits.visits) } td { (c.visits.households) }
                        td.late[!c.quota.met] { (c.quota.measure_zh) " " (c.quota.count) " / " (c.quota.target) "（" (c.quota.basis_zh) "）" }
                        td { (c.petitions.petitions) }
                        td.late[c.petitions.overdue > 0] { (c.petitions.overdue) }
                        td { (rate(c.petitions.feedback_rate)) } td { (rate(c.petitions.satisfaction_rate)) }
                        td { @if c.nothing_reported { span.badge.late { "零战果" } } }
                    }
                } }
            } }
        }
        h2 { "诉求汇总" }
        (breakdown_table("按分类", &s.by_category))
        (breakdown_table("按办理情况", &s.by_status))
        (breakdown_table("按层级", &s.by_level))
    };
    Ok(html_response(
        StatusCode::OK,
        page("统计", Some(&user), Nav::Stats, body),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn the_trend_covers_the_period_by_month_at_most_a_year() {
        let m = months(day("2026-01-01"), day("2026-03-15"));
        let got: Vec<(String, String, String)> = m
            .iter()
            .map(|(l, a, b)| (l.clone(), a.to_string(), b.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("1月".into(), "2026-01-01".into(), "2026-02-01".into()),
                ("2月".into(), "2026-02-01".into(), "2026-03-01".into()),
                ("3月".into(), "2026-03-01".into(), "2026-03-16".into()),
            ]
        );
        let m = months(day("2026-02-10"), day("2026-02-20"));
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].1, m[0].2), (day("2026-02-10"), day("2026-02-21")));
        let m = months(day("2020-01-01"), day("2026-12-02"));
        assert_eq!(m.len(), 12);
        assert_eq!(m[0].1, day("2026-01-01"));
        assert_eq!(m[11].2, day("2026-12-03"));
    }
}
