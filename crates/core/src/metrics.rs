//! `metrics.json`: the evaluation `train` writes beside a model and the dashboard's model page
//! reads. One set of types for both sides, so a renamed field fails to compile rather than
//! leaving a dash on the page.

use serde::{Deserialize, Deserializer, Serialize};

mod look;

pub use look::{KindSwaps, LookShare, LookTrial, Lowered, Refusal};

/// Everything `train` measured about the model it saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub model_version: String,
    pub feature_set: String,
    pub rows: RowCounts,
    /// The held-out period the evaluation covers.
    pub test_period: Option<Period>,
    pub threshold: f32,
    pub alert_rate: f64,
    /// (quantile, score) pairs of the calibration scores.
    #[serde(default)]
    pub score_quantiles: Vec<(f64, f32)>,
    /// Test-period scores in log-spaced bins; `None` when there were no test rows.
    #[serde(default, deserialize_with = "object_or_none")]
    pub score_histogram: Option<ScoreHistogram>,
    /// Loss per epoch.
    #[serde(default)]
    pub history: Vec<EpochLoss>,
    /// The model on the labeled test rows (`None` without labels).
    #[serde(default, deserialize_with = "object_or_none")]
    pub evaluation: Option<Evaluation>,
    /// The per-row baseline on the same rows (`None` without labels or with `--no-baseline`).
    #[serde(default, deserialize_with = "object_or_none")]
    pub baseline: Option<Evaluation>,
    /// Each single detector behind the final score, on the same rows (empty without labels).
    #[serde(default)]
    pub detectors: Vec<DetectorEvaluation>,
    pub timings_s: Timings,
    pub backend: String,
    /// The supervised stage on auditors' verdicts: whether it was trained, on what, and the
    /// unsupervised stage alone beside it (`None`: trained with `--no-feedback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackReport>,
}

/// What the verdicts taught: the labels counted before the held-out period, the stage's
/// weights, and both stages on the held-out rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackReport {
    /// Whether the final score includes the supervised stage.
    pub used: bool,
    /// Why it is or is not used, in a sentence.
    pub note: String,
    /// Verdicts held in the database, at any time.
    pub verdicts: usize,
    /// Labels decided before the held-out period.
    pub confirmed: usize,
    pub dismissed: usize,
    pub presumed_ordinary: usize,
    /// The chance of fraud each step of each evidence value gives by itself, whatever the
    /// payment looks like (e.g. `counter_confirmed_7d ≥ 2`: 0.4; see
    /// [`crate::feedback::FeedbackStage::step_chances`]; empty when not used).
    #[serde(default)]
    pub chances: Vec<(String, f32)>,
    /// Whether the stage weighs the payment's look, and why (see
    /// [`crate::feedback::Look`]); empty when no stage was trained.
    #[serde(default)]
    pub look_note: String,
    /// Each share of the look tried, with what decided it (`None`: no share was judged, as
    /// `look_note` says, or a model trained before the trial was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub look_trial: Option<LookTrial>,
    /// The look inputs that move the chance of fraud most: (name, signed weight, weight of
    /// the absolute value), per spread from the training rows' mean; empty without a look.
    #[serde(default)]
    pub look_weights: Vec<(String, f32, f32)>,
    /// The stage the model scores with, learned again from every verdict once the stage above
    /// passed the held-out check: `None` when it was not learned again (no stage, or the refit
    /// failed: then the stage judged on the held-out rows scores payments).
    /// [`chances`](Self::chances) are this stage's when it is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refit: Option<Refit>,
    /// Held-out rows with any verdict evidence.
    pub test_rows_with_evidence: usize,
    /// The unsupervised stage alone on the held-out rows, at its own threshold for the same
    /// budget (`None` without labels).
    #[serde(default, deserialize_with = "object_or_none")]
    pub unsupervised: Option<Evaluation>,
}

impl FeedbackReport {
    /// The steps of [`chances`](Self::chances) that raise the chance by at least `least` over
    /// the step below them (the others only repeat it), largest chance first.
    pub fn rising_chances(&self, least: f32) -> Vec<(&str, f32)> {
        let mut rising: Vec<(&str, f32)> = self
            .chances
            .chunks(crate::feedback::EVIDENCE_STEPS.len())
            .flat_map(|steps| {
                let below = std::iter::once(0.0).chain(steps.iter().map(|(_, chance)| *chance));
                steps
                    .iter()
                    .zip(below)
                    .filter(move |((_, chance), below)| chance - below >= least)
                    .map(|((name, chance), _)| (name.as_str(), *chance))
            })
            .collect();
        rising.sort_by(|a, b| b.1.total_cmp(&a.1));
        rising
    }
}

/// The labels the feedback stage was learned again from, after the held-out check: every
/// verdict in the training window, not only those decided before the held-out period, so
/// that the model learns from the newest verdicts too. The held-out figures are the first
/// stage's, which no verdict from the held-out period taught.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refit {
    pub confirmed: usize,
    pub dismissed: usize,
    pub presumed_ordinary: usize,
}

/// One detector's evaluation, named as the reports name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorEvaluation {
    pub name: String,
    pub evaluation: Evaluation,
}

/// Row counts of the training window and its split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RowCounts {
    pub window: usize,
    pub train: usize,
    pub calibration: usize,
    pub test: usize,
    pub malformed_skipped: usize,
}

/// First and last event time (IST text) of a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub first_event: String,
    pub last_event: String,
}

/// Scores counted in bins between `edges` (one more edge than counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreHistogram {
    pub edges: Vec<f64>,
    pub counts: Vec<u64>,
    pub threshold: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochLoss {
    pub epoch: u32,
    pub train_loss: f64,
    pub validation_loss: f64,
}

/// Seconds spent computing features, fitting, and in all.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub features: f64,
    pub fit: f64,
    pub total: f64,
}

/// Evaluation of one detector on labeled rows. Ratios are NaN where undefined (no positives,
/// no alerts); JSON has no NaN, so they are written as `null` and read back as NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub rows: usize,
    pub positives: usize,
    #[serde(deserialize_with = "number_or_nan")]
    pub roc_auc: f64,
    #[serde(deserialize_with = "number_or_nan")]
    pub average_precision: f64,
    pub threshold: f32,
    #[serde(deserialize_with = "number_or_nan")]
    pub precision: f64,
    #[serde(deserialize_with = "number_or_nan")]
    pub recall: f64,
    #[serde(deserialize_with = "number_or_nan")]
    pub f1: f64,
    /// k = the daily alert budget (alert rate × transactions per day of the test period).
    pub k: usize,
    #[serde(deserialize_with = "number_or_nan")]
    pub precision_at_k: f64,
    pub confusion: Confusion,
    pub per_type: Vec<TypeRecall>,
    /// Test rows without a label (an export that labels only the cases it investigated), left
    /// out of every figure above: counted as ordinary they would make the precision up.
    #[serde(default)]
    pub unlabeled: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Confusion {
    pub true_positives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
    pub false_negatives: usize,
}

/// Recall on the test rows of one fraud type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeRecall {
    pub fraud_type: String,
    pub rows: usize,
    pub caught: usize,
    #[serde(deserialize_with = "number_or_nan")]
    pub recall: f64,
    #[serde(deserialize_with = "number_or_nan")]
    pub median_score: f64,
}

fn number_or_nan<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// Earlier trains wrote `[]` for an empty histogram: anything that is not the object reads as
/// absent rather than making the whole file unreadable.
fn object_or_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// Average precision: mean of the precision at each positive, scores descending.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> f64 {
    let one_kind: Vec<Option<u32>> = labels.iter().map(|&fraud| fraud.then_some(0)).collect();
    average_precision_per_kind(scores, &one_kind)
}

/// The average precision of each kind of fraud against the ordinary rows alone (other kinds'
/// rows left out), averaged over the kinds (`labels[i]`: the kind of row i's fraud, `None` for
/// an ordinary row). A kind with a hundred rows weighs as much as one with ten, so a cluster
/// of one easy kind cannot decide alone which detectors win. NaN without any fraud.
pub fn average_precision_per_kind(scores: &[f32], labels: &[Option<u32>]) -> f64 {
    let per_kind: Vec<f64> = average_precision_of_each_kind(scores, labels)
        .into_iter()
        .flatten()
        .collect();
    if per_kind.is_empty() {
        return f64::NAN;
    }
    per_kind.iter().sum::<f64>() / per_kind.len() as f64
}

/// The average precision of each kind (indexed by kind) against the ordinary rows alone;
/// `None` for a kind without rows.
pub fn average_precision_of_each_kind(scores: &[f32], labels: &[Option<u32>]) -> Vec<Option<f64>> {
    let kinds = labels.iter().flatten().max().map_or(0, |&k| k as usize + 1);
    let mut positives = vec![0usize; kinds];
    for &kind in labels.iter().flatten() {
        positives[kind as usize] += 1;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut seen, mut sums, mut ordinary) = (vec![0usize; kinds], vec![0.0f64; kinds], 0usize);
    for index in order {
        match labels[index] {
            Some(kind) => {
                let kind = kind as usize;
                seen[kind] += 1;
                sums[kind] += seen[kind] as f64 / (seen[kind] + ordinary) as f64;
            }
            None => ordinary += 1,
        }
    }
    (0..kinds)
        .map(|kind| (positives[kind] > 0).then(|| sums[kind] / positives[kind] as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_ranking_has_average_precision_one() {
        let labels = [false, false, true, true];
        assert_eq!(average_precision(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        // Ranked 1st and 3rd: (1/1 + 2/3) / 2.
        let ap = average_precision(&[0.9, 0.7, 0.5, 0.1], &[true, false, true, false]);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    /// A ranking that puts a large easy kind first and a small kind last wins on pooled average
    /// precision but loses on the per-kind mean to one that finds both.
    #[test]
    fn each_kind_of_fraud_weighs_the_same_in_the_per_kind_average_precision() {
        // 100 ordinary rows, 50 frauds of kind 0, 5 of kind 1.
        let labels: Vec<Option<u32>> = (0..155)
            .map(|i| match i {
                0..100 => None,
                100..150 => Some(0),
                _ => Some(1),
            })
            .collect();
        let pooled =
            |labels: &[Option<u32>]| labels.iter().map(Option::is_some).collect::<Vec<_>>();
        // A: kind 0 on top, then the ordinary rows, kind 1 last.
        let a: Vec<f32> = (0..155)
            .map(|i| match i {
                0..100 => 1.0,
                100..150 => 2.0,
                _ => 0.0,
            })
            .collect();
        // B: kind 1 on top, then kind 0 and the ordinary rows interleaved.
        let b: Vec<f32> = (0..155)
            .map(|i| match i {
                0..100 => (i % 2) as f32,
                100..150 => 0.5,
                _ => 3.0,
            })
            .collect();
        assert!(average_precision(&a, &pooled(&labels)) > average_precision(&b, &pooled(&labels)));
        let (per_a, per_b) = (
            average_precision_per_kind(&a, &labels),
            average_precision_per_kind(&b, &labels),
        );
        assert!(per_a < per_b, "{per_a} against {per_b}");
        // Kind 0 perfect (1.0), kind 1 behind all 100 ordinary rows (about 0.03).
        assert!(
            (per_a - 0.5 * (1.0 + (1..=5).map(|n| n as f64 / (n + 100) as f64).sum::<f64>() / 5.0))
                .abs()
                < 1e-9
        );
        assert!(average_precision_per_kind(&a, &[None; 155]).is_nan());
    }

    fn evaluation() -> Evaluation {
        Evaluation {
            rows: 10,
            positives: 0,
            roc_auc: f64::NAN,
            average_precision: 0.5,
            threshold: 1.5,
            precision: 0.25,
            recall: 1.0,
            f1: 0.4,
            k: 2,
            precision_at_k: 0.5,
            confusion: Confusion::default(),
            per_type: vec![TypeRecall {
                fraud_type: "burst".into(),
                rows: 0,
                caught: 0,
                recall: f64::NAN,
                median_score: 0.1,
            }],
            unlabeled: 0,
        }
    }

    #[test]
    fn undefined_ratios_survive_the_round_trip_through_json() {
        let text = serde_json::to_string(&evaluation()).unwrap();
        assert!(text.contains("\"roc_auc\":null"), "{text}");
        let back: Evaluation = serde_json::from_str(&text).unwrap();
        assert!(back.roc_auc.is_nan());
        assert!(back.per_type[0].recall.is_nan());
        assert_eq!(back.average_precision, 0.5);
    }

    #[test]
    fn an_empty_histogram_written_by_an_earlier_train_reads_as_none() {
        let metrics = Metrics {
            model_version: "v".into(),
            feature_set: "r3-x".into(),
            rows: RowCounts {
                window: 1,
                train: 1,
                calibration: 0,
                test: 0,
                malformed_skipped: 0,
            },
            test_period: None,
            threshold: 1.0,
            alert_rate: 0.02,
            score_quantiles: vec![],
            score_histogram: None,
            history: vec![],
            evaluation: Some(evaluation()),
            baseline: None,
            detectors: vec![],
            timings_s: Timings {
                features: 0.0,
                fit: 0.0,
                total: 0.0,
            },
            backend: "flex".into(),
            feedback: None,
        };
        let mut value = serde_json::to_value(&metrics).unwrap();
        value["score_histogram"] = serde_json::json!([]);
        let back: Metrics = serde_json::from_value(value).unwrap();
        assert_eq!(back.score_histogram, None);
        assert_eq!(back.evaluation.unwrap().rows, 10);
    }
}
