//! `aegis soak`: every process together under a live feed while the monitor is killed with
//! SIGKILL at random moments (and the simulator now and then), the dashboard polled
//! throughout; then the books are checked: every transaction scored exactly once, no gaps, no
//! "database is locked" reaching a log, and the dashboard never failed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aegis_core::engine::{Store, Target};
use anyhow::{Context, bail};
use rand::Rng;

use crate::http::{Session, wait_until_up};
use crate::procs::{self, Running, command, stop};
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
    /// Run on this PostgreSQL server (the URL of a role that may create databases; the soak
    /// recreates `aegis_soak` there) instead of an SQLite file.
    pub postgres: Option<String>,
}

/// Records any second scoring of a payment. On SQLite a score is an update of the payment's
/// row; on PostgreSQL it is a row of `transaction_scores`, whose primary key refuses a second
/// insert outright (the monitor would fail, and the logs and the unscored count show it), so
/// only an update there could score twice.
const SQLITE_RESCORE_TRIGGER: &str = "CREATE TABLE IF NOT EXISTS soak_rescored (transaction_id INTEGER, at INTEGER);
     CREATE TRIGGER IF NOT EXISTS soak_detect_rescore AFTER UPDATE OF status ON transactions
     WHEN OLD.status IS NOT NULL BEGIN INSERT INTO soak_rescored VALUES (NEW.transaction_id, unixepoch()); END;";
const POSTGRES_RESCORE_TRIGGER: &str = "CREATE TABLE IF NOT EXISTS soak_rescored (transaction_id bigint, at bigint);
     CREATE OR REPLACE FUNCTION soak_detect_rescore() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN INSERT INTO soak_rescored VALUES (NEW.transaction_id, extract(epoch FROM now())::bigint); RETURN NULL; END $$;
     CREATE TRIGGER soak_detect_rescore AFTER UPDATE ON transaction_scores
     FOR EACH ROW EXECUTE FUNCTION soak_detect_rescore();";

/// The integer `sql` answers, read in one snapshot.
fn query(db: &Target, sql: &str) -> anyhow::Result<i64> {
    Ok(db.open()?.read(|s| s.query_int(sql, &[]))?.unwrap_or(0))
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

/// The soak's files: its database, model and one log per program, under `--dir`.
struct Workspace {
    dir: PathBuf,
    target: Target,
    /// `--db` for the programs (a URL keeps its password).
    db: String,
    modeling: String,
}

impl Workspace {
    /// A fresh workspace in `dir`: an SQLite file there, or database `aegis_soak` recreated on
    /// the `postgres` server.
    fn new(dir: &Path, postgres: Option<&str>) -> anyhow::Result<Workspace> {
        std::fs::create_dir_all(dir)?;
        for stale in ["soak.db", "soak.db-wal", "soak.db-shm"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        let target = match postgres {
            Some(admin) => {
                Target::Postgres(aegis_core::pg::recreate_database(admin, "aegis_soak")?)
            }
            None => Target::Sqlite(dir.join("soak.db")),
        };
        // The monitor keeps its checkpoints beside an SQLite file, and per server under the
        // model folder for PostgreSQL: a checkpoint of an earlier soak must not be resumed.
        let _ = std::fs::remove_dir_all(dir.join("modeling").join("monitor-checkpoints"));
        let workspace = Workspace {
            dir: dir.to_path_buf(),
            db: target.as_arg(),
            target,
            modeling: dir
                .join("modeling")
                .to_str()
                .context("path is not UTF-8")?
                .to_string(),
        };
        for name in procs::PROGRAMS {
            let _ = std::fs::remove_file(workspace.log(name));
        }
        Ok(workspace)
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    fn spawn(&self, name: &str, args: &[&str]) -> anyhow::Result<Running> {
        Ok(Running::spawn(
            command(name, Some(&self.log(name)))?.args(args),
        )?)
    }

    fn monitor_args(&self) -> [&str; 4] {
        ["--db", &self.db, "--modeling", &self.modeling]
    }
}

/// Step 1: a generated history, a model trained on it, everything scored, a trigger that
/// records any second scoring, and an admin for the dashboard. Returns the admin's password.
fn prepare(workspace: &Workspace, rows: u64) -> anyhow::Result<String> {
    let setup = |name: &str, args: &[&str]| -> anyhow::Result<()> {
        let status = command(name, Some(&workspace.log(name)))?
            .args(args)
            .status()?;
        if !status.success() {
            bail!(
                "{name} failed during set-up; see {}",
                workspace.log(name).display()
            );
        }
        Ok(())
    };
    let (db, modeling) = (workspace.db.as_str(), workspace.modeling.as_str());
    println!(
        "soak: generating {rows} rows and training in {}",
        workspace.dir.display()
    );
    setup(
        "generate",
        &["--db", db, "--rows", &rows.to_string(), "--quiet"],
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
    match workspace.target.open()? {
        Store::Sqlite(conn) => conn.execute_batch(SQLITE_RESCORE_TRIGGER)?,
        Store::Postgres(mut client) => client.batch_execute(POSTGRES_RESCORE_TRIGGER)?,
    }
    let password = random_password(16);
    create_user(db, "soak-admin", "admin", &password)?;
    Ok(password)
}

/// Two threads reading the dashboard's pages for the whole run, counting failures and timing
/// every answer.
struct Pollers {
    polling: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    /// Each thread returns how long each of its requests took, by index into `PAGES`.
    threads: Vec<std::thread::JoinHandle<Vec<(usize, Duration)>>>,
}

/// What the pollers saw: requests, failures, and each page's answer times.
struct Traffic {
    requests: u64,
    failures: u64,
    pages: Vec<PageTimes>,
}

/// How long one page took to answer over the run.
#[derive(Debug, Clone, PartialEq)]
pub struct PageTimes {
    pub page: &'static str,
    pub requests: usize,
    pub median: Duration,
    pub p95: Duration,
    pub worst: Duration,
}

impl PageTimes {
    /// The summary of `times` (any order); `None` when the page was never asked for.
    fn of(page: &'static str, mut times: Vec<Duration>) -> Option<PageTimes> {
        if times.is_empty() {
            return None;
        }
        times.sort();
        // Nearest rank: the smallest time at least `share` of the answers did not exceed.
        let rank = |share: f64| times[((share * times.len() as f64).ceil() as usize).max(1) - 1];
        Some(PageTimes {
            page,
            requests: times.len(),
            median: rank(0.5),
            p95: rank(0.95),
            worst: times[times.len() - 1],
        })
    }
}

impl std::fmt::Display for PageTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ×{}: {} / {} / {} ms",
            self.page,
            self.requests,
            self.median.as_millis(),
            self.p95.as_millis(),
            self.worst.as_millis()
        )
    }
}

impl Pollers {
    const PAGES: [&str; 5] = [
        "/",
        "/alerts",
        "/api/summary",
        "/model",
        "/api/transactions?page=2",
    ];

    fn start(session: &Session) -> Pollers {
        let polling = Arc::new(AtomicBool::new(true));
        let requests = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let threads = (0..2)
            .map(|worker| {
                let (session, polling, requests, failures) = (
                    session.clone(),
                    Arc::clone(&polling),
                    Arc::clone(&requests),
                    Arc::clone(&failures),
                );
                std::thread::spawn(move || {
                    let mut times = Vec::new();
                    let mut index = worker;
                    while polling.load(Ordering::Relaxed) {
                        let page_index = index % Self::PAGES.len();
                        let page = Self::PAGES[page_index];
                        index += 1;
                        requests.fetch_add(1, Ordering::Relaxed);
                        let asked = Instant::now();
                        let answer = session.get(page);
                        times.push((page_index, asked.elapsed()));
                        match answer {
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
                    times
                })
            })
            .collect();
        Pollers {
            polling,
            requests,
            failures,
            threads,
        }
    }

    /// Stops polling; returns what the pollers saw.
    fn finish(self) -> Traffic {
        self.polling.store(false, Ordering::Relaxed);
        let mut by_page: Vec<Vec<Duration>> = vec![Vec::new(); Self::PAGES.len()];
        for thread in self.threads {
            for (page, took) in thread.join().unwrap_or_default() {
                by_page[page].push(took);
            }
        }
        Traffic {
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            pages: Self::PAGES
                .iter()
                .zip(by_page)
                .filter_map(|(page, times)| PageTimes::of(page, times))
                .collect(),
        }
    }
}

/// Step 3: SIGKILLs the monitor and the simulator at random moments of the run and restarts
/// them; returns (monitor kills, simulator kills) once the run's time is up.
fn kill_at_random(
    workspace: &Workspace,
    config: &SoakConfig,
    monitor: &mut Running,
    simulate: &mut Running,
    simulate_args: &[&str],
) -> anyhow::Result<(u32, u32)> {
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
            &mut *monitor
        } else {
            &mut *simulate
        };
        child.kill()?; // SIGKILL
        child.wait()?;
        std::thread::sleep(Duration::from_millis(rand::rng().random_range(50..400)));
        if target == "monitor" {
            monitor_kills += 1;
            *monitor = workspace.spawn("monitor", &workspace.monitor_args())?;
        } else {
            simulator_kills += 1;
            *simulate = workspace.spawn("simulate", simulate_args)?;
        }
    }
    if let Some(rest) = config.duration.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
    Ok((monitor_kills, simulator_kills))
}

/// Step 4: waits (at most two minutes) for the monitor to score what the feed left.
fn drain(db: &Target) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while query(db, "SELECT count(*) FROM transactions WHERE status IS NULL")? > 0
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// Step 5: what the run left behind, and whether it is right.
#[derive(Debug, Clone, PartialEq)]
pub struct Books {
    /// Rows generated before the feed started.
    pub history: i64,
    pub inserted: i64,
    pub unscored: i64,
    pub rescored: i64,
    pub mark: i64,
    pub newest: i64,
    /// Worst insert→scored time of a fed row, ms.
    pub worst_latency_ms: i64,
    pub error_lines: usize,
    pub requests: u64,
    pub failures: u64,
}

impl Books {
    fn read(workspace: &Workspace, history: u64, traffic: &Traffic) -> anyhow::Result<Books> {
        let db = &workspace.target;
        let mark = db
            .open()?
            .read(aegis_core::store::monitor_mark)?
            .unwrap_or(0);
        let error_lines = ["monitor", "simulate", "dashboard"]
            .iter()
            .map(|name| {
                std::fs::read_to_string(workspace.log(name))
                    .unwrap_or_default()
                    .lines()
                    .filter(|line| line.contains("database is locked") || line.contains("ERROR"))
                    .count()
            })
            .sum();
        Ok(Books {
            history: history as i64,
            inserted: query(db, "SELECT count(*) FROM transactions")?,
            unscored: query(db, "SELECT count(*) FROM transactions WHERE status IS NULL")?,
            rescored: query(db, "SELECT count(*) FROM soak_rescored")?,
            mark,
            newest: query(
                db,
                "SELECT coalesce(max(transaction_id), 0) FROM transactions",
            )?,
            worst_latency_ms: query(
                db,
                &format!(
                    "SELECT coalesce(max(scored_at - inserted_at), 0) FROM transactions WHERE transaction_id > {history}"
                ),
            )?,
            error_lines,
            requests: traffic.requests,
            failures: traffic.failures,
        })
    }

    /// Everything wrong with the run, in words; empty when it passed.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.unscored > 0 {
            problems.push(format!("{} transactions were never scored", self.unscored));
        }
        if self.rescored > 0 {
            problems.push(format!("{} transactions were scored twice", self.rescored));
        }
        if self.mark != self.newest {
            problems.push(format!(
                "the high-water mark {} is not the newest row {}",
                self.mark, self.newest
            ));
        }
        if self.failures > 0 {
            problems.push(format!("{} dashboard requests failed", self.failures));
        }
        if self.error_lines > 0 {
            problems.push(format!("{} error lines in the logs", self.error_lines));
        }
        if self.inserted <= self.history {
            problems.push("the simulator inserted nothing".to_string());
        }
        problems
    }
}

/// Runs the soak's steps; fails if any check fails.
pub fn run(config: &SoakConfig) -> anyhow::Result<()> {
    procs::build_programs()?;
    let workspace = Workspace::new(&config.dir, config.postgres.as_deref())?;
    let password = prepare(&workspace, config.rows)?;

    // Step 2: the dashboard, its pollers, the monitor and the feed.
    let addr = format!("127.0.0.1:{}", config.port);
    let base = format!("http://{addr}");
    let (db, modeling) = (workspace.db.as_str(), workspace.modeling.as_str());
    let mut dashboard = workspace.spawn(
        "dashboard",
        &["--db", db, "--modeling", modeling, "--addr", &addr],
    )?;
    wait_until_up(&base, Duration::from_secs(30), &mut || Ok(()))?;
    let session = Session::login(&base, "soak-admin", &password)?;
    let pollers = Pollers::start(&session);
    let rate = config.rate.to_string();
    let simulate_args = ["--db", db, "--rate", rate.as_str(), "--speed", "60"];
    let mut monitor = workspace.spawn("monitor", &workspace.monitor_args())?;
    let mut simulate = workspace.spawn("simulate", &simulate_args)?;

    let started = Instant::now();
    let (monitor_kills, simulator_kills) = kill_at_random(
        &workspace,
        config,
        &mut monitor,
        &mut simulate,
        &simulate_args,
    )?;
    stop(&mut simulate, Duration::from_secs(10))?;
    drain(&workspace.target)?;
    let traffic = pollers.finish();
    stop(&mut monitor, Duration::from_secs(10))?;
    stop(&mut dashboard, Duration::from_secs(10))?;

    let books = Books::read(&workspace, config.rows, &traffic)?;
    println!(
        "soak: {:.0} s, {monitor_kills} monitor kills, {simulator_kills} simulator kills, {} rows fed, \
         {} unscored, {} scored twice, mark {} of {}, worst insert→scored {} ms, \
         {} dashboard requests with {} failures, {} error lines in logs",
        started.elapsed().as_secs_f64(),
        books.inserted - books.history,
        books.unscored,
        books.rescored,
        books.mark,
        books.newest,
        books.worst_latency_ms,
        books.requests,
        books.failures,
        books.error_lines,
    );
    println!(
        "soak: dashboard answers (median / 95th percentile / worst): {}",
        traffic
            .pages
            .iter()
            .map(PageTimes::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
    let problems = books.problems();
    if problems.is_empty() {
        println!("soak: 1 passed, 0 failed");
        Ok(())
    } else {
        println!("soak: 0 passed, 1 failed");
        bail!(
            "soak failed: {} (logs in {})",
            problems.join("; "),
            workspace.dir.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> Books {
        Books {
            history: 1_000,
            inserted: 5_000,
            unscored: 0,
            rescored: 0,
            mark: 5_000,
            newest: 5_000,
            worst_latency_ms: 80,
            error_lines: 0,
            requests: 400,
            failures: 0,
        }
    }

    #[test]
    fn clean_books_pass() {
        assert!(clean().problems().is_empty());
    }

    #[test]
    fn each_broken_promise_is_named() {
        let cases: [(fn(&mut Books), &str); 6] = [
            (|b| b.unscored = 3, "3 transactions were never scored"),
            (|b| b.rescored = 1, "1 transactions were scored twice"),
            (
                |b| b.mark = 4_999,
                "high-water mark 4999 is not the newest row 5000",
            ),
            (|b| b.failures = 2, "2 dashboard requests failed"),
            (|b| b.error_lines = 1, "1 error lines"),
            (|b| b.inserted = 1_000, "the simulator inserted nothing"),
        ];
        for (break_it, expected) in cases {
            let mut books = clean();
            break_it(&mut books);
            let problems = books.problems();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].contains(expected), "{problems:?}");
        }
    }

    #[test]
    fn page_times_rank_the_answers() {
        let ms = |n: u64| Duration::from_millis(n);
        // 20 answers, 1..=20 ms, out of order: the median is the 10th, the 95th percentile the
        // 19th, the worst the 20th.
        let times: Vec<Duration> = (1..=20).rev().map(ms).collect();
        let summary = PageTimes::of("/model", times).unwrap();
        assert_eq!(
            (summary.requests, summary.median, summary.p95, summary.worst),
            (20, ms(10), ms(19), ms(20))
        );
        assert_eq!(summary.to_string(), "/model ×20: 10 / 19 / 20 ms");
        let one = PageTimes::of("/", vec![ms(7)]).unwrap();
        assert_eq!((one.median, one.p95, one.worst), (ms(7), ms(7), ms(7)));
        assert_eq!(PageTimes::of("/alerts", Vec::new()), None);
    }

    #[test]
    fn kill_moments_fall_inside_the_run_in_order() {
        let run = Duration::from_secs(60);
        let times = moments(50, run);
        assert_eq!(times.len(), 50);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        assert!(
            times
                .iter()
                .all(|t| *t > run.mul_f64(0.04) && *t < run.mul_f64(0.96))
        );
    }
}
