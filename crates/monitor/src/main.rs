//! `cargo run -p monitor`: score new transactions as they arrive (or all unscored with --once).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use aegis_core::model::BackendKind;

/// Score every new transaction in transactions.db (or a PostgreSQL database) exactly once, with
/// reasons.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    db: aegis_core::cli::DbArg,
    #[command(flatten)]
    modeling: aegis_core::cli::ModelingArg,
    /// Score everything unscored, then exit.
    #[arg(long)]
    once: bool,
    /// Most rows scored per transaction.
    #[arg(long, default_value_t = 5_000)]
    batch_size: usize,
    /// Milliseconds between polls when idle.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    /// Checkpoint the feature state after this many newly scored rows (0: never; every start
    /// then replays all history).
    #[arg(long, default_value_t = monitor::CheckpointPolicy::default().every_rows)]
    checkpoint_rows: u64,
    /// ... or after this many seconds with at least one newly scored row.
    #[arg(long, default_value_t = monitor::CheckpointPolicy::default().every.as_secs())]
    checkpoint_seconds: u64,
    /// Where checkpoints go [default: beside an SQLite file (`<db>.checkpoints`), or for a
    /// PostgreSQL server `<modeling>/monitor-checkpoints/<host>_<port>_<database>`].
    #[arg(long)]
    checkpoint_dir: Option<std::path::PathBuf>,
    /// CPU backend: flex (default) or ndarray (needs --features aegis-model/ndarray).
    #[arg(long, default_value = "flex", value_parser = BackendKind::parse)]
    backend: BackendKind,
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
    let config = monitor::MonitorConfig {
        db: args.db.db,
        modeling: args.modeling.modeling,
        backend: args.backend,
        once: args.once,
        batch_size: args.batch_size.max(1),
        poll_interval: Duration::from_millis(args.poll_ms),
        checkpoints: monitor::CheckpointPolicy {
            every_rows: args.checkpoint_rows,
            every: Duration::from_secs(args.checkpoint_seconds),
        },
        checkpoint_dir: args.checkpoint_dir,
    };
    match monitor::run(&config, stop) {
        Ok(stats) => {
            println!(
                "scored {} transactions: {} anomalies, {} errors",
                stats.scored, stats.anomalies, stats.errors
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
