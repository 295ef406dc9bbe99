//! `train`: fits the autoencoder on the shared behavioural features, calibrates the threshold
//! for an alert budget, evaluates it honestly against a prototype-style baseline, and writes
//! the artifacts the monitor loads.
//!
//! # Layout
//! - [`dataset`]: replaying the window through the feature state; the time split.
//! - [`fit`]: the burn training loop.
//! - [`evaluate`]: metrics and the per-type report.

pub mod dataset;
pub mod evaluate;
pub mod fit;

use std::path::PathBuf;
use std::time::Instant;

use aegis_core::artifacts::{ModelConfig, TrainingWindow};
use aegis_core::db;
use aegis_core::features::{FEATURE_COUNT, FEATURE_NAMES, feature_set_id};
use aegis_core::metrics::{EpochLoss, Metrics, Period, RowCounts, ScoreHistogram, Timings};
use aegis_core::model::AutoencoderShape;
use aegis_core::time::{DAY, EventTime, format_ist};
use anyhow::{Context, bail};

use crate::dataset::{BASELINE_FEATURE_COUNT, Dataset, time_split};
use crate::evaluate::{Evaluation, evaluate, quantile};
use crate::fit::{FitConfig, Fitted, fit};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub db: PathBuf,
    pub modeling: PathBuf,
    pub from: Option<(String, EventTime)>,
    pub until: Option<(String, EventTime)>,
    pub alert_rate: f64,
    pub normal_only: bool,
    pub baseline: bool,
    pub fit: FitConfig,
}

/// What a training run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    pub config: ModelConfig,
    pub evaluation: Option<Evaluation>,
    pub baseline: Option<Evaluation>,
    pub metrics: Metrics,
}

fn gather(dataset_rows: &[f32], columns: usize, indices: impl Iterator<Item = usize>) -> Vec<f32> {
    let mut out = Vec::new();
    for index in indices {
        out.extend_from_slice(&dataset_rows[index * columns..(index + 1) * columns]);
    }
    out
}

/// Trains, evaluates and saves a model.
pub fn run(config: &TrainConfig) -> anyhow::Result<TrainOutcome> {
    if !(0.0..0.5).contains(&config.alert_rate) || config.alert_rate == 0.0 {
        bail!(
            "--alert-rate {} is out of range: use a fraction such as 0.02 (2 % of transactions)",
            config.alert_rate
        );
    }
    let started = Instant::now();
    let conn = db::open(&config.db).with_context(|| format!("opening {}", config.db.display()))?;
    let dataset = dataset::load(
        &conn,
        config.from.as_ref().map(|f| f.1),
        config.until.as_ref().map(|u| u.1),
    )?;
    drop(conn);
    let feature_seconds = started.elapsed().as_secs_f64();
    if dataset.len() < 100 {
        bail!(
            "only {} usable transactions in the training window of {}: generate or import data first (`cargo run -p generate`), or widen --from/--until",
            dataset.len(),
            config.db.display()
        );
    }
    let split = time_split(dataset.len());
    let labeled = dataset.has_labels();
    if config.normal_only && !labeled {
        bail!("--normal-only needs ground-truth labels (is_anomaly), and this database has none");
    }
    let trainable = |index: &usize| {
        let example = &dataset.examples[*index];
        !example.confirmed_fraud && (!config.normal_only || example.is_anomaly == Some(false))
    };
    let train_indices: Vec<usize> = split.train.clone().filter(trainable).collect();
    let calibration_indices: Vec<usize> = split.calibration.clone().filter(trainable).collect();
    tracing::info!(
        rows = dataset.len(),
        train = train_indices.len(),
        calibration = calibration_indices.len(),
        test = split.test.len(),
        malformed = dataset.malformed,
        feature_seconds,
        "training window loaded"
    );

    let fit_main = Instant::now();
    let fitted = fit(
        &gather(
            &dataset.features,
            FEATURE_COUNT,
            train_indices.iter().copied(),
        ),
        &gather(
            &dataset.features,
            FEATURE_COUNT,
            calibration_indices.iter().copied(),
        ),
        AutoencoderShape::default(),
        &config.fit,
    )?;
    let fit_seconds = fit_main.elapsed().as_secs_f64();

    // Threshold: the alert budget's quantile of held-out calibration scores (all of them,
    // as the monitor will see them — no labels involved).
    let calibration_scores = fitted.scores(&gather(
        &dataset.features,
        FEATURE_COUNT,
        split.calibration.clone(),
    ));
    let threshold = quantile(&calibration_scores, 1.0 - config.alert_rate);
    let score_quantiles: Vec<(f64, f32)> = [0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
        .into_iter()
        .map(|q| (q, quantile(&calibration_scores, q)))
        .collect();

    let test_scores = fitted.scores(&gather(
        &dataset.features,
        FEATURE_COUNT,
        split.test.clone(),
    ));
    let evaluation = labeled
        .then(|| {
            evaluate_split(
                &dataset,
                split.test.clone(),
                &test_scores,
                threshold,
                config.alert_rate,
            )
        })
        .transpose()?;
    let baseline = if labeled && config.baseline {
        Some(train_baseline(
            &dataset,
            &split,
            &train_indices,
            &calibration_indices,
            config,
        )?)
    } else {
        None
    };

    let created = chrono::Utc::now();
    let model_version = format!(
        "{}-s{}",
        created.format("%Y%m%dT%H%M%S%.3f"),
        config.fit.seed
    );
    let first_event = format_ist(dataset.examples[0].time);
    let last_event = format_ist(dataset.examples[dataset.len() - 1].time);
    let model_config = ModelConfig {
        model_version: model_version.clone(),
        created_at: created.to_rfc3339(),
        feature_set: feature_set_id(),
        feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
        shape: fitted.shape,
        normalization: fitted.normalizer.clone(),
        threshold,
        alert_rate: config.alert_rate,
        training_window: TrainingWindow {
            from: config.from.as_ref().map(|f| f.0.clone()),
            until: config.until.as_ref().map(|u| u.0.clone()),
            first_event,
            last_event,
        },
        rows: train_indices.len() as u64,
        epochs: fitted.epochs,
        seed: config.fit.seed,
        backend: config.fit.backend.name().to_string(),
        normal_only: config.normal_only,
        weights_file: format!("model-{model_version}.bpk"),
        score_quantiles: score_quantiles.clone(),
    };
    let metrics = Metrics {
        model_version,
        feature_set: feature_set_id(),
        rows: RowCounts {
            window: dataset.len(),
            train: train_indices.len(),
            calibration: calibration_indices.len(),
            test: split.test.len(),
            malformed_skipped: dataset.malformed,
        },
        test_period: Some(Period {
            first_event: format_ist(dataset.examples[split.test.start.min(dataset.len() - 1)].time),
            last_event: format_ist(dataset.examples[dataset.len() - 1].time),
        }),
        threshold,
        alert_rate: config.alert_rate,
        score_quantiles,
        score_histogram: histogram(&test_scores, threshold),
        history: fitted
            .history
            .iter()
            .map(|&(epoch, train_loss, validation_loss)| EpochLoss {
                epoch,
                train_loss,
                validation_loss,
            })
            .collect(),
        evaluation: evaluation.clone(),
        baseline: baseline.clone(),
        timings_s: Timings {
            features: feature_seconds,
            fit: fit_seconds,
            total: started.elapsed().as_secs_f64(),
        },
        backend: config.fit.backend.name().to_string(),
    };
    aegis_model::save(
        &config.modeling,
        &model_config,
        fitted.autoencoder,
        &metrics,
    )
    .with_context(|| format!("writing the model to {}", config.modeling.display()))?;
    Ok(TrainOutcome {
        config: model_config,
        evaluation,
        baseline,
        metrics,
    })
}

fn evaluate_split(
    dataset: &Dataset,
    range: std::ops::Range<usize>,
    scores: &[f32],
    threshold: f32,
    alert_rate: f64,
) -> anyhow::Result<Evaluation> {
    let examples = &dataset.examples[range];
    let labels: Vec<bool> = examples
        .iter()
        .map(|e| e.is_anomaly == Some(true))
        .collect();
    let types: Vec<Option<String>> = examples
        .iter()
        .map(|e| {
            if e.is_anomaly == Some(true) {
                e.fraud_type.clone().or(Some("unlabeled".into()))
            } else {
                None
            }
        })
        .collect();
    let days = ((examples.last().map_or(0, |e| e.time) - examples.first().map_or(0, |e| e.time))
        as f64
        / DAY as f64)
        .max(1.0);
    let k = (alert_rate * examples.len() as f64 / days).round() as usize;
    evaluate(scores, &labels, &types, threshold, k)
}

/// The prototype's detector for comparison: the same network on per-row features only.
fn train_baseline(
    dataset: &Dataset,
    split: &dataset::Split,
    train_indices: &[usize],
    calibration_indices: &[usize],
    config: &TrainConfig,
) -> anyhow::Result<Evaluation> {
    let shape = AutoencoderShape {
        input: BASELINE_FEATURE_COUNT,
        ..AutoencoderShape::default()
    };
    let fitted: Fitted = fit(
        &gather(
            &dataset.baseline_features,
            BASELINE_FEATURE_COUNT,
            train_indices.iter().copied(),
        ),
        &gather(
            &dataset.baseline_features,
            BASELINE_FEATURE_COUNT,
            calibration_indices.iter().copied(),
        ),
        shape,
        &FitConfig {
            progress: false,
            ..config.fit.clone()
        },
    )?;
    let calibration = fitted.scores(&gather(
        &dataset.baseline_features,
        BASELINE_FEATURE_COUNT,
        split.calibration.clone(),
    ));
    let threshold = quantile(&calibration, 1.0 - config.alert_rate);
    let scores = fitted.scores(&gather(
        &dataset.baseline_features,
        BASELINE_FEATURE_COUNT,
        split.test.clone(),
    ));
    evaluate_split(
        dataset,
        split.test.clone(),
        &scores,
        threshold,
        config.alert_rate,
    )
}

/// 40 log-spaced bins of scores, for the dashboard's histogram.
fn histogram(scores: &[f32], threshold: f32) -> Option<ScoreHistogram> {
    let positive: Vec<f64> = scores.iter().map(|&s| f64::from(s.max(1e-6))).collect();
    if positive.is_empty() {
        return None;
    }
    let low = positive
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10();
    let high = positive
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .log10()
        .max(low + 1e-6);
    let bins = 40;
    let mut counts = vec![0u64; bins];
    for score in positive {
        let position = ((score.log10() - low) / (high - low) * bins as f64) as usize;
        counts[position.min(bins - 1)] += 1;
    }
    let edges: Vec<f64> = (0..=bins)
        .map(|i| 10f64.powf(low + (high - low) * i as f64 / bins as f64))
        .collect();
    Some(ScoreHistogram {
        edges,
        counts,
        threshold,
    })
}

/// Prints the evaluation table, with the baseline beside it.
pub fn print_report(outcome: &TrainOutcome) {
    let config = &outcome.config;
    println!(
        "\nmodel {} ({} rows, {} epochs, backend {}), threshold {:.4} for a {:.1} % alert budget",
        config.model_version,
        config.rows,
        config.epochs,
        config.backend,
        config.threshold,
        config.alert_rate * 100.0
    );
    let Some(evaluation) = &outcome.evaluation else {
        println!("no ground-truth labels in the window: evaluation skipped");
        return;
    };
    let baseline = outcome.baseline.as_ref();
    let column = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "\nheld-out test period: {} rows, {} labeled frauds",
        evaluation.rows, evaluation.positives
    );
    println!(
        "{:<24} {:>10} {:>18}",
        "metric", "aegis", "per-row baseline"
    );
    for (name, ours, theirs) in [
        ("ROC-AUC", evaluation.roc_auc, baseline.map(|b| b.roc_auc)),
        (
            "average precision",
            evaluation.average_precision,
            baseline.map(|b| b.average_precision),
        ),
        (
            "precision @ threshold",
            evaluation.precision,
            baseline.map(|b| b.precision),
        ),
        (
            "recall @ threshold",
            evaluation.recall,
            baseline.map(|b| b.recall),
        ),
        ("F1 @ threshold", evaluation.f1, baseline.map(|b| b.f1)),
        (
            "precision @ k",
            evaluation.precision_at_k,
            baseline.map(|b| b.precision_at_k),
        ),
    ] {
        println!(
            "{name:<24} {:>10} {:>18}",
            column(Some(ours)),
            column(theirs)
        );
    }
    println!("(k = {} alerts a day)", evaluation.k);
    println!(
        "\n{:<24} {:>8} {:>10} {:>18}",
        "recall by fraud type", "rows", "aegis", "per-row baseline"
    );
    for row in &evaluation.per_type {
        let theirs = baseline
            .and_then(|b| b.per_type.iter().find(|t| t.fraud_type == row.fraud_type))
            .map(|t| t.recall);
        println!(
            "{:<24} {:>8} {:>10} {:>18}",
            row.fraud_type,
            row.rows,
            column(Some(row.recall)),
            column(theirs)
        );
    }
    let c = evaluation.confusion;
    println!(
        "\nconfusion at threshold: TP {}  FP {}  FN {}  TN {}",
        c.true_positives, c.false_positives, c.false_negatives, c.true_negatives
    );
}
