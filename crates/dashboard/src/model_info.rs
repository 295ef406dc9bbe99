//! What the Model page shows: the current model's config and its evaluation against the
//! per-row baseline, read from `modeling/` (the dashboard never scores).

use std::path::Path;

use serde::Serialize;

use aegis_core::artifacts::{ModelConfig, read_config, read_metrics_of};
use aegis_core::domain::FraudType;
use aegis_core::evidence_check::StepCheck;
use aegis_core::metrics::{Confusion, Evaluation, LookTrial, Metrics, Refusal, ScoreHistogram};

/// The one sentence shown when there is no model yet.
pub const NO_MODEL_MESSAGE: &str = "no model: run `cargo run -p train`";

/// A row of a model-vs-baseline table.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    pub name: &'static str,
    pub model: String,
    pub baseline: String,
}

/// Recall on one fraud type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeRow {
    pub fraud_type: String,
    pub rows: String,
    pub caught: String,
    pub recall: String,
    pub median_score: String,
    pub baseline_caught: String,
    pub baseline_recall: String,
}

/// The Model page's content.
#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    pub model_version: String,
    pub created_at: String,
    pub training_window: String,
    pub rows: String,
    pub epochs: u32,
    pub backend: String,
    pub feature_set: String,
    pub threshold: String,
    pub alert_rate: String,
    pub normal_only: bool,
    pub has_metrics: bool,
    /// Why the model's metrics could not be read, when they could not: the config's facts
    /// and the drift stay on the page.
    pub metrics_problem: Option<String>,
    pub has_evaluation: bool,
    pub has_baseline: bool,
    pub test_period: String,
    /// What the detector does and what its score and threshold mean, in plain words.
    pub explanation: Vec<String>,
    pub metrics: Vec<MetricRow>,
    pub confusion: Vec<MetricRow>,
    pub per_type: Vec<TypeRow>,
    /// Each single detector on the same test rows, and whether the score combines it.
    pub detectors: Vec<DetectorRow>,
    /// The held-out scores' quantiles (level, score), ascending: what drift is measured against.
    pub score_quantiles: Vec<(f64, f32)>,
    /// The alert budget, a share.
    pub budget: f64,
    /// Each feature's name and held-out bins, in model input order (empty for a model trained
    /// before they were recorded): what each feature's drift is measured against.
    #[serde(skip)]
    pub feature_bins: Vec<(String, aegis_core::drift::FeatureBins)>,
    /// What auditors' verdicts taught (absent for a model trained with `--no-feedback`).
    pub feedback: Option<FeedbackView>,
}

/// The feedback stage on the Model page: whether it is used, on how many verdicts, both
/// stages side by side on the held-out rows, and what a confirmation is worth.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackView {
    pub used: bool,
    pub note: String,
    pub verdicts: String,
    pub confirmed: String,
    pub dismissed: String,
    pub presumed_ordinary: String,
    /// The labels the stage that scores payments was learned again from (every verdict in
    /// the window): confirmed, dismissed, presumed ordinary; `None` when the stage judged on
    /// the held-out rows scores payments.
    pub refit: Option<(String, String, String)>,
    pub test_rows_with_evidence: String,
    /// Metric, with feedback (the final score), without (the unsupervised stage alone).
    pub stages: Vec<MetricRow>,
    /// Fraud type, rows, recall with feedback, recall without.
    pub per_type: Vec<(String, String, String, String)>,
    /// The evidence steps that raise the chance of fraud, largest first, each with what the
    /// verdicts on the model's own payments say of it (filled by
    /// [`FeedbackView::check_against`]).
    pub steps: Vec<EvidenceStep>,
    /// The same steps as numbers, counted again by [`FeedbackView::check_against`].
    #[serde(skip)]
    pub checks: Vec<StepCheck>,
    /// Set when the verdicts on the model's payments show a step lifting payments auditors
    /// dismiss: which, and what to do.
    pub evidence_warning: Option<String>,
    /// Whether the stage weighs the payment's look, and why: the whole sentence when train
    /// recorded no trial (too few labels, or an older model), else only its verdict (`used at
    /// share 0.5`, `not used`), with [`look_trial`](Self::look_trial) giving the figures.
    pub look_note: String,
    /// Each share of the look train tried, as table rows; empty without a trial.
    pub look_trial: Vec<LookTrialRow>,
    /// What a share must raise the held-out merit by, as text (`0.01`).
    pub look_min_gain: String,
    /// The look inputs that move the chance most: input, the odds' factor one spread above
    /// the mean gives, the factor one spread below gives.
    pub look_weights: Vec<(String, String, String)>,
}

/// One share of the look on the Model page, as text; the first row is the stage without it.
#[derive(Debug, Clone, Serialize)]
pub struct LookTrialRow {
    /// `none`, `0.25`, …
    pub share: String,
    /// The held-out rows' merit (recall and average precision per kind).
    pub merit: String,
    /// Held-out frauds that fell below the budget with it.
    pub held_out_lost: String,
    /// Per kind swapped across the budget in the earlier blocks: `agent_collusion −8 +2`,
    /// a side with no fraud left out (`compromised_counter −2`), and the part of a net loss
    /// beyond chance (`agent_collusion −43 +3 (20 beyond chance)`).
    pub blocks: Vec<String>,
    /// Frauds lost in the blocks beyond chance.
    pub beyond_chance: String,
    /// Kinds whose held-out average precision fell: `agent_collusion 0.87 → 0.82`.
    pub lowered: String,
    /// Why it was or was not used, in words.
    pub decision: String,
    /// Whether the model scores with it (the row stands out).
    pub used: bool,
}

impl LookTrialRow {
    fn rows(trial: &LookTrial) -> Vec<LookTrialRow> {
        let without = LookTrialRow {
            share: "none".into(),
            merit: ratio(Some(trial.merit_without), 3),
            held_out_lost: "—".into(),
            blocks: Vec::new(),
            beyond_chance: "—".into(),
            lowered: String::new(),
            decision: if trial.used.is_none() {
                "used: no share earned its place".into()
            } else {
                "the stage without the look".into()
            },
            used: trial.used.is_none(),
        };
        let shares = trial.shares.iter().enumerate().map(|(index, share)| {
            let refusals = trial.refusals(index);
            LookTrialRow {
                share: share.share.to_string(),
                merit: ratio(Some(share.merit), 3),
                held_out_lost: count(Some(share.held_out_lost)),
                blocks: share
                    .blocks
                    .iter()
                    .map(|kind| {
                        let name = kind.name();
                        let swaps = match (kind.lost, kind.gained) {
                            (lost, 0) => format!("{name} −{lost}"),
                            (0, gained) => format!("{name} +{gained}"),
                            (lost, gained) => format!("{name} −{lost} +{gained}"),
                        };
                        match kind.beyond_chance {
                            0 => swaps,
                            beyond => format!("{swaps} ({beyond} beyond chance)"),
                        }
                    })
                    .collect(),
                beyond_chance: count(Some(share.beyond_chance())),
                lowered: share.lowered_text(),
                decision: refusal_text(&refusals),
                used: refusals.is_empty(),
            }
        });
        std::iter::once(without).chain(shares).collect()
    }
}

/// Why a share of the look was used or not, in words: every rule it fails.
fn refusal_text(refusals: &[Refusal]) -> String {
    if refusals.is_empty() {
        return "used".into();
    }
    let reasons: Vec<&str> = refusals
        .iter()
        .map(|refusal| match refusal {
            Refusal::LosesHeldOut => "loses held-out frauds",
            Refusal::LosesInBlocks => "a kind loses more than chance explains in the blocks",
            Refusal::GainsTooLittle => "raises the merit too little",
            Refusal::Outranked => "earns its place, but another share ranks better",
        })
        .collect();
    match refusals {
        [Refusal::Outranked] => reasons[0].into(),
        _ => format!("not used: {}", reasons.join("; ")),
    }
}

/// One evidence step of the feedback stage on the Model page, as text.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceStep {
    /// `counter_confirmed_7d ≥ 10`.
    pub name: String,
    /// The chance of fraud it gives by itself, as learned.
    pub chance: String,
    /// Reviewed payments of this model that carried it, and how many (what share) of them
    /// were confirmed.
    pub reviewed: String,
    pub confirmed: String,
    /// Whether that share is clearly below the chance ([`aegis_core::evidence_check::falls_short`]).
    pub short: bool,
}

impl From<&StepCheck> for EvidenceStep {
    fn from(step: &StepCheck) -> EvidenceStep {
        EvidenceStep {
            name: step.name.clone(),
            chance: format!("{:.2}", step.chance),
            reviewed: count(Some(step.carried)),
            confirmed: step.share().map_or_else(
                || "—".into(),
                |share| format!("{} ({share:.2})", count(Some(step.confirmed))),
            ),
            short: step.short,
        }
    }
}

impl FeedbackView {
    /// Counts each step over the payments of this model that auditors decided, and sets the
    /// warning when a step's share confirmed falls short of its chance.
    pub fn check_against(&mut self, reviewed: &[aegis_core::evidence_check::Reviewed]) {
        for check in &mut self.checks {
            check.count(reviewed);
        }
        self.steps = self.checks.iter().map(EvidenceStep::from).collect();
        let short: Vec<String> = self
            .checks
            .iter()
            .filter(|check| check.short)
            .map(|check| {
                format!(
                    "{} ({:.2} learned, {:.2} of {} reviewed payments confirmed)",
                    check.name,
                    check.chance,
                    check.share().unwrap_or(0.0),
                    check.carried
                )
            })
            .collect();
        self.evidence_warning = (!short.is_empty()).then(|| {
            format!(
                "The verdicts on this model's payments confirm fraud less often than the stage \
                 learned for {}: that evidence now lifts payments auditors dismiss, so weigh \
                 alerts whose reasons name it accordingly. A retrain learns the stage again \
                 from every verdict in its window, these included: retrain, and check this \
                 table on the new model's payments.",
                short.join("; ")
            )
        });
    }
}

/// One detector's line on the Model page.
#[derive(Debug, Clone, Serialize)]
pub struct DetectorRow {
    pub name: String,
    pub roc_auc: String,
    pub average_precision: String,
    pub recall: String,
    pub combined: bool,
}

/// The model directory's state.
#[derive(Debug, Clone)]
pub enum ModelState {
    Missing,
    /// Present but unreadable: the message says what to do.
    Broken(String),
    Ready(Box<ModelView>),
}

/// The current model's threshold, if a model exists.
pub fn threshold(modeling: &Path) -> Option<f32> {
    current(modeling).map(|model| model.threshold)
}

/// The model the monitor scores with now: its version and threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentModel {
    pub version: String,
    pub threshold: f32,
}

/// The current model, if `modeling/` holds a readable one.
pub fn current(modeling: &Path) -> Option<CurrentModel> {
    read_config(modeling).ok().map(|config| CurrentModel {
        version: config.model_version,
        threshold: config.threshold,
    })
}

/// The score histogram of the model `config` describes, if its metrics have one.
pub fn histogram(modeling: &Path, config: &ModelConfig) -> Option<ScoreHistogram> {
    read_metrics_of(modeling, config).ok()??.score_histogram
}

/// Reads `modeling/` into the Model page's content. Unreadable metrics leave the config's
/// facts (and the drift measured against them) on the page, and say what is wrong in place of
/// the evaluation.
pub fn load(modeling: &Path) -> ModelState {
    let config = match read_config(modeling) {
        Ok(config) => config,
        Err(aegis_core::Error::ModelMissing { .. }) => return ModelState::Missing,
        Err(error) => return ModelState::Broken(error.to_string()),
    };
    match read_metrics_of(modeling, &config) {
        Ok(metrics) => ModelState::Ready(Box::new(view(&config, metrics.as_ref()))),
        Err(error) => {
            let mut view = view(&config, None);
            view.metrics_problem = Some(error.to_string());
            ModelState::Ready(Box::new(view))
        }
    }
}

/// A ratio with `decimals` places; a dash where it is undefined (NaN) or absent.
fn ratio(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:.decimals$}"),
        _ => "—".to_string(),
    }
}

fn count(value: Option<usize>) -> String {
    value.map_or_else(
        || "—".to_string(),
        |n| crate::views::group_digits(i64::try_from(n).unwrap_or(i64::MAX)),
    )
}

fn view(config: &ModelConfig, metrics: Option<&Metrics>) -> ModelView {
    let window = &config.training_window;
    let mut training_window = format!("{} to {}", window.first_event, window.last_event);
    if window.from.is_some() || window.until.is_some() {
        training_window.push_str(&format!(
            " (asked for {} to {})",
            window.from.as_deref().unwrap_or("the start"),
            window.until.as_deref().unwrap_or("the end")
        ));
    }
    let evaluation = metrics.and_then(|m| m.evaluation.as_ref());
    let baseline = metrics.and_then(|m| m.baseline.as_ref());
    type Ratio = fn(&Evaluation) -> f64;
    type Count = fn(&Evaluation) -> usize;
    let ratios: [(&'static str, Ratio); 6] = [
        ("ROC-AUC", |e| e.roc_auc),
        ("Average precision", |e| e.average_precision),
        ("Precision at threshold", |e| e.precision),
        ("Recall at threshold", |e| e.recall),
        ("F1", |e| e.f1),
        ("Precision @ k", |e| e.precision_at_k),
    ];
    let counts: [(&'static str, Count); 3] = [
        ("k (daily alert budget)", |e| e.k),
        ("Test rows", |e| e.rows),
        ("Fraudulent test rows", |e| e.positives),
    ];
    let mut metric_rows: Vec<MetricRow> = ratios
        .into_iter()
        .map(|(name, field)| MetricRow {
            name,
            model: ratio(evaluation.map(field), 4),
            baseline: ratio(baseline.map(field), 4),
        })
        .collect();
    metric_rows.extend(counts.into_iter().map(|(name, field)| MetricRow {
        name,
        model: count(evaluation.map(field)),
        baseline: count(baseline.map(field)),
    }));
    // Said only when it happens: rows an export did not label are not counted as ordinary.
    if evaluation.is_some_and(|e| e.unlabeled > 0) {
        metric_rows.push(MetricRow {
            name: "Test rows without a label (left out)",
            model: count(evaluation.map(|e| e.unlabeled)),
            baseline: count(baseline.map(|e| e.unlabeled)),
        });
    }
    metric_rows.push(MetricRow {
        name: "Threshold",
        model: ratio(evaluation.map(|e| f64::from(e.threshold)), 4),
        baseline: ratio(baseline.map(|e| f64::from(e.threshold)), 4),
    });
    let confusion_rows: [(&'static str, fn(&Confusion) -> usize); 4] = [
        ("True positives", |c| c.true_positives),
        ("False positives", |c| c.false_positives),
        ("False negatives", |c| c.false_negatives),
        ("True negatives", |c| c.true_negatives),
    ];
    let confusion = confusion_rows
        .into_iter()
        .map(|(name, field)| MetricRow {
            name,
            model: count(evaluation.map(|e| field(&e.confusion))),
            baseline: count(baseline.map(|e| field(&e.confusion))),
        })
        .collect();
    let per_type = evaluation
        .map(|evaluation| type_rows(evaluation, baseline))
        .unwrap_or_default();
    let test_period = metrics
        .and_then(|m| m.test_period.as_ref())
        .map(|p| format!("{} to {}", p.first_event, p.last_event))
        .unwrap_or_default();
    ModelView {
        model_version: config.model_version.clone(),
        created_at: ist_text(&config.created_at),
        training_window,
        rows: crate::views::group_digits(i64::try_from(config.rows).unwrap_or(i64::MAX)),
        epochs: config.epochs,
        backend: config.backend.clone(),
        feature_set: config.feature_set.clone(),
        threshold: format!("{:.4}", config.threshold),
        alert_rate: format!("{:.2} %", config.alert_rate * 100.0),
        normal_only: config.normal_only,
        has_metrics: metrics.is_some(),
        metrics_problem: None,
        has_evaluation: evaluation.is_some(),
        has_baseline: baseline.is_some(),
        test_period,
        explanation: explanation(config, evaluation),
        metrics: metric_rows,
        confusion,
        per_type,
        detectors: metrics.map_or_else(Vec::new, |m| {
            m.detectors
                .iter()
                .map(|d| DetectorRow {
                    name: d.name.clone(),
                    roc_auc: ratio(Some(d.evaluation.roc_auc), 3),
                    average_precision: ratio(Some(d.evaluation.average_precision), 3),
                    recall: ratio(Some(d.evaluation.recall), 3),
                    combined: config.calibration.as_ref().is_some_and(|c| {
                        c.combination
                            .iter()
                            .any(|detector| detector.name() == d.name)
                    }),
                })
                .collect()
        }),
        score_quantiles: config.score_quantiles.clone(),
        budget: config.alert_rate,
        feature_bins: config
            .feature_names
            .iter()
            .cloned()
            .zip(config.feature_bins.iter().cloned())
            .collect(),
        feedback: metrics.and_then(|m| feedback_view(m.feedback.as_ref()?, evaluation)),
    }
}

fn feedback_view(
    report: &aegis_core::metrics::FeedbackReport,
    evaluation: Option<&Evaluation>,
) -> Option<FeedbackView> {
    let without = report.unsupervised.as_ref();
    let with = evaluation.filter(|_| without.is_some());
    type Measure = fn(&Evaluation) -> f64;
    let measures: [(&'static str, Measure); 4] = [
        ("ROC-AUC", |e| e.roc_auc),
        ("Average precision", |e| e.average_precision),
        ("Precision @ k", |e| e.precision_at_k),
        ("Recall @ threshold", |e| e.recall),
    ];
    let stages = measures
        .iter()
        .map(|&(name, field)| MetricRow {
            name,
            model: ratio(with.map(field), 3),
            baseline: ratio(without.map(field), 3),
        })
        .collect();
    let per_type = with
        .zip(without)
        .map(|(with, without)| {
            with.per_type
                .iter()
                .map(|row| {
                    let before = without
                        .per_type
                        .iter()
                        .find(|t| t.fraud_type == row.fraud_type)
                        .map(|t| t.recall);
                    (
                        row.fraud_type.clone(),
                        count(Some(row.rows)),
                        ratio(Some(row.recall), 3),
                        ratio(before, 3),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let checks = aegis_core::evidence_check::check(report, &[]);
    Some(FeedbackView {
        used: report.used,
        note: report.note.clone(),
        verdicts: count(Some(report.verdicts)),
        confirmed: count(Some(report.confirmed)),
        dismissed: count(Some(report.dismissed)),
        presumed_ordinary: count(Some(report.presumed_ordinary)),
        refit: report.refit.map(|refit| {
            (
                count(Some(refit.confirmed)),
                count(Some(refit.dismissed)),
                count(Some(refit.presumed_ordinary)),
            )
        }),
        test_rows_with_evidence: count(Some(report.test_rows_with_evidence)),
        stages,
        per_type,
        steps: checks.iter().map(EvidenceStep::from).collect(),
        checks,
        evidence_warning: None,
        look_note: match &report.look_trial {
            Some(trial) => match trial.used_share() {
                Some(share) => format!("used at share {share}"),
                None => "not used".into(),
            },
            None => report.look_note.clone(),
        },
        look_trial: report
            .look_trial
            .as_ref()
            .map_or_else(Vec::new, LookTrialRow::rows),
        look_min_gain: report
            .look_trial
            .as_ref()
            .map_or_else(String::new, |trial| trial.min_gain.to_string()),
        look_weights: report
            .look_weights
            .iter()
            .map(|(name, signed, absolute)| {
                let factor = |log_odds: f32| format!("× {:.2}", log_odds.exp());
                (
                    name.clone(),
                    factor(absolute + signed),
                    factor(absolute - signed),
                )
            })
            .collect(),
    })
}

/// An RFC 3339 time (how train stamps a model) as IST text to the second, like every other time
/// on the pages; text that is not RFC 3339 is shown as it is.
fn ist_text(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339).map_or_else(
        |_| rfc3339.to_string(),
        |time| format!("{} IST", aegis_core::time::format_ist(time.timestamp())),
    )
}

/// Every fraud type the generator knows, with its test rows (zero shown, not left out), then
/// any other label the data carried; only the data's own labels when none of them is one of
/// our generator's (an export labeled with its own types, a world unlike ours).
fn type_rows(evaluation: &Evaluation, baseline: Option<&Evaluation>) -> Vec<TypeRow> {
    let ours = evaluation
        .per_type
        .iter()
        .any(|row| FraudType::from_code(&row.fraud_type).is_some());
    let mut names: Vec<String> = FraudType::ALL
        .iter()
        .filter(|_| ours)
        .map(|kind| kind.code().to_string())
        .collect();
    for row in &evaluation.per_type {
        if !names.contains(&row.fraud_type) {
            names.push(row.fraud_type.clone());
        }
    }
    names
        .into_iter()
        .map(|name| {
            let ours = evaluation.per_type.iter().find(|t| t.fraud_type == name);
            let theirs = baseline.and_then(|b| b.per_type.iter().find(|t| t.fraud_type == name));
            let rows = ours.map_or(0, |t| t.rows);
            TypeRow {
                rows: count(Some(rows)),
                caught: count(Some(ours.map_or(0, |t| t.caught))),
                recall: if rows == 0 {
                    "no test rows".to_string()
                } else {
                    ratio(ours.map(|t| t.recall), 3)
                },
                median_score: ratio(ours.map(|t| t.median_score), 4),
                baseline_caught: count(theirs.map(|t| t.caught)),
                baseline_recall: ratio(theirs.map(|t| t.recall), 3),
                fraud_type: name,
            }
        })
        .collect()
}

/// The model page's first paragraphs: what the score and the threshold mean, and how many of
/// the alerts to expect to be false, from the held-out evaluation when there is one.
fn explanation(config: &ModelConfig, evaluation: Option<&Evaluation>) -> Vec<String> {
    let budget = config.alert_rate * 100.0;
    let mut lines = vec![
        "The detector learned what ordinary payments look like from the training window: the \
         amount against the scheme's and the person's usual amount, the hour against when the \
         counter works, the place, and the recent history of the beneficiary, the account and \
         the counter, each against what is usual in this data. It tries to rebuild every new \
         payment from what it learned."
            .to_string(),
        match &config.calibration {
            Some(calibration) => {
                let detectors: Vec<&str> =
                    calibration.combination.iter().map(|d| d.name()).collect();
                format!(
                    "Each payment is looked at by several detectors, each judged only against \
                     what it said about held-out payments of this data: how badly the payment \
                     could be rebuilt (autoencoder), the same feature by feature \
                     (reconstruction), how rare each of its values is here, a change of an \
                     amount the beneficiary was always paid among them (rarity), and the \
                     payment alone (per-row). The anomaly score is the strongest of these \
                     surprises among the detectors this model combines: {} ({}). Payments \
                     scoring {:.4} or more are alerts; that threshold was set so that about \
                     {budget:.1} % of the most recent payments it was trained on were flagged \
                     (the alert budget). The reasons on \
                     each alert name the features that were most unusual for this data.",
                    detectors.join(", "),
                    calibration.chosen_by,
                    config.threshold
                )
            }
            None => format!(
                "The anomaly score says how badly a payment could be rebuilt: the higher, the \
                 more unlike ordinary payments it is. Payments scoring {:.4} or more are alerts; \
                 that threshold was set so that about {budget:.1} % of payments are flagged (the \
                 alert budget). The reasons on each alert name the features that contributed \
                 most.",
                config.threshold
            ),
        },
    ];
    match &config.feedback {
        Some(stage) if stage.look.is_some() => lines.push(
            "Auditors' verdicts then move the score (the feedback stage, below): a payment that \
             looks like those auditors confirmed rises, one that looks like those they \
             dismissed falls, and a payment at a counter, account or beneficiary where fraud \
             was confirmed before it was paid rises by the chance of fraud such confirmations \
             gave in the past; the threshold is set on that final score."
                .to_string(),
        ),
        Some(_) => lines.push(
            "Auditors' verdicts then raise the score of a payment at a counter, account or \
             beneficiary where fraud was confirmed before it was paid, by the chance of fraud \
             such confirmations gave in the past (the feedback stage, below); the threshold is \
             set on that final score, and a payment no confirmation bears on keeps its score."
                .to_string(),
        ),
        None => {}
    }
    match evaluation {
        Some(e) if e.precision.is_finite() && e.recall.is_finite() => {
            let false_share = (1.0 - e.precision) * 100.0;
            // "About 10 in 10" (or 0) rounds away the alerts that were right (or wrong).
            let in_ten = match (false_share / 10.0).round() {
                tenths if tenths >= 10.0 => "nearly every alert".to_string(),
                tenths if tenths <= 0.0 && false_share > 0.0 => {
                    "fewer than 1 in 10 alerts".to_string()
                }
                tenths => format!("about {tenths} in 10 alerts"),
            };
            lines.push(format!(
                "On the held-out test period, {:.0} % of the alerts were labeled frauds and \
                 {false_share:.0} % were ordinary payments: expect {in_ten} to be false. {:.0} % \
                 of the labeled frauds were alerted.",
                e.precision * 100.0,
                e.recall * 100.0
            ));
        }
        _ => lines.push(
            "There were no ground-truth labels to measure how many alerts are false: judge \
             each alert on its reasons."
                .to_string(),
        ),
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation_of(types: &[&str]) -> Evaluation {
        Evaluation {
            rows: 100,
            positives: types.len() * 10,
            roc_auc: 0.9,
            average_precision: 0.5,
            threshold: 1.7,
            precision: 0.5,
            recall: 0.5,
            f1: 0.5,
            k: 2,
            precision_at_k: 0.5,
            confusion: Confusion::default(),
            per_type: types
                .iter()
                .map(|kind| aegis_core::metrics::TypeRecall {
                    fraud_type: kind.to_string(),
                    rows: 10,
                    caught: 5,
                    recall: 0.5,
                    median_score: 2.0,
                })
                .collect(),
            unlabeled: 0,
        }
    }

    #[test]
    fn a_data_set_with_its_own_fraud_types_lists_only_those() {
        let foreign = type_rows(
            &evaluation_of(&["account_takeover", "late_duplicate"]),
            None,
        );
        let names: Vec<&str> = foreign.iter().map(|r| r.fraud_type.as_str()).collect();
        assert_eq!(names, ["account_takeover", "late_duplicate"]);
        // Ours: every type of our generator, those without test rows included, then the rest.
        let ours = type_rows(&evaluation_of(&["burst", "account_takeover"]), None);
        assert_eq!(ours.len(), FraudType::ALL.len() + 1);
        assert!(
            ours.iter()
                .any(|r| r.fraud_type == "probe_amount" && r.rows == "0")
        );
    }

    #[test]
    fn the_creation_time_is_shown_in_ist_to_the_second() {
        assert_eq!(
            ist_text("2025-03-11T03:30:00.123456789+00:00"),
            "2025-03-11 09:00:00 IST"
        );
        assert_eq!(ist_text("yesterday"), "yesterday", "shown as it is");
    }
}
