//! Model artifacts in `modeling/`: written atomically by train, read by monitor and dashboard.
//! This module is the plain-data half (no burn): the config, the metrics, the usability checks
//! and the atomic publication. The weights are loaded and saved by the `aegis-model` crate.
//!
//! Layout of the directory:
//! - `model-<version>.bpk`: the autoencoder's weights (burnpack), immutable once written;
//! - `metrics.json`: the evaluation of the current model;
//! - `model_config.json`: the current model — version, feature set, normalisation, threshold,
//!   training window — naming its weights file. It is written last, by rename, so a reader sees
//!   either the old model or the new one, never half of one;
//! - `model_config.previous.json` (+ its weights): the model before, kept for rollback.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{FEATURE_NAMES, PER_ROW_COUNT, feature_set_id};
use crate::model::{AutoencoderShape, Calibration, Detector, Normalizer};

pub use crate::metrics::Metrics;

pub const CONFIG_FILE: &str = "model_config.json";
pub const PREVIOUS_CONFIG_FILE: &str = "model_config.previous.json";
pub const METRICS_FILE: &str = "metrics.json";

/// The event-time window a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingWindow {
    /// `--from` as given (None: from the first transaction).
    pub from: Option<String>,
    /// `--until` as given (None: up to the last transaction).
    pub until: Option<String>,
    pub first_event: String,
    pub last_event: String,
}

/// Everything the monitor and dashboard need to know about a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub model_version: String,
    pub created_at: String,
    pub feature_set: String,
    pub feature_names: Vec<String>,
    pub shape: AutoencoderShape,
    pub normalization: Normalizer,
    /// Scores at or above this are anomalies.
    pub threshold: f32,
    /// The alert budget the threshold was calibrated for (fraction of transactions).
    pub alert_rate: f64,
    pub training_window: TrainingWindow,
    pub rows: u64,
    pub epochs: u32,
    pub seed: u64,
    pub backend: String,
    pub normal_only: bool,
    pub weights_file: String,
    /// (quantile, score) pairs of the calibration scores: the score distribution.
    pub score_quantiles: Vec<(f64, f32)>,
    /// Each feature's error judged against its own held-out errors (the score is the summed
    /// evidence). Absent in models trained before it existed, which score by mean squared error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    /// The per-row detector's network, when the calibration has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_row: Option<PerRowModel>,
    /// The supervised stage on auditors' verdicts, when train found enough of them
    /// (`None`: the unsupervised score is final).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<crate::feedback::FeedbackStage>,
    /// Each feature's bins on the held-out rows, in model input order, for the drift view
    /// (`core::drift`; empty in models trained before it existed: the monitor counts nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_bins: Vec<crate::drift::FeatureBins>,
}

/// The per-row detector: a small autoencoder on [`crate::features::per_row_values`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerRowModel {
    pub shape: AutoencoderShape,
    pub normalization: Normalizer,
    pub weights_file: String,
}

/// Scores of a batch: one score per row and the per-feature squared errors behind it.
#[derive(Debug, Clone)]
pub struct BatchScores {
    pub scores: Vec<f32>,
    /// Per-feature evidence behind each score, row-major: calibrated surprise, or the squared
    /// error for a model without calibration. The reasons rank features by it.
    pub evidence: Vec<f32>,
    pub columns: usize,
}

impl BatchScores {
    /// Per-feature evidence of row `row`, in model input order.
    pub fn row_evidence(&self, row: usize) -> &[f32] {
        &self.evidence[row * self.columns..(row + 1) * self.columns]
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see a
/// partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("artifact"),
        std::process::id()
    ));
    let mut file = fs::File::create(&temp).map_err(|e| Error::io(&temp, e))?;
    file.write_all(bytes).map_err(|e| Error::io(&temp, e))?;
    file.sync_all().map_err(|e| Error::io(&temp, e))?;
    fs::rename(&temp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Reads `model_config.json` from `dir`.
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::ModelMissing {
                dir: dir.to_path_buf(),
            });
        }
        Err(error) => return Err(Error::io(path, error)),
    };
    serde_json::from_str(&text).map_err(|error| Error::ModelCorrupt {
        dir: dir.to_path_buf(),
        detail: format!("{CONFIG_FILE}: {error}"),
    })
}

/// Reads `metrics.json` from `dir`: `Ok(None)` when there is none, an error naming the file
/// when it is not the metrics train writes.
pub fn read_metrics(dir: &Path) -> Result<Option<Metrics>> {
    let path = dir.join(METRICS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::io(path, error)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| Error::ModelCorrupt {
            dir: dir.to_path_buf(),
            detail: format!("{METRICS_FILE}: {error}"),
        })
}

/// [`read_metrics`] of the model `config` describes: metrics written for another model (a
/// `train` interrupted between writing the metrics and the config) are refused, naming both,
/// rather than shown as this model's.
pub fn read_metrics_of(dir: &Path, config: &ModelConfig) -> Result<Option<Metrics>> {
    match read_metrics(dir)? {
        Some(metrics) if metrics.model_version != config.model_version => {
            Err(Error::ModelCorrupt {
                dir: dir.to_path_buf(),
                detail: format!(
                    "{METRICS_FILE} is model {}'s, not the current model {}'s (a train stopped between the two files)",
                    metrics.model_version, config.model_version
                ),
            })
        }
        metrics => Ok(metrics),
    }
}

/// Reads the current model's config and checks that this build can score with it: the same
/// feature set, normalisation statistics of the right width, and a weights file that exists
/// and is a plain name inside `dir`. Loading the weights themselves is `aegis-model`'s; this
/// check is for programs that only need to know whether a model is usable (the launcher).
pub fn check_usable(dir: &Path) -> Result<ModelConfig> {
    let config = read_config(dir)?;
    let build_features = feature_set_id();
    let names_match = config
        .feature_names
        .iter()
        .map(String::as_str)
        .eq(FEATURE_NAMES.iter().copied());
    if config.feature_set != build_features
        || !names_match
        || config.shape.input != FEATURE_NAMES.len()
    {
        return Err(Error::FeatureMismatch {
            dir: dir.to_path_buf(),
            model_features: config.feature_set.clone(),
            build_features,
        });
    }
    let corrupt = |detail: String| Error::ModelCorrupt {
        dir: dir.to_path_buf(),
        detail,
    };
    let columns = config.shape.input;
    if !config.normalization.has_width(columns) {
        return Err(corrupt(
            "normalisation statistics do not match the feature count".into(),
        ));
    }
    let mut weights_files = vec![&config.weights_file];
    if let Some(per_row) = &config.per_row {
        if per_row.shape.input != PER_ROW_COUNT || !per_row.normalization.has_width(PER_ROW_COUNT) {
            return Err(corrupt(
                "the per-row detector's shape or statistics do not match its inputs".into(),
            ));
        }
        weights_files.push(&per_row.weights_file);
    }
    if config
        .feedback
        .as_ref()
        .is_some_and(|stage| !stage.matches_this_build())
    {
        return Err(corrupt(
            "the feedback stage was trained by another build: its combination of score and verdict \
             evidence, or the evidence itself, differs from this build's"
                .into(),
        ));
    }
    if let Some(calibration) = &config.calibration {
        let features = &calibration.features;
        if [&features.errors, &features.above, &features.below]
            .iter()
            .any(|curves| curves.len() != columns)
            || features.medians.len() != columns
            || calibration
                .combination
                .iter()
                .any(|d| !calibration.detectors.iter().any(|c| c.detector == *d))
            || (calibration.combination.contains(&Detector::PerRow) && config.per_row.is_none())
        {
            return Err(corrupt(
                "the calibration does not match the features or the detectors it combines".into(),
            ));
        }
    }
    for file in weights_files {
        if file.contains('/') || file.contains('\\') {
            return Err(corrupt(format!(
                "weights file name {file:?} is not a plain file name"
            )));
        }
        let weights = dir.join(file);
        if !weights.exists() {
            return Err(corrupt(format!(
                "weights file {} is missing",
                weights.display()
            )));
        }
    }
    Ok(config)
}

/// Makes a model current once its weights file is in `dir`: writes the metrics, keeps the
/// config it replaces as `model_config.previous.json`, then writes the config (last, by rename,
/// so a reader sees the old model or the new one). Weights other than the current and the
/// previous model's are removed.
pub fn publish(dir: &Path, config: &ModelConfig, metrics: &Metrics) -> Result<()> {
    let previous = read_config(dir).ok();
    write_atomic(
        &dir.join(METRICS_FILE),
        serde_json::to_string_pretty(metrics)
            .expect("metrics serialise")
            .as_bytes(),
    )?;
    if let Some(previous) = &previous {
        write_atomic(
            &dir.join(PREVIOUS_CONFIG_FILE),
            serde_json::to_string_pretty(previous)
                .expect("config serialises")
                .as_bytes(),
        )?;
    }
    write_atomic(
        &dir.join(CONFIG_FILE),
        serde_json::to_string_pretty(config)
            .expect("config serialises")
            .as_bytes(),
    )?;

    // Keep the weights of the current and the previous model only (both networks of each).
    let keep: Vec<&str> = [Some(config), previous.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|model| {
            std::iter::once(model.weights_file.as_str())
                .chain(model.per_row.as_ref().map(|p| p.weights_file.as_str()))
        })
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if (name.starts_with("model-") || name.starts_with("per-row-"))
                && name.ends_with(".bpk")
                && !keep.contains(&name.as_str())
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}
