//! The burn autoencoder, its CPU device, and loading and saving its weights: the only crate that
//! links burn besides `train`'s training loop. Linked by `train` and `monitor` alone, so
//! "the dashboard never scores" is checked by the compiler (the dashboard cannot name
//! [`Autoencoder`]) and the programs that never score do not compile burn.
//!
//! Everything about a model that is plain data (its config, normalisation, threshold, metrics)
//! lives in `aegis_core::artifacts` and `aegis_core::model`, readable without burn.
//!
//! # Layout
//! - [`Autoencoder`]: the network.
//! - [`device`]: the burn device for a [`BackendKind`].
//! - [`LoadedModel`], [`load`], [`save`]: the current model in `modeling/`.

use std::fs;
use std::path::{Path, PathBuf};

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;

use aegis_core::artifacts::{self, BatchScores, ModelConfig};
use aegis_core::error::{Error, Result};
use aegis_core::features::Features;
use aegis_core::model::{
    AutoencoderShape, BackendKind, Detector, Normalizer, row_scores, score_errors,
};

pub use burn::prelude::Device;

/// A dense autoencoder with a narrow bottleneck: it learns to reconstruct ordinary payments, so
/// a payment it reconstructs badly is unlike the ones it learned from.
#[derive(Module, Debug)]
pub struct Autoencoder {
    encoder_hidden: Linear,
    encoder_inner: Linear,
    bottleneck: Linear,
    decoder_inner: Linear,
    decoder_hidden: Linear,
    output: Linear,
    activation: Relu,
}

impl Autoencoder {
    /// A freshly initialised network (weights drawn from the device's seeded RNG).
    pub fn new(shape: AutoencoderShape, device: &Device) -> Self {
        let linear = |from: usize, to: usize| LinearConfig::new(from, to).init(device);
        Self {
            encoder_hidden: linear(shape.input, shape.hidden),
            encoder_inner: linear(shape.hidden, shape.inner),
            bottleneck: linear(shape.inner, shape.bottleneck),
            decoder_inner: linear(shape.bottleneck, shape.inner),
            decoder_hidden: linear(shape.inner, shape.hidden),
            output: linear(shape.hidden, shape.input),
            activation: Relu::new(),
        }
    }

    /// Reconstructs a batch of standardised feature rows.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let x = self.activation.forward(self.encoder_hidden.forward(input));
        let x = self.activation.forward(self.encoder_inner.forward(x));
        let x = self.bottleneck.forward(x);
        let x = self.activation.forward(self.decoder_inner.forward(x));
        let x = self.activation.forward(self.decoder_hidden.forward(x));
        self.output.forward(x)
    }

    /// Per-feature squared errors of reconstructing `target` rows from `input` rows (both
    /// standardised, row-major `rows × input`; the input clipped to the ordinary range).
    pub fn squared_errors(
        &self,
        input: &[f32],
        target: &[f32],
        columns: usize,
        device: &Device,
    ) -> Vec<f32> {
        let rows = input.len() / columns;
        if rows == 0 {
            return Vec::new();
        }
        let input =
            Tensor::<2>::from_data(TensorData::new(input.to_vec(), [rows, columns]), device);
        let target =
            Tensor::<2>::from_data(TensorData::new(target.to_vec(), [rows, columns]), device);
        let errors = (self.forward(input) - target).square();
        errors
            .into_data()
            .try_into_vec::<f32>()
            .expect("autoencoder output is f32")
    }
}

/// The inference device of a backend.
pub fn device(backend: BackendKind) -> Result<Device> {
    match backend {
        BackendKind::Flex => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        BackendKind::Ndarray => Ok(Device::ndarray()),
        #[cfg(not(feature = "ndarray"))]
        BackendKind::Ndarray => Err(Error::Invalid(
            "this build has no ndarray backend: rebuild with `--features aegis-model/ndarray`"
                .to_string(),
        )),
    }
}

/// A model ready to score.
#[derive(Debug)]
pub struct LoadedModel {
    pub config: ModelConfig,
    pub autoencoder: Autoencoder,
    /// The per-row detector's network, when the model has one.
    pub per_row: Option<Autoencoder>,
    pub device: Device,
}

/// Mean squared errors of a network on raw rows, normalised and clipped as in training.
pub fn mean_squared_errors(
    network: &Autoencoder,
    normalizer: &Normalizer,
    raw: &[f32],
    columns: usize,
    device: &Device,
) -> Vec<f32> {
    let mut data = raw.to_vec();
    normalizer.apply(&mut data);
    let input = normalizer.clip_to_support(&data);
    row_scores(
        &network.squared_errors(&input, &data, columns, device),
        columns,
    )
}

impl LoadedModel {
    /// What a row's steady-amount change added to its score's rarity detector, in the units of
    /// the per-feature evidence (0 when the score does not combine rarity).
    pub fn steady_surprise(&self, features: &Features) -> f32 {
        self.config
            .calibration
            .as_ref()
            .filter(|c| c.combination.contains(&Detector::Rarity))
            .map_or(0.0, |c| c.features.steady_surprise(features.steady_change))
    }

    /// Scores raw feature rows (normalised here with the model's own statistics).
    pub fn score(&self, features: &[Features]) -> BatchScores {
        let columns = self.config.shape.input;
        let mut data: Vec<f32> = features.iter().flat_map(|f| f.values).collect();
        self.config.normalization.apply(&mut data);
        let input = self.config.normalization.clip_to_support(&data);
        let mut evidence = self
            .autoencoder
            .squared_errors(&input, &data, columns, &self.device);
        // The per-row network runs only when the score combines it.
        let combined = self
            .config
            .calibration
            .as_ref()
            .is_some_and(|c| c.combination.contains(&Detector::PerRow));
        let per_row = self
            .per_row
            .as_ref()
            .zip(self.config.per_row.as_ref())
            .filter(|_| combined)
            .map(|(network, model)| {
                let raw: Vec<f32> = features.iter().flat_map(|f| f.per_row).collect();
                mean_squared_errors(
                    network,
                    &model.normalization,
                    &raw,
                    model.shape.input,
                    &self.device,
                )
            });
        let steady: Vec<f32> = features.iter().map(|f| f.steady_change).collect();
        BatchScores {
            scores: score_errors(
                self.config.calibration.as_ref(),
                &data,
                &mut evidence,
                per_row.as_deref(),
                &steady,
                columns,
            ),
            evidence,
            columns,
        }
    }
}

/// Loads the current model, refusing a missing, corrupt or mismatched one (the checks are
/// [`artifacts::check_usable`]'s, shared with programs that only need to know).
pub fn load(dir: &Path, backend: BackendKind) -> Result<LoadedModel> {
    let config = artifacts::check_usable(dir)?;
    let device = device(backend)?;
    let network = |shape: AutoencoderShape, file: &str| {
        let weights = dir.join(file);
        Autoencoder::new(shape, &device)
            .try_load_file(&weights)
            .map_err(|error| Error::ModelCorrupt {
                dir: dir.to_path_buf(),
                detail: format!("{}: {error}", weights.display()),
            })
    };
    let autoencoder = network(config.shape, &config.weights_file)?;
    let per_row = config
        .per_row
        .as_ref()
        .map(|model| network(model.shape, &model.weights_file))
        .transpose()?;
    Ok(LoadedModel {
        config,
        autoencoder,
        per_row,
        device,
    })
}

/// Saves a trained model: its weights (immutable, named by the config; the per-row detector's
/// too when the config names one), then [`artifacts::publish`] makes it current.
pub fn save(
    dir: &Path,
    config: &ModelConfig,
    autoencoder: Autoencoder,
    per_row: Option<Autoencoder>,
    metrics: &artifacts::Metrics,
) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // Held until the config is written: another train's publication would prune these
    // weights as belonging to no model.
    let _publishing = artifacts::publish_lock(dir)?;
    save_weights(dir, &config.weights_file, autoencoder)?;
    if let (Some(model), Some(network)) = (&config.per_row, per_row) {
        save_weights(dir, &model.weights_file, network)?;
    }
    artifacts::publish(dir, config, metrics)
}

/// Writes one network's weights to `dir/file` through a temporary file and a rename.
fn save_weights(dir: &Path, file: &str, network: Autoencoder) -> Result<()> {
    let weights = dir.join(file);
    let temp_weights = dir.join(format!(".{file}.tmp"));
    network.save_file(&temp_weights).map_err(|error| {
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
    // On disk before the config can name it: a power cut must not leave a current config
    // naming an empty file.
    fs::File::open(&written)
        .and_then(|file| file.sync_all())
        .map_err(|e| Error::io(&written, e))?;
    if let Err(error) = fs::rename(&written, &weights) {
        let _ = fs::remove_file(&written);
        return Err(Error::io(&weights, error));
    }
    artifacts::sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoencoder_reconstructs_a_batch_of_the_right_shape() {
        let device = Device::flex();
        device.seed(1);
        let shape = AutoencoderShape::default();
        let model = Autoencoder::new(shape, &device);
        let rows = vec![0.5f32; shape.input * 3];
        let errors = model.squared_errors(&rows, &rows, shape.input, &device);
        assert_eq!(errors.len(), rows.len());
        assert_eq!(row_scores(&errors, shape.input).len(), 3);
    }
}
