//! Load generator: a reconnect storm of phones that worked offline.
//!
//! ```sh
//! cargo build --release -p server
//! cargo bench -p e2e-tests --bench load -- --phones 1000 --diary-visits 20
//! # the same workload against the reference JS sync server (tests/js):
//! cargo bench -p e2e-tests --bench load -- --phones 1000 --diary-visits 20 --server reference
//! ```
//!
//! N simulated phones, each a sync-core `ClientConnection` over its own real
//! WebSocket on loopback (test-support's `Device`), each with its own cadre
//! account and its own realistic Chinese diary (`sync_core::fixtures`):
//!
//! 1. the first upload: every phone logs in (not measured), then the
//!    phones upload their diaries of `--diary-visits` visits,
//!    `--uploads-at-once` at a time, and keep their sync states, like
//!    phones that synced before. Measured: documents a second, bytes up per
//!    document against its `save()` size, the server's CPU per document and
//!    its peak RSS;
//! 2. the storm: every phone records `--offline-visits` (a range, e.g. `1-5`)
//!    visits offline, then all connect within one second and sync. Per phone:
//!    the time from opening the socket to the server holding exactly its
//!    heads (every offline change acknowledged), bytes up and down, errors;
//!    for the server: its user + system CPU across the storm
//!    (`/proc/<pid>/stat`) and its peak RSS during it (`VmHWM` in
//!    `/proc/<pid>/status`, reset through `clear_refs` before the storm);
//! 3. the check: for every phone a fresh client asks the server for the
//!    diary and must find every visit the phone holds.
//!
//! `--server reference` runs the same phones against the reference: the
//! official JS sync stack (`tests/js/reference-server.mjs`, see
//! `e2e_tests::ReferenceServer`), which has no accounts, so the phones skip
//! the login and send an unsigned token it ignores.
//!
//! It prints Markdown tables for `docs/BENCHMARKS.md` and exits non-zero
//! if any phone failed or did not finish within `--timeout-secs`, or if a
//! visit is missing. It is bounded in count (`--phones`) and time.
//!
//! The server is the real binary next to this executable
//! (`target/release/server` under `cargo bench`, `target/debug/server` under
//! `cargo bench --profile dev`, which is what `.ci/run` uses as a
//! correctness check), or `E2E_SERVER_BIN`. It runs on SQLite, or on a fresh
//! PostgreSQL database created through `--database-url URL`; there
//! `--processes 2` starts a second server process on the same database.
//! Phone `i` then sets up through process `i mod N`, storms through the next
//! one and is checked through the first again, so every phone's offline
//! visits are stored by one process and read back through another; CPU
//! and peak RSS are those of all processes together.
//!
//! The accounts are rows copied from the demo cadre `cadre01` (same unit,
//! same password hash), written into the server's database before the
//! phones log in: hashing a password takes argon2's tens of milliseconds, so
//! one `server user add` per phone would take minutes for a thousand. Each
//! phone still logs in through `POST /api/v1/auth/login` and the server checks
//! its password.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e_tests::{DEMO_PASSWORD, Database, Device, ReferenceServer, ServerProcess, percentile};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, PgConnection, SqliteConnection};
use sync_core::automerge::{ActorId, Automerge};
use sync_core::protocol::DocSyncStatus;
use sync_core::{DiaryDocument, DocumentId, Edit, RecordId, Timestamp, diary_id, fixtures};
use tokio::sync::Semaphore;

/// Where the fixture diaries start (2026-05-29, within the diary's year).
const DIARY_START: Timestamp = Timestamp(1_780_000_000_000);
/// When the offline visits begin (200 days later, still in 2026), an hour
/// apart.
const OFFLINE_START: Timestamp = Timestamp(DIARY_START.0 + 200 * 86_400_000);
/// The diaries' year, as `diary_id` derives it.
const YEAR: i32 = 2026;
/// The account the load accounts are copied from.
const TEMPLATE_USER: &str = "cadre01";
/// Logins at once: the server checks four passwords at a time by default
/// and answers 503 to a login that waits longer than 2 s.
const LOGINS_AT_ONCE: usize = 4;
/// Phones in setup, or checked afterwards, at once.
const SETUP_AT_ONCE: usize = 16;
/// The window in which every phone opens its socket.
const CONNECT_WINDOW: Duration = Duration::from_secs(1);

struct Args {
    phones: usize,
    diary_visits: usize,
    offline: (usize, usize),
    timeout: Duration,
    seed: u64,
    database_url: Option<String>,
    processes: usize,
    uploads_at_once: usize,
    against: Against,
}

/// Which server the phones load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Against {
    /// Ours: the `server` binary, on SQLite or PostgreSQL.
    Ours,
    /// The reference JS sync server (`tests/js/reference-server.mjs`).
    Reference,
}

fn usage() -> ! {
    eprintln!(
        "usage: load [--phones N] [--diary-visits V] [--offline-visits MIN-MAX] \
         [--uploads-at-once N] [--timeout-secs S] [--seed N] \
         [--server ours|reference] [--database-url postgres://… [--processes N]]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        phones: 100,
        diary_visits: 20,
        offline: (1, 5),
        timeout: Duration::from_secs(300),
        seed: 2026,
        database_url: None,
        processes: 1,
        uploads_at_once: 16,
        against: Against::Ours,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes `--bench` to every bench binary.
        if flag == "--bench" {
            continue;
        }
        let Some(value) = it.next() else { usage() };
        let number = |v: &str| v.parse::<usize>().unwrap_or_else(|_| usage());
        match flag.as_str() {
            "--phones" => args.phones = number(&value),
            "--diary-visits" => args.diary_visits = number(&value),
            "--offline-visits" => {
                args.offline = match value.split_once('-') {
                    Some((lo, hi)) => (number(lo), number(hi)),
                    None => (number(&value), number(&value)),
                }
            }
            "--timeout-secs" => args.timeout = Duration::from_secs(number(&value) as u64),
            "--seed" => args.seed = number(&value) as u64,
            "--database-url" => args.database_url = Some(value),
            "--processes" => args.processes = number(&value),
            "--uploads-at-once" => args.uploads_at_once = number(&value),
            "--server" => {
                args.against = match value.as_str() {
                    "ours" => Against::Ours,
                    "reference" => Against::Reference,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
    }
    if args.phones == 0
        || args.offline.0 > args.offline.1
        || args.processes == 0
        || args.uploads_at_once == 0
    {
        usage()
    }
    if args.against == Against::Reference && args.database_url.is_some() {
        eprintln!("load: the reference keeps its own files (no --database-url)");
        usage()
    }
    if args.processes > 1 && args.database_url.is_none() {
        eprintln!("load: several processes need PostgreSQL (--database-url)");
        usage()
    }
    args
}

/// What a phone holds after setup: its account, token and synced diary.
struct Phone {
    i: usize,
    username: String,
    token: String,
    id: DocumentId,
    doc: Automerge,
    sync_state: Vec<u8>,
}

/// A phone's storm: its numbers, or why it failed.
struct StormResult {
    /// When the phone opened its socket.
    connected_at: Instant,
    latency: Duration,
    bytes_up: usize,
    bytes_down: usize,
    changes: usize,
    /// The diary the phone holds once synced: the server must have every
    /// visit of it. Read after the storm, so that reading it does not take
    /// turns from other phones' syncs on the load generator's cores.
    doc: Option<Automerge>,
}

/// `username` for phone `i`.
fn username(i: usize) -> String {
    format!("load{i:05}")
}

/// Creates the phones' accounts in one transaction: rows copied from the
/// demo cadre (its unit and password hash).
async fn create_users(server: &ServerProcess, phones: usize) -> Result<(), sqlx::Error> {
    const INSERT: &str = "INSERT INTO users \
         (username, display_name, role, unit_id, password_hash, created_at) \
         SELECT $1, $2, role, unit_id, password_hash, created_at FROM users WHERE username = $3";
    macro_rules! insert_all {
        ($conn:expr) => {{
            let mut tx = $conn.begin().await?;
            for i in 0..phones {
                let done = sqlx::query(INSERT)
                    .bind(username(i))
                    .bind(format!("走访员{i}"))
                    .bind(TEMPLATE_USER)
                    .execute(&mut *tx)
                    .await?;
                assert_eq!(done.rows_affected(), 1, "template user {TEMPLATE_USER}");
            }
            tx.commit().await?;
            $conn.close().await
        }};
    }
    match server.database_url() {
        Some(url) => {
            let mut conn = PgConnection::connect(url).await?;
            insert_all!(conn)
        }
        None => {
            let url = format!("sqlite://{}", server.data_dir().join("server.db").display());
            let mut conn = SqliteConnection::connect(&url).await?;
            insert_all!(conn)
        }
    }
}

/// `POST /api/v1/auth/login`; returns the access token.
async fn login(base_url: &str, username: &str, device: &str) -> Result<String, String> {
    let response = reqwest::Client::new()
        .post(format!("{base_url}/api/v1/auth/login"))
        .json(&serde_json::json!({
            "username": username, "password": DEMO_PASSWORD, "device_id": device,
        }))
        .send()
        .await
        .map_err(|e| format!("login of {username}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("login of {username}: {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    body["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("login of {username}: no access token"))
}

/// A token the reference takes as it takes any (it checks none): unsigned,
/// with the phone's user as its subject, which the client reads.
fn unsigned_token(username: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = b64.encode(serde_json::json!({ "sub": username }).to_string());
    format!("{header}.{claims}.")
}

/// A phone before its first upload: its account, token and diary.
struct NewPhone {
    username: String,
    token: String,
    id: DocumentId,
    doc: Automerge,
}

/// Builds phone `i`'s diary of `visits` (before any clock starts).
fn new_phone(i: usize, token: String, visits: usize, seed: u64) -> NewPhone {
    let username = username(i);
    let mut rng = StdRng::seed_from_u64(seed ^ i as u64);
    let id = diary_id(&username, YEAR);
    let diary = fixtures::diary(&mut rng, &username, ActorId::random(), visits, DIARY_START);
    NewPhone {
        username,
        token,
        id,
        doc: diary.into_automerge(),
    }
}

/// The peer id phone `i` announces: the reference keeps one socket per
/// peer id, so every phone needs its own.
fn peer(i: usize, purpose: &str) -> String {
    format!("{purpose}{i:05}")
}

/// Phone `i`'s first upload: sync the whole diary, keep the sync state.
/// Returns the phone and the bytes it sent.
async fn upload(
    addr: std::net::SocketAddr,
    i: usize,
    new: NewPhone,
    timeout: Duration,
) -> Result<(Phone, usize), String> {
    let NewPhone {
        username,
        token,
        id,
        doc,
    } = new;
    let mut device = Device::connect(addr, &token, &peer(i, "phone")).await;
    device.frame_timeout = timeout;
    device.docs.insert(id, doc);
    device.conn.add_document(id);
    device.sync().await;
    let status = device.conn.status(&id, &device.docs);
    if status != Some(DocSyncStatus::Synced) {
        return Err(format!("{username}: first upload ended {status:?}"));
    }
    let sync_state = device
        .conn
        .sync_state(&id)
        .ok_or_else(|| format!("{username}: no sync state"))?;
    let doc = device.docs.remove(&id).expect("the diary");
    let sent = device.bytes_sent;
    device.close().await;
    Ok((
        Phone {
            i,
            username,
            token,
            id,
            doc,
            sync_state,
        },
        sent,
    ))
}

/// Records `count` visits offline, one change each; returns how many
/// changes were made.
fn edit_offline(phone: &mut Phone, rng: &mut StdRng, count: usize) -> usize {
    let before = phone.doc.get_heads();
    let mut diary = DiaryDocument::from_automerge(std::mem::take(&mut phone.doc)).expect("a diary");
    for k in 0..count {
        let at = Timestamp(OFFLINE_START.0 + k as i64 * 3_600_000);
        let visit = fixtures::visit(rng, at, &phone.username);
        diary
            .add_visit(&Edit::new(phone.username.as_str(), at), &visit)
            .expect("a fixture visit is valid");
    }
    phone.doc = diary.into_automerge();
    phone.doc.get_changes(&before).len()
}

/// The storm for one phone: at `at`, open the socket and sync.
async fn storm(
    addr: std::net::SocketAddr,
    phone: Phone,
    changes: usize,
    at: tokio::time::Instant,
) -> Result<StormResult, String> {
    tokio::time::sleep_until(at).await;
    let started = Instant::now();
    let mut device = Device::connect(addr, &phone.token, &peer(phone.i, "phone")).await;
    device.docs.insert(phone.id, phone.doc);
    device
        .conn
        .add_document_with_state(phone.id, &phone.sync_state);
    device.sync().await;
    let latency = started.elapsed();
    let status = device.conn.status(&phone.id, &device.docs);
    if status != Some(DocSyncStatus::Synced) {
        return Err(format!("{}: storm sync ended {status:?}", phone.username));
    }
    let doc = device.docs.remove(&phone.id);
    let (bytes_up, bytes_down) = (device.bytes_sent, device.bytes - device.bytes_sent);
    device.close().await;
    Ok(StormResult {
        connected_at: started,
        latency,
        bytes_up,
        bytes_down,
        changes,
        doc,
    })
}

/// The ids of a diary's visits.
fn visit_ids(doc: Automerge) -> BTreeSet<RecordId> {
    DiaryDocument::from_automerge(doc)
        .expect("a diary")
        .visits()
        .into_iter()
        .map(|v| v.id)
        .collect()
}

/// A fresh client of the phone's cadre asks for the diary; fails when a
/// visit of `phone_doc` (the phone's diary) is missing from it. Returns
/// how many visits were checked.
async fn check(
    addr: std::net::SocketAddr,
    i: usize,
    username: String,
    token: String,
    id: DocumentId,
    phone_doc: Automerge,
) -> Result<usize, String> {
    let expected = visit_ids(phone_doc);
    let mut device = Device::connect(addr, &token, &peer(i, "check")).await;
    let status = device.request(id).await;
    if status != Some(DocSyncStatus::Synced) {
        return Err(format!("{username}: the server's diary: {status:?}"));
    }
    let held: BTreeSet<RecordId> = device
        .diary(&id)
        .visits()
        .into_iter()
        .map(|v| v.id)
        .collect();
    device.close().await;
    let missing = expected.difference(&held).count();
    if missing > 0 {
        return Err(format!(
            "{username}: {missing} of {} visits missing on the server",
            expected.len()
        ));
    }
    Ok(expected.len())
}

/// A task's outcome: a `Device` fails by panicking (with its last frames).
fn outcome<T>(joined: Result<Result<T, String>, tokio::task::JoinError>) -> Result<T, String> {
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Err(format!(
                "panicked: {}",
                message.lines().next().unwrap_or_default()
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The servers under load: ours (one process or more on one database) or
/// the reference.
struct Servers {
    /// Ours: the first process (it owns the database: drop it last).
    ours: Option<ServerProcess>,
    /// Ours: the other processes on the same database.
    others: Vec<ServerProcess>,
    reference: Option<ReferenceServer>,
}

impl Servers {
    async fn start(args: &Args) -> Servers {
        if args.against == Against::Reference {
            return Servers {
                ours: None,
                others: Vec::new(),
                reference: Some(ReferenceServer::start()),
            };
        }
        let database = match &args.database_url {
            Some(url) => Database::postgres_at(url).await,
            None => Database::Sqlite,
        };
        // Every phone is on 127.0.0.1: the per-address socket limit (64 by
        // default, for a village office) would refuse most of them.
        let per_address = (2 * args.phones + 16).to_string();
        let server = ServerProcess::start_with(
            database,
            &[("VISIT_DIARY_MAX_SYNC_CONNECTIONS_PER_ADDRESS", &per_address)],
        )
        .await;
        let mut others = Vec::new();
        for _ in 1..args.processes {
            others.push(server.another_process().await);
        }
        Servers {
            ours: Some(server),
            others,
            reference: None,
        }
    }

    fn ours(&self) -> impl Iterator<Item = &ServerProcess> {
        self.ours.iter().chain(&self.others)
    }

    fn addrs(&self) -> Vec<std::net::SocketAddr> {
        let reference = self.reference.as_ref().map(ReferenceServer::addr);
        self.ours()
            .map(ServerProcess::addr)
            .chain(reference)
            .collect()
    }

    fn pids(&self) -> Vec<u32> {
        let reference = self.reference.as_ref().map(ReferenceServer::pid);
        self.ours()
            .map(ServerProcess::pid)
            .chain(reference)
            .collect()
    }

    fn describe(&self) -> String {
        match &self.ours {
            Some(server) => format!(
                "ours ({}) on {}, {} process(es)",
                e2e_tests::server_binary().display(),
                server.backend(),
                1 + self.others.len()
            ),
            None => "the reference (automerge-repo 2.5.6, nodefs storage)".to_owned(),
        }
    }

    /// The end of our first process's log (the reference logs to stderr).
    fn log(&self) -> String {
        self.ours
            .as_ref()
            .map(ServerProcess::log)
            .unwrap_or_default()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        // The other processes before the first, which drops the database.
        self.others.clear();
    }
}

/// Peak RSS and CPU of the servers' processes over one phase.
struct Meter {
    pids: Vec<u32>,
    /// Whether every process's peak RSS was reset at the start.
    rss_reset: bool,
    rss_before: u64,
    cpu_before: Duration,
    started: Instant,
}

impl Meter {
    /// Starts measuring: resets `VmHWM` (see [`e2e_tests::reset_peak_rss`]).
    fn start(pids: &[u32]) -> Meter {
        let rss_reset = pids.iter().all(|&pid| e2e_tests::try_reset_peak_rss(pid));
        Meter {
            pids: pids.to_vec(),
            rss_reset,
            rss_before: Self::rss(pids, "VmRSS:"),
            cpu_before: Self::cpu(pids),
            started: Instant::now(),
        }
    }

    /// The sum of a `/proc/<pid>/status` field over the processes, in
    /// bytes (0 for a process whose field cannot be read).
    fn rss(pids: &[u32], field: &str) -> u64 {
        pids.iter()
            .map(|&pid| e2e_tests::try_status_kib(pid, field).map_or(0, |kib| kib * 1024))
            .sum()
    }

    fn cpu(pids: &[u32]) -> Duration {
        pids.iter()
            .map(|&pid| e2e_tests::cpu_time(pid))
            .sum::<Duration>()
    }

    /// Wall time, CPU and peak RSS since the start.
    fn stop(&self) -> Measured {
        Measured {
            wall: self.started.elapsed(),
            cpu: Self::cpu(&self.pids) - self.cpu_before,
            peak_rss: Self::rss(&self.pids, "VmHWM:"),
            rss_before: self.rss_before,
            rss_reset: self.rss_reset,
        }
    }
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    peak_rss: u64,
    rss_before: u64,
    rss_reset: bool,
}

impl Measured {
    fn peak_heading(&self) -> &'static str {
        if self.rss_reset { "" } else { " (whole run)" }
    }
}

/// Logs every phone in through the process it sets up with (ours), or
/// makes the token the reference ignores.
async fn tokens(
    args: &Args,
    servers: &Servers,
    deadline: tokio::time::Instant,
) -> Vec<Result<String, String>> {
    let urls: Vec<String> = servers.ours().map(ServerProcess::base_url).collect();
    if urls.is_empty() {
        return (0..args.phones)
            .map(|i| Ok(unsigned_token(&username(i))))
            .collect();
    }
    let logins = Arc::new(Semaphore::new(LOGINS_AT_ONCE));
    let mut tasks = Vec::with_capacity(args.phones);
    for i in 0..args.phones {
        let url = urls[i % urls.len()].clone();
        let logins = logins.clone();
        tasks.push(tokio::spawn(async move {
            let _turn = logins.acquire_owned().await.map_err(|e| e.to_string())?;
            login(&url, &username(i), "phone").await
        }));
    }
    let mut tokens = Vec::with_capacity(args.phones);
    for task in tasks {
        tokens.push(match tokio::time::timeout_at(deadline, task).await {
            Ok(joined) => outcome(joined),
            Err(_) => Err("login: did not finish in time".to_owned()),
        });
    }
    tokens
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = parse_args();
    // The logins, then everything from the first upload on, within
    // `--timeout-secs` each (building the diaries in between is the load
    // generator's time, not the server's).
    let mut deadline = tokio::time::Instant::now() + args.timeout;
    let servers = Servers::start(&args).await;
    let addrs = servers.addrs();
    let pids = servers.pids();
    let n = addrs.len();
    eprintln!(
        "load: {} phones, {}-visit diaries, {}-{} offline visits each, {} uploads at once; against {}",
        args.phones,
        args.diary_visits,
        args.offline.0,
        args.offline.1,
        args.uploads_at_once,
        servers.describe()
    );

    if let Some(server) = &servers.ours {
        let t = Instant::now();
        create_users(server, args.phones)
            .await
            .expect("create the load accounts");
        eprintln!("load: {} accounts in {:.1?}", args.phones, t.elapsed());
    }
    let t = Instant::now();
    let mut errors: Vec<String> = Vec::new();
    let mut new_phones = Vec::with_capacity(args.phones);
    let mut saved_bytes = 0usize;
    for (i, token) in tokens(&args, &servers, deadline)
        .await
        .into_iter()
        .enumerate()
    {
        match token {
            Ok(token) => {
                let phone = new_phone(i, token, args.diary_visits, args.seed);
                saved_bytes += phone.doc.save().len();
                new_phones.push(phone);
            }
            Err(e) => errors.push(format!("login: {e}")),
        }
    }
    eprintln!(
        "load: {} phones logged in with their diaries in {:.1?}",
        new_phones.len(),
        t.elapsed()
    );
    if !errors.is_empty() {
        report_errors(&errors, &servers);
        // Returning (not `exit`) drops the servers: the processes are
        // killed and their data removed.
        return ExitCode::FAILURE;
    }
    deadline = tokio::time::Instant::now() + args.timeout;

    // The first upload, `--uploads-at-once` phones at a time.
    let uploaded = new_phones.len();
    let meter = Meter::start(&pids);
    let at_once = Arc::new(Semaphore::new(args.uploads_at_once));
    let mut tasks = Vec::with_capacity(uploaded);
    for new in new_phones {
        let i = phone_index(&new.username);
        let addr = addrs[i % n];
        let (at_once, timeout) = (at_once.clone(), args.timeout);
        tasks.push(tokio::spawn(async move {
            let _turn = at_once.acquire_owned().await.map_err(|e| e.to_string())?;
            upload(addr, i, new, timeout).await
        }));
    }
    let mut phones = Vec::with_capacity(uploaded);
    let mut upload_bytes = 0usize;
    for task in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(joined) => match outcome(joined) {
                Ok((phone, sent)) => {
                    upload_bytes += sent;
                    phones.push(phone);
                }
                Err(e) => errors.push(format!("first upload: {e}")),
            },
            Err(_) => errors.push("first upload: did not finish in time".to_owned()),
        }
    }
    let first_upload = meter.stop();
    eprintln!(
        "load: first upload of {} diaries in {:.1?}",
        phones.len(),
        first_upload.wall
    );
    if !errors.is_empty() {
        report_errors(&errors, &servers);
        return ExitCode::FAILURE;
    }

    // Offline edits first, then every phone connects within one second.
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut expected_changes = 0;
    let mut offline = Vec::with_capacity(phones.len());
    for mut phone in phones {
        let visits = rng.random_range(args.offline.0..=args.offline.1);
        let changes = edit_offline(&mut phone, &mut rng, visits);
        expected_changes += changes;
        offline.push((phone, changes));
    }
    let count = offline.len();
    let checks: Vec<(usize, String, String, DocumentId)> = offline
        .iter()
        .map(|(p, _)| (p.i, p.username.clone(), p.token.clone(), p.id))
        .collect();
    let meter = Meter::start(&pids);
    let begin = tokio::time::Instant::now();
    let mut storm_tasks = Vec::with_capacity(count);
    for (k, (phone, changes)) in offline.into_iter().enumerate() {
        let at = begin + CONNECT_WINDOW * k as u32 / count as u32;
        // Through another process than the one the phone set up with.
        let addr = addrs[(phone.i + 1) % n];
        storm_tasks.push(tokio::spawn(storm(addr, phone, changes, at)));
    }
    let mut results = Vec::with_capacity(count);
    for ((i, ..), task) in checks.iter().zip(storm_tasks) {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(joined) => results.push(outcome(joined)),
            Err(_) => results.push(Err(format!(
                "storm: {} did not finish in time",
                username(*i)
            ))),
        }
    }
    let storm_measured = meter.stop();

    // Check: the server holds every visit each phone holds.
    let at_once = Arc::new(Semaphore::new(SETUP_AT_ONCE));
    let mut check_tasks = Vec::new();
    for ((i, username, token, id), result) in checks.into_iter().zip(&mut results) {
        let Ok(result) = result else { continue };
        let Some(phone_doc) = result.doc.take() else {
            continue;
        };
        let at_once = at_once.clone();
        // Through the process the phone set up with, not the one it
        // stormed through.
        let addr = addrs[i % n];
        check_tasks.push(tokio::spawn(async move {
            let _turn = at_once.acquire_owned().await.map_err(|e| e.to_string())?;
            check(addr, i, username, token, id, phone_doc).await
        }));
    }
    let mut check_errors = Vec::new();
    let mut checked_visits = 0;
    for task in check_tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(joined) => match outcome(joined) {
                Ok(visits) => checked_visits += visits,
                Err(e) => check_errors.push(format!("check: {e}")),
            },
            Err(_) => check_errors.push("check: did not finish in time".to_owned()),
        }
    }

    println!("\nagainst {}", servers.describe());
    println!(
        "\nfirst upload: {uploaded} diaries of {} visits, {} at once\n\
         \n| documents / s | wall | bytes up per document / save() size (mean) | \
         server CPU per document | server peak RSS{} (before) |\
         \n|---:|---:|---:|---:|---:|",
        args.diary_visits,
        args.uploads_at_once,
        first_upload.peak_heading()
    );
    println!(
        "| {:.1} | {:.1} s | {} / {} ({:.2}×) | {:.1} ms | {} ({}) |",
        uploaded as f64 / first_upload.wall.as_secs_f64(),
        first_upload.wall.as_secs_f64(),
        upload_bytes / uploaded.max(1),
        saved_bytes / uploaded.max(1),
        upload_bytes as f64 / saved_bytes.max(1) as f64,
        first_upload.cpu.as_secs_f64() * 1000.0 / uploaded.max(1) as f64,
        mib(first_upload.peak_rss),
        mib(first_upload.rss_before),
    );

    let ok: Vec<&StormResult> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    errors.extend(results.iter().filter_map(|r| r.as_ref().err().cloned()));
    let acknowledged: usize = ok.iter().map(|r| r.changes).sum();
    let mut latencies: Vec<Duration> = ok.iter().map(|r| r.latency).collect();
    latencies.sort();
    // How far apart the first and the last phone opened their sockets.
    let spread = match (
        ok.iter().map(|r| r.connected_at).min(),
        ok.iter().map(|r| r.connected_at).max(),
    ) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    let mean =
        |f: fn(&StormResult) -> usize| ok.iter().map(|r| f(r)).sum::<usize>() / ok.len().max(1);

    println!(
        "\nstorm: {} phones, {}-{} offline visits each; sockets opened within {} ms; \
         {:.1} s wall (until every socket closed)",
        count,
        args.offline.0,
        args.offline.1,
        ms(spread),
        storm_measured.wall.as_secs_f64()
    );
    println!(
        "\n| phones | acknowledged changes / expected | errors | \
         latency p50 / p95 / p99 / max | bytes up / down per phone (mean) | \
         server CPU: storm / per phone | server peak RSS{} (before) |",
        storm_measured.peak_heading()
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} / {} | {} | {} / {} / {} / {} ms | {} / {} | {:.2} s / {:.1} ms | {} ({}) |",
        count,
        acknowledged,
        expected_changes,
        errors.len() + check_errors.len(),
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 95)),
        ms(percentile(&latencies, 99)),
        ms(latencies.last().copied().unwrap_or_default()),
        mean(|r| r.bytes_up),
        mean(|r| r.bytes_down),
        storm_measured.cpu.as_secs_f64(),
        storm_measured.cpu.as_secs_f64() * 1000.0 / count as f64,
        mib(storm_measured.peak_rss),
        mib(storm_measured.rss_before),
    );
    errors.extend(check_errors);
    if !errors.is_empty() || acknowledged != expected_changes {
        report_errors(&errors, &servers);
        return ExitCode::FAILURE;
    }
    println!(
        "\nchecked: the server holds every visit of all {count} phones \
         ({} visits)",
        checked_visits
    );
    ExitCode::SUCCESS
}

/// The `i` of `username(i)`.
fn phone_index(username: &str) -> usize {
    username["load".len()..].parse().expect("a load user name")
}

/// Prints the first errors and the end of the server's log.
fn report_errors(errors: &[String], servers: &Servers) {
    eprintln!("\nload: {} errors; the first:", errors.len());
    for e in errors.iter().take(20) {
        eprintln!("  {e}");
    }
    let log = servers.log();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    eprintln!("--- end of the server log ---");
    for line in tail.iter().rev() {
        eprintln!("{line}");
    }
}
