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
fn mean_and_std(values: impl Iterator<Item = f32>) -> (f64, f64) {
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

/// Mean of each row's squared errors: the anomaly score.
pub fn row_scores(squared_errors: &[f32], columns: usize) -> Vec<f32> {
    squared_errors
        .chunks_exact(columns)
        .map(|row| row.iter().sum::<f32>() / columns as f32)
        .collect()
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
}
