//! The detectors behind the score and how they are combined for this deployment: the
//! autoencoder on the behavioural features, the per-row network, each feature's error and value
//! judged against this data ([`aegis_core::model::Calibration`]), and the choice of which
//! detectors the score takes the most confident of.
//!
//! The choice: when the held-out rows carry labels (ground truth in a test set, or frauds
//! auditors confirmed), every non-empty set of detectors is tried and the one with the best
//! average precision on those rows wins, each kind of fraud weighing the same (a cluster of one
//! easy kind in the held-out rows would otherwise choose for all); its name and the count of
//! labels behind it are saved with the model. Without labels the default is [`Detector::DEFAULT`], which needs no labels to
//! be sensible on any data: reconstruction and rarity, each judged against this deployment.

use aegis_core::model::{Calibration, Detector, DetectorTotals, FeatureCalibration};

use aegis_core::features::{FEATURE_COUNT, PER_ROW_COUNT};

use crate::dataset::Dataset;
use crate::evaluate::average_precision_per_kind;
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
    /// combination with the best average precision per kind of fraud, each kind weighing the
    /// same.
    pub fn calibrate(
        main: Fitted,
        per_row: Option<Fitted>,
        trained: Rows<'_>,
        held_out: Rows<'_>,
        labels: &[Option<u32>],
        choose_with_labels: bool,
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
            let best = subsets(&available)
                .into_iter()
                .map(|subset| {
                    let scores: Vec<f32> = totals
                        .iter()
                        .map(|t| calibration.combine(t, &subset))
                        .collect();
                    (average_precision_per_kind(&scores, labels), subset)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .expect("at least one detector");
            tracing::info!(
                combination = ?best.1,
                average_precision_per_kind = best.0,
                frauds,
                kinds,
                "combination chosen on labeled held-out rows"
            );
            (
                best.1,
                format!(
                    "chosen on {frauds} labeled frauds among the held-out rows ({kinds} kind{}, each weighing the same)",
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
