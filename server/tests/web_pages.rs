//! The supervisors' web pages over a real socket: the session cookie and its
//! flags, CSRF tokens on forms, the session ending with its login, a cadre
//! seeing only their own items, and user data escaped in the HTML. Each case
//! runs on SQLite and, with `TEST_DATABASE_URL`, on PostgreSQL. The pages in
//! a real browser: `tests/tests/web_pages.rs` (end-to-end suite).

use std::net::SocketAddr;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use server::config::Config;
use server::store::Store;
use sync_core::{DiaryDocument, Edit};
use test_support::{Device, EDIT_TIME};

/// A running server on `store`, seeded with the demo organisation.
struct Running {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::ServeError>>>,
    _dir: tempfile::TempDir,
}

/// A browser's state: its cookies and the page's form token.
#[derive(Debug, Clone, Default)]
struct Browser {
    session: Option<String>,
    csrf: String,
}

/// An answer: status, `Set-Cookie` values, `Location`, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    cookies: Vec<String>,
    location: Option<String>,
    body: String,
}

fn form_body(fields: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the hidden `csrf` input of a page.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        c.split(';')
            .next()
            .and_then(|kv| kv.trim().strip_prefix(&format!("{name}=")))
            .map(str::to_owned)
    })
}

impl Running {
    async fn start(store: Arc<dyn Store>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::for_tests(dir.path(), &[7; 32]);
        server::seed_demo(store.as_ref(), "demo-pass")
            .await
            .expect("seed");
        server::demo::seed_demo_records(store.as_ref())
            .await
            .expect("seed records");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve_with_store(
            config,
            store.clone(),
            listener,
            async {
                let _ = stopped.await;
            },
        ));
        Running {
            addr,
            store,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("join").expect("serve");
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let cookies = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok().map(str::to_owned));
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            cookies,
            location,
            body,
        }
    }

    /// `GET path` with the browser's cookie (and extra headers).
    async fn page(&self, browser: &Browser, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Self::client().get(format!("http://{}{path}", self.addr));
        if let Some(s) = &browser.session {
            request = request.header(COOKIE, format!("vd_session={s}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::answer(request.send().await.expect("request")).await
    }

    /// `POST path` as a form, with `cookie` as the Cookie header.
    async fn submit(&self, cookie: Option<String>, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut request = Self::client()
            .post(format!("http://{}{path}", self.addr))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form_body(fields));
        if let Some(c) = cookie {
            request = request.header(COOKIE, c);
        }
        Self::answer(request.send().await.expect("request")).await
    }

    /// `POST path` as a form from the browser's session.
    async fn post(&self, browser: &Browser, path: &str, fields: &[(&str, &str)]) -> Answer {
        let cookie = browser.session.as_ref().map(|s| format!("vd_session={s}"));
        self.submit(cookie, path, fields).await
    }

    /// Logs in through the login form; the browser is on the ledger page.
    async fn login(&self, username: &str, password: &str) -> (Browser, Answer) {
        let form = self.page(&Browser::default(), "/login", &[]).await;
        assert_eq!(form.status, 200, "{}", form.body);
        let nonce = cookie_value(&form.cookies, "vd_login").expect("login nonce cookie");
        let token = csrf_of(&form.body);
        let answer = self
            .submit(
                Some(format!("vd_login={nonce}")),
                "/login",
                &[
                    ("username", username),
                    ("password", password),
                    ("csrf", &token),
                    ("next", "/ledger"),
                ],
            )
            .await;
        let mut browser = Browser {
            session: cookie_value(&answer.cookies, "vd_session"),
            csrf: String::new(),
        };
        if browser.session.is_some() {
            let ledger = self.page(&browser, "/ledger", &[]).await;
            assert_eq!(ledger.status, 200, "{}", ledger.body);
            browser.csrf = csrf_of(&ledger.body);
        }
        (browser, answer)
    }

    async fn logged_in(&self, username: &str) -> Browser {
        let (browser, answer) = self.login(username, "demo-pass").await;
        assert_eq!(answer.status, 303, "{}", answer.body);
        assert!(browser.session.is_some(), "{:?}", answer.cookies);
        browser
    }

    async fn token(&self, username: &str) -> String {
        test_support::login(
            &format!("http://{}", self.addr),
            username,
            "demo-pass",
            "api",
        )
        .await
    }

    async fn api_get(&self, token: &str, path: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The first petition of the ledger `user` sees with `query`.
    async fn first_petition(&self, user: &str, query: &str) -> Value {
        let token = self.token(user).await;
        let (status, body) = self
            .api_get(&token, &format!("/api/v1/ledger?{query}"))
            .await;
        assert_eq!(status, 200, "{body}");
        body["items"][0].clone()
    }
}

fn petition_path(item: &Value) -> String {
    format!(
        "/petitions/{}?document_id={}",
        item["id"].as_str().expect("id"),
        item["document_id"].as_str().expect("document id")
    )
}

/// A `POST` form without the token, with a wrong one, or with another
/// session's, is refused with a Chinese 403 page and changes nothing; with
/// its own token it goes through. The login form has its token too.
async fn forms_need_their_csrf_token(store: Arc<dyn Store>) {
    let running = Running::start(store).await;
    let sup = running.logged_in("sup-town1").await;
    let other = running.logged_in("sup-town1").await;
    assert_eq!(sup.csrf.len(), 64, "a token on the page");
    assert_ne!(sup.csrf, other.csrf, "tokens differ per session");
    let item = running.first_petition("sup-town1", "per_page=1").await;
    let id = item["id"].as_str().expect("id");
    let document = item["document_id"].as_str().expect("document id");
    let path = format!("/petitions/{id}/supervise");
    let note = "请本周内入户核实并反馈（网页测试）。";
    let bad_tokens = [
        None,
        Some("00".repeat(32)),
        Some("not hex".to_owned()),
        Some(other.csrf.clone()),
    ];
    for token in &bad_tokens {
        let mut fields = vec![("document_id", document), ("note", note)];
        if let Some(t) = token {
            fields.push(("csrf", t.as_str()));
        }
        let answer = running.post(&sup, &path, &fields).await;
        assert_eq!(answer.status, 403, "token {token:?}: {}", answer.body);
        assert!(answer.body.contains("表单已失效"), "{}", answer.body);
        assert!(answer.body.starts_with("<!DOCTYPE html>"), "an HTML page");
    }
    let detail = running.page(&sup, &petition_path(&item), &[]).await;
    assert!(!detail.body.contains(note), "nothing was written");

    let answer = running
        .post(
            &sup,
            &path,
            &[
                ("document_id", document),
                ("note", note),
                ("csrf", &sup.csrf),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let back = answer.location.expect("back to the petition");
    assert!(back.ends_with("&done=supervise"), "{back}");
    let detail = running.page(&sup, &back, &[]).await;
    assert!(detail.body.contains(note), "the note is in the history");
    assert!(detail.body.contains("督办意见已记录"));

    // Every table's export buttons work from the session (here: devices).
    let csv = running.page(&sup, "/devices/export.csv", &[]).await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert!(
        csv.body
            .starts_with("\u{FEFF}干部,用户名,单位,设备,最近同步"),
        "{}",
        csv.body
    );
    assert_eq!(
        csv.body.lines().count(),
        1 + 6,
        "town 1's six cadres, none synced"
    );

    // The login form: without the nonce cookie, or with a wrong token.
    let form = running.page(&Browser::default(), "/login", &[]).await;
    let token = csrf_of(&form.body);
    let fields = [
        ("username", "sup-town1"),
        ("password", "demo-pass"),
        ("csrf", token.as_str()),
    ];
    let answer = running.submit(None, "/login", &fields).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(cookie_value(&answer.cookies, "vd_session").is_none());
    let answer = running
        .submit(Some("vd_login=00ff".to_owned()), "/login", &fields)
        .await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    running.stop().await;
}

/// The session cookie is HttpOnly, SameSite=Strict, Path=/; Secure only
/// when a TLS front says so. A wrong password is a Chinese message and no
/// cookie.
async fn the_session_cookie_has_its_flags(store: Arc<dyn Store>) {
    let running = Running::start(store).await;
    let (_, answer) = running.login("sup-town1", "demo-pass").await;
    let cookie = answer
        .cookies
        .iter()
        .find(|c| c.starts_with("vd_session="))
        .expect("session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    assert!(
        !cookie.contains("Max-Age"),
        "a browser-session cookie: {cookie}"
    );
    assert_eq!(answer.location.as_deref(), Some("/ledger"));

    let form = running
        .page(
            &Browser::default(),
            "/login",
            &[("x-forwarded-proto", "https")],
        )
        .await;
    let nonce_cookie = form
        .cookies
        .iter()
        .find(|c| c.starts_with("vd_login="))
        .expect("nonce cookie");
    assert!(nonce_cookie.contains("Secure"), "{nonce_cookie}");
    let nonce = cookie_value(&form.cookies, "vd_login").expect("nonce");
    let answer = Running::answer(
        Running::client()
            .post(format!("http://{}/login", running.addr))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, format!("vd_login={nonce}"))
            .header("x-forwarded-proto", "https")
            .body(form_body(&[
                ("username", "sup-town1"),
                ("password", "demo-pass"),
                ("csrf", &csrf_of(&form.body)),
            ]))
            .send()
            .await
            .expect("request"),
    )
    .await;
    let cookie = answer
        .cookies
        .iter()
        .find(|c| c.starts_with("vd_session="))
        .expect("session cookie");
    assert!(cookie.contains("Secure"), "behind TLS: {cookie}");

    let (browser, answer) = running.login("sup-town1", "wrong-password").await;
    assert_eq!(answer.status, 401);
    assert!(browser.session.is_none());
    assert!(answer.body.contains("用户名或密码错误"), "{}", answer.body);
    running.stop().await;
}

/// Whether `browser`'s session still opens the ledger.
async fn still_in(running: &Running, browser: &Browser) -> bool {
    let answer = running.page(browser, "/ledger", &[]).await;
    match answer.status {
        200 => true,
        303 => {
            assert!(
                answer
                    .location
                    .as_deref()
                    .is_some_and(|l| l.starts_with("/login")),
                "{:?}",
                answer.location
            );
            false
        }
        other => panic!("unexpected {other}: {}", answer.body),
    }
}

/// The session ends on logout, on a password change made elsewhere, on a
/// disabled account, and when its token is used as a refresh token (a
/// rotated token is no longer the session).
async fn the_session_ends_with_its_login(store: Arc<dyn Store>) {
    let running = Running::start(store).await;

    let browser = running.logged_in("sup-town1").await;
    assert!(still_in(&running, &browser).await);
    let answer = running
        .post(&browser, "/logout", &[("csrf", &browser.csrf)])
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert!(
        answer
            .cookies
            .iter()
            .any(|c| c.starts_with("vd_session=;") && c.contains("Max-Age=0"))
    );
    assert!(!still_in(&running, &browser).await, "logged out");
    let answer = running
        .post(&browser, "/logout", &[("csrf", &browser.csrf)])
        .await;
    assert_eq!(answer.status, 401, "a POST without a session is a page");
    assert!(answer.body.contains("登录已失效"), "{}", answer.body);

    // A password change through the API revokes every other login.
    let browser = running.logged_in("cadre01").await;
    let token = running.token("cadre01").await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/me/password", running.addr))
        .bearer_auth(&token)
        .json(&json!({"current_password": "demo-pass", "new_password": "柳树村的新口令-2026"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 204);
    assert!(!still_in(&running, &browser).await, "password changed");

    // A disabled account.
    let browser = running.logged_in("cadre02").await;
    let user = running
        .store
        .get_user_by_username("cadre02")
        .await
        .expect("store")
        .expect("cadre02");
    running
        .store
        .set_user_disabled(user.id, true)
        .await
        .expect("disable");
    assert!(!still_in(&running, &browser).await, "disabled");

    // The cookie's token presented to the refresh endpoint: rotated, so
    // the page session is over (whoever holds the new pair is not the page).
    let browser = running.logged_in("cadre03").await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/auth/refresh", running.addr))
        .json(&json!({"refresh_token": browser.session.clone().expect("cookie")}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
    assert!(!still_in(&running, &browser).await, "rotated");
    running.stop().await;
}

/// A cadre's ledger page holds their own items only, and another cadre's
/// petition page is a Chinese 404 that shows nothing of it.
async fn a_cadre_sees_only_their_own_items(store: Arc<dyn Store>) {
    let running = Running::start(store).await;
    let cadre = running.logged_in("cadre01").await;
    let page = running.page(&cadre, "/ledger?per_page=200", &[]).await;
    assert_eq!(page.status, 200);
    let token = running.token("cadre01").await;
    let (_, own) = running.api_get(&token, "/api/v1/ledger?per_page=200").await;
    let own_ids: Vec<&str> = own["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    let shown: Vec<&str> = page
        .body
        .split("href=\"/petitions/")
        .skip(1)
        .filter_map(|s| s.split('?').next())
        .collect();
    assert!(!shown.is_empty(), "cadre01 has petitions in the demo");
    for id in &shown {
        assert!(own_ids.contains(id), "{id} is not cadre01's");
    }
    assert!(!page.body.contains("name=\"cadre\""), "no cadre filter");

    let others = running.first_petition("cadre07", "per_page=1").await;
    let answer = running.page(&cadre, &petition_path(&others), &[]).await;
    assert_eq!(answer.status, 404);
    assert!(answer.body.contains("未找到"), "{}", answer.body);
    assert!(
        !answer
            .body
            .contains(others["matter"].as_str().expect("matter")),
        "nothing of it shows"
    );
    // Acting on it is refused the same way, and writes nothing.
    let answer = running
        .post(
            &cadre,
            &format!("/petitions/{}/progress", others["id"].as_str().expect("id")),
            &[
                ("csrf", &cadre.csrf),
                ("document_id", others["document_id"].as_str().expect("doc")),
                ("note", "不是我的"),
            ],
        )
        .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    // Their own statistics and lists open; another unit's do not.
    for page in ["/stats", "/lists", "/ledger/export.csv"] {
        let answer = running.page(&cadre, page, &[]).await;
        assert_eq!(answer.status, 200, "{page}: {}", answer.body);
    }
    let csv = running.page(&cadre, "/ledger/export.csv", &[]).await;
    assert_eq!(
        csv.body.lines().count(),
        own_ids.len() + 1,
        "the cadre's export holds their own rows"
    );
    let answer = running.page(&cadre, "/stats?unit=town2", &[]).await;
    assert_eq!(answer.status, 403, "{}", answer.body);
    assert!(answer.body.contains("无权操作"));
    running.stop().await;
}

/// Text a phone wrote (a petition's matter, the applicant's name) and a
/// supervisor's note are escaped on every page that shows them.
async fn pages_escape_user_data(store: Arc<dyn Store>) {
    let running = Running::start(store).await;
    let mut rng = StdRng::seed_from_u64(10);
    let token = running.token("cadre01").await;
    let mut phone = Device::connect(running.addr, &token, "phone").await;
    let (doc, visit) = phone.create_diary(&mut rng);
    let mut petition = sync_core::fixtures::petition(&mut rng, EDIT_TIME, Some(visit));
    petition.matter = "<script>alert('台账')</script>路灯不亮".to_owned();
    petition.applicant.name = "<img src=x onerror=alert(1)>".to_owned();
    let am = phone.docs.remove(&doc).expect("document");
    let mut diary = DiaryDocument::from_automerge(am).expect("diary");
    let id = diary
        .add_petition(&Edit::new("cadre01", EDIT_TIME), &petition)
        .expect("petition");
    phone.docs.insert(doc, diary.into_automerge());
    phone.sync().await;

    let sup = running.logged_in("sup-town1").await;
    let path = format!("/petitions/{id}?document_id={doc}");
    let answer = running
        .post(
            &sup,
            &format!("/petitions/{id}/supervise"),
            &[
                ("csrf", &sup.csrf),
                ("document_id", &doc.to_string()),
                ("note", "<b onmouseover=alert(2)>督办</b>"),
            ],
        )
        .await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let pages = [
        path.clone(),
        "/ledger?q=%E8%B7%AF%E7%81%AF".to_owned(),
        format!("/lists?month={}", &chrono::Utc::now().format("%Y-%m")),
    ];
    for page in &pages {
        let answer = running.page(&sup, page, &[]).await;
        assert_eq!(answer.status, 200, "{page}: {}", answer.body);
        let body = &answer.body;
        assert!(!body.contains("<script"), "{page}: raw script");
        assert!(!body.contains("<img"), "{page}: raw img");
        assert!(!body.contains("<b "), "{page}: raw b");
        if page.starts_with("/petitions") || page.starts_with("/ledger") {
            assert!(
                body.contains("&lt;script&gt;alert(&#39;台账&#39;)&lt;/script&gt;路灯不亮")
                    || body.contains("&lt;script&gt;alert('台账')&lt;/script&gt;路灯不亮"),
                "{page}: the matter shown as text"
            );
            assert!(
                body.contains("&lt;img src=x onerror=alert(1)&gt;"),
                "{page}"
            );
        }
    }
    let detail = running.page(&sup, &path, &[]).await;
    assert!(
        detail
            .body
            .contains("&lt;b onmouseover=alert(2)&gt;督办&lt;/b&gt;")
    );
    let csp = Running::client()
        .get(format!("http://{}{path}", running.addr))
        .header(
            COOKIE,
            format!("vd_session={}", sup.session.clone().expect("s")),
        )
        .send()
        .await
        .expect("request");
    let policy = csp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        policy.contains("default-src 'none'"),
        "no scripts: {policy}"
    );
    phone.close().await;
    running.stop().await;
}

/// Errors on the pages are Chinese HTML pages with the right status, never
/// JSON: a wrong method, a body that is not a form, a bad filter, a missing
/// petition. The API's own errors stay JSON.
async fn page_errors_are_chinese_pages(store: Arc<dyn Store>) {
    let running = Running::start(store).await;
    let sup = running.logged_in("sup-town1").await;
    let html = |a: &Answer| a.body.starts_with("<!DOCTYPE html>");

    let answer = running.page(&sup, "/logout", &[]).await;
    assert_eq!(answer.status, 405);
    assert!(
        html(&answer) && answer.body.contains("请求方式不正确"),
        "{}",
        answer.body
    );

    let answer = Running::answer(
        Running::client()
            .post(format!("http://{}/login", running.addr))
            .header(CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, 415);
    assert!(
        html(&answer) && answer.body.contains("输入有误"),
        "{}",
        answer.body
    );

    let answer = running.page(&sup, "/ledger?status=nonsense", &[]).await;
    assert_eq!(answer.status, 400);
    assert!(
        html(&answer) && answer.body.contains("输入有误"),
        "{}",
        answer.body
    );

    let answer = running
        .page(&sup, "/petitions/00000000-0000-0000-0000-000000000000", &[])
        .await;
    assert_eq!(answer.status, 404);
    assert!(
        html(&answer) && answer.body.contains("未找到"),
        "{}",
        answer.body
    );

    let answer = running.page(&sup, "/api/v1/nothing-here", &[]).await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.body.starts_with('{'),
        "the API answers JSON: {}",
        answer.body
    );
    running.stop().await;
}

test_support::backends!(
    page_errors_are_chinese_pages,
    forms_need_their_csrf_token,
    the_session_cookie_has_its_flags,
    the_session_ends_with_its_login,
    a_cadre_sees_only_their_own_items,
    pages_escape_user_data,
);
