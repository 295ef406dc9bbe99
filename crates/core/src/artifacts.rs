//! Model artifacts in `modeling/`: written atomically by train, read by monitor and dashboard.
//! This module is the plain-data half (no burn): the config, the metrics, the usability checks
//! and the atomic publication. The weights are loaded and saved by the `aegis-model` crate.
//!
//! Layout of the directory:
//! - `model-<version>.bpk`: the autoencoder's weights (burnpack), immutable once written;
//! - `metrics-<version>.json`: that model's evaluation, immutable once written;
//! - `model_config.json`: the current model — version, feature set, normalisation, threshold,
//!   training window — naming its weights and metrics files. It is written after them, by
//!   rename, so a reader sees either the old model or the new one, never half of one;
//! - `metrics.json`: a copy of the current model's metrics for people and tools, written last
//!   (the programs read the file the config names);
//! - `model_config.previous.json` (+ its weights and metrics): the model before, kept for
//!   rollback (rename it to `model_config.json`).
//!
//! One train at a time publishes: [`publish_lock`] is held from the weights to the config.

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
    /// This model's metrics file ([`metrics_file_name`]); absent in models trained before it
    /// existed, whose metrics are `metrics.json` when its version matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_file: Option<String>,
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

/// The metrics file of model `version`.
pub fn metrics_file_name(version: &str) -> String {
    format!("metrics-{version}.json")
}

/// Holds the directory's publish lock (`.publish.lock`, an OS lock released when the file is
/// dropped, also when the process dies), waiting for another train's publication to end: two
/// trains writing at once pruned each other's new weights, leaving a config that names
/// missing files.
pub fn publish_lock(dir: &Path) -> Result<fs::File> {
    let path = dir.join(".publish.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    Ok(file)
}

/// Makes what was renamed into `dir` survive a power cut (the directory entry, not only the
/// file's content). Best effort where a directory cannot be opened for it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    match fs::File::open(dir) {
        Ok(handle) => handle.sync_all().map_err(|e| Error::io(dir, e)),
        Err(_) => Ok(()),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see a
/// partial file. The content is on disk before the rename; the rename before it returns.
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
    if let Err(error) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, error));
    }
    sync_dir(dir)
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

/// The metrics of the model `config` describes: the file it names, or for a model trained
/// before configs named one, `metrics.json` when it is that model's (metrics written for
/// another model are refused, naming both, rather than shown as this model's).
pub fn read_metrics_of(dir: &Path, config: &ModelConfig) -> Result<Option<Metrics>> {
    let corrupt = |detail: String| Error::ModelCorrupt {
        dir: dir.to_path_buf(),
        detail,
    };
    if let Some(name) = &config.metrics_file {
        if name.contains('/') || name.contains('\\') {
            return Err(corrupt(format!(
                "metrics file name {name:?} is not a plain file name"
            )));
        }
        let path = dir.join(name);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(format!(
                    "{name}, the current model's metrics, is missing: retrain to evaluate it again"
                )));
            }
            Err(error) => return Err(Error::io(path, error)),
        };
        return serde_json::from_str(&text)
            .map(Some)
            .map_err(|error| corrupt(format!("{name}: {error}")));
    }
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
        match fs::metadata(&weights) {
            Err(_) => {
                return Err(corrupt(format!(
                    "weights file {} is missing",
                    weights.display()
                )));
            }
            // What a power cut can leave of a file whose content was not yet on disk.
            Ok(metadata) if metadata.len() == 0 => {
                return Err(corrupt(format!(
                    "weights file {} is empty",
                    weights.display()
                )));
            }
            Ok(_) => {}
        }
    }
    Ok(config)
}

/// Makes a model current once its weights files are in `dir` (the caller holds
/// [`publish_lock`]): writes its metrics file, keeps the config it replaces as
/// `model_config.previous.json`, writes the config (by rename, after everything it names, so a
/// reader sees the old model or the new one), then the `metrics.json` copy. Weights and
/// metrics files of other models than the current and the previous are removed, and so are
/// temporary files a killed train left. A model whose numbers do not read back (a training
/// that diverged into NaN) is refused before anything is written.
pub fn publish(dir: &Path, config: &ModelConfig, metrics: &Metrics) -> Result<()> {
    let metrics_json = serde_json::to_string_pretty(metrics).expect("metrics serialise");
    let config_json = serde_json::to_string_pretty(config).expect("config serialises");
    let reads_back = serde_json::from_str::<Metrics>(&metrics_json)
        .map(drop)
        .and_then(|()| serde_json::from_str::<ModelConfig>(&config_json).map(drop));
    if let Err(error) = reads_back {
        return Err(Error::Invalid(format!(
            "model {} was not written: its numbers do not read back ({error}), which a training \
             that diverged into NaN leaves; the current model stays. Train again with a lower \
             --learning-rate",
            config.model_version
        )));
    }
    let metrics_file = config
        .metrics_file
        .clone()
        .unwrap_or_else(|| metrics_file_name(&config.model_version));
    write_atomic(&dir.join(&metrics_file), metrics_json.as_bytes())?;
    let current = read_config(dir).ok();
    // With the current config unreadable, the previous one stays what it was, and is kept.
    let previous = match &current {
        Some(current) => {
            write_atomic(
                &dir.join(PREVIOUS_CONFIG_FILE),
                serde_json::to_string_pretty(current)
                    .expect("config serialises")
                    .as_bytes(),
            )?;
            Some(current.clone())
        }
        None => fs::read_to_string(dir.join(PREVIOUS_CONFIG_FILE))
            .ok()
            .and_then(|text| serde_json::from_str::<ModelConfig>(&text).ok()),
    };
    write_atomic(&dir.join(CONFIG_FILE), config_json.as_bytes())?;
    write_atomic(&dir.join(METRICS_FILE), metrics_json.as_bytes())?;

    // Keep the files of the current and the previous model only (both networks of each).
    let keep: Vec<String> = [Some(config), previous.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|model| {
            [
                Some(model.weights_file.clone()),
                model.per_row.as_ref().map(|p| p.weights_file.clone()),
                Some(
                    model
                        .metrics_file
                        .clone()
                        .unwrap_or_else(|| metrics_file_name(&model.model_version)),
                ),
            ]
        })
        .flatten()
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let model_file = ((name.starts_with("model-") || name.starts_with("per-row-"))
                && name.ends_with(".bpk"))
                || (name.starts_with("metrics-") && name.ends_with(".json"));
            // Under the publish lock no other train is writing one.
            let left_by_a_killed_train = name.starts_with('.') && name.contains(".tmp");
            if (model_file && !keep.contains(&name)) || left_by_a_killed_train {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(())
}
