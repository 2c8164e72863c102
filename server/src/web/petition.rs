//! `GET /petitions/{id}`: one petition, its attributed history (who, when,
//! from which device), and the actions as forms; `POST /petitions/{id}/{action}`
//! runs one.
//!
//! Both go through the JSON handlers (`routes::v1::petitions::*`): the same
//! visibility (a cadre gets 404 for someone else's item), masking, checks,
//! diary write and audit row as the API.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use sync_core::records::petition::{PetitionStatus, Satisfaction};

use super::layout::{Nav, PageError, china_time, html_response, page, url_encode};
use super::session::PageUser;
use crate::app::AppState;
use crate::error::AppError;
use crate::extract::{ApiQuery, ClientAddr};
use crate::routes::v1::petitions::{
    self as api, AssignBody, CloseBody, DeadlineBody, EscalateBody, FeedbackBody, NoteBody,
    OnPetition, PetitionPost, ReopenBody, Which,
};
use crate::store::Role;

/// Query of `GET /petitions/{id}`.
#[derive(Debug, Default, Deserialize)]
pub struct PetitionQuery {
    #[serde(default)]
    document_id: Option<String>,
    /// The action just done, to confirm it.
    #[serde(default)]
    done: Option<String>,
}

/// Every field any action form has.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    document_id: Option<String>,
    #[serde(default)]
    deadline: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    satisfaction: String,
}

fn action_zh(action: &str) -> &'static str {
    match action {
        "deadline" => "办结时限已更新",
        "assign" => "已转交办理",
        "escalate" => "已上报",
        "supervise" => "督办意见已记录",
        "close" => "已销号",
        "reopen" => "已重新办理",
        "progress" => "办理进展已记录",
        "resolve" => "已办结",
        "feedback" => "反馈已记录",
        _ => "已完成",
    }
}

fn hidden(user: &PageUser, document_id: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(user.csrf);
        input type="hidden" name="document_id" value=(document_id);
    }
}

/// `GET /petitions/{id}`.
pub async fn get(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    Query(query): Query<PetitionQuery>,
) -> Result<Response, PageError> {
    let detail = api::get(
        State(state.clone()),
        user.user.clone(),
        Path(id.clone()),
        ApiQuery(Which {
            document_id: query.document_id.clone().filter(|d| !d.is_empty()),
        }),
    )
    .await?
    .0;
    let p = &detail.petition;
    let supervisor = matches!(user.user.role, Role::Supervisor | Role::Admin);
    let responsible = p.responsible == user.user.username;
    let assignees: Vec<(String, String)> = if supervisor {
        let units = state.store.unit_subtree(user.user.unit_id).await?;
        let ids: Vec<i64> = units.iter().map(|u| u.id).collect();
        let mut people: Vec<(String, String)> = state
            .store
            .list_users_in_units(&ids)
            .await?
            .into_iter()
            .filter(|u| !u.disabled && u.role != Role::Admin)
            .map(|u| {
                (
                    u.username.clone(),
                    format!("{}（{}）", u.display_name, u.username),
                )
            })
            .collect();
        people.sort();
        people
    } else {
        Vec::new()
    };
    let action = |name: &str| format!("/petitions/{}/{name}", url_encode(&p.id));
    let done = query.done.as_deref().map(action_zh);
    let resolved = p.status == PetitionStatus::Resolved.as_str();
    let finished = resolved || p.status == PetitionStatus::Closed.as_str();
    let body = html! {
        p.crumbs { a href="/ledger" { "← 返回台账" } }
        @if let Some(d) = done { p.notice role="status" { (d) } }
        h1 { "诉求事项" }
        section.card.detail.overdue[p.overdue] {
            p.matter { (p.matter) }
            dl {
                dt { "诉求人" } dd { (p.applicant_name) }
                dt { "联系电话" } dd { (p.applicant_phone.as_deref().unwrap_or("—")) }
                dt { "住址" } dd { (p.applicant_address.as_deref().unwrap_or("—")) }
                dt { "单位" } dd { (p.unit_name) }
                dt { "登记人" } dd { (p.owner_name) "（" (p.owner) "）" }
                dt { "分类" } dd { (p.category_zh) }
                dt { "层级" } dd { (p.level_zh) }
                dt { "责任人" } dd { (p.responsible) }
                dt { "办结时限" } dd.deadline { (p.deadline.as_deref().unwrap_or("未设定")) @if p.overdue { " " span.badge.late { "超期" } } }
                dt { "办理情况" } dd.status { span class=(format!("status s-{}", p.status)) { (p.status_zh) } }
                dt { "反馈情况" } dd { (p.feedback.as_deref().unwrap_or("尚未反馈")) }
                dt { "满意度" } dd { (p.satisfaction_zh.as_deref().unwrap_or("—")) }
                dt { "登记时间" } dd { (china_time(&p.created_at)) }
            }
        }
        @if supervisor {
            h2 { "督办" }
            div.actions-grid {
                form.card method="post" action=(action("deadline")) {
                    h3 { "延长或设定办结时限" }
                    (hidden(&user, &p.document_id))
                    label { "新的办结时限" input type="date" name="deadline" required value=(p.deadline.as_deref().unwrap_or("")); }
                    button type="submit" { "保存时限" }
                }
                form.card method="post" action=(action("supervise")) {
                    h3 { "督办意见" }
                    (hidden(&user, &p.document_id))
                    label { "督办意见" textarea name="note" rows="3" required placeholder="例如：请于月底前办结并反馈群众。" {} }
                    button type="submit" { "记录督办" }
                }
                form.card method="post" action=(action("assign")) {
                    h3 { "转交办理" }
                    (hidden(&user, &p.document_id))
                    label { "新的责任人"
                        select name="to" required {
                            option value="" { "请选择" }
                            @for (value, label) in &assignees { option value=(value) { (label) } }
                        }
                    }
                    button type="submit" { "转交" }
                }
                form.card method="post" action=(action("escalate")) {
                    h3 { "上报上一级" }
                    (hidden(&user, &p.document_id))
                    label { "上报理由" textarea name="note" rows="2" required {} }
                    label { "接收人（可不填）" input name="to" placeholder="上级单位人员用户名"; }
                    button type="submit" { "上报" }
                }
                @if resolved {
                    form.card method="post" action=(action("close")) {
                        h3 { "销号" }
                        (hidden(&user, &p.document_id))
                        label { "销号说明" textarea name="note" rows="2" {} }
                        button type="submit" { "销号" }
                    }
                }
                @if finished {
                    form.card method="post" action=(action("reopen")) {
                        h3 { "重新办理" }
                        (hidden(&user, &p.document_id))
                        label { "原因" textarea name="reason" rows="2" required {} }
                        button type="submit" { "重新办理" }
                    }
                }
            }
        }
        @if responsible {
            h2 { "办理" }
            div.actions-grid {
                form.card method="post" action=(action("progress")) {
                    h3 { "办理进展" }
                    (hidden(&user, &p.document_id))
                    textarea name="note" rows="2" required {}
                    button type="submit" { "记录进展" }
                }
                @if !finished {
                    form.card method="post" action=(action("resolve")) {
                        h3 { "办结" }
                        (hidden(&user, &p.document_id))
                        textarea name="note" rows="2" required placeholder="办理结果" {}
                        button type="submit" { "办结" }
                    }
                }
                form.card method="post" action=(action("feedback")) {
                    h3 { "反馈群众" }
                    (hidden(&user, &p.document_id))
                    textarea name="note" rows="2" required placeholder="告知群众的内容" {}
                    label { "满意度"
                        select name="satisfaction" {
                            option value="" { "未测评" }
                            @for s in Satisfaction::ALL { option value=(s.as_str()) { (s.label_zh()) } }
                        }
                    }
                    button type="submit" { "记录反馈" }
                }
            }
        }
        h2 { "办理记录" }
        @if detail.events.is_empty() {
            (super::layout::empty("暂无办理记录。"))
        } @else {
            div.table-wrap {
                table.history {
                    thead { tr { th { "时间" } th { "事项" } th { "操作人" } th { "设备" } th { "内容" } } }
                    tbody {
                        @for e in &detail.events {
                            tr.flagged[e.flag.is_some()] {
                                td.nowrap { (china_time(&e.at)) }
                                td.nowrap { (e.type_zh) }
                                td { (e.by) @if e.claimed_by != e.by && !e.claimed_by.is_empty() { br; small { "（记录中署名：" (e.claimed_by) "）" } } }
                                td.nowrap { @if e.via_server { "经服务器代为写入" } @else { (e.device_id.as_deref().unwrap_or("—")) } }
                                td {
                                    (event_text(e))
                                    @if !e.believed { br; small.warn { "未计入状态" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html_response(
        StatusCode::OK,
        page("诉求事项", Some(&user), Nav::Ledger, body),
    ))
}

/// The note of an event and the fields worth showing (deadline, assignee,
/// level, rating).
fn event_text(e: &api::EventEntry) -> String {
    let mut parts = Vec::new();
    if let Some(n) = &e.note {
        parts.push(n.clone());
    }
    if let Some(obj) = e.detail.as_object() {
        for (key, label) in [
            ("deadline", "办结时限"),
            ("to", "转交给"),
            ("satisfaction", "满意度"),
        ] {
            if let Some(v) = obj.get(key).and_then(|v| v.as_str()) {
                let v = match key {
                    "satisfaction" => v
                        .parse::<Satisfaction>()
                        .map(|s| s.label_zh().to_owned())
                        .unwrap_or_else(|_| v.to_owned()),
                    "to" if e.event_type == "escalated" => continue,
                    _ => v.to_owned(),
                };
                parts.push(format!("{label}：{v}"));
            }
        }
    }
    parts.join("；")
}

/// `POST /petitions/{id}/{action}`.
pub async fn act(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, PageError> {
    user.check_csrf(&state, form.csrf.as_deref())?;
    let which = Which {
        document_id: form.document_id.clone().filter(|d| !d.is_empty()),
    };
    let on = OnPetition {
        state: state.clone(),
        caller: user.user.clone(),
        addr,
        id: id.clone(),
        which,
    };
    let required = |value: &str, what: &str| -> Result<String, PageError> {
        let v = value.trim();
        if v.is_empty() {
            Err(PageError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "输入有误",
                &format!("请填写{what}。"),
            ))
        } else {
            Ok(v.to_owned())
        }
    };
    let done: Result<_, AppError> = match action.as_str() {
        "deadline" => {
            let deadline = required(&form.deadline, "办结时限")?;
            api::deadline(PetitionPost(on, DeadlineBody { deadline })).await
        }
        "assign" => {
            let to = required(&form.to, "新的责任人")?;
            api::assign(PetitionPost(on, AssignBody { to })).await
        }
        "escalate" => {
            let note = required(&form.note, "上报理由")?;
            let to = Some(form.to.trim().to_owned()).filter(|t| !t.is_empty());
            api::escalate(PetitionPost(on, EscalateBody { note, to })).await
        }
        "supervise" => {
            let note = required(&form.note, "督办意见")?;
            api::supervise(PetitionPost(on, NoteBody { note })).await
        }
        "close" => {
            let note = form.note.trim().to_owned();
            api::close(PetitionPost(on, CloseBody { note })).await
        }
        "reopen" => {
            let reason = required(&form.reason, "原因")?;
            api::reopen(PetitionPost(on, ReopenBody { reason })).await
        }
        "progress" => {
            let note = required(&form.note, "办理进展")?;
            api::progress(PetitionPost(on, NoteBody { note })).await
        }
        "resolve" => {
            let note = required(&form.note, "办理结果")?;
            api::resolve(PetitionPost(on, NoteBody { note })).await
        }
        "feedback" => {
            let note = required(&form.note, "反馈内容")?;
            let satisfaction = Some(form.satisfaction.trim().to_owned()).filter(|s| !s.is_empty());
            api::feedback(PetitionPost(on, FeedbackBody { note, satisfaction })).await
        }
        _ => return Err(AppError::NotFound.into()),
    };
    let answer = done?.0;
    let to = format!(
        "/petitions/{}?document_id={}&done={action}",
        url_encode(&id),
        url_encode(&answer.petition.document_id)
    );
    Ok(Redirect::to(&to).into_response())
}
