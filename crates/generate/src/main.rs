//! `cargo run -p generate`: create a realistic transactions.db, or import a CSV export.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use aegis_core::time::{EventTime, parse_timestamp};

/// Create a realistic transactions.db (synthetic welfare payments with labeled frauds), or
/// import a real CSV export with --from-csv.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    db: aegis_core::cli::DbArg,
    /// Which world to generate: `welfare` (ours), `card` (card payments as the Fraud Detection
    /// Handbook simulates them) or `messy-welfare` (welfare with another normal and subtler
    /// frauds), for judging detection on data not designed next to our features.
    #[arg(long, default_value = "welfare", value_parser = generate::Profile::parse)]
    profile: generate::Profile,
    /// Number of transactions to generate.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Random seed: the same seed gives an identical database.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// First day of the generated period (YYYY-MM-DD, IST).
    #[arg(long, default_value = "2025-01-01", value_parser = parse_day)]
    start: EventTime,
    /// Length of the generated period in days.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Fraction of transactions that are labeled frauds (0.01 = 1 %).
    #[arg(long, default_value_t = 0.01)]
    fraud_rate: f64,
    /// Replace the transactions of a database that already has some.
    #[arg(long)]
    force: bool,
    /// Import this CSV export instead of generating.
    #[arg(long, value_name = "FILE")]
    from_csv: Option<PathBuf>,
    /// With --from-csv: add to the transactions already stored; rows whose transaction_ref is
    /// already present are skipped and counted, so re-importing a file adds nothing.
    #[arg(long, requires = "from_csv", conflicts_with = "force")]
    append: bool,
    /// With --from-csv: import the good rows and write the bad ones to FILE.rejects.csv.
    #[arg(long, requires = "from_csv")]
    skip_bad: bool,
    #[command(flatten)]
    progress: aegis_core::cli::ProgressArg,
}

fn parse_day(text: &str) -> Result<EventTime, String> {
    let time = parse_timestamp(text).map_err(|e| e.to_string())?;
    Ok(aegis_core::time::ist_day_start(time))
}

fn main() -> ExitCode {
    aegis_core::telemetry::init();
    let args = Args::parse();
    let config = generate::RunConfig {
        db: args.db.db,
        generate: generate::GenerateConfig {
            profile: args.profile,
            rows: args.rows,
            seed: args.seed,
            start: args.start,
            days: args.days,
            fraud_rate: args.fraud_rate,
        },
        force: args.force,
        from_csv: args.from_csv,
        append: args.append,
        skip_bad: args.skip_bad,
        progress: args.progress.show(),
    };
    match generate::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
