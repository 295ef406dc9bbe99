//! `monitor`: scores every new transaction exactly once, with reasons an auditor can read.
//!
//! The monitor follows `transactions` by a durable high-water mark (`monitor_state`): it reads
//! rows above the mark in id order, computes the shared features with its warm history, scores
//! them with the current model, and writes `status`, `anomaly_score`, `reasons`,
//! `model_version` and `scored_at` **in the same SQLite transaction that advances the mark**.
//! Killed at any point, it restarts from the last committed mark with the history rebuilt from
//! the rows below it: every row is scored once, none skipped, none twice. The history is
//! restored from the newest checkpoint of the feature state and only the rows after it are
//! replayed, so a restart costs the same at a million rows as at a hundred million.
//!
//! # Layout
//! - [`lock`]: one monitor per database.
//! - [`checkpoint`]: the feature state saved with its mark, and restored at start.
//!
//! The `reasons` JSON it writes is `aegis_core::reasons::Reasons`, which the dashboard reads.

pub mod checkpoint;
pub mod lock;

pub use checkpoint::CheckpointPolicy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};

use aegis_core::artifacts;
use aegis_core::db;
use aegis_core::domain::Status;
use aegis_core::features::{FeatureState, Features};
use aegis_core::incidents::{self, AlertToLink};
use aegis_core::model::BackendKind;
use aegis_core::reasons::Reasons;
use aegis_core::store::{self, STORED_COLUMNS, StoredTransaction, read_stored};
use aegis_core::time::now_millis;
use aegis_model::LoadedModel;

/// How the monitor runs.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub db: PathBuf,
    pub modeling: PathBuf,
    pub backend: BackendKind,
    /// Score everything unscored, then exit.
    pub once: bool,
    /// Most rows scored in one transaction.
    pub batch_size: usize,
    /// Sleep between polls when there is nothing new.
    pub poll_interval: Duration,
    /// When to checkpoint the feature state.
    pub checkpoints: CheckpointPolicy,
}

/// Totals of a run.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MonitorStats {
    pub scored: u64,
    pub anomalies: u64,
    pub errors: u64,
    pub batches: u64,
    pub reloads: u64,
    /// The mark of the checkpoint the history was restored from at start (None: full replay).
    pub restored_from: Option<i64>,
    /// Rows replayed at start on top of it.
    pub replayed_rows: u64,
    /// Time spent linking anomalies into incidents (inside the scoring transactions).
    pub linking: Duration,
}

/// Reads the committed high-water mark (0 before the first batch).
pub fn high_water_mark(conn: &Connection) -> rusqlite::Result<i64> {
    Ok(store::monitor_mark(conn)?.unwrap_or(0))
}

/// Warms `state` with every row in `(after, upto]`, in id order — the order the monitor scored
/// them in. Returns the rows read.
fn replay(
    conn: &Connection,
    state: &mut FeatureState,
    after: i64,
    upto: i64,
) -> anyhow::Result<u64> {
    let mut statement = conn.prepare(&format!(
        "{STORED_COLUMNS} WHERE transaction_id > ?1 AND transaction_id <= ?2 ORDER BY transaction_id"
    ))?;
    let mut rows = statement.query([after, upto])?;
    let mut read = 0;
    while let Some(row) = rows.next()? {
        read += 1;
        if let Ok(payment) = read_stored(row)?.payment {
            state.warm(&payment);
        }
    }
    Ok(read)
}

/// What identifies the row at `mark` in this database, for checkpoints: its insert time (wall
/// clock, ms) and beneficiary. `None` when there is no such row.
fn anchor(conn: &Connection, mark: i64) -> Option<String> {
    if mark == 0 {
        return Some(String::new());
    }
    conn.query_row(
        "SELECT inserted_at, beneficiary_id FROM transactions WHERE transaction_id = ?1",
        [mark],
        |row| {
            Ok(format!(
                "{}:{}",
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?
            ))
        },
    )
    .ok()
}

/// The feature history at `mark`: the newest usable checkpoint plus the rows after it, or
/// every row from the start when there is none.
fn restore(
    conn: &Connection,
    checkpoints: &checkpoint::Checkpoints,
    mark: i64,
    stats: &mut MonitorStats,
) -> anyhow::Result<FeatureState> {
    let started = Instant::now();
    let (mut state, from, source) = match checkpoints.restore(mark, |at| anchor(conn, at)) {
        Some(checkpoint) => (checkpoint.state, checkpoint.mark, "checkpoint"),
        None => (FeatureState::new(), 0, "full replay"),
    };
    stats.restored_from = (source == "checkpoint").then_some(from);
    let replayed = replay(conn, &mut state, from, mark)?;
    stats.replayed_rows = replayed;
    tracing::info!(
        source,
        checkpoint_mark = from,
        mark,
        replayed_rows = replayed,
        history = state.observed(),
        beneficiaries = state.beneficiary_count(),
        seconds = started.elapsed().as_secs_f64(),
        "history restored; scoring from the high-water mark"
    );
    Ok(state)
}

/// The model plus what is needed to notice a new one.
struct ModelSlot {
    model: LoadedModel,
    modified: Option<SystemTime>,
}

fn config_modified(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join(artifacts::CONFIG_FILE))
        .and_then(|m| m.modified())
        .ok()
}

impl ModelSlot {
    fn load(dir: &Path, backend: BackendKind) -> aegis_core::Result<ModelSlot> {
        let modified = config_modified(dir);
        let model = aegis_model::load(dir, backend)?;
        Ok(ModelSlot { model, modified })
    }

    /// Loads a newer model if train wrote one; a broken new model is logged and the current one
    /// kept, so a bad training run cannot stop scoring.
    fn refresh(&mut self, dir: &Path, backend: BackendKind) -> bool {
        let modified = config_modified(dir);
        if modified == self.modified {
            return false;
        }
        match aegis_model::load(dir, backend) {
            Ok(model) if model.config.model_version != self.model.config.model_version => {
                tracing::info!(
                    from = %self.model.config.model_version,
                    to = %model.config.model_version,
                    "loaded new model"
                );
                self.model = model;
                self.modified = modified;
                true
            }
            Ok(_) => {
                self.modified = modified;
                false
            }
            Err(error) => {
                tracing::error!(%error, "new model artifacts refused; still scoring with the current model");
                self.modified = modified;
                false
            }
        }
    }
}

/// Scores one batch: features in order, one model for the whole batch, written back in one
/// transaction with the new mark. Returns the rows written.
fn score_batch(
    conn: &mut Connection,
    state: &mut FeatureState,
    slot: &ModelSlot,
    rows: &[StoredTransaction],
    stats: &mut MonitorStats,
) -> anyhow::Result<()> {
    let mut features: Vec<Features> = Vec::with_capacity(rows.len());
    let mut scored_rows: Vec<usize> = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        if let Ok(payment) = &row.payment {
            features.push(state.observe(payment));
            scored_rows.push(index);
        }
    }
    let model = &slot.model;
    let scores = model.score(&features);
    let threshold = model.config.threshold;
    let version = &model.config.model_version;
    let scored_at = now_millis();
    let mark = rows.last().map(|r| r.transaction_id).unwrap_or(0);
    let first_id = rows.first().map(|r| r.transaction_id).unwrap_or(0);

    let mut alerts: Vec<AlertToLink<'_>> = Vec::new();
    let transaction = conn.transaction()?;
    {
        let mut update = transaction.prepare_cached(
            "UPDATE transactions SET status = ?1, anomaly_score = ?2, reasons = ?3, model_version = ?4, scored_at = ?5 \
             WHERE transaction_id = ?6",
        )?;
        let mut next_scored = scored_rows.iter().enumerate().peekable();
        for (index, row) in rows.iter().enumerate() {
            match next_scored.peek() {
                Some((position, row_index)) if **row_index == index => {
                    let position = *position;
                    next_scored.next();
                    let score = scores.scores[position];
                    let status = if score >= threshold {
                        Status::Anomaly
                    } else {
                        Status::Normal
                    };
                    let reasons_json = (status == Status::Anomaly).then(|| {
                        Reasons::from_errors(
                            scores.row_evidence(position),
                            &features[position].context,
                        )
                        .to_json()
                    });
                    if status == Status::Anomaly
                        && let Ok(payment) = &row.payment
                    {
                        stats.anomalies += 1;
                        alerts.push(AlertToLink {
                            transaction_id: row.transaction_id,
                            time: payment.time,
                            beneficiary_id: &payment.beneficiary_id,
                            account_id: payment.account_id.as_deref(),
                            agent_id: payment.agent_id.as_deref(),
                            score: f64::from(score),
                            amount_paise: payment.amount_paise,
                        });
                    }
                    update.execute(params![
                        status.as_str(),
                        f64::from(score),
                        reasons_json,
                        version,
                        scored_at,
                        row.transaction_id
                    ])?;
                }
                _ => {
                    let problem = row.payment.as_ref().err().cloned().unwrap_or_default();
                    stats.errors += 1;
                    update.execute(params![
                        Status::Error.as_str(),
                        Option::<f64>::None,
                        Reasons::error(&problem).to_json(),
                        version,
                        scored_at,
                        row.transaction_id
                    ])?;
                }
            }
        }
        // Incidents are linked in the transaction that scores: an alert never exists without
        // its incident, and a restart neither links twice nor skips (core::incidents).
        let linking = Instant::now();
        incidents::link_backlog(&transaction, first_id - 1)?;
        incidents::link(&transaction, &alerts)?;
        stats.linking += linking.elapsed();
        incidents::set_linked_up_to(&transaction, mark)?;
        store::write_monitor_mark(&transaction, mark, version, scored_at)?;
    }
    transaction.commit()?;
    stats.scored += rows.len() as u64;
    stats.batches += 1;
    Ok(())
}

fn is_busy_sqlite(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn is_busy(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<rusqlite::Error>()
            .is_some_and(is_busy_sqlite)
    })
}

/// Runs the monitor until `stop` is set (or, with `once`, until nothing is left to score).
pub fn run(config: &MonitorConfig, stop: Arc<AtomicBool>) -> anyhow::Result<MonitorStats> {
    let _lock = lock::MonitorLock::acquire(&config.db)?;
    let mut conn =
        db::open(&config.db).with_context(|| format!("opening {}", config.db.display()))?;
    let mut slot = ModelSlot::load(&config.modeling, config.backend)?;
    // Anomalies scored before incidents existed (or by another tool) get theirs first.
    let linked = incidents::link_pending(&mut conn)?;
    if linked > 0 {
        tracing::info!(linked, "linked earlier alerts into incidents");
    }
    let mut mark = high_water_mark(&conn)?;
    let started = Instant::now();
    let checkpoints =
        checkpoint::Checkpoints::for_db(&config.db, aegis_core::features::feature_set_id());
    checkpoints.clean_partial();
    let mut stats = MonitorStats::default();
    let mut state = restore(&conn, &checkpoints, mark, &mut stats)?;
    tracing::info!(model = %slot.model.config.model_version, "model loaded");
    let mut writer =
        checkpoint::Writer::new(checkpoints.clone(), config.checkpoints, stats.replayed_rows);

    let mut window_start = Instant::now();
    let mut window_scored = 0u64;
    let mut window_batches = 0u64;
    let select =
        format!("{STORED_COLUMNS} WHERE transaction_id > ?1 ORDER BY transaction_id LIMIT ?2");
    while !stop.load(Ordering::Relaxed) {
        if slot.refresh(&config.modeling, config.backend) {
            stats.reloads += 1;
        }
        let rows: Vec<StoredTransaction> = {
            let mut statement = conn.prepare_cached(&select)?;
            let rows = statement.query_map(params![mark, config.batch_size as i64], read_stored)?;
            match rows.collect::<rusqlite::Result<Vec<_>>>() {
                Ok(rows) => rows,
                Err(error) if is_busy_sqlite(&error) => {
                    std::thread::sleep(config.poll_interval);
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        };
        if rows.is_empty() {
            if config.once {
                break;
            }
            std::thread::sleep(config.poll_interval);
            continue;
        }
        // The feature state must only advance when the batch commits; on a busy failure the
        // history is rebuilt so the retried batch sees exactly what it would have.
        match score_batch(&mut conn, &mut state, &slot, &rows, &mut stats) {
            Ok(()) => {}
            Err(error) if is_busy(&error) => {
                tracing::warn!(
                    "database busy for {:?}; retrying the batch",
                    db::BUSY_TIMEOUT
                );
                state = restore(&conn, &checkpoints, mark, &mut MonitorStats::default())?;
                continue;
            }
            Err(error) => return Err(error),
        }
        mark = rows.last().map(|r| r.transaction_id).unwrap_or(mark);
        writer.scored(rows.len() as u64, &state, mark, || {
            anchor(&conn, mark).unwrap_or_default()
        });
        window_scored += rows.len() as u64;
        window_batches += 1;
        if window_start.elapsed() >= Duration::from_secs(5) {
            let lag_ms: Option<i64> = conn
                .query_row(
                    "SELECT inserted_at FROM transactions WHERE transaction_id = ?1",
                    [mark],
                    |row| row.get(0),
                )
                .optional()?
                .map(|inserted: i64| now_millis() - inserted);
            let newest: i64 = conn.query_row(
                "SELECT coalesce(max(transaction_id), 0) FROM transactions",
                [],
                |row| row.get(0),
            )?;
            let seconds = window_start.elapsed().as_secs_f64();
            tracing::info!(
                throughput_per_s = (window_scored as f64 / seconds).round(),
                mean_batch = window_scored / window_batches.max(1),
                behind_rows = newest - mark,
                last_row_lag_ms = lag_ms,
                scored_total = stats.scored,
                anomalies_total = stats.anomalies,
                "scoring"
            );
            window_start = Instant::now();
            window_scored = 0;
            window_batches = 0;
        }
    }
    writer.finish(&state, mark, || anchor(&conn, mark).unwrap_or_default());
    tracing::info!(
        scored = stats.scored,
        anomalies = stats.anomalies,
        errors = stats.errors,
        seconds = started.elapsed().as_secs_f64(),
        linking_seconds = stats.linking.as_secs_f64(),
        "monitor stopped"
    );
    Ok(stats)
}
