//! The pages' export buttons: `/ledger/export.{xlsx,csv}`,
//! `/lists/export.{xlsx,csv}`, `/stats/export.{xlsx,csv}`, the API's export
//! handlers under the session's user (same masking, same audit row).

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::layout::PageError;
use super::session::PageUser;
use crate::app::AppState;
use crate::error::AppError;
use crate::extract::{ApiQuery, ClientAddr};
use crate::routes::v1::exports as api;
use crate::routes::v1::lists::ListsParams;
use crate::routes::v1::stats::StatsParams;

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

/// `GET /ledger/export.xlsx`.
pub async fn ledger_xlsx(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let filters = super::ledger::Filters::parse(raw.as_deref())?;
    let p = filters.params()?;
    Ok(api::ledger_xlsx(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /ledger/export.csv`.
pub async fn ledger_csv(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let filters = super::ledger::Filters::parse(raw.as_deref())?;
    let p = filters.params()?;
    Ok(api::ledger_csv(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /lists/export.xlsx`.
pub async fn lists_xlsx(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<ListsParams>(&raw)?;
    Ok(api::lists_xlsx(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /lists/export.csv`.
pub async fn lists_csv(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<ListsParams>(&raw)?;
    Ok(api::lists_csv(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /stats/export.xlsx`.
pub async fn stats_xlsx(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<StatsParams>(&raw)?;
    Ok(api::stats_xlsx(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

/// `GET /stats/export.csv`.
pub async fn stats_csv(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let (raw, p) = params::<StatsParams>(&raw)?;
    Ok(api::stats_csv(State(state), user.user, addr, RawQuery(raw), ApiQuery(p)).await?)
}

// ----- the devices table (a page-only export: the API has none) -----

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn device_columns() -> Vec<crate::exports::Column> {
    use crate::exports::col;
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
/// audit row written first like every export.
async fn device_rows(
    state: &AppState,
    user: &PageUser,
    addr: &ClientAddr,
    raw: &Option<String>,
    file: &str,
) -> Result<Vec<Vec<crate::exports::Cell>>, PageError> {
    use crate::exports::Cell;
    use crate::routes::v1::devices::DevicesParams;
    let (raw, p) = params::<DevicesQuery>(raw)?;
    let answer = crate::routes::v1::devices::list(
        State(state.clone()),
        user.user.clone(),
        ApiQuery(DevicesParams {
            unit: p.unit,
            cadre: None,
        }),
    )
    .await?
    .0;
    state
        .store
        .append_audit(crate::store::NewAuditEntry {
            at: chrono::Utc::now(),
            user_id: Some(user.user.user_id),
            action: "export.devices".to_owned(),
            target: file.to_owned(),
            detail: raw.unwrap_or_default(),
            remote_addr: addr.0.clone(),
        })
        .await?;
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for u in answer.users {
        if u.devices.is_empty() {
            rows.push(vec![
                Cell::from(u.name.clone()),
                Cell::from(u.username.clone()),
                Cell::from(u.unit_code.clone()),
                Cell::from("从未同步"),
                Cell::Empty,
                Cell::Empty,
                Cell::Empty,
            ]);
        }
        for d in &u.devices {
            rows.push(vec![
                Cell::from(u.name.clone()),
                Cell::from(u.username.clone()),
                Cell::from(u.unit_code.clone()),
                Cell::from(d.device_id.clone()),
                Cell::from(super::layout::china_time(&d.last_sync)),
                Cell::Int(d.documents),
                Cell::Int((now - d.last_sync).num_days()),
            ]);
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

fn download(content_type: &str, ascii: &str, name: &str, body: Vec<u8>) -> Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                crate::exports::content_disposition(ascii, name),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// `GET /devices/export.csv`.
pub async fn devices_csv(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let rows = device_rows(&state, &user, &addr, &raw, "devices.csv").await?;
    let text = format!(
        "{}{}{}",
        crate::exports::BOM,
        crate::exports::csv_header(&device_columns()),
        crate::exports::csv_rows(&rows)
    );
    Ok(download(
        "text/csv; charset=utf-8",
        "devices.csv",
        "设备同步情况.csv",
        text.into_bytes(),
    ))
}

/// `GET /devices/export.xlsx`.
pub async fn devices_xlsx(
    State(state): State<AppState>,
    user: PageUser,
    addr: ClientAddr,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    use crate::exports::{XlsxPart, XlsxWriter};
    use std::io::{Read, Seek};
    let rows = device_rows(&state, &user, &addr, &raw, "devices.xlsx").await?;
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
    Ok(download(XLSX, "devices.xlsx", "设备同步情况.xlsx", bytes))
}
