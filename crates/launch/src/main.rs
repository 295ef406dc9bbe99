//! `cargo run -p launch`: the whole live system from one command; also `bench` and `soak`.
//!
//! # Layout
//! - `up`: build, generate and train if needed, run simulator + monitor + dashboard.
//! - `bench`: reproduce BENCHMARKS.md.
//! - `soak`: kill the monitor and simulator at random under a live feed, then check the books.
//! - `procs`, `http`: child processes and a logged-in dashboard client.

mod bench;
mod http;
mod procs;
mod soak;
mod up;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Aegis: live fraud monitoring of welfare payments.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole live system (the default).
    Up {
        #[arg(long, env = "AEGIS_DB", default_value = aegis_core::DEFAULT_DB)]
        db: PathBuf,
        #[arg(long, env = "AEGIS_MODELING", default_value = aegis_core::DEFAULT_MODELING)]
        modeling: PathBuf,
        /// Dashboard address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Rows to generate when there is no database yet.
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        /// Live feed rate, transactions per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        /// Where the programs' logs go.
        #[arg(long, default_value = "./logs")]
        logs: PathBuf,
    },
    /// Reproduce every figure in BENCHMARKS.md.
    Bench {
        #[arg(long, default_value = "./bench-results")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// Seconds of each live and load measurement.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 18080)]
        port: u16,
    },
    /// Fault soak: SIGKILL the monitor (and the simulator) at random under a live feed.
    Soak {
        #[arg(long, default_value = "./bench-results/soak")]
        dir: PathBuf,
        /// Length of the run in seconds (the short CI form is 60; the long form 1800).
        #[arg(long, default_value_t = 60)]
        duration: u64,
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 20)]
        monitor_kills: u32,
        #[arg(long, default_value_t = 3)]
        simulator_kills: u32,
        /// Rows generated before the feed starts.
        #[arg(long, default_value_t = 50_000)]
        rows: u64,
        #[arg(long, default_value_t = 18081)]
        port: u16,
    },
}

fn main() -> ExitCode {
    aegis_core::telemetry::init();
    let args = Args::parse();
    let command = args.command.unwrap_or(Command::Up {
        db: PathBuf::from(
            std::env::var("AEGIS_DB").unwrap_or_else(|_| aegis_core::DEFAULT_DB.into()),
        ),
        modeling: PathBuf::from(
            std::env::var("AEGIS_MODELING").unwrap_or_else(|_| aegis_core::DEFAULT_MODELING.into()),
        ),
        addr: "127.0.0.1:8080".into(),
        rows: 100_000,
        rate: 5.0,
        logs: PathBuf::from("./logs"),
    });
    let result = match command {
        Command::Up {
            db,
            modeling,
            addr,
            rows,
            rate,
            logs,
        } => up::run(&up::UpConfig {
            db,
            modeling,
            addr,
            rows,
            rate,
            logs,
        }),
        Command::Bench {
            dir,
            rows,
            seconds,
            port,
        } => bench::run(&bench::BenchConfig {
            dir,
            rows,
            seconds,
            port,
        }),
        Command::Soak {
            dir,
            duration,
            rate,
            monitor_kills,
            simulator_kills,
            rows,
            port,
        } => soak::run(&soak::SoakConfig {
            dir,
            duration: Duration::from_secs(duration),
            rate,
            monitor_kills,
            simulator_kills,
            rows,
            port,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
