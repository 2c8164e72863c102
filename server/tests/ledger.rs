//! The canonical ledger: demo documents fill it through `append_changes`,
//! `ledger rebuild` reproduces exactly those rows, and `GET /api/v1/ledger`
//! shows each caller what they may see. Store-level cases run on SQLite and,
//! with `TEST_DATABASE_URL`, on PostgreSQL.

use test_support::store::{self as common, named_id};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::Value;
use server::config::Config;
use server::demo::{DEMO_UNITS, DEMO_USERS, seed_demo_records};
use server::ledger::{LedgerItem, LedgerProjection, LedgerQuery};
use server::store::postgres::PostgresStore;
use server::store::sqlite::SqliteStore;
use server::store::{ConnectOptions, DocumentWrite, Store, StoredKind, Unit};
use sync_core::automerge::{AutoCommit, ROOT, transaction::Transactable};
use sync_core::records::petition::{Category, Level, PetitionStatus};
use test_support::Routed;

/// The demo organisation, with placeholder password hashes (fast).
async fn demo_org(store: &dyn Store) {
    let mut units: BTreeMap<&str, Unit> = BTreeMap::new();
    for &(code, _, kind, parent) in DEMO_UNITS {
        let parent = parent.and_then(|p| units.get(p)).cloned();
        let unit = common::unit(store, code, parent.as_ref(), kind).await;
        units.insert(code, unit);
    }
    for &(username, _, role, unit) in DEMO_USERS {
        common::user(store, username, role, &units[unit]).await;
    }
}

/// Every petition the ledger holds, in a stable order.
async fn all_petitions(store: &dyn Store) -> Vec<LedgerItem> {
    let mut page = store
        .query_ledger(&LedgerQuery {
            limit: 10_000,
            ..LedgerQuery::default()
        })
        .await
        .expect("query ledger");
    assert_eq!(page.total, i64::try_from(page.items.len()).expect("fits"));
    page.items
        .sort_by(|a, b| (&a.document_id, &a.id).cmp(&(&b.document_id, &b.id)));
    page.items
}

/// The China date of `days` ago.
fn china_date_days_ago(days: i64) -> chrono::NaiveDate {
    (Utc::now() + chrono::TimeDelta::hours(8) - chrono::TimeDelta::days(days)).date_naive()
}

/// The years of the demo's diaries: its records reach 300 days back, into
/// last year's diary when that is before 1 January (China time).
fn demo_diary_years() -> std::ops::RangeInclusive<i32> {
    use chrono::Datelike;
    china_date_days_ago(300).year()..=china_date_days_ago(0).year()
}

/// The documents the demo stores: its diaries and a contacts document per
/// cadre.
fn demo_documents() -> usize {
    12 * (demo_diary_years().count() + 1)
}

async fn seeded(store: &dyn Store) {
    demo_org(store).await;
    let summary = seed_demo_records(store).await.expect("seed records");
    assert_eq!(summary.cadres, 12);
    assert_eq!(summary.documents, demo_documents());
    assert_eq!(summary.visits, 300);
    assert_eq!(summary.petitions, 100);
    assert!((60..=96).contains(&summary.cards), "{summary:?}");
    let again = seed_demo_records(store).await.expect("seed again");
    assert_eq!(again.documents, 0, "idempotent");
}

async fn demo_records_fill_the_ledger(store: Arc<dyn Store>) {
    let s = store.as_ref();
    seeded(s).await;
    let items = all_petitions(s).await;
    assert_eq!(items.len(), 100);
    let statuses: BTreeSet<&str> = items.iter().map(|i| i.status.as_str()).collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["closed", "in_progress", "open", "resolved"])
    );
    let categories: BTreeSet<&str> = items.iter().map(|i| i.category.as_str()).collect();
    assert_eq!(categories.len(), 4);
    let today = sync_core::Timestamp(Utc::now().timestamp_millis())
        .china_date()
        .map(sync_core::timestamp::format_date)
        .expect("today");
    let overdue = s
        .query_ledger(&LedgerQuery {
            today,
            overdue_only: true,
            limit: 1000,
            ..LedgerQuery::default()
        })
        .await
        .expect("overdue");
    assert!(overdue.total >= 12, "overdue: {}", overdue.total);

    // Months of work, also for a demo started in January: the closed
    // items were raised about half a year ago.
    let oldest = items.iter().map(|i| i.created_at).min().expect("items");
    assert!(
        oldest < Utc::now() - chrono::TimeDelta::days(170),
        "oldest petition: {oldest}"
    );

    // Each cadre's demo documents sit at the ids their phones derive, so a
    // visit recorded offline on a phone lands in the demo diary.
    for cadre in ["cadre01", "cadre12"] {
        for year in demo_diary_years() {
            let diary = s
                .get_document_meta(&sync_core::document::diary_id(cadre, year))
                .await
                .expect("get");
            assert!(diary.is_some(), "{cadre}'s {year} diary");
        }
        let contacts = s
            .get_document_meta(&sync_core::document::contacts_id(cadre))
            .await
            .expect("get");
        assert!(contacts.is_some(), "{cadre}'s contacts");
    }
    // The filter and the column are one rule.
    assert!(overdue.items.iter().all(|i| i.overdue));
    assert!(
        overdue
            .items
            .iter()
            .all(|i| matches!(i.status.as_str(), "open" | "in_progress"))
    );
}

/// Empties the ledger rows of every document of `owner`, as if the ledger
/// had been damaged; returns those documents.
async fn wipe_ledger_rows(s: &dyn Store, owner: i64) -> Vec<server::store::DocumentRow> {
    let docs = s.list_documents_for_owner(owner).await.expect("documents");
    for meta in &docs {
        s.replace_ledger(&meta.id, &LedgerProjection::default(), meta.updated_at)
            .await
            .expect("wipe");
    }
    docs
}

async fn rebuild_reproduces_the_written_rows(store: Arc<dyn Store>) {
    let s = store.as_ref();
    seeded(s).await;

    // A document that is not ours: its chunk is stored, it has no rows.
    let cadre = s
        .get_user_by_username("cadre01")
        .await
        .expect("get")
        .expect("cadre01");
    let mut foreign = AutoCommit::new();
    foreign.put(ROOT, "hello", "world").expect("put");
    let foreign_doc = foreign.document().clone();
    s.append_changes(DocumentWrite {
        data: foreign.save(),
        ledger: Some(LedgerProjection::of_document_or_empty(
            &foreign_doc,
            &server::ledger::Attribution::default(),
        )),
        ..common::creation(named_id("foreign"), StoredKind::Unknown, cadre.id, None)
    })
    .await
    .expect("a foreign document is stored");

    let before = all_petitions(s).await;
    assert_eq!(before.len(), 100);

    // Lose some rows, as if the ledger had been damaged.
    let docs = wipe_ledger_rows(s, cadre.id).await;
    assert!(all_petitions(s).await.len() < 100);
    // A stale projection is refused.
    let stale = s
        .replace_ledger(
            &docs[0].id,
            &LedgerProjection::default(),
            docs[0].updated_at - chrono::Duration::seconds(1),
        )
        .await;
    assert!(matches!(stale, Err(server::StoreError::Conflict(_))));

    let mut seen = Vec::new();
    let summary = server::ledger::rebuild(s, |done, total| seen.push((done, total)))
        .await
        .expect("rebuild");
    // The demo's documents and the foreign one.
    let documents = demo_documents() + 1;
    assert_eq!(summary.documents, documents);
    assert_eq!(summary.unprojectable, 1);
    assert_eq!(seen.last(), Some(&(documents, documents)));
    assert_eq!(all_petitions(s).await, before);
}

/// Every row of every ledger table, as JSON text, in key order.
async fn dump(store: &SqliteStore) -> Vec<String> {
    let tables: &[(&str, &str)] = &[
        (
            "ledger_visits",
            "document_id, id, owner_user_id, unit_id, kind, at, place, subject_kind, subject_name, \
             tags, aid_money_fen, aid_goods, resolved_on_spot, petition_count, created_at, \
             created_by, deleted, household_key",
        ),
        (
            "ledger_petitions",
            "document_id, id, visit_id, owner_user_id, unit_id, applicant_name, applicant_phone, \
             applicant_address, matter, category, created_at, created_by, status, responsible, \
             level, deadline, feedback, satisfaction, resolved_at, closed_at, deleted, event_count, \
             resolved_on",
        ),
        (
            "ledger_petition_events",
            "document_id, petition_id, id, at, actor, event_type, note, detail",
        ),
        (
            "ledger_cards",
            "document_id, id, owner_user_id, unit_id, resident, phone, address, household, \
             handed_over_at, pairing_role, pairing_needy, follow_ups, created_at, created_by, deleted",
        ),
    ];
    let mut rows = Vec::new();
    for (table, cols) in tables {
        let sql = format!("SELECT json_array({cols}) FROM {table} ORDER BY {cols}");
        let mut part: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_all(store.pool())
            .await
            .expect("dump");
        rows.push(format!("{table}: {}", part.len()));
        rows.append(&mut part);
    }
    rows
}

#[tokio::test]
async fn rebuild_reproduces_every_table_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/test.db", dir.path().display());
    let store = SqliteStore::connect(&url, ConnectOptions::default())
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    seeded(&store).await;
    let before = dump(&store).await;
    assert!(before.len() > 24 + 300 + 100 + 60, "{}", before.len());
    for table in [
        "ledger_visits",
        "ledger_petitions",
        "ledger_petition_events",
        "ledger_cards",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE rowid % 3 = 0"
        )))
        .execute(store.pool())
        .await
        .expect("damage");
    }
    sqlx::query("UPDATE ledger_petitions SET status = 'open'")
        .execute(store.pool())
        .await
        .expect("damage");
    // As a database migrated from before household keys holds them.
    sqlx::query("UPDATE ledger_visits SET household_key = ''")
        .execute(store.pool())
        .await
        .expect("damage");
    assert_ne!(dump(&store).await, before);
    server::ledger::rebuild(&store, |_, _| {})
        .await
        .expect("rebuild");
    assert_eq!(dump(&store).await, before);
}

// ----- GET /api/v1/ledger -----

/// The router over a SQLite store with [`seeded`] in it.
struct Api(Routed);

impl Api {
    async fn new() -> Api {
        let app = Routed::sqlite(&[9; 32], |_| {}).await;
        seeded(app.state.store.as_ref()).await;
        Api(app)
    }

    async fn get(&self, username: &str, query: &str) -> (StatusCode, Value) {
        let answer = self
            .0
            .get_as(username, &format!("/api/v1/ledger{query}"))
            .await;
        (
            answer.status,
            serde_json::from_slice(&answer.body).expect("json"),
        )
    }

    /// Every item of a listing, following the pages.
    async fn all(&self, username: &str, filter: &str) -> Vec<Value> {
        let mut items = Vec::new();
        for page in 1.. {
            let (status, body) = self
                .get(username, &format!("?per_page=200&page={page}{filter}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let batch = body["items"].as_array().expect("items").clone();
            if batch.is_empty() {
                assert_eq!(body["total"].as_u64(), Some(items.len() as u64));
                break;
            }
            items.extend(batch);
        }
        items
    }
}

fn strs<'a>(items: &'a [Value], key: &str) -> BTreeSet<&'a str> {
    items.iter().filter_map(|i| i[key].as_str()).collect()
}

#[tokio::test]
async fn ledger_api_visibility_filters_and_paging() {
    let api = Api::new().await;

    // A county supervisor sees everything; a town supervisor their town only.
    assert_eq!(api.all("sup-county", "").await.len(), 100);
    let town1 = api.all("sup-town1", "").await;
    assert!(!town1.is_empty() && town1.len() < 100);
    assert_eq!(
        strs(&town1, "unit_code"),
        BTreeSet::from(["village1", "village2"])
    );
    let town2 = api.all("sup-town2", "").await;
    assert_eq!(town1.len() + town2.len(), 100);
    assert_eq!(
        strs(&town2, "unit_code"),
        BTreeSet::from(["village3", "village4"])
    );

    // A cadre sees their own petitions only.
    let own = api.all("cadre01", "").await;
    assert!((8..=9).contains(&own.len()), "{}", own.len());
    assert_eq!(strs(&own, "owner"), BTreeSet::from(["cadre01"]));
    let (status, _) = api.get("cadre01", "?unit=village1").await;
    assert_eq!(status, StatusCode::OK);

    // Units outside the caller's subtree (or unknown) are forbidden.
    for (user, unit) in [
        ("sup-town1", "town2"),
        ("sup-town1", "village3"),
        ("sup-town1", "county"),
        ("cadre01", "village2"),
        ("sup-county", "nowhere"),
    ] {
        let (status, body) = api.get(user, &format!("?unit={unit}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{user} {unit}");
        assert_eq!(body["error"]["code"], "forbidden", "{body}");
    }
    let village1 = api.all("sup-county", "&unit=village1").await;
    assert_eq!(strs(&village1, "unit_code"), BTreeSet::from(["village1"]));

    // Filters.
    let closed = api.all("sup-county", "&status=closed").await;
    assert!(!closed.is_empty());
    assert_eq!(strs(&closed, "status"), BTreeSet::from(["closed"]));
    assert_eq!(strs(&closed, "status_zh"), BTreeSet::from(["已销号"]));
    let conduct = api.all("sup-county", "&category=cadre_conduct").await;
    assert!(!conduct.is_empty());
    assert_eq!(strs(&conduct, "category_zh"), BTreeSet::from(["干部作风"]));
    let overdue = api.all("sup-town2", "&overdue=true").await;
    assert!(!overdue.is_empty());
    assert!(overdue.iter().all(|i| i["overdue"] == true));
    let all = api.all("sup-county", "").await;
    let flagged = all.iter().filter(|i| i["overdue"] == true).count();
    assert_eq!(flagged, api.all("sup-county", "&overdue=true").await.len());

    // Paging: pages do not overlap and add up.
    let (_, p1) = api.get("sup-county", "?per_page=30&page=1").await;
    let (_, p4) = api.get("sup-county", "?per_page=30&page=4").await;
    assert_eq!(p1["total"], 100);
    assert_eq!(p1["items"].as_array().map(Vec::len), Some(30));
    assert_eq!(p4["items"].as_array().map(Vec::len), Some(10));
    assert_ne!(p1["items"][0]["id"], p4["items"][0]["id"]);
    let (_, default) = api.get("sup-county", "").await;
    assert_eq!(default["items"].as_array().map(Vec::len), Some(50));
    for bad in ["?per_page=201", "?page=0", "?status=done", "?category=x"] {
        let (status, _) = api.get("sup-county", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // A query string that does not parse says which parameter and why.
    let (status, body) = api.get("sup-county", "?page=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("page"), "{body}");

    // Phones are masked for everyone.
    let item = &all[0];
    let phone = item["applicant_phone"].as_str().expect("phone");
    assert_eq!(phone.len(), 11, "{phone}");
    assert_eq!(&phone[3..7], "****");
    assert!(item["event_count"].as_i64().expect("count") >= 1);
    assert!(item["unit_name"].is_string() && item["matter"].is_string());
}

// ----- the binary -----

#[tokio::test]
async fn ledger_rebuild_command_reports_progress() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["ledger", "rebuild", "--help"])
        .output()
        .expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--data-dir"));

    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::for_tests(dir.path(), &[9; 32]);
    let store = server::open_store(&config).await.expect("open store");
    seeded(store.as_ref()).await;
    let before = all_petitions(store.as_ref()).await;
    store.close().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["ledger", "rebuild", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("VISIT_DIARY_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = demo_documents();
    for line in [
        format!("rebuilt 10/{n} documents"),
        format!("rebuilt {n}/{n} documents"),
        format!("ledger rebuilt: {n} documents"),
    ] {
        assert!(stdout.contains(&line), "{line}: {stdout}");
    }

    let store = server::open_store(&config).await.expect("reopen");
    assert_eq!(all_petitions(store.as_ref()).await, before);
    store.close().await;
}

// ----- totals read from the per-unit counts -----

/// Every total a supervisor's filters by unit, status, category, level and
/// "unfinished" can ask for, each checked against the rows themselves: the
/// total is summed from `ledger_counts`, the expected number is counted
/// here from the listed petitions.
async fn assert_totals_match_the_rows(s: &dyn Store, when: &str) {
    let items = all_rows(s).await;
    let units = s.list_units().await.expect("units");
    let mut scopes: Vec<Option<Vec<&Unit>>> = vec![None, Some(units.iter().collect())];
    scopes.extend(units.iter().map(|u| Some(vec![u])));
    let statuses = std::iter::once(None).chain(PetitionStatus::ALL.iter().copied().map(Some));
    let categories: Vec<Option<Category>> = std::iter::once(None)
        .chain(Category::ALL.iter().copied().map(Some))
        .collect();
    let mut queries = Vec::new();
    for scope in &scopes {
        for status in statuses.clone() {
            for &category in &categories {
                queries.push((scope.clone(), status, category, None, false));
            }
        }
    }
    for &level in Level::ALL {
        for scope in [None, Some(vec![&units[1]])] {
            queries.push((scope.clone(), None, None, Some(level), false));
            queries.push((scope, None, Some(Category::CadreConduct), Some(level), true));
        }
    }
    for scope in &scopes {
        queries.push((scope.clone(), None, None, None, true));
    }
    for (scope, status, category, level, unfinished_only) in queries {
        let query = LedgerQuery {
            unit_ids: scope.as_ref().map(|us| us.iter().map(|u| u.id).collect()),
            status,
            category,
            level,
            unfinished_only,
            limit: 1,
            ..LedgerQuery::default()
        };
        assert!(query.total_from_counts());
        let expected = items
            .iter()
            .filter(|i| {
                in_scope(scope.as_deref(), i)
                    && status.is_none_or(|st| i.status == st)
                    && category.is_none_or(|c| i.category == c)
                    && level.is_none_or(|l| i.level == l)
                    && (!unfinished_only
                        || matches!(i.status, PetitionStatus::Open | PetitionStatus::InProgress))
            })
            .count();
        let total = s.query_ledger(&query).await.expect("query").total;
        assert_eq!(
            total,
            i64::try_from(expected).expect("fits"),
            "{when}: {query:?}"
        );
    }
}

/// Text searches (`q`), each checked against the rows themselves: the
/// total and the whole list. On PostgreSQL they go through the index of
/// two-character pieces and its counts (`ledger_text_search` migration):
/// two characters alone take their total from the counts, longer texts
/// and other filters count the candidates the index finds.
async fn assert_text_searches_match_the_rows(s: &dyn Store, when: &str) {
    let items = all_rows(s).await;
    let units = s.list_units().await.expect("units");
    // Words the rows have (the first two and three characters of each
    // matter, each applicant's name), and some they cannot have.
    let mut texts: BTreeSet<String> = items
        .iter()
        .flat_map(|i| {
            let matter: Vec<char> = i.matter.chars().collect();
            [
                matter.iter().take(2).collect::<String>(),
                matter.iter().skip(1).take(3).collect::<String>(),
                i.applicant_name.clone(),
            ]
        })
        .take(40)
        .collect();
    texts.extend(
        [
            "路灯",
            "灯",
            "王秀英",
            "英道",
            "100%",
            "0%_",
            "%",
            "_",
            "\\灯",
            "没有这个词",
            "ab",
        ]
        .map(str::to_owned),
    );
    let contains = |i: &LedgerItem, t: &str| {
        i.matter.contains(t)
            || i.applicant_name.contains(t)
            || i.responsible.contains(t)
            || i.applicant_address
                .as_deref()
                .unwrap_or_default()
                .contains(t)
            || i.feedback.as_deref().unwrap_or_default().contains(t)
    };
    let scopes: Vec<Option<Vec<&Unit>>> = vec![
        None,
        Some(units.iter().collect()),
        Some(vec![&units[1]]),
        Some(units.iter().skip(2).collect()),
    ];
    for text in &texts {
        for scope in &scopes {
            for status in [None, Some(PetitionStatus::Open)] {
                let query = LedgerQuery {
                    unit_ids: scope.as_ref().map(|us| us.iter().map(|u| u.id).collect()),
                    status,
                    text: Some(text.clone()),
                    limit: 10_000,
                    ..LedgerQuery::default()
                };
                assert_eq!(
                    query.total_from_bigram_counts(),
                    text.chars().count() == 2 && status.is_none()
                );
                let mut expected: Vec<&str> = items
                    .iter()
                    .filter(|i| {
                        in_scope(scope.as_deref(), i)
                            && status.is_none_or(|st| i.status == st)
                            && contains(i, text)
                    })
                    .map(|i| i.id.as_str())
                    .collect();
                expected.sort_unstable();
                let page = s.query_ledger(&query).await.expect("query");
                let mut listed: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
                listed.sort_unstable();
                assert_eq!(listed, expected, "{when}: listed for {query:?}");
                assert_eq!(
                    page.total,
                    i64::try_from(expected.len()).expect("fits"),
                    "{when}: total for {query:?}"
                );
            }
        }
    }
}

/// Every live petition, listed with a filter the counts do not answer (a
/// period reaching from long ago to far ahead), so the total is counted
/// from the rows.
/// Whether `item` belongs to one of the units of `scope` (every unit when
/// there is no scope).
fn in_scope(scope: Option<&[&Unit]>, item: &LedgerItem) -> bool {
    scope.is_none_or(|units| units.iter().any(|u| u.code == item.unit_code))
}

async fn all_rows(s: &dyn Store) -> Vec<LedgerItem> {
    let query = LedgerQuery {
        created_from: Some(Utc::now() - chrono::TimeDelta::days(100 * 365)),
        created_to: Some(Utc::now() + chrono::TimeDelta::days(100 * 365)),
        limit: 10_000,
        ..LedgerQuery::default()
    };
    assert!(!query.total_from_counts());
    let page = s.query_ledger(&query).await.expect("query ledger");
    assert_eq!(page.total, i64::try_from(page.items.len()).expect("fits"));
    page.items
}

async fn totals_from_the_counts_match_the_rows(store: Arc<dyn Store>) {
    let s = store.as_ref();
    seeded(s).await;
    assert_totals_match_the_rows(s, "seeded").await;
    assert_text_searches_match_the_rows(s, "seeded").await;

    // A cadre's rows wiped and rebuilt, then a document (rows only, no
    // automerge data) with live and deleted petitions of every status.
    let cadre = s
        .get_user_by_username("cadre01")
        .await
        .expect("get")
        .expect("cadre01");
    wipe_ledger_rows(s, cadre.id).await;
    assert_totals_match_the_rows(s, "wiped").await;
    assert_text_searches_match_the_rows(s, "wiped").await;
    server::ledger::rebuild(s, |_, _| {})
        .await
        .expect("rebuild");
    assert_totals_match_the_rows(s, "rebuilt").await;
    assert_text_searches_match_the_rows(s, "rebuilt").await;
    let rows = |deleted_every: usize| -> Vec<server::ledger::PetitionRow> {
        (0..24)
            .map(|n| server::ledger::PetitionRow {
                id: format!("p{n}"),
                status: PetitionStatus::ALL[n % PetitionStatus::ALL.len()],
                category: Category::ALL[n % Category::ALL.len()],
                level: Level::ALL[n % Level::ALL.len()],
                deleted: n % deleted_every == 0,
                // Text with the characters `LIKE` treats specially.
                matter: ["路灯不亮", "完成率100%", "编号a_b\\灯", "道路"][n % 4].to_owned(),
                ..petition_row("p")
            })
            .collect()
    };
    s.append_changes(DocumentWrite {
        ledger: Some(LedgerProjection {
            petitions: rows(5),
            ..LedgerProjection::default()
        }),
        ..common::creation(named_id("mixed"), StoredKind::Diary, cadre.id, Some(2026))
    })
    .await
    .expect("stored");
    assert_totals_match_the_rows(s, "mixed rows added").await;
    assert_text_searches_match_the_rows(s, "mixed rows added").await;
    // The same petitions again, other ones deleted.
    let meta = s
        .get_document_meta(&named_id("mixed"))
        .await
        .expect("get")
        .expect("mixed");
    s.replace_ledger(
        &named_id("mixed"),
        &LedgerProjection {
            petitions: rows(3),
            ..LedgerProjection::default()
        },
        meta.updated_at,
    )
    .await
    .expect("replace");
    assert_totals_match_the_rows(s, "mixed rows replaced").await;
    assert_text_searches_match_the_rows(s, "mixed rows replaced").await;

    let folded = s.fold_ledger_counts().await.expect("fold");
    match s.backend() {
        // Every write above added rows to fold.
        server::store::Backend::Postgres => assert!(folded > 0, "folded {folded}"),
        server::store::Backend::Sqlite => assert_eq!(folded, 0),
    }
    assert_totals_match_the_rows(s, "folded").await;
    assert_text_searches_match_the_rows(s, "folded").await;
    assert_eq!(s.fold_ledger_counts().await.expect("fold again"), 0);
    assert_totals_match_the_rows(s, "folded twice").await;
    assert_text_searches_match_the_rows(s, "folded twice").await;
}

/// A live petition row of cadre01's, `id` and otherwise plain.
fn petition_row(id: &str) -> server::ledger::PetitionRow {
    server::ledger::PetitionRow {
        id: id.to_owned(),
        visit_id: None,
        applicant_name: "王秀英".to_owned(),
        applicant_phone: Some("13812345678".to_owned()),
        applicant_address: None,
        matter: "道路".to_owned(),
        category: Category::PracticalDifficulty,
        created_at: Utc::now(),
        created_by: "cadre01".to_owned(),
        status: PetitionStatus::Open,
        responsible: "cadre01".to_owned(),
        level: Level::Village,
        deadline: None,
        feedback: None,
        satisfaction: None,
        resolved_at: None,
        resolved_on: None,
        closed_at: None,
        deleted: false,
        event_count: 0,
    }
}

/// The server only inserts and deletes ledger rows; a row changed in place
/// (by an operator, by a later migration) still keeps the counts (of
/// statuses and of text) right.
#[tokio::test]
async fn totals_from_the_counts_follow_rows_updated_in_place() {
    async fn run(s: &dyn Store, execute: impl AsyncFn(&str)) {
        seeded(s).await;
        execute("UPDATE ledger_petitions SET status = 'closed' WHERE status = 'open'").await;
        assert_totals_match_the_rows(s, "statuses changed").await;
        execute("UPDATE ledger_petitions SET deleted = TRUE WHERE category = 'cadre_conduct'")
            .await;
        assert_totals_match_the_rows(s, "some deleted").await;
        execute(
            "UPDATE ledger_petitions SET deleted = FALSE, level = 'county'
             WHERE category = 'cadre_conduct' AND status = 'closed'",
        )
        .await;
        assert_totals_match_the_rows(s, "some back, at another level").await;
        assert_text_searches_match_the_rows(s, "some back, at another level").await;
        execute(
            "UPDATE ledger_petitions SET matter = '路灯' || matter, feedback = NULL
             WHERE status = 'closed'",
        )
        .await;
        assert_text_searches_match_the_rows(s, "text changed").await;
    }

    // SQL run on a store's own pool (one type per backend).
    macro_rules! execute_on {
        ($store:ident) => {
            async |sql: &str| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute($store.pool())
                    .await
                    .expect("update");
            }
        };
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/test.db", dir.path().display());
    let sqlite = SqliteStore::connect(&url, ConnectOptions::default())
        .await
        .expect("open sqlite");
    sqlite.migrate().await.expect("migrate");
    run(&sqlite, execute_on!(sqlite)).await;
    sqlite.close().await;

    let Some(schema) = common::postgres_schema().await else {
        return;
    };
    let postgres = PostgresStore::connect(&schema.url, ConnectOptions::default())
        .await
        .expect("open postgres");
    postgres.migrate().await.expect("migrate");
    run(&postgres, execute_on!(postgres)).await;
    postgres.close().await;
    schema.cleanup().await;
}

// ----- hostile projections never lose the chunk -----

async fn duplicate_ids_do_not_fail_the_write(store: Arc<dyn Store>) {
    let s = store.as_ref();
    demo_org(s).await;
    let cadre = s
        .get_user_by_username("cadre01")
        .await
        .expect("get")
        .expect("cadre01");
    let row = petition_row("same");
    let ledger = LedgerProjection {
        petitions: vec![row.clone(), row],
        ..LedgerProjection::default()
    };
    s.append_changes(DocumentWrite {
        ledger: Some(ledger),
        ..common::creation(named_id("dup"), StoredKind::Diary, cadre.id, Some(2026))
    })
    .await
    .expect("stored despite duplicate ids");
    assert_eq!(all_petitions(s).await.len(), 1);
    assert_eq!(
        s.load_document(&named_id("dup"))
            .await
            .expect("load")
            .map(|d| d.chunks.len()),
        Some(1)
    );
}

test_support::backends!(
    demo_records_fill_the_ledger,
    rebuild_reproduces_the_written_rows,
    duplicate_ids_do_not_fail_the_write,
    totals_from_the_counts_match_the_rows,
);
