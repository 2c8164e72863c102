//! Ledger SQL for PostgreSQL.

use sqlx::{PgConnection, PgPool};

use crate::ledger::{LedgerItem, LedgerPage, LedgerProjection, LedgerQuery};

/// Replaces every ledger row of `document_id` with `ledger`, on the caller's
/// connection (inside its transaction).
///
/// Delete-then-insert: simple, and a rebuild gives exactly the rows the sync
/// path wrote. The cost is one statement per row on every write to the
/// document (a full year's diary is a few hundred rows, well under the cost of
/// the merge itself); a diffing writer can replace this if it ever matters.
/// `ON CONFLICT DO NOTHING`: a hostile document with a duplicate id must not make
/// the write (and so the chunk) fail.
pub(crate) async fn replace(
    conn: &mut PgConnection,
    document_id: &str,
    ledger: &LedgerProjection,
) -> Result<(), sqlx::Error> {
    for table in [
        "DELETE FROM ledger_visits WHERE document_id = $1",
        "DELETE FROM ledger_petitions WHERE document_id = $1",
        "DELETE FROM ledger_petition_events WHERE document_id = $1",
        "DELETE FROM ledger_cards WHERE document_id = $1",
    ] {
        sqlx::query(table)
            .bind(document_id)
            .execute(&mut *conn)
            .await?;
    }
    let Some((owner, unit)): Option<(i64, i64)> = sqlx::query_as(
        "SELECT d.owner_user_id, u.unit_id FROM documents d JOIN users u ON u.id = d.owner_user_id
         WHERE d.id = $1",
    )
    .bind(document_id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(());
    };
    for v in &ledger.visits {
        sqlx::query(
            "INSERT INTO ledger_visits (document_id, id, owner_user_id, unit_id, kind, at,
                 place, subject_kind, subject_name, tags, aid_money_fen, aid_goods,
                 resolved_on_spot, petition_count, created_at, created_by, deleted)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT DO NOTHING",
        )
        .bind(document_id)
        .bind(&v.id)
        .bind(owner)
        .bind(unit)
        .bind(&v.kind)
        .bind(v.at)
        .bind(&v.place)
        .bind(&v.subject_kind)
        .bind(&v.subject_name)
        .bind(&v.tags)
        .bind(v.aid_money_fen)
        .bind(&v.aid_goods)
        .bind(v.resolved_on_spot)
        .bind(v.petition_count)
        .bind(v.created_at)
        .bind(&v.created_by)
        .bind(v.deleted)
        .execute(&mut *conn)
        .await?;
    }
    for p in &ledger.petitions {
        sqlx::query(
            "INSERT INTO ledger_petitions (document_id, id, visit_id, owner_user_id,
                 unit_id, applicant_name, applicant_phone, applicant_address, matter, category,
                 created_at, created_by, status, responsible, level, deadline, feedback,
                 satisfaction, resolved_at, closed_at, deleted, event_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22)
             ON CONFLICT DO NOTHING",
        )
        .bind(document_id)
        .bind(&p.id)
        .bind(&p.visit_id)
        .bind(owner)
        .bind(unit)
        .bind(&p.applicant_name)
        .bind(&p.applicant_phone)
        .bind(&p.applicant_address)
        .bind(&p.matter)
        .bind(&p.category)
        .bind(p.created_at)
        .bind(&p.created_by)
        .bind(&p.status)
        .bind(&p.responsible)
        .bind(&p.level)
        .bind(&p.deadline)
        .bind(&p.feedback)
        .bind(&p.satisfaction)
        .bind(p.resolved_at)
        .bind(p.closed_at)
        .bind(p.deleted)
        .bind(p.event_count)
        .execute(&mut *conn)
        .await?;
    }
    for e in &ledger.events {
        sqlx::query(
            "INSERT INTO ledger_petition_events (document_id, petition_id, id, at, actor,
                 event_type, note, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT DO NOTHING",
        )
        .bind(document_id)
        .bind(&e.petition_id)
        .bind(&e.id)
        .bind(e.at)
        .bind(&e.actor)
        .bind(&e.event_type)
        .bind(&e.note)
        .bind(&e.detail)
        .execute(&mut *conn)
        .await?;
    }
    for c in &ledger.cards {
        sqlx::query(
            "INSERT INTO ledger_cards (document_id, id, owner_user_id, unit_id, resident,
                 phone, address, household, handed_over_at, pairing_role, pairing_needy,
                 follow_ups, created_at, created_by, deleted)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT DO NOTHING",
        )
        .bind(document_id)
        .bind(&c.id)
        .bind(owner)
        .bind(unit)
        .bind(&c.resident)
        .bind(&c.phone)
        .bind(&c.address)
        .bind(&c.household)
        .bind(c.handed_over_at)
        .bind(&c.pairing_role)
        .bind(c.pairing_needy)
        .bind(c.follow_ups)
        .bind(c.created_at)
        .bind(&c.created_by)
        .bind(c.deleted)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

// The filter shared by the count and the page. A `NULL` parameter switches
// its condition off, so the SQL stays static.
macro_rules! ledger_filter {
    () => {
        " FROM ledger_petitions p
          JOIN units un ON un.id = p.unit_id
          JOIN users us ON us.id = p.owner_user_id
          WHERE NOT p.deleted
            AND ($1::BIGINT[] IS NULL OR p.unit_id = ANY($1))
            AND ($2::BIGINT IS NULL OR p.owner_user_id = $2)
            AND ($3::TEXT IS NULL OR p.status = $3)
            AND ($4::TEXT IS NULL OR p.category = $4)
            AND ($5::TEXT IS NULL OR (p.status IN ('open', 'in_progress')
                                AND p.deadline IS NOT NULL AND p.deadline < $5))"
    };
}

/// One page of petitions matching `q`, and their total count.
pub(crate) async fn query(pool: &PgPool, q: &LedgerQuery) -> Result<LedgerPage, sqlx::Error> {
    let unit_ids = q.unit_ids.clone();
    let mut tx = pool.begin().await?;
    let total: i64 = sqlx::query_scalar(concat!("SELECT COUNT(*)", ledger_filter!()))
        .bind(&unit_ids)
        .bind(q.owner_user_id)
        .bind(&q.status)
        .bind(&q.category)
        .bind(&q.overdue_on)
        .fetch_one(&mut *tx)
        .await?;
    let items = sqlx::query_as::<_, LedgerItem>(concat!(
        "SELECT p.id, p.document_id, un.code AS unit_code, un.name AS unit_name,
                us.username AS owner, p.applicant_name, p.applicant_phone, p.matter, p.category,
                p.level, p.responsible, p.deadline, p.status, p.created_at, p.event_count",
        ledger_filter!(),
        " ORDER BY p.created_at DESC, p.document_id, p.id LIMIT $6 OFFSET $7"
    ))
    .bind(&unit_ids)
    .bind(q.owner_user_id)
    .bind(&q.status)
    .bind(&q.category)
    .bind(&q.overdue_on)
    .bind(q.limit)
    .bind(q.offset)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(LedgerPage { items, total })
}
