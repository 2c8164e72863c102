//! `GET /api/v1/cards`: the service cards (民情服务卡) of the ledger a caller
//! may see, filtered and paged; residents' phones masked as
//! [`crate::personal`] says (whole only for the card's own cadre).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::ledger::report::RecordQuery;
use crate::personal::Viewer;
use crate::routes::v1::ledger::page_window;
use crate::scope::{Scope, period, search_text};

/// Query string of `GET /api/v1/cards`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CardsParams {
    /// Unit code.
    pub unit: Option<String>,
    /// Username of the cadre.
    pub cadre: Option<String>,
    /// `YYYY-MM-DD`, China date, included (handed over on or after).
    #[param(format = Date)]
    pub from: Option<String>,
    /// `YYYY-MM-DD`, China date, included.
    #[param(format = Date)]
    pub to: Option<String>,
    /// Text in the resident's name, address or household.
    pub q: Option<String>,
    /// 1-based page.
    #[param(minimum = 1)]
    pub page: Option<u32>,
    /// Page size (at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub per_page: Option<u32>,
}

/// Answer of `GET /api/v1/cards`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CardsResponse {
    /// The page, newest first.
    pub items: Vec<CardEntry>,
    /// Cards matching, all pages together.
    pub total: i64,
}

/// One service card.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CardEntry {
    /// Record id.
    pub id: String,
    /// The contacts document it lives in.
    pub document_id: String,
    /// The cadre who handed it over.
    pub owner: String,
    pub unit_code: String,
    pub resident: String,
    /// Resident's phone, masked unless the caller is the card's cadre.
    pub phone: Option<String>,
    /// Resident's address, numbers in it masked likewise.
    pub address: Option<String>,
    pub household: Option<String>,
    /// When it was handed over.
    pub handed_over_at: DateTime<Utc>,
    /// `party_member` or `resident` for a "123" pairing.
    pub pairing_role: Option<String>,
    /// The pairing in Chinese (结对党员 / 结对群众).
    pub pairing_role_zh: Option<String>,
    pub pairing_needy: Option<bool>,
    pub follow_ups: i64,
}

/// Lists service cards.
#[utoipa::path(
    get,
    path = "/api/v1/cards",
    tag = "ledger",
    params(CardsParams),
    responses((status = 200, description = "A page of service cards", body = CardsResponse), crate::routes::openapi::ScopedErrors),
    security(("bearer" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<CardsParams>,
) -> Result<Json<CardsResponse>, AppError> {
    let (limit, offset) = page_window(params.page, params.per_page)?;
    let (from, to) = period(params.from.as_deref(), params.to.as_deref())?;
    let text = search_text(&caller, params.q.as_deref())?;
    let scope = Scope::resolve(
        &state,
        &caller,
        params.unit.as_deref(),
        params.cadre.as_deref(),
    )
    .await?;
    let (items, total) = state
        .store
        .query_cards(&RecordQuery {
            root_unit_id: scope.root.id,
            owner_user_id: scope.owner_user_id,
            from,
            to,
            kind: None,
            text,
            limit,
            offset,
        })
        .await?;
    let viewer = Viewer::of(&caller);
    Ok(Json(CardsResponse {
        items: items
            .into_iter()
            .map(|c| {
                let whole = viewer.sees_whole(&c.owner, None);
                CardEntry {
                    phone: viewer.phone(c.phone.as_deref(), whole),
                    address: c.address.as_deref().map(|a| viewer.text(a, whole)),
                    pairing_role_zh: c.pairing_role.map(|r| r.label_zh().to_owned()),
                    id: c.id,
                    document_id: c.document_id,
                    owner: c.owner,
                    unit_code: c.unit_code,
                    resident: c.resident,
                    household: c.household,
                    handed_over_at: c.handed_over_at,
                    pairing_role: c.pairing_role.map(|r| r.as_str().to_owned()),
                    pairing_needy: c.pairing_needy,
                    follow_ups: c.follow_ups,
                }
            })
            .collect(),
        total,
    }))
}
