//! `simulate`: a live feed of payments into `transactions.db` (or a PostgreSQL database), paying the population that
//! `generate` registered, on a simulated clock, with every fraud type injected and labeled true
//! by construction — or the replay of a CSV export in event-time order.
//!
//! # Layout
//! - [`clock`]: business-time → event-time with the hour-of-day profile.
//! - [`feed`]: what to insert next (normal payments and fraud incidents).
//! - [`replay`]: `--replay FILE.csv`.
//! - [`sink`]: into the database, or through the payments API (`--via-api`).

pub mod clock;
pub mod feed;
pub mod replay;
pub mod sink;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aegis_core::domain::NewTransaction;
use aegis_core::engine::{Store, Target};
use aegis_core::time::EventTime;
use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

use crate::clock::SimulatedClock;
use crate::feed::Feed;

/// How the feed runs.
#[derive(Debug, Clone)]
pub struct SimulateConfig {
    pub db: Target,
    /// Transactions per real second (Poisson arrivals).
    pub rate: f64,
    /// Simulated seconds per real second.
    pub speed: f64,
    pub fraud_rate: f64,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub seed: u64,
    /// First simulated day (default: the day after the newest transaction).
    pub start: Option<EventTime>,
    pub replay: Option<PathBuf>,
    /// Longest a generated row waits before its batch is committed.
    pub commit_interval: Duration,
    /// Send payments through the dashboard's API instead of writing the database.
    pub api: Option<sink::ApiTarget>,
}

/// Totals of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SimulateStats {
    pub inserted: u64,
    pub frauds: u64,
    pub batches: u64,
}

/// Inserts one batch in one transaction, retrying while another writer holds the lock (each
/// try waits out the busy timeout), so a stop never leaves half a batch. Returns false when
/// `stop` came while the database was busy: the batch was not stored, and Ctrl-C is not kept
/// waiting for an import to commit.
pub fn commit_batch(
    store: &mut Store,
    rows: &[NewTransaction],
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    loop {
        match store.append(rows) {
            Ok(()) => return Ok(true),
            Err(error) if error.is_busy() => {
                if stop.load(Ordering::Relaxed) {
                    tracing::warn!(
                        payments = rows.len(),
                        "stopped while the database was busy: the last batch was not stored"
                    );
                    return Ok(false);
                }
                tracing::warn!("database busy; retrying the batch");
            }
            Err(error) => return Err(error).context("inserting a batch"),
        }
    }
}

/// Runs the live feed (or a replay) until `stop`, `--count` or `--duration`.
pub fn run(config: &SimulateConfig, stop: Arc<AtomicBool>) -> anyhow::Result<SimulateStats> {
    let mut store = config.db.open()?;
    let mut sink = sink::Sink::new(config.api.as_ref(), config.seed);
    if let Some(path) = &config.replay {
        return replay::run(&mut store, &mut sink, path, config, &stop);
    }
    if config.rate <= 0.0 || !config.rate.is_finite() {
        anyhow::bail!("--rate must be a positive number of transactions per second");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let start_day = match config.start {
        Some(start) => start,
        None => Feed::day_after_newest(&mut store)?,
    };
    let mut feed = Feed::from_database(&mut store, &mut rng, config.fraud_rate, start_day)?;
    let clock = SimulatedClock::new(start_day);
    let interarrival = Exp::new(config.rate).context("--rate")?;
    tracing::info!(
        beneficiaries = feed.world.beneficiaries.len(),
        agents = feed.world.agents.len(),
        rate = config.rate,
        speed = config.speed,
        start = %aegis_core::time::format_ist(clock.event_time(0.0)),
        "feeding"
    );

    let started = Instant::now();
    let mut stats = SimulateStats::default();
    let mut next_arrival = interarrival.sample(&mut rng);
    let mut batch: Vec<NewTransaction> = Vec::new();
    let mut last_report = Instant::now();
    let mut warned_future = false;
    let limit_reached = |stats: &SimulateStats, extra: usize| {
        config
            .count
            .is_some_and(|count| stats.inserted + extra as u64 >= count)
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed)
            || config.duration.is_some_and(|d| started.elapsed() >= d)
            || limit_reached(&stats, batch.len());
        let elapsed = started.elapsed().as_secs_f64();
        // Everything due by now, in arrival order.
        while next_arrival <= elapsed && !limit_reached(&stats, batch.len()) && !stopping {
            let now = clock.event_time(next_arrival * config.speed);
            batch.extend(feed.arrival(&mut rng, now));
            next_arrival += interarrival.sample(&mut rng);
        }
        let now = clock.event_time(elapsed * config.speed);
        batch.extend(feed.due(now));
        // A fast feed runs ahead of the calendar (it stamps payments with their scheduled day
        // once it has paid everyone due): past the day after today the payments API refuses
        // them as dated in the future, so a feed through it stops here with the fix. Written
        // directly they are the data's own calendar, as a soak or a long demo makes it; said
        // once, since the dashboard's "now" and default range follow them.
        let latest = aegis_core::time::now() + aegis_core::ingest::FUTURE_SLACK;
        if let Some(ahead) = batch
            .iter()
            .map(|row| row.time)
            .max()
            .filter(|&t| t > latest)
        {
            if sink.is_api() {
                anyhow::bail!(
                    "the feed has reached {}, past today, and the payments API refuses payments \
                     dated in the future: start it again with a lower --rate or --speed, or \
                     with --start at an earlier day ({} payments were stored)",
                    aegis_core::time::format_ist(ahead),
                    stats.inserted
                );
            }
            if !warned_future {
                warned_future = true;
                tracing::warn!(
                    reached = %aegis_core::time::format_ist(ahead),
                    "the feed runs past today (a fast feed pays on the schemes' calendars ahead \
                     of its clock): the dashboard's latest day follows it"
                );
            }
        }
        if let Some(count) = config.count {
            let room = count.saturating_sub(stats.inserted) as usize;
            batch.truncate(room);
        }
        if !batch.is_empty() {
            if !sink.send(&mut store, &batch, &stop)? {
                break;
            }
            stats.inserted += batch.len() as u64;
            stats.frauds += batch.iter().filter(|t| t.is_anomaly == Some(true)).count() as u64;
            stats.batches += 1;
            batch.clear();
        }
        if stopping {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            tracing::info!(
                inserted = stats.inserted,
                frauds = stats.frauds,
                per_s = (stats.inserted as f64 / started.elapsed().as_secs_f64()).round(),
                clock = %aegis_core::time::format_ist(now),
                "feeding"
            );
            last_report = Instant::now();
        }
        // Gather at least a commit interval's worth of arrivals per batch; when the next arrival
        // is further off, wake for it (but at least every 100 ms, to notice a stop).
        let until_next =
            Duration::from_secs_f64((next_arrival - started.elapsed().as_secs_f64()).max(0.0));
        std::thread::sleep(until_next.clamp(
            config.commit_interval,
            Duration::from_millis(100).max(config.commit_interval),
        ));
    }
    Ok(stats)
}
