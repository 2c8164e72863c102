//! Server configuration, in layers: built-in defaults, then an optional TOML
//! file, then environment variables (env wins over the file), then the few
//! flags given explicitly on the command line (`--host`, `--port`,
//! `--data-dir`), which win over everything because someone just typed them.
//!
//! `server/server.example.toml` documents every key. Secrets (the JWT key,
//! a password inside the database URL) never appear in `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// Environment variable names, all in one place.
pub mod env {
    /// Database URL (`sqlite://…` or `postgres://…`).
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// HS256 key: hex (64+ hex digits, or `hex:` prefix) or a plain string of 32+ bytes.
    pub const JWT_SECRET: &str = "JWT_SECRET";
    /// Listen address.
    pub const HOST: &str = "VISIT_DIARY_HOST";
    /// Listen port.
    pub const PORT: &str = "VISIT_DIARY_PORT";
    /// Data directory (SQLite file, demo JWT key).
    pub const DATA_DIR: &str = "VISIT_DIARY_DATA_DIR";
    /// Connection pool size.
    pub const DATABASE_MAX_CONNECTIONS: &str = "VISIT_DIARY_DATABASE_MAX_CONNECTIONS";
    /// JWT `iss`.
    pub const JWT_ISSUER: &str = "VISIT_DIARY_JWT_ISSUER";
    /// JWT `aud`.
    pub const JWT_AUDIENCE: &str = "VISIT_DIARY_JWT_AUDIENCE";
    /// Access token lifetime in seconds.
    pub const ACCESS_TOKEN_TTL_SECS: &str = "VISIT_DIARY_ACCESS_TOKEN_TTL_SECS";
    /// Refresh token lifetime in seconds.
    pub const REFRESH_TOKEN_TTL_SECS: &str = "VISIT_DIARY_REFRESH_TOKEN_TTL_SECS";
    /// Largest accepted HTTP request body.
    pub const BODY_LIMIT_BYTES: &str = "VISIT_DIARY_BODY_LIMIT_BYTES";
    /// Time limit of one (non-WebSocket) HTTP request.
    pub const REQUEST_TIMEOUT_SECS: &str = "VISIT_DIARY_REQUEST_TIMEOUT_SECS";
    /// Time a client has to send a request head (and the longest idle
    /// keep-alive wait).
    pub const HEADER_READ_TIMEOUT_SECS: &str = "VISIT_DIARY_HEADER_READ_TIMEOUT_SECS";
    /// Largest document the sync endpoint accepts.
    pub const MAX_DOCUMENT_BYTES: &str = "VISIT_DIARY_MAX_DOCUMENT_BYTES";
    /// How many document merges may run at once.
    pub const MAX_CONCURRENT_MERGES: &str = "VISIT_DIARY_MAX_CONCURRENT_MERGES";
    pub const MAX_NESTING_DEPTH: &str = "VISIT_DIARY_MAX_NESTING_DEPTH";
    /// How often an open sync connection checks that its user may still sync.
    pub const SESSION_CHECK_SECS: &str = "VISIT_DIARY_SESSION_CHECK_SECS";
    /// Silence after which a sync connection is closed.
    pub const SYNC_IDLE_TIMEOUT_SECS: &str = "VISIT_DIARY_SYNC_IDLE_TIMEOUT_SECS";
    /// How long one write to a sync socket may take before it is closed.
    pub const SYNC_SEND_TIMEOUT_SECS: &str = "VISIT_DIARY_SYNC_SEND_TIMEOUT_SECS";
    /// Bearer token that `/metrics` asks for (without it, loopback only).
    pub const METRICS_TOKEN: &str = "VISIT_DIARY_METRICS_TOKEN";
    /// Open sync connections one user may have.
    pub const MAX_SYNC_CONNECTIONS_PER_USER: &str = "VISIT_DIARY_MAX_SYNC_CONNECTIONS_PER_USER";
    /// Open sync connections from one address.
    pub const MAX_SYNC_CONNECTIONS_PER_ADDRESS: &str =
        "VISIT_DIARY_MAX_SYNC_CONNECTIONS_PER_ADDRESS";
    /// Documents one sync connection may ask about.
    pub const MAX_DOCUMENTS_PER_CONNECTION: &str = "VISIT_DIARY_MAX_DOCUMENTS_PER_CONNECTION";
    pub const MAX_DOCUMENTS_PER_USER: &str = "VISIT_DIARY_MAX_DOCUMENTS_PER_USER";
    pub const MAX_STORED_BYTES_PER_USER: &str = "VISIT_DIARY_MAX_STORED_BYTES_PER_USER";
    pub const MAX_BUFFERED_BYTES_PER_USER: &str = "VISIT_DIARY_MAX_BUFFERED_BYTES_PER_USER";
    pub const MAX_MESSAGE_BYTES: &str = "VISIT_DIARY_MAX_MESSAGE_BYTES";
    /// Estimated memory of the documents held live, in bytes.
    pub const LIVE_DOCUMENTS_MEMORY_BYTES: &str = "VISIT_DIARY_LIVE_DOCUMENTS_MEMORY_BYTES";
    /// Seconds a live document may go unused before it is dropped from memory.
    pub const LIVE_DOCUMENT_IDLE_SECS: &str = "VISIT_DIARY_LIVE_DOCUMENT_IDLE_SECS";
    /// Failed logins of one username before it backs off.
    pub const LOGIN_FREE_FAILURES_PER_USER: &str = "VISIT_DIARY_LOGIN_FREE_FAILURES_PER_USER";
    /// Failed logins from one address before it backs off.
    pub const LOGIN_FREE_FAILURES_PER_ADDRESS: &str = "VISIT_DIARY_LOGIN_FREE_FAILURES_PER_ADDRESS";
    /// Password checks (argon2) running at once.
    pub const CONCURRENT_PASSWORD_CHECKS: &str = "VISIT_DIARY_CONCURRENT_PASSWORD_CHECKS";
}

/// Shortest JWT key accepted: HS256 wants at least as many key bytes as its
/// 256-bit output.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Name of the file under the data directory that keeps the demo JWT key, so
/// that tokens survive a restart of `serve --demo`.
pub const DEMO_JWT_SECRET_FILE: &str = "jwt-secret";

/// A database URL. `Debug` and `Display` hide the password, if any.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }

    /// The URL with its password, for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", redact_url(&self.0))
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// Replaces the password of `scheme://user:password@host/…` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..rest_start],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// The complete, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Directory for the SQLite file and the demo JWT key.
    pub data_dir: PathBuf,
    /// Where the data lives; the scheme picks the backend.
    pub database_url: DatabaseUrl,
    /// Connection pool size.
    pub database_max_connections: u32,
    /// HS256 key for access tokens. `None` only for commands that issue no
    /// tokens (`migrate`, `user add`); `serve` refuses to start without one.
    pub jwt_secret: Option<Secret<Vec<u8>>>,
    /// JWT `iss`, checked on every request.
    pub jwt_issuer: String,
    /// JWT `aud`, checked on every request.
    pub jwt_audience: String,
    /// Lifetime of an access token (short: it cannot be revoked).
    pub access_token_ttl: Duration,
    /// Lifetime of a refresh token (long: a phone offline for two weeks must
    /// still be able to sync when it comes back).
    pub refresh_token_ttl: Duration,
    /// Largest HTTP request body accepted.
    pub body_limit_bytes: usize,
    /// Time limit of one HTTP request (not applied to the WebSocket route).
    pub request_timeout: Duration,
    /// How long a client may take to send a request's head, from the moment
    /// the server waits for it: on a new connection, and between requests on
    /// a kept-alive one. Past it the connection is closed (slow or idle
    /// clients cannot hold sockets).
    pub header_read_timeout: Duration,
    /// Largest document (snapshot plus chunks) the sync endpoint accepts.
    pub max_document_bytes: usize,
    /// How many document merges may run at once (bounds CPU and memory).
    pub max_concurrent_merges: usize,
    /// Deepest nesting of objects (maps, lists, text inside each other) the
    /// sync endpoint stores; deeper documents are refused before merging,
    /// because code that walks a document recursively would overflow its stack.
    pub max_nesting_depth: usize,
    /// How often an open sync connection checks that its user is still
    /// enabled (it also ends when its access token expires): the longest a
    /// disabled user's open socket can go on.
    pub session_check: Duration,
    /// A sync connection that sends nothing, not even an answer to the
    /// server's pings (sent every third of this), for this long is closed:
    /// a phone that lost its network does not hold a socket and a task.
    pub sync_idle_timeout: Duration,
    /// Longest one message may take to go out on a sync socket (the peer
    /// reading it); past it the connection is closed. A phone that stops
    /// reading fills the socket's buffers, and its connection would
    /// otherwise wait on it for ever. What it had sent is stored already;
    /// it syncs again when it reconnects.
    pub sync_send_timeout: Duration,
    /// `/metrics` answers requests with `Authorization: Bearer <this>`; with
    /// no token configured, it answers only clients on this machine
    /// (loopback), so a public deployment does not publish its counters.
    pub metrics_token: Option<Secret<String>>,
    /// Open sync connections one user may have at once (a cadre has a phone
    /// or two; more is a runaway client). Further upgrades answer 429.
    pub max_sync_connections_per_user: usize,
    /// Open sync connections from one address at once (a village office
    /// behind one NAT has several users). Further upgrades answer 429.
    pub max_sync_connections_per_address: usize,
    /// Distinct documents one sync connection may ask about (each costs
    /// database look-ups); past it the connection is closed with an error.
    /// A cadre has one diary a year and one contacts document.
    pub max_documents_per_connection: usize,
    /// Documents one user may own: syncing a new document id past it is
    /// refused with an error, nothing stored; their existing documents keep
    /// syncing. A cadre has a diary a year and a contacts document.
    pub max_documents_per_user: usize,
    /// Bytes one user's documents may take in the store (snapshots plus
    /// chunks, summed over their documents): a merge that would pass it is
    /// refused with an error, nothing stored.
    pub max_stored_bytes_per_user: u64,
    /// Bytes of received sync frames one user may have being decoded and
    /// merged at once, over all their connections (frames wait for room,
    /// briefly; then the connection is closed with an error). Also caps the
    /// largest frame. At most `u32::MAX`.
    pub max_buffered_bytes_per_user: usize,
    /// The largest sync frame a connection takes (it is also capped at the
    /// document limit and at `max_buffered_bytes_per_user`). The WebSocket
    /// layer reads a frame whole before the budget above sees it, so one
    /// user's connections hold at most `max_sync_connections_per_user` times
    /// this while reading. A year's diary of text is far smaller.
    pub max_message_bytes: usize,
    /// Estimated memory the documents held live in memory (one copy per
    /// document being synced, merged in place) may take together; past it
    /// the least recently used are dropped (they are stored; the next sync
    /// of one loads it again).
    pub live_documents_memory_bytes: usize,
    /// A live document unused for this long is dropped from memory.
    pub live_document_idle: Duration,
    /// Failed logins of one username (known or not) before each further
    /// failure locks it for twice as long as the last (1 s, 2 s, … 15 min).
    pub login_free_failures_per_user: u32,
    /// The same per client address; higher, as a village office shares one.
    pub login_free_failures_per_address: u32,
    /// Password checks (argon2: tens of ms and 19 MiB each) running at once;
    /// a login that gets no turn within 2 s answers 503.
    pub concurrent_password_checks: usize,
    /// Visit quotas per post and the feedback and satisfaction targets the
    /// statistics measure against (`[quotas]`; see [`crate::stats::Quotas`]).
    pub quotas: crate::stats::Quotas,
}

impl Config {
    /// The limits on documents held live in memory.
    pub fn live_limits(&self) -> crate::sync::LiveLimits {
        crate::sync::LiveLimits {
            memory_bytes: self.live_documents_memory_bytes,
            idle: self.live_document_idle,
        }
    }

    /// The login limits' settings.
    pub fn login_limits(&self) -> crate::auth::limits::LoginLimitSettings {
        crate::auth::limits::LoginLimitSettings {
            free_failures_per_user: self.login_free_failures_per_user,
            free_failures_per_address: self.login_free_failures_per_address,
            concurrent_password_checks: self.concurrent_password_checks,
        }
    }

    /// Built-in defaults, with `data_dir` = `./data` and no JWT key.
    pub fn defaults() -> Self {
        let data_dir = PathBuf::from("./data");
        Config {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            database_url: default_database_url(&data_dir),
            data_dir,
            database_max_connections: 8,
            jwt_secret: None,
            jwt_issuer: "visit-diary".to_owned(),
            jwt_audience: "visit-diary".to_owned(),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(15),
            max_document_bytes: 32 * 1024 * 1024,
            max_concurrent_merges: 8,
            max_nesting_depth: 64,
            session_check: Duration::from_secs(30),
            sync_idle_timeout: Duration::from_secs(120),
            sync_send_timeout: Duration::from_secs(30),
            metrics_token: None,
            max_sync_connections_per_user: 8,
            max_sync_connections_per_address: 64,
            max_documents_per_connection: 1000,
            max_documents_per_user: 50,
            max_stored_bytes_per_user: 256 * 1024 * 1024,
            max_buffered_bytes_per_user: 64 * 1024 * 1024,
            max_message_bytes: 8 * 1024 * 1024,
            live_documents_memory_bytes: 512 * 1024 * 1024,
            live_document_idle: Duration::from_secs(300),
            login_free_failures_per_user: 5,
            login_free_failures_per_address: 50,
            concurrent_password_checks: 4,
            quotas: crate::stats::Quotas::default(),
        }
    }

    /// Defaults for tests: everything under `data_dir`, the given key.
    pub fn for_tests(data_dir: &Path, jwt_secret: &[u8]) -> Self {
        Config {
            database_url: default_database_url(data_dir),
            data_dir: data_dir.to_owned(),
            jwt_secret: Some(Secret::new(jwt_secret.to_vec())),
            ..Config::defaults()
        }
    }

    /// Builds the configuration from all layers. `env` looks a variable up
    /// (pass `|k| std::env::var(k).ok()`; tests pass a map).
    pub fn load(
        options: &LoadOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = match &options.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let defaults = Config::defaults();

        let data_dir = options
            .data_dir
            .clone()
            .or_else(|| env(env::DATA_DIR).map(PathBuf::from))
            .or(file.server.data_dir)
            .unwrap_or(defaults.data_dir);
        let host = options
            .host
            .clone()
            .or_else(|| env(env::HOST))
            .or(file.server.host)
            .unwrap_or(defaults.host);
        let port = match options.port {
            Some(p) => p,
            None => env_parse(&env, env::PORT)?
                .or(file.server.port)
                .unwrap_or(defaults.port),
        };
        let database_url = env(env::DATABASE_URL)
            .or(file.database.url)
            .map(DatabaseUrl::new)
            .unwrap_or_else(|| default_database_url(&data_dir));

        let secret_text = env(env::JWT_SECRET).or(file.auth.jwt_secret);
        let jwt_secret = match secret_text {
            Some(text) => Some(Secret::new(parse_jwt_secret(&text)?)),
            None if options.demo => Some(Secret::new(load_or_create_demo_secret(&data_dir)?)),
            None if options.require_jwt_secret => return Err(ConfigError::MissingJwtSecret),
            None => None,
        };

        let layer = Layers { env: &env };
        let config = Config {
            host,
            port,
            database_url,
            database_max_connections: layer.parsed(
                env::DATABASE_MAX_CONNECTIONS,
                file.database.max_connections,
                defaults.database_max_connections,
            )?,
            jwt_secret,
            jwt_issuer: layer.text(env::JWT_ISSUER, file.auth.issuer, defaults.jwt_issuer),
            jwt_audience: layer.text(env::JWT_AUDIENCE, file.auth.audience, defaults.jwt_audience),
            access_token_ttl: layer.secs(
                env::ACCESS_TOKEN_TTL_SECS,
                file.auth.access_token_ttl_secs,
                defaults.access_token_ttl,
            )?,
            refresh_token_ttl: layer.secs(
                env::REFRESH_TOKEN_TTL_SECS,
                file.auth.refresh_token_ttl_secs,
                defaults.refresh_token_ttl,
            )?,
            body_limit_bytes: layer.parsed(
                env::BODY_LIMIT_BYTES,
                file.server.body_limit_bytes,
                defaults.body_limit_bytes,
            )?,
            request_timeout: layer.secs(
                env::REQUEST_TIMEOUT_SECS,
                file.server.request_timeout_secs,
                defaults.request_timeout,
            )?,
            header_read_timeout: layer.secs(
                env::HEADER_READ_TIMEOUT_SECS,
                file.server.header_read_timeout_secs,
                defaults.header_read_timeout,
            )?,
            max_document_bytes: layer.parsed(
                env::MAX_DOCUMENT_BYTES,
                file.sync.max_document_bytes,
                defaults.max_document_bytes,
            )?,
            max_concurrent_merges: layer.parsed(
                env::MAX_CONCURRENT_MERGES,
                file.sync.max_concurrent_merges,
                defaults.max_concurrent_merges,
            )?,
            max_nesting_depth: layer.parsed(
                env::MAX_NESTING_DEPTH,
                file.sync.max_nesting_depth,
                defaults.max_nesting_depth,
            )?,
            session_check: layer.secs(
                env::SESSION_CHECK_SECS,
                file.sync.session_check_secs,
                defaults.session_check,
            )?,
            sync_idle_timeout: layer.secs(
                env::SYNC_IDLE_TIMEOUT_SECS,
                file.sync.idle_timeout_secs,
                defaults.sync_idle_timeout,
            )?,
            sync_send_timeout: layer.secs(
                env::SYNC_SEND_TIMEOUT_SECS,
                file.sync.send_timeout_secs,
                defaults.sync_send_timeout,
            )?,
            metrics_token: env(env::METRICS_TOKEN)
                .or(file.auth.metrics_token)
                .filter(|t| !t.is_empty())
                .map(Secret::new),
            max_sync_connections_per_user: layer.parsed(
                env::MAX_SYNC_CONNECTIONS_PER_USER,
                file.sync.max_connections_per_user,
                defaults.max_sync_connections_per_user,
            )?,
            max_sync_connections_per_address: layer.parsed(
                env::MAX_SYNC_CONNECTIONS_PER_ADDRESS,
                file.sync.max_connections_per_address,
                defaults.max_sync_connections_per_address,
            )?,
            max_documents_per_connection: layer.parsed(
                env::MAX_DOCUMENTS_PER_CONNECTION,
                file.sync.max_documents_per_connection,
                defaults.max_documents_per_connection,
            )?,
            max_documents_per_user: layer.parsed(
                env::MAX_DOCUMENTS_PER_USER,
                file.sync.max_documents_per_user,
                defaults.max_documents_per_user,
            )?,
            max_stored_bytes_per_user: layer.parsed(
                env::MAX_STORED_BYTES_PER_USER,
                file.sync.max_stored_bytes_per_user,
                defaults.max_stored_bytes_per_user,
            )?,
            max_buffered_bytes_per_user: layer.parsed(
                env::MAX_BUFFERED_BYTES_PER_USER,
                file.sync.max_buffered_bytes_per_user,
                defaults.max_buffered_bytes_per_user,
            )?,
            max_message_bytes: layer.parsed(
                env::MAX_MESSAGE_BYTES,
                file.sync.max_message_bytes,
                defaults.max_message_bytes,
            )?,
            live_documents_memory_bytes: layer.parsed(
                env::LIVE_DOCUMENTS_MEMORY_BYTES,
                file.sync.live_documents_memory_bytes,
                defaults.live_documents_memory_bytes,
            )?,
            live_document_idle: layer.secs(
                env::LIVE_DOCUMENT_IDLE_SECS,
                file.sync.live_document_idle_secs,
                defaults.live_document_idle,
            )?,
            login_free_failures_per_user: layer.parsed(
                env::LOGIN_FREE_FAILURES_PER_USER,
                file.auth.login_free_failures_per_user,
                defaults.login_free_failures_per_user,
            )?,
            login_free_failures_per_address: layer.parsed(
                env::LOGIN_FREE_FAILURES_PER_ADDRESS,
                file.auth.login_free_failures_per_address,
                defaults.login_free_failures_per_address,
            )?,
            concurrent_password_checks: layer.parsed(
                env::CONCURRENT_PASSWORD_CHECKS,
                file.auth.concurrent_password_checks,
                defaults.concurrent_password_checks,
            )?,
            quotas: file.quotas,
            data_dir,
        };
        config.validate()?;
        Ok(config)
    }

    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        if self.jwt_issuer.is_empty() || self.jwt_audience.is_empty() {
            return invalid("JWT issuer and audience must not be empty");
        }
        if self.access_token_ttl.is_zero() || self.refresh_token_ttl.is_zero() {
            return invalid("token lifetimes must be positive");
        }
        if self.access_token_ttl >= self.refresh_token_ttl {
            return invalid("the access token must expire before the refresh token");
        }
        if self.body_limit_bytes == 0 || self.max_document_bytes == 0 {
            return invalid("size limits must be positive");
        }
        if self.request_timeout.is_zero()
            || self.session_check.is_zero()
            || self.sync_idle_timeout.is_zero()
            || self.sync_send_timeout.is_zero()
            || self.header_read_timeout.is_zero()
            || self.live_document_idle.is_zero()
        {
            return invalid("the request timeout and the session check interval must be positive");
        }
        if self.max_concurrent_merges == 0 || self.database_max_connections == 0 {
            return invalid("max_concurrent_merges and max_connections must be positive");
        }
        if self.max_sync_connections_per_user == 0
            || self.max_sync_connections_per_address == 0
            || self.max_documents_per_connection == 0
        {
            return invalid("sync connection and document limits must be positive");
        }
        if self.max_documents_per_user == 0
            || self.max_stored_bytes_per_user == 0
            || self.max_buffered_bytes_per_user == 0
            || self.max_message_bytes == 0
        {
            return invalid("per-user sync limits must be positive");
        }
        // The budget is a semaphore whose permits are bytes, taken as `u32`.
        if u32::try_from(self.max_buffered_bytes_per_user).is_err() {
            return invalid("max_buffered_bytes_per_user must be at most 4294967295");
        }
        if self.concurrent_password_checks == 0 {
            return invalid("concurrent_password_checks must be positive");
        }
        if let Err(message) = self.quotas.check() {
            return invalid(&message);
        }
        if crate::store::backend_for_url(self.database_url.expose()).is_none() {
            return invalid("the database URL must start with sqlite: or postgres:");
        }
        Ok(())
    }
}

/// What the command line contributes to [`Config::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Optional TOML file.
    pub config_file: Option<PathBuf>,
    /// `--demo`: without a configured JWT key, use (or create) the one in
    /// `<data-dir>/jwt-secret`.
    pub demo: bool,
    /// Fail when no JWT key is configured (set for `serve`).
    pub require_jwt_secret: bool,
    /// `--host`, if given.
    pub host: Option<String>,
    /// `--port`, if given.
    pub port: Option<u16>,
    /// `--data-dir`, if given.
    pub data_dir: Option<PathBuf>,
}

/// Why the configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// An environment variable does not parse.
    #[error("environment variable {name} is invalid: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `serve` without a JWT key and without `--demo`.
    #[error(
        "no JWT key: set JWT_SECRET (or [auth] jwt_secret in the config file), or run with --demo"
    )]
    MissingJwtSecret,
    /// The JWT key is too short or malformed.
    #[error("invalid JWT key: {0}")]
    BadJwtSecret(String),
    /// The demo key file could not be read or written.
    #[error("cannot use demo JWT key file {path}")]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value that cannot work (see the message).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// `sqlite://<data-dir>/server.db`.
pub fn default_database_url(data_dir: &Path) -> DatabaseUrl {
    DatabaseUrl::new(format!("sqlite://{}", data_dir.join("server.db").display()))
}

/// Decodes a JWT key: `hex:<digits>`, or 64+ hex digits, is hex; anything
/// else is used as the bytes of the string. At least 32 bytes either way.
pub fn parse_jwt_secret(text: &str) -> Result<Vec<u8>, ConfigError> {
    let text = text.trim();
    let bytes = if let Some(digits) = text.strip_prefix("hex:") {
        hex::decode(digits).map_err(|e| ConfigError::BadJwtSecret(format!("bad hex: {e}")))?
    } else if text.len() >= 2 * MIN_JWT_SECRET_BYTES
        && text.len().is_multiple_of(2)
        && text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        hex::decode(text).map_err(|e| ConfigError::BadJwtSecret(format!("bad hex: {e}")))?
    } else {
        text.as_bytes().to_vec()
    };
    if bytes.len() < MIN_JWT_SECRET_BYTES {
        return Err(ConfigError::BadJwtSecret(format!(
            "it must be at least {MIN_JWT_SECRET_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// Reads `<data-dir>/jwt-secret` or creates it with 32 random bytes (hex).
fn load_or_create_demo_secret(data_dir: &Path) -> Result<Vec<u8>, ConfigError> {
    let path = data_dir.join(DEMO_JWT_SECRET_FILE);
    let file_err = |source| ConfigError::SecretFile {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_jwt_secret(&format!("hex:{}", text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir).map_err(file_err)?;
            let secret: [u8; 32] = rand::random();
            write_private_file(&path, hex::encode(secret).as_bytes()).map_err(file_err)?;
            tracing::warn!(
                path = %path.display(),
                "demo mode: no JWT_SECRET configured, generated a random key and saved it; \
                 set JWT_SECRET for production"
            );
            Ok(secret.to_vec())
        }
        Err(e) => Err(file_err(e)),
    }
}

/// Creates a file readable only by its owner (where the platform allows).
fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// One setting from its layers, strongest first: the environment variable
/// `name`, then the file's value, then the default.
struct Layers<'a, E> {
    env: &'a E,
}

impl<E: Fn(&str) -> Option<String>> Layers<'_, E> {
    fn text(&self, name: &'static str, file: Option<String>, default: String) -> String {
        (self.env)(name).or(file).unwrap_or(default)
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        name: &'static str,
        file: Option<T>,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        Ok(env_parse(self.env, name)?.or(file).unwrap_or(default))
    }

    /// A duration given in whole seconds.
    fn secs(
        &self,
        name: &'static str,
        file: Option<u64>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        Ok(env_parse::<u64>(self.env, name)?
            .or(file)
            .map_or(default, Duration::from_secs))
    }
}

fn env_parse<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<Option<T>, ConfigError>
where
    T::Err: fmt::Display,
{
    match env(name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e: T::Err| ConfigError::Env {
                name,
                message: e.to_string(),
            }),
    }
}

// The TOML file. Every key is optional; unknown keys are errors so that a
// typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    database: DatabaseSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    sync: SyncSection,
    #[serde(default)]
    quotas: crate::stats::Quotas,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    host: Option<String>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    body_limit_bytes: Option<usize>,
    request_timeout_secs: Option<u64>,
    header_read_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DatabaseSection {
    url: Option<String>,
    max_connections: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    jwt_secret: Option<String>,
    issuer: Option<String>,
    audience: Option<String>,
    access_token_ttl_secs: Option<u64>,
    refresh_token_ttl_secs: Option<u64>,
    login_free_failures_per_user: Option<u32>,
    login_free_failures_per_address: Option<u32>,
    concurrent_password_checks: Option<usize>,
    metrics_token: Option<String>,
}

impl fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSection")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field(
                "login_free_failures_per_user",
                &self.login_free_failures_per_user,
            )
            .field(
                "login_free_failures_per_address",
                &self.login_free_failures_per_address,
            )
            .field(
                "concurrent_password_checks",
                &self.concurrent_password_checks,
            )
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SyncSection {
    max_document_bytes: Option<usize>,
    max_concurrent_merges: Option<usize>,
    max_nesting_depth: Option<usize>,
    session_check_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    send_timeout_secs: Option<u64>,
    max_connections_per_user: Option<usize>,
    max_connections_per_address: Option<usize>,
    max_documents_per_connection: Option<usize>,
    max_documents_per_user: Option<usize>,
    max_stored_bytes_per_user: Option<u64>,
    max_buffered_bytes_per_user: Option<usize>,
    max_message_bytes: Option<usize>,
    live_documents_memory_bytes: Option<usize>,
    live_document_idle_secs: Option<u64>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_without_file_or_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = LoadOptions {
            data_dir: Some(dir.path().to_owned()),
            ..LoadOptions::default()
        };
        let config = Config::load(&options, env_of(&[])).expect("load");
        assert_eq!(config.port, 8080);
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.jwt_issuer, "visit-diary");
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(30 * 86400));
        assert!(config.jwt_secret.is_none());
        assert_eq!(
            config.database_url.expose(),
            format!("sqlite://{}/server.db", dir.path().display())
        );
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nport = 9000\nhost = \"0.0.0.0\"\n[auth]\nissuer = \"file-iss\"\njwt_secret = \"{KEY}\"\naccess_token_ttl_secs = 60\n"
            ),
        )
        .expect("write");
        let env = env_of(&[
            (env::JWT_ISSUER, "env-iss"),
            (env::PORT, "9001"),
            (env::DATABASE_URL, "postgres://u:pw@db/x"),
        ]);
        let options = LoadOptions {
            config_file: Some(path),
            host: Some("::1".to_owned()),
            ..LoadOptions::default()
        };
        let config = Config::load(&options, env).expect("load");
        assert_eq!(config.jwt_issuer, "env-iss", "env wins over the file");
        assert_eq!(config.port, 9001, "env wins over the file");
        assert_eq!(config.host, "::1", "an explicit flag wins over the file");
        assert_eq!(config.access_token_ttl, Duration::from_secs(60));
        assert_eq!(
            config.jwt_secret.as_ref().map(|s| s.expose().len()),
            Some(32)
        );
        let debug = format!("{config:?}");
        assert!(!debug.contains("pw@"), "password leaked: {debug}");
        assert!(!debug.contains(KEY), "key leaked");
        assert!(!debug.contains("0x01, 0x23"), "key bytes leaked");
    }

    #[test]
    fn the_example_file_is_valid_and_shows_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("server.example.toml");
        let options = LoadOptions {
            config_file: Some(path),
            ..LoadOptions::default()
        };
        let example = Config::load(&options, env_of(&[])).expect("example loads");
        let defaults = Config::defaults();
        assert_eq!(example.host, defaults.host);
        assert_eq!(example.port, defaults.port);
        assert_eq!(example.data_dir, defaults.data_dir);
        assert_eq!(example.database_url, defaults.database_url);
        assert_eq!(
            example.database_max_connections,
            defaults.database_max_connections
        );
        assert_eq!(example.jwt_issuer, defaults.jwt_issuer);
        assert_eq!(example.jwt_audience, defaults.jwt_audience);
        assert_eq!(example.access_token_ttl, defaults.access_token_ttl);
        assert_eq!(example.refresh_token_ttl, defaults.refresh_token_ttl);
        assert_eq!(example.body_limit_bytes, defaults.body_limit_bytes);
        assert_eq!(example.request_timeout, defaults.request_timeout);
        assert_eq!(
            (example.sync_idle_timeout, example.sync_send_timeout),
            (defaults.sync_idle_timeout, defaults.sync_send_timeout)
        );
        assert_eq!(example.max_document_bytes, defaults.max_document_bytes);
        assert_eq!(
            example.max_concurrent_merges,
            defaults.max_concurrent_merges
        );
        assert_eq!(
            (
                example.max_documents_per_user,
                example.max_stored_bytes_per_user,
                example.max_buffered_bytes_per_user,
                example.max_message_bytes
            ),
            (
                defaults.max_documents_per_user,
                defaults.max_stored_bytes_per_user,
                defaults.max_buffered_bytes_per_user,
                defaults.max_message_bytes
            )
        );

        // The keys shown commented out are real keys too.
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("server.example.toml"),
        )
        .expect("read example");
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.starts_with("url =") || rest.starts_with("jwt_secret =") => rest,
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("full.toml");
        std::fs::write(&path, uncommented).expect("write");
        let options = LoadOptions {
            config_file: Some(path),
            ..LoadOptions::default()
        };
        let full = Config::load(&options, env_of(&[])).expect("uncommented example loads");
        assert!(full.jwt_secret.is_some());
        assert!(full.database_url.expose().starts_with("postgres://"));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "[server]\nprot = 1\n").expect("write");
        let options = LoadOptions {
            config_file: Some(path),
            ..LoadOptions::default()
        };
        assert!(matches!(
            Config::load(&options, env_of(&[])),
            Err(ConfigError::Parse { .. })
        ));
    }

    #[test]
    fn bad_env_values_are_errors() {
        let options = LoadOptions::default();
        let err = Config::load(&options, env_of(&[(env::PORT, "eighty")])).expect_err("bad port");
        assert!(matches!(
            err,
            ConfigError::Env {
                name: env::PORT,
                ..
            }
        ));
    }

    #[test]
    fn per_user_sync_limits_come_from_env_and_are_checked() {
        let options = LoadOptions::default();
        let config = Config::load(
            &options,
            env_of(&[
                (env::MAX_DOCUMENTS_PER_USER, "3"),
                (env::MAX_STORED_BYTES_PER_USER, "1000"),
                (env::MAX_BUFFERED_BYTES_PER_USER, "2000"),
                (env::MAX_MESSAGE_BYTES, "500"),
            ]),
        )
        .expect("load");
        assert_eq!(
            (
                config.max_documents_per_user,
                config.max_stored_bytes_per_user,
                config.max_buffered_bytes_per_user,
                config.max_message_bytes
            ),
            (3, 1000, 2000, 500)
        );
        for (name, value) in [
            (env::MAX_DOCUMENTS_PER_USER, "0"),
            (env::MAX_BUFFERED_BYTES_PER_USER, "4294967296"),
        ] {
            assert!(
                matches!(
                    Config::load(&options, env_of(&[(name, value)])),
                    Err(ConfigError::Invalid(_))
                ),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn the_sync_send_timeout_comes_from_the_file_then_env_and_is_positive() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.toml");
        std::fs::write(&path, "[sync]\nsend_timeout_secs = 7\n").expect("write");
        let options = LoadOptions {
            config_file: Some(path),
            ..LoadOptions::default()
        };
        assert_eq!(
            Config::defaults().sync_send_timeout,
            Duration::from_secs(30)
        );
        let from_file = Config::load(&options, env_of(&[])).expect("load");
        assert_eq!(from_file.sync_send_timeout, Duration::from_secs(7));
        let from_env =
            Config::load(&options, env_of(&[(env::SYNC_SEND_TIMEOUT_SECS, "2")])).expect("load");
        assert_eq!(
            from_env.sync_send_timeout,
            Duration::from_secs(2),
            "env wins over the file"
        );
        assert!(matches!(
            Config::load(&options, env_of(&[(env::SYNC_SEND_TIMEOUT_SECS, "0")])),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn serve_requires_a_key_unless_demo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut options = LoadOptions {
            data_dir: Some(dir.path().to_owned()),
            require_jwt_secret: true,
            ..LoadOptions::default()
        };
        assert!(matches!(
            Config::load(&options, env_of(&[])),
            Err(ConfigError::MissingJwtSecret)
        ));

        options.demo = true;
        let first = Config::load(&options, env_of(&[])).expect("demo load");
        let second = Config::load(&options, env_of(&[])).expect("demo reload");
        let key = first.jwt_secret.expect("generated");
        assert_eq!(key.expose().len(), 32);
        assert_eq!(Some(key), second.jwt_secret, "the demo key is reused");
        assert!(dir.path().join(DEMO_JWT_SECRET_FILE).exists());
    }

    #[test]
    fn jwt_secret_forms() {
        assert_eq!(parse_jwt_secret(KEY).expect("hex").len(), 32);
        assert_eq!(
            parse_jwt_secret(&format!("hex:{KEY}")).expect("hex").len(),
            32
        );
        let plain = "a plain passphrase of thirty-two+ bytes";
        assert_eq!(
            parse_jwt_secret(plain).expect("plain"),
            plain.as_bytes().to_vec()
        );
        assert!(parse_jwt_secret("short").is_err());
        assert!(parse_jwt_secret("hex:zz").is_err());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/vd"),
            "postgres://app:***@db:5432/vd"
        );
        assert_eq!(redact_url("postgres://app@db/vd"), "postgres://app@db/vd");
        assert_eq!(
            redact_url("sqlite://./data/server.db"),
            "sqlite://./data/server.db"
        );
    }
}
