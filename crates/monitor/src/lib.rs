//! `monitor`: scores every new transaction exactly once, with reasons an auditor can read.
//!
//! The monitor follows `transactions` by a durable high-water mark (`monitor_state`): it reads
//! rows above the mark in id order, computes the shared features with its warm history, scores
//! them with the current model, and writes `status`, `anomaly_score`, `reasons`,
//! `model_version` and `scored_at` **in the same transaction that advances the mark**.
//! Killed at any point, it restarts from the last committed mark with the history rebuilt from
//! the rows below it: every row is scored once, none skipped, none twice. The history is
//! restored from the newest checkpoint of the feature state and only the rows after it are
//! replayed, so a restart costs the same at a million rows as at a hundred million.
//!
//! # Layout
//! - [`journal`]: the database, once per engine (SQLite or PostgreSQL): the one-scorer lock,
//!   reading above the mark, committing a batch, waiting for new rows.
//! - [`lock`]: one monitor per SQLite database.
//! - [`checkpoint`]: the feature state saved with its mark, and restored at start.
//!
//! The `reasons` JSON it writes is `aegis_core::reasons::Reasons`, which the dashboard reads.

pub mod checkpoint;
pub mod journal;
pub mod lock;

pub use checkpoint::CheckpointPolicy;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aegis_core::artifacts;
use aegis_core::domain::Status;
use aegis_core::drift::FeatureDays;
use aegis_core::engine::Target;
use aegis_core::features::{FeatureState, Features};
use aegis_core::feedback::{Evidence, LOOK_INPUTS, VerdictBook, look_inputs};
use aegis_core::incidents::AlertToLink;
use aegis_core::model::BackendKind;
use aegis_core::reasons::Reasons;
use aegis_core::store::StoredTransaction;
use aegis_core::time::now_millis;
use aegis_model::LoadedModel;

use crate::journal::{Journal, Outcome, ScoredBatch};

/// How the monitor runs.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub db: Target,
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
    /// Where checkpoints go (None: beside an SQLite file, or under `modeling` for a server).
    pub checkpoint_dir: Option<PathBuf>,
}

/// The longest an idle monitor waits before it looks for a new model or a stop.
const IDLE_WAIT: Duration = Duration::from_millis(200);

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
    /// Time spent committing batches: scores, incidents and the mark.
    pub committing: Duration,
}

/// The feature history at `mark`: the newest usable checkpoint plus the rows after it, or
/// every row from the start when there is none.
fn restore(
    journal: &mut Journal,
    checkpoints: &checkpoint::Checkpoints,
    mark: i64,
    stats: &mut MonitorStats,
) -> anyhow::Result<FeatureState> {
    let started = Instant::now();
    let (mut state, from, source) = match checkpoints.restore(mark, |at| journal.anchor(at)) {
        Some(checkpoint) => (checkpoint.state, checkpoint.mark, "checkpoint"),
        None => (FeatureState::new(), 0, "full replay"),
    };
    stats.restored_from = (source == "checkpoint").then_some(from);
    // Rows that cannot be scored are part of no history.
    let replayed = journal.replay(from, mark, &mut |row| {
        if let Ok(payment) = &row.payment {
            state.warm(payment);
        }
    })?;
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

/// A row's inputs to the feedback stage's look.
fn look_of(features: &Features) -> [f32; LOOK_INPUTS] {
    look_inputs(&features.values, &features.per_row, features.steady_change)
}

/// A batch scored and ready to commit, with what it adds to the run's counts.
struct Scored<'a> {
    batch: ScoredBatch<'a>,
    anomalies: u64,
    errors: u64,
}

/// Scores one batch: features in order, one model for the whole batch, advancing `state` past
/// it; the caller commits the result ([`commit_scored`]: in one transaction with the new mark)
/// before it scores anything else.
///
/// With a feedback stage, each payment's score is moved by the verdicts decided before its
/// time that `verdicts` holds (refreshed before every batch, so a verdict recorded now counts
/// for the next batch).
fn score_batch<'a>(
    state: &mut FeatureState,
    slot: &'a ModelSlot,
    verdicts: &VerdictBook,
    rows: &'a [StoredTransaction],
) -> Scored<'a> {
    let mut features: Vec<Features> = Vec::with_capacity(rows.len());
    for row in rows {
        if let Ok(payment) = &row.payment {
            features.push(state.observe(payment));
        }
    }
    let model = &slot.model;
    let mut scores = model.score(&features);
    let stage = model.config.feedback.as_ref();
    // The verdict evidence of each row, and its unsupervised score before the stage raised it.
    let (evidence, unsupervised): (Vec<Evidence>, Vec<f32>) = match stage {
        Some(stage) => {
            let evidence: Vec<Evidence> = rows
                .iter()
                .filter_map(|row| row.payment.as_ref().ok())
                .map(|payment| verdicts.evidence(payment))
                .collect();
            let unsupervised = scores.scores.clone();
            for ((score, evidence), row) in scores.scores.iter_mut().zip(&evidence).zip(&features) {
                *score = stage.adjust(*score, &look_of(row), evidence);
            }
            (evidence, unsupervised)
        }
        None => (Vec::new(), Vec::new()),
    };
    let threshold = model.config.threshold;
    let mut batch = ScoredBatch {
        outcomes: Vec::with_capacity(rows.len()),
        alerts: Vec::new(),
        first_id: rows.first().map_or(0, |r| r.transaction_id),
        mark: rows.last().map_or(0, |r| r.transaction_id),
        model_version: &model.config.model_version,
        scored_at: now_millis(),
        feature_days: FeatureDays::default(),
    };
    let bins = &model.config.feature_bins;
    if !bins.is_empty() {
        for (payment, features) in rows
            .iter()
            .filter_map(|row| row.payment.as_ref().ok())
            .zip(&features)
        {
            batch
                .feature_days
                .count(bins, payment.time, &features.values);
        }
    }
    let mut anomalies = 0;
    let mut errors = 0;
    let mut position = 0;
    for row in rows {
        let outcome = match &row.payment {
            Ok(payment) => {
                let score = scores.scores[position];
                let reasons = (score >= threshold).then(|| {
                    let row = &features[position];
                    let reasons = Reasons::from_errors(scores.row_evidence(position), &row.context)
                        .with_steady_change(
                            model.steady_surprise(row),
                            scores.row_evidence(position),
                            &row.context,
                        );
                    match (stage, evidence.get(position)) {
                        (Some(stage), Some(evidence)) if !evidence.is_empty() => reasons
                            .with_verdicts(
                                &stage.contributions(
                                    unsupervised[position],
                                    &look_of(row),
                                    evidence,
                                ),
                                evidence,
                                score,
                            ),
                        _ => reasons,
                    }
                });
                position += 1;
                let status = match &reasons {
                    Some(reasons) => {
                        anomalies += 1;
                        batch.alerts.push(AlertToLink {
                            transaction_id: row.transaction_id,
                            time: payment.time,
                            beneficiary_id: &payment.beneficiary_id,
                            account_id: payment.account_id.as_deref(),
                            agent_id: payment.agent_id.as_deref(),
                            score: f64::from(score),
                            amount_paise: payment.amount_paise,
                            category: Some(reasons.category.code()),
                        });
                        Status::Anomaly
                    }
                    None => Status::Normal,
                };
                Outcome {
                    transaction_id: row.transaction_id,
                    status: status.as_str(),
                    score: Some(f64::from(score)),
                    reasons: reasons.map(|reasons| reasons.to_json()),
                    timestamp: row.stored_timestamp.clone(),
                }
            }
            Err(problem) => {
                errors += 1;
                Outcome {
                    transaction_id: row.transaction_id,
                    status: Status::Error.as_str(),
                    score: None,
                    reasons: Some(Reasons::error(problem).to_json()),
                    timestamp: row.stored_timestamp.clone(),
                }
            }
        };
        batch.outcomes.push(outcome);
    }
    Scored {
        batch,
        anomalies,
        errors,
    }
}

/// Commits a scored batch: its scores, alerts, feature counts and the new mark, in one
/// transaction.
fn commit_scored(
    journal: &mut Journal,
    scored: &Scored<'_>,
    stats: &mut MonitorStats,
) -> anyhow::Result<()> {
    let committing = Instant::now();
    journal.commit(&scored.batch)?;
    stats.committing += committing.elapsed();
    stats.anomalies += scored.anomalies;
    stats.errors += scored.errors;
    stats.scored += scored.batch.outcomes.len() as u64;
    stats.batches += 1;
    Ok(())
}

/// The first pause before a session starts again, and the longest.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// How long `--once` keeps trying through lost connections and held locks.
const ONCE_GIVES_UP_AFTER: Duration = Duration::from_secs(300);

/// Runs the monitor until `stop` is set (or, with `once`, until nothing is left to score).
///
/// A session that loses its database (PostgreSQL restarted, the network dropped) or meets
/// another writer's lock where it cannot wait (at its start, during a long import) starts
/// again, as a restart would, after a pause that doubles up to 30 s: exactly-once holds
/// across restarts, so nothing is scored twice or skipped. A server that cannot be reached
/// at the very start is an error at once, so that a wrong URL is said, not retried.
pub fn run(config: &MonitorConfig, stop: Arc<AtomicBool>) -> anyhow::Result<MonitorStats> {
    let mut stats = MonitorStats::default();
    let mut connected = false;
    let mut pause = FIRST_PAUSE;
    // A back-fill (`--once`) is a step of something else (a script, a benchmark): after this
    // long failing it gives up, instead of waiting without end for a lock someone left open.
    let mut failing_since: Option<Instant> = None;
    let session = journal::session_name();
    loop {
        let began = Instant::now();
        let error = match run_session(config, &stop, &session, &mut stats, &mut connected) {
            Ok(()) => return Ok(stats),
            Err(error) => error,
        };
        let lost = connected && journal::is_connection_lost(&error);
        if !lost && !journal::is_busy(&error) {
            return Err(error);
        }
        if began.elapsed() > LONGEST_PAUSE * 2 {
            // The session got somewhere: a new run of failures starts here.
            pause = FIRST_PAUSE;
            failing_since = None;
        }
        let since = *failing_since.get_or_insert(began);
        if config.once && since.elapsed() >= ONCE_GIVES_UP_AFTER {
            return Err(error);
        }
        tracing::warn!(
            error = format!("{error:#}"),
            retry_in_s = pause.as_secs_f64(),
            "the database went away or another writer holds it; starting again"
        );
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return Ok(stats);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

/// One session: opens the database (named `session` on a server), restores the history, and
/// scores until `stop` (or, with `once`, until nothing is left), adding to `stats`.
/// `connected` is set once the database was opened.
fn run_session(
    config: &MonitorConfig,
    stop: &AtomicBool,
    session: &str,
    stats: &mut MonitorStats,
    connected: &mut bool,
) -> anyhow::Result<()> {
    let mut journal = Journal::open_as(&config.db, session)?;
    *connected = true;
    let mut slot = ModelSlot::load(&config.modeling, config.backend)?;
    // Anomalies scored before incidents existed (or by another tool) get theirs first.
    let linked = journal.link_pending()?;
    if linked > 0 {
        tracing::info!(linked, "linked earlier alerts into incidents");
    }
    let mut mark = journal.mark()?;
    let started = Instant::now();
    let checkpoints = checkpoint::Checkpoints::new(
        config
            .checkpoint_dir
            .clone()
            .unwrap_or_else(|| Journal::default_checkpoint_dir(&config.db, &config.modeling)),
        aegis_core::features::feature_set_id(),
    );
    checkpoints.clean_partial();
    let mut state = restore(&mut journal, &checkpoints, mark, stats)?;
    tracing::info!(model = %slot.model.config.model_version, db = journal.describe(), "model loaded");
    let mut writer =
        checkpoint::Writer::new(checkpoints.clone(), config.checkpoints, stats.replayed_rows);
    // Auditors' verdicts, read only while the model has a feedback stage (the first read after
    // loading one reads them all).
    let mut verdicts = VerdictBook::new();

    let mut window_start = Instant::now();
    let mut window_scored = 0u64;
    let mut window_batches = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if slot.refresh(&config.modeling, config.backend) {
            stats.reloads += 1;
        }
        let Some(rows) = journal.next_batch(mark, config.batch_size)? else {
            std::thread::sleep(config.poll_interval);
            continue;
        };
        if rows.is_empty() {
            if config.once {
                break;
            }
            // Wakes at once on PostgreSQL's notice; comes back often enough to notice a new
            // model or a stop.
            journal.wait(config.poll_interval, IDLE_WAIT)?;
            continue;
        }
        if slot.model.config.feedback.is_some() {
            let added = journal.refresh_verdicts(&mut verdicts)?;
            if added > 0 {
                tracing::debug!(added, held = verdicts.len(), "verdicts read");
            }
        }
        // The feature state has now moved past the batch, so the batch commits before anything
        // else happens: a commit another writer was in the way of (a long import on SQLite, a
        // deadlock on PostgreSQL) is tried again with the same scores. Rebuilding the history
        // instead held two whole states at once.
        let scored = score_batch(&mut state, &slot, &verdicts, &rows);
        let committing = Instant::now();
        loop {
            match commit_scored(&mut journal, &scored, stats) {
                Ok(()) => break,
                Err(error)
                    if journal::is_busy(&error)
                        && !(config.once && committing.elapsed() >= ONCE_GIVES_UP_AFTER) =>
                {
                    if stop.load(Ordering::Relaxed) {
                        // The state holds a batch that never committed: no checkpoint of it.
                        tracing::info!(
                            mark,
                            "stopped while the database was busy; the batch was not committed"
                        );
                        return Ok(());
                    }
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "another writer was in the way; committing the batch again"
                    );
                    std::thread::sleep(config.poll_interval);
                }
                Err(error) => return Err(error),
            }
        }
        mark = rows.last().map_or(mark, |r| r.transaction_id);
        writer.scored(rows.len() as u64, &state, mark, || journal.anchor(mark));
        window_scored += rows.len() as u64;
        window_batches += 1;
        if window_start.elapsed() >= Duration::from_secs(5) {
            // A progress line is worth nothing next to scoring: a failed read skips it.
            match journal.progress(mark) {
                Ok((inserted, newest)) => {
                    let seconds = window_start.elapsed().as_secs_f64();
                    tracing::info!(
                        throughput_per_s = (window_scored as f64 / seconds).round(),
                        mean_batch = window_scored / window_batches.max(1),
                        behind_ids = newest - mark,
                        last_row_lag_ms = inserted.map(|inserted| now_millis() - inserted),
                        scored_total = stats.scored,
                        anomalies_total = stats.anomalies,
                        "scoring"
                    );
                }
                Err(error) => tracing::debug!(error = format!("{error:#}"), "no progress line"),
            }
            window_start = Instant::now();
            window_scored = 0;
            window_batches = 0;
        }
    }
    writer.finish(&state, mark, || journal.anchor(mark));
    tracing::info!(
        scored = stats.scored,
        anomalies = stats.anomalies,
        errors = stats.errors,
        seconds = started.elapsed().as_secs_f64(),
        commit_seconds = stats.committing.as_secs_f64(),
        "monitor stopped"
    );
    Ok(())
}
