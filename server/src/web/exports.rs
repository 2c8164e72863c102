//! The pages' export buttons: `/ledger/export.{xlsx,csv}`,
//! `/lists/export.{xlsx,csv}`, `/stats/export.{xlsx,csv}`, the API's export
//! handlers under the session's user (same masking, same audit row).

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::layout::PageError;
use super::session::{NoSession, PageUser};
use crate::app::AppState;
use crate::error::AppError;
use crate::exports::{Cell, Column, XlsxPart, XlsxWriter, col};
use crate::extract::{ApiQuery, ClientAddr};
use crate::routes::v1::exports::{self as api, ExportRequest};
use crate::routes::v1::ledger::LedgerParams;

/// The query without empty values (what the filter forms leave), parsed.
fn params<T: DeserializeOwned>(raw: &Option<String>) -> Result<(Option<String>, T), PageError> {
    let kept: Vec<&str> = raw
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| p.split_once('=').is_some_and(|(_, v)| !v.is_empty()))
        .collect();
    let clean = kept.join("&");
    let uri: axum::http::Uri = format!("/?{clean}")
        .parse()
        .map_err(|_| AppError::BadRequest("query".to_owned()))?;
    let parsed = axum::extract::Query::<T>::try_from_uri(&uri)
        .map_err(|e| AppError::BadRequest(e.to_string()))?
        .0;
    Ok(((!clean.is_empty()).then_some(clean), parsed))
}

/// What an export button's request carries, extracted in this order: the
/// session's user, their address, the query as sent.
#[derive(Debug)]
pub struct PageExport {
    state: AppState,
    user: PageUser,
    addr: ClientAddr,
    raw: Option<String>,
}

impl FromRequestParts<AppState> for PageExport {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoSession> {
        let user = PageUser::from_request_parts(parts, state).await?;
        let Ok(addr) = ClientAddr::from_request_parts(parts, state).await;
        let Ok(RawQuery(raw)) = RawQuery::from_request_parts(parts, state).await;
        Ok(PageExport {
            state: state.clone(),
            user,
            addr,
            raw,
        })
    }
}

impl PageExport {
    /// The API's request for `params`, its audit row holding `raw`.
    fn request<P>(self, raw: Option<String>, params: P) -> ExportRequest<P> {
        ExportRequest {
            state: self.state,
            caller: self.user.user,
            addr: self.addr,
            raw,
            params,
        }
    }

    /// The API's request for the query without its empty values, which is
    /// also what the audit row holds.
    fn cleaned<P: DeserializeOwned>(self) -> Result<ExportRequest<P>, PageError> {
        let (raw, params) = params::<P>(&self.raw)?;
        Ok(self.request(raw, params))
    }

    /// The API's request for the ledger page's filters; the audit row holds
    /// the query as sent.
    fn ledger(mut self) -> Result<ExportRequest<LedgerParams>, PageError> {
        let params = super::ledger::Filters::parse(self.raw.as_deref())?.params()?;
        let raw = self.raw.take();
        Ok(self.request(raw, params))
    }
}

/// `GET /ledger/export.xlsx`.
pub async fn ledger_xlsx(page: PageExport) -> Result<Response, PageError> {
    Ok(api::ledger_xlsx(page.ledger()?).await?)
}

/// `GET /ledger/export.csv`.
pub async fn ledger_csv(page: PageExport) -> Result<Response, PageError> {
    Ok(api::ledger_csv(page.ledger()?).await?)
}

/// `GET /lists/export.xlsx`.
pub async fn lists_xlsx(page: PageExport) -> Result<Response, PageError> {
    Ok(api::lists_xlsx(page.cleaned()?).await?)
}

/// `GET /lists/export.csv`.
pub async fn lists_csv(page: PageExport) -> Result<Response, PageError> {
    Ok(api::lists_csv(page.cleaned()?).await?)
}

/// `GET /stats/export.xlsx`.
pub async fn stats_xlsx(page: PageExport) -> Result<Response, PageError> {
    Ok(api::stats_xlsx(page.cleaned()?).await?)
}

/// `GET /stats/export.csv`.
pub async fn stats_csv(page: PageExport) -> Result<Response, PageError> {
    Ok(api::stats_csv(page.cleaned()?).await?)
}

// ----- the devices table (a page-only export: the API has none) -----

fn device_columns() -> Vec<Column> {
    vec![
        col("干部", 10.0),
        col("用户名", 12.0),
        col("单位", 10.0),
        col("设备", 16.0),
        col("最近同步", 18.0),
        col("同步文档", 10.0),
        col("未同步天数", 10.0),
    ]
}

/// The devices table's rows, from `GET /api/v1/devices`'s handler, with an
/// audit row written first (into `file`) like every export.
async fn device_rows(
    req: &ExportRequest<DevicesQuery>,
    file: &str,
) -> Result<Vec<Vec<Cell>>, PageError> {
    use crate::routes::v1::devices::DevicesParams;
    let answer = crate::routes::v1::devices::list(
        State(req.state.clone()),
        req.caller.clone(),
        ApiQuery(DevicesParams {
            unit: req.params.unit.clone(),
            cadre: None,
        }),
    )
    .await?
    .0;
    req.audit("devices", file).await?;
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for u in answer.users {
        let who = [
            Cell::from(u.name.clone()),
            Cell::from(u.username.clone()),
            Cell::from(u.unit_code.clone()),
        ];
        if u.devices.is_empty() {
            let never = [
                Cell::from("从未同步"),
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
            ];
            rows.push(who.iter().cloned().chain(never).collect());
        }
        for d in &u.devices {
            let device = [
                Cell::from(d.device_id.clone()),
                Cell::from(super::layout::china_time(&d.last_sync)),
                Cell::Int(d.documents),
                Cell::Int((now - d.last_sync).num_days()),
            ];
            rows.push(who.iter().cloned().chain(device).collect());
        }
    }
    Ok(rows)
}

/// Query of the devices exports.
#[derive(Debug, Default, serde::Deserialize)]
struct DevicesQuery {
    #[serde(default)]
    unit: Option<String>,
}

/// `GET /devices/export.csv`.
pub async fn devices_csv(page: PageExport) -> Result<Response, PageError> {
    let req = page.cleaned()?;
    let rows = device_rows(&req, "devices.csv").await?;
    let (ascii, name) = ("devices.csv", "设备同步情况.csv");
    Ok(api::csv_download(&device_columns(), &rows, ascii, name))
}

/// `GET /devices/export.xlsx`.
pub async fn devices_xlsx(page: PageExport) -> Result<Response, PageError> {
    use std::io::{Read, Seek};
    let req = page.cleaned()?;
    let rows = device_rows(&req, "devices.xlsx").await?;
    let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let mut writer = XlsxWriter::new();
        writer
            .add(XlsxPart::Sheet {
                name: "设备同步情况".to_owned(),
                columns: device_columns(),
            })
            .map_err(|e| e.to_string())?;
        writer
            .add(XlsxPart::Rows(rows))
            .map_err(|e| e.to_string())?;
        let mut file = writer.finish().map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        file.rewind().map_err(|e| e.to_string())?;
        file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)?;
    let body = axum::body::Body::from(bytes);
    Ok(api::download(
        api::XLSX,
        "devices.xlsx",
        "设备同步情况.xlsx",
        body,
    ))
}
