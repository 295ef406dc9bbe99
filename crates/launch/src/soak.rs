//! `aegis soak`: every process together under a live feed while the monitor is killed with
//! SIGKILL at random moments (and the simulator now and then), the dashboard polled
//! throughout; then the books are checked: every transaction scored exactly once, no gaps, no
//! "database is locked" reaching a log, and the dashboard never failed.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;

use crate::http::{Session, wait_until_up};
use crate::procs::{self, command, stop};
use crate::up::{create_user, random_password};

/// Options of `aegis soak`.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    pub dir: PathBuf,
    pub duration: Duration,
    pub rate: f64,
    pub monitor_kills: u32,
    pub simulator_kills: u32,
    pub rows: u64,
    pub port: u16,
}

const RESCORE_TRIGGER: &str = "CREATE TABLE IF NOT EXISTS soak_rescored (transaction_id INTEGER, at INTEGER);
     CREATE TRIGGER IF NOT EXISTS soak_detect_rescore AFTER UPDATE OF status ON transactions
     WHEN OLD.status IS NOT NULL BEGIN INSERT INTO soak_rescored VALUES (NEW.transaction_id, unixepoch()); END;";

fn query(db: &Path, sql: &str) -> anyhow::Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

fn spawn(name: &str, args: &[&str], log: &Path) -> anyhow::Result<Child> {
    Ok(command(name, Some(log))?.args(args).spawn()?)
}

/// Random moments in `(0, duration)`, sorted.
fn moments(count: u32, duration: Duration) -> Vec<Duration> {
    let mut rng = rand::rng();
    let mut times: Vec<Duration> = (0..count)
        .map(|_| duration.mul_f64(rng.random_range(0.05..0.95)))
        .collect();
    times.sort();
    times
}

/// Runs the soak; fails if any check fails.
pub fn run(config: &SoakConfig) -> anyhow::Result<()> {
    procs::build_programs()?;
    std::fs::create_dir_all(&config.dir)?;
    let db_path = config.dir.join("soak.db");
    let modeling_path = config.dir.join("modeling");
    for stale in ["soak.db", "soak.db-wal", "soak.db-shm"] {
        let _ = std::fs::remove_file(config.dir.join(stale));
    }
    let db = db_path.to_str().context("path is not UTF-8")?;
    let modeling = modeling_path.to_str().context("path is not UTF-8")?;
    let log = |name: &str| config.dir.join(format!("{name}.log"));
    for name in ["generate", "train", "monitor", "simulate", "dashboard"] {
        let _ = std::fs::remove_file(log(name));
    }
    let setup = |name: &str, args: &[&str]| -> anyhow::Result<()> {
        let status = command(name, Some(&log(name)))?.args(args).status()?;
        if !status.success() {
            bail!("{name} failed during set-up; see {}", log(name).display());
        }
        Ok(())
    };
    println!(
        "soak: generating {} rows and training in {}",
        config.rows,
        config.dir.display()
    );
    setup(
        "generate",
        &["--db", db, "--rows", &config.rows.to_string(), "--quiet"],
    )?;
    setup(
        "train",
        &[
            "--db",
            db,
            "--modeling",
            modeling,
            "--quiet",
            "--no-baseline",
            "--epochs",
            "5",
        ],
    )?;
    setup("monitor", &["--db", db, "--modeling", modeling, "--once"])?;
    rusqlite::Connection::open(&db_path)?.execute_batch(RESCORE_TRIGGER)?;
    let password = random_password(16);
    create_user(&db_path, "soak-admin", "admin", &password)?;

    let addr = format!("127.0.0.1:{}", config.port);
    let base = format!("http://{addr}");
    let mut dashboard = spawn(
        "dashboard",
        &["--db", db, "--modeling", modeling, "--addr", &addr],
        &log("dashboard"),
    )?;
    wait_until_up(&base, Duration::from_secs(30))?;
    let session = Session::login(&base, "soak-admin", &password)?;

    let monitor_args = ["--db", db, "--modeling", modeling];
    let rate = config.rate.to_string();
    let simulate_args = ["--db", db, "--rate", rate.as_str(), "--speed", "60"];
    let mut monitor = spawn("monitor", &monitor_args, &log("monitor"))?;
    let mut simulate = spawn("simulate", &simulate_args, &log("simulate"))?;

    // Poll the dashboard from two threads for the whole run.
    let polling = Arc::new(AtomicBool::new(true));
    let requests = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let pollers: Vec<_> = (0..2)
        .map(|worker| {
            let (session, polling, requests, failures) = (
                session.clone(),
                Arc::clone(&polling),
                Arc::clone(&requests),
                Arc::clone(&failures),
            );
            std::thread::spawn(move || {
                let pages = [
                    "/",
                    "/alerts",
                    "/api/summary",
                    "/model",
                    "/api/transactions?page=2",
                ];
                let mut index = worker;
                while polling.load(Ordering::Relaxed) {
                    let page = pages[index % pages.len()];
                    index += 1;
                    requests.fetch_add(1, Ordering::Relaxed);
                    match session.get(page) {
                        Ok((status, _)) if status < 400 => {}
                        Ok((status, _)) => {
                            eprintln!("soak: dashboard answered {status} to {page}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            eprintln!("soak: dashboard request {page} failed: {error}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();

    let mut events: Vec<(Duration, &str)> = moments(config.monitor_kills, config.duration)
        .into_iter()
        .map(|t| (t, "monitor"))
        .chain(
            moments(config.simulator_kills, config.duration)
                .into_iter()
                .map(|t| (t, "simulate")),
        )
        .collect();
    events.sort();
    let started = Instant::now();
    let (mut monitor_kills, mut simulator_kills) = (0, 0);
    for (at, target) in events {
        if let Some(wait) = at.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let child = if target == "monitor" {
            &mut monitor
        } else {
            &mut simulate
        };
        child.kill()?; // SIGKILL
        child.wait()?;
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(50..400)));
        if target == "monitor" {
            monitor_kills += 1;
            monitor = spawn("monitor", &monitor_args, &log("monitor"))?;
        } else {
            simulator_kills += 1;
            simulate = spawn("simulate", &simulate_args, &log("simulate"))?;
        }
    }
    if let Some(rest) = config.duration.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    stop(&mut simulate, Duration::from_secs(10))?;
    // Let the monitor drain what the feed left.
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    while query(
        &db_path,
        "SELECT count(*) FROM transactions WHERE status IS NULL",
    )? > 0
    {
        if Instant::now() > drain_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    polling.store(false, Ordering::Relaxed);
    for poller in pollers {
        let _ = poller.join();
    }
    stop(&mut monitor, Duration::from_secs(10))?;
    stop(&mut dashboard, Duration::from_secs(10))?;

    let inserted = query(&db_path, "SELECT count(*) FROM transactions")?;
    let unscored = query(
        &db_path,
        "SELECT count(*) FROM transactions WHERE status IS NULL",
    )?;
    let rescored = query(&db_path, "SELECT count(*) FROM soak_rescored")?;
    let mark = query(
        &db_path,
        "SELECT coalesce((SELECT high_water_mark FROM monitor_state), 0)",
    )?;
    let newest = query(&db_path, "SELECT max(transaction_id) FROM transactions")?;
    let latency = query(
        &db_path,
        &format!(
            "SELECT coalesce(max(scored_at - inserted_at), 0) FROM transactions WHERE transaction_id > (SELECT {} )",
            config.rows
        ),
    )?;
    let locked_lines: usize = ["monitor", "simulate", "dashboard"]
        .iter()
        .map(|name| {
            std::fs::read_to_string(log(name))
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains("database is locked") || line.contains("ERROR"))
                .count()
        })
        .sum();
    let (requests, failures) = (
        requests.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    println!(
        "soak: {:.0} s, {monitor_kills} monitor kills, {simulator_kills} simulator kills, {} rows fed, \
         {unscored} unscored, {rescored} scored twice, mark {mark} of {newest}, worst insert→scored {latency} ms, \
         {requests} dashboard requests with {failures} failures, {locked_lines} error lines in logs",
        started.elapsed().as_secs_f64(),
        inserted - config.rows as i64,
    );
    let mut problems = Vec::new();
    if unscored > 0 {
        problems.push(format!("{unscored} transactions were never scored"));
    }
    if rescored > 0 {
        problems.push(format!("{rescored} transactions were scored twice"));
    }
    if mark != newest {
        problems.push(format!(
            "the high-water mark {mark} is not the newest row {newest}"
        ));
    }
    if failures > 0 {
        problems.push(format!("{failures} dashboard requests failed"));
    }
    if locked_lines > 0 {
        problems.push(format!(
            "{locked_lines} error lines in the logs in {}",
            config.dir.display()
        ));
    }
    if inserted <= config.rows as i64 {
        problems.push("the simulator inserted nothing".to_string());
    }
    if problems.is_empty() {
        println!("soak: 1 passed, 0 failed");
        Ok(())
    } else {
        println!("soak: 0 passed, 1 failed");
        bail!("soak failed: {}", problems.join("; "))
    }
}
