//! Index tables: one row per record with the columns lists filter on, a
//! search text, and the record as JSON, so a list or a search reads a few rows
//! instead of loading the whole automerge document.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use sync_core::records::petition::{Category, Petition, PetitionStatus};
use sync_core::records::service_card::ServiceCard;
use sync_core::records::visit::{SubjectKind, Visit, VisitKind};
use sync_core::timestamp::format_date;
use sync_core::{DocumentId, RecordId};

use crate::ClientError;
use crate::clock::year_of;

/// One record to index. Built once per edit and written at once, so the
/// size difference between variants costs nothing worth boxing for.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum IndexRow {
    Visit(Visit),
    Petition(Petition),
    Card(ServiceCard),
}

/// Which visits a list wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct VisitFilter {
    pub from_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub kind: Option<VisitKind>,
    pub text: Option<String>,
    pub include_deleted: bool,
    pub limit: u32,
    pub offset: u32,
}

/// Which petitions a list wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct PetitionFilter {
    pub from_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub category: Option<Category>,
    pub status: Option<PetitionStatus>,
    /// `Some(today)`: only petitions whose deadline is before today, unresolved.
    pub overdue_on: Option<time::Date>,
    pub text: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, ClientError> {
    serde_json::to_string(v).map_err(ClientError::internal)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, ClientError> {
    serde_json::from_str(s).map_err(|e| ClientError::CorruptStore {
        detail: format!("an index row does not decode: {e}"),
    })
}

fn visit_search(v: &Visit) -> String {
    let mut parts: Vec<&str> = vec![&v.place, &v.subject.name, &v.notes, &v.aid.goods];
    parts.extend(v.subject.address.as_deref());
    parts.extend(v.answers.as_array());
    parts.extend(v.tags.iter().map(String::as_str));
    parts.extend(v.participants.iter().map(String::as_str));
    parts.extend(v.resolved_on_spot.iter().map(String::as_str));
    parts.join("\n")
}

fn petition_search(p: &Petition) -> String {
    let mut parts: Vec<&str> = vec![&p.matter, &p.applicant.name, &p.state.responsible];
    parts.extend(p.applicant.address.as_deref());
    parts.extend(p.applicant.phone.as_deref());
    parts.extend(p.events.iter().filter_map(|e| e.kind.note()));
    parts.join("\n")
}

fn card_search(c: &ServiceCard) -> String {
    let mut parts: Vec<&str> = vec![&c.resident, &c.notes];
    parts.extend(c.phone.as_deref());
    parts.extend(c.address.as_deref());
    parts.extend(c.household.as_deref());
    parts.extend(c.follow_ups.iter().map(|f| f.note.as_str()));
    parts.join("\n")
}

/// Writes (or replaces) one record's row.
pub(super) fn write(
    conn: &Connection,
    doc: &DocumentId,
    row: &IndexRow,
) -> Result<(), ClientError> {
    let doc = doc.to_string();
    match row {
        IndexRow::Visit(v) => {
            // Households are counted by name and address: the same family
            // visited twice is one household against the quota.
            let household = (v.subject.kind == SubjectKind::Household).then(|| {
                format!(
                    "{}\n{}",
                    v.subject.name.trim(),
                    v.subject.address.as_deref().unwrap_or("").trim()
                )
            });
            conn.execute(
                "INSERT OR REPLACE INTO visits
                 (id, document_id, at, year, kind, household, deleted, search, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    v.id.to_string(),
                    doc,
                    v.at.millis(),
                    year_of(v.at),
                    v.kind.as_str(),
                    household,
                    v.deleted.is_some(),
                    visit_search(v),
                    json(v)?,
                ],
            )?;
        }
        IndexRow::Petition(p) => {
            conn.execute(
                "INSERT OR REPLACE INTO petitions
                 (id, document_id, created_at, year, category, status, deadline, deleted, search, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                rusqlite::params![
                    p.id.to_string(),
                    doc,
                    p.created_at.millis(),
                    year_of(p.created_at),
                    p.category.as_str(),
                    p.state.status.as_str(),
                    p.state.deadline.map(format_date),
                    p.deleted.is_some(),
                    petition_search(p),
                    json(p)?,
                ],
            )?;
        }
        IndexRow::Card(c) => {
            conn.execute(
                "INSERT OR REPLACE INTO cards
                 (id, document_id, handed_over_at, deleted, search, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                rusqlite::params![
                    c.id.to_string(),
                    doc,
                    c.handed_over_at.millis(),
                    c.deleted.is_some(),
                    card_search(c),
                    json(c)?,
                ],
            )?;
        }
    }
    Ok(())
}

/// Removes every row of a document.
pub(super) fn clear(conn: &Connection, doc: &DocumentId) -> Result<(), ClientError> {
    let doc = doc.to_string();
    for table in ["visits", "petitions", "cards"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE document_id = ?1"),
            [&doc],
        )?;
    }
    Ok(())
}

/// `LIKE` pattern for a substring, with the wildcards in it escaped.
fn like(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Builds `WHERE` clauses and their parameters.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    fn add(&mut self, clause: &str, value: impl Into<Value>) {
        self.params.push(value.into());
        self.clauses
            .push(clause.replace('?', &format!("?{}", self.params.len())));
    }

    fn fixed(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn rows<T: serde::de::DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<T>, ClientError> {
    let mut st = conn.prepare(sql)?;
    let records = st.query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(0))?;
    records.map(|r| from_json(&r?)).collect()
}

impl super::Store {
    pub(crate) fn visits(&self, f: &VisitFilter) -> Result<Vec<Visit>, ClientError> {
        let mut w = Where::default();
        if let Some(from) = f.from_ms {
            w.add("at >= ?", from);
        }
        if let Some(until) = f.until_ms {
            w.add("at < ?", until);
        }
        if let Some(kind) = f.kind {
            w.add("kind = ?", kind.as_str().to_owned());
        }
        if let Some(text) = f.text.as_deref().filter(|t| !t.trim().is_empty()) {
            w.add("search LIKE ? ESCAPE '\\'", like(text.trim()));
        }
        if !f.include_deleted {
            w.fixed("deleted = 0");
        }
        let sql = format!(
            "SELECT record FROM visits {} ORDER BY at DESC, id LIMIT {} OFFSET {}",
            w.sql(),
            f.limit,
            f.offset
        );
        rows(self.conn(), &sql, &w.params)
    }

    pub(crate) fn petitions(&self, f: &PetitionFilter) -> Result<Vec<Petition>, ClientError> {
        let mut w = Where::default();
        w.fixed("deleted = 0");
        if let Some(from) = f.from_ms {
            w.add("created_at >= ?", from);
        }
        if let Some(until) = f.until_ms {
            w.add("created_at < ?", until);
        }
        if let Some(c) = f.category {
            w.add("category = ?", c.as_str().to_owned());
        }
        if let Some(s) = f.status {
            w.add("status = ?", s.as_str().to_owned());
        }
        if let Some(today) = f.overdue_on {
            w.fixed("status IN ('open', 'in_progress')");
            w.add("deadline < ?", format_date(today));
        }
        if let Some(text) = f.text.as_deref().filter(|t| !t.trim().is_empty()) {
            w.add("search LIKE ? ESCAPE '\\'", like(text.trim()));
        }
        let sql = format!(
            "SELECT record FROM petitions {} ORDER BY created_at DESC, id LIMIT {} OFFSET {}",
            w.sql(),
            f.limit,
            f.offset
        );
        rows(self.conn(), &sql, &w.params)
    }

    pub(crate) fn cards(&self, text: Option<&str>) -> Result<Vec<ServiceCard>, ClientError> {
        let mut w = Where::default();
        w.fixed("deleted = 0");
        if let Some(text) = text.filter(|t| !t.trim().is_empty()) {
            w.add("search LIKE ? ESCAPE '\\'", like(text.trim()));
        }
        let sql = format!(
            "SELECT record FROM cards {} ORDER BY handed_over_at DESC, id",
            w.sql()
        );
        rows(self.conn(), &sql, &w.params)
    }

    /// Which document holds a record, if this phone has it.
    pub(crate) fn document_of(
        &self,
        table: &'static str,
        id: RecordId,
    ) -> Result<Option<DocumentId>, ClientError> {
        let doc: Option<String> = self
            .conn()
            .query_row(
                &format!("SELECT document_id FROM {table} WHERE id = ?1"),
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        doc.map(|d| {
            d.parse().map_err(|e| ClientError::CorruptStore {
                detail: format!("bad document id in the index: {e}"),
            })
        })
        .transpose()
    }

    pub(crate) fn petition(&self, id: RecordId) -> Result<Option<Petition>, ClientError> {
        let rec: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM petitions WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        rec.map(|r| from_json(&r)).transpose()
    }

    pub(crate) fn visit(&self, id: RecordId) -> Result<Option<Visit>, ClientError> {
        let rec: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM visits WHERE id = ?1",
                [id.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        rec.map(|r| from_json(&r)).transpose()
    }

    /// `(visits, distinct households, petitions, open petitions)` of a year.
    pub(crate) fn year_counts(&self, year: i32) -> Result<(u32, u32, u32, u32), ClientError> {
        let (visits, households): (i64, i64) = self.conn().query_row(
            "SELECT COUNT(*), COUNT(DISTINCT household) FROM visits
             WHERE year = ?1 AND deleted = 0",
            [year],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (petitions, open): (i64, i64) = self.conn().query_row(
            "SELECT COUNT(*), COALESCE(SUM(status IN ('open', 'in_progress')), 0) FROM petitions
             WHERE year = ?1 AND deleted = 0",
            [year],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let n = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok((n(visits), n(households), n(petitions), n(open)))
    }
}
