//! The model as plain data: the autoencoder's shape, the normalisation in front of it, the
//! score, and the backend's name. Shared by train and monitor so that the monitor runs exactly
//! what train saved, and readable by the dashboard without linking burn (the network itself
//! is in the `aegis-model` crate).

use serde::{Deserialize, Serialize};

use crate::features::FEATURE_COUNT;

/// Standardised features are clipped to this many standard deviations, so one absurd value
/// cannot dominate training.
pub const Z_CLIP: f32 = 20.0;

/// Tail share on each side left outside the "ordinary range" of a feature.
pub const SUPPORT_QUANTILE: f64 = 0.01;

/// Tail share on each side winsorised before measuring a feature's mean and spread. An
/// unlabeled window contains frauds (about 1 % of rows, ~0.1 % per type), whose extreme values
/// would otherwise inflate the very spread their successors are measured against: with the raw
/// standard deviation, the agent-collusion feature's scale grew with the collusion in the
/// training data and its recall fell. Winsorising at 1 % instead shrinks the spread of
/// mostly-zero features so far that ordinary evening payments outscored 5× inflated amounts.
pub const SCALE_QUANTILE: f64 = 0.001;

/// Layer widths of the autoencoder: input → hidden → inner → bottleneck → inner → hidden → input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoencoderShape {
    pub input: usize,
    pub hidden: usize,
    pub inner: usize,
    pub bottleneck: usize,
}

impl Default for AutoencoderShape {
    fn default() -> Self {
        Self {
            input: FEATURE_COUNT,
            hidden: 32,
            inner: 16,
            bottleneck: 6,
        }
    }
}

/// Per-feature (winsorised) mean and standard deviation of the training data, and the range of
/// standardised values ordinary rows take (the 1 % and 99 % quantiles).
///
/// The network is trained to reconstruct rows clipped to that range, and scores a row by how
/// far its reconstruction is from the *unclipped* row. An autoencoder with ReLUs extrapolates
/// linearly, so trained on raw values it would happily reconstruct a ₹50,000 PM-KISAN payment
/// along its "amount" direction and miss it; trained on the clipped range it cannot produce an
/// out-of-range value, and the distance to the range becomes error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub lower: Vec<f32>,
    pub upper: Vec<f32>,
}

impl Normalizer {
    /// Statistics of row-major `rows × columns` data.
    ///
    /// Mean and spread are those of the values winsorised at [`SCALE_QUANTILE`] (f64
    /// accumulation), so that the rare extreme rows of an unlabeled training window (frauds among
    /// them) do not inflate the scale and hide the next extreme row. A column that is one value
    /// after winsorising (a flag almost always 0) falls back to its raw spread, and a constant
    /// column (e.g. an import without agents) to unit scale. The ordinary range is the
    /// [`SUPPORT_QUANTILE`] to 1 − [`SUPPORT_QUANTILE`] range, standardised.
    pub fn fit(data: &[f32], columns: usize) -> Self {
        let rows = data.len() / columns;
        let mut normalizer = Self {
            mean: vec![0.0; columns],
            std: vec![1.0; columns],
            lower: vec![-Z_CLIP; columns],
            upper: vec![Z_CLIP; columns],
        };
        if rows == 0 {
            return normalizer;
        }
        let mut column_values = Vec::with_capacity(rows);
        for column in 0..columns {
            column_values.clear();
            column_values.extend(data.iter().skip(column).step_by(columns).copied());
            column_values.sort_by(f32::total_cmp);
            let at = |q: f64| column_values[((rows - 1) as f64 * q).round() as usize];
            let (low, high) = (at(SUPPORT_QUANTILE), at(1.0 - SUPPORT_QUANTILE));
            let (floor, ceiling) = (at(SCALE_QUANTILE), at(1.0 - SCALE_QUANTILE));
            let (winsorised_mean, winsorised_std) =
                mean_and_std(column_values.iter().map(|v| v.clamp(floor, ceiling)));
            let (mean, std) = if winsorised_std >= 1e-3 {
                (winsorised_mean, winsorised_std)
            } else {
                let (raw_mean, raw_std) = mean_and_std(column_values.iter().copied());
                (raw_mean, if raw_std >= 1e-3 { raw_std } else { 1.0 })
            };
            normalizer.mean[column] = mean as f32;
            normalizer.std[column] = std as f32;
            let standardise = |v: f32| ((v - mean as f32) / std as f32).clamp(-Z_CLIP, Z_CLIP);
            normalizer.lower[column] = standardise(low);
            normalizer.upper[column] = standardise(high);
        }
        normalizer
    }

    /// Whether every statistic covers `columns` features (a config edited by hand or written
    /// for another feature set may not).
    pub fn has_width(&self, columns: usize) -> bool {
        [&self.mean, &self.std, &self.lower, &self.upper]
            .iter()
            .all(|v| v.len() == columns)
    }

    /// The network input for standardised rows: each value clipped to the ordinary range.
    pub fn clip_to_support(&self, standardised: &[f32]) -> Vec<f32> {
        let columns = self.mean.len();
        let mut clipped = standardised.to_vec();
        for row in clipped.chunks_exact_mut(columns) {
            for (column, value) in row.iter_mut().enumerate() {
                *value = value.clamp(self.lower[column], self.upper[column]);
            }
        }
        clipped
    }

    /// Standardises row-major data in place, clipping to ±[`Z_CLIP`].
    pub fn apply(&self, data: &mut [f32]) {
        let columns = self.mean.len();
        for row in data.chunks_exact_mut(columns) {
            for (column, value) in row.iter_mut().enumerate() {
                *value = ((*value - self.mean[column]) / self.std[column]).clamp(-Z_CLIP, Z_CLIP);
            }
        }
    }
}

/// The CPU backend that runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend (default).
    #[default]
    Flex,
    /// The deprecated NdArray backend, for comparison (build with `--features aegis-model/ndarray`).
    Ndarray,
}

impl BackendKind {
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "flex" => Ok(BackendKind::Flex),
            "ndarray" => Ok(BackendKind::Ndarray),
            other => Err(format!("unknown backend {other:?}: use flex or ndarray")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
        }
    }
}

/// Mean and standard deviation of `values`, accumulated in f64 so that the order of a million
/// rows does not matter to the last bit that counts.
pub fn mean_and_std(values: impl Iterator<Item = f32>) -> (f64, f64) {
    let (mut count, mut sum, mut sum_sq) = (0f64, 0f64, 0f64);
    for value in values {
        count += 1.0;
        sum += f64::from(value);
        sum_sq += f64::from(value) * f64::from(value);
    }
    let mean = sum / count.max(1.0);
    (
        mean,
        (sum_sq / count.max(1.0) - mean * mean).max(0.0).sqrt(),
    )
}

/// Mean of each row's squared errors: the anomaly score of a model without a [`Calibration`].
pub fn row_scores(squared_errors: &[f32], columns: usize) -> Vec<f32> {
    squared_errors
        .chunks_exact(columns)
        .map(|row| row.iter().sum::<f32>() / columns as f32)
        .collect()
}

/// Tail probabilities at which a [`TailCurve`] keeps the value its calibration data reached.
/// They stop at [`REFERENCE_TAIL`]: what is rarer than that is measured by how far out it lies.
const TAIL_LEVELS: [f64; 7] = [0.5, 0.2, 0.1, 0.05, 0.02, 0.01, REFERENCE_TAIL];
/// −log₁₀ of each of [`TAIL_LEVELS`] (a test checks them): the surprise at each kept value,
/// spelled out because scoring asks for it forty times a row.
const TAIL_SURPRISE: [f32; 7] = {
    use std::f32::consts::LOG10_2;
    [
        LOG10_2,
        1.0 - LOG10_2,
        1.0,
        1.0 + LOG10_2,
        2.0 - LOG10_2,
        2.0,
        2.0 + LOG10_2,
    ]
};
/// The rarest share of held-out rows a curve trusts as ordinary. Held-out rows are unlabeled and
/// about 1 % of them may be frauds, 0.1–0.3 % of each kind: a curve that went further would fit
/// its tail to the frauds and tell their successors they are common. A benign but loud behaviour
/// (busy terminals, night batches) is more common than this, and is measured as ordinary.
const REFERENCE_TAIL: f64 = 0.005;
/// Surprise is capped here, so one absurd value stays finite; the other features still order
/// rows that reach it.
const MAX_SURPRISE: f32 = 1_000.0;
/// Only surprise beyond a feature's 10 % tail counts as evidence: the 90 % of ordinary values
/// below it would otherwise add up to noise over twenty features.
pub const EVIDENCE_FLOOR: f32 = 1.0;

/// How unusual a value is against the values it took on held-out data: its "surprise". Up to
/// the [`REFERENCE_TAIL`], −log₁₀ of the share of held-out values at least as large (interpolated
/// between kept levels). Beyond it, one more unit of surprise per `decade` further out: the
/// spread of the values between the 5 % and the 0.5 % tail, but at least `unit` (one standard
/// deviation² for an error), so a value far beyond a feature that is almost always quiet keeps
/// its full magnitude, and one beyond a feature that is often loud is discounted by how loud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailCurve {
    /// The values at [`TAIL_LEVELS`], non-decreasing.
    pub values: Vec<f32>,
    /// How far beyond the last value one more unit of surprise lies.
    pub decade: f32,
}

impl TailCurve {
    /// The curve of `values` (reordered in place); `unit` is the smallest decade.
    pub fn fit(values: &mut [f32], unit: f32) -> TailCurve {
        if values.is_empty() {
            return TailCurve {
                values: vec![0.0; TAIL_LEVELS.len()],
                decade: unit,
            };
        }
        values.sort_by(f32::total_cmp);
        let n = values.len();
        let at_tail = |p: f64| values[(((1.0 - p) * n as f64).ceil() as usize).clamp(1, n) - 1];
        let kept: Vec<f32> = TAIL_LEVELS.iter().map(|&p| at_tail(p)).collect();
        let decade = (at_tail(REFERENCE_TAIL) - at_tail(REFERENCE_TAIL * 10.0)).max(unit);
        TailCurve {
            values: kept,
            decade,
        }
    }

    /// The surprise of `value`: 0 at 0 and below.
    pub fn surprise(&self, value: f32) -> f32 {
        let levels = &TAIL_SURPRISE;
        let values = &self.values;
        if value.is_nan() || value <= 0.0 {
            return 0.0;
        }
        if value <= values[0] {
            return levels[0] * value / values[0].max(f32::MIN_POSITIVE);
        }
        let last = values.len() - 1;
        if value > values[last] {
            return (levels[last] + (value - values[last]) / self.decade).min(MAX_SURPRISE);
        }
        // The last kept value below `value` and the first at or above it: a run of equal kept
        // values (a feature that is mostly one value) is crossed at its rarest level.
        let below = values.iter().rposition(|&v| v < value).unwrap_or(0);
        let above = below + 1;
        let (v0, v1) = (values[below], values[above]);
        let t = if v1 > v0 {
            (value - v0) / (v1 - v0)
        } else {
            1.0
        };
        levels[below] + t * (levels[above] - levels[below])
    }
}

/// The detectors a calibrated model combines. Each looks at a row in its own way, and each is
/// judged only against what it said about held-out rows of this deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// The autoencoder's mean squared error over all features: large where a row's features do
    /// not fit together as they usually do, dominated by whichever feature is furthest out.
    Autoencoder,
    /// The autoencoder's error on each feature as a surprise against that feature's own
    /// held-out errors, summed: one heavy-tailed but ordinary feature (a busy counter's pace)
    /// weighs what its rarity here warrants, not what its raw scale happens to be.
    Reconstruction,
    /// How far each feature's value lies from its median, as a surprise against the same
    /// distance on the training and held-out rows, the rarest feature counting (a steady
    /// amount's change among them): what is rare *in this data*, which the autoencoder can miss
    /// by reconstructing it from a redundant feature.
    Rarity,
    /// A small autoencoder on the payment alone (amount, hour, weekday, place), the prototype's
    /// idea: strong where frauds are extreme single payments.
    PerRow,
}

impl Detector {
    pub const ALL: [Detector; 4] = [
        Detector::Autoencoder,
        Detector::Reconstruction,
        Detector::Rarity,
        Detector::PerRow,
    ];

    /// The combination used when no labels say which detectors this deployment needs.
    pub const DEFAULT: [Detector; 2] = [Detector::Reconstruction, Detector::Rarity];

    /// The name reports and the model page use.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Autoencoder => "autoencoder",
            Detector::Reconstruction => "reconstruction",
            Detector::Rarity => "rarity",
            Detector::PerRow => "per-row",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Each detector's raw output for one row, by [`Detector`] order (`per_row` is NaN when the
/// model has no per-row network).
pub type DetectorTotals = [f32; 4];

/// The per-feature half of a [`Calibration`]: each feature's reconstruction error and value
/// against the held-out errors and training values of this deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureCalibration {
    /// Per feature: its squared reconstruction error.
    pub errors: Vec<TailCurve>,
    /// Per feature: its median (standardised).
    pub medians: Vec<f32>,
    /// Per feature: how far above its median the value lies.
    pub above: Vec<TailCurve>,
    /// Per feature: how far below its median the value lies.
    pub below: Vec<TailCurve>,
    /// A steady amount's change ([`crate::features::steady_change`]) on the training rows, which
    /// the rarity detector judges beside the features (`None`: a model from before it).
    #[serde(default)]
    pub steady: Option<TailCurve>,
}

impl FeatureCalibration {
    /// Calibrates values on `values`, (standardised) rows of what is ordinary here (train
    /// passes the rows the network was trained on and the held-out rows after them), and errors
    /// on held-out rows' squared errors (errors on the training rows are optimistic). All
    /// row-major `rows × columns`; `trained_steady` the training rows' steady-amount changes.
    pub fn fit(
        values: &[f32],
        held_out_errors: &[f32],
        columns: usize,
        trained_steady: &[f32],
    ) -> FeatureCalibration {
        let mut column_values = Vec::with_capacity(values.len() / columns.max(1));
        let mut curve_of = |data: &[f32], column: usize, map: &dyn Fn(f32) -> f32| {
            column_values.clear();
            column_values.extend(data.iter().skip(column).step_by(columns).map(|&v| map(v)));
            TailCurve::fit(&mut column_values, 1.0)
        };
        let errors = (0..columns)
            .map(|column| curve_of(held_out_errors, column, &|v| v))
            .collect();
        let medians: Vec<f32> = (0..columns)
            .map(|column| {
                let mut sorted: Vec<f32> = values
                    .iter()
                    .skip(column)
                    .step_by(columns)
                    .copied()
                    .collect();
                sorted.sort_by(f32::total_cmp);
                sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
            })
            .collect();
        let above = (0..columns)
            .map(|column| curve_of(values, column, &|v| (v - medians[column]).max(0.0)))
            .collect();
        let below = (0..columns)
            .map(|column| curve_of(values, column, &|v| (medians[column] - v).max(0.0)))
            .collect();
        FeatureCalibration {
            errors,
            medians,
            above,
            below,
            steady: Some(TailCurve::fit(&mut trained_steady.to_vec(), 1.0)),
        }
    }

    /// How surprising a steady amount's change is here, beyond [`EVIDENCE_FLOOR`] (0 for a
    /// payment that changes none, or a model without the curve).
    pub fn steady_surprise(&self, steady_change: f32) -> f32 {
        self.steady.as_ref().map_or(0.0, |curve| {
            (curve.surprise(steady_change) - EVIDENCE_FLOOR).max(0.0)
        })
    }

    /// The feature-based detectors' totals for one row (per-row left NaN); `evidence` receives
    /// each feature's evidence (its reconstruction and rarity surprises beyond
    /// [`EVIDENCE_FLOOR`], added), which the reasons rank. A steady amount's change counts
    /// for rarity like one more feature.
    fn row(
        &self,
        values: &[f32],
        errors: &[f32],
        steady_change: f32,
        evidence: &mut [f32],
    ) -> DetectorTotals {
        let mut totals = [0.0, 0.0, self.steady_surprise(steady_change), f32::NAN];
        let beyond = |s: f32| (s - EVIDENCE_FLOOR).max(0.0);
        for (column, slot) in evidence.iter_mut().enumerate() {
            let error = beyond(self.errors[column].surprise(errors[column]));
            let offset = values[column] - self.medians[column];
            let rarity = beyond(if offset >= 0.0 {
                self.above[column].surprise(offset)
            } else {
                self.below[column].surprise(-offset)
            });
            totals[Detector::Autoencoder.slot()] += errors[column] / errors.len() as f32;
            totals[Detector::Reconstruction.slot()] += error;
            let most_rare = &mut totals[Detector::Rarity.slot()];
            *most_rare = most_rare.max(rarity);
            *slot = error + rarity;
        }
        totals
    }
}

/// One detector's held-out scores, which put its output on the common scale of surprise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorCurve {
    pub detector: Detector,
    pub curve: TailCurve,
}

/// How a calibrated model turns a row into a score: the detectors' outputs, each as a surprise
/// against its own held-out outputs, and the largest surprise among the `combination`'s
/// detectors (so the alert budget goes to whichever is most confident about a row; ties are
/// broken by the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub features: FeatureCalibration,
    pub detectors: Vec<DetectorCurve>,
    pub combination: Vec<Detector>,
    /// Why this combination: "chosen on N labeled held-out frauds" or "default".
    pub chosen_by: String,
}

impl Calibration {
    /// Every detector's raw totals for a batch (standardised values and squared errors, row-major;
    /// `per_row` the per-row network's scores when the model has one; `steady` each row's
    /// steady-amount change).
    pub fn totals(
        features: &FeatureCalibration,
        standardised: &[f32],
        squared_errors: &[f32],
        per_row: Option<&[f32]>,
        steady: &[f32],
    ) -> Vec<DetectorTotals> {
        let columns = features.errors.len();
        let mut evidence = vec![0.0; columns];
        standardised
            .chunks_exact(columns)
            .zip(squared_errors.chunks_exact(columns))
            .enumerate()
            .map(|(index, (values, errors))| {
                let mut totals = features.row(values, errors, steady[index], &mut evidence);
                totals[Detector::PerRow.slot()] = per_row.map_or(f32::NAN, |scores| scores[index]);
                totals
            })
            .collect()
    }

    /// The detector curves of held-out rows' totals (the per-row detector only if present).
    pub fn detector_curves(held_out: &[DetectorTotals]) -> Vec<DetectorCurve> {
        Detector::ALL
            .into_iter()
            .filter(|detector| held_out.iter().all(|t| !t[detector.slot()].is_nan()))
            .map(|detector| {
                let mut values: Vec<f32> = held_out.iter().map(|t| t[detector.slot()]).collect();
                DetectorCurve {
                    detector,
                    curve: TailCurve::fit(&mut values, 1.0),
                }
            })
            .collect()
    }

    /// The score of one row's totals under `combination`.
    pub fn combine(&self, totals: &DetectorTotals, combination: &[Detector]) -> f32 {
        let (mut best, mut sum) = (0.0f32, 0.0f32);
        for entry in &self.detectors {
            let surprise = entry.curve.surprise(totals[entry.detector.slot()]);
            if combination.contains(&entry.detector) {
                best = best.max(surprise);
                sum += surprise;
            }
        }
        best + 1e-3 * sum
    }

    /// Scores a batch, turning the squared errors into per-feature evidence in place (what the
    /// reasons rank).
    pub fn score(
        &self,
        standardised: &[f32],
        squared_errors: &mut [f32],
        per_row: Option<&[f32]>,
        steady: &[f32],
    ) -> Vec<f32> {
        let columns = self.features.errors.len();
        let mut evidence = vec![0.0; columns];
        standardised
            .chunks_exact(columns)
            .zip(squared_errors.chunks_exact_mut(columns))
            .enumerate()
            .map(|(index, (values, errors))| {
                let mut totals = self
                    .features
                    .row(values, errors, steady[index], &mut evidence);
                totals[Detector::PerRow.slot()] = per_row.map_or(f32::NAN, |scores| scores[index]);
                errors.copy_from_slice(&evidence);
                self.combine(&totals, &self.combination)
            })
            .collect()
    }
}

/// Scores a batch as a model does: with its calibration, the calibrated score (and the errors
/// become per-feature evidence, for the reasons); without, the mean squared error (models
/// trained before calibration existed).
pub fn score_errors(
    calibration: Option<&Calibration>,
    standardised: &[f32],
    squared_errors: &mut [f32],
    per_row: Option<&[f32]>,
    steady: &[f32],
    columns: usize,
) -> Vec<f32> {
    match calibration {
        Some(calibration) => calibration.score(standardised, squared_errors, per_row, steady),
        None => row_scores(squared_errors, columns),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizer_centres_and_scales_and_survives_constant_columns() {
        let data = [1.0, 5.0, 3.0, 5.0, 5.0, 5.0];
        let normalizer = Normalizer::fit(&data, 2);
        assert_eq!(normalizer.mean, vec![3.0, 5.0]);
        assert_eq!(normalizer.std[1], 1.0, "constant column gets unit scale");
        let mut copy = data;
        normalizer.apply(&mut copy);
        assert!((copy[0] + copy[2] + copy[4]).abs() < 1e-6);
        assert!(copy.iter().all(|v| v.is_finite()));
        let clipped = normalizer.clip_to_support(&[100.0, -100.0]);
        assert_eq!(clipped, vec![normalizer.upper[0], normalizer.lower[1]]);
    }

    #[test]
    fn rare_extremes_do_not_inflate_the_scale_they_are_measured_against() {
        // A count that is 0 or 1 in ordinary rows, and 30–40 in 0.05 % of them (a fraud pattern
        // present in the unlabeled training window).
        let mut data: Vec<f32> = (0..20_000).map(|i| f32::from(i % 10 == 0)).collect();
        for i in 0..10 {
            data[i * 997] = 30.0 + i as f32;
        }
        let normalizer = Normalizer::fit(&data, 1);
        let flag_std = (0.1f32 * 0.9).sqrt();
        assert!(
            (normalizer.std[0] - flag_std).abs() < 0.02,
            "scale {} should be the ordinary rows' {flag_std}",
            normalizer.std[0]
        );
        let mut next_fraud = [30.0f32];
        normalizer.apply(&mut next_fraud);
        assert_eq!(next_fraud[0], Z_CLIP, "the next burst stands out fully");
    }

    #[test]
    fn a_rare_flag_keeps_its_raw_spread() {
        // Set in 0.05 % of rows: winsorising would make it constant and the flag invisible.
        let data: Vec<f32> = (0..20_000).map(|i| f32::from(i % 2000 == 0)).collect();
        let normalizer = Normalizer::fit(&data, 1);
        assert!(normalizer.std[0] < 0.05 && normalizer.std[0] > 0.01);
        let mut set = [1.0f32];
        normalizer.apply(&mut set);
        assert!(
            set[0] > 15.0,
            "a set flag is far outside the ordinary range: {}",
            set[0]
        );
    }

    /// A deterministic stand-in for held-out values: `count` evenly spread quantiles of an
    /// exponential distribution with mean `mean`.
    fn exponential(count: usize, mean: f32) -> Vec<f32> {
        (0..count)
            .map(|i| -mean * (1.0 - (i as f32 + 0.5) / count as f32).ln())
            .collect()
    }

    #[test]
    fn the_spelled_out_surprise_levels_are_the_tail_levels() {
        for (p, surprise) in TAIL_LEVELS.iter().zip(TAIL_SURPRISE) {
            assert!(((-p.log10()) as f32 - surprise).abs() < 1e-5);
        }
    }

    #[test]
    fn surprise_is_the_tail_share_up_to_the_reference_and_keeps_growing_beyond() {
        let mut values = exponential(100_000, 1.0);
        let curve = TailCurve::fit(&mut values, 0.01);
        // P(V ≥ ln 100) = 1 %: two decades.
        assert!((curve.surprise(100f32.ln()) - 2.0).abs() < 0.05);
        assert!((curve.surprise(10f32.ln()) - 1.0).abs() < 0.05);
        let mut previous = 0.0;
        for step in 0..200 {
            let surprise = curve.surprise(step as f32 * 0.1);
            assert!(surprise >= previous, "monotone at {step}");
            previous = surprise;
        }
        // Beyond the reference: a decade per ln 10 further out, as the exponential tail has.
        let far = curve.surprise(1000f32.ln() + 10f32.ln());
        assert!((far - 4.0).abs() < 0.2, "{far}");
        assert_eq!(curve.surprise(-1.0), 0.0);
        assert_eq!(curve.surprise(f32::NAN), 0.0);
    }

    #[test]
    fn a_loud_but_common_feature_is_discounted_and_a_quiet_one_keeps_its_magnitude() {
        // Feature 0: 1.5 % of ordinary rows are loud (a busy counter's pace) at 100 units.
        // Feature 1: always quiet.
        let rows = 20_000;
        let mut errors = vec![0.01f32; rows * 2];
        for row in 0..rows * 15 / 1000 {
            errors[row * 67 % rows * 2] = 100.0;
        }
        let loud = TailCurve::fit(
            &mut errors.iter().step_by(2).copied().collect::<Vec<_>>(),
            1.0,
        );
        let quiet = TailCurve::fit(
            &mut errors
                .iter()
                .skip(1)
                .step_by(2)
                .copied()
                .collect::<Vec<_>>(),
            1.0,
        );
        assert!(loud.surprise(100.0) < 2.5, "{}", loud.surprise(100.0));
        assert!(quiet.surprise(25.0) > 20.0, "{}", quiet.surprise(25.0));
    }

    fn calibration_of(trained: &[f32], held_out_errors: &[f32], columns: usize) -> Calibration {
        let steady = vec![0.0; trained.len() / columns];
        let features = FeatureCalibration::fit(trained, held_out_errors, columns, &steady);
        let totals = Calibration::totals(&features, trained, held_out_errors, None, &steady);
        Calibration {
            detectors: Calibration::detector_curves(&totals),
            features,
            combination: Detector::DEFAULT.to_vec(),
            chosen_by: "test".into(),
        }
    }

    #[test]
    fn the_score_ranks_a_rare_value_above_ordinary_loudness_and_explains_it() {
        let columns = 2;
        let rows = 10_000;
        // Column 0 varies widely; column 1 is almost always 0.
        let mut trained = Vec::with_capacity(rows * columns);
        for (i, value) in exponential(rows, 1.0).into_iter().enumerate() {
            trained.push(value);
            trained.push(if i % 500 == 0 { 1.0 } else { 0.0 });
        }
        let errors: Vec<f32> = trained.iter().map(|v| v * 0.1).collect();
        let calibration = calibration_of(&trained, &errors, columns);
        assert!(
            calibration
                .detectors
                .iter()
                .all(|c| c.detector != Detector::PerRow)
        );
        let candidates = [
            [3.0f32, 0.0], // column 0 at its 5 % tail: ordinary
            [0.5, 8.0],    // column 1 far beyond anything seen
            [0.5, 0.0],    // as ordinary as it gets
        ];
        let values: Vec<f32> = candidates.concat();
        let mut evidence: Vec<f32> = values.iter().map(|v| v * 0.1).collect();
        let scores = calibration.score(&values, &mut evidence, None, &[0.0; 3]);
        assert!(scores[1] > scores[0] && scores[0] > scores[2], "{scores:?}");
        assert!(
            evidence[3] > evidence[2],
            "the rare feature explains the rare row"
        );
        assert_eq!(evidence[4..], [0.0, 0.0], "an ordinary row has no evidence");
    }

    /// A steady amount's change (a pension paid the same every month, then another amount)
    /// is judged by the rarity detector like one more feature, against how often the training
    /// rows changed one: a rare change stands far above a common one, and it is no feature's
    /// evidence.
    #[test]
    fn a_steady_amounts_rare_change_counts_for_rarity() {
        let columns = 2;
        let rows = 10_000;
        let trained: Vec<f32> = exponential(rows * columns, 1.0);
        let errors: Vec<f32> = trained.iter().map(|v| v * 0.1).collect();
        // One training row in a hundred changes a steady amount at 0.5 decades below one in
        // ten; the rest change none.
        let steady: Vec<f32> = (0..rows)
            .map(|i| if i % 100 == 0 { 0.5 } else { 0.0 })
            .collect();
        let features = FeatureCalibration::fit(&trained, &errors, columns, &steady);
        let totals = Calibration::totals(&features, &trained, &errors, None, &steady);
        let calibration = Calibration {
            detectors: Calibration::detector_curves(&totals),
            features,
            combination: vec![Detector::Rarity],
            chosen_by: "test".into(),
        };
        let values = [0.5f32, 0.5, 0.5, 0.5, 0.5, 0.5];
        let mut evidence: Vec<f32> = values.iter().map(|v| v * 0.1).collect();
        // None; as common as in training; three decades below one in ten.
        let scores = calibration.score(&values, &mut evidence, None, &[0.0, 0.5, 3.0]);
        assert!(scores[2] > scores[1] + 1.0, "{scores:?}");
        assert!(scores[1] > scores[0], "{scores:?}");
        assert!(calibration.features.steady_surprise(3.0) > 0.0);
        assert_eq!(calibration.features.steady_surprise(0.0), 0.0);
        assert_eq!(evidence[4..], evidence[0..2], "no feature's evidence moved");
    }
}
