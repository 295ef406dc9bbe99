//! `cargo run -p simulate`: a live feed of payments (or a CSV replay) into transactions.db.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use aegis_core::time::{EventTime, ist_day_start, parse_timestamp};

/// Insert a continuous, realistic feed of welfare payments (with labeled frauds) into
/// transactions.db, or replay a CSV export in event-time order.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    db: aegis_core::cli::DbArg,
    /// Transactions per second (Poisson arrivals).
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Simulated seconds per real second (with --replay: event-time seconds per real second).
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Fraction of arrivals that start a fraud (0.01 = 1 %).
    #[arg(long, default_value_t = 0.01)]
    fraud_rate: f64,
    /// Stop after inserting this many transactions.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First simulated day (YYYY-MM-DD); default: the day after the newest transaction.
    #[arg(long, value_parser = parse_day)]
    start: Option<EventTime>,
    /// Replay this CSV export (the import format) in event-time order instead.
    #[arg(long, value_name = "FILE.csv")]
    replay: Option<PathBuf>,
    /// Longest a row waits before its batch is committed, in milliseconds.
    #[arg(long, default_value_t = 20)]
    commit_ms: u64,
    /// Send the payments through the dashboard's payments API at this URL (such as
    /// http://127.0.0.1:8080) instead of writing the database; needs --key.
    #[arg(long, value_name = "URL", requires = "key")]
    via_api: Option<String>,
    /// API key with the ingest scope (`dashboard apikey add NAME --scope ingest`).
    #[arg(long, env = "AEGIS_API_KEY", hide_env_values = true)]
    key: Option<String>,
}

fn parse_day(text: &str) -> Result<EventTime, String> {
    parse_timestamp(text)
        .map(ist_day_start)
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    aegis_core::telemetry::init();
    let args = Args::parse();
    let stop = match aegis_core::telemetry::stop_on_signals() {
        Ok(stop) => stop,
        Err(error) => {
            eprintln!("error: cannot install the signal handler: {error}");
            return ExitCode::FAILURE;
        }
    };
    if !(0.0..=1.0).contains(&args.fraud_rate) {
        eprintln!(
            "error: --fraud-rate {} is out of range: use a fraction such as 0.01",
            args.fraud_rate
        );
        return ExitCode::FAILURE;
    }
    let config = simulate::SimulateConfig {
        db: args.db.db,
        rate: args.rate,
        speed: args.speed,
        fraud_rate: args.fraud_rate,
        count: args.count,
        duration: args.duration,
        seed: args.seed,
        start: args.start,
        replay: args.replay,
        commit_interval: Duration::from_millis(args.commit_ms.max(1)),
        api: args.via_api.map(|url| simulate::sink::ApiTarget {
            url,
            key: args.key.unwrap_or_default(),
        }),
    };
    match simulate::run(&config, stop) {
        Ok(stats) => {
            println!(
                "inserted {} transactions ({} labeled frauds) in {} batches",
                stats.inserted, stats.frauds, stats.batches
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--duration`: a positive, finite number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|seconds| *seconds > 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds (such as 60)"))
}
