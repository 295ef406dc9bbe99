//! The detectors behind the score and how they are combined for this deployment: the
//! autoencoder on the behavioural features, the per-row network, each feature's error and value
//! judged against this data ([`aegis_core::model::Calibration`]), and the choice of which
//! detectors the score takes the most confident of.
//!
//! The choice: when the held-out rows carry labels (ground truth in a test set, or frauds
//! auditors confirmed), every non-empty set of detectors is tried on them and judged by two
//! figures weighing the same, each a mean over the kinds of fraud (a cluster of one easy kind
//! in the held-out rows would otherwise choose for all): the share of each kind the alert
//! budget catches (what the auditors see) and the average precision (how well the queue is
//! ordered, within the budget and beyond); the best mean of the two wins, its name and the
//! count of labels behind it saved with the model.
//!
//! Either figure alone chose badly. Average precision alone, on `feedback-bench` seed 7,
//! preferred autoencoder + reconstruction by 0.001 (0.5596 against the autoencoder's 0.5586)
//! though its budget let 7 more of the 92 held-out inflated amounts through (live: 0.927
//! against the autoencoder's 0.99). The catch alone chose rarity + per-row on card payments for
//! 0.06 more of it and lost 0.32 of average precision (0.20 against the per-row detector's
//! 0.52), falling below the per-row baseline on the test fifth (0.181 against 0.232). Without labels the default is [`Detector::DEFAULT`], which needs no labels to
//! be sensible on any data: reconstruction and rarity, each judged against this deployment.

use aegis_core::model::{Calibration, Detector, DetectorTotals, FeatureCalibration};

use aegis_core::features::{FEATURE_COUNT, PER_ROW_COUNT};

use crate::dataset::Dataset;
use crate::evaluate::{average_precision_per_kind, recall_per_kind_at};
use crate::fit::Fitted;

/// Fewer labeled frauds than this among the held-out rows, and the combination is the default:
/// average precision on a handful of frauds is noise.
pub const MIN_LABELED_FRAUDS: usize = 20;

/// The trained networks with the calibration that combines them.
#[derive(Debug)]
pub struct Detectors {
    pub main: Fitted,
    pub per_row: Option<Fitted>,
    pub calibration: Calibration,
}

/// Some of a data set's rows, as the detectors read them (raw, row-major): the features, the
/// per-row network's inputs and each row's steady-amount change.
#[derive(Debug, Default)]
pub struct RowSet {
    pub features: Vec<f32>,
    pub per_row: Vec<f32>,
    pub steady: Vec<f32>,
}

impl RowSet {
    /// The rows of `dataset` at `indices`, in that order.
    pub fn gather(dataset: &Dataset, indices: impl Iterator<Item = usize>) -> RowSet {
        let mut rows = RowSet::default();
        for index in indices {
            rows.features
                .extend_from_slice(&dataset.features[index * FEATURE_COUNT..][..FEATURE_COUNT]);
            rows.per_row.extend_from_slice(
                &dataset.per_row_features[index * PER_ROW_COUNT..][..PER_ROW_COUNT],
            );
            rows.steady.push(dataset.steady[index]);
        }
        rows
    }
}

/// A borrowed [`RowSet`].
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    pub features: &'a [f32],
    pub per_row: &'a [f32],
    pub steady: &'a [f32],
}

impl<'a> Rows<'a> {
    pub fn of(set: &'a RowSet) -> Rows<'a> {
        Rows {
            features: &set.features,
            per_row: &set.per_row,
            steady: &set.steady,
        }
    }
}

impl Detectors {
    /// Calibrates `main` and `per_row` on the rows they were trained on and on held-out rows,
    /// and chooses the combination with the held-out rows' labels when there are enough
    /// (`labels[i]`: the kind of row i's known fraud, `None` for a row not known as one): the
    /// combination with the best mean of what its `alert_rate` budget catches of each kind and
    /// its average precision per kind (see the module's documentation).
    pub fn calibrate(
        main: Fitted,
        per_row: Option<Fitted>,
        trained: Rows<'_>,
        held_out: Rows<'_>,
        labels: &[Option<u32>],
        choose_with_labels: bool,
        alert_rate: f64,
    ) -> Detectors {
        // Values are judged against the training rows and the held-out rows after them: the
        // training rows are the window's beginning, where histories are still filling (a 45-day
        // card set's first month has first visits counted but not judged), and alone they made
        // every later first visit look rare (card without labels: AP 0.013 against 0.046 with
        // both; welfare 0.752 against 0.756, messy-welfare 0.510 against 0.512). A steady
        // amount's change stays judged against the training rows alone: messy-welfare's pension
        // inflations crowd the held-out tenth (a pensioner's third payment, the first judged,
        // falls there), and counted as ordinary they would set their own scale (values and
        // changes both judged against the held-out rows alone: mild inflation 0.13, AP 0.475).
        let (held_out_standardised, held_out_errors) = main.errors(held_out.features);
        let mut standardised = trained.features.to_vec();
        main.normalizer.apply(&mut standardised);
        standardised.extend_from_slice(&held_out_standardised);
        drop(held_out_standardised);
        let features = FeatureCalibration::fit(
            &standardised,
            &held_out_errors,
            main.shape.input,
            trained.steady,
        );
        drop(standardised);
        let mut detectors = Detectors {
            main,
            per_row,
            calibration: Calibration {
                features,
                detectors: Vec::new(),
                combination: Vec::new(),
                chosen_by: String::new(),
            },
        };
        let totals = detectors.totals(held_out);
        detectors.calibration.detectors = Calibration::detector_curves(&totals);
        let available: Vec<Detector> = detectors
            .calibration
            .detectors
            .iter()
            .map(|curve| curve.detector)
            .collect();
        let frauds = labels.iter().flatten().count();
        let kinds = labels.iter().flatten().max().map_or(0, |&k| k + 1);
        let (combination, chosen_by) = if choose_with_labels && frauds >= MIN_LABELED_FRAUDS {
            let calibration = &detectors.calibration;
            let best = best_at_budget(
                subsets(&available).into_iter().map(|subset| {
                    let scores: Vec<f32> = totals
                        .iter()
                        .map(|t| calibration.combine(t, &subset))
                        .collect();
                    (subset, scores)
                }),
                labels,
                alert_rate,
            )
            .expect("at least one detector");
            tracing::info!(
                combination = ?best.1,
                recall_per_kind = best.0.0,
                average_precision_per_kind = best.0.1,
                frauds,
                kinds,
                "combination chosen on labeled held-out rows"
            );
            (
                best.1,
                format!(
                    "chosen on {frauds} labeled frauds among the held-out rows ({kinds} kind{}, each weighing the same): what the alert budget catches and how well it ranks them",
                    if kinds == 1 { "" } else { "s" }
                ),
            )
        } else {
            (
                Detector::DEFAULT
                    .into_iter()
                    .filter(|d| available.contains(d))
                    .collect(),
                if !choose_with_labels {
                    "default: asked not to choose with labels".to_string()
                } else if frauds == 0 {
                    "default: no labeled frauds among the held-out rows".to_string()
                } else {
                    format!(
                        "default: only {frauds} labeled frauds among the held-out rows (fewer than {MIN_LABELED_FRAUDS})"
                    )
                },
            )
        };
        detectors.calibration.combination = combination;
        detectors.calibration.chosen_by = chosen_by;
        detectors
    }

    /// Every detector's raw totals for `rows`.
    pub fn totals(&self, rows: Rows<'_>) -> Vec<DetectorTotals> {
        let (standardised, errors) = self.main.errors(rows.features);
        let per_row = self
            .per_row
            .as_ref()
            .map(|network| network.scores(rows.per_row));
        Calibration::totals(
            &self.calibration.features,
            &standardised,
            &errors,
            per_row.as_deref(),
            rows.steady,
        )
    }

    /// The model's scores of `rows`, as the monitor computes them.
    pub fn scores(&self, rows: Rows<'_>) -> Vec<f32> {
        self.scores_with(rows, &self.calibration.combination)
    }

    /// The scores `rows` would get from `combination` (one detector alone, for reports).
    pub fn scores_with(&self, rows: Rows<'_>, combination: &[Detector]) -> Vec<f32> {
        self.totals(rows)
            .iter()
            .map(|totals| self.calibration.combine(totals, combination))
            .collect()
    }
}

/// Among `candidates` (a set of detectors and the held-out rows' scores under it), the one
/// with the best mean of its recall per kind of `labels` at the `alert_rate` budget and its
/// average precision per kind; the first listed on a tie. Returns it with those two figures,
/// `(recall per kind, average precision per kind)`.
fn best_at_budget(
    candidates: impl Iterator<Item = (Vec<Detector>, Vec<f32>)>,
    labels: &[Option<u32>],
    alert_rate: f64,
) -> Option<((f64, f64), Vec<Detector>)> {
    candidates
        .map(|(subset, scores)| {
            let recall = recall_per_kind_at(&scores, labels, alert_rate);
            let precision = average_precision_per_kind(&scores, labels);
            tracing::debug!(
                combination = ?subset,
                recall_per_kind = recall,
                average_precision_per_kind = precision,
                "combination tried on labeled held-out rows"
            );
            ((recall, precision), subset)
        })
        .reduce(|best, next| {
            if merit(next.0.0, next.0.1) > merit(best.0.0, best.0.1) {
                next
            } else {
                best
            }
        })
}

/// What the held-out rows say of a score: the mean of its recall per kind at the alert
/// budget and its average precision per kind.
pub fn merit(recall_per_kind: f64, average_precision_per_kind: f64) -> f64 {
    (recall_per_kind + average_precision_per_kind) / 2.0
}

/// Every non-empty subset of `detectors`, in a fixed order (singles first).
fn subsets(detectors: &[Detector]) -> Vec<Vec<Detector>> {
    let mut all: Vec<Vec<Detector>> = (1u32..1 << detectors.len())
        .map(|mask| {
            detectors
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, d)| *d)
                .collect()
        })
        .collect();
    all.sort_by_key(Vec::len);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Average precision alone would choose the autoencoder here: it ranks the large kind
    /// perfectly and lets the small kind fall just below the budget. Rarity ranks both kinds
    /// behind eleven ordinary rows, but within the budget, and wins. The catch alone would
    /// choose rarity over a set that ranks both kinds first but lets one fraud through; that
    /// set wins. On a tie at the budget, the better ranking wins.
    #[test]
    fn the_set_that_catches_and_ranks_each_kind_best_is_chosen() {
        // 190 ordinary rows scoring below 1, 8 frauds of kind 0, 2 of kind 1; a 10 % budget
        // alerts the 21 highest scores.
        let mut labels: Vec<Option<u32>> = vec![None; 190];
        labels.extend([Some(0); 8]);
        labels.extend([Some(1); 2]);
        let ordinary: Vec<f32> = (0..190).map(|i| i as f32 / 200.0).collect();
        let scores = |lifted: usize, kind_0: f32, kind_1: f32| {
            let mut scores = ordinary.clone();
            scores[190 - lifted..].iter_mut().for_each(|s| *s += 4.0);
            scores.extend([kind_0; 8]);
            scores.extend([kind_1; 2]);
            scores
        };
        // Kind 0 on top; kind 1 just below the 13 highest ordinary rows, outside the budget.
        let ranks_kind_0_first = scores(0, 5.0, 0.8825);
        // Eleven ordinary rows on top, then both kinds.
        let both_within = scores(11, 2.0, 3.0);
        assert!(
            average_precision_per_kind(&ranks_kind_0_first, &labels)
                > average_precision_per_kind(&both_within, &labels)
        );
        let chosen = |candidates: Vec<(Vec<Detector>, Vec<f32>)>| {
            best_at_budget(candidates.into_iter(), &labels, 0.1)
                .map(|(_, subset)| subset)
                .unwrap()
        };
        assert_eq!(
            chosen(vec![
                (vec![Detector::Autoencoder], ranks_kind_0_first),
                (vec![Detector::Rarity], both_within.clone()),
            ]),
            vec![Detector::Rarity]
        );
        // One fraud of kind 0 just outside the budget, the rest of both kinds on top.
        let mut one_through = scores(0, 5.0, 6.0);
        one_through[197] = 0.8825;
        assert!(
            recall_per_kind_at(&one_through, &labels, 0.1)
                < recall_per_kind_at(&both_within, &labels, 0.1)
        );
        assert_eq!(
            chosen(vec![
                (vec![Detector::Rarity], both_within.clone()),
                (vec![Detector::PerRow], one_through),
            ]),
            vec![Detector::PerRow]
        );
        // The same catch at the budget: the better ranking, whichever is listed first.
        let ranked_better = scores(11, 5.0, 3.0);
        for reversed in [false, true] {
            let mut candidates = vec![
                (vec![Detector::Rarity], both_within.clone()),
                (vec![Detector::Reconstruction], ranked_better.clone()),
            ];
            if reversed {
                candidates.reverse();
            }
            assert_eq!(chosen(candidates), vec![Detector::Reconstruction]);
        }
        // An exact tie: the first listed (the sets come singles first).
        assert_eq!(
            chosen(vec![
                (vec![Detector::Rarity], both_within.clone()),
                (vec![Detector::Rarity, Detector::PerRow], both_within),
            ]),
            vec![Detector::Rarity]
        );
    }

    #[test]
    fn every_non_empty_subset_is_tried_once() {
        let all = subsets(&Detector::ALL);
        assert_eq!(all.len(), 15);
        assert!(all[..4].iter().all(|s| s.len() == 1));
        let mut unique = all.clone();
        unique.dedup();
        assert_eq!(unique.len(), 15);
    }
}
