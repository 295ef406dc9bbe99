//! The command line: `dashboard [serve]` runs the web server, `dashboard user …` manages users.

use std::io::{self, BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use aegis_core::engine::Target;

use crate::apikeys::{self, Scope};
use crate::config::{DEFAULT_ASSETS, ServeConfig};
use crate::database::Database;
use crate::users::{self, Role};

/// Aegis dashboard: investigate flagged welfare payments.
#[derive(Debug, Parser)]
#[command(name = "dashboard", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub db: aegis_core::cli::DbArg,

    #[command(flatten)]
    pub modeling: aegis_core::cli::ModelingArg,

    /// Address to listen on.
    #[arg(long, env = "AEGIS_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Static files (CSS, JS, vendored ECharts and the India outline).
    #[arg(long, env = "AEGIS_ASSETS", default_value = DEFAULT_ASSETS)]
    pub assets: PathBuf,

    /// Mark the session cookie Secure (set this when serving behind HTTPS).
    #[arg(long)]
    pub secure_cookies: bool,

    /// End a session after this many minutes without use (pages, forms, exports; the live
    /// stream does not count). Sessions end 8 hours after sign-in in any case.
    #[arg(long, env = "AEGIS_IDLE_MINUTES", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=480))]
    pub idle_minutes: u64,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (the default).
    Serve,
    /// Manage dashboard users.
    #[command(subcommand)]
    User(UserCommand),
    /// Load past verdicts.
    #[command(subcommand)]
    Verdicts(VerdictsCommand),
    /// Manage API keys of machine clients (`/api/v1`).
    #[command(subcommand)]
    Apikey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once, on standard output, and stored only as a hash.
    Add {
        name: String,
        /// What the key may do (repeat or separate with commas): ingest (send payments),
        /// read (the alerts feed), verdicts (record verdicts).
        #[arg(long = "scope", value_enum, required = true, value_delimiter = ',')]
        scopes: Vec<Scope>,
    },
    /// List keys (never their secrets) with their use counts.
    List,
    /// Revoke a live key: its next request is refused.
    Revoke { name: String },
}

#[derive(Debug, Subcommand)]
pub enum VerdictsCommand {
    /// Import an investigation record (CSV: transaction_ref, verdict, optional decided_at,
    /// note, auditor, and reason for a row that overturns a final verdict), all or nothing.
    Import { file: PathBuf },
    /// Simulated auditors (generated data only): review each event day's top alerts and
    /// record their ground truth after a delay, as the disabled user `simulated-auditor`.
    Simulate {
        /// Alerts reviewed per event day, highest score first, each incident's alerts of the
        /// day together.
        #[arg(long, default_value_t = 100)]
        per_day: usize,
        /// Days from the end of an alert's day to its verdict.
        #[arg(long, default_value_t = 7)]
        delay_days: i64,
        /// Review the days due by this time (IST `YYYY-MM-DD HH:MM:SS`); by default the newest
        /// payment's time.
        #[arg(long, value_parser = parse_time)]
        through: Option<aegis_core::time::EventTime>,
        /// Follow-ups: on each day after a fraud was confirmed at a counter (in the week
        /// before), also review this many of the counter's payments of the day.
        #[arg(long, default_value_t = 0)]
        follow_ups: usize,
        /// Control sample: also review this many of each day's payments the detector scored as
        /// normal (`50`), or this share per thousand of them (`2/1000`, drawing in proportion to
        /// the day), drawn at random as the Control page draws them, to find what it misses.
        #[arg(long)]
        control: Option<aegis_core::control::Size>,
    },
}

fn parse_time(text: &str) -> Result<aegis_core::time::EventTime, String> {
    aegis_core::time::parse_timestamp(text).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input (asked twice on a terminal).
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
    },
    /// List users.
    List,
    /// Disable a user and end their sessions.
    Disable { name: String },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let db = cli.db.db;
    match cli.command {
        None | Some(Command::Serve) => {
            let config = ServeConfig {
                db,
                modeling: cli.modeling.modeling,
                assets: cli.assets,
                addr: cli.addr,
                secure_cookies: cli.secure_cookies,
                idle: Duration::from_secs(cli.idle_minutes * 60),
                live_interval: Duration::from_secs(2),
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::server::serve(config))
        }
        Some(Command::User(command)) => run_user_command(&db, command),
        Some(Command::Verdicts(VerdictsCommand::Import { file })) => import_verdicts(&db, &file),
        Some(Command::Verdicts(VerdictsCommand::Simulate {
            per_day,
            delay_days,
            through,
            follow_ups,
            control,
        })) => {
            if per_day == 0 || delay_days < 0 {
                bail!("--per-day must be at least 1 and --delay-days at least 0");
            }
            let db = open(&db)?;
            let plan = crate::simulated_auditors::ReviewPlan {
                per_day,
                delay: delay_days * aegis_core::time::DAY,
                through,
                follow_ups,
                control,
            };
            let reviewed =
                crate::simulated_auditors::review(&db, plan, aegis_core::time::now_millis())?;
            println!(
                "simulated auditors: {} confirmed frauds and {} dismissals recorded over {} due days ({} follow-ups; {} in the control sample, {} of them confirmed); top alerts left alone: {} already judged, {} without ground truth",
                reviewed.confirmed,
                reviewed.dismissed,
                reviewed.days,
                reviewed.follow_ups,
                reviewed.control,
                reviewed.control_confirmed,
                reviewed.already_judged,
                reviewed.without_truth
            );
            Ok(())
        }
        Some(Command::Apikey(command)) => run_apikey_command(&db, command),
    }
}

fn open(target: &Target) -> anyhow::Result<Database> {
    Database::open(target).with_context(|| format!("opening the database {target}"))
}

fn run_apikey_command(target: &Target, command: ApiKeyCommand) -> anyhow::Result<()> {
    let db = open(target)?;
    let now = aegis_core::time::now_millis();
    let when = |millis: Option<i64>| millis.map(crate::views::format_millis);
    match command {
        ApiKeyCommand::Add { name, scopes } => {
            let key = db.write(|conn| apikeys::create(conn, &name, &scopes, now))?;
            let scopes: Vec<&str> = scopes.iter().map(|scope| scope.as_str()).collect();
            eprintln!(
                "created API key {name} (scopes {}). It is shown this once: store it now, and send it as `Authorization: Bearer KEY`.",
                scopes.join(",")
            );
            println!("{key}");
        }
        ApiKeyCommand::List => {
            let keys = db.read(apikeys::list)?;
            if keys.is_empty() {
                println!(
                    "no API keys: run `cargo run -p dashboard -- apikey add NAME --scope ingest`"
                );
            }
            for key in keys {
                let state = match when(key.revoked_at) {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_string(),
                };
                println!(
                    "{:<24} aegis_{}_…  {:<22} {:<28} created {}  {} uses, last {}",
                    key.name,
                    key.prefix,
                    key.scopes,
                    state,
                    crate::views::format_millis(key.created_at),
                    key.uses,
                    when(key.last_used_at).unwrap_or_else(|| "never".into())
                );
            }
        }
        ApiKeyCommand::Revoke { name } => {
            db.write(|conn| apikeys::revoke(conn, &name, now))?;
            println!("revoked {name}");
        }
    }
    Ok(())
}

fn import_verdicts(target: &Target, file: &std::path::Path) -> anyhow::Result<()> {
    let db = open(target)?;
    let now = aegis_core::time::now_millis();
    let report = crate::verdict_import::import_verdicts(&db, file, now)?;
    if !report.unknown_columns.is_empty() {
        eprintln!(
            "ignored unknown column(s): {}",
            report.unknown_columns.join(", ")
        );
    }
    aegis_core::tabular::report_bad_rows(
        file,
        report.bad_rows.iter().map(|b| (b.line, b.reason.as_str())),
    );
    if !report.bad_rows.is_empty() {
        bail!(
            "{} bad row(s) in {}: no verdict was imported; fix them and import the file again",
            report.bad_rows.len(),
            file.display()
        );
    }
    println!(
        "imported {} verdicts from {}",
        report.imported,
        file.display()
    );
    Ok(())
}

fn run_user_command(target: &Target, command: UserCommand) -> anyhow::Result<()> {
    let db = open(target)?;
    let now = aegis_core::time::now_millis();
    match command {
        UserCommand::Add { name, role } => {
            users::validate_username(&name)?;
            let password = read_new_password(&name)?;
            db.write(|conn| users::add_user(conn, &name, &password, role, now))?;
            println!("added user {name} (role {role})");
        }
        UserCommand::List => {
            let list = db.read(|conn| users::list_users(conn, now))?;
            if list.is_empty() {
                println!("no users: run `cargo run -p dashboard -- user add NAME --role admin`");
            }
            for user in list {
                let state = if user.disabled {
                    "disabled".to_string()
                } else if let Some(until) = &user.locked_until {
                    format!("locked until {until}")
                } else {
                    "active".to_string()
                };
                println!(
                    "{:<24} {:<8} {:<32} created {}",
                    user.username, user.role, state, user.created_at
                );
            }
        }
        UserCommand::Disable { name } => {
            db.write(|conn| users::disable_user(conn, &name, "cli", now))?;
            println!("disabled {name}");
        }
    }
    Ok(())
}

/// Turns terminal echo off while alive (best effort, through `stty`).
struct NoEcho {
    active: bool,
}

impl NoEcho {
    fn new() -> NoEcho {
        let active = Process::new("stty")
            .arg("-echo")
            .stdin(Stdio::inherit())
            .status()
            .is_ok_and(|status| status.success());
        NoEcho { active }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if self.active {
            let _ = Process::new("stty")
                .arg("echo")
                .stdin(Stdio::inherit())
                .status();
        }
    }
}

fn read_line(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The new user's password: typed twice without echo on a terminal, else one line of stdin.
fn read_new_password(name: &str) -> anyhow::Result<String> {
    let stdin = io::stdin();
    let password = if stdin.is_terminal() {
        let _no_echo = NoEcho::new();
        let mut input = stdin.lock();
        eprint!(
            "Password for {name} (at least {} characters): ",
            crate::password::MIN_PASSWORD_CHARS
        );
        io::stderr().flush().ok();
        let first = read_line(&mut input)?;
        eprint!("\nRepeat the password: ");
        io::stderr().flush().ok();
        let second = read_line(&mut input)?;
        eprintln!();
        if first != second {
            bail!("the two passwords differ: nothing was changed");
        }
        first
    } else {
        read_line(&mut stdin.lock())?
    };
    crate::password::validate_new_password(&password)?;
    Ok(password)
}
