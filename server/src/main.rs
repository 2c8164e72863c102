//! `server`: the command line of the visit diary server.
//!
//! ```text
//! server serve [--port P] [--host H] [--data-dir D] [--config FILE] [--demo] [--demo-password PW]
//! server migrate
//! server ledger rebuild
//! server user add --username U --role cadre|supervisor|admin --unit UNIT_CODE (--password-stdin | --password PW)
//! ```
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use server::config::{Config, LoadOptions};
use server::store::{NewAuditEntry, NewUser, Role};
use tracing_subscriber::EnvFilter;

/// Visit diary server: sync endpoint, document store, ledger and supervisor API.
///
/// Configuration comes from built-in defaults, then the TOML file given with
/// --config, then environment variables (DATABASE_URL, JWT_SECRET,
/// VISIT_DIARY_*; see server.example.toml), then the flags below.
#[derive(Debug, Parser)]
#[command(name = "server", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (creates the database schema if needed).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(CommonArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// The canonical ledger (台账) projected from the documents.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Copy the SQLite database to FILE, consistent as of one instant, while
    /// servers keep running (PostgreSQL: use pg_dump).
    Backup(BackupArgs),
    /// Put a backup in place as the database of a new data directory (the
    /// database must not exist yet), then apply newer migrations.
    Restore(BackupArgs),
}

#[derive(Debug, Args)]
struct BackupArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// The backup file (written by `backup`, which refuses to overwrite one;
    /// read by `restore`).
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Project every stored document again and replace its ledger rows.
    /// Safe while servers run: a document written meanwhile is projected again.
    Rebuild(CommonArgs),
}

/// Options every command shares.
#[derive(Debug, Args)]
struct CommonArgs {
    /// TOML configuration file (see server.example.toml).
    #[arg(long, value_name = "FILE", env = "VISIT_DIARY_CONFIG")]
    config: Option<PathBuf>,

    /// Data directory: the SQLite file and the demo JWT key live here
    /// [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Port to listen on [default: 8080].
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,

    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, value_name = "ADDR")]
    host: Option<String>,

    /// Seed the demo organisation (units and users) and print how to log in.
    /// Without JWT_SECRET, a random key is kept in <data-dir>/jwt-secret.
    #[arg(long)]
    demo: bool,

    /// Password of the demo accounts created by --demo.
    #[arg(
        long,
        value_name = "PW",
        default_value = "demo-pass",
        requires = "demo"
    )]
    demo_password: String,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user account.
    Add(UserAddArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("password_source").required(true).args(["password_stdin", "password"]))]
struct UserAddArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Login name (unique).
    #[arg(long)]
    username: String,

    /// Name shown to people; defaults to the username.
    #[arg(long)]
    display_name: Option<String>,

    /// What the user may do.
    #[arg(long, value_enum)]
    role: RoleArg,

    /// Code of the user's unit (for example `village1`).
    #[arg(long, value_name = "UNIT_CODE")]
    unit: String,

    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,

    /// The password (visible to other local users in the process list;
    /// prefer --password-stdin).
    #[arg(long, value_name = "PW")]
    password: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    /// Reads and writes their own documents.
    Cadre,
    /// Reads everything in their unit's subtree.
    Supervisor,
    /// Manages users and units.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Cadre => Role::Cadre,
            RoleArg::Supervisor => Role::Supervisor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let config = load_config(&args, |_| {})?;
            let store = server::open_store(&config)
                .await
                .context("migration failed")?;
            store.close().await;
            println!("database is up to date ({})", config.database_url);
            Ok(())
        }
        Command::User(UserCommand::Add(args)) => user_add(args).await,
        Command::Ledger(LedgerCommand::Rebuild(args)) => ledger_rebuild(args).await,
        Command::Backup(args) => {
            let config = load_config(&args.common, |_| {})?;
            let contents = server::backup::backup(config.database_url.expose(), &args.file)
                .await
                .context("backup failed")?;
            say(&format!(
                "backed up to {}: {} users, {} documents, {} ledger petitions",
                args.file.display(),
                contents.users,
                contents.documents,
                contents.petitions
            ));
            Ok(())
        }
        Command::Restore(args) => {
            let config = load_config(&args.common, |_| {})?;
            let contents = server::backup::restore(&args.file, config.database_url.expose())
                .await
                .context("restore failed")?;
            let store = server::open_store(&config)
                .await
                .context("cannot open the restored database")?;
            store.close().await;
            say(&format!(
                "restored {}: {} users, {} documents, {} ledger petitions",
                args.file.display(),
                contents.users,
                contents.documents,
                contents.petitions
            ));
            Ok(())
        }
    }
}

async fn ledger_rebuild(args: CommonArgs) -> anyhow::Result<()> {
    let config = load_config(&args, |_| {})?;
    let store = server::open_store(&config)
        .await
        .context("cannot open the database")?;
    let result = server::ledger::rebuild(store.as_ref(), |done, total| {
        if done == total || done % 10 == 0 {
            say(&format!("rebuilt {done}/{total} documents"));
        }
    })
    .await;
    store.close().await;
    let summary = result.context("ledger rebuild failed")?;
    say(&format!(
        "ledger rebuilt: {} documents, {} ledger rows, {} documents without a projection",
        summary.documents, summary.rows, summary.unprojectable
    ));
    Ok(())
}

fn load_config(
    common: &CommonArgs,
    adjust: impl FnOnce(&mut LoadOptions),
) -> anyhow::Result<Config> {
    let mut options = LoadOptions {
        config_file: common.config.clone(),
        data_dir: common.data_dir.clone(),
        ..LoadOptions::default()
    };
    adjust(&mut options);
    Config::load(&options, |name| std::env::var(name).ok()).context("invalid configuration")
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(&args.common, |options| {
        options.demo = args.demo;
        options.require_jwt_secret = true;
        options.host = args.host.clone();
        options.port = args.port;
    })?;
    let store = server::open_store(&config)
        .await
        .context("cannot open the database")?;
    if args.demo {
        let summary = server::seed_demo(store.as_ref(), &args.demo_password)
            .await
            .context("cannot seed the demo")?;
        tracing::info!(
            units_created = summary.units_created,
            users_created = summary.users_created,
            "demo organisation ready"
        );
        let records = server::demo::seed_demo_records(store.as_ref())
            .await
            .context("cannot seed the demo documents")?;
        say(&format!(
            "demo records: {} documents for {} cadres ({} visits, {} petitions, {} service cards)",
            records.documents, records.cadres, records.visits, records.petitions, records.cards
        ));
    }

    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    if args.demo {
        say(&server::demo::login_banner(&url, &args.demo_password));
    } else {
        say(&format!("Visit diary server listening on {url}"));
    }

    server::serve_with_store(config, store, listener, shutdown_signal())
        .await
        .context("server failed")
}

async fn user_add(args: UserAddArgs) -> anyhow::Result<()> {
    let password = match (args.password_stdin, args.password) {
        (true, _) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
        (false, Some(password)) => password,
        (false, None) => bail!("give --password-stdin or --password"),
    };
    if let Err(why) = server::auth::password::check_policy(&args.username, &password) {
        bail!("{why}");
    }

    let config = load_config(&args.common, |_| {})?;
    let store = server::open_store(&config)
        .await
        .context("cannot open the database")?;
    let unit = store
        .get_unit_by_code(&args.unit)
        .await?
        .with_context(|| format!("no unit with code {:?}", args.unit))?;
    let password_hash = server::auth::password::hash_password(password).await?;
    let user = store
        .create_user(NewUser {
            display_name: args.display_name.unwrap_or_else(|| args.username.clone()),
            username: args.username,
            role: args.role.into(),
            unit_id: unit.id,
            password_hash,
        })
        .await
        .context("cannot create the user")?;
    store
        .append_audit(NewAuditEntry {
            at: Utc::now(),
            user_id: None,
            action: "user.create".to_owned(),
            target: user.username.clone(),
            detail: format!("role={} unit={} via command line", user.role, unit.code),
            remote_addr: None,
        })
        .await?;
    store.close().await;
    println!(
        "created user {} (id {}, {} of {})",
        user.username, user.id, user.role, unit.name
    );
    Ok(())
}

/// Prints to stdout without `println!`'s panic when stdout is closed: a
/// server must not die because whoever started it stopped reading.
fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "cannot write to stdout");
    }
}

/// Completes on ctrl-c, or SIGTERM on Unix (what `docker stop` and systemd send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
