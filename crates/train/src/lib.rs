//! `train`: fits the autoencoder on the shared behavioural features and the per-row network,
//! calibrates every detector against this deployment's own data and chooses how to combine
//! them, calibrates the threshold for an alert budget, evaluates the score and each single
//! detector honestly on the held-out period, and writes the artifacts the monitor loads.
//!
//! # Layout
//! - [`dataset`]: replaying the window through the feature state; the time split.
//! - [`fit`]: the burn training loop.
//! - [`detectors`]: calibrating the detectors and choosing their combination.
//! - [`suite`]: the robustness suite: our world and two unlike it, each trained and judged.
//! - [`evaluate`]: metrics and the per-type report.

pub mod dataset;
pub mod detectors;
pub mod dump;
pub mod evaluate;
pub mod feedback;
pub mod fit;
pub mod suite;

use std::path::PathBuf;
use std::time::Instant;

use aegis_core::artifacts::{ModelConfig, PerRowModel, TrainingWindow};
use aegis_core::drift::FeatureBins;
use aegis_core::engine::Target;
use aegis_core::features::{FEATURE_COUNT, FEATURE_NAMES, PER_ROW_COUNT, feature_set_id};
use aegis_core::feedback::{FeedbackStage, LOOK_INPUTS};
use aegis_core::metrics::{
    DetectorEvaluation, EpochLoss, FeedbackReport, KindSwaps, LookShare, LookTrial, Lowered,
    Metrics, Period, Refit, RowCounts, ScoreHistogram, Timings,
};
use aegis_core::model::{AutoencoderShape, Detector};
use aegis_core::time::{DAY, EventTime, format_ist};
use anyhow::{Context, bail};

use crate::dataset::{Dataset, time_split};
use crate::detectors::{Detectors, RowSet, Rows};
use crate::evaluate::{
    Evaluation, average_precision_of_each_kind, average_precision_per_kind, caught_at,
    caught_per_kind_at, evaluate, kind_count, mean_recall, quantile,
};
use crate::fit::{FitConfig, fit};

/// What to train.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub db: Target,
    pub modeling: PathBuf,
    pub from: Option<(String, EventTime)>,
    pub until: Option<(String, EventTime)>,
    pub alert_rate: f64,
    pub normal_only: bool,
    /// Train the per-row detector (the prototype's idea) as one of the detectors.
    pub per_row: bool,
    /// Let the held-out rows' labels choose the detectors' combination (else the default).
    pub choose_with_labels: bool,
    /// Train the supervised stage on auditors' verdicts when there are enough (`--no-feedback`
    /// turns it off).
    pub feedback: bool,
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

/// Fewest payments a model is trained on.
const MIN_TRAINING_ROWS: usize = 100;

/// Trains, evaluates and saves a model.
/// Makes sure the model can be written to `modeling` before minutes of training: a directory
/// that cannot be made or written (read-only, mistyped, another user's) is named now.
fn writable(modeling: &std::path::Path) -> anyhow::Result<()> {
    let probe = modeling.join(format!(".write-probe-{}", std::process::id()));
    std::fs::create_dir_all(modeling)
        .and_then(|()| std::fs::write(&probe, b""))
        .and_then(|()| std::fs::remove_file(&probe))
        .with_context(|| {
            format!(
                "the model cannot be written to {}: give --modeling a directory this user can write",
                modeling.display()
            )
        })
}

pub fn run(config: &TrainConfig) -> anyhow::Result<TrainOutcome> {
    if !(0.0..0.5).contains(&config.alert_rate) || config.alert_rate == 0.0 {
        bail!(
            "--alert-rate {} is out of range: use a fraction such as 0.02 (2 % of transactions)",
            config.alert_rate
        );
    }
    writable(&config.modeling)?;
    let started = Instant::now();
    let dataset = load_window(config)?;
    let feature_seconds = started.elapsed().as_secs_f64();
    if dataset.len() < MIN_TRAINING_ROWS {
        bail!(
            "only {} usable transactions in the training window of {}: generate or import data first (`cargo run -p generate`), or widen --from/--until",
            dataset.len(),
            config.db
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
    // An export that labels only its frauds leaves --normal-only nothing to learn from: an
    // autoencoder fitted on no rows would be random weights published as the model.
    if train_indices.len() < MIN_TRAINING_ROWS || calibration_indices.is_empty() {
        bail!(
            "only {} rows to learn from and {} to validate on in the training window{}: {}",
            train_indices.len(),
            calibration_indices.len(),
            if config.normal_only {
                " with --normal-only"
            } else {
                ""
            },
            if config.normal_only {
                "it keeps rows labeled is_anomaly = 0 only, and this data has too few; train without --normal-only"
            } else {
                "nearly every row is a confirmed fraud; import the ordinary payments too"
            }
        );
    }
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
    let train_rows = RowSet::gather(&dataset, train_indices.iter().copied());
    let validation_rows = RowSet::gather(&dataset, calibration_indices.iter().copied());
    let main = fit(
        &train_rows.features,
        &validation_rows.features,
        AutoencoderShape::default(),
        &config.fit,
    )?;
    let per_row = config
        .per_row
        .then(|| {
            fit(
                &train_rows.per_row,
                &validation_rows.per_row,
                AutoencoderShape {
                    input: PER_ROW_COUNT,
                    ..AutoencoderShape::default()
                },
                &FitConfig {
                    progress: false,
                    ..config.fit.clone()
                },
            )
        })
        .transpose()?;
    drop(validation_rows);
    let fit_seconds = fit_main.elapsed().as_secs_f64();

    // Calibration and the choice of detectors: on every row of the held-out period, as the
    // monitor will see them, with whatever labels they carry.
    let held_out = RowSet::gather(&dataset, split.calibration.clone());
    // Each feature's spread on the held-out rows, which the drift view compares days with.
    let feature_bins: Vec<FeatureBins> = (0..FEATURE_COUNT)
        .filter_map(|feature| {
            let values: Vec<f32> = held_out
                .features
                .iter()
                .skip(feature)
                .step_by(FEATURE_COUNT)
                .copied()
                .collect();
            FeatureBins::fit(&values)
        })
        .collect();
    let feature_bins = if feature_bins.len() == FEATURE_COUNT {
        feature_bins
    } else {
        Vec::new()
    };
    // Each known fraud with its kind: the labeled type, or one kind for frauds without one
    // (auditors' confirmations, labels without a type).
    let mut kinds: Vec<&str> = Vec::new();
    let mut kind_of = |i: usize| {
        let example = &dataset.examples[i];
        let fraud = example.is_anomaly == Some(true) || example.confirmed_fraud;
        fraud.then(|| {
            let kind = example.fraud_type.as_deref().unwrap_or("");
            let index = kinds.iter().position(|&k| k == kind).unwrap_or_else(|| {
                kinds.push(kind);
                kinds.len() - 1
            });
            index as u32
        })
    };
    let held_out_labels: Vec<Option<u32>> = split.calibration.clone().map(&mut kind_of).collect();
    // The training rows' too, for the look's check on blocks of them.
    let window_labels: Vec<Option<u32>> = split.train.clone().map(&mut kind_of).collect();
    let detectors = Detectors::calibrate(
        main,
        per_row,
        Rows::of(&train_rows),
        Rows::of(&held_out),
        &held_out_labels,
        config.choose_with_labels,
        config.alert_rate,
    );
    drop(train_rows);
    let calibration_scores = detectors.scores(Rows::of(&held_out));
    let unsupervised_threshold = quantile(&calibration_scores, 1.0 - config.alert_rate);
    let test = RowSet::gather(&dataset, split.test.clone());
    let test_scores = detectors.scores(Rows::of(&test));
    let unsupervised_test_scores = test_scores.clone();

    // The supervised stage on auditors' verdicts, learned from what was decided before the
    // held-out test period; every row is then scored as the monitor scores it, with the
    // verdicts decided before its own time.
    // The evaluated scores are the stage's that no verdict of the held-out period taught; the
    // shipped ones (`None`: the same), the stage's the model scores with, learned again from
    // every verdict.
    let (stage, mut feedback_report, calibration_scores, test_scores, shipped) = if config.feedback
    {
        let outcome = feedback_stage(
            &dataset,
            &split,
            &detectors,
            (calibration_scores, test_scores),
            unsupervised_threshold,
            choice_labels(&held_out_labels, config.choose_with_labels),
            Kinds {
                names: &kinds,
                window: &window_labels,
            },
            config.alert_rate,
            config
                .until
                .as_ref()
                .map_or(EventTime::MAX, |until| until.1),
        );
        (
            outcome.stage,
            Some(outcome.report),
            outcome.calibration_scores,
            outcome.test_scores,
            outcome.shipped_scores,
        )
    } else {
        (None, None, calibration_scores, test_scores, None)
    };
    // Threshold: the alert budget's quantile of the most recent fifth's scores (all of them,
    // as the monitor will see them — no labels involved), the rows nearest to what the monitor
    // scores next. The earlier calibration tenth scores higher on every suite data set, as
    // histories fill and the same payment looks less rare: its quantile spent only 1.2–1.7 %
    // of the following fifth. The drift view's reference quantiles come from the same rows.
    // The model's threshold is cut from the scores it gives; the evaluation's, from the
    // evaluated scores, so the held-out figures are those of a budget no later verdict set.
    let evaluated_recent = budget_rows(&test_scores, &calibration_scores);
    let (shipped_test, recent) = match &shipped {
        Some((calibration, test)) => (test, budget_rows(test, calibration)),
        None => (&test_scores, evaluated_recent),
    };
    let threshold = quantile(recent, 1.0 - config.alert_rate);
    let evaluated_threshold = quantile(evaluated_recent, 1.0 - config.alert_rate);
    let score_quantiles: Vec<(f64, f32)> = [0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999]
        .into_iter()
        .map(|q| (q, quantile(recent, q)))
        .collect();

    let evaluation = labeled
        .then(|| {
            evaluate_split(
                &dataset,
                split.test.clone(),
                &test_scores,
                evaluated_threshold,
                config.alert_rate,
            )
        })
        .transpose()?;
    // Each single detector on the same rows, with its own threshold for the same budget; and
    // the autoencoder's plain score, which was the model's score before calibration.
    let mut single = Vec::new();
    if labeled {
        let judge = |test_scores: Vec<f32>| {
            evaluate_split(
                &dataset,
                split.test.clone(),
                &test_scores,
                quantile(&test_scores, 1.0 - config.alert_rate),
                config.alert_rate,
            )
        };
        for curve in &detectors.calibration.detectors {
            let alone = [curve.detector];
            single.push(DetectorEvaluation {
                name: curve.detector.name().to_string(),
                evaluation: judge(detectors.scores_with(Rows::of(&test), &alone))?,
            });
        }
    }
    if let Some(report) = feedback_report.as_mut().filter(|r| r.used && labeled) {
        report.unsupervised = Some(evaluate_split(
            &dataset,
            split.test.clone(),
            &unsupervised_test_scores,
            quantile(&unsupervised_test_scores, 1.0 - config.alert_rate),
            config.alert_rate,
        )?);
    }
    let baseline = single
        .iter()
        .find(|d| d.name == Detector::PerRow.name())
        .map(|d| d.evaluation.clone());
    drop(held_out);
    drop(test);

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
        shape: detectors.main.shape,
        normalization: detectors.main.normalizer.clone(),
        threshold,
        alert_rate: config.alert_rate,
        training_window: TrainingWindow {
            from: config.from.as_ref().map(|f| f.0.clone()),
            until: config.until.as_ref().map(|u| u.0.clone()),
            first_event,
            last_event,
        },
        rows: train_indices.len() as u64,
        epochs: detectors.main.epochs,
        seed: config.fit.seed,
        backend: config.fit.backend.name().to_string(),
        normal_only: config.normal_only,
        weights_file: format!("model-{model_version}.bpk"),
        metrics_file: Some(aegis_core::artifacts::metrics_file_name(&model_version)),
        score_quantiles: score_quantiles.clone(),
        calibration: Some(detectors.calibration.clone()),
        per_row: detectors.per_row.as_ref().map(|network| PerRowModel {
            shape: network.shape,
            normalization: network.normalizer.clone(),
            weights_file: format!("per-row-{model_version}.bpk"),
        }),
        feedback: stage,
        feature_bins,
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
        score_histogram: histogram(shipped_test, threshold),
        history: detectors
            .main
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
        detectors: single,
        timings_s: Timings {
            features: feature_seconds,
            fit: fit_seconds,
            total: started.elapsed().as_secs_f64(),
        },
        backend: config.fit.backend.name().to_string(),
        feedback: feedback_report,
    };
    aegis_model::save(
        &config.modeling,
        &model_config,
        detectors.main.autoencoder,
        detectors.per_row.map(|network| network.autoencoder),
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

/// What the feedback stage made of the verdicts, and the held-out scores it gives.
struct FeedbackOutcome {
    stage: Option<FeedbackStage>,
    report: FeedbackReport,
    /// The final scores of the calibration and test rows with the stage judged on the held-out
    /// rows (the unsupervised ones when the stage is not used).
    calibration_scores: Vec<f32>,
    test_scores: Vec<f32>,
    /// The same rows' scores with `stage`, the one the model scores with, when it is not the
    /// judged one (`None`: the scores above).
    shipped_scores: Option<(Vec<f32>, Vec<f32>)>,
}

/// Trains the feedback stage on the labels decided before the test period (see
/// [`feedback`]) and scores the held-out rows with it, each with the verdicts decided before
/// its time; `scores` are the unsupervised calibration and test scores. A stage kept is then
/// learned again from every verdict decided before `verdicts_until` ([`refit_stage`]).
#[allow(clippy::too_many_arguments)]
fn feedback_stage(
    dataset: &Dataset,
    split: &dataset::Split,
    detectors: &Detectors,
    scores: (Vec<f32>, Vec<f32>),
    unsupervised_threshold: f32,
    held_out_labels: Option<&[Option<u32>]>,
    kinds: Kinds<'_>,
    alert_rate: f64,
    verdicts_until: EventTime,
) -> FeedbackOutcome {
    let (calibration_scores, test_scores) = scores;
    let adjusted = |range: std::ops::Range<usize>, scores: &[f32], stage: &FeedbackStage| {
        adjusted_scores(dataset, range, scores, stage)
    };
    // The unsupervised scores of every row before the test period (none without verdicts).
    let mut scores = Vec::new();
    // One stage per rule for unreviewed alerts (see [`choose_stage`]).
    let fitted: Vec<Fitted> = if dataset.verdicts.is_empty() {
        vec![Fitted {
            unreviewed: feedback::Unreviewed::PresumedOrdinary,
            labels: feedback::Labels::default(),
            decision: feedback::Decision::Unsupervised(
                "no verdicts in the database: the unsupervised score is final".into(),
            ),
            held_out: None,
        }]
    } else {
        let train_part = RowSet::gather(dataset, split.train.clone());
        scores = detectors.scores(Rows::of(&train_part));
        drop(train_part);
        scores.extend_from_slice(&calibration_scores);
        let cutoff = dataset
            .examples
            .get(split.test.start)
            .map_or(EventTime::MAX, |e| e.time);
        let candidates = candidates(dataset, &scores, cutoff);
        [
            feedback::Unreviewed::PresumedOrdinary,
            feedback::Unreviewed::Left,
        ]
        .into_iter()
        .map(|unreviewed| {
            let labels = feedback::labels(&candidates, unsupervised_threshold, cutoff, unreviewed);
            let decision = feedback::fit(&labels, &scores, &dataset.evidence);
            let held_out = match (&decision, held_out_labels) {
                (feedback::Decision::Trained(stage), Some(held_out)) => {
                    let with = adjusted(split.calibration.clone(), &calibration_scores, stage);
                    Some(average_precision_per_kind(&with, held_out))
                }
                _ => None,
            };
            Fitted {
                unreviewed,
                labels,
                decision,
                held_out,
            }
        })
        .collect()
    };
    let without =
        held_out_labels.map(|labels| average_precision_per_kind(&calibration_scores, labels));
    let (chosen, other) = choose_stage(fitted, without);
    let (labels, rule) = (chosen.labels, chosen.unreviewed);
    let (stage, note) = match chosen.decision {
        feedback::Decision::Trained(trained) => {
            let learned = format!(
                "{} confirmed frauds, {} dismissals and {} unreviewed alerts decided before the held-out period",
                labels.confirmed, labels.dismissed, labels.presumed_ordinary
            );
            // What the other rule for unreviewed alerts would have given, when it was judged.
            let instead = match other {
                Some((feedback::Unreviewed::Left, Some(value))) => {
                    format!(" (leaving the unreviewed alerts unlabeled: {value:.3})")
                }
                Some((feedback::Unreviewed::PresumedOrdinary, Some(value))) => {
                    format!(" (presuming the unreviewed alerts ordinary: {value:.3})")
                }
                _ => String::new(),
            };
            // Kept only if it does not lower the held-out rows' average precision per kind
            // of fraud by more than
            // [`FEEDBACK_TOLERANCE`]: evidence that raises ordinary rows (a busy terminal
            // whose one fraud was confirmed) loses to the unsupervised score alone.
            let verdict = held_out_labels
                .zip(chosen.held_out)
                .zip(without)
                .map(|((labels, with), without)| (with, without, labels.iter().flatten().count()));
            match verdict {
                Some((with, without, frauds)) if ranks_frauds_worse(with, without) => (
                    None,
                    format!(
                        "not used: learned from {learned}, it lowered the average precision per kind of fraud of the held-out rows ({frauds} labeled frauds) from {without:.3} to {with:.3}{instead}; the unsupervised score is final"
                    ),
                ),
                Some((with, without, frauds)) => (
                    Some(trained),
                    format!(
                        "trained on {learned}; on the held-out rows ({frauds} labeled frauds) it moved the average precision per kind of fraud from {without:.3} to {with:.3}{instead}"
                    ),
                ),
                None => (Some(trained), format!("trained on {learned}")),
            }
        }
        feedback::Decision::Unsupervised(note) => (None, note),
    };
    let (stage, look_note, look_trial, look) = match (stage, held_out_labels) {
        (Some(stage), Some(held_out)) => {
            let (stage, note, trial, look) = choose_look(
                dataset, split, stage, &labels, &scores, held_out, &kinds, alert_rate,
            );
            (Some(stage), note, trial, look)
        }
        (Some(stage), None) => (
            Some(stage),
            "not tried: the held-out rows carry too few labeled frauds to show what the look \
             would cost"
                .to_string(),
            None,
            None,
        ),
        (None, _) => (None, String::new(), None, None),
    };
    tracing::info!(used = stage.is_some(), %note, %look_note, "feedback stage");
    // Every row's unsupervised score, for the refit.
    let mut all_scores = scores;
    all_scores.extend_from_slice(&test_scores);
    let refit = stage.as_ref().and_then(|_| {
        refit_stage(
            dataset,
            &all_scores,
            unsupervised_threshold,
            rule,
            look.as_ref(),
            verdicts_until,
        )
    });
    match &refit {
        Some((_, labels)) => tracing::info!(
            confirmed = labels.confirmed,
            dismissed = labels.dismissed,
            presumed_ordinary = labels.presumed_ordinary,
            "feedback stage learned again from every verdict"
        ),
        None if stage.is_some() => tracing::warn!(
            "the feedback stage could not be learned again from every verdict; the stage judged \
             on the held-out rows scores payments"
        ),
        None => {}
    }
    let evaluated = stage;
    let (stage, refit) = match refit {
        Some((stage, labels)) => (
            Some(stage),
            Some(Refit {
                confirmed: labels.confirmed,
                dismissed: labels.dismissed,
                presumed_ordinary: labels.presumed_ordinary,
            }),
        ),
        None => (evaluated.clone(), None),
    };
    let report = FeedbackReport {
        used: stage.is_some(),
        note,
        verdicts: dataset.verdicts.len(),
        confirmed: labels.confirmed,
        dismissed: labels.dismissed,
        presumed_ordinary: labels.presumed_ordinary,
        chances: stage.as_ref().map_or_else(Vec::new, |stage| {
            aegis_core::feedback::stage_input_names()
                .into_iter()
                .zip(stage.step_chances())
                .collect()
        }),
        look_note,
        look_trial,
        look_weights: stage
            .as_ref()
            .and_then(|stage| stage.look.as_ref())
            .map_or_else(Vec::new, strongest_look_inputs),
        refit,
        test_rows_with_evidence: dataset
            .evidence
            .get(split.test.clone())
            .map_or(0, |rows| rows.iter().filter(|e| !e.is_empty()).count()),
        unsupervised: None,
    };
    let score = |stage: Option<&FeedbackStage>| match stage {
        Some(stage) => (
            adjusted(split.calibration.clone(), &calibration_scores, stage),
            adjusted(split.test.clone(), &test_scores, stage),
        ),
        None => (calibration_scores.clone(), test_scores.clone()),
    };
    let (evaluated_calibration, evaluated_test) = score(evaluated.as_ref());
    let shipped_scores = report.refit.is_some().then(|| score(stage.as_ref()));
    FeedbackOutcome {
        stage,
        report,
        calibration_scores: evaluated_calibration,
        test_scores: evaluated_test,
        shipped_scores,
    }
}

/// The first `scores.len()` rows of the window as the stage's labelling sees them (`scores`:
/// their unsupervised scores), each with its latest verdict decided before `known_before`.
fn candidates(
    dataset: &Dataset,
    scores: &[f32],
    known_before: EventTime,
) -> Vec<feedback::Candidate> {
    dataset
        .examples
        .iter()
        .zip(scores)
        .map(|(example, &score)| feedback::Candidate {
            time: example.time,
            finding: dataset
                .verdicts
                .finding_before(example.transaction_id, known_before),
            score,
            alerted: example.alerted,
        })
        .collect()
}

/// The stage learned again, once it passed the held-out check, from the labels of every row
/// of the window: each row's latest verdict decided before `verdicts_until` (`--until`, or
/// any time), and under `rule` the alerts nobody reviewed within [`feedback::REVIEW_DELAY`]
/// before the window's last payment. Its look, when the held-out rows chose one, is the
/// judged look's regression blended at the judged share into the new score curve: the look
/// is not learned again. `scores` are every row's unsupervised scores. `None` when the stage
/// cannot be learned again (the verdicts no longer rise with the score): then the stage judged
/// on the held-out rows scores payments.
///
/// Why: the stage is judged on the newest fifth of the window, so it learns only from verdicts
/// decided before it. Shipped as judged, a model trained on a year of history would never have
/// learned from the last two and a half months of verdicts, the ones nearest to what it scores
/// next; and a stage whose evidence lifts more ordinary payments than it learned (the Model
/// page's evidence check) would not learn that from a retrain for months. The held-out figures
/// stay the judged stage's: no verdict from the held-out period taught it.
///
/// Why the look is not learned again: learned from every label on the messy-welfare bench, the
/// same share of it let mild inflations fall from 0.651 to 0.434 of the live period's (0.621
/// without feedback), which nothing judged; the evidence's chances are what the newest
/// verdicts must teach (the evidence check).
fn refit_stage(
    dataset: &Dataset,
    scores: &[f32],
    unsupervised_threshold: f32,
    rule: feedback::Unreviewed,
    look: Option<&(feedback::LookRegression, f32)>,
    verdicts_until: EventTime,
) -> Option<(FeedbackStage, feedback::Labels)> {
    let end = dataset.examples.last()?.time + 1;
    let labels = feedback::labels(
        &candidates(dataset, scores, verdicts_until),
        unsupervised_threshold,
        end,
        rule,
    );
    let feedback::Decision::Trained(mut stage) = feedback::fit(&labels, scores, &dataset.evidence)
    else {
        return None;
    };
    if let Some((regression, share)) = look {
        stage.look = Some(regression.blend(&stage, *share));
    }
    Some((stage, labels))
}

/// `scores` (the unsupervised scores of the rows in `range`) moved by `stage`, each row with
/// its look and the verdicts decided before its time, as the monitor scores it.
fn adjusted_scores(
    dataset: &Dataset,
    range: std::ops::Range<usize>,
    scores: &[f32],
    stage: &FeedbackStage,
) -> Vec<f32> {
    range
        .zip(scores)
        .map(|(index, &score)| stage.adjust(score, &dataset.look(index), &dataset.evidence[index]))
        .collect()
}

/// How much a share of the look must raise the held-out rows' merit (the mean of recall per
/// kind at the budget and average precision per kind, as the detectors are chosen) to be
/// used: a look lowers scores, so it gives up "a payment no verdict bears on keeps its
/// score", and must earn that. On card payments the best share raised it by 0.005 (by hand)
/// and lowered the live period's AP from 0.233 to 0.206.
const LOOK_GAIN: f64 = 0.01;

/// Adds a look to `stage` (see [`aegis_core::feedback::Look`]): a regression of the labels
/// of the rows before the held-out tenth on their look, blended into the stage's score curve
/// at the share of [`feedback::LOOK_SHARES`] with the best held-out merit among those that
/// catch at the budget at least as many held-out frauds of every kind as the stage without a
/// look, and raise its merit by [`LOOK_GAIN`]. Fitted on rows before the held-out tenth
/// only, so the held-out rows judge it as they would a new period. Returns the stage, a
/// sentence on what was tried, the trial's figures, and the regression and share used
/// ([`LookChoice`]).
///
/// Why shares and the per-kind condition: the whole regression ranked seed 8's live period
/// best (AP 0.924 against 0.811) but let 16 of 304 collusion payments fall with the busy
/// counters auditors dismiss; half of it reached 0.901 and lost none. The held-out tenth
/// shows the same cost at the larger shares (by hand on seeds 7–9).
///
/// It must also pass [`BlockCheck`] on the training rows, which a share fails when, pooled
/// over blocks of them, the budget loses more frauds of a kind than it gains, by more than
/// chance explains.
///
/// The sentence also names, per share, each kind (by its index in the names) whose held-out
/// average precision the look lowers by [`LOOK_AP_NAMED`] or more. It is not a condition:
/// on messy welfare the look let marginal PM-KISAN mild inflations fall from the live budget
/// (0.62 → 0.37–0.44) while their held-out average precision held, because PM-KISAN is paid
/// in January, May and September and the held-out tenth (3–28 June, for a cutoff on 8
/// September) holds none of them; a condition on it changed nothing there.
fn choose_look(
    dataset: &Dataset,
    split: &dataset::Split,
    stage: FeedbackStage,
    labels: &feedback::Labels,
    scores: &[f32],
    held_out: &[Option<u32>],
    kinds: &Kinds<'_>,
    alert_rate: f64,
) -> LookChoice {
    let (means, scales) = feedback::look_spread(split.train.clone().map(|i| dataset.look(i)));
    // The labeled training rows, each with its row index (for the blocks).
    let labeled: Vec<(usize, LookRow)> = labels
        .rows
        .iter()
        .filter(|(index, _)| split.train.contains(index))
        .map(|&(index, fraud)| (index, (scores[index], dataset.look(index), fraud)))
        .collect();
    let rows: Vec<LookRow> = labeled.iter().map(|&(_, row)| row).collect();
    let frauds = rows.iter().filter(|row| row.2).count();
    if frauds < feedback::MIN_FINDINGS || rows.len() - frauds < feedback::MIN_FINDINGS {
        return (
            stage,
            format!(
                "not tried: {frauds} confirmed frauds and {} ordinary labels before the held-out \
                 rows, fewer than {} of each",
                rows.len() - frauds,
                feedback::MIN_FINDINGS
            ),
            None,
            None,
        );
    }
    let Some(regression) = feedback::fit_look(&rows, means.clone(), scales.clone()) else {
        return (
            stage,
            "not used: its regression did not converge, or gave a higher unsupervised score no \
             higher chance of fraud"
                .to_string(),
            None,
            None,
        );
    };
    let held_out_scores = &scores[split.calibration.clone()];
    let judge = |stage: &FeedbackStage| {
        let scores = adjusted_scores(dataset, split.calibration.clone(), held_out_scores, stage);
        let caught = caught_per_kind_at(&scores, held_out, alert_rate);
        let each = average_precision_of_each_kind(&scores, held_out);
        let merit = detectors::merit(
            mean_recall(&caught, held_out),
            average_precision_per_kind(&scores, held_out),
        );
        (caught, merit, each)
    };
    let (base_caught, base_merit, base_each) = judge(&stage);
    let blocks = BlockCheck {
        dataset,
        stage: &stage,
        scores,
        labels: kinds.window,
        alert_rate,
    }
    .swaps(&labeled, (&means, &scales));
    let (mut candidates, shares): (Vec<FeedbackStage>, Vec<LookShare>) = feedback::LOOK_SHARES
        .into_iter()
        .zip(&blocks)
        .map(|(share, swaps)| {
            let candidate = FeedbackStage {
                look: Some(regression.blend(&stage, share)),
                ..stage.clone()
            };
            let (caught, merit, each) = judge(&candidate);
            let judged = LookShare {
                share,
                merit,
                held_out_lost: frauds_lost(&caught, &base_caught),
                blocks: swaps.kinds(kinds.names),
                lowered: lowered_kinds(&base_each, &each, kinds.names),
            };
            (candidate, judged)
        })
        .unzip();
    let trial = LookTrial::judged(base_merit, LOOK_GAIN, shares);
    let note = trial.note();
    match trial.used {
        Some(index) => {
            let share = trial.shares[index].share;
            let chosen = candidates.swap_remove(index);
            (chosen, note, Some(trial), Some((regression, share)))
        }
        None => (stage, note, Some(trial), None),
    }
}

/// What [`choose_look`] decided: the stage (with the look when used), the trial in a sentence,
/// the trial's figures (`None` when no share was judged), and the regression and share used.
type LookChoice = (
    FeedbackStage,
    String,
    Option<LookTrial>,
    Option<(feedback::LookRegression, f32)>,
);

/// A labeled row as the look's regression takes it: unsupervised score, look, fraud.
type LookRow = (f32, [f32; LOOK_INPUTS], bool);

/// The kinds of fraud in the window: their names (by index) and the training rows' kinds
/// (index: row; `None` for an ordinary row).
#[derive(Debug, Clone, Copy)]
struct Kinds<'a> {
    names: &'a [&'a str],
    window: &'a [Option<u32>],
}

/// Blocks of the training rows, by time, the look is also judged on ([`BlockCheck`]).
const LOOK_BLOCKS: usize = 4;

/// How many standard deviations of chance a kind's net loss in the blocks must exceed to
/// count against a share ([`Swaps::beyond_chance_of`]).
///
/// Why 3: one look decision makes up to 40 such tests (four shares, about ten kinds), so a
/// one-sided 5 % family-wise error wants each at about 0.13 % (Bonferroni), which is 3
/// standard deviations. At 2 (2.3 % each) the check refused seed 8's quarter look for 5
/// collusions lost and none gained, which is what chance gives one kind in 40, and the
/// compromised counters it would have caught fell from 0.828 to 0.796 of the live period.
const LOOK_BLOCK_Z: f64 = 3.0;

/// The look judged on blocks of the training rows as well as on the held-out tenth: for each
/// of [`LOOK_BLOCKS`] blocks, the look's regression is fitted on the labels outside it and
/// each share judged on it. Pooled over the blocks, per kind of fraud, the frauds the budget
/// no longer catches and those it catches only with the look ([`Swaps`]); a share whose net
/// loss of a kind is more than chance explains is not used.
///
/// Why: the held-out tenth is one stretch of the calendar. On messy welfare (3–28 June for an
/// 8 September cutoff) it holds no PM-KISAN payment, which is paid in January, May and
/// September; the look learned that morning PM-KISAN alerts are dismissed and let marginal
/// mild inflations paid in the same batches fall from the live budget (0.62 → 0.37–0.44),
/// which no check saw. A block holding May's batch does.
///
/// Why pooled, with gains: the first version refused a share that lost more than 5 % of a
/// kind's frauds (at least one) in any one block, counting only losses. On our cold seeds 8
/// and 9 it refused shares the held-out tenth rated highly for 1 and 2 collusions beyond
/// that in one block, and the stage without the look then ranked inflated amounts below the
/// unsupervised model (seed 9: AP 0.944 → 0.869, inflated_amount 0.959 against 0.977). A
/// look that swaps a few frauds of a kind between the budget's edge and just below it, in
/// both directions, is not ranking that kind worse; one that loses a season's batch is.
/// On messy welfare's steady state the first of the loop's retrains judged a quarter of the
/// look this way: late_duplicate −31 +0 and account_takeover −22 +1 in the blocks, refused;
/// seed 9's half (agent_collusion −8 +2) passes.
struct BlockCheck<'a> {
    dataset: &'a Dataset,
    stage: &'a FeedbackStage,
    /// The unsupervised scores of every row before the test period (index: row).
    scores: &'a [f32],
    /// The training rows' kinds of fraud (index: row).
    labels: &'a [Option<u32>],
    alert_rate: f64,
}

impl BlockCheck<'_> {
    /// Per share of [`feedback::LOOK_SHARES`], the frauds of each kind it swaps in the blocks.
    /// `labeled`: the look's labeled training rows, each with its row index.
    fn swaps(&self, labeled: &[(usize, LookRow)], (means, scales): (&[f32], &[f32])) -> Vec<Swaps> {
        let mut swaps = vec![Swaps::new(kind_count(self.labels)); feedback::LOOK_SHARES.len()];
        let n = self.labels.len();
        if self.labels.iter().flatten().count() < detectors::MIN_LABELED_FRAUDS {
            return swaps;
        }
        for block in 0..LOOK_BLOCKS {
            let range = n * block / LOOK_BLOCKS..n * (block + 1) / LOOK_BLOCKS;
            let outside: Vec<LookRow> = labeled
                .iter()
                .filter(|(index, _)| !range.contains(index))
                .map(|&(_, row)| row)
                .collect();
            let Some(regression) = feedback::fit_look(&outside, means.to_vec(), scales.to_vec())
            else {
                continue;
            };
            let labels = &self.labels[range.clone()];
            let scores = &self.scores[range.clone()];
            let caught = |stage: &FeedbackStage| {
                let adjusted = adjusted_scores(self.dataset, range.clone(), scores, stage);
                caught_at(&adjusted, self.alert_rate)
            };
            let base = caught(self.stage);
            for (share, swaps) in feedback::LOOK_SHARES.into_iter().zip(&mut swaps) {
                let candidate = FeedbackStage {
                    look: Some(regression.blend(self.stage, share)),
                    ..self.stage.clone()
                };
                swaps.add(labels, &base, &caught(&candidate));
            }
        }
        swaps
    }
}

/// Per kind of fraud (by index), the frauds a look lets fall below the budget (`lost`) and
/// those it lifts above it (`gained`), pooled over the blocks of [`BlockCheck`].
#[derive(Debug, Clone, PartialEq)]
struct Swaps {
    lost: Vec<usize>,
    gained: Vec<usize>,
}

impl Swaps {
    fn new(kinds: usize) -> Self {
        Swaps {
            lost: vec![0; kinds],
            gained: vec![0; kinds],
        }
    }

    /// Counts the frauds among `labels` caught `before` the look and not with it (`now`), and
    /// the other way round.
    fn add(&mut self, labels: &[Option<u32>], before: &[bool], now: &[bool]) {
        for ((kind, &before), &now) in labels.iter().zip(before).zip(now) {
            let Some(kind) = kind.map(|k| k as usize) else {
                continue;
            };
            match (before, now) {
                (true, false) => self.lost[kind] += 1,
                (false, true) => self.gained[kind] += 1,
                _ => {}
            }
        }
    }

    /// Frauds lost beyond those gained and beyond chance, summed over the kinds
    /// ([`Swaps::beyond_chance_of`]).
    #[cfg(test)]
    fn beyond_chance(&self) -> usize {
        self.lost
            .iter()
            .zip(&self.gained)
            .map(|(&lost, &gained)| Self::beyond_chance_of(lost, gained))
            .sum()
    }

    /// The part of one kind's net loss that chance does not explain: above [`LOOK_BLOCK_Z`]
    /// times the square root of its swaps (McNemar's test: were the look no worse for the
    /// kind, each swap would go either way with even odds).
    fn beyond_chance_of(lost: usize, gained: usize) -> usize {
        let chance = LOOK_BLOCK_Z * ((lost + gained) as f64).sqrt();
        (lost.saturating_sub(gained) as f64 - chance)
            .ceil()
            .max(0.0) as usize
    }

    /// Each kind with a swap, named (by its index in `names`), as the metrics record it.
    fn kinds(&self, names: &[&str]) -> Vec<KindSwaps> {
        self.lost
            .iter()
            .zip(&self.gained)
            .enumerate()
            .filter(|(_, (lost, gained))| **lost + **gained > 0)
            .map(|(kind, (&lost, &gained))| KindSwaps {
                kind: kind_name(names, kind),
                lost,
                gained,
                beyond_chance: Self::beyond_chance_of(lost, gained),
            })
            .collect()
    }
}

/// The name of the kind of fraud at `index`; `None` for frauds without a type.
fn kind_name(names: &[&str], index: usize) -> Option<String> {
    names
        .get(index)
        .filter(|name| !name.is_empty())
        .map(|name| name.to_string())
}

/// How much a look must lower a kind's held-out average precision for its note to name it.
const LOOK_AP_NAMED: f64 = 0.02;

/// The kinds whose average precision fell from `before` to `after` by [`LOOK_AP_NAMED`] or
/// more.
fn lowered_kinds(before: &[Option<f64>], after: &[Option<f64>], names: &[&str]) -> Vec<Lowered> {
    before
        .iter()
        .zip(after)
        .enumerate()
        .filter_map(|(kind, pair)| match pair {
            (Some(before), Some(after)) if before - after >= LOOK_AP_NAMED => Some(Lowered {
                kind: kind_name(names, kind),
                before: *before,
                after: *after,
            }),
            _ => None,
        })
        .collect()
}

/// Frauds of each kind caught without the look (`before`) and no longer caught with it.
fn frauds_lost(now: &[usize], before: &[usize]) -> usize {
    now.iter()
        .zip(before)
        .map(|(now, before)| before.saturating_sub(*now))
        .sum()
}

/// The look inputs that move the log-odds most, with their signed and absolute weights.
fn strongest_look_inputs(look: &aegis_core::feedback::Look) -> Vec<(String, f32, f32)> {
    let mut weights: Vec<(String, f32, f32)> = look
        .names
        .iter()
        .zip(look.signed.iter().zip(&look.absolute))
        .map(|(name, (&signed, &absolute))| (name.clone(), signed, absolute))
        .collect();
    weights.sort_by(|a, b| (b.1.abs() + b.2.abs()).total_cmp(&(a.1.abs() + a.2.abs())));
    weights.truncate(8);
    weights
}

/// A feedback stage fitted under one rule for unreviewed alerts.
struct Fitted {
    unreviewed: feedback::Unreviewed,
    labels: feedback::Labels,
    decision: feedback::Decision,
    /// The held-out rows' average precision per kind of fraud with the stage (`None`: not
    /// trained, or no held-out labels).
    held_out: Option<f64>,
}

/// The stage to keep, and the other rule with what it scored on the held-out rows; `without`
/// is the held-out rows' average precision per kind of fraud with the unsupervised score alone.
///
/// Whether an alert nobody reviewed is ordinary depends on how many alerts the auditors can
/// review. When they review most of them, the rest are mostly the ordinary ones they had no
/// time for, and presuming them ordinary shows the stage how often an alert at the budget's
/// edge is not fraud: in the feedback bench (100 alerts a day of about 180) 14 % of them were
/// fraud, and the stage learned from them the 28-day evidence that caught compromised counters
/// (0.88 on seed 8, 0.59 without them; 1.00 on seed 9, 0.58 without). When they review few,
/// the rest hold many frauds (31 % at 20 a day), the stage learns that alerts are seldom fraud
/// and lets the evidence swamp the score: at 5 a day it lowered the held-out figure from 0.655
/// to 0.264 and was refused, while without them it was kept and raised the live AP. So the
/// unreviewed alerts are presumed ordinary unless that stage fails the held-out check
/// ([`FEEDBACK_TOLERANCE`]); then they are left unlabeled. The first rule is not dropped for
/// a slightly higher held-out figure of the second: that figure, which weighs each kind of
/// fraud alike, rose 0.604 → 0.622 on seed 9 while the compromised counters fell 1.00 → 0.58.
fn choose_stage(
    fitted: Vec<Fitted>,
    without: Option<f64>,
) -> (Fitted, Option<(feedback::Unreviewed, Option<f64>)>) {
    let trained = |f: &Fitted| matches!(f.decision, feedback::Decision::Trained(_));
    let passes = |f: &Fitted| match (f.held_out, without) {
        (Some(with), Some(without)) => !ranks_frauds_worse(with, without),
        _ => true,
    };
    let best = fitted
        .iter()
        .position(|f| trained(f) && passes(f))
        .or_else(|| fitted.iter().position(trained))
        .unwrap_or(0);
    let mut fitted = fitted;
    let chosen = fitted.remove(best);
    let other = fitted
        .into_iter()
        .find(trained)
        .map(|f| (f.unreviewed, f.held_out));
    (chosen, other)
}

/// How much the feedback stage may lower the held-out rows' average precision per kind of
/// fraud and still be kept. A stage that lifts one kind nobody else catches (a compromised
/// counter's payments) moves a few ordinary rows above the other kinds' frauds: on the seed-8
/// million it lowered the per-kind figure of the calibration tenth from 0.542 to 0.535 while
/// it raised the live test period's AP from 0.751 to 0.782. On card payments the stage that
/// must be refused lowered it from 0.550 to 0.337.
const FEEDBACK_TOLERANCE: f64 = 0.01;

/// The held-out check: whether a stage whose held-out average precision per kind of fraud is
/// `with` ranks the frauds worse than the unsupervised score's `without`, by more than
/// [`FEEDBACK_TOLERANCE`].
fn ranks_frauds_worse(with: f64, without: f64) -> bool {
    with < without - FEEDBACK_TOLERANCE
}

/// The scores the alert budget's threshold is cut from: the most recent fifth's, or the
/// calibration tenth's when a window too short has no test rows.
fn budget_rows<'a>(test: &'a [f32], calibration: &'a [f32]) -> &'a [f32] {
    if test.is_empty() { calibration } else { test }
}

/// The held-out labels the feedback stage is judged by, when the detectors were chosen by them
/// too (enough labeled frauds, and choosing with labels not turned off).
fn choice_labels(labels: &[Option<u32>], choose_with_labels: bool) -> Option<&[Option<u32>]> {
    (choose_with_labels && labels.iter().flatten().count() >= detectors::MIN_LABELED_FRAUDS)
        .then_some(labels)
}

/// The window `config` names (`from`, `until`), replayed through the feature state.
pub fn load_window(config: &TrainConfig) -> anyhow::Result<Dataset> {
    // Opening would create an empty database at a mistyped path, then report it has no data.
    if let aegis_core::engine::Target::Sqlite(path) = &config.db
        && !path.exists()
    {
        anyhow::bail!(
            "there is no database at {}: check --db, or generate or import data first (`cargo run -p generate`)",
            path.display()
        );
    }
    let mut store = config.db.open()?;
    dataset::load(
        &mut store,
        config.from.as_ref().map(|f| f.1),
        config.until.as_ref().map(|u| u.1),
    )
}

fn evaluate_split(
    dataset: &Dataset,
    range: std::ops::Range<usize>,
    scores: &[f32],
    threshold: f32,
    alert_rate: f64,
) -> anyhow::Result<Evaluation> {
    let examples = &dataset.examples[range];
    // Only the rows that carry a label are judged: an export that labels the cases it
    // investigated leaves the rest unknown, not ordinary. With every row labeled (every data
    // set of ours) nothing changes.
    let (labeled, scores): (Vec<_>, Vec<f32>) = examples
        .iter()
        .zip(scores)
        .filter(|(e, _)| e.is_anomaly.is_some())
        .map(|(e, &score)| (e, score))
        .unzip();
    let labels: Vec<bool> = labeled.iter().map(|e| e.is_anomaly == Some(true)).collect();
    let types: Vec<Option<String>> = labeled
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
    let k = (alert_rate * labeled.len() as f64 / days).round() as usize;
    let mut evaluation = evaluate(&scores, &labels, &types, threshold, k)?;
    evaluation.unlabeled = examples.len() - labeled.len();
    Ok(evaluation)
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

/// Prints the evaluation table: the final score, with each single detector beside it.
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
    let mut columns: Vec<(&str, &Evaluation)> = vec![("aegis", evaluation)];
    let feedback = outcome.metrics.feedback.as_ref();
    if let Some(unsupervised) = feedback.and_then(|f| f.unsupervised.as_ref()) {
        columns.push(("without feedback", unsupervised));
    }
    columns.extend(
        outcome
            .metrics
            .detectors
            .iter()
            .map(|d| (d.name.as_str(), &d.evaluation)),
    );
    println!(
        "\nheld-out test period: {} rows, {} labeled frauds",
        evaluation.rows, evaluation.positives
    );
    let header = |first: &str, second: &str| {
        let mut line = format!("{first:<24} {second:>8}");
        for (name, _) in &columns {
            line.push_str(&format!(" {name:>18}"));
        }
        line
    };
    let cells = |value: &dyn Fn(&Evaluation) -> Option<f64>| {
        let mut line = String::new();
        for (_, evaluation) in &columns {
            let text = value(evaluation).map_or("-".to_string(), |v| format!("{v:.3}"));
            line.push_str(&format!(" {text:>18}"));
        }
        line
    };
    println!("{}", header("metric", ""));
    type Measure = fn(&Evaluation) -> f64;
    let metrics: [(&str, Measure); 6] = [
        ("ROC-AUC", |e| e.roc_auc),
        ("average precision", |e| e.average_precision),
        ("precision @ threshold", |e| e.precision),
        ("recall @ threshold", |e| e.recall),
        ("F1 @ threshold", |e| e.f1),
        ("precision @ k", |e| e.precision_at_k),
    ];
    for (name, field) in metrics {
        println!("{name:<24} {:>8}{}", "", cells(&|e| Some(field(e))));
    }
    println!("(k = {} alerts a day)", evaluation.k);
    println!("\n{}", header("recall by fraud type", "rows"));
    for row in &evaluation.per_type {
        let recall = |e: &Evaluation| {
            e.per_type
                .iter()
                .find(|t| t.fraud_type == row.fraud_type)
                .map(|t| t.recall)
        };
        println!("{:<24} {:>8}{}", row.fraud_type, row.rows, cells(&recall));
    }
    if let Some(feedback) = feedback {
        println!(
            "\nfeedback stage {}: {} ({} verdicts held; {} held-out rows with verdict evidence)",
            if feedback.used { "used" } else { "not used" },
            feedback.note,
            feedback.verdicts,
            feedback.test_rows_with_evidence
        );
        if let Some(refit) = feedback.refit {
            println!(
                "then learned again from every verdict in the window ({} confirmed frauds, {} dismissals, {} unreviewed alerts presumed ordinary): the stage the model scores with",
                refit.confirmed, refit.dismissed, refit.presumed_ordinary
            );
        }
        for (name, chance) in feedback.rising_chances(0.01) {
            println!("  {name:<40} {chance:.2} chance of fraud by itself");
        }
    }
    let c = evaluation.confusion;
    println!(
        "\nconfusion at threshold: TP {}  FP {}  FN {}  TN {}",
        c.true_positives, c.false_positives, c.false_negatives, c.true_negatives
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::feedback::{COMBINATION, EVIDENCE_NAMES, STAGE_INPUTS};
    use feedback::{Decision, Labels, Unreviewed};

    fn fitted(unreviewed: Unreviewed, trained: bool, held_out: Option<f64>) -> Fitted {
        let decision = if trained {
            Decision::Trained(FeedbackStage {
                combination: COMBINATION.into(),
                bias: -5.0,
                score_weight: 2.0,
                weights: vec![0.0; STAGE_INPUTS],
                evidence_names: EVIDENCE_NAMES.iter().map(|s| s.to_string()).collect(),
                look: None,
            })
        } else {
            Decision::Unsupervised("too few verdicts".into())
        };
        Fitted {
            unreviewed,
            labels: Labels::default(),
            decision,
            held_out,
        }
    }

    fn choose(
        a: Fitted,
        b: Fitted,
        without: Option<f64>,
    ) -> (Unreviewed, Option<(Unreviewed, Option<f64>)>) {
        let (chosen, other) = choose_stage(vec![a, b], without);
        (chosen.unreviewed, other)
    }

    /// The blocks judge a kind by its frauds lost net of those gained, and only beyond what
    /// chance explains: a look that swaps frauds at the budget's edge both ways passes, one
    /// that drops a season's batch does not.
    #[test]
    fn the_blocks_count_a_kinds_net_loss_beyond_chance() {
        let mut swaps = Swaps::new(3);
        // Kind 0: caught before, 3 lost and 1 gained; kind 2: 1 gained; kind 1 untouched.
        let labels = [Some(0), Some(0), Some(0), Some(0), None, Some(1), Some(2)];
        let before = [true, true, true, false, true, true, false];
        let now = [false, false, false, true, false, true, true];
        swaps.add(&labels, &before, &now);
        assert_eq!(swaps.lost, [3, 0, 0]);
        assert_eq!(swaps.gained, [1, 0, 1]);
        // Net 2 over 4 swaps: within 3 √4 = 6.
        assert_eq!(swaps.beyond_chance(), 0);
        assert_eq!(
            swaps.kinds(&["collusion", "x", "y"]),
            [
                KindSwaps {
                    kind: Some("collusion".into()),
                    lost: 3,
                    gained: 1,
                    beyond_chance: 0
                },
                KindSwaps {
                    kind: Some("y".into()),
                    lost: 0,
                    gained: 1,
                    beyond_chance: 0
                }
            ]
        );
        // A season's batch: 30 lost, none gained; chance explains 3 √30 ≈ 16.4 of them.
        let seasonal = Swaps {
            lost: vec![30, 6, 8],
            gained: vec![0, 4, 0],
        };
        // 30 − 16.4 counts 14; kind 1 (net 2, within 3 √10) and kind 2 (net 8, within
        // 3 √8 ≈ 8.5) count nothing.
        assert_eq!(seasonal.beyond_chance(), 14);
        // 10 lost and none gained is beyond 3 √10 ≈ 9.49 by one.
        let one_beyond = Swaps {
            lost: vec![10],
            gained: vec![0],
        };
        assert_eq!(one_beyond.beyond_chance(), 1);
        assert_eq!(
            seasonal
                .kinds(&["mild_inflation", "", "late"])
                .iter()
                .map(|k| (k.kind.as_deref(), k.beyond_chance))
                .collect::<Vec<_>>(),
            [(Some("mild_inflation"), 14), (None, 0), (Some("late"), 0)]
        );
    }

    /// The look's note names the kinds whose held-out average precision it lowers by 0.02 or
    /// more, frauds without a type as such, and nothing else.
    #[test]
    fn the_looks_note_names_the_kinds_it_ranks_worse() {
        let before = [Some(0.71), Some(0.90), Some(0.50), None, Some(0.40)];
        let after = [Some(0.63), Some(0.89), Some(0.60), None, Some(0.30)];
        let lowered = lowered_kinds(
            &before,
            &after,
            &["mild_inflation", "burst", "late", "x", ""],
        );
        assert_eq!(
            lowered
                .iter()
                .map(|l| (l.kind.as_deref(), l.before, l.after))
                .collect::<Vec<_>>(),
            [(Some("mild_inflation"), 0.71, 0.63), (None, 0.40, 0.30)]
        );
        assert!(lowered_kinds(&before, &before, &["a", "b", "c", "d", "e"]).is_empty());
    }

    #[test]
    fn frauds_lost_counts_each_kinds_fall_only() {
        assert_eq!(frauds_lost(&[5, 3, 9], &[5, 4, 7]), 1);
    }

    #[test]
    fn unreviewed_alerts_are_presumed_ordinary_unless_that_stage_fails_the_held_out_check() {
        use Unreviewed::{Left, PresumedOrdinary as Presumed};
        // The first rule passes the check: kept, even below the second's figure.
        assert_eq!(
            choose(
                fitted(Presumed, true, Some(0.604)),
                fitted(Left, true, Some(0.622)),
                Some(0.596)
            ),
            (Presumed, Some((Left, Some(0.622))))
        );
        // It fails (lower than without by more than the tolerance): the second rule.
        assert_eq!(
            choose(
                fitted(Presumed, true, Some(0.264)),
                fitted(Left, true, Some(0.655)),
                Some(0.655)
            ),
            (Left, Some((Presumed, Some(0.264))))
        );
        // Both fail: the first, which the check then refuses with both figures in its note.
        assert_eq!(
            choose(
                fitted(Presumed, true, Some(0.30)),
                fitted(Left, true, Some(0.40)),
                Some(0.60)
            ),
            (Presumed, Some((Left, Some(0.40))))
        );
        // No held-out labels: the first.
        assert_eq!(
            choose(fitted(Presumed, true, None), fitted(Left, true, None), None),
            (Presumed, Some((Left, None)))
        );
        // A rule whose stage was not trained (too few ordinary labels) is not chosen.
        assert_eq!(
            choose(
                fitted(Presumed, false, None),
                fitted(Left, true, Some(0.4)),
                Some(0.4)
            ),
            (Left, None)
        );
        // Neither trained: the first rule's decision and reason stand.
        assert_eq!(
            choose(
                fitted(Presumed, false, None),
                fitted(Left, false, None),
                None
            ),
            (Presumed, None)
        );
    }
}
