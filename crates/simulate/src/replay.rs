//! `--replay FILE.csv --speed X`: an export (the import format) inserted in event-time order,
//! paced so that X seconds of event time pass per real second.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aegis_core::engine::Store;
use aegis_core::store::PaymentIdentity;
use anyhow::{Context, bail};

use generate::import::read_csv;

use crate::sink::Sink;
use crate::{SimulateConfig, SimulateStats};

/// Replays `path` into the database.
pub fn run(
    store: &mut Store,
    sink: &mut Sink,
    path: &Path,
    config: &SimulateConfig,
    stop: &AtomicBool,
) -> anyhow::Result<SimulateStats> {
    let (rows, rejected) = read_csv(path)?;
    if !rejected.is_empty() {
        for reject in rejected.iter().take(10) {
            eprintln!("{}:{}: {}", path.display(), reject.line, reject.reason);
        }
        bail!(
            "{} bad row(s) in {}: fix them (or import with `generate --from-csv --skip-bad`) before replaying",
            rejected.len(),
            path.display()
        );
    }
    // A ref identifies one payment: rows already stored (a file replayed twice, an export
    // imported earlier) or repeated in the file are skipped, as an appending import does.
    // A ref on a different payment (a corrected amount) is not a repeat: the replay is refused
    // with both payments named, as an appending import refuses that line.
    let before = rows.len();
    let mut seen: std::collections::HashMap<String, PaymentIdentity> = Default::default();
    let mut conflict = None;
    let mut rows = store.read(|sql| {
        let mut keep = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(reference) = &row.transaction_ref else {
                keep.push(row);
                continue;
            };
            let this = PaymentIdentity::of(&row);
            let earlier = match seen.get(reference) {
                Some(first) => Some((first.clone(), "earlier in the file")),
                None => aegis_core::store::payment_of_ref(sql, reference)?
                    .map(|stored| (stored, "already stored")),
            };
            match earlier {
                Some((other, _)) if other == this => {}
                Some((other, where_)) => {
                    conflict.get_or_insert(format!(
                        "transaction_ref {reference:?} is {where_} for a different payment ({}), not {}: give a new payment its own ref",
                        other.describe(),
                        this.describe()
                    ));
                }
                None => {
                    seen.insert(reference.clone(), this);
                    keep.push(row);
                }
            }
        }
        Ok(keep)
    })?;
    if let Some(problem) = conflict {
        anyhow::bail!("{}: {problem}", path.display());
    }
    if rows.len() < before {
        tracing::info!(
            skipped = before - rows.len(),
            "skipping payments whose transaction_ref is already stored or repeated in the file"
        );
    }
    let without_ref = rows
        .iter()
        .filter(|row| row.transaction_ref.is_none())
        .count();
    if without_ref > 0 {
        tracing::warn!(
            without_ref,
            "payments without a transaction_ref cannot be recognised: replaying this file again stores them again"
        );
    }
    // Stable: rows with the same event time keep their order in the file.
    rows.sort_by_key(|row| row.time);
    if let Some(count) = config.count {
        rows.truncate(count as usize);
    }
    let Some(first) = rows.first().map(|row| row.time) else {
        return Ok(SimulateStats::default());
    };
    let speed = if config.speed > 0.0 {
        config.speed
    } else {
        f64::INFINITY
    };
    let started = Instant::now();
    let mut stats = SimulateStats::default();
    let mut next = 0;
    while next < rows.len() {
        if stop.load(Ordering::Relaxed) || config.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let replayed_until = first as f64 + started.elapsed().as_secs_f64() * speed;
        let end = next + rows[next..].partition_point(|row| (row.time as f64) <= replayed_until);
        if end > next {
            let batch = &rows[next..end];
            let sent = sink.send(store, batch, stop).with_context(|| {
                format!(
                    "replaying {}: if another writer stored one of this batch's refs while the \
                     replay ran, replay the file again (refs already stored are skipped); {} \
                     payments were stored",
                    path.display(),
                    stats.inserted
                )
            })?;
            if !sent {
                break;
            }
            stats.inserted += batch.len() as u64;
            stats.frauds += batch
                .iter()
                .filter(|row| row.is_anomaly == Some(true))
                .count() as u64;
            stats.batches += 1;
            next = end;
        } else {
            let wait = (rows[next].time as f64 - replayed_until) / speed;
            std::thread::sleep(
                Duration::from_secs_f64(wait.clamp(0.001, 0.1)).max(config.commit_interval),
            );
        }
    }
    Ok(stats)
}
