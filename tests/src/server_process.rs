//! The `server` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::database::Database;
use crate::{DEMO_PASSWORD, Device};

/// How long the server may take to seed the demo and bind.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `server serve --demo`; killed (and its data removed) on drop.
///
/// It runs on SQLite in its data directory, or, when `TEST_DATABASE_URL` is
/// set, on a fresh PostgreSQL database of its own (`e2e_<random hex>`,
/// created through that URL and dropped with the process).
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    // Dropped after the child is killed (fields drop after `Drop::drop`).
    database: Database,
    data_dir: tempfile::TempDir,
    /// `VISIT_DIARY_*` settings given to the process (and to a restart).
    settings: Vec<(String, String)>,
    /// How the process is started (and restarted).
    launch: Launch,
}

/// How the server process is started: under a wrapper command and on an
/// address of the caller's choice. The default runs the binary directly on
/// the server's default address (127.0.0.1).
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// A program and its arguments that the server's command line is
    /// appended to, e.g. `["ip", "netns", "exec", "<namespace>"]` to run the
    /// server in a network namespace; empty: run the binary itself. The
    /// wrapper must exec the server (as `ip netns exec` does), so that
    /// [`ServerProcess::pid`] is the server's.
    pub wrapper: Vec<String>,
    /// The address to listen on (`--host`).
    pub host: Option<String>,
}

impl ServerProcess {
    /// Starts `serve --demo --port 0` in a fresh data directory (and a fresh
    /// database) and waits until it prints its address and answers
    /// `/healthz`.
    pub async fn start() -> Self {
        Self::start_on(Database::create().await).await
    }

    /// As [`Self::start`], on the given backend.
    pub async fn start_on(database: Database) -> Self {
        Self::start_with(database, &[]).await
    }

    /// As [`Self::start_on`], with configuration environment variables
    /// (`VISIT_DIARY_…`) for the process.
    pub async fn start_with(database: Database, settings: &[(&str, &str)]) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        Self::start_in(data_dir, database, settings).await
    }

    /// As [`Self::start_with`], in a data directory that may hold a database
    /// already (a restored backup); it is removed with the process.
    pub async fn start_in(
        data_dir: tempfile::TempDir,
        database: Database,
        settings: &[(&str, &str)],
    ) -> Self {
        Self::start_launched(data_dir, database, settings, Launch::default()).await
    }

    /// As [`Self::start_in`], started as `launch` says (under a wrapper
    /// command, on another address).
    pub async fn start_launched(
        data_dir: tempfile::TempDir,
        database: Database,
        settings: &[(&str, &str)],
        launch: Launch,
    ) -> Self {
        eprintln!("e2e: server on {}", database.describe());
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (child, addr) = spawn(data_dir.path(), database.url(), &settings, &launch);
        let server = ServerProcess {
            child,
            addr,
            database,
            data_dir,
            settings,
            launch,
        };
        server.wait_healthy().await;
        server
    }

    /// A second server process on this one's PostgreSQL database, with
    /// the same settings and JWT key (a token of either is good at both),
    /// in a data directory of its own. Drop it before this one, which
    /// drops the database.
    pub async fn another_process(&self) -> ServerProcess {
        let url = self
            .database_url()
            .expect("another process needs PostgreSQL: SQLite has one process")
            .to_owned();
        let secret = hex::encode(self.jwt_secret());
        let mut settings: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        settings.push(("JWT_SECRET", &secret));
        let data_dir = tempfile::tempdir().expect("temporary data directory");
        Self::start_launched(
            data_dir,
            Database::Shared(url),
            &settings,
            self.launch.clone(),
        )
        .await
    }

    /// Kills the server at once (SIGKILL: no graceful shutdown, nothing
    /// flushed) and starts a new one on the same data directory and
    /// database. The new process listens on another port; connect new
    /// devices.
    pub async fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, addr) = spawn(
            self.data_dir.path(),
            self.database.url(),
            &self.settings,
            &self.launch,
        );
        self.child = child;
        self.addr = addr;
        self.wait_healthy().await;
    }

    /// The `DATABASE_URL` the server runs on (`None`: SQLite in its data
    /// directory).
    pub fn database_url(&self) -> Option<&str> {
        self.database.url()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Which database backend the server runs on (for test output).
    pub fn backend(&self) -> String {
        self.database.describe()
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The HS256 key `--demo` generated (`<data-dir>/jwt-secret`, hex).
    pub fn jwt_secret(&self) -> Vec<u8> {
        let text = std::fs::read_to_string(self.data_dir().join("jwt-secret")).expect("jwt-secret");
        hex::decode(text.trim()).expect("jwt-secret is hex")
    }

    /// What the server has written to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("server.log")).unwrap_or_default()
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = reqwest::Client::new();
        loop {
            // The banner is printed after the listener is bound, so the
            // first request normally succeeds; retry only while starting.
            match client
                .get(format!("{}/healthz", self.base_url()))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return,
                _ if Instant::now() > deadline => {
                    panic!("/healthz never answered 200; log:\n{}", self.log())
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Logs in with the demo password; returns the access token.
    pub async fn login(&self, username: &str, device: &str) -> String {
        test_support::login(&self.base_url(), username, DEMO_PASSWORD, device).await
    }

    /// `GET path` with a bearer token; returns the status and the JSON body
    /// (`Null` when the body is not JSON).
    pub async fn get_json(&self, path: &str, token: &str) -> (u16, Value) {
        let request = reqwest::Client::new()
            .get(format!("{}{path}", self.base_url()))
            .bearer_auth(token);
        answer(request).await
    }

    /// `POST path` with a bearer token and a JSON body; returns the status
    /// and the JSON answer (`Null` when the answer is not JSON).
    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        let request = reqwest::Client::new()
            .post(format!("{}{path}", self.base_url()))
            .bearer_auth(token)
            .json(body);
        answer(request).await
    }

    /// The caller's `/api/v1/me/documents`.
    pub async fn my_documents(&self, token: &str) -> Vec<Value> {
        let (status, body) = self.get_json("/api/v1/me/documents", token).await;
        assert_eq!(status, 200, "/api/v1/me/documents: {body}");
        match body {
            Value::Array(items) => items,
            // Tolerate an envelope such as {"items": [...]}.
            Value::Object(mut o) => match o.remove("items").or_else(|| o.remove("documents")) {
                Some(Value::Array(items)) => items,
                other => panic!("unexpected /api/v1/me/documents body: {other:?}"),
            },
            other => panic!("unexpected /api/v1/me/documents body: {other}"),
        }
    }

    /// A device of `username`, logged in and past the sync handshake.
    pub async fn device(&self, username: &str, device: &str) -> Device {
        let token = self.login(username, device).await;
        Device::connect(self.addr, &token, device).await
    }
}

/// Sends `request`; returns the status and the JSON body (`Null` when the
/// body is not JSON).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Runs `server serve --demo --port 0 --data-dir <dir>` (with
/// `DATABASE_URL=<database_url>` if given, else on SQLite in `dir`; under
/// `launch`'s wrapper and on its host, if given) and returns the child and
/// the address its banner names.
fn spawn(
    data_dir: &Path,
    database_url: Option<&str>,
    settings: &[(String, String)],
    launch: &Launch,
) -> (Child, SocketAddr) {
    let bin = server_binary();
    // Appended to, so a restarted server's log follows the first one's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("server.log"))
        .expect("log file");
    let mut command = match launch.wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(&bin);
            command
        }
        None => Command::new(&bin),
    };
    // Only what the test sets may configure the child.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name == "DATABASE_URL" || name == "JWT_SECRET" || name.starts_with("VISIT_DIARY_") {
            command.env_remove(&name);
        }
    }
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command.envs(settings.iter().map(|(k, v)| (k, v)));
    let mut child = command
        .args(["serve", "--demo", "--port", "0", "--data-dir"])
        .arg(data_dir)
        .args(
            launch
                .host
                .iter()
                .flat_map(|host| ["--host", host.as_str()]),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));

    // `--port 0` binds a free port; the banner names the real one. A thread
    // reads it (and keeps draining stdout so the server never blocks on a
    // full pipe).
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.split("listening on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let Ok(addr) = rx.recv_timeout(START_TIMEOUT) else {
        let status = child.try_wait();
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
        panic!("the server printed no address within {START_TIMEOUT:?} ({status:?}); log:\n{log}");
    };
    let addr = addr
        .parse()
        .unwrap_or_else(|e| panic!("bad address {addr:?} in the banner: {e}"));
    (child, addr)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- server log ({}, {}) ---\n{}",
                self.addr,
                self.backend(),
                self.log()
            );
        }
    }
}

/// The `server` executable: `E2E_SERVER_BIN`, or `server` in the directory
/// of this test executable's `deps/` (that is, `target/<profile>/`).
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("E2E_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current executable");
    let mut dir = exe.parent().expect("executable directory").to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build -p server` first \
         (`cargo test --workspace` builds it), or set E2E_SERVER_BIN",
        bin.display()
    );
    static WARN_ONCE: std::sync::Once = std::sync::Once::new();
    WARN_ONCE.call_once(|| warn_if_stale(&bin));
    bin
}

/// `cargo test -p e2e-tests` does not rebuild the server: say so when its
/// sources are newer than the binary (a warning, since an edit made during a
/// workspace test run would otherwise fail it spuriously).
fn warn_if_stale(bin: &Path) {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newer = ["server/src", "sync-core/src"]
        .iter()
        .filter_map(|d| newest_mtime(&root.join(d)))
        .any(|t| t > built);
    if newer {
        eprintln!(
            "note: {} is older than the server's sources; run `cargo build -p server`",
            bin.display()
        );
    }
}

fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// A process's user + system CPU time so far, from `/proc/<pid>/stat`
/// (Linux reports it in 1/100 s whatever the kernel's own tick): what the
/// benchmarks charge to the server.
pub fn cpu_time(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    std::time::Duration::from_millis(ticks * 10)
}

/// Starts a process's peak resident memory (`VmHWM:`) over from its present
/// resident memory, so a peak read later covers only what came after: the
/// peak otherwise counts the process's whole life (a login's password hash,
/// an earlier flood). Writing 5 to `/proc/<pid>/clear_refs` does that.
/// Panics if it cannot be written; see [`try_reset_peak_rss`].
pub fn reset_peak_rss(pid: u32) {
    clear_refs(pid).expect("reset peak memory");
}

/// As [`reset_peak_rss`]; returns whether the peak was reset (writing
/// `clear_refs` needs the process to exist and be one's own, or privileges).
pub fn try_reset_peak_rss(pid: u32) -> bool {
    clear_refs(pid).is_ok()
}

fn clear_refs(pid: u32) -> std::io::Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:` …). Panics if
/// the file cannot be read or has no such field; see [`try_status_kib`].
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status_field_kib(&status, field).unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// As [`status_kib`]; `None` if the file cannot be read (the process is
/// gone) or has no such field.
pub fn try_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, field)
}

/// The KiB of the line of `status` (a `/proc/<pid>/status`) that starts with
/// `field`.
fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}
