//! The training loop: Adam on mini-batches of standardised rows, early stopping on the
//! calibration split's reconstruction error.

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use aegis_core::model::{AutoencoderShape, BackendKind, Normalizer, row_scores};
use aegis_model::Autoencoder;

/// Hyper-parameters of one fit.
#[derive(Debug, Clone)]
pub struct FitConfig {
    pub max_epochs: u32,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Epochs without a 0.5 % validation improvement before stopping.
    pub patience: u32,
    pub seed: u64,
    pub backend: BackendKind,
    pub progress: bool,
}

/// A fitted network, its normaliser and how training went.
#[derive(Debug)]
pub struct Fitted {
    pub autoencoder: Autoencoder,
    pub normalizer: Normalizer,
    pub shape: AutoencoderShape,
    pub epochs: u32,
    /// (epoch, train loss, validation loss).
    pub history: Vec<(u32, f64, f64)>,
    pub device: Device,
}

impl Fitted {
    /// Standardised values and per-feature squared errors of raw rows, row-major.
    pub fn errors(&self, raw: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let columns = self.shape.input;
        let mut standardised = raw.to_vec();
        self.normalizer.apply(&mut standardised);
        let mut errors = Vec::with_capacity(raw.len());
        // Chunks bound the memory a million rows take in the backend.
        for chunk in standardised.chunks(65_536 * columns) {
            let input = self.normalizer.clip_to_support(chunk);
            errors.extend(
                self.autoencoder
                    .squared_errors(&input, chunk, columns, &self.device),
            );
        }
        (standardised, errors)
    }

    /// Mean squared errors of raw rows: the network's plain anomaly score.
    pub fn scores(&self, raw: &[f32]) -> Vec<f32> {
        let (_, errors) = self.errors(raw);
        row_scores(&errors, self.shape.input)
    }
}

/// Fits an autoencoder to `train` rows (raw, row-major), validating on `validation` rows.
pub fn fit(
    train: &[f32],
    validation: &[f32],
    shape: AutoencoderShape,
    config: &FitConfig,
) -> anyhow::Result<Fitted> {
    let columns = shape.input;
    let normalizer = Normalizer::fit(train, columns);
    let mut train_data = train.to_vec();
    normalizer.apply(&mut train_data);
    let train_input = normalizer.clip_to_support(&train_data);
    let mut validation_data = validation.to_vec();
    normalizer.apply(&mut validation_data);
    let validation_input = normalizer.clip_to_support(&validation_data);

    let device = aegis_model::device(config.backend)?;
    let train_device = device.clone().autodiff();
    train_device.seed(config.seed);
    device.seed(config.seed);
    let mut model = Autoencoder::new(shape, &train_device);
    let mut optimizer = AdamConfig::new().init();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let rows = train_data.len() / columns;
    let mut order: Vec<usize> = (0..rows).collect();

    let bar = if config.progress {
        ProgressBar::new(u64::from(config.max_epochs))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("epoch {pos}/{len} [{bar:30}] {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );

    let mut best: Option<(f64, Autoencoder)> = None;
    let mut since_best = 0;
    let mut history = Vec::new();
    let mut batch = Vec::with_capacity(config.batch_size * columns);
    let mut target_batch = Vec::with_capacity(config.batch_size * columns);
    for epoch in 1..=config.max_epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut batches = 0u32;
        for indices in order.chunks(config.batch_size) {
            batch.clear();
            target_batch.clear();
            for &index in indices {
                batch.extend_from_slice(&train_input[index * columns..(index + 1) * columns]);
                // The target is clipped too: the network learns the ordinary range only (see
                // `Normalizer`), so it never learns to produce tail values.
                target_batch
                    .extend_from_slice(&train_input[index * columns..(index + 1) * columns]);
            }
            let shape = [indices.len(), columns];
            let input =
                Tensor::<2>::from_data(TensorData::new(batch.clone(), shape), &train_device);
            let target =
                Tensor::<2>::from_data(TensorData::new(target_batch.clone(), shape), &train_device);
            let loss = (model.forward(input) - target).square().mean();
            loss_sum += f64::from(loss.clone().into_scalar::<f32>());
            batches += 1;
            let gradients = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.learning_rate, model, gradients);
        }
        let train_loss = loss_sum / f64::from(batches.max(1));
        let inference = model.valid();
        // Judged as it is trained, against the clipped rows: the held-out rows' few extreme
        // values (frauds, a feature almost always 0) would otherwise add a loss no network can
        // remove, and improvements of 0.5 % of that would never come.
        let validation_errors =
            inference.squared_errors(&validation_input, &validation_input, columns, &device);
        let validation_loss = if validation_errors.is_empty() {
            train_loss
        } else {
            validation_errors.iter().map(|&e| f64::from(e)).sum::<f64>()
                / validation_errors.len() as f64
        };
        // A loss that is not a number compares false with everything: it would become the
        // "best" network and be published over a working model.
        if !train_loss.is_finite() || !validation_loss.is_finite() {
            bar.finish_and_clear();
            anyhow::bail!(
                "training diverged at epoch {epoch} (train loss {train_loss}, validation loss \
                 {validation_loss}): train again with a lower --learning-rate (it was {}); the \
                 current model stays",
                config.learning_rate
            );
        }
        history.push((epoch, train_loss, validation_loss));
        bar.set_message(format!(
            "train loss {train_loss:.4}  validation loss {validation_loss:.4}"
        ));
        bar.inc(1);
        tracing::debug!(epoch, train_loss, validation_loss, "epoch");
        match &best {
            Some((best_loss, _)) if validation_loss > best_loss * 0.995 => {
                since_best += 1;
                if validation_loss < *best_loss {
                    best = Some((validation_loss, inference));
                }
                if since_best >= config.patience {
                    break;
                }
            }
            _ => {
                best = Some((validation_loss, inference));
                since_best = 0;
            }
        }
    }
    bar.finish_and_clear();
    let (_, autoencoder) = best.expect("at least one epoch ran");
    Ok(Fitted {
        autoencoder,
        normalizer,
        shape,
        epochs: history.len() as u32,
        history,
        device,
    })
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    /// Held-out values far outside anything trained on (frauds, a feature almost always 0)
    /// must not decide when training stops: the validation loss is the error on the clipped
    /// rows the network learns to reproduce, on the scale of the training loss.
    #[test]
    fn extreme_held_out_values_do_not_dominate_the_validation_loss() {
        let columns = 4;
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut rows = |count: usize| -> Vec<f32> {
            (0..count)
                .flat_map(|_| {
                    let x: f32 = rng.random();
                    [x, 2.0 * x, -x, x + 0.1 * rng.random::<f32>()]
                })
                .collect()
        };
        let train = rows(2_000);
        let mut validation = rows(500);
        // One held-out row in ten is far out in its last column.
        for row in (0..500).step_by(10) {
            validation[row * columns + 3] = 10_000.0;
        }
        let fitted = fit(
            &train,
            &validation,
            AutoencoderShape {
                input: columns,
                ..AutoencoderShape::default()
            },
            &FitConfig {
                max_epochs: 2,
                batch_size: 256,
                learning_rate: 2e-3,
                patience: 3,
                seed: 1,
                backend: BackendKind::Flex,
                progress: false,
            },
        )
        .unwrap();
        for &(epoch, train_loss, validation_loss) in &fitted.history {
            assert!(
                validation_loss < 5.0 * train_loss.max(0.1),
                "epoch {epoch}: validation {validation_loss} against training {train_loss}"
            );
        }
    }
}
