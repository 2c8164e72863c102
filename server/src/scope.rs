//! What part of the organisation a request reads: the caller's reach
//! narrowed by the `unit` and `cadre` parameters, and the period `from`–`to`.
//!
//! A cadre reads their own records; a supervisor or admin everything whose
//! owner's unit lies in their unit's subtree. A `unit` or `cadre` outside
//! that (or unknown: the two look the same) is 403, naming the parameter.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::store::{Role, Unit};

/// The units and owner a request reads.
#[derive(Debug, Clone)]
pub struct Scope {
    /// The unit whose subtree is read.
    pub root: Unit,
    /// Every unit of that subtree (root first).
    pub units: Vec<Unit>,
    /// Only records of this user (a cadre's own, or the `cadre` parameter).
    pub owner_user_id: Option<i64>,
}

impl Scope {
    /// Unit ids of [`Self::units`].
    pub fn unit_ids(&self) -> Vec<i64> {
        self.units.iter().map(|u| u.id).collect()
    }

    /// Works out the scope of `caller` narrowed by `unit` (a unit code) and
    /// `cadre` (a username).
    pub async fn resolve(
        state: &AppState,
        caller: &AuthUser,
        unit: Option<&str>,
        cadre: Option<&str>,
    ) -> Result<Scope, AppError> {
        let store = state.store.as_ref();
        let root_id = match unit {
            None => caller.unit_id,
            Some(code) => {
                let forbidden =
                    || AppError::Forbidden(format!("unit {code:?} is not within yours"));
                let unit = store.get_unit_by_code(code).await?.ok_or_else(forbidden)?;
                if !store.is_unit_within(unit.id, caller.unit_id).await? {
                    return Err(forbidden());
                }
                unit.id
            }
        };
        let units = store.unit_subtree(root_id).await?;
        let root = units
            .first()
            .cloned()
            .ok_or_else(|| AppError::Forbidden("your unit no longer exists".to_owned()))?;
        let mut owner_user_id = match caller.role {
            Role::Cadre => Some(caller.user_id),
            Role::Supervisor | Role::Admin => None,
        };
        if let Some(name) = cadre {
            let forbidden =
                || AppError::Forbidden(format!("cadre {name:?} is not within your reach"));
            let user = store
                .get_user_by_username(name)
                .await?
                .ok_or_else(forbidden)?;
            let reachable = match caller.role {
                Role::Cadre => user.id == caller.user_id,
                Role::Supervisor | Role::Admin => units.iter().any(|u| u.id == user.unit_id),
            };
            if !reachable {
                return Err(forbidden());
            }
            owner_user_id = Some(user.id);
        }
        Ok(Scope {
            root,
            units,
            owner_user_id,
        })
    }
}

/// The `q` parameter: trimmed, at most 100 characters; 400 naming `q`.
///
/// A supervisor or admin reads residents' numbers masked (see
/// [`crate::personal`]), but the text search runs over what is stored, so
/// searching for digits would tell them a masked number a digit at a time.
/// They may not search for four digits in a row; a cadre, who reads only
/// their own records whole, may.
pub fn search_text(caller: &AuthUser, q: Option<&str>) -> Result<Option<String>, AppError> {
    let text = q
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    let Some(text) = text else {
        return Ok(None);
    };
    if text.chars().count() > 100 {
        return Err(AppError::BadRequest("q: at most 100 characters".to_owned()));
    }
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        if run >= 4 && caller.role != Role::Cadre {
            return Err(AppError::BadRequest(
                "q: searching for phone or ID digits (four or more in a row) is not allowed \
                 for your role, which sees them masked"
                    .to_owned(),
            ));
        }
    }
    Ok(Some(text))
}

/// A `YYYY-MM-DD` query parameter as a China date; 400 naming `param`.
pub fn parse_day(param: &str, text: &str) -> Result<NaiveDate, AppError> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| AppError::BadRequest(format!("{param}: {text:?} is not a date (YYYY-MM-DD)")))
}

/// The instant a China day begins (00:00 at UTC+8).
pub fn china_midnight(day: NaiveDate) -> DateTime<Utc> {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    Utc.from_utc_datetime(&naive) - chrono::Duration::hours(8)
}

/// A period `[start, end)`; either end may be open.
pub type Period = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `from`–`to` (China dates, both included) as the instants
/// `[start, end)`; 400 when either is not a date or `to` is before `from`.
pub fn period(from: Option<&str>, to: Option<&str>) -> Result<Period, AppError> {
    let from = from.map(|f| parse_day("from", f)).transpose()?;
    let to = to.map(|t| parse_day("to", t)).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(AppError::BadRequest(format!(
            "to: {t} is before from ({f})"
        )));
    }
    Ok((
        from.map(china_midnight),
        to.and_then(|t| t.succ_opt()).map(china_midnight),
    ))
}

/// A `YYYY-MM` parameter as the instants of that China month `[start,
/// end)` and its first day; 400 naming `param`.
pub fn month(
    param: &str,
    text: &str,
) -> Result<(NaiveDate, DateTime<Utc>, DateTime<Utc>), AppError> {
    let bad = || AppError::BadRequest(format!("{param}: {text:?} is not a month (YYYY-MM)"));
    let first = NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").map_err(|_| bad())?;
    if text.len() != 7 {
        return Err(bad());
    }
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(bad)?;
    Ok((first, china_midnight(first), china_midnight(next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_china_days() {
        let (from, to) = period(Some("2026-03-01"), Some("2026-03-31")).expect("period");
        assert_eq!(
            from.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-02-28T16:00:00+00:00")
        );
        assert_eq!(
            to.map(|t| t.to_rfc3339()).as_deref(),
            Some("2026-03-31T16:00:00+00:00")
        );
        assert!(period(Some("2026-03-02"), Some("2026-03-01")).is_err());
        assert!(period(Some("2026-3-x"), None).is_err());
        let (_, start, end) = month("month", "2026-12").expect("month");
        assert_eq!(start.to_rfc3339(), "2026-11-30T16:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-12-31T16:00:00+00:00");
        assert!(month("month", "2026-13").is_err());
        assert!(month("month", "2026-1").is_err());
    }
}
