//! `cargo run -p launch`: the whole live system from one command; also `bench` and `soak`.
//! Parses the command line and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use launch::{bench, feedbackbench, soak, up};

/// Aegis: live fraud monitoring of welfare payments.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Plain `launch` is `launch up`, and takes its options (`launch --db X`).
    #[command(flatten)]
    up: UpArgs,
}

/// `launch up`, also what plain `launch` runs, with the same defaults.
#[derive(Debug, Parser)]
struct UpArgs {
    #[command(flatten)]
    db: aegis_core::cli::DbArg,
    #[command(flatten)]
    modeling: aegis_core::cli::ModelingArg,
    /// Dashboard address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: String,
    /// Rows to generate when there is no database yet.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Live feed rate, transactions per second.
    #[arg(long, default_value_t = 5.0, value_parser = parse_rate)]
    rate: f64,
    /// Where the programs' logs go.
    #[arg(long, default_value = "./logs")]
    logs: PathBuf,
    /// Feed the live payments through the dashboard's payments API (with an API key made for
    /// the run) instead of writing the database directly.
    #[arg(long)]
    via_api: bool,
    /// Simulated auditors: every few seconds, review each event day's top alerts and record
    /// their ground truth after a delay (the verdicts the feedback stage learns from).
    #[arg(long)]
    simulated_auditors: bool,
    /// Alerts the simulated auditors review per event day.
    #[arg(long, default_value_t = 100)]
    review_per_day: usize,
    /// Days of event time from an alert's day to its verdict.
    #[arg(long, default_value_t = 7)]
    review_delay_days: i64,
    /// Payments a day reviewed at each counter with a fraud confirmed in the week before.
    #[arg(long, default_value_t = 3)]
    review_follow_ups: usize,
    /// Payments a day the simulated auditors review among those not flagged, at random (the
    /// control sample: what the detector misses): a number (`20`) or a share per thousand of
    /// the day's (`2/1000`).
    #[arg(long)]
    review_control: Option<aegis_core::control::Size>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole live system (the default).
    Up(UpArgs),
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
        /// Only these figures (and the generate, train and drain they need).
        #[arg(long, value_enum)]
        only: Option<bench::Only>,
        /// Measure on this PostgreSQL server instead (the URL of a role that may create
        /// databases; the bench recreates `aegis_bench` and `aegis_bench_import` there).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
    },
    /// The verdict loop: history reviewed by simulated auditors, then the test period live,
    /// with and without the feedback stage (BENCHMARKS.md, "Auditors teach the detector").
    FeedbackBench {
        #[arg(long, default_value = "./bench-results/feedback")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The world to generate: welfare (ours), card or messy-welfare.
        #[arg(long, default_value = "welfare")]
        profile: String,
        /// Days the generated data spans (the generator's default without it).
        #[arg(long)]
        days: Option<u32>,
        /// Alerts the simulated auditors review per event day.
        #[arg(long, default_value_t = 100)]
        per_day: usize,
        /// Days from an alert's day to its verdict.
        #[arg(long, default_value_t = 7)]
        delay_days: i64,
        /// Payments a day reviewed at each counter with a fraud confirmed in the week before.
        #[arg(long, default_value_t = 3)]
        follow_ups: usize,
        /// Retrain the feedback model every this many event days of the live period, on
        /// every payment and verdict so far, as a deployment retrains (without it, the model
        /// trained at the cutoff scores the whole period).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        retrain_days: Option<u32>,
        /// Run the loop in the history too, from this share of the rows on (0.5: the second
        /// half of the rows before the cutoff): the feedback model scores it, retrained every
        /// --retrain-days (28 without it), and the auditors review its alerts, as in a
        /// deployment that has run the feedback stage for a while. Without it the history's
        /// alerts are the unsupervised model's.
        #[arg(long, value_parser = loop_share)]
        loop_from: Option<f64>,
        /// Control sample: the auditors also review this many of each day's payments the
        /// detector did not flag, at random (`50`), or this share per thousand of them
        /// (`2/1000`, in proportion to the day).
        #[arg(long)]
        control: Option<aegis_core::control::Size>,
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
        /// Soak on this PostgreSQL server instead (the URL of a role that may create
        /// databases; the soak recreates `aegis_soak` there).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
    },
}

fn main() -> ExitCode {
    aegis_core::telemetry::init();
    let args = Args::parse();
    // Plain `launch` is `launch up` with its defaults (and the environment's AEGIS_DB…).
    let command = args.command.unwrap_or(Command::Up(args.up));
    let result = match command {
        Command::Up(up) => up::run(&up::UpConfig {
            db: up.db.db,
            modeling: up.modeling.modeling,
            addr: up.addr,
            rows: up.rows,
            rate: up.rate,
            logs: up.logs,
            via_api: up.via_api,
            auditors: up.simulated_auditors.then_some(up::SimulatedAuditors {
                per_day: up.review_per_day,
                delay_days: up.review_delay_days,
                follow_ups: up.review_follow_ups,
                control: up.review_control,
            }),
        }),
        Command::Bench {
            dir,
            rows,
            seconds,
            port,
            only,
            postgres,
        } => bench::run(&bench::BenchConfig {
            dir,
            rows,
            seconds,
            port,
            only,
            postgres,
        }),
        Command::FeedbackBench {
            dir,
            rows,
            seed,
            profile,
            days,
            per_day,
            delay_days,
            follow_ups,
            retrain_days,
            loop_from,
            control,
        } => feedbackbench::run(&feedbackbench::FeedbackBenchConfig {
            dir,
            rows,
            seed,
            profile,
            days,
            per_day,
            delay_days,
            follow_ups,
            retrain_days,
            loop_from,
            control,
        }),
        Command::Soak {
            dir,
            duration,
            rate,
            monitor_kills,
            simulator_kills,
            rows,
            port,
            postgres,
        } => soak::run(&soak::SoakConfig {
            dir,
            duration: Duration::from_secs(duration),
            rate,
            monitor_kills,
            simulator_kills,
            rows,
            port,
            postgres,
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

/// `--loop-from`: a share of the rows that leaves an unsupervised history before it and some
/// history after it, before the cutoff at 0.8.
fn loop_share(text: &str) -> Result<f64, String> {
    let share: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number: give a share of the rows such as 0.5"))?;
    if share > 0.0 && share < 0.8 {
        Ok(share)
    } else {
        Err(format!(
            "{share} is outside (0, 0.8): the loop must start after some unsupervised history and before the cutoff at 0.8 of the rows"
        ))
    }
}

/// `--rate`: a positive, finite number of payments a second.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of payments a second (such as 5)"
        )),
    }
}
