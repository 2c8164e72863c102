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
//! Each handler states only what its export holds: the [`Sheet`]s (a name,
//! the columns, where the rows come from) and the file's name. One writer
//! loop per format ([`ExportRequest::xlsx`], [`ExportRequest::csv`]) reads
//! every sheet's rows a page at a time ([`PAGE_ROWS`]); see
//! [`crate::exports`] for how memory stays bounded. Every export writes an
//! audit row first (who, what, the query, from where); if that fails, there
//! is no export.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, RawQuery};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::stream;
use serde::de::DeserializeOwned;
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
use crate::routes::v1::lists::{self, ListKind, ListsParams, ListsRequest};
use crate::routes::v1::stats::{StatsParams, gather, stats_period};
use crate::routes::v1::visits::{VisitEntry, VisitsParams, visit_entry, visits_query};
use crate::scope::{Scope, china_midnight};
use crate::stats::{Breakdown, CadreStats, Stats, UnitStats};
use crate::store::NewAuditEntry;

/// The content type of an XLSX download.
pub(crate) const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const CSV: &str = "text/csv; charset=utf-8";

/// What every export request carries. Extracted in this order (the caller,
/// their address, the query as sent, the query parsed), so a request with
/// several faults is answered about the first.
#[derive(Debug)]
pub struct ExportRequest<P> {
    /// The application.
    pub state: AppState,
    /// Who asks.
    pub caller: AuthUser,
    /// From where.
    pub addr: ClientAddr,
    /// The query string as sent: the audit row's detail.
    pub raw: Option<String>,
    /// The query string parsed.
    pub params: P,
}

impl<P: DeserializeOwned + Send> FromRequestParts<AppState> for ExportRequest<P> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let caller = AuthUser::from_request_parts(parts, state).await?;
        let Ok(addr) = ClientAddr::from_request_parts(parts, state).await;
        let Ok(RawQuery(raw)) = RawQuery::from_request_parts(parts, state).await;
        let ApiQuery(params) = ApiQuery::<P>::from_request_parts(parts, state).await?;
        Ok(ExportRequest {
            state: state.clone(),
            caller,
            addr,
            raw,
            params,
        })
    }
}

impl<P> ExportRequest<P> {
    /// Writes the audit row of an export of `what` (`export.{what}`) into
    /// `file`.
    pub(crate) async fn audit(&self, what: &str, file: &str) -> Result<(), AppError> {
        self.state
            .store
            .append_audit(NewAuditEntry {
                at: Utc::now(),
                user_id: Some(self.caller.user_id),
                action: format!("export.{what}"),
                target: file.to_owned(),
                detail: self.raw.clone().unwrap_or_default(),
                remote_addr: self.addr.0.clone(),
            })
            .await?;
        Ok(())
    }

    /// `sheets` as an XLSX workbook, downloaded as `ascii` (fallback) and
    /// `name`.
    async fn xlsx(
        &self,
        sheets: Vec<Sheet>,
        ascii: &str,
        name: &str,
    ) -> Result<Response, AppError> {
        let viewer = Viewer::of(&self.caller);
        let job = XlsxJob::start();
        for mut sheet in sheets {
            job.sheet(sheet.name, sheet.columns.clone()).await?;
            while let Some(rows) = sheet.next_page(&self.state, &viewer).await? {
                job.send(XlsxPart::Rows(rows)).await?;
            }
        }
        job.finish(ascii, name).await
    }

    /// `sheets` as one CSV table under the first sheet's columns (the
    /// sheets' are alike), streamed as it is read and downloaded as `ascii`
    /// (fallback) and `name`. With `sheet_column`, a first column names each
    /// row's sheet. A failure after the first bytes is logged as the export
    /// of `what`, and the body ends in an error.
    fn csv(
        self,
        what: &'static str,
        sheet_column: Option<Column>,
        sheets: Vec<Sheet>,
        ascii: &str,
        name: &str,
    ) -> Response {
        let viewer = Viewer::of(&self.caller);
        let state = self.state;
        let first = sheets.first().map(|s| s.columns.clone());
        let columns: Vec<Column> = sheet_column
            .into_iter()
            .chain(first.into_iter().flatten())
            .collect();
        let head = format!("{BOM}{}", csv_header(&columns));
        let (tx, body) = csv_channel();
        tokio::spawn(async move {
            if tx.send(Ok(Bytes::from(head))).await.is_err() {
                return;
            }
            for mut sheet in sheets {
                let prefix: Vec<Cell> = sheet_column
                    .map(|_| Cell::from(sheet.name))
                    .into_iter()
                    .collect();
                loop {
                    let rows = match sheet.next_page(&state, &viewer).await {
                        Ok(Some(rows)) => rows,
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(error = %crate::error::error_chain(&e), "{what} CSV export failed");
                            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                            return;
                        }
                    };
                    let rows: Vec<Vec<Cell>> = rows
                        .into_iter()
                        .map(|row| prefix.iter().cloned().chain(row).collect())
                        .collect();
                    if tx.send(Ok(Bytes::from(csv_rows(&rows)))).await.is_err() {
                        return;
                    }
                }
            }
        });
        download(CSV, ascii, name, body)
    }
}

/// One sheet of an export (in a CSV, one part of the one table).
struct Sheet {
    name: &'static str,
    columns: Vec<Column>,
    rows: Rows,
    /// Where the next page starts; `None` once the last was read.
    next: Option<i64>,
}

/// Where a sheet's rows come from.
enum Rows {
    /// Rows at hand: one page.
    Ready(Vec<Vec<Cell>>),
    /// The ledger rows a query finds, numbered.
    Ledger(LedgerQuery),
    /// The visits a query finds, numbered.
    Visits(RecordQuery),
}

impl Sheet {
    fn new(name: &'static str, columns: Vec<Column>, rows: Rows) -> Self {
        Sheet {
            name,
            columns,
            rows,
            next: Some(0),
        }
    }

    /// A sheet of the ledger rows `query` finds.
    fn ledger(name: &'static str, query: LedgerQuery) -> Self {
        Sheet::new(name, LEDGER_COLUMNS.to_vec(), Rows::Ledger(query))
    }

    /// The next page of rows, numbered on from the last page; `None` after
    /// the last page (which may be empty).
    async fn next_page(
        &mut self,
        state: &AppState,
        viewer: &Viewer,
    ) -> Result<Option<Vec<Vec<Cell>>>, AppError> {
        let Some(offset) = self.next else {
            return Ok(None);
        };
        let (rows, more) = match &mut self.rows {
            Rows::Ready(rows) => (std::mem::take(rows), false),
            Rows::Ledger(query) => {
                let q = LedgerQuery {
                    limit: PAGE_ROWS,
                    offset,
                    without_total: true,
                    ..query.clone()
                };
                let items = state.store.query_ledger(&q).await?.items;
                numbered(items, offset, |n, item| ledger_row(n, entry(item, viewer)))
            }
            Rows::Visits(query) => {
                let q = RecordQuery {
                    limit: PAGE_ROWS,
                    offset,
                    ..query.clone()
                };
                let (items, _) = state.store.query_visits(&q).await?;
                numbered(items, offset, |n, item| {
                    visit_row(n, visit_entry(item, viewer))
                })
            }
        };
        self.next = more.then(|| offset + i64::try_from(rows.len()).unwrap_or(0));
        Ok(Some(rows))
    }
}

/// One page of `items` as rows numbered from `offset + 1`, and whether
/// another page may follow (this one is full).
fn numbered<T>(
    items: Vec<T>,
    offset: i64,
    row: impl Fn(i64, T) -> Vec<Cell>,
) -> (Vec<Vec<Cell>>, bool) {
    let more = i64::try_from(items.len()).unwrap_or(i64::MAX) == PAGE_ROWS;
    let rows = items
        .into_iter()
        .zip(offset + 1..)
        .map(|(item, n)| row(n, item))
        .collect();
    (rows, more)
}

/// A download named `ascii` (fallback) and `name`, never cached.
pub(crate) fn download(
    content_type: &'static str,
    ascii: &str,
    name: &str,
    body: Body,
) -> Response {
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

/// `rows` under `columns` as a CSV download, written at once (for tables
/// already in memory).
pub(crate) fn csv_download(
    columns: &[Column],
    rows: &[Vec<Cell>],
    ascii: &str,
    name: &str,
) -> Response {
    let text = format!("{BOM}{}{}", csv_header(columns), csv_rows(rows));
    download(CSV, ascii, name, Body::from(text))
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

/// `GET /api/v1/ledger/export.xlsx`.
#[utoipa::path(
    get,
    path = "/api/v1/ledger/export.xlsx",
    tag = "exports",
    params(LedgerParams),
    responses((status = 200, description = "The ledger (台账) as XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = crate::routes::openapi::Binary), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn ledger_xlsx(req: ExportRequest<LedgerParams>) -> Result<Response, AppError> {
    let query = ledger_query(&req.state, &req.caller, &req.params).await?;
    req.audit("ledger", "ledger.xlsx").await?;
    let sheets = vec![Sheet::ledger("台账", query)];
    req.xlsx(sheets, "ledger.xlsx", "台账.xlsx").await
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
pub async fn ledger_csv(req: ExportRequest<LedgerParams>) -> Result<Response, AppError> {
    let query = ledger_query(&req.state, &req.caller, &req.params).await?;
    req.audit("ledger", "ledger.csv").await?;
    let sheets = vec![Sheet::ledger("台账", query)];
    Ok(req.csv("ledger", None, sheets, "ledger.csv", "台账.csv"))
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
pub async fn visits_xlsx(req: ExportRequest<VisitsParams>) -> Result<Response, AppError> {
    let query = visits_query(&req.state, &req.caller, &req.params).await?;
    req.audit("visits", "visits.xlsx").await?;
    let sheets = vec![Sheet::new("走访记录", visit_columns(), Rows::Visits(query))];
    req.xlsx(sheets, "visits.xlsx", "走访记录.xlsx").await
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
pub async fn visits_csv(req: ExportRequest<VisitsParams>) -> Result<Response, AppError> {
    let query = visits_query(&req.state, &req.caller, &req.params).await?;
    req.audit("visits", "visits.csv").await?;
    let sheets = vec![Sheet::new("走访记录", visit_columns(), Rows::Visits(query))];
    Ok(req.csv("visits", None, sheets, "visits.csv", "走访记录.csv"))
}

// ----- the three lists -----

/// A sheet per list, all the ledger's columns.
fn list_sheets(r: &ListsRequest) -> Vec<Sheet> {
    ListKind::ALL
        .into_iter()
        .map(|kind| Sheet::ledger(kind.title_zh(), kind.query(&r.base, r.start, r.end)))
        .collect()
}

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
pub async fn lists_xlsx(req: ExportRequest<ListsParams>) -> Result<Response, AppError> {
    let r = lists::resolve(&req.state, &req.caller, &req.params).await?;
    req.audit("lists", "lists.xlsx").await?;
    let summary = lists::summary(&req.state, &r).await?;
    let mut sheets = list_sheets(&r);
    sheets.push(Sheet::new(
        "分类汇总",
        summary_columns(),
        Rows::Ready(summary.into_iter().map(summary_row).collect()),
    ));
    req.xlsx(
        sheets,
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
pub async fn lists_csv(req: ExportRequest<ListsParams>) -> Result<Response, AppError> {
    let r = lists::resolve(&req.state, &req.caller, &req.params).await?;
    req.audit("lists", "lists.csv").await?;
    Ok(req.csv(
        "lists",
        Some(col("清单", 10.0)),
        list_sheets(&r),
        &format!("lists-{}.csv", r.month),
        &format!("{}三个清单-{}.csv", r.scope.root.name, r.month),
    ))
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
pub async fn stats_xlsx(req: ExportRequest<StatsParams>) -> Result<Response, AppError> {
    let (scope, period, stats) = stats_of(&req.state, &req.caller, &req.params).await?;
    req.audit("stats", "stats.xlsx").await?;
    let mut breakdowns = summary_columns();
    breakdowns[0] = col("分类/状态/层级", 16.0);
    let by = stats.by_category.into_iter().chain(stats.by_status);
    let by = by.chain(stats.by_level).map(summary_row).collect();
    let sheets = vec![
        Sheet::new(
            "干部统计",
            cadre_columns(),
            Rows::Ready(stats.cadres.into_iter().map(cadre_row).collect()),
        ),
        Sheet::new(
            "单位排名",
            unit_columns(),
            Rows::Ready(stats.units.into_iter().map(unit_row).collect()),
        ),
        Sheet::new("诉求汇总", breakdowns, Rows::Ready(by)),
    ];
    req.xlsx(
        sheets,
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
pub async fn stats_csv(req: ExportRequest<StatsParams>) -> Result<Response, AppError> {
    let (scope, period, stats) = stats_of(&req.state, &req.caller, &req.params).await?;
    req.audit("stats", "stats.csv").await?;
    let rows: Vec<Vec<Cell>> = stats.cadres.into_iter().map(cadre_row).collect();
    Ok(csv_download(
        &cadre_columns(),
        &rows,
        &format!("stats-{period}.csv"),
        &format!("{}走访统计-{period}.csv", scope.root.name),
    ))
}
