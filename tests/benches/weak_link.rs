//! Phones behind an emulated 2G link: what a sync costs in time and bytes.
//!
//! ```sh
//! cargo build --release -p server
//! cargo bench -p e2e-tests --bench weak_link
//! ```
//!
//! Needs root and iproute2 (`ip`, `tc`). The bench makes a network namespace
//! of its own (`vdweak-<pid>`) joined to this process's by a link shaped like
//! issue 8's target (250 kbit/s down, 50 kbit/s up, 300 ms delay, see
//! `--one-way-delay-ms`), runs the real server binary in it
//! (`ip netns exec … server serve --host 10.213.7.2`) and one phone here: a
//! sync-core `ClientConnection` over a real WebSocket to `10.213.7.2`
//! (test-support's `Device`) holding cadre01's realistic Chinese diary
//! (`sync_core::fixtures`). The link is `tc netem` on a veth pair where the
//! kernel has netem, and otherwise emulated over TUN devices by this process
//! with netem's model (see `weak_link/link.rs`). Nothing but the link's two
//! addresses is talked to; the namespace is deleted at the end, also when a
//! step fails, and a namespace left by a run that died is deleted first.
//!
//! Scenarios, in this order, on one phone:
//! 1. the first upload of a `--diary-visits` (500) diary with a petition in
//!    every fifth visit;
//! 2. `--rounds` (10) times: one visit recorded offline, then a reconnect
//!    with the kept sync state, timed from opening the socket (TCP, the
//!    upgrade carrying the token, `join`/`peer`) until the server has
//!    acknowledged it (both ends hold the same heads);
//! 3. a day of 10 visits, each synced on its own reconnect: total bytes;
//! 4. the next day's 10 visits synced at once in the evening;
//! 5. a reconnect with nothing new;
//! 6. the phone library (`mobile_ffi::DiaryClient`, as the apps use it) on
//!    the same link, logged in as the same cadre: its first `sync_now` of
//!    the cadre's documents, `--rounds` "+1 visit" syncs (a visit recorded,
//!    then `sync_now`: the token check, the socket, the handshake that lists
//!    the cadre's documents with their heads, the sync of those that
//!    differ), and one with nothing new.
//!
//! For context, it also times the HTTP requests a phone makes besides the
//! socket (a password login, `GET /api/v1/me/documents`) over the same link.
//!
//! Bytes are counted twice: the sync frames the `Device` sent and received
//! (CBOR messages, the handshake included, without WebSocket and TCP/IP
//! framing), and the IP traffic of the whole connection on the phones' end
//! of the link (`ip -s link`: TCP handshake, the HTTP upgrade, WebSocket
//! framing, acknowledgements and the close), cross-checked against the
//! emulator's own count when the link is emulated.
//!
//! It prints a Markdown table for `docs/BENCHMARKS.md` and the timeline of
//! one "+1 visit" sync, and exits non-zero when the link cannot be set up.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use e2e_tests::{DEMO_PASSWORD, Database, Device, Launch, ServerProcess, TokenIn, open_socket};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sync_core::automerge::{ActorId, Automerge};
use sync_core::protocol::DocSyncStatus;
use sync_core::{DiaryDocument, DocumentId, Edit, Timestamp, diary_id, fixtures};

#[path = "weak_link/link.rs"]
mod link;
use link::{Choice, Counters, Link, Shape};

/// The phone's cadre (a demo account) and the diary's year: the demo seeds
/// the diaries of its last 300 days (this year's, and last year's early in
/// the year), so the bench writes one of 2025, which the demo seeds no more
/// from 27 October 2026 on (a cadre may create any year from 2000).
const USER: &str = "cadre01";
const YEAR: i32 = 2025;
/// 2025-02-01 00:00 UTC: the fixture diary's first visit, three a day.
const DIARY_START: Timestamp = Timestamp(1_738_368_000_000);
/// 2025-10-01 00:00 UTC: the visits recorded offline, an hour apart.
const OFFLINE_START: Timestamp = Timestamp(1_759_276_800_000);
/// Targets of issue 8, item 7 ("Weak link").
const TARGET_ONE_VISIT: Duration = Duration::from_secs(2);
const TARGET_DAY_UP_BYTES: u64 = 10_000;
const TARGET_ANY_SYNC: Duration = Duration::from_secs(25);
/// How long the phone waits for a frame (the answer to a first upload
/// comes after the whole diary has crossed the uplink).
const FIRST_UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// Visits in "a day".
const DAY: usize = 10;

struct Args {
    shape: Shape,
    choice: Choice,
    rounds: usize,
    diary_visits: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: weak_link [--one-way-delay-ms MS (150)] [--down-kbit K (250)] [--up-kbit K (50)] \
         [--rounds N (10)] [--diary-visits V (500)] [--link auto|netem|emulated]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        shape: Shape {
            down_bps: 250_000,
            up_bps: 50_000,
            one_way_delay: Duration::from_millis(150),
        },
        choice: Choice::Auto,
        rounds: 10,
        diary_visits: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every bench binary.
        if flag == "--bench" {
            continue;
        }
        let Some(value) = it.next() else { usage() };
        let number = |v: &str| v.parse::<u64>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--one-way-delay-ms" => {
                args.shape.one_way_delay = Duration::from_millis(number(&value));
            }
            "--down-kbit" => args.shape.down_bps = number(&value) * 1000,
            "--up-kbit" => args.shape.up_bps = number(&value) * 1000,
            "--rounds" => args.rounds = number(&value) as usize,
            "--diary-visits" => args.diary_visits = number(&value) as usize,
            "--link" => {
                args.choice = match value.as_str() {
                    "auto" => Choice::Auto,
                    "netem" => Choice::Netem,
                    "emulated" => Choice::Emulated,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    if args.rounds == 0 || args.shape.down_bps == 0 || args.shape.up_bps == 0 {
        usage()
    }
    args
}

/// The phone: its token, its diary and the sync state it keeps.
struct Phone {
    token: String,
    id: DocumentId,
    doc: Automerge,
    state: Option<Vec<u8>>,
    rng: StdRng,
    /// Offline visits recorded so far.
    offline: i64,
}

impl Phone {
    /// Records `count` visits offline, one change each.
    fn record(&mut self, count: usize) {
        let mut diary =
            DiaryDocument::from_automerge(std::mem::take(&mut self.doc)).expect("a diary");
        for _ in 0..count {
            let at = Timestamp(OFFLINE_START.0 + self.offline * 3_600_000);
            self.offline += 1;
            let visit = fixtures::visit(&mut self.rng, at, USER);
            diary
                .add_visit(&Edit::new(USER, at), &visit)
                .expect("a fixture visit is valid");
        }
        self.doc = diary.into_automerge();
    }
}

/// cadre01's diary of `visits` visits (a petition in every fifth), as
/// `fixtures::diary` writes one, for [`YEAR`].
fn diary(rng: &mut StdRng, visits: usize) -> Automerge {
    let mut d = DiaryDocument::create_shared(USER, YEAR, ActorId::random()).expect("a diary");
    for i in 0..visits {
        let at = Timestamp(DIARY_START.0 + i as i64 * 8 * 3_600_000);
        let e = Edit::new(USER, at);
        let v = fixtures::visit(rng, at, USER);
        d.add_visit(&e, &v).expect("a fixture visit is valid");
        if i % 5 == 0 {
            d.add_petition(&e, &fixtures::petition(rng, at, Some(v.id)))
                .expect("a fixture petition is valid");
        }
    }
    d.into_automerge()
}

/// One frame (or the handshake) of a sync, as the phone saw it.
struct Step {
    at: Duration,
    what: String,
    up: usize,
    down: usize,
}

/// One connection: open, sync until acknowledged, close.
struct Sync {
    /// TCP connected and the upgrade (with the token) answered.
    upgraded: Duration,
    /// `join` sent and `peer` received.
    handshake: Duration,
    /// The server holds the phone's heads and the phone the server's.
    acknowledged: Duration,
    /// Sync frames (handshake included).
    frames_up: usize,
    frames_down: usize,
    /// IP bytes on the link for the whole connection (close included).
    link: Counters,
    /// The emulator's count for the same span, when emulated.
    emulated: Option<Counters>,
    steps: Vec<Step>,
}

/// Opens a socket, syncs the phone's diary until acknowledged, closes, and
/// lets the last packets cross the link.
async fn sync_once(link: &Link, addr: std::net::SocketAddr, phone: &mut Phone) -> Sync {
    let before = link.counters().expect("link counters");
    let emulated_before = link.emulator_counters();
    let t0 = Instant::now();
    let ws = open_socket(addr, Some(&phone.token), TokenIn::Header)
        .await
        .expect("upgrade over the link");
    let upgraded = t0.elapsed();
    let mut device = Device::on_socket(ws, &phone.token, "phone").await;
    let handshake = t0.elapsed();
    // A first upload at 50 kbit/s waits for the server's answer to its
    // document chunk for longer than a test on loopback would.
    device.frame_timeout = FIRST_UPLOAD_TIMEOUT;
    let mut steps = vec![Step {
        at: handshake,
        what: "join → / ← peer (handshake)".to_owned(),
        up: device.bytes_sent,
        down: device.bytes - device.bytes_sent,
    }];
    device.docs.insert(phone.id, std::mem::take(&mut phone.doc));
    match &phone.state {
        Some(state) => device.conn.add_document_with_state(phone.id, state),
        None => device.conn.add_document(phone.id),
    }
    // `Device::sync`, step by step, to see where the time goes.
    let mut frames = 0;
    loop {
        for m in device.conn.poll(&device.docs) {
            let sent = device.bytes_sent;
            device.send(&m).await;
            steps.push(Step {
                at: t0.elapsed(),
                what: format!("→ {}", m.summary()),
                up: device.bytes_sent - sent,
                down: 0,
            });
        }
        if device.conn.is_quiescent(&device.docs) {
            break;
        }
        frames += 1;
        assert!(
            frames < test_support::MAX_FRAMES_PER_SYNC,
            "sync did not settle; last frames:\n{}",
            device.recent_frames()
        );
        let (bytes, seen) = (device.bytes, device.received.len());
        device.receive().await;
        if device.received.len() > seen {
            steps.push(Step {
                at: t0.elapsed(),
                what: format!("← {}", device.received[seen].summary()),
                up: 0,
                down: device.bytes - bytes,
            });
        }
    }
    let acknowledged = t0.elapsed();
    let status = device.conn.status(&phone.id, &device.docs);
    assert_eq!(
        status,
        Some(DocSyncStatus::Synced),
        "the sync ended {status:?}"
    );
    phone.state = device.conn.sync_state(&phone.id);
    phone.doc = device.docs.remove(&phone.id).expect("the diary");
    let (frames_up, frames_down) = (device.bytes_sent, device.bytes - device.bytes_sent);
    device.close().await;
    settle(link).await;
    Sync {
        upgraded,
        handshake,
        acknowledged,
        frames_up,
        frames_down,
        link: link.counters().expect("link counters") - before,
        emulated: emulated_before
            .zip(link.emulator_counters())
            .map(|((b, _), (a, _))| a - b),
        steps,
    }
}

/// One `sync_now` of the phone library: its time, its report and the
/// link's bytes.
struct LibrarySync {
    took: Duration,
    report: mobile_ffi::SyncReport,
    link: Counters,
}

async fn library_sync(link: &Link, phone: &mobile_ffi::DiaryClient) -> LibrarySync {
    let before = link.counters().expect("link counters");
    let t = Instant::now();
    let report = phone
        .sync_now(FIRST_UPLOAD_TIMEOUT.as_millis() as u64)
        .await;
    let took = t.elapsed();
    assert!(report.error.is_none(), "sync_now failed: {report:?}");
    settle(link).await;
    LibrarySync {
        took,
        report,
        link: link.counters().expect("link counters") - before,
    }
}

/// A home visit as a cadre enters it on the phone: the six answers, notes
/// and a place in Chinese, about the size of the fixtures' visits.
fn library_visit(i: usize) -> mobile_ffi::records::visit::NewVisit {
    use mobile_ffi::records::visit::{NewVisit, SixAnswers, SubjectKind, VisitKind};
    NewVisit {
        kind: VisitKind::HomeVisit,
        at_ms: e2e_tests::now_ms(),
        place: format!("柳树村{}组", i % 7 + 1),
        subject_kind: SubjectKind::Household,
        subject_name: format!("王秀英{i}"),
        subject_address: Some("柳树村村委会东侧第三户".to_owned()),
        tags: vec!["低保户".to_owned()],
        participants: vec![],
        answers: SixAnswers {
            basic_situation: "家中四口人，两位老人常年在家，儿子在县城务工，孙子上小学。"
                .to_owned(),
            difficulties: "老人患有高血压，每月药费三百余元，去镇卫生院看病要走一个多小时。"
                .to_owned(),
            income_wishes: "想扩大家里的油茶种植，缺少启动资金和技术指导。".to_owned(),
            opinion_of_cadres: "村干部经常上门，办事比以前方便。".to_owned(),
            work_suggestions: "希望村里的路灯能修好，晚上出行安全一些。".to_owned(),
            development_ideas: "可以把几户油茶种植户联合起来，统一收购加工。".to_owned(),
        },
        notes: "已告知医保报销政策，下周联系镇卫生院安排上门体检。".to_owned(),
        latitude: None,
        longitude: None,
        aid_money_fen: 0,
        aid_goods: String::new(),
        resolved_on_spot: vec![],
    }
}

/// Waits until the packets of a closed connection (the last
/// acknowledgements, FIN) have crossed the link.
async fn settle(link: &Link) {
    tokio::time::sleep(link.shape.one_way_delay * 2 + Duration::from_millis(300)).await;
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Milliseconds, for figures near a target of whole seconds.
fn ms(d: Duration) -> String {
    format!("{} ms", n(d.as_millis() as u64))
}

fn n(v: impl Into<u64>) -> String {
    let s = v.into().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "no" }
}

/// Sums of several syncs.
fn totals(syncs: &[Sync]) -> (u64, u64, Counters) {
    let mut link = Counters::default();
    for s in syncs {
        link.up.bytes += s.link.up.bytes;
        link.up.packets += s.link.up.packets;
        link.down.bytes += s.link.down.bytes;
        link.down.packets += s.link.down.packets;
    }
    (
        syncs.iter().map(|s| s.frames_up as u64).sum(),
        syncs.iter().map(|s| s.frames_down as u64).sum(),
        link,
    )
}

/// "frames X / Y B; link X / Y B (packets)".
fn bytes(frames_up: u64, frames_down: u64, link: Counters) -> String {
    format!(
        "sync frames {} B up / {} B down; on the link {} B up / {} B down ({} / {} packets)",
        n(frames_up),
        n(frames_down),
        n(link.up.bytes),
        n(link.down.bytes),
        link.up.packets,
        link.down.packets
    )
}

/// An HTTP request over the link on a fresh connection: its time, the
/// link's bytes and the body.
async fn http(
    link: &Link,
    request: reqwest::RequestBuilder,
) -> (Duration, Counters, serde_json::Value) {
    let before = link.counters().expect("link counters");
    let t = Instant::now();
    let response = request.send().await.expect("request over the link");
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.json().await.expect("a JSON body");
    let took = t.elapsed();
    // The client (and its connection) goes with the request builder.
    settle(link).await;
    (took, link.counters().expect("link counters") - before, body)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    let link = match Link::up(args.shape, args.choice) {
        Ok(link) => link,
        Err(e) => {
            eprintln!(
                "weak_link: cannot set up the network namespace and its shaped link \
                 (needs root, iproute2 and, for --link netem, the kernel's netem): {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let shape = link.shape;
    eprintln!(
        "weak_link: namespace {}, link {:?}: {} kbit/s down, {} kbit/s up, {} ms each way \
         ({} ms round trip)",
        link.ns,
        link.kind,
        shape.down_bps / 1000,
        shape.up_bps / 1000,
        shape.one_way_delay.as_millis(),
        2 * shape.one_way_delay.as_millis()
    );
    let data_dir = tempfile::tempdir().expect("temporary data directory");
    // Dropped before `link`: the server stops before its namespace goes.
    let server = ServerProcess::start_launched(
        data_dir,
        Database::Sqlite,
        &[],
        Launch {
            wrapper: link.wrapper(),
            host: Some(link::SERVER_ADDR.to_owned()),
        },
    )
    .await;
    let addr = server.addr();
    eprintln!(
        "weak_link: server {} at {addr}",
        e2e_tests::server_binary().display()
    );

    // The phone logs in once (a password login over the link).
    let client = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    };
    let (login_time, login_link, tokens) = http(
        &link,
        client()
            .post(format!("{}/api/v1/auth/login", server.base_url()))
            .json(&serde_json::json!({
                "username": USER, "password": DEMO_PASSWORD, "device_id": "phone",
            })),
    )
    .await;
    let token = tokens["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let mut documents = Vec::new();
    for _ in 0..3 {
        documents.push(
            http(
                &link,
                client()
                    .get(format!("{}/api/v1/me/documents", server.base_url()))
                    .bearer_auth(&token),
            )
            .await,
        );
    }
    documents.sort_by_key(|(t, _, _)| *t);
    let (documents_time, documents_link, _) = documents[documents.len() / 2].clone();

    let mut rng = StdRng::seed_from_u64(2026);
    let doc = diary(&mut rng, args.diary_visits);
    let saved = doc.save().len() as u64;
    let mut phone = Phone {
        token,
        id: diary_id(USER, YEAR),
        doc,
        state: None,
        rng,
        offline: 0,
    };

    eprintln!("weak_link: first upload of {} visits", args.diary_visits);
    let upload = sync_once(&link, addr, &mut phone).await;

    eprintln!("weak_link: {} × +1 visit", args.rounds);
    let mut one = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        phone.record(1);
        one.push(sync_once(&link, addr, &mut phone).await);
    }

    eprintln!("weak_link: a day of {DAY} visits, one sync each");
    let mut day = Vec::with_capacity(DAY);
    for _ in 0..DAY {
        phone.record(1);
        day.push(sync_once(&link, addr, &mut phone).await);
    }

    eprintln!("weak_link: {DAY} visits in one sync");
    phone.record(DAY);
    let evening = sync_once(&link, addr, &mut phone).await;

    let idle = sync_once(&link, addr, &mut phone).await;

    eprintln!(
        "weak_link: the phone library: login, first sync, {} × +1 visit, nothing new",
        args.rounds
    );
    let library_dir = tempfile::tempdir().expect("the phone library's directory");
    let library = mobile_ffi::DiaryClient::open(mobile_ffi::ClientConfig {
        data_dir: library_dir.path().to_string_lossy().into_owned(),
        server_url: server.base_url(),
        device_id: "library-phone".to_owned(),
        at_rest_key: None,
    })
    .expect("open the phone library");
    library
        .login(USER.to_owned(), DEMO_PASSWORD.to_owned())
        .await
        .expect("the phone library's login over the link");
    let library_first = library_sync(&link, &library).await;
    let mut library_one = Vec::with_capacity(args.rounds);
    for i in 0..args.rounds {
        library.add_visit(library_visit(i)).expect("record a visit");
        library_one.push(library_sync(&link, &library).await);
    }
    let library_idle = library_sync(&link, &library).await;

    // The report.
    let mut one_times: Vec<Duration> = one.iter().map(|s| s.acknowledged).collect();
    one_times.sort();
    let p50 = one_times[one_times.len() / 2];
    let max = *one_times.last().expect("rounds");
    let (one_up, one_down, one_link) = totals(&one);
    let rounds = args.rounds as u64;
    let mean = |c: Counters| Counters {
        up: link::Count {
            bytes: c.up.bytes / rounds,
            packets: c.up.packets / rounds,
        },
        down: link::Count {
            bytes: c.down.bytes / rounds,
            packets: c.down.packets / rounds,
        },
    };
    let (day_up, day_down, day_link) = totals(&day);
    let longest = one
        .iter()
        .chain(&day)
        .chain([&evening, &idle])
        .map(|s| s.acknowledged)
        .max()
        .expect("syncs");
    let upload_floor = Duration::from_secs_f64(saved as f64 * 8.0 / shape.up_bps as f64);
    let rtt = shape.one_way_delay * 2;

    println!(
        "\nserver: {}; link: {:?}, {} kbit/s down, {} kbit/s up, {} ms each way ({} ms round trip); \
         phone: {USER}'s diary of {} visits and {} petitions",
        e2e_tests::server_binary().display(),
        link.kind,
        shape.down_bps / 1000,
        shape.up_bps / 1000,
        shape.one_way_delay.as_millis(),
        rtt.as_millis(),
        args.diary_visits,
        args.diary_visits.div_ceil(5),
    );
    println!("\n| scenario | measured | target | met? |");
    println!("|---|---|---|---|");
    println!(
        "| +1 visit on a {}-visit diary, reconnecting with the kept sync state: socket opened → \
         acknowledged ({} syncs) | p50 {}, max {}; per sync (mean) {} | ≤ 2 s | {} |",
        args.diary_visits,
        args.rounds,
        ms(p50),
        ms(max),
        bytes(one_up / rounds, one_down / rounds, mean(one_link)),
        yes(max <= TARGET_ONE_VISIT)
    );
    println!(
        "| a day of {DAY} visits, one sync each: bytes up | {} | ≤ 10 KB up | {} |",
        bytes(day_up, day_down, day_link),
        yes(day_link.up.bytes <= TARGET_DAY_UP_BYTES)
    );
    println!(
        "| the day's {DAY} visits in one sync in the evening | {}; {} | ≤ 10 KB up | {} |",
        secs(evening.acknowledged),
        bytes(
            evening.frames_up as u64,
            evening.frames_down as u64,
            evening.link
        ),
        yes(evening.link.up.bytes <= TARGET_DAY_UP_BYTES)
    );
    println!(
        "| longest of these {} syncs | {} | ≤ 25 s | {} |",
        one.len() + day.len() + 2,
        secs(longest),
        yes(longest <= TARGET_ANY_SYNC)
    );
    println!(
        "| first upload of the {}-visit diary (`save()` {} B: {} at {} kbit/s) | {}; {} | ≤ 25 s | {} |",
        args.diary_visits,
        n(saved),
        secs(upload_floor),
        shape.up_bps / 1000,
        secs(upload.acknowledged),
        bytes(
            upload.frames_up as u64,
            upload.frames_down as u64,
            upload.link
        ),
        yes(upload.acknowledged <= TARGET_ANY_SYNC)
    );
    println!(
        "| reconnect with nothing new | {}; {} | | |",
        secs(idle.acknowledged),
        bytes(idle.frames_up as u64, idle.frames_down as u64, idle.link)
    );
    let mut library_times: Vec<Duration> = library_one.iter().map(|s| s.took).collect();
    library_times.sort();
    let library_max = *library_times.last().expect("rounds");
    let library_mean =
        |f: &dyn Fn(&LibrarySync) -> u64| library_one.iter().map(f).sum::<u64>() / rounds;
    let library_bytes = |s: &LibrarySync| bytes(s.report.bytes_up, s.report.bytes_down, s.link);
    println!(
        "| the phone library's +1 visit (`sync_now`: token check, socket, handshake listing the \
         cadre's {} documents, sync of those that differ; {} syncs) | p50 {}, max {}; per sync \
         (mean) {} change(s) up, sync frames {} B up / {} B down; on the link {} B up / {} B down \
         | ≤ 2 s | {} |",
        library_first.report.documents_synced,
        args.rounds,
        ms(library_times[library_times.len() / 2]),
        ms(library_max),
        library_mean(&|s| s.report.changes_up),
        n(library_mean(&|s| s.report.bytes_up)),
        n(library_mean(&|s| s.report.bytes_down)),
        n(library_mean(&|s| s.link.up.bytes)),
        n(library_mean(&|s| s.link.down.bytes)),
        yes(library_max <= TARGET_ONE_VISIT)
    );
    println!(
        "| the phone library with nothing new | {}; {} | ≤ 300 B each way | {} |",
        secs(library_idle.took),
        library_bytes(&library_idle),
        yes(library_idle.report.bytes_up <= 300 && library_idle.report.bytes_down <= 300)
    );
    println!(
        "| the phone library's first sync after its login ({} documents, {} changes down) | {}; {} | ≤ 25 s | {} |",
        library_first.report.documents_synced,
        n(library_first.report.changes_down),
        secs(library_first.took),
        library_bytes(&library_first),
        yes(library_first.took <= TARGET_ANY_SYNC)
    );
    println!(
        "| password login (`POST /api/v1/auth/login`, new connection) | {}; on the link {} B up / {} B down | | |",
        secs(login_time),
        n(login_link.up.bytes),
        n(login_link.down.bytes)
    );
    println!(
        "| `GET /api/v1/me/documents` (new connection; what the phone library asked before each \
         sync until the handshake listed the documents) \
         | {} (median of 3); on the link {} B up / {} B down | | |",
        secs(documents_time),
        n(documents_link.up.bytes),
        n(documents_link.down.bytes)
    );

    let last = one.last().expect("rounds");
    println!(
        "\nOne +1 visit sync, step by step (time from opening the socket; round trip {} ms):\n",
        rtt.as_millis()
    );
    println!("| at | step | bytes up | bytes down |");
    println!("|---:|---|---:|---:|");
    println!(
        "| {} | TCP connected, upgrade answered (the request carries the {} B token in \
         `Authorization`) | | |",
        secs(last.upgraded),
        phone.token.len()
    );
    for s in &last.steps {
        println!("| {} | {} | {} | {} |", secs(s.at), s.what, s.up, s.down);
    }
    println!(
        "\nphases of the {} +1 visit syncs (mean): TCP + upgrade {}, join/peer {}, sync {}",
        args.rounds,
        secs(one.iter().map(|s| s.upgraded).sum::<Duration>() / args.rounds as u32),
        secs(
            one.iter()
                .map(|s| s.handshake - s.upgraded)
                .sum::<Duration>()
                / args.rounds as u32
        ),
        secs(
            one.iter()
                .map(|s| s.acknowledged - s.handshake)
                .sum::<Duration>()
                / args.rounds as u32
        ),
    );

    // The interface counters against the emulator's own count.
    let all: Vec<&Sync> = one
        .iter()
        .chain(&day)
        .chain([&upload, &evening, &idle])
        .collect();
    if let Some((_, dropped)) = link.emulator_counters() {
        let mismatched = all
            .iter()
            .filter(|s| s.emulated.is_some_and(|e| e != s.link))
            .count();
        println!(
            "\ncross-check: `ip -s link` and the emulator's own count differ for {mismatched} \
             of {} connections; packets dropped at a full queue: {dropped}",
            all.len()
        );
    }
    drop(library);
    drop(server);
    drop(link);
    ExitCode::SUCCESS
}
