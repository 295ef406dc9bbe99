//! `launch feedback-bench`: the verdict loop measured as a deployment lives it (BENCHMARKS.md,
//! "Auditors teach the detector").
//!
//! 1. Generate `--rows` payments (`--seed`) and hold back the last fifth: the test period.
//! 2. History: an unsupervised model scores the first four fifths (`monitor --once`), and the
//!    simulated auditors review them (`dashboard verdicts simulate`: the top alerts of each
//!    day, an incident at a time, and the follow-ups, decided `--delay-days` later), up to
//!    the cutoff.
//! 3. At the cutoff, `train` retrains twice: with the feedback stage (the default) and with
//!    `--no-feedback`.
//! 4. The test period goes live one event day at a time: its payments come in, the monitor
//!    scores them with the feedback model (seeing every verdict decided before each payment),
//!    and the auditors review whatever became due. A copy of the database gets the same
//!    payments scored by the model without feedback. With `--retrain-days N` the feedback
//!    model is retrained every N event days on everything so far, as a deployment retrains
//!    (the model without feedback is not).
//!    With `--loop-from S` the loop already runs in the history: the unsupervised model
//!    scores only the first share `S` of the rows, a feedback model trained there scores the
//!    rest of the history one event day at a time, retrained every `--retrain-days` (28
//!    without it), and the auditors review its alerts: the verdicts a deployment that has run
//!    the feedback stage for a while has learned from. The test period and its figures are
//!    the same.
//! 5. Per fraud type, the share of the test period's labeled rows the monitor flagged, and
//!    the average precision of its scores, for both, and the share the feedback model's
//!    ranking catches with as many alerts as the model without raised (the two thresholds
//!    spend the live period differently): `feedback.md` in `--dir`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use aegis_core::control;
use aegis_core::metrics::{FeedbackReport, Metrics, Refit};
use anyhow::{Context, bail};
use rusqlite::Connection;

use crate::procs::{self, command};

/// What to measure.
#[derive(Debug, Clone)]
pub struct FeedbackBenchConfig {
    pub dir: PathBuf,
    pub rows: u64,
    pub seed: u64,
    /// `generate --profile`: `welfare` (ours) or a world unlike it (`card`, `messy-welfare`).
    pub profile: String,
    /// `generate --days`, when not the generator's default.
    pub days: Option<u32>,
    pub per_day: usize,
    pub delay_days: i64,
    pub follow_ups: usize,
    /// Retrain the feedback model every this many live event days (`None`: never).
    pub retrain_days: Option<u32>,
    /// Share of the rows after which the history is scored by the feedback model
    /// (`None`: the loop starts at the cutoff).
    pub loop_from: Option<f64>,
    /// Control sample: payments a day (or a share of the day's) the auditors review among those
    /// not flagged, at random.
    pub control: Option<control::Size>,
}

/// Event days between retrains in the history's loop when `--retrain-days` is not given.
const HISTORY_RETRAIN_DAYS: usize = 28;

/// The columns a held-back payment is put back with (its own id: the monitor reads in id order).
const COLUMNS: &str = "transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, \
     scheme, amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at";

fn step(name: &str, args: &[&str], log: &Path) -> anyhow::Result<()> {
    let status = command(name, Some(log))?.args(args).status()?;
    if !status.success() {
        bail!(
            "`{name} {}` failed ({status}); see {}",
            args.join(" "),
            log.display()
        );
    }
    Ok(())
}

fn text(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .context("the work directory's path is not UTF-8")
}

/// Per fraud type (rows, flagged), the alerts and the average precision of a scored test period.
struct Outcome {
    types: BTreeMap<String, (usize, usize)>,
    alerts: usize,
    average_precision: f64,
    /// Every row's score and fraud type (`None`: ordinary), for [`Outcome::caught_in_top`].
    scored: Vec<(f32, Option<String>)>,
}

impl Outcome {
    /// Per fraud type, how many of its rows are among the `alerts` highest scores: what this
    /// ranking would catch with another run's number of alerts (ties broken by arrival).
    fn caught_in_top(&self, alerts: usize) -> BTreeMap<&str, usize> {
        let mut order: Vec<usize> = (0..self.scored.len()).collect();
        order.sort_by(|a, b| self.scored[*b].0.total_cmp(&self.scored[*a].0));
        let mut caught = BTreeMap::new();
        for &index in order.iter().take(alerts) {
            if let Some(kind) = &self.scored[index].1 {
                *caught.entry(kind.as_str()).or_default() += 1;
            }
        }
        caught
    }
}

fn outcome(db: &Path, cutoff: &str) -> anyhow::Result<Outcome> {
    let conn = Connection::open(db)?;
    let mut statement = conn.prepare(
        "SELECT fraud_type, is_anomaly, status, anomaly_score FROM transactions WHERE timestamp >= ?1",
    )?;
    let mut scored: Vec<(f32, Option<String>)> = Vec::new();
    let mut types: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut alerts = 0;
    let rows = statement.query_map([cutoff], |row| {
        Ok((
            row.get::<_, Option<String>>(0)?,
            row.get::<_, Option<i64>>(1)? == Some(1),
            row.get::<_, Option<String>>(2)?,
            row.get::<_, Option<f64>>(3)?,
        ))
    })?;
    for row in rows {
        let (kind, fraud, status, score) = row?;
        let flagged = status.as_deref() == Some("ANOMALY");
        alerts += usize::from(flagged);
        let kind = fraud.then(|| kind.unwrap_or_else(|| "unlabeled".into()));
        if let Some(kind) = &kind {
            let entry = types.entry(kind.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(flagged);
        }
        scored.push((score.unwrap_or(0.0) as f32, kind));
    }
    let scores: Vec<f32> = scored.iter().map(|(score, _)| *score).collect();
    let labels: Vec<bool> = scored.iter().map(|(_, kind)| kind.is_some()).collect();
    Ok(Outcome {
        types,
        alerts,
        average_precision: aegis_core::metrics::average_precision(&scores, &labels),
        scored,
    })
}

pub fn run(config: &FeedbackBenchConfig) -> anyhow::Result<()> {
    if config.rows < 10_000 {
        bail!(
            "--rows {} is too few for a year of reviews: use 10000 or more",
            config.rows
        );
    }
    procs::build_programs()?;
    std::fs::create_dir_all(&config.dir)?;
    let dir = &config.dir;
    let log = dir.join("feedback-bench.log");
    let db = dir.join("feedback.db");
    let copy = dir.join("feedback-without.db");
    for path in [&db, &copy] {
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::remove_file(&file)?;
            }
        }
        let checkpoints = PathBuf::from(format!("{}.checkpoints", path.display()));
        if checkpoints.exists() {
            std::fs::remove_dir_all(&checkpoints)?;
        }
    }
    let models = [
        dir.join("m-history"),
        dir.join("m-feedback"),
        dir.join("m-without"),
    ];
    for model in &models {
        if model.exists() {
            std::fs::remove_dir_all(model)?;
        }
    }
    let [history, with, without] = &models;
    let (db_arg, copy_arg) = (text(&db)?, text(&copy)?);
    let (per_day, delay, follow_ups) = (
        config.per_day.to_string(),
        config.delay_days.to_string(),
        config.follow_ups.to_string(),
    );
    let control = config.control.map(|size| size.to_string());
    let review = |through: &str| -> anyhow::Result<()> {
        let mut args = vec![
            "--db",
            db_arg,
            "verdicts",
            "simulate",
            "--per-day",
            &per_day,
            "--delay-days",
            &delay,
            "--follow-ups",
            &follow_ups,
            "--through",
            through,
        ];
        if let Some(size) = &control {
            args.extend(["--control", size.as_str()]);
        }
        step("dashboard", &args, &log)
    };

    println!(
        "→ generating {} payments ({}, seed {})",
        config.rows, config.profile, config.seed
    );
    let (rows, seed, days) = (
        config.rows.to_string(),
        config.seed.to_string(),
        config.days.map(|days| days.to_string()),
    );
    let mut generate = vec![
        "--db",
        db_arg,
        "--rows",
        &rows,
        "--seed",
        &seed,
        "--profile",
        &config.profile,
        "--quiet",
    ];
    if let Some(days) = &days {
        generate.extend(["--days", days.as_str()]);
    }
    step("generate", &generate, &log)?;
    let conn = Connection::open(&db)?;
    let nth_timestamp = |offset: u64| -> rusqlite::Result<String> {
        conn.query_row(
            "SELECT timestamp FROM transactions ORDER BY timestamp, transaction_id LIMIT 1 OFFSET ?1",
            [offset],
            |row| row.get(0),
        )
    };
    let cutoff = nth_timestamp(config.rows * 8 / 10)?;
    // Where the unsupervised model's history ends: the cutoff, or earlier with `--loop-from`.
    let loop_start = match config.loop_from {
        Some(share) => nth_timestamp((config.rows as f64 * share) as u64)?,
        None => cutoff.clone(),
    };
    conn.execute_batch(&format!(
        "CREATE TABLE held AS SELECT {COLUMNS} FROM transactions WHERE timestamp >= '{loop_start}';
         DELETE FROM transactions WHERE timestamp >= '{loop_start}';"
    ))?;
    println!("→ history before {loop_start}: unsupervised model, monitor, simulated reviews");
    step(
        "train",
        &[
            "--db",
            db_arg,
            "--modeling",
            text(history)?,
            "--no-feedback",
            "--quiet",
        ],
        &log,
    )?;
    step(
        "monitor",
        &["--db", db_arg, "--modeling", text(history)?, "--once"],
        &log,
    )?;
    review(&loop_start)?;
    let train_with = || {
        step(
            "train",
            &["--db", db_arg, "--modeling", text(with)?, "--quiet"],
            &log,
        )
    };
    // One event day live: its payments (up to `until`) in, scored by the feedback model,
    // and the reviews that became due recorded.
    let live_day = |until: &str| -> anyhow::Result<()> {
        conn.execute_batch(&format!(
            "BEGIN;
             INSERT INTO transactions ({COLUMNS}) SELECT {COLUMNS} FROM held WHERE timestamp < '{until}' ORDER BY transaction_id;
             DELETE FROM held WHERE timestamp < '{until}';
             COMMIT;"
        ))?;
        step(
            "monitor",
            &["--db", db_arg, "--modeling", text(with)?, "--once"],
            &log,
        )?;
        review(until)
    };
    // The event days (IST dates as the timestamps write them) of the held rows before `until`.
    let held_days = |until: &str| -> rusqlite::Result<Vec<String>> {
        conn.prepare(
            "SELECT DISTINCT substr(timestamp, 1, 10) FROM held WHERE timestamp < ?1 ORDER BY 1",
        )?
        .query_map([until], |row| row.get(0))?
        .collect()
    };
    let next_day = |day: &str| -> anyhow::Result<String> {
        let start = aegis_core::time::parse_timestamp(&format!("{day} 00:00:00"))?;
        Ok(aegis_core::time::format_ist(start + aegis_core::time::DAY))
    };
    // The history loop's trainings, and how many of them passed the held-out check (the
    // others scored with the unsupervised stage alone, as `train` falls back).
    let (mut history_retrains, mut history_stage_used) = (0, 0);
    if loop_start < cutoff {
        let every = config
            .retrain_days
            .map_or(HISTORY_RETRAIN_DAYS, |days| days as usize);
        let days = held_days(&cutoff)?;
        println!(
            "→ the history from {loop_start} live with the feedback model, {} event days, retrained every {every}",
            days.len()
        );
        for (index, day) in days.iter().enumerate() {
            if index % every == 0 {
                train_with()?;
                history_retrains += 1;
                history_stage_used += usize::from(
                    read_metrics(with)?
                        .feedback
                        .is_some_and(|report| report.used),
                );
            }
            live_day(next_day(day)?.min(cutoff.clone()).as_str())?;
        }
    }
    println!("→ retraining at the cutoff, with and without feedback");
    train_with()?;
    step(
        "train",
        &[
            "--db",
            db_arg,
            "--modeling",
            text(without)?,
            "--no-feedback",
            "--quiet",
        ],
        &log,
    )?;
    conn.execute("VACUUM INTO ?1", [copy_arg])?;
    let at_cutoff = read_metrics(with)?;

    let days = held_days("9999")?;
    println!("→ the test period live, {} event days", days.len());
    let mut retrains = 0;
    for (index, day) in days.iter().enumerate() {
        // As a deployment retrains: on every payment and verdict so far, before the day's
        // payments come in; the monitor scores them with the new model.
        if let Some(every) = config.retrain_days
            && index > 0
            && index % every as usize == 0
        {
            println!("  retraining before {day}");
            train_with()?;
            retrains += 1;
        }
        live_day(&next_day(day)?)?;
    }
    drop(conn);
    let conn = Connection::open(&copy)?;
    conn.execute_batch(&format!(
        "INSERT INTO transactions ({COLUMNS}) SELECT {COLUMNS} FROM held ORDER BY transaction_id;
         DELETE FROM held;"
    ))?;
    drop(conn);
    step(
        "monitor",
        &["--db", copy_arg, "--modeling", text(without)?, "--once"],
        &log,
    )?;

    let with_feedback = outcome(&db, &cutoff)?;
    let without_feedback = outcome(&copy, &cutoff)?;
    let conn = Connection::open(&db)?;
    let (confirmed, dismissed, follow_up): (i64, i64, i64) = conn.query_row(
        "SELECT coalesce(sum(verdict = 'confirmed_fraud'), 0), coalesce(sum(verdict = 'dismissed'), 0), \
         coalesce(sum(note LIKE 'simulated follow-up%'), 0) FROM verdicts",
        [],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let report = at_cutoff.feedback.as_ref();
    let note = report.map_or("no feedback report", |report| report.note.as_str());
    let look = match report.map(|report| report.look_note.as_str()) {
        Some(look) if !look.is_empty() => format!(" The payment's look: {look}."),
        _ => String::new(),
    };
    // The labels a stage was learned again from, in words.
    let refit_labels = |refit: Refit| {
        format!(
            "{} confirmed, {} dismissed, {} unreviewed alerts presumed ordinary",
            refit.confirmed, refit.dismissed, refit.presumed_ordinary
        )
    };
    let refit = match report.and_then(|report| report.refit) {
        Some(refit) => format!(
            " Then learned again from every verdict before the cutoff ({}): the stage the live period is scored with.",
            refit_labels(refit)
        ),
        None => String::new(),
    };
    // With retraining, the last model's stage is the one the evidence check judges.
    let last = read_metrics(with)?;
    let retrained = match (config.retrain_days, last.feedback.as_ref()) {
        (Some(every), Some(report)) if retrains > 0 => format!(
            " Retrained every {every} event days ({}); the last model's stage: {}.{}",
            times(retrains),
            report.note,
            report
                .refit
                .map(|refit| format!(" Learned again from {}.", refit_labels(refit)))
                .unwrap_or_default()
        ),
        _ => String::new(),
    };
    let history_loop = match history_stage_used {
        _ if history_retrains == 0 => String::new(),
        0 => format!(
            " The history from {loop_start} on was scored by a model trained with feedback {}, but its stage never passed the held-out check: the unsupervised stage scored it, and the loop was not running.",
            times(history_retrains)
        ),
        used => format!(
            " The history from {loop_start} on was scored by the feedback model (trained {}, its stage used {}) and its alerts reviewed: the loop was already running.",
            times(history_retrains),
            if used == history_retrains {
                "every time".to_string()
            } else {
                times(used)
            }
        ),
    };
    let control = match config.control {
        None => String::new(),
        Some(size) => format!(
            " and {} of the unflagged payments at random (the control sample)",
            size.describe()
        ),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Test period from {cutoff}: {} payments, {} event days live; {} top alerts a day and {} follow-ups a day per counter{control}, decided {} days later; {confirmed} confirmed and {dismissed} dismissed verdicts in all ({follow_up} follow-ups). Feedback stage at the cutoff: {note}.{look}{refit}{retrained}{history_loop}\n",
        with_feedback.scored.len(),
        days.len(),
        config.per_day,
        config.follow_ups,
        config.delay_days
    );
    // The two thresholds spend the live period differently; the last column compares the
    // rankings alone, with as many alerts as the run without feedback raised.
    let same_alerts = with_feedback.caught_in_top(without_feedback.alerts);
    let _ = writeln!(
        out,
        "| | with feedback | without | with feedback, as many alerts as without |\n|---|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| average precision | {:.3} | {:.3} | |",
        with_feedback.average_precision, without_feedback.average_precision
    );
    let share = |alerts: usize| 100.0 * alerts as f64 / with_feedback.scored.len().max(1) as f64;
    let _ = writeln!(
        out,
        "| alerts | {} ({:.2} %) | {} ({:.2} %) | {} |",
        with_feedback.alerts,
        share(with_feedback.alerts),
        without_feedback.alerts,
        share(without_feedback.alerts),
        without_feedback.alerts
    );
    for (kind, &(rows, caught)) in &with_feedback.types {
        let before = without_feedback
            .types
            .get(kind)
            .copied()
            .unwrap_or((rows, 0));
        let _ = writeln!(
            out,
            "| {kind} ({rows} rows) | {:.3} | {:.3} | {:.3} |",
            caught as f64 / rows.max(1) as f64,
            before.1 as f64 / before.0.max(1) as f64,
            same_alerts.get(kind.as_str()).copied().unwrap_or(0) as f64 / rows.max(1) as f64
        );
    }
    if let Some(size) = config.control {
        control_sample(&mut out, &conn, &cutoff, size)?;
    }
    if let Some(report) = last.feedback.as_ref().filter(|report| report.used) {
        evidence_check(&mut out, &conn, report, with)?;
    }
    println!("\n{out}");
    let report = dir.join("feedback.md");
    std::fs::write(&report, &out)?;
    println!("written to {}", report.display());
    Ok(())
}

/// What the control sample says about the live period, against the ground truth: the share
/// of unflagged payments that are fraud, and the recall an audit team would estimate from its
/// verdicts alone (the Control page's [`aegis_core::control`] estimate), without the truth.
fn control_sample(
    out: &mut String,
    conn: &Connection,
    cutoff: &str,
    size: control::Size,
) -> anyhow::Result<()> {
    let per_day = size.describe();
    let sql = &mut aegis_core::sql::Sqlite(conn);
    // The live days whose reviews were due before the data ended: those with decided draws.
    let mut days = control::days(sql)?;
    days.retain(|day| day.day.as_str() >= &cutoff[..10]);
    let Some(estimate) = control::estimate(&days) else {
        let _ = writeln!(
            out,
            "\nControl sample: no payment of the live period was reviewed at random ({per_day})."
        );
        return Ok(());
    };
    let recall = control::recall(&estimate, &days);
    let (start, end) = (
        format!("{} 00:00:00", estimate.first_day),
        format!("{} 99", estimate.last_day),
    );
    let (unflagged, missed, flagged_frauds, frauds): (i64, i64, i64, i64) = conn.query_row(
        "SELECT coalesce(sum(t.status = 'NORMAL'), 0), \
         coalesce(sum(t.status = 'NORMAL' AND t.is_anomaly = 1), 0), \
         coalesce(sum(t.status = 'ANOMALY' AND t.is_anomaly = 1), 0), \
         coalesce(sum(t.is_anomaly = 1), 0) \
         FROM transactions t WHERE t.timestamp >= ?1 AND t.timestamp < ?2",
        [start.as_str(), end.as_str()],
        |row| <(i64, i64, i64, i64)>::try_from(row),
    )?;
    let (estimated_missed, _, _) = estimate.missed();
    let _ = writeln!(
        out,
        "\nControl sample ({per_day} of the unflagged payments at random, the live days {} to {} whose reviews were due): \
         {} reviewed, {} confirmed fraud, so {:.3} % of the {} unflagged payments are fraud \
         (95 % interval {:.3}–{:.3} %; truly {:.3} % of {unflagged}, {missed} payments). Recall estimated from the verdicts alone \
         ({} alerts confirmed, {} without a final verdict, about {estimated_missed:.0} frauds unflagged): {:.3} \
         (interval {:.3}–{:.3}); truly {:.3} ({flagged_frauds} of {frauds}).",
        estimate.first_day,
        estimate.last_day,
        estimate.decided,
        estimate.confirmed,
        100.0 * estimate.share,
        estimate.population,
        100.0 * estimate.low,
        100.0 * estimate.high,
        100.0 * missed as f64 / unflagged.max(1) as f64,
        recall.alerts_confirmed,
        recall.alerts_open,
        recall.recall,
        recall.low,
        recall.high,
        flagged_frauds as f64 / frauds.max(1) as f64,
    );
    Ok(())
}

/// "once", "2 times": how often something happened, in the report's sentences.
fn times(count: usize) -> String {
    match count {
        1 => "once".into(),
        count => format!("{count} times"),
    }
}

/// The metrics of the current model in `modeling`.
fn read_metrics(modeling: &Path) -> anyhow::Result<Metrics> {
    let config = aegis_core::artifacts::read_config(modeling)?;
    aegis_core::artifacts::read_metrics_of(modeling, &config)?
        .with_context(|| format!("model {} has no metrics", config.model_version))
}

/// The Model page's check of the feedback model's evidence steps against the verdicts on the
/// live period's payments (`aegis_core::evidence_check`): per step, the chance it gives by
/// itself as learned, the live payments that carried it and were reviewed, the share confirmed.
fn evidence_check(
    out: &mut String,
    conn: &Connection,
    report: &FeedbackReport,
    with: &Path,
) -> anyhow::Result<()> {
    let version = aegis_core::artifacts::read_config(with)?.model_version;
    let reviewed =
        aegis_core::evidence_check::reviewed(&mut aegis_core::sql::Sqlite(conn), &version)?;
    let _ = writeln!(
        out,
        "\nThe evidence steps against the verdicts on the live payments ({} reviewed; the Model page's check):\n\n\
         | evidence | chance learned | live payments with it, reviewed | confirmed | |\n|---|---|---|---|---|",
        reviewed.len()
    );
    for step in aegis_core::evidence_check::check(report, &reviewed) {
        let share = step.share().map_or_else(
            || "—".to_string(),
            |share| format!("{} ({share:.2})", step.confirmed),
        );
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {share} | {} |",
            step.name,
            step.chance,
            step.carried,
            if step.short { "**falls short**" } else { "" }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same-alerts column counts each type among the highest scores only, whatever the
    /// run's own threshold flagged.
    #[test]
    fn caught_in_top_counts_each_type_among_the_highest_scores() {
        let row = |score: f32, kind: Option<&str>| (score, kind.map(str::to_string));
        let outcome = Outcome {
            types: BTreeMap::new(),
            alerts: 1,
            average_precision: f64::NAN,
            scored: vec![
                row(0.2, Some("burst")),
                row(3.0, None),
                row(2.0, Some("inflated_amount")),
                row(2.5, Some("burst")),
                row(1.0, Some("inflated_amount")),
            ],
        };
        let top3 = outcome.caught_in_top(3);
        assert_eq!(top3.get("burst"), Some(&1));
        assert_eq!(top3.get("inflated_amount"), Some(&1));
        assert_eq!(outcome.caught_in_top(5).get("burst"), Some(&2));
        assert!(outcome.caught_in_top(1).is_empty());
    }
}
