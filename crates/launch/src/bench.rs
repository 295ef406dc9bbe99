//! `aegis bench`: reproduces every figure in BENCHMARKS.md on the machine it runs on, with the
//! prototype's figures (measured on the reference machine) beside ours.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use aegis_core::engine::Target;

use crate::http::{Session, wait_until_up};
use crate::procs::{self, Running, Usage, command, peak_rss_kb, stop, wait_with_usage};
use crate::up::{create_user, random_password};

/// Options of `aegis bench`.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub dir: PathBuf,
    pub rows: u64,
    pub seconds: u64,
    pub port: u16,
    /// Only some figures (after the generate, train and drain they need).
    pub only: Option<Only>,
    /// Run on this PostgreSQL server (the URL of a role that may create databases) instead of
    /// SQLite files: the bench recreates databases `aegis_bench` and `aegis_bench_import`.
    pub postgres: Option<String>,
}

/// A subset of the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// The payments API: ingest throughput and decision latency.
    Api,
    /// The dashboard's pages and APIs under 8 concurrent clients.
    Dashboard,
    /// The monitor's restart after kill -9. Reuses the model in the work directory when there
    /// is one, so `--rows 10000000` does not train on ten million rows.
    Restart,
}

struct Report {
    rows: Vec<[String; 4]>,
}

impl Report {
    fn add(&mut self, what: &str, ours: String, goal: &str, prototype: &str) {
        println!("  {what}: {ours}");
        self.rows.push([
            what.to_string(),
            ours,
            goal.to_string(),
            prototype.to_string(),
        ]);
    }

    fn markdown(&self) -> String {
        let mut out =
            String::from("| measurement | Aegis | goal | prototype |\n|---|---|---|---|\n");
        for [what, ours, goal, prototype] in &self.rows {
            let _ = writeln!(out, "| {what} | {ours} | {goal} | {prototype} |");
        }
        out
    }
}

/// `monitor --once` over every unscored row of `db`, measured.
fn drain(db: &str, modeling: &str, log: &Path) -> anyhow::Result<Usage> {
    let args = [
        "--db",
        db,
        "--modeling",
        modeling,
        "--once",
        "--batch-size",
        "10000",
    ];
    timed("monitor", &args, log)
}

fn timed(name: &str, args: &[&str], log: &Path) -> anyhow::Result<Usage> {
    let started = Instant::now();
    let mut child = Running::spawn(command(name, Some(log))?.args(args))?;
    let usage = wait_with_usage(&mut child, started)?;
    if usage.status != 0 {
        bail!("{name} {} failed; see {}", args.join(" "), log.display());
    }
    Ok(usage)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Writes every stored payment of `db` as an import CSV, a page at a time. Returns the rows.
fn export_csv(db: &Target, csv: &Path) -> anyhow::Result<u64> {
    const PAGE: i64 = 50_000;
    let mut store = db.open()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(csv)?);
    writeln!(
        out,
        "transaction_ref,beneficiary_id,account_id,agent_id,scheme,amount,timestamp,latitude,longitude,district,is_anomaly,fraud_type"
    )?;
    let mut after = 0;
    let mut count = 0;
    loop {
        let rows = store.read(|sql| {
            sql.query(
                "SELECT transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme, amount_paise, \
                 timestamp, latitude, longitude, district, is_anomaly, fraud_type FROM transactions \
                 WHERE transaction_id > ?1 ORDER BY transaction_id LIMIT ?2",
                &[after.into(), PAGE.into()],
            )
        })?;
        let Some(last) = rows.last() else { break };
        after = last[0].int().unwrap_or(after);
        for row in &rows {
            let text = |i: usize| row[i].text().unwrap_or_default();
            let number = |i: usize| row[i].real().map(|v| v.to_string()).unwrap_or_default();
            let paise = row[6].int().unwrap_or(0);
            writeln!(
                out,
                "{},{},{},{},{},{}.{:02},{},{},{},{},{},{}",
                text(1),
                text(2),
                text(3),
                text(4),
                text(5),
                paise / 100,
                paise % 100,
                text(7),
                number(8),
                number(9),
                text(10),
                row[11].int().map(|v| v.to_string()).unwrap_or_default(),
                text(12)
            )?;
            count += 1;
        }
    }
    out.flush()?;
    Ok(count)
}

/// Insert→scored latencies (ms) of the rows above `after`.
fn latencies(db: &Target, after: i64) -> anyhow::Result<Vec<f64>> {
    let rows = db.open()?.read(|sql| {
        sql.query(
            "SELECT scored_at - inserted_at FROM transactions WHERE transaction_id > ?1 \
             AND scored_at IS NOT NULL ORDER BY 1",
            &[after.into()],
        )
    })?;
    Ok(rows.iter().filter_map(|row| row[0].real()).collect())
}

fn max_id(db: &Target) -> anyhow::Result<i64> {
    Ok(db
        .open()?
        .read(|sql| {
            sql.query_int(
                "SELECT coalesce(max(transaction_id), 0) FROM transactions",
                &[],
            )
        })?
        .unwrap_or(0))
}

fn watch_peak(child: &Child, peak: &mut u64) {
    *peak = (*peak).max(peak_rss_kb(child.id()).unwrap_or(0));
}

/// The benchmark run: its files and the report it fills, one method a measurement.
struct Bench<'a> {
    config: &'a BenchConfig,
    log: PathBuf,
    /// The SQLite file (on PostgreSQL, unused: steps that need a file are skipped).
    db_path: PathBuf,
    target: Target,
    import_target: Target,
    db: String,
    modeling: String,
    rows: String,
    report: Report,
}

impl<'a> Bench<'a> {
    fn new(config: &'a BenchConfig) -> anyhow::Result<Bench<'a>> {
        std::fs::create_dir_all(&config.dir)?;
        for stale in ["bench.db", "import.db", "wide.db", "export.csv"] {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(config.dir.join(format!("{stale}{suffix}")));
            }
            let _ = std::fs::remove_dir_all(config.dir.join(format!("{stale}.checkpoints")));
        }
        let db_path = config.dir.join("bench.db");
        let modeling = config.dir.join("modeling");
        let _ = std::fs::remove_dir_all(modeling.join("monitor-checkpoints"));
        let (target, import_target) = match &config.postgres {
            Some(server) => (
                Target::Postgres(aegis_core::pg::recreate_database(server, "aegis_bench")?),
                Target::Postgres(aegis_core::pg::recreate_database(
                    server,
                    "aegis_bench_import",
                )?),
            ),
            None => (
                Target::Sqlite(db_path.clone()),
                Target::Sqlite(config.dir.join("import.db")),
            ),
        };
        Ok(Bench {
            config,
            log: config.dir.join("bench.log"),
            db: target.as_arg(),
            target,
            import_target,
            db_path,
            modeling: config
                .dir
                .join("modeling")
                .to_str()
                .context("path is not UTF-8")?
                .to_string(),
            rows: config.rows.to_string(),
            report: Report { rows: Vec::new() },
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.config.dir.join(name)
    }

    /// `generate --rows N --seed 7`: the database every later step uses.
    fn generate(&mut self) -> anyhow::Result<()> {
        let usage = timed(
            "generate",
            &[
                "--db", &self.db, "--rows", &self.rows, "--seed", "7", "--quiet",
            ],
            &self.log,
        )?;
        self.report.add(
            &format!("generate {} rows", self.config.rows),
            format!(
                "{:.1} s, {:.0} MB ({:.0} rows/s)",
                usage.seconds,
                usage.peak_mb,
                self.config.rows as f64 / usage.seconds
            ),
            "≤ 1.3 s (10× the prototype)",
            "12.8 s / 386 MB (1.01M rows)",
        );
        Ok(())
    }

    /// Exports the database as CSV and imports it into a fresh one.
    fn import(&mut self) -> anyhow::Result<()> {
        let csv = self.path("export.csv");
        let exported = export_csv(&self.target, &csv)?;
        let usage = timed(
            "generate",
            &[
                "--db",
                &self.import_target.as_arg(),
                "--from-csv",
                csv.to_str().unwrap_or_default(),
                "--quiet",
            ],
            &self.log,
        )?;
        self.report.add(
            "CSV import",
            format!(
                "{:.0} rows/s ({exported} rows in {:.1} s, {:.0} MB)",
                exported as f64 / usage.seconds,
                usage.seconds,
                usage.peak_mb
            ),
            "",
            "—",
        );
        Ok(())
    }

    fn train(&mut self) -> anyhow::Result<()> {
        if self.config.only == Some(Only::Restart)
            && aegis_core::artifacts::check_usable(Path::new(&self.modeling)).is_ok()
        {
            println!("  (reusing the model in {})", self.modeling);
            return Ok(());
        }
        let usage = timed(
            "train",
            &[
                "--db",
                &self.db,
                "--modeling",
                &self.modeling,
                "--quiet",
                "--no-baseline",
            ],
            &self.log,
        )?;
        self.report.add(
            &format!("train on {} rows (flex)", self.config.rows),
            format!("{:.1} s, {:.0} MB", usage.seconds, usage.peak_mb),
            "≤ 60 s, ≤ 1 GB",
            "25 s / 548 MB for 10k rows × 50 epochs",
        );
        Ok(())
    }

    fn drain(&mut self) -> anyhow::Result<()> {
        let usage = drain(&self.db, &self.modeling, &self.log)?;
        self.report.add(
            &format!("monitor --once drain of {} rows", self.config.rows),
            format!(
                "{:.0} tx/s ({:.1} s, {:.0} MB)",
                self.config.rows as f64 / usage.seconds,
                usage.seconds,
                usage.peak_mb
            ),
            "≥ 100,000 tx/s",
            "10 tx/s by design (879 tx/s never sleeping)",
        );
        Ok(())
    }

    /// The monitor following a live feed of `rate` payments a second.
    fn live(&mut self, rate: u32) -> anyhow::Result<()> {
        let before = max_id(&self.target)?;
        let mut monitor = self.start_monitor()?;
        std::thread::sleep(Duration::from_secs(3));
        let mut feed = Running::spawn(command("simulate", Some(&self.log))?.args([
            "--db",
            &self.db,
            "--rate",
            &rate.to_string(),
            "--duration",
            &self.config.seconds.to_string(),
            "--seed",
            &rate.to_string(),
        ]))?;
        let mut peak = 0;
        while feed.try_wait()?.is_none() {
            watch_peak(&monitor, &mut peak);
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(2));
        watch_peak(&monitor, &mut peak);
        stop(&mut monitor, Duration::from_secs(10))?;
        let values = latencies(&self.target, before)?;
        let fed = max_id(&self.target)? - before;
        self.report.add(
            &format!("live insert→scored latency at {rate} tx/s"),
            format!(
                "p50 {:.0} ms, p99 {:.0} ms ({fed} rows, {:.0} tx/s achieved, monitor {:.0} MB)",
                percentile(&values, 0.5),
                percentile(&values, 0.99),
                fed as f64 / self.config.seconds as f64,
                peak as f64 / 1024.0
            ),
            if rate == 1_000 {
                "p99 ≤ 250 ms"
            } else {
                "p99 ≤ 1 s"
            },
            "—",
        );
        Ok(())
    }

    /// A million beneficiaries in the monitor's state: a month of payments to ~1.1M people.
    fn wide_state(&mut self) -> anyhow::Result<()> {
        let wide = self.path("wide.db");
        let wide_str = wide.to_str().unwrap_or_default().to_string();
        timed(
            "generate",
            &[
                "--db", &wide_str, "--rows", &self.rows, "--days", "30", "--quiet",
            ],
            &self.log,
        )?;
        let people = rusqlite::Connection::open(&wide)?.query_row(
            "SELECT count(*) FROM beneficiaries",
            [],
            |r| r.get::<_, i64>(0),
        )?;
        let usage = drain(&wide_str, &self.modeling, &self.log)?;
        self.report.add(
            &format!("monitor peak memory with {people} beneficiaries in state"),
            format!("{:.0} MB", usage.peak_mb),
            "",
            "—",
        );
        Ok(())
    }

    /// A monitor following the bench database, logging to the bench log.
    fn start_monitor(&self) -> anyhow::Result<Running> {
        Ok(Running::spawn(
            command("monitor", Some(&self.log))?.args([
                "--db",
                &self.db,
                "--modeling",
                &self.modeling,
            ]),
        )?)
    }

    /// A dashboard on the bench database at the configured port, once it answers; and its URL.
    fn start_dashboard(&self) -> anyhow::Result<(Running, String)> {
        let addr = format!("127.0.0.1:{}", self.config.port);
        let base = format!("http://{addr}");
        let dashboard = Running::spawn(command("dashboard", Some(&self.log))?.args([
            "--db",
            &self.db,
            "--modeling",
            &self.modeling,
            "--addr",
            &addr,
        ]))?;
        wait_until_up(&base, Duration::from_secs(30), &mut || Ok(()))?;
        Ok((dashboard, base))
    }

    /// The dashboard under 8 concurrent clients on the scored million-row database.
    fn dashboard_load(&mut self) -> anyhow::Result<()> {
        let password = random_password(16);
        let username = format!("bench-{}", random_password(4).to_lowercase());
        create_user(&self.db, &username, "auditor", &password)?;
        let (mut dashboard, base) = self.start_dashboard()?;
        let session = Session::login(&base, &username, &password)?;
        for (label, page) in [
            ("overview page", "/"),
            ("overview summary API", "/api/summary"),
            (
                "filtered table",
                "/api/transactions?scheme=PM-KISAN&status=ANOMALY&page=2&sort=anomaly_score&dir=desc",
            ),
            ("case queue (open incidents by score)", "/alerts"),
            (
                "case queue (scheme + amount filter, by amount, page 2)",
                "/alerts?scheme=PM-KISAN&min_amount=2500&sort=amount&page=2",
            ),
            ("incident page", "/incidents/1"),
        ] {
            self.measure_page(&session, &dashboard, label, page);
        }
        // The same pages while a feed adds 1,000 payments a second and the monitor scores
        // them: every cached answer is out of date within milliseconds, so each request pays
        // for its queries.
        let mut monitor = self.start_monitor()?;
        std::thread::sleep(Duration::from_secs(3));
        let mut feed = Running::spawn(
            command("simulate", Some(&self.log))?
                .args(["--db", &self.db, "--rate", "1000", "--seed", "99"]),
        )?;
        std::thread::sleep(Duration::from_secs(2));
        for (label, page) in [
            ("overview page", "/"),
            ("overview summary API", "/api/summary"),
            ("case queue (open incidents by score)", "/alerts"),
            ("incident page", "/incidents/1"),
        ] {
            let label = format!("{label} under a 1,000 tx/s feed");
            self.measure_page(&session, &dashboard, &label, page);
        }
        stop(&mut feed, Duration::from_secs(10))?;
        stop(&mut monitor, Duration::from_secs(10))?;
        stop(&mut dashboard, Duration::from_secs(10))?;
        Ok(())
    }

    /// `page` under 8 concurrent clients for the measurement window, reported as `label`.
    fn measure_page(
        &mut self,
        session: &Session,
        dashboard: &Child,
        label: &str,
        page: &'static str,
    ) {
        let window = Duration::from_secs(self.config.seconds.min(20));
        let (times, errors, peak) = load(session, dashboard, page, window);
        self.report.add(
            &format!("dashboard {label}, 8 concurrent clients"),
            format!(
                "p50 {:.1} ms, p95 {:.1} ms, {:.0} req/s, {errors} errors, {:.0} MB peak",
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                times.len() as f64 / window.as_secs_f64(),
                peak as f64 / 1024.0
            ),
            "p95 ≤ 100 ms, ≥ 500 req/s, ≤ 150 MB",
            "3.2 s per refresh / 898 MB",
        );
    }
}

impl Bench<'_> {
    /// The monitor following a feed is killed with SIGKILL and started again: the time from the
    /// new process's start to its first newly scored row, and how it rebuilt its history.
    fn restart(&mut self) -> anyhow::Result<()> {
        let mut feed = Running::spawn(
            command("simulate", Some(&self.log))?
                .args(["--db", &self.db, "--rate", "200", "--seed", "5"]),
        )?;
        let monitor_args = [
            "--db",
            self.db.as_str(),
            "--modeling",
            self.modeling.as_str(),
        ];
        let mut monitor = Running::spawn(command("monitor", Some(&self.log))?.args(monitor_args))?;
        let conn = rusqlite::Connection::open(&self.db_path)?;
        let mark = || -> anyhow::Result<i64> {
            Ok(conn.query_row(
                "SELECT coalesce(max(high_water_mark), 0) FROM monitor_state",
                [],
                |r| r.get(0),
            )?)
        };
        let following = mark()?;
        let deadline = Instant::now() + Duration::from_secs(600);
        while mark()? <= following {
            if Instant::now() > deadline {
                bail!(
                    "the monitor never started scoring; see {}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(5));
        monitor.kill()?; // SIGKILL
        monitor.wait()?;
        let killed_at = mark()?;
        let started = Instant::now();
        let log = self.path("restart-monitor.log");
        let _ = std::fs::remove_file(&log);
        let mut restarted = Running::spawn(command("monitor", Some(&log))?.args(monitor_args))?;
        while mark()? <= killed_at {
            if started.elapsed() > Duration::from_secs(600) {
                bail!(
                    "the restarted monitor scored nothing; see {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let seconds = started.elapsed().as_secs_f64();
        stop(&mut feed, Duration::from_secs(10))?;
        stop(&mut restarted, Duration::from_secs(10))?;
        let restored = std::fs::read_to_string(&log)?
            .lines()
            .find(|line| line.contains("history restored"))
            .map(|line| {
                ["source", "replayed_rows", "beneficiaries", "seconds"]
                    .iter()
                    .filter_map(|key| {
                        let start = line.find(&format!("{key}="))?;
                        line[start..].split_whitespace().next().map(str::to_string)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        self.report.add(
            &format!(
                "monitor restart after kill -9 at {} rows: start to first new score",
                self.config.rows
            ),
            format!("{seconds:.2} s ({restored})"),
            "≤ 1 s, not growing with history",
            "—",
        );
        Ok(())
    }

    /// The payments API on the scored database: ingest throughput (8 clients, batches of
    /// 500), then decision latency of single payments with `?wait=` at 100 and 1,000 a second.
    fn api(&mut self) -> anyhow::Result<()> {
        use crate::apibench;

        let key = crate::up::create_api_key(
            &self.db,
            &format!("bench-{}", random_password(4).to_lowercase()),
            "ingest",
        )?;
        let mut monitor = self.start_monitor()?;
        let (mut dashboard, base) = self.start_dashboard()?;
        let (payees, day) = apibench::payees(&self.db_path, 200_000)?;
        let caught_up = |what: &str| -> anyhow::Result<()> {
            let deadline = Instant::now() + Duration::from_secs(300);
            let conn = rusqlite::Connection::open(&self.db_path)?;
            loop {
                let (mark, newest): (i64, i64) = conn.query_row(
                    "SELECT (SELECT coalesce(max(high_water_mark), 0) FROM monitor_state), (SELECT max(transaction_id) FROM transactions)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                if mark >= newest {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    bail!(
                        "the monitor did not catch up {what} within 5 minutes; see {}",
                        self.log.display()
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        };
        // The monitor starts by rebuilding its history; measure from when it follows the feed.
        let warm = apibench::decisions(&base, &key, &payees, &day, 20, Duration::from_secs(3))?;
        drop(warm);
        let window = Duration::from_secs(self.config.seconds.min(20));
        let ingest = apibench::ingest(&base, &key, &payees, &day, 8, 500, window);
        self.report.add(
            "payments API ingest, 8 clients, batches of 500",
            format!(
                "{:.0} payments/s ({} stored, {} failed requests)",
                ingest.payments as f64 / ingest.seconds,
                ingest.payments,
                ingest.errors
            ),
            "≥ 20,000 payments/s",
            "— (no API)",
        );
        caught_up("after the ingest run")?;
        for rate in [100u32, 1_000] {
            let run = apibench::decisions(&base, &key, &payees, &day, rate, window)?;
            self.report.add(
                &format!("payments API decision (?wait=) at {rate} payments/s"),
                format!(
                    "p50 {:.1} ms, p99 {:.1} ms ({} decided, {} pending at 2 s, {} errors, {:.0}/s achieved)",
                    percentile(&run.decided_ms, 0.5),
                    percentile(&run.decided_ms, 0.99),
                    run.decided_ms.len(),
                    run.pending,
                    run.errors,
                    (run.decided_ms.len() as u64 + run.pending) as f64 / run.seconds
                ),
                if rate == 1_000 { "p99 ≤ 50 ms" } else { "" },
                "— (no API)",
            );
        }
        stop(&mut dashboard, Duration::from_secs(10))?;
        stop(&mut monitor, Duration::from_secs(10))?;
        Ok(())
    }
}

/// Eight clients reading `page` for `window`: sorted response times (ms), errors, and the
/// dashboard's peak memory (kB).
fn load(
    session: &Session,
    dashboard: &Child,
    page: &'static str,
    window: Duration,
) -> (Vec<f64>, u64, u64) {
    let running = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (session, running) = (session.clone(), Arc::clone(&running));
            std::thread::spawn(move || {
                let mut times = Vec::new();
                let mut errors = 0u64;
                while running.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match session.get(page) {
                        Ok((status, _)) if status < 400 => {
                            times.push(started.elapsed().as_secs_f64() * 1000.0)
                        }
                        _ => errors += 1,
                    }
                }
                (times, errors)
            })
        })
        .collect();
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < window {
        watch_peak(dashboard, &mut peak);
        std::thread::sleep(Duration::from_millis(100));
    }
    running.store(false, Ordering::Relaxed);
    let mut times = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (t, e) = worker.join().expect("worker");
        times.extend(t);
        errors += e;
    }
    times.sort_by(f64::total_cmp);
    (times, errors, peak)
}

/// Runs every benchmark, in order, and writes `results.md` in the work directory.
pub fn run(config: &BenchConfig) -> anyhow::Result<()> {
    let on_postgres = config.postgres.is_some();
    if on_postgres && matches!(config.only, Some(Only::Restart | Only::Api)) {
        bail!(
            "the restart and API benches run on SQLite only so far: drop --postgres, or use \
             --only dashboard (or no --only) on PostgreSQL"
        );
    }
    procs::build_programs()?;
    let mut bench = Bench::new(config)?;
    println!(
        "benchmarks on {} rows in {} (work directory {}):",
        config.rows,
        bench.target,
        config.dir.display()
    );
    bench.generate()?;
    if config.only.is_none() {
        bench.import()?;
    }
    bench.train()?;
    bench.drain()?;
    if config.only.is_none() {
        for rate in [1_000u32, 10_000] {
            bench.live(rate)?;
        }
    }
    if on_postgres {
        println!(
            "  (on PostgreSQL the wide-state, restart and API figures are not measured: \
             those benches read the SQLite file directly so far)"
        );
    } else if config.only.is_none() {
        bench.wide_state()?;
    }
    if on_postgres {
        if matches!(config.only, None | Some(Only::Dashboard)) {
            bench.dashboard_load()?;
        }
        let markdown = bench.report.markdown();
        let file = bench.path("results-postgres.md");
        std::fs::write(&file, &markdown)?;
        println!("\n{markdown}\nwritten to {}", file.display());
        return Ok(());
    }
    if matches!(config.only, None | Some(Only::Dashboard)) {
        bench.dashboard_load()?;
    }
    if matches!(config.only, None | Some(Only::Restart)) {
        bench.restart()?;
    }
    if matches!(config.only, None | Some(Only::Api)) {
        bench.api()?;
    }

    let markdown = bench.report.markdown();
    std::fs::write(bench.path("results.md"), &markdown)?;
    println!(
        "\n{markdown}\nwritten to {}",
        bench.path("results.md").display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_sorted_values() {
        let sorted: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan(), "no measurement is not 0 ms");
    }

    #[test]
    fn the_report_is_one_markdown_row_per_measurement() {
        let mut report = Report { rows: Vec::new() };
        report.add("train", "12.0 s".into(), "≤ 60 s", "25 s");
        let markdown = report.markdown();
        assert!(markdown.starts_with("| measurement | Aegis | goal | prototype |"));
        assert!(markdown.ends_with("| train | 12.0 s | ≤ 60 s | 25 s |\n"));
    }
}
