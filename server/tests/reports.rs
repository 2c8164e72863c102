//! What supervisors read beside the petition list, against a hand-counted
//! fixture on both backends: the ledger's filters, sorting and paging,
//! visits, service cards and devices; statistics (distinct households
//! against visits, quotas by post, 零战果, resolution on time, feedback and
//! satisfaction rates); the monthly three lists; masking of residents'
//! phone numbers for each role in JSON and in exports; the XLSX and CSV
//! exports read back; the audit log of exports.
//!
//! The fixture (March 2026, the organisation below) writes ledger rows
//! directly through `append_changes`, so every number asserted here is
//! counted by hand from the tables in `fixture`.

use std::collections::BTreeSet;
use std::io::Cursor;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use calamine::{Reader, Xlsx, open_workbook_from_rs};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use server::ledger::household::household_key;
use server::ledger::{CardRow, LedgerProjection, PetitionRow, VisitRow};
use server::store::{DocumentWrite, Role, Store, StoredKind, SyncStateWrite, User};
use sync_core::records::petition::{Level, PetitionStatus};
use sync_core::records::service_card::PairingRole;
use test_support::store::{self as common, named_id};
use test_support::{Answer, Routed};

/// The record id of petition `pN` (petition ids are UUIDs).
fn uuid_of(name: &str) -> String {
    let n: u32 = name[1..].parse().expect("pN");
    format!("00000000-0000-4000-8000-1000000000{n:02}")
}

/// `pN` for a petition's record id; other ids as they are.
fn short(id: &str) -> String {
    match id.strip_prefix("00000000-0000-4000-8000-1") {
        Some(rest) => format!("p{}", rest.parse::<u64>().expect("digits")),
        None => id.to_owned(),
    }
}

/// A China-time instant of 2026.
fn at(month: u32, day: u32, hour: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .and_then(|tz| tz.with_ymd_and_hms(2026, month, day, hour, 0, 0).single())
        .map(|t| t.with_timezone(&Utc))
        .expect("valid time")
}

fn visit(
    id: &str,
    when: DateTime<Utc>,
    kind: &str,
    subject_kind: &str,
    name: &str,
    address: Option<&str>,
) -> VisitRow {
    VisitRow {
        id: id.to_owned(),
        kind: kind.parse().expect("visit kind"),
        at: when,
        place: "柳树村".to_owned(),
        subject_kind: subject_kind.parse().expect("subject kind"),
        subject_name: name.to_owned(),
        household_key: household_key(subject_kind, name, address),
        tags: String::new(),
        aid_money_fen: 0,
        aid_goods: String::new(),
        resolved_on_spot: 0,
        petition_count: 0,
        answers: String::new(),
        created_at: when,
        created_by: "x".to_owned(),
        deleted: false,
    }
}

/// A visit to a household at an address.
fn household(id: &str, when: DateTime<Utc>, kind: &str, name: &str, address: &str) -> VisitRow {
    visit(id, when, kind, "household", name, Some(address))
}

/// An open petition of the fixture: a deadline, a resolution and feedback
/// come with [`Settled`].
fn petition(id: &str, created: DateTime<Utc>, category: &str, responsible: &str) -> PetitionRow {
    PetitionRow {
        id: uuid_of(id),
        visit_id: None,
        applicant_name: format!("申请人{id}"),
        applicant_phone: Some("13812345678".to_owned()),
        applicant_address: Some("柳树村3号".to_owned()),
        matter: format!("{id}：路灯坏了，联系电话13812345678"),
        category: category.parse().expect("category"),
        created_at: created,
        created_by: "x".to_owned(),
        status: PetitionStatus::Open,
        responsible: responsible.to_owned(),
        level: Level::Village,
        closed_at: None,
        deleted: false,
        event_count: 1,
        // What `Settled` sets besides the status, in its order.
        deadline: None,
        resolved_at: None,
        resolved_on: None,
        feedback: None,
        satisfaction: None,
    }
}

/// The later parts of a fixture petition.
trait Settled {
    fn due(self, deadline: &str) -> Self;
    /// Resolved (the status too) at `at`, on the day `on`.
    fn resolved(self, at: DateTime<Utc>, on: &str) -> Self;
    fn answered(self, feedback: &str, satisfaction: &str) -> Self;
    fn closed(self) -> Self;
}

impl Settled for PetitionRow {
    fn due(self, deadline: &str) -> Self {
        PetitionRow {
            deadline: Some(deadline.to_owned()),
            ..self
        }
    }

    fn resolved(self, at: DateTime<Utc>, on: &str) -> Self {
        PetitionRow {
            status: PetitionStatus::Resolved,
            resolved_at: Some(at),
            resolved_on: Some(on.to_owned()),
            ..self
        }
    }

    fn answered(self, feedback: &str, satisfaction: &str) -> Self {
        PetitionRow {
            feedback: Some(feedback.to_owned()),
            satisfaction: Some(satisfaction.parse().expect("satisfaction")),
            ..self
        }
    }

    fn closed(self) -> Self {
        PetitionRow {
            status: PetitionStatus::Closed,
            ..self
        }
    }
}

/// A diary of `owner`'s with these visits and petitions.
async fn diary(
    store: &dyn Store,
    owner: &User,
    name: &str,
    visits: Vec<VisitRow>,
    petitions: Vec<PetitionRow>,
) {
    let ledger = LedgerProjection {
        visits,
        petitions,
        ..LedgerProjection::default()
    };
    write(store, owner, name, StoredKind::Diary, ledger).await;
}

async fn write(
    store: &dyn Store,
    owner: &User,
    name: &str,
    kind: StoredKind,
    ledger: LedgerProjection,
) {
    store
        .append_changes(DocumentWrite {
            ledger: Some(ledger),
            ..common::creation(named_id(name), kind, owner.id, Some(2026))
        })
        .await
        .expect("store fixture document");
}

/// county ─ town1 ─ village1 (cadre_a: 村领导, cadre_b)
///        │       └ village2 (cadre_c: nothing at all)
///        └ town2 ─ village3 (cadre_d)
async fn fixture(store: &dyn Store) {
    let county = common::unit(store, "county", None, "county").await;
    let town1 = common::unit(store, "town1", Some(&county), "town").await;
    let town2 = common::unit(store, "town2", Some(&county), "town").await;
    let village1 = common::unit(store, "village1", Some(&town1), "village").await;
    let village2 = common::unit(store, "village2", Some(&town1), "village").await;
    let village3 = common::unit(store, "village3", Some(&town2), "village").await;
    common::user(store, "admin", Role::Admin, &county).await;
    common::user(store, "sup-town1", Role::Supervisor, &town1).await;
    common::user(store, "sup-town2", Role::Supervisor, &town2).await;
    let a = common::user(store, "cadre_a", Role::Cadre, &village1).await;
    let b = common::user(store, "cadre_b", Role::Cadre, &village1).await;
    common::user(store, "cadre_c", Role::Cadre, &village2).await;
    let d = common::user(store, "cadre_d", Role::Cadre, &village3).await;
    store
        .set_user_post(a.id, "village_head")
        .await
        .expect("post");

    // cadre_a: 4 visits in March to 2 households (王秀英 twice, spelled two
    // ways) and 1 enterprise; one in February.
    let mut aid = household("v3", at(3, 6, 10), "condolence_visit", "李四", "柳树村5号");
    aid.aid_money_fen = 50_000;
    aid.tags = "former_official,needy".to_owned();
    aid.answers = serde_json::json!([
        "老两口务农，儿子在外打工",
        "老伴住院，医药费负担重，电话13812345678",
        "",
        "",
        "",
        "想发展庭院养殖",
    ])
    .to_string();
    let a_visits = vec![
        household("v1", at(3, 2, 10), "home_visit", "王秀英", "柳树村3号"),
        household("v2", at(3, 5, 10), "follow_up", " 王秀英", "柳树村３号"),
        aid,
        household("v4", at(2, 20, 10), "home_visit", "赵六", "柳树村9号"),
        visit(
            "v5",
            at(3, 7, 10),
            "enterprise_visit",
            "enterprise",
            "绿源农业",
            None,
        ),
    ];
    let a_petitions = vec![
        // Resolved on time, feedback, satisfied.
        petition("p1", at(3, 2, 11), "practical_difficulty", "cadre_a")
            .due("2026-03-20")
            .resolved(at(3, 15, 9), "2026-03-15")
            .answered("已反馈", "satisfied"),
        // Closed, resolved late, feedback, dissatisfied.
        petition("p2", at(3, 3, 11), "cadre_conduct", "cadre_a")
            .due("2026-03-10")
            .resolved(at(3, 12, 9), "2026-03-12")
            .answered("已反馈", "dissatisfied")
            .closed(),
        // Open and overdue, reassigned to cadre_b.
        petition("p3", at(3, 4, 11), "work_shortcoming", "cadre_b").due("2026-03-10"),
        // In progress at town level, no deadline.
        PetitionRow {
            status: PetitionStatus::InProgress,
            level: Level::Town,
            ..petition("p4", at(3, 8, 11), "development_suggestion", "cadre_a")
        },
        // February, still open: not in March's figures, on March's task list.
        petition("p7", at(2, 10, 11), "practical_difficulty", "cadre_a"),
    ];
    diary(store, &a, "a-diary", a_visits, a_petitions).await;
    write(
        store,
        &a,
        "a-contacts",
        StoredKind::Contacts,
        LedgerProjection {
            cards: vec![CardRow {
                id: "k1".to_owned(),
                resident: "王秀英".to_owned(),
                phone: Some("13900001111".to_owned()),
                address: Some("柳树村3号".to_owned()),
                household: None,
                handed_over_at: at(3, 2, 10),
                pairing_role: Some(PairingRole::Resident),
                pairing_needy: Some(true),
                follow_ups: 0,
                created_at: at(3, 2, 10),
                created_by: "cadre_a".to_owned(),
                deleted: false,
            }],
            ..LedgerProjection::default()
        },
    )
    .await;
    // cadre_b: 1 visit to a household cadre_a also visited; resolved on
    // time without feedback.
    let b_visit = household("v6", at(3, 10, 10), "home_visit", "李四", "柳树村5号");
    let b_petition = petition("p5", at(3, 11, 11), "practical_difficulty", "cadre_b")
        .due("2026-03-25")
        .resolved(at(3, 20, 9), "2026-03-20");
    diary(store, &b, "b-diary", vec![b_visit], vec![b_petition]).await;
    let d_visit = household("v7", at(3, 3, 10), "home_visit", "钱七", "杏花村1号");
    let d_petition = petition("p6", at(3, 4, 11), "practical_difficulty", "cadre_d");
    diary(store, &d, "d-diary", vec![d_visit], vec![d_petition]).await;
    store
        .save_sync_state(SyncStateWrite {
            document_id: named_id("a-diary"),
            user_id: a.id,
            device_id: "phone-a".to_owned(),
            state: vec![1],
            at: at(3, 30, 20),
        })
        .await
        .expect("sync state");
}

/// The router over a store with [`fixture`] in it.
struct Api(Routed);

impl Api {
    async fn new(store: Arc<dyn Store>) -> Api {
        fixture(store.as_ref()).await;
        Api(Routed::on_store(store, &[9; 32]))
    }

    async fn raw(&self, username: &str, uri: &str) -> Answer {
        self.0.get_as(username, uri).await
    }

    async fn get(&self, username: &str, uri: &str) -> Value {
        let answer = self.raw(username, uri).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{uri}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()
    }

    async fn status(&self, username: &str, uri: &str) -> (StatusCode, Value) {
        let answer = self.raw(username, uri).await;
        (answer.status, answer.json())
    }
}

fn ids(items: &Value) -> BTreeSet<String> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|i| short(i["id"].as_str().expect("id")))
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn ledger_filters_sorting_paging_and_reach(store: Arc<dyn Store>) {
    let api = Api::new(store).await;
    let l = |q: &str| format!("/api/v1/ledger?per_page=200{q}");
    for (query, expected) in [
        ("", &["p1", "p2", "p3", "p4", "p5", "p7"][..]),
        ("&cadre=cadre_b", &["p5"]),
        ("&responsible=cadre_b", &["p3", "p5"]),
        ("&level=town", &["p4"]),
        (
            "&from=2026-03-01&to=2026-03-31",
            &["p1", "p2", "p3", "p4", "p5"],
        ),
        ("&from=2026-03-04&to=2026-03-04", &["p3"]),
        ("&q=p4：路灯", &["p4"]),
        ("&q=申请人p2", &["p2"]),
        // % is literal.
        ("&q=100%25", &[]),
        ("&overdue=true", &["p3"]),
    ] {
        assert_eq!(
            ids(&api.get("sup-town1", &l(query)).await["items"]),
            set(expected),
            "{query}"
        );
    }
    // Sorted by deadline: soonest first, none last.
    let by_deadline = api.get("sup-town1", &l("&sort=deadline")).await;
    let order: Vec<String> = by_deadline["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| short(i["id"].as_str().expect("id")))
        .collect();
    // Equal deadlines (p2, p3) and none (p4, p7): newest first.
    assert_eq!(order, ["p3", "p2", "p1", "p5", "p4", "p7"]);
    let oldest = api.get("sup-town1", &l("&sort=oldest")).await;
    assert_eq!(oldest["items"][0]["id"], uuid_of("p7"));
    // Paging.
    let p1 = api
        .get("sup-town1", "/api/v1/ledger?per_page=4&page=1")
        .await;
    let p2 = api
        .get("sup-town1", "/api/v1/ledger?per_page=4&page=2")
        .await;
    assert_eq!(
        (p1["total"].as_i64(), p1["items"].as_array().map(Vec::len)),
        (Some(6), Some(4))
    );
    assert_eq!(p2["items"].as_array().map(Vec::len), Some(2));
    assert!(ids(&p1["items"]).is_disjoint(&ids(&p2["items"])));

    // A sibling supervisor sees nothing of the other subtree.
    assert_eq!(
        ids(&api.get("sup-town2", &l("")).await["items"]),
        set(&["p6"])
    );
    for uri in [
        "/api/v1/ledger?cadre=cadre_a",
        "/api/v1/ledger?unit=town1",
        "/api/v1/visits?unit=village1",
        "/api/v1/cards?cadre=cadre_a",
        "/api/v1/devices?cadre=cadre_a",
        "/api/v1/stats?unit=town1",
        "/api/v1/lists?month=2026-03&unit=village1",
        "/api/v1/ledger/export.csv?unit=town1",
        "/api/v1/exports/stats.xlsx?unit=town1",
    ] {
        let (status, body) = api.status("sup-town2", uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let visits = api.get("sup-town2", "/api/v1/visits?per_page=200").await;
    assert_eq!(ids(&visits["items"]), set(&["v7"]));
    let devices = api.get("sup-town2", "/api/v1/devices").await;
    assert_eq!(devices["users"].as_array().map(Vec::len), Some(1));
    // A cadre cannot read another cadre.
    let (status, _) = api.status("cadre_b", "/api/v1/ledger?cadre=cadre_a").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A supervisor cannot find a masked phone by searching its digits; its
    // own cadre can.
    let (status, body) = api.status("sup-town1", &l("&q=1381234")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("q:")
    );
    let (status, _) = api.status("sup-town1", "/api/v1/cards?q=13900").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        ids(&api.get("cadre_a", &l("&q=5678")).await["items"]).len(),
        5
    );

    // Bad input is a 400 naming the parameter.
    for (uri, param) in [
        ("/api/v1/ledger?level=province", "level"),
        ("/api/v1/ledger?sort=random", "sort"),
        ("/api/v1/ledger?from=2026-13-01", "from"),
        ("/api/v1/ledger?from=2026-03-02&to=2026-03-01", "to"),
        ("/api/v1/visits?kind=party", "kind"),
        ("/api/v1/stats?from=yesterday", "from"),
        ("/api/v1/lists?month=2026-3", "month"),
        ("/api/v1/lists", "month"),
        ("/api/v1/audit?limit=0", "limit"),
    ] {
        let user = if param == "limit" {
            "admin"
        } else {
            "sup-town1"
        };
        let (status, body) = api.status(user, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(param), "{uri}: {body}");
    }

    // Visits, cards and devices.
    let village1 = api
        .get(
            "sup-town1",
            "/api/v1/visits?unit=village1&from=2026-03-01&to=2026-03-31",
        )
        .await;
    assert_eq!(village1["total"], 5);
    let follow = api.get("sup-town1", "/api/v1/visits?kind=follow_up").await;
    assert_eq!(ids(&follow["items"]), set(&["v2"]));
    assert_eq!(follow["items"][0]["kind_zh"], "回访");
    let aided = api
        .get("sup-town1", "/api/v1/visits?q=李四&cadre=cadre_a")
        .await;
    assert_eq!(aided["items"][0]["kind_zh"], "走访慰问");
    // The groups visited and the six questions, in the seeds' wording.
    assert_eq!(
        aided["items"][0]["tags_zh"],
        serde_json::json!(["离任村两委干部", "生活困难的党员群众"])
    );
    let six = &aided["items"][0]["six_questions"];
    assert_eq!(six.as_array().map(Vec::len), Some(6), "{six}");
    assert_eq!(six[0]["question"], "basic_situation");
    assert_eq!(six[0]["question_zh"], "一问基本情况");
    assert_eq!(six[0]["answer"], "老两口务农，儿子在外打工");
    assert_eq!(six[1]["question_zh"], "二问困难问题");
    // A supervisor sees a resident's phone in an answer masked.
    assert_eq!(six[1]["answer"], "老伴住院，医药费负担重，电话138****5678");
    assert_eq!(six[5]["question_zh"], "六问发展计策");
    assert_eq!(six[5]["answer"], "想发展庭院养殖");
    // A visit without answers has none.
    assert_eq!(follow["items"][0]["six_questions"], serde_json::json!([]));
    assert_eq!(aided["items"][0]["aid_money_yuan"], 500.0);
    let devices = api.get("sup-town1", "/api/v1/devices").await;
    let users = devices["users"].as_array().expect("users");
    assert_eq!(
        users
            .iter()
            .map(|u| u["username"].as_str().expect("name"))
            .collect::<Vec<_>>(),
        ["cadre_a", "cadre_b", "cadre_c"]
    );
    assert_eq!(users[0]["devices"][0]["device_id"], "phone-a");
    assert_eq!(users[0]["devices"][0]["documents"], 1);
    assert!(users[1]["devices"].as_array().is_some_and(Vec::is_empty));
    assert!(users[1]["last_sync"].is_null());
}

async fn statistics_against_hand_counts(store: Arc<dyn Store>) {
    let api = Api::new(store).await;
    let s = api
        .get("sup-town1", "/api/v1/stats?from=2026-03-01&to=2026-03-31")
        .await;
    assert_eq!(s["unit"]["code"], "town1");
    let t = &s["totals"];
    // 5 visits in March (4 by cadre_a, 1 by cadre_b), to 2 distinct
    // households across town1 (王秀英, 李四) and 1 enterprise.
    assert_eq!(
        (
            t["visits"].as_i64(),
            t["households"].as_i64(),
            t["enterprises"].as_i64()
        ),
        (Some(5), Some(2), Some(1))
    );
    assert_eq!(
        (
            t["follow_ups"].as_i64(),
            t["needy_visits"].as_i64(),
            t["aided_visits"].as_i64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(t["aid_money_yuan"], 500.0);
    // p1..p5: 2 unfinished, 2 resolved, 1 closed, 1 overdue; on time 2 of
    // 3; feedback 2 of 3 done (below 90 %); satisfied 1 of 2 rated.
    assert_eq!(
        (
            t["petitions"].as_i64(),
            t["unfinished"].as_i64(),
            t["resolved"].as_i64(),
            t["closed"].as_i64(),
            t["overdue"].as_i64()
        ),
        (Some(5), Some(2), Some(2), Some(1), Some(1))
    );
    assert_eq!(
        (t["resolved_on_time"].as_i64(), t["on_time_rate"].as_f64()),
        (Some(2), Some(66.7))
    );
    assert_eq!(
        t["feedback"],
        serde_json::json!({"rate": 66.7, "target": 90.0, "met": false})
    );
    assert_eq!(
        t["satisfaction"],
        serde_json::json!({"rate": 50.0, "target": 95.0, "met": false})
    );
    assert_eq!(
        (t["cadres"].as_i64(), t["cadres_meeting_quota"].as_i64()),
        (Some(3), Some(0))
    );

    let cadres = s["cadres"].as_array().expect("cadres");
    let names: Vec<&str> = cadres
        .iter()
        .map(|c| c["username"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["cadre_a", "cadre_b", "cadre_c"],
        "ranked by households"
    );
    let a = &cadres[0];
    assert_eq!(
        (
            a["rank"].as_i64(),
            a["visits"].as_i64(),
            a["households"].as_i64()
        ),
        (Some(1), Some(4), Some(2))
    );
    assert_eq!(
        (a["post"].as_str(), a["post_zh"].as_str()),
        (Some("village_head"), Some("村领导"))
    );
    assert_eq!(
        a["quota"],
        serde_json::json!({"measure": "visits", "measure_zh": "走访户次", "basis_zh": "每年", "target": 200, "count": 4, "met": false})
    );
    assert_eq!(
        (
            a["petitions"].as_i64(),
            a["feedback_rate"].as_f64(),
            a["satisfaction_rate"].as_f64()
        ),
        (Some(4), Some(100.0), Some(50.0))
    );
    let b = &cadres[1];
    assert_eq!(
        (
            b["visits"].as_i64(),
            b["households"].as_i64(),
            b["quota"]["target"].as_i64(),
            b["quota"]["measure"].as_str()
        ),
        (Some(1), Some(1), Some(120), Some("households"))
    );
    assert_eq!(
        (b["feedback_rate"].as_f64(), b["on_time_rate"].as_f64()),
        (Some(0.0), Some(100.0))
    );
    assert_eq!(cadres[2]["nothing_reported"], true);
    assert_eq!(
        s["nothing_reported"],
        serde_json::json!({"cadres": ["cadre_c"], "units": ["village2"]})
    );
    let units = s["units"].as_array().expect("units");
    assert_eq!(
        units
            .iter()
            .map(|u| (
                u["code"].as_str().expect("code"),
                u["rank"].as_i64().expect("rank")
            ))
            .collect::<Vec<_>>(),
        [("village1", 1), ("village2", 2)]
    );
    // Households are distinct within the unit: cadre_a's 2 and cadre_b's 1
    // share 李四.
    assert_eq!(
        (units[0]["visits"].as_i64(), units[0]["households"].as_i64()),
        (Some(5), Some(2))
    );
    let by_category: Vec<(&str, i64)> = s["by_category"]
        .as_array()
        .expect("categories")
        .iter()
        .map(|c| {
            (
                c["label_zh"].as_str().expect("zh"),
                c["petitions"].as_i64().expect("n"),
            )
        })
        .collect();
    assert_eq!(
        by_category,
        [
            ("干部作风", 1),
            ("实际困难", 2),
            ("工作不足", 1),
            ("发展建议", 1)
        ]
    );
    let town = s["by_level"]
        .as_array()
        .expect("levels")
        .iter()
        .find(|l| l["code"] == "town")
        .expect("town level")
        .clone();
    assert_eq!(town["petitions"], 1);

    // February has cadre_a's one visit and p7 only: everyone else 零战果.
    let feb = api
        .get("sup-town1", "/api/v1/stats?from=2026-02-01&to=2026-02-28")
        .await;
    assert_eq!(
        feb["nothing_reported"],
        serde_json::json!({"cadres": ["cadre_b", "cadre_c"], "units": ["village2"]})
    );
    assert_eq!(feb["totals"]["feedback"]["rate"], Value::Null);

    // The county sees both towns; a cadre sees themself.
    let county = api
        .get("admin", "/api/v1/stats?from=2026-03-01&to=2026-03-31")
        .await;
    assert_eq!(
        (
            county["totals"]["visits"].as_i64(),
            county["totals"]["households"].as_i64(),
            county["totals"]["petitions"].as_i64()
        ),
        (Some(6), Some(3), Some(6))
    );
    let own = api
        .get("cadre_b", "/api/v1/stats?from=2026-03-01&to=2026-03-31")
        .await;
    assert_eq!(own["cadres"].as_array().map(Vec::len), Some(1));
    assert_eq!(own["totals"]["petitions"], 1);
}

async fn three_lists_of_a_month(store: Arc<dyn Store>) {
    let api = Api::new(store).await;
    let lists = api.get("sup-town1", "/api/v1/lists?month=2026-03").await;
    assert_eq!(lists["problems"]["title_zh"], "问题清单");
    assert_eq!(
        ids(&lists["problems"]["items"]),
        set(&["p1", "p2", "p3", "p4", "p5"])
    );
    assert_eq!(ids(&lists["tasks"]["items"]), set(&["p3", "p4", "p7"]));
    assert_eq!(ids(&lists["results"]["items"]), set(&["p1", "p2", "p5"]));
    assert_eq!(lists["results"]["total"], 3);
    let summary: Vec<(&str, i64, i64)> = lists["summary"]
        .as_array()
        .expect("summary")
        .iter()
        .map(|c| {
            (
                c["label_zh"].as_str().expect("zh"),
                c["petitions"].as_i64().expect("n"),
                c["unfinished"].as_i64().expect("u"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("干部作风", 1, 0),
            ("实际困难", 2, 0),
            ("工作不足", 1, 1),
            ("发展建议", 1, 1)
        ]
    );
    let april = api
        .get("sup-town1", "/api/v1/lists?month=2026-04&unit=village1")
        .await;
    assert_eq!(april["problems"]["total"], 0);
    assert_eq!(ids(&april["tasks"]["items"]), set(&["p3", "p4", "p7"]));
}

fn phone_of(items: &Value, id: &str) -> String {
    let item = items
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["id"] == uuid_of(id))
        .unwrap_or_else(|| panic!("{id} in {items}"));
    item["applicant_phone"].as_str().expect("phone").to_owned()
}

async fn personal_data_is_masked_for_each_role(store: Arc<dyn Store>) {
    let api = Api::new(store).await;
    const WHOLE: &str = "13812345678";
    const MASKED: &str = "138****5678";
    // Supervisors and admins: masked, in the phone and in the matter.
    for user in ["sup-town1", "admin"] {
        let items = api.get(user, "/api/v1/ledger?per_page=200").await["items"].clone();
        assert_eq!(phone_of(&items, "p1"), MASKED, "{user}");
        let matter = items
            .as_array()
            .expect("items")
            .iter()
            .find(|i| i["id"] == uuid_of("p1"))
            .expect("p1")["matter"]
            .clone();
        assert_eq!(matter, "p1：路灯坏了，联系电话138****5678", "{user}");
        let detail = api
            .get(user, &format!("/api/v1/petitions/{}", uuid_of("p1")))
            .await;
        assert_eq!(detail["petition"]["applicant_phone"], MASKED);
        let cards = api.get(user, "/api/v1/cards").await;
        assert_eq!(cards["items"][0]["phone"], "139****1111", "{user}");
        let lists = api
            .get(user, "/api/v1/lists?month=2026-03&unit=town1")
            .await;
        assert_eq!(phone_of(&lists["problems"]["items"], "p1"), MASKED);
    }
    // The owner sees their own records whole.
    let own = api.get("cadre_a", "/api/v1/ledger?per_page=200").await["items"].clone();
    assert_eq!(phone_of(&own, "p1"), WHOLE);
    assert_eq!(
        api.get("cadre_a", "/api/v1/cards").await["items"][0]["phone"],
        "13900001111"
    );
    // The responsible person sees the item reassigned to them whole.
    let assigned = api.get("cadre_b", "/api/v1/me/assigned").await["items"].clone();
    assert_eq!(phone_of(&assigned, "p3"), WHOLE);
    assert_eq!(
        api.get("cadre_b", &format!("/api/v1/petitions/{}", uuid_of("p3")))
            .await["petition"]["applicant_phone"],
        WHOLE
    );

    // Exports follow the same rule.
    let csv = api.raw("sup-town1", "/api/v1/ledger/export.csv").await;
    let text = String::from_utf8(csv.body.clone()).expect("utf-8");
    assert!(!text.contains(WHOLE) && text.contains(MASKED), "{text}");
    let csv = api.raw("cadre_a", "/api/v1/ledger/export.csv").await;
    assert!(String::from_utf8(csv.body).expect("utf-8").contains(WHOLE));
    let xlsx = api
        .raw("admin", "/api/v1/exports/lists.xlsx?month=2026-03")
        .await;
    let sheet = read_sheet(&xlsx.body, "问题清单");
    assert!(sheet.iter().flatten().all(|cell| !cell.contains(WHOLE)));
    assert!(
        sheet.iter().skip(1).all(|row| row[4] == MASKED),
        "{sheet:?}"
    );
}

/// Every row of a sheet of an XLSX file, as text.
fn read_sheet(bytes: &[u8], name: &str) -> Vec<Vec<String>> {
    let mut workbook: Xlsx<_> =
        open_workbook_from_rs(Cursor::new(bytes.to_vec())).expect("an XLSX file");
    let range = workbook.worksheet_range(name).expect("the sheet");
    range
        .rows()
        .map(|row| row.iter().map(ToString::to_string).collect())
        .collect()
}

async fn exports_open_and_are_audited(store: Arc<dyn Store>) {
    let api = Api::new(store).await;

    // The visits, with the six questions' answers under the seeds' wording.
    let visits = api
        .raw(
            "sup-town1",
            "/api/v1/visits/export.xlsx?q=李四&cadre=cadre_a",
        )
        .await;
    assert_eq!(visits.status, StatusCode::OK);
    let rows = read_sheet(&visits.body, "走访记录");
    assert_eq!(
        rows[0][..10],
        [
            "序号",
            "单位",
            "走访人",
            "走访时间",
            "走访方式",
            "走访地点",
            "对象类别",
            "走访对象",
            "走访重点人群",
            "一问基本情况",
        ]
    );
    assert_eq!(
        rows[0][10..15],
        [
            "二问困难问题",
            "三问致富愿望",
            "四问干部评价",
            "五问工作建议",
            "六问发展计策"
        ]
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[1][3..11],
        [
            "2026-03-06 10:00",
            "走访慰问",
            "柳树村",
            "农户/居民户",
            "李四",
            "离任村两委干部、生活困难的党员群众",
            "老两口务农，儿子在外打工",
            "老伴住院，医药费负担重，电话138****5678",
        ]
    );
    assert_eq!(rows[1][14], "想发展庭院养殖");
    assert_eq!(rows[1][15], "500");
    let csv = api
        .raw(
            "sup-town1",
            "/api/v1/visits/export.csv?q=李四&cadre=cadre_a",
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let text = String::from_utf8(csv.body.to_vec()).expect("utf-8");
    assert!(text.starts_with("\u{FEFF}序号,"), "{text}");
    assert!(text.contains("一问基本情况,二问困难问题"), "{text}");
    assert!(
        text.contains("老伴住院，医药费负担重，电话138****5678"),
        "{text}"
    );

    let xlsx = api
        .raw(
            "sup-town1",
            "/api/v1/ledger/export.xlsx?from=2026-03-01&to=2026-03-31&sort=oldest",
        )
        .await;
    assert_eq!(xlsx.status, StatusCode::OK);
    assert_eq!(
        xlsx.headers[header::CONTENT_TYPE],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(
        xlsx.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .contains("ledger.xlsx")
    );
    let rows = read_sheet(&xlsx.body, "台账");
    assert_eq!(
        rows[0],
        [
            "序号",
            "单位",
            "登记人",
            "诉求人",
            "联系电话",
            "诉求事项",
            "分类",
            "层级",
            "责任人",
            "办结时限",
            "办理情况",
            "是否超期",
            "反馈情况",
            "满意度",
            "登记日期",
            "办结日期"
        ]
    );
    assert_eq!(rows.len(), 6, "header and p1..p5");
    assert_eq!(
        rows[1][..7],
        [
            "1",
            "village1 单位",
            "cadre_a 同志",
            "申请人p1",
            "138****5678",
            "p1：路灯坏了，联系电话138****5678",
            "实际困难"
        ]
    );
    assert_eq!(
        rows[1][9..],
        [
            "2026-03-20",
            "已办结",
            "否",
            "已反馈",
            "满意",
            "2026-03-02",
            "2026-03-15"
        ]
    );
    assert_eq!(
        (
            rows[3][3].as_str(),
            rows[3][10].as_str(),
            rows[3][11].as_str()
        ),
        ("申请人p3", "待办", "是")
    );

    // The header row is frozen and the columns sized.
    let mut zip = zip::ZipArchive::new(Cursor::new(xlsx.body.clone())).expect("a zip file");
    let mut sheet_xml = String::new();
    std::io::Read::read_to_string(
        &mut zip.by_name("xl/worksheets/sheet1.xml").expect("sheet1"),
        &mut sheet_xml,
    )
    .expect("sheet XML");
    assert!(
        sheet_xml.contains(r#"ySplit="1""#) && sheet_xml.contains(r#"state="frozen""#),
        "{sheet_xml}"
    );
    assert!(
        sheet_xml.contains("<cols>") && sheet_xml.contains(r#"customWidth="1""#),
        "{sheet_xml}"
    );

    let csv = api
        .raw("sup-town1", "/api/v1/ledger/export.csv?cadre=cadre_b")
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    assert_eq!(&csv.body[..3], b"\xEF\xBB\xBF", "UTF-8 byte-order mark");
    let text = String::from_utf8(csv.body[3..].to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(
        lines[0].starts_with("序号,单位,登记人,诉求人,联系电话,诉求事项"),
        "{text}"
    );
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[1].starts_with("1,village1 单位,cadre_b 同志,申请人p5,138****5678,"),
        "{text}"
    );

    let lists = api
        .raw("sup-town1", "/api/v1/exports/lists.xlsx?month=2026-03")
        .await;
    assert_eq!(read_sheet(&lists.body, "任务清单").len(), 4);
    assert_eq!(read_sheet(&lists.body, "效果清单").len(), 4);
    let summary = read_sheet(&lists.body, "分类汇总");
    assert_eq!(summary[0][..3], ["分类", "登记件数", "未办结"]);
    assert_eq!(summary.len(), 5);
    let lists_csv = api
        .raw("sup-town1", "/api/v1/exports/lists.csv?month=2026-03")
        .await;
    let text = String::from_utf8(lists_csv.body[3..].to_vec()).expect("utf-8");
    assert_eq!(text.matches("\r\n问题清单,").count(), 5, "{text}");
    assert_eq!(text.matches("\r\n效果清单,").count(), 3, "{text}");

    let stats = api
        .raw(
            "sup-town1",
            "/api/v1/exports/stats.xlsx?from=2026-03-01&to=2026-03-31",
        )
        .await;
    let cadres = read_sheet(&stats.body, "干部统计");
    assert_eq!(
        cadres[0][..7],
        [
            "排名",
            "单位",
            "姓名",
            "账号",
            "岗位",
            "走访户次",
            "走访户数"
        ]
    );
    assert_eq!(
        cadres[1][..7],
        [
            "1",
            "village1 单位",
            "cadre_a 同志",
            "cadre_a",
            "村领导",
            "4",
            "2"
        ]
    );
    assert_eq!(cadres[3][18], "是", "cadre_c reported nothing");
    let stats_csv = api
        .raw(
            "sup-town1",
            "/api/v1/exports/stats.csv?from=2026-03-01&to=2026-03-31",
        )
        .await;
    assert_eq!(&stats_csv.body[..3], b"\xEF\xBB\xBF");

    // Each export is in the audit log, which only an admin reads.
    let (status, _) = api.status("sup-town1", "/api/v1/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let audit = api.get("admin", "/api/v1/audit?action=export.ledger").await;
    let rows = audit["items"].as_array().expect("items");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["target"], "ledger.csv");
    assert_eq!(rows[0]["detail"], "cadre=cadre_b");
    assert_eq!(rows[1]["target"], "ledger.xlsx");
    let all = api.get("admin", "/api/v1/audit?limit=500").await;
    let actions: BTreeSet<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["action"].as_str().expect("action"))
        .collect();
    assert!(
        actions.is_superset(&BTreeSet::from([
            "export.ledger",
            "export.lists",
            "export.stats"
        ])),
        "{actions:?}"
    );
    let older = api
        .get("admin", &format!("/api/v1/audit?before={}", rows[0]["id"]))
        .await;
    assert!(
        older["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|r| r["id"].as_i64() < rows[0]["id"].as_i64())
    );
}

/// An export longer than one page (500 rows) holds every row once, in
/// order, and a CSV's rows match the XLSX's.
async fn long_exports_page_through_every_row(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let county = common::unit(s, "county", None, "county").await;
    common::user(s, "admin", Role::Admin, &county).await;
    let cadre = common::user(s, "cadre_a", Role::Cadre, &county).await;
    let petitions = (0..1_203)
        .map(|n| PetitionRow {
            id: format!("00000000-0000-4000-8000-{n:012}"),
            ..petition(
                "p1",
                at(3, 1, 0) + chrono::Duration::minutes(n),
                "practical_difficulty",
                "cadre_a",
            )
        })
        .collect();
    diary(s, &cadre, "long", Vec::new(), petitions).await;
    let api = Api(Routed::on_store(store.clone(), &[9; 32]));
    let xlsx = api
        .raw("admin", "/api/v1/ledger/export.xlsx?sort=oldest")
        .await;
    let rows = read_sheet(&xlsx.body, "台账");
    assert_eq!(rows.len(), 1 + 1_203);
    let numbers: Vec<String> = rows[1..].iter().map(|r| r[0].clone()).collect();
    let expected: Vec<String> = (1..=1_203).map(|n: i32| n.to_string()).collect();
    assert_eq!(numbers, expected);
    assert!(rows[1..].iter().all(|r| r[4] == "138****5678"));
    let csv = api
        .raw("admin", "/api/v1/ledger/export.csv?sort=oldest")
        .await;
    let text = String::from_utf8(csv.body[3..].to_vec()).expect("utf-8");
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1 + 1_203);
    assert!(lines[1_203].starts_with("1203,"), "{}", lines[1_203]);
}

test_support::backends!(
    ledger_filters_sorting_paging_and_reach,
    statistics_against_hand_counts,
    three_lists_of_a_month,
    personal_data_is_masked_for_each_role,
    exports_open_and_are_audited,
    long_exports_page_through_every_row,
);
