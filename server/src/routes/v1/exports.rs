//! The exports, as XLSX and as CSV (UTF-8 with BOM), with residents' phone
//! and ID numbers masked as [`crate::personal`] says:
//!
//! - `GET /api/v1/ledger/export.xlsx|csv`: the ledger (台账) with its
//!   columns (applicant, matter, category, responsible person, deadline,
//!   handling status, feedback, …), same filters as `GET /api/v1/ledger`;
//! - `GET /api/v1/exports/lists.xlsx|csv?month=`: the three lists (one sheet
//!   each, and the four-category summary; the CSV has a 清单 column);
//! - `GET /api/v1/exports/stats.xlsx|csv`: the statistics (cadres, units,
//!   breakdowns; the CSV holds the cadres' table);
//! - `GET /api/v1/visits/export.xlsx|csv`: the visits (走访记录) with the
//!   answers to the six questions (六问), same filters as
//!   `GET /api/v1/visits`.
//!
//! Rows are read a page at a time ([`PAGE_ROWS`]); see [`crate::exports`]
//! for how memory stays bounded. Every export writes an audit row first
//! (who, what, the query, from where); if that fails, there is no export.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::stream;
use sync_core::records::visit::SixQuestions;
use tokio::io::AsyncReadExt;

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::exports::{
    BOM, Cell, Column, PAGE_ROWS, XlsxPart, col, content_disposition, csv_header, csv_rows,
    write_xlsx,
};
use crate::extract::{ApiQuery, ClientAddr};
use crate::ledger::LedgerQuery;
use crate::ledger::report::RecordQuery;
use crate::personal::Viewer;
use crate::routes::v1::ledger::{LedgerEntry, LedgerParams, entry, ledger_query};
use crate::routes::v1::lists::{ListKind, ListsParams};
use crate::routes::v1::stats::{StatsParams, gather, stats_period};
use crate::routes::v1::visits::{VisitEntry, VisitsParams, visit_entry, visits_query};
use crate::scope::{Scope, china_midnight};
use crate::stats::{Breakdown, CadreStats, Stats, UnitStats};
use crate::store::NewAuditEntry;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const CSV: &str = "text/csv; charset=utf-8";

/// The 台账 columns.
pub const LEDGER_COLUMNS: &[Column] = &[
    col("序号", 6.0),
    col("单位", 10.0),
    col("登记人", 8.0),
    col("诉求人", 8.0),
    col("联系电话", 14.0),
    col("诉求事项", 40.0),
    col("分类", 10.0),
    col("层级", 10.0),
    col("责任人", 10.0),
    col("办结时限", 12.0),
    col("办理情况", 10.0),
    col("是否超期", 8.0),
    col("反馈情况", 30.0),
    col("满意度", 8.0),
    col("登记日期", 12.0),
    col("办结日期", 12.0),
];

fn china_day(t: DateTime<Utc>) -> String {
    (t + chrono::Duration::hours(8))
        .format("%Y-%m-%d")
        .to_string()
}

fn ledger_row(n: i64, e: LedgerEntry) -> Vec<Cell> {
    vec![
        Cell::Int(n),
        e.unit_name.into(),
        e.owner_name.into(),
        e.applicant_name.into(),
        e.applicant_phone.into(),
        e.matter.into(),
        e.category_zh.into(),
        e.level_zh.into(),
        e.responsible.into(),
        e.deadline.into(),
        e.status_zh.into(),
        Cell::from(if e.overdue { "是" } else { "否" }),
        e.feedback.into(),
        e.satisfaction_zh.into(),
        china_day(e.created_at).into(),
        e.resolved_at.map(china_day).into(),
    ]
}

/// The rows of one page of the ledger `query` at `offset`, numbered from
/// `offset + 1`, and whether another page may follow.
async fn ledger_page(
    state: &AppState,
    query: &LedgerQuery,
    viewer: &Viewer,
    offset: i64,
) -> Result<(Vec<Vec<Cell>>, bool), AppError> {
    let q = LedgerQuery {
        limit: PAGE_ROWS,
        offset,
        without_total: true,
        ..query.clone()
    };
    let found = state.store.query_ledger(&q).await?;
    let more = i64::try_from(found.items.len()).unwrap_or(i64::MAX) == PAGE_ROWS;
    let rows = found
        .items
        .into_iter()
        .zip(offset + 1..)
        .map(|(item, n)| ledger_row(n, entry(item, viewer)))
        .collect();
    Ok((rows, more))
}

/// Sends every page of the ledger `query` to the XLSX job.
async fn ledger_to_xlsx(
    state: &AppState,
    query: &LedgerQuery,
    viewer: &Viewer,
    job: &XlsxJob,
) -> Result<(), AppError> {
    let mut offset = 0;
    loop {
        let (rows, more) = ledger_page(state, query, viewer, offset).await?;
        offset += i64::try_from(rows.len()).unwrap_or(0);
        job.send(XlsxPart::Rows(rows)).await?;
        if !more {
            return Ok(());
        }
    }
}

/// Sends every page of the ledger `query` as CSV to `tx`, each row after
/// `prefix`; `false` if the client went away.
async fn ledger_to_csv(
    state: &AppState,
    query: &LedgerQuery,
    viewer: &Viewer,
    prefix: &[Cell],
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<bool, AppError> {
    let mut offset = 0;
    loop {
        let (rows, more) = ledger_page(state, query, viewer, offset).await?;
        offset += i64::try_from(rows.len()).unwrap_or(0);
        let rows: Vec<Vec<Cell>> = rows
            .into_iter()
            .map(|row| prefix.iter().cloned().chain(row).collect())
            .collect();
        if tx.send(Ok(Bytes::from(csv_rows(&rows)))).await.is_err() {
            return Ok(false);
        }
        if !more {
            return Ok(true);
        }
    }
}

async fn audit(
    state: &AppState,
    caller: &AuthUser,
    addr: &ClientAddr,
    what: &str,
    file: &str,
    query: Option<String>,
) -> Result<(), AppError> {
    state
        .store
        .append_audit(NewAuditEntry {
            at: Utc::now(),
            user_id: Some(caller.user_id),
            action: format!("export.{what}"),
            target: file.to_owned(),
            detail: query.unwrap_or_default(),
            remote_addr: addr.0.clone(),
        })
        .await?;
    Ok(())
}

fn download(content_type: &'static str, ascii: &str, name: &str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                content_disposition(ascii, name),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// An XLSX export under way: a writer on a blocking thread, fed through a
/// channel that holds two parts at most (so reading waits for writing).
struct XlsxJob {
    tx: tokio::sync::mpsc::Sender<XlsxPart>,
    writer: tokio::task::JoinHandle<Result<std::fs::File, rust_xlsxwriter::XlsxError>>,
}

impl XlsxJob {
    fn start() -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        XlsxJob {
            tx,
            writer: tokio::task::spawn_blocking(move || write_xlsx(rx)),
        }
    }

    async fn send(&self, part: XlsxPart) -> Result<(), AppError> {
        self.tx
            .send(part)
            .await
            .map_err(|_| AppError::internal("the XLSX writer stopped"))
    }

    async fn sheet(&self, name: &str, columns: Vec<Column>) -> Result<(), AppError> {
        self.send(XlsxPart::Sheet {
            name: name.to_owned(),
            columns,
        })
        .await
    }

    /// Waits for the workbook and answers with it.
    async fn finish(self, ascii: &str, name: &str) -> Result<Response, AppError> {
        drop(self.tx);
        let file = self
            .writer
            .await
            .map_err(AppError::internal)?
            .map_err(AppError::internal)?;
        let file = tokio::fs::File::from_std(file);
        Ok(download(XLSX, ascii, name, file_body(file)))
    }
}

/// A CSV body fed by a task through a channel that holds two chunks.
fn csv_channel() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    Body,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let body = Body::from_stream(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    (tx, body)
}

/// A file's bytes as a streamed body, 64 KiB at a time.
fn file_body(file: tokio::fs::File) -> Body {
    Body::from_stream(stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    }))
}

// ----- the ledger -----

/// `GET /api/v1/ledger/export.xlsx`.
#[utoipa::path(
    get,
    path = "/api/v1/ledger/export.xlsx",
    tag = "exports",
    params(LedgerParams),
    responses((status = 200, description = "The ledger (台账) as XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn ledger_xlsx(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> Result<Response, AppError> {
    let query = ledger_query(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "ledger", "ledger.xlsx", raw).await?;
    let viewer = Viewer::of(&caller);
    let job = XlsxJob::start();
    job.sheet("台账", LEDGER_COLUMNS.to_vec()).await?;
    ledger_to_xlsx(&state, &query, &viewer, &job).await?;
    job.finish("ledger.xlsx", "台账.xlsx").await
}

/// `GET /api/v1/ledger/export.csv`: streamed as it is read.
#[utoipa::path(
    get,
    path = "/api/v1/ledger/export.csv",
    tag = "exports",
    params(LedgerParams),
    responses((status = 200, description = "The ledger (台账) as CSV, UTF-8 with BOM", content_type = "text/csv", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn ledger_csv(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<LedgerParams>,
) -> Result<Response, AppError> {
    let query = ledger_query(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "ledger", "ledger.csv", raw).await?;
    let viewer = Viewer::of(&caller);
    let (tx, body) = csv_channel();
    let head = format!("{BOM}{}", csv_header(LEDGER_COLUMNS));
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        if let Err(e) = ledger_to_csv(&state, &query, &viewer, &[], &tx).await {
            tracing::error!(error = %crate::error::error_chain(&e), "ledger CSV export failed");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    Ok(download(CSV, "ledger.csv", "台账.csv", body))
}

// ----- visits -----

/// The visits' columns (走访记录), the six questions in the seeds' wording.
pub fn visit_columns() -> Vec<Column> {
    let mut columns = vec![
        col("序号", 6.0),
        col("单位", 10.0),
        col("走访人", 10.0),
        col("走访时间", 17.0),
        col("走访方式", 10.0),
        col("走访地点", 16.0),
        col("对象类别", 10.0),
        col("走访对象", 12.0),
        col("走访重点人群", 20.0),
    ];
    columns.extend(SixQuestions::LABELS_ZH.map(|label| col(label, 30.0)));
    columns.extend([
        col("慰问金(元)", 10.0),
        col("慰问物品", 16.0),
        col("当场解决(件)", 12.0),
        col("转入台账(件)", 12.0),
    ]);
    columns
}

fn visit_row(n: i64, v: VisitEntry) -> Vec<Cell> {
    let mut answers: Vec<Cell> = v
        .six_questions
        .into_iter()
        .map(|qa| Cell::from(qa.answer))
        .collect();
    answers.resize(SixQuestions::FIELDS.len(), Cell::Empty);
    let mut row = vec![
        Cell::Int(n),
        v.visit.unit_name.into(),
        v.visit.owner.into(),
        (v.at + chrono::Duration::hours(8))
            .format("%Y-%m-%d %H:%M")
            .to_string()
            .into(),
        v.kind_zh.into(),
        v.visit.place.into(),
        v.subject_kind_zh.into(),
        v.visit.subject_name.into(),
        v.tags_zh.join("、").into(),
    ];
    row.extend(answers);
    row.extend([
        Cell::Num(v.aid_money_yuan),
        v.visit.aid_goods.into(),
        Cell::Int(v.visit.resolved_on_spot),
        Cell::Int(v.visit.petition_count),
    ]);
    row
}

/// The rows of one page of visits at `offset`, numbered from `offset + 1`,
/// and whether another page may follow.
async fn visits_page(
    state: &AppState,
    query: &RecordQuery,
    viewer: &Viewer,
    offset: i64,
) -> Result<(Vec<Vec<Cell>>, bool), AppError> {
    let q = RecordQuery {
        limit: PAGE_ROWS,
        offset,
        ..query.clone()
    };
    let (items, _) = state.store.query_visits(&q).await?;
    let more = i64::try_from(items.len()).unwrap_or(i64::MAX) == PAGE_ROWS;
    let rows = items
        .into_iter()
        .zip(offset + 1..)
        .map(|(item, n)| visit_row(n, visit_entry(item, viewer)))
        .collect();
    Ok((rows, more))
}

/// `GET /api/v1/visits/export.xlsx`: the visits (走访记录) with the
/// answers to the six questions, same filters as `GET /api/v1/visits`.
#[utoipa::path(
    get,
    path = "/api/v1/visits/export.xlsx",
    tag = "exports",
    params(VisitsParams),
    responses((status = 200, description = "The visits with the six questions' answers as XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn visits_xlsx(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<VisitsParams>,
) -> Result<Response, AppError> {
    let query = visits_query(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "visits", "visits.xlsx", raw).await?;
    let viewer = Viewer::of(&caller);
    let job = XlsxJob::start();
    job.sheet("走访记录", visit_columns()).await?;
    let mut offset = 0;
    loop {
        let (rows, more) = visits_page(&state, &query, &viewer, offset).await?;
        offset += i64::try_from(rows.len()).unwrap_or(0);
        job.send(XlsxPart::Rows(rows)).await?;
        if !more {
            break;
        }
    }
    job.finish("visits.xlsx", "走访记录.xlsx").await
}

/// `GET /api/v1/visits/export.csv`: the same as CSV, streamed as it is read.
#[utoipa::path(
    get,
    path = "/api/v1/visits/export.csv",
    tag = "exports",
    params(VisitsParams),
    responses((status = 200, description = "The visits with the six questions' answers as CSV, UTF-8 with BOM", content_type = "text/csv", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn visits_csv(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<VisitsParams>,
) -> Result<Response, AppError> {
    let query = visits_query(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "visits", "visits.csv", raw).await?;
    let viewer = Viewer::of(&caller);
    let (tx, body) = csv_channel();
    let head = format!("{BOM}{}", csv_header(&visit_columns()));
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        let mut offset = 0;
        loop {
            let (rows, more) = match visits_page(&state, &query, &viewer, offset).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::error!(error = %crate::error::error_chain(&e), "visits CSV export failed");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
            offset += i64::try_from(rows.len()).unwrap_or(0);
            if tx.send(Ok(Bytes::from(csv_rows(&rows)))).await.is_err() || !more {
                return;
            }
        }
    });
    Ok(download(CSV, "visits.csv", "走访记录.csv", body))
}

// ----- the three lists -----

fn summary_columns() -> Vec<Column> {
    vec![
        col("分类", 12.0),
        col("登记件数", 10.0),
        col("未办结", 10.0),
        col("已办结", 10.0),
        col("已销号", 10.0),
        col("超期", 8.0),
        col("按期办结率(%)", 14.0),
        col("反馈率(%)", 12.0),
        col("满意率(%)", 12.0),
    ]
}

fn summary_row(b: Breakdown) -> Vec<Cell> {
    let f = b.figures;
    vec![
        b.label_zh.into(),
        f.petitions.into(),
        f.unfinished.into(),
        f.resolved.into(),
        f.closed.into(),
        f.overdue.into(),
        f.on_time_rate.into(),
        f.feedback_rate.into(),
        f.satisfaction_rate.into(),
    ]
}

/// `GET /api/v1/exports/lists.xlsx`: a sheet per list and the summary.
#[utoipa::path(
    get,
    path = "/api/v1/exports/lists.xlsx",
    tag = "exports",
    params(ListsParams),
    responses((status = 200, description = "The three lists and the summary as XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn lists_xlsx(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<ListsParams>,
) -> Result<Response, AppError> {
    let r = crate::routes::v1::lists::resolve(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "lists", "lists.xlsx", raw).await?;
    let summary = crate::routes::v1::lists::summary(&state, &r).await?;
    let viewer = Viewer::of(&caller);
    let job = XlsxJob::start();
    for kind in ListKind::ALL {
        job.sheet(kind.title_zh(), LEDGER_COLUMNS.to_vec()).await?;
        let query = kind.query(&r.base, r.start, r.end);
        ledger_to_xlsx(&state, &query, &viewer, &job).await?;
    }
    job.sheet("分类汇总", summary_columns()).await?;
    job.send(XlsxPart::Rows(
        summary.into_iter().map(summary_row).collect(),
    ))
    .await?;
    job.finish(
        &format!("lists-{}.xlsx", r.month),
        &format!("{}三个清单-{}.xlsx", r.scope.root.name, r.month),
    )
    .await
}

/// `GET /api/v1/exports/lists.csv`: the three lists in one table, the
/// first column naming the list.
#[utoipa::path(
    get,
    path = "/api/v1/exports/lists.csv",
    tag = "exports",
    params(ListsParams),
    responses((status = 200, description = "The three lists as CSV, UTF-8 with BOM", content_type = "text/csv", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn lists_csv(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<ListsParams>,
) -> Result<Response, AppError> {
    let r = crate::routes::v1::lists::resolve(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "lists", "lists.csv", raw).await?;
    let viewer = Viewer::of(&caller);
    let mut columns = vec![col("清单", 10.0)];
    columns.extend_from_slice(LEDGER_COLUMNS);
    let (tx, body) = csv_channel();
    let head = format!("{BOM}{}", csv_header(&columns));
    let ascii = format!("lists-{}.csv", r.month);
    let name = format!("{}三个清单-{}.csv", r.scope.root.name, r.month);
    tokio::spawn(async move {
        if tx.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        for kind in ListKind::ALL {
            let query = kind.query(&r.base, r.start, r.end);
            let prefix = [Cell::from(kind.title_zh())];
            match ledger_to_csv(&state, &query, &viewer, &prefix, &tx).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::error!(error = %crate::error::error_chain(&e), "lists CSV export failed");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
        }
    });
    Ok(download(CSV, &ascii, &name, body))
}

// ----- statistics -----

fn cadre_columns() -> Vec<Column> {
    vec![
        col("排名", 6.0),
        col("单位", 10.0),
        col("姓名", 8.0),
        col("账号", 10.0),
        col("岗位", 10.0),
        col("走访户次", 10.0),
        col("走访户数", 10.0),
        col("任务指标", 10.0),
        col("指标口径", 12.0),
        col("是否达标", 8.0),
        col("走访企业", 10.0),
        col("回访", 8.0),
        col("慰问金(元)", 12.0),
        col("收集诉求", 10.0),
        col("超期", 8.0),
        col("按期办结率(%)", 14.0),
        col("反馈率(%)", 12.0),
        col("满意率(%)", 12.0),
        col("零战果", 8.0),
    ]
}

fn cadre_row(c: CadreStats) -> Vec<Cell> {
    let yes_no = |b: bool| Cell::from(if b { "是" } else { "否" });
    vec![
        i64::try_from(c.rank).unwrap_or(0).into(),
        c.unit_name.into(),
        c.name.into(),
        c.username.into(),
        c.post_zh.into(),
        c.visits.visits.into(),
        c.visits.households.into(),
        c.quota.target.into(),
        format!("{}{}", c.quota.basis_zh, c.quota.measure_zh).into(),
        yes_no(c.quota.met),
        c.visits.enterprises.into(),
        c.visits.follow_ups.into(),
        Cell::Num(c.visits.aid_money_yuan),
        c.petitions.petitions.into(),
        c.petitions.overdue.into(),
        c.petitions.on_time_rate.into(),
        c.petitions.feedback_rate.into(),
        c.petitions.satisfaction_rate.into(),
        yes_no(c.nothing_reported),
    ]
}

fn unit_columns() -> Vec<Column> {
    vec![
        col("排名", 6.0),
        col("单位", 12.0),
        col("干部数", 8.0),
        col("达标人数", 10.0),
        col("走访户次", 10.0),
        col("走访户数", 10.0),
        col("慰问金(元)", 12.0),
        col("收集诉求", 10.0),
        col("超期", 8.0),
        col("反馈率(%)", 12.0),
        col("满意率(%)", 12.0),
        col("零战果", 8.0),
    ]
}

fn unit_row(u: UnitStats) -> Vec<Cell> {
    vec![
        i64::try_from(u.rank).unwrap_or(0).into(),
        u.name.into(),
        i64::try_from(u.cadres).unwrap_or(0).into(),
        i64::try_from(u.cadres_meeting_quota).unwrap_or(0).into(),
        u.visits.visits.into(),
        u.visits.households.into(),
        Cell::Num(u.visits.aid_money_yuan),
        u.petitions.petitions.into(),
        u.petitions.overdue.into(),
        u.petitions.feedback_rate.into(),
        u.petitions.satisfaction_rate.into(),
        Cell::from(if u.nothing_reported { "是" } else { "否" }),
    ]
}

async fn stats_of(
    state: &AppState,
    caller: &AuthUser,
    params: &StatsParams,
) -> Result<(Scope, String, Stats), AppError> {
    let (from, to) = stats_period(params.from.as_deref(), params.to.as_deref())?;
    let scope = Scope::resolve(state, caller, params.unit.as_deref(), None).await?;
    let end = to
        .succ_opt()
        .ok_or_else(|| AppError::BadRequest("to: out of range".to_owned()))?;
    let stats = gather(state, &scope, china_midnight(from), china_midnight(end)).await?;
    Ok((scope, format!("{from}_{to}"), stats))
}

/// `GET /api/v1/exports/stats.xlsx`: cadres, units, and the breakdowns.
#[utoipa::path(
    get,
    path = "/api/v1/exports/stats.xlsx",
    tag = "exports",
    params(StatsParams),
    responses((status = 200, description = "The statistics as XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn stats_xlsx(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<Response, AppError> {
    let (scope, period, stats) = stats_of(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "stats", "stats.xlsx", raw).await?;
    let job = XlsxJob::start();
    job.sheet("干部统计", cadre_columns()).await?;
    job.send(XlsxPart::Rows(
        stats.cadres.into_iter().map(cadre_row).collect(),
    ))
    .await?;
    job.sheet("单位排名", unit_columns()).await?;
    job.send(XlsxPart::Rows(
        stats.units.into_iter().map(unit_row).collect(),
    ))
    .await?;
    let mut breakdowns = summary_columns();
    breakdowns[0] = col("分类/状态/层级", 16.0);
    job.sheet("诉求汇总", breakdowns).await?;
    let rows = stats
        .by_category
        .into_iter()
        .chain(stats.by_status)
        .chain(stats.by_level)
        .map(summary_row)
        .collect();
    job.send(XlsxPart::Rows(rows)).await?;
    job.finish(
        &format!("stats-{period}.xlsx"),
        &format!("{}走访统计-{period}.xlsx", scope.root.name),
    )
    .await
}

/// `GET /api/v1/exports/stats.csv`: the cadres' table.
#[utoipa::path(
    get,
    path = "/api/v1/exports/stats.csv",
    tag = "exports",
    params(StatsParams),
    responses((status = 200, description = "The statistics of the cadres as CSV, UTF-8 with BOM", content_type = "text/csv", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn stats_csv(
    State(state): State<AppState>,
    caller: AuthUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
    ApiQuery(params): ApiQuery<StatsParams>,
) -> Result<Response, AppError> {
    let (scope, period, stats) = stats_of(&state, &caller, &params).await?;
    audit(&state, &caller, &addr, "stats", "stats.csv", raw).await?;
    let rows: Vec<Vec<Cell>> = stats.cadres.into_iter().map(cadre_row).collect();
    let body = format!("{BOM}{}{}", csv_header(&cadre_columns()), csv_rows(&rows));
    Ok(download(
        CSV,
        &format!("stats-{period}.csv"),
        &format!("{}走访统计-{period}.csv", scope.root.name),
        Body::from(body),
    ))
}
