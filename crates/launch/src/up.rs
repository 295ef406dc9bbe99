//! `aegis up`: the whole live system from one command — build, generate and train if needed,
//! then simulator, monitor and dashboard together, with an auditor login printed.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aegis_core::engine::Target;
use anyhow::{Context, bail};
use rand::Rng;
use rand::distr::Alphanumeric;

use crate::procs::{self, Children, command};

/// Options of `aegis up`.
#[derive(Debug, Clone)]
pub struct UpConfig {
    pub db: Target,
    pub modeling: PathBuf,
    pub addr: String,
    pub rows: u64,
    pub rate: f64,
    pub logs: PathBuf,
    /// Feed through `POST /api/v1/payments` instead of the database.
    pub via_api: bool,
    /// Simulated auditors reviewing the alerts as the feed goes on (`None`: nobody reviews).
    pub auditors: Option<SimulatedAuditors>,
}

/// How the demo's simulated auditors work (`dashboard verdicts simulate`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedAuditors {
    pub per_day: usize,
    pub delay_days: i64,
    pub follow_ups: usize,
    /// Control sample: payments a day (or a share of the day's) the detector did not flag,
    /// reviewed at random.
    pub control: Option<aegis_core::control::Size>,
}

/// How often the simulated auditors look for days whose reviews are due.
const REVIEW_EVERY: Duration = Duration::from_secs(10);

/// A random password of `length` letters and digits.
pub fn random_password(length: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

/// Creates a dashboard user through the dashboard's own CLI (password on stdin); `db` is a
/// `--db` value.
pub fn create_user(db: &str, username: &str, role: &str, password: &str) -> anyhow::Result<()> {
    let mut child = command("dashboard", None)?
        .env("AEGIS_DB", db)
        .args(["user", "add", username, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let status = child.wait()?;
    if !status.success() {
        bail!("creating the {role} account {username} failed ({status})");
    }
    Ok(())
}

/// Creates an API key through the dashboard's own CLI and returns it (printed once on stdout).
pub fn create_api_key(db: &str, name: &str, scope: &str) -> anyhow::Result<String> {
    let output = command("dashboard", None)?
        .env("AEGIS_DB", db)
        .args(["apikey", "add", name, "--scope", scope])
        .stderr(Stdio::null())
        .output()?;
    if !output.status.success() {
        bail!("creating the API key {name} failed ({})", output.status);
    }
    let key = String::from_utf8(output.stdout)?.trim().to_string();
    if !key.starts_with("aegis_") {
        bail!("`dashboard apikey add` printed no key");
    }
    Ok(key)
}

/// Disables the users and revokes the keys an earlier run listed in `file` (lines `user NAME`
/// and `key NAME`). A database replaced since, or an account an admin removed, is no reason
/// to stop: what cannot be retired is said and passed over.
fn retire_earlier_accounts(db: &str, file: &std::path::Path) {
    let Ok(listed) = std::fs::read_to_string(file) else {
        return;
    };
    for line in listed.lines() {
        let (args, what): (Vec<&str>, &str) = match line.split_once(' ') {
            Some(("user", name)) => (
                vec!["user", "disable", name],
                "disabled the earlier run's account",
            ),
            Some(("key", name)) => (
                vec!["apikey", "revoke", name],
                "revoked the earlier run's API key",
            ),
            _ => continue,
        };
        let name = args[2];
        let retired = command("dashboard", None).and_then(|mut command| {
            Ok(command
                .env("AEGIS_DB", db)
                .args(&args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?)
        });
        match retired {
            Ok(status) if status.success() => println!("→ {what} {name}"),
            _ => println!(
                "→ could not retire the earlier run's {name}; `dashboard user list` shows it"
            ),
        }
    }
}

/// Payments stored in `db` (0 for an SQLite file that does not exist yet).
fn transaction_count(db: &Target) -> anyhow::Result<i64> {
    if let Target::Sqlite(path) = db
        && !path.exists()
    {
        return Ok(0);
    }
    Ok(db.open()?.transaction_count()?)
}

/// Runs one setup program on database `db` (given in the environment: a PostgreSQL URL's
/// password is not for `ps` to show).
fn run_step(name: &str, db: &str, args: &[&str]) -> anyhow::Result<()> {
    println!(
        "→ {name} --db {} {}",
        aegis_core::pg::redact(db),
        args.join(" ")
    );
    let status = command(name, None)?
        .env("AEGIS_DB", db)
        .args(args)
        .status()?;
    if !status.success() {
        bail!("`{name}` failed ({status}); see its message above");
    }
    Ok(())
}

/// Runs the live system until Ctrl-C.
pub fn run(config: &UpConfig) -> anyhow::Result<()> {
    let stop_requested = aegis_core::telemetry::stop_on_signals()?;
    println!("→ building the programs (the first build takes a while)");
    procs::build_programs()?;
    // The programs get the URL with its password; what is printed never shows it.
    let db_arg = config.db.as_arg();
    let db = db_arg.as_str();
    let shown = config.db.to_string();
    let modeling = config
        .modeling
        .to_str()
        .context("--modeling is not UTF-8")?;
    let stored = transaction_count(&config.db)?;
    // Another `launch` (or a monitor started by hand) already runs on this database: a second
    // would retire its accounts and feed the same database twice before its own monitor was
    // refused.
    if stored > 0 && config.db.open()?.monitor_running(&config.db)? {
        bail!(
            "a monitor already scores {shown}: is another `launch` running? Stop it first \
             (Ctrl-C), or pass --db to run on another database"
        );
    }
    // A stop asked for during a setup step (the signal handler only sets the flag) ends the
    // run after that step instead of starting the system anyway.
    let stopped = || {
        if stop_requested.load(Ordering::Relaxed) {
            bail!("stopped during setup; nothing was started");
        }
        Ok(())
    };
    stopped()?;
    if stored == 0 {
        run_step(
            "generate",
            db,
            &["--rows", &config.rows.to_string(), "--quiet"],
        )?;
    } else {
        println!("→ using the {stored} transactions already in {shown}");
    }
    // The monitor would refuse a model this build cannot use (another feature set after an
    // upgrade, unreadable files): train a fresh one instead of failing at start.
    match aegis_core::artifacts::check_usable(&config.modeling) {
        Ok(model) => println!("→ using model {} in {modeling}", model.model_version),
        Err(aegis_core::Error::ModelMissing { .. }) => {
            run_step("train", db, &["--modeling", modeling, "--quiet"])?;
        }
        Err(reason) => {
            println!("→ the model in {modeling} cannot be used ({reason}); training a new one");
            run_step("train", db, &["--modeling", modeling, "--quiet"])?;
        }
    }
    stopped()?;
    // Each run prints a fresh login; the accounts and key an earlier run made (named in
    // `logs/launch-accounts`) are disabled and revoked, so restarts do not pile up live admins
    // whose passwords went to a terminal or a journal.
    std::fs::create_dir_all(&config.logs)?;
    let accounts_file = config.logs.join("launch-accounts");
    retire_earlier_accounts(db, &accounts_file);
    // An auditor to work the queue, and an admin for the audit log, users and ground truth.
    let suffix = random_password(4).to_lowercase();
    let (username, password) = (format!("auditor-{suffix}"), random_password(16));
    create_user(db, &username, "auditor", &password)?;
    let (admin, admin_password) = (format!("admin-{suffix}"), random_password(16));
    create_user(db, &admin, "admin", &admin_password)?;

    let mut accounts = format!("user {username}\nuser {admin}\n");
    let log = |name: &str| config.logs.join(format!("{name}.log"));
    let url = format!("http://{}", config.addr);
    let rate = config.rate.to_string();
    let mut feed_args = vec!["--rate", rate.as_str()];
    let key = if config.via_api {
        let name = format!("demo-feed-{suffix}");
        let key = create_api_key(db, &name, "ingest")?;
        accounts.push_str(&format!("key {name}\n"));
        Some(key)
    } else {
        None
    };
    std::fs::write(&accounts_file, &accounts)
        .with_context(|| format!("writing {}", accounts_file.display()))?;
    // The key goes in the environment, with the database (not for `ps` to show).
    if key.is_some() {
        feed_args.extend(["--via-api", url.as_str()]);
    }
    // The feed pays the beneficiaries `generate` registered; data imported from an export
    // has none, and the feed would stop at once. Then the monitor and the dashboard run alone.
    let feed = has_registry(&config.db)?;
    // In stopping order: the feed first, so the monitor can score its last batch. Through the
    // API, the feed starts once the dashboard answers. Dropped on an error, they all stop.
    let mut children = Children::default();
    children.push(
        "monitor",
        command("monitor", Some(&log("monitor")))?
            .env("AEGIS_DB", db)
            .args(["--modeling", modeling])
            .spawn()?,
    );
    children.push(
        "dashboard",
        command("dashboard", Some(&log("dashboard")))?
            .env("AEGIS_DB", db)
            .args(["--modeling", modeling, "--addr", &config.addr])
            .spawn()?,
    );
    let spawn_feed = |children: &mut Children| -> anyhow::Result<()> {
        let mut feed_command = command("simulate", Some(&log("simulate")))?;
        feed_command.env("AEGIS_DB", db).args(&feed_args);
        if let Some(key) = &key {
            feed_command.env("AEGIS_API_KEY", key);
        }
        let child = feed_command.spawn()?;
        children.push_first("simulate", child);
        Ok(())
    };
    if feed && key.is_none() {
        spawn_feed(&mut children)?;
    }
    let mut running = || match children.exited()? {
        Some((name, status)) => bail!(
            "{name} stopped at start ({status}); see {}",
            log(name).display()
        ),
        None => Ok(()),
    };
    crate::http::wait_until_up(&url, Duration::from_secs(30), &mut running).with_context(|| {
        format!(
            "the dashboard did not answer at {url}: see {} (is the address in use? pass --addr)",
            log("dashboard").display()
        )
    })?;
    if feed && key.is_some() {
        spawn_feed(&mut children)?;
    }
    let feeding = if feed {
        format!(
            "The simulator feeds {} payments a second into {shown}{};\n\
             the monitor scores each one as it arrives",
            config.rate,
            if config.via_api {
                " through the payments API"
            } else {
                ""
            }
        )
    } else {
        format!(
            "No live feed: {shown} has no beneficiary registry to pay (its data was imported from\n\
             an export). Add payments with `generate --from-csv FILE --append` or the payments API;\n\
             the monitor scores each one as it arrives"
        )
    };
    println!(
        "\nAegis is running.\n\n  dashboard  {url}\n  auditor    {username}  password {password}\n  \
         admin      {admin}  password {admin_password}\n\n\
         {feeding}; open the dashboard and watch the Overview and\n\
         Alerts. Logs are in {}.\n\
         Press Ctrl-C to stop everything.",
        config.logs.display()
    );

    if let Some(auditors) = config.auditors {
        println!(
            "Simulated auditors review each day's top {} alerts{} and record the ground truth {} days of event time later, as the user simulated-auditor.",
            auditors.per_day,
            if auditors.follow_ups > 0 {
                format!(
                    " (and {} payments a day at counters with a fraud confirmed in the week before)",
                    auditors.follow_ups
                )
            } else {
                String::new()
            },
            auditors.delay_days
        );
        if let Some(size) = auditors.control {
            println!(
                "They also review {} of the payments the detector did not flag, chosen at random: the control sample, which finds what it misses.",
                size.describe()
            );
        }
    }

    let started = Instant::now();
    let mut reviewed_at = Instant::now();
    let mut failed = None;
    while !stop_requested.load(Ordering::Relaxed) {
        if let Some(auditors) = config.auditors
            && reviewed_at.elapsed() >= REVIEW_EVERY
        {
            reviewed_at = Instant::now();
            let mut review = command("dashboard", Some(&log("auditors")))?;
            review
                .args(["--db", db, "verdicts", "simulate"])
                .args(["--per-day", &auditors.per_day.to_string()])
                .args(["--delay-days", &auditors.delay_days.to_string()])
                .args(["--follow-ups", &auditors.follow_ups.to_string()]);
            if let Some(size) = auditors.control {
                review.args(["--control", &size.to_string()]);
            }
            let status = review.status()?;
            if !status.success() {
                eprintln!(
                    "the simulated auditors failed ({status}); see {}",
                    log("auditors").display()
                );
            }
        }
        if let Some((name, status)) = children.exited()? {
            failed = Some(format!(
                "{name} stopped unexpectedly ({status}); see {}",
                log(name).display()
            ));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("\nstopping (ran {:.0} s)…", started.elapsed().as_secs_f64());
    for (name, status) in children.stop_all(Duration::from_secs(10)) {
        println!("  {name} stopped ({})", status?);
    }
    // A program that stopped by itself is a failure of the whole, whatever the others did.
    match failed {
        Some(why) => bail!(why),
        None => Ok(()),
    }
}

/// Whether `db` holds the beneficiary registry the simulator pays (`generate` writes it; an
/// import from an export does not).
fn has_registry(db: &Target) -> anyhow::Result<bool> {
    let registered = db
        .open()?
        .in_transaction(|sql| sql.query_int("SELECT count(*) FROM beneficiaries", &[]))?;
    Ok(registered.unwrap_or(0) > 0)
}
