//! The training window: transactions replayed in event-time order through the shared feature
//! state, with labels kept aside for evaluation only.

use std::collections::HashMap;

use aegis_core::sql::Row;
use anyhow::Context;

use aegis_core::engine::Store;
use aegis_core::features::{FEATURE_COUNT, FeatureState, PER_ROW_COUNT};
use aegis_core::feedback::{Evidence, Finding, LOOK_INPUTS, VerdictBook, look_inputs};
use aegis_core::time::EventTime;

/// One row of the window with everything train needs.
#[derive(Debug, Clone)]
pub struct Example {
    pub transaction_id: i64,
    pub time: EventTime,
    pub is_anomaly: Option<bool>,
    pub fraud_type: Option<String>,
    /// Its latest verdict is a confirmed fraud: never trained on (a confirmation later revised
    /// to a dismissal no longer counts).
    pub confirmed_fraud: bool,
    /// Whether the monitor flagged it (`None`: not scored yet): the alerts auditors saw.
    pub alerted: Option<bool>,
}

/// The window's rows and their features (row-major).
#[derive(Debug, Default)]
pub struct Dataset {
    pub examples: Vec<Example>,
    pub features: Vec<f32>,
    /// The per-row detector's inputs ([`aegis_core::features::per_row_values`]), row-major.
    pub per_row_features: Vec<f32>,
    /// Each row's steady-amount change ([`aegis_core::features::steady_change`]).
    pub steady: Vec<f32>,
    /// Rows that could not be parsed (NULL amount, bad timestamp), skipped.
    pub malformed: usize,
    /// Every verdict in the database.
    pub verdicts: VerdictBook,
    /// Each row's verdict evidence (decided before the row's time), in row order; empty when
    /// the database holds no verdicts.
    pub evidence: Vec<Evidence>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    pub fn has_labels(&self) -> bool {
        self.examples.iter().any(|e| e.is_anomaly.is_some())
    }

    /// Row `index`'s inputs to the feedback stage's look.
    pub fn look(&self, index: usize) -> [f32; LOOK_INPUTS] {
        look_inputs(
            self.row(index),
            &self.per_row_features[index * PER_ROW_COUNT..][..PER_ROW_COUNT],
            self.steady[index],
        )
    }

    pub fn row(&self, index: usize) -> &[f32] {
        &self.features[index * FEATURE_COUNT..(index + 1) * FEATURE_COUNT]
    }
}

/// Replays every transaction before `until` in event-time order; rows from `from` on are the
/// window (earlier ones only warm the history, so the window's first features are not cold).
pub fn load(
    store: &mut Store,
    from: Option<EventTime>,
    until: Option<EventTime>,
) -> anyhow::Result<Dataset> {
    let verdicts = store
        .read(VerdictBook::load)
        .context("reading auditors' verdicts")?;
    // What the monitor decided, for the feedback stage's labels (the alerts nobody reviewed);
    // read only when there are verdicts to learn from.
    let mut scored: HashMap<i64, bool> = HashMap::new();
    if !verdicts.is_empty() {
        let rows: Vec<(i64, String)> = store
            .read(|sql| {
                sql.rows(
                    "SELECT transaction_id, status FROM transactions WHERE status IN ('ANOMALY', 'NORMAL')",
                    &[],
                    |row| Ok((row.at(0)?, row.at(1)?)),
                )
            })
            .context("reading the monitor's decisions")?;
        scored.extend(
            rows.into_iter()
                .map(|(id, status)| (id, status == "ANOMALY")),
        );
    }
    let mut state = FeatureState::new();
    let mut dataset = Dataset::default();
    store
        .replay(until, |stored| {
            let payment = match stored.payment {
                Ok(payment) => payment,
                Err(_) => {
                    dataset.malformed += 1;
                    return Ok(());
                }
            };
            if from.is_some_and(|from| payment.time < from) {
                state.warm(&payment);
                return Ok(());
            }
            if !verdicts.is_empty() {
                dataset.evidence.push(verdicts.evidence(&payment));
            }
            let features = state.observe(&payment);
            dataset.features.extend_from_slice(&features.values);
            dataset
                .per_row_features
                .extend_from_slice(&features.per_row);
            dataset.steady.push(features.steady_change);
            dataset.examples.push(Example {
                transaction_id: stored.transaction_id,
                time: payment.time,
                is_anomaly: stored.is_anomaly,
                fraud_type: stored.fraud_type,
                confirmed_fraud: verdicts.finding_before(stored.transaction_id, EventTime::MAX)
                    == Some(Finding::Confirmed),
                alerted: scored.get(&stored.transaction_id).copied(),
            });
            Ok(())
        })
        .context("reading transactions")?;
    dataset.verdicts = verdicts;
    Ok(dataset)
}

/// Index ranges of a time split: train, calibration (early stopping and threshold), test.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: std::ops::Range<usize>,
    pub calibration: std::ops::Range<usize>,
    pub test: std::ops::Range<usize>,
}

/// Splits rows (in event-time order) 70/10/20 by position: the most recent fifth is held out.
pub fn time_split(rows: usize) -> Split {
    let train_end = rows * 7 / 10;
    let calibration_end = rows * 8 / 10;
    Split {
        train: 0..train_end,
        calibration: train_end..calibration_end,
        test: calibration_end..rows,
    }
}
