//! `cargo run -p train`: fit the autoencoder, calibrate its threshold, evaluate, save artifacts.

use std::process::ExitCode;

use clap::Parser;

use aegis_core::model::BackendKind;
use aegis_core::time::{EventTime, parse_timestamp};

/// Train the anomaly detector on transactions.db and write it to modeling/.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    db: aegis_core::cli::DbArg,
    #[command(flatten)]
    modeling: aegis_core::cli::ModelingArg,
    /// Start of the training window: a date (YYYY-MM-DD, IST) or a timestamp.
    #[arg(long, value_parser = parse_bound)]
    from: Option<(String, EventTime)>,
    /// End of the training window (exclusive): a date or a timestamp.
    #[arg(long, value_parser = parse_bound)]
    until: Option<(String, EventTime)>,
    /// Alert budget: the fraction of transactions the threshold flags.
    #[arg(long, default_value_t = 0.02)]
    alert_rate: f64,
    /// Train on rows labeled normal only (the prototype's behaviour).
    #[arg(long)]
    normal_only: bool,
    /// Leave out the per-row detector (a small network on the payment alone: amount, hour,
    /// weekday, place), which is otherwise one of the detectors the score can combine and the
    /// baseline every report compares against.
    #[arg(long, alias = "no-baseline")]
    no_per_row: bool,
    /// Combine the default detectors (reconstruction and rarity) even when the held-out rows
    /// carry enough labels to choose, as for an export without any.
    #[arg(long)]
    default_combination: bool,
    /// Run the robustness suite in DIR instead: generate our welfare world and two unlike it
    /// (card payments as the Fraud Detection Handbook simulates them; messy welfare), train on
    /// each with and without labels choosing the combination, and print per data set the
    /// final score's and every single detector's AUC, AP and recall per fraud type at the
    /// alert budget (also written to DIR/suite.md). Data sets already in DIR are reused.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = ["from", "until", "normal_only", "no_per_row", "default_combination", "no_feedback"]
    )]
    suite: Option<std::path::PathBuf>,
    /// Write every row of the training window (--from/--until) to FILE as CSV instead of
    /// training: its id, time, label and fraud type, then each value the detectors see
    /// (the behavioural features in model input order, then the per-row detector's inputs,
    /// then the steady-amount change)
    #[arg(long, value_name = "FILE", conflicts_with = "suite")]
    dump_features: Option<std::path::PathBuf>,
    /// Maximum epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: u32,
    #[arg(long, default_value_t = 512, value_parser = parse_batch_size)]
    batch_size: usize,
    #[arg(long, default_value_t = 2e-3, value_parser = parse_learning_rate)]
    learning_rate: f64,
    /// Random seed: the same data and seed give the same model.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// CPU backend: flex (default) or ndarray (needs --features aegis-model/ndarray).
    #[arg(long, default_value = "flex", value_parser = BackendKind::parse)]
    backend: BackendKind,
    /// Train the unsupervised stage alone, even when auditors' verdicts are in the database
    /// (by default they teach the supervised stage once there are enough of them).
    #[arg(long)]
    no_feedback: bool,
    #[command(flatten)]
    progress: aegis_core::cli::ProgressArg,
}

fn parse_bound(text: &str) -> Result<(String, EventTime), String> {
    parse_timestamp(text)
        .map(|time| (text.to_string(), time))
        .map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    aegis_core::telemetry::init();
    let args = Args::parse();
    let config = train::TrainConfig {
        db: args.db.db,
        modeling: args.modeling.modeling,
        from: args.from,
        until: args.until,
        alert_rate: args.alert_rate,
        normal_only: args.normal_only,
        per_row: !args.no_per_row,
        choose_with_labels: !args.default_combination,
        feedback: !args.no_feedback,
        fit: train::fit::FitConfig {
            max_epochs: args.epochs,
            batch_size: args.batch_size,
            learning_rate: args.learning_rate,
            patience: 3,
            seed: args.seed,
            backend: args.backend,
            progress: args.progress.show(),
        },
    };
    if let Some(path) = args.dump_features {
        return match train::dump::run(&config, &path) {
            Ok(rows) => {
                println!("{rows} rows written to {}", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(dir) = args.suite {
        return match train::suite::run(&dir, &config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    match train::run(&config) {
        Ok(outcome) => {
            train::print_report(&outcome);
            println!("\nmodel written to {}", config.modeling.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `--batch-size`: at least one row a step.
fn parse_batch_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(size) if size > 0 => Ok(size),
        _ => Err(format!(
            "{text:?} is not a positive number of rows (512 is the default)"
        )),
    }
}

/// `--learning-rate`: a positive, finite step size.
fn parse_learning_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number (0.002 is the default)"
        )),
    }
}
