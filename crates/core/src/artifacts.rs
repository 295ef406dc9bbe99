//! Model artifacts in `modeling/`: written atomically by train, read by monitor and dashboard.
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
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::{FEATURE_NAMES, Features, feature_set_id};
use crate::model::{Autoencoder, AutoencoderShape, BackendKind, Normalizer, row_scores};

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
}

/// A model ready to score.
#[derive(Debug)]
pub struct LoadedModel {
    pub config: ModelConfig,
    pub autoencoder: Autoencoder,
    pub device: Device,
}

/// Scores of a batch: one score per row and the per-feature squared errors behind it.
#[derive(Debug, Clone)]
pub struct BatchScores {
    pub scores: Vec<f32>,
    pub squared_errors: Vec<f32>,
    pub columns: usize,
}

impl BatchScores {
    /// Feature indices of row `row`, largest contribution first.
    pub fn ranked_features(&self, row: usize) -> Vec<usize> {
        let errors = &self.squared_errors[row * self.columns..(row + 1) * self.columns];
        let mut order: Vec<usize> = (0..self.columns).collect();
        order.sort_by(|a, b| errors[*b].total_cmp(&errors[*a]));
        order
    }

    /// Share of row `row`'s error that feature `feature` accounts for.
    pub fn contribution(&self, row: usize, feature: usize) -> f32 {
        let errors = &self.squared_errors[row * self.columns..(row + 1) * self.columns];
        let total: f32 = errors.iter().sum();
        if total > 0.0 {
            errors[feature] / total
        } else {
            0.0
        }
    }
}

impl LoadedModel {
    /// Scores raw feature rows (normalised here with the model's own statistics).
    pub fn score(&self, features: &[Features]) -> BatchScores {
        let columns = self.config.shape.input;
        let mut data: Vec<f32> = features.iter().flat_map(|f| f.values).collect();
        self.config.normalization.apply(&mut data);
        let input = self.config.normalization.clip_to_support(&data);
        let squared_errors = self
            .autoencoder
            .squared_errors(&input, &data, columns, &self.device);
        BatchScores {
            scores: row_scores(&squared_errors, columns),
            squared_errors,
            columns,
        }
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

/// Reads `metrics.json` from `dir`, if there is one.
pub fn read_metrics(dir: &Path) -> Option<serde_json::Value> {
    let text = fs::read_to_string(dir.join(METRICS_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Loads the current model, refusing a missing, corrupt or mismatched one.
pub fn load(dir: &Path, backend: BackendKind) -> Result<LoadedModel> {
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
    let normalization = &config.normalization;
    if [
        &normalization.mean,
        &normalization.std,
        &normalization.lower,
        &normalization.upper,
    ]
    .iter()
    .any(|v| v.len() != columns)
    {
        return Err(corrupt(
            "normalisation statistics do not match the feature count".into(),
        ));
    }
    if config.weights_file.contains('/') || config.weights_file.contains('\\') {
        return Err(corrupt(format!(
            "weights file name {:?} is not a plain file name",
            config.weights_file
        )));
    }
    let device = backend.device().map_err(Error::Invalid)?;
    let weights = dir.join(&config.weights_file);
    if !weights.exists() {
        return Err(corrupt(format!(
            "weights file {} is missing",
            weights.display()
        )));
    }
    let autoencoder = Autoencoder::new(config.shape, &device)
        .try_load_file(&weights)
        .map_err(|error| corrupt(format!("{}: {error}", weights.display())))?;
    Ok(LoadedModel {
        config,
        autoencoder,
        device,
    })
}

/// Saves a trained model: weights, metrics, then the config that makes it current. The config
/// it replaces is kept as `model_config.previous.json`, with its weights; older weights go.
pub fn save(
    dir: &Path,
    config: &ModelConfig,
    autoencoder: Autoencoder,
    metrics: &serde_json::Value,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let weights = dir.join(&config.weights_file);
    let temp_weights = dir.join(format!(".{}.tmp", config.weights_file));
    autoencoder.save_file(&temp_weights).map_err(|error| {
        Error::Invalid(format!(
            "saving weights to {}: {error}",
            temp_weights.display()
        ))
    })?;
    // burn may add its extension; find what it wrote.
    let written = if temp_weights.exists() {
        temp_weights.clone()
    } else {
        let mut with_extension = temp_weights.clone().into_os_string();
        with_extension.push(".bpk");
        PathBuf::from(with_extension)
    };
    fs::rename(&written, &weights).map_err(|e| Error::io(&weights, e))?;

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

    // Keep the weights of the current and the previous model only.
    let keep: Vec<&str> = std::iter::once(config.weights_file.as_str())
        .chain(previous.as_ref().map(|p| p.weights_file.as_str()))
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("model-")
                && name.ends_with(".bpk")
                && !keep.contains(&name.as_str())
            {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}
