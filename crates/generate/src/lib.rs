//! `generate`: creates a realistic `transactions.db` — a synthetic population paid by real
//! schemes on their calendars, with labeled frauds — or imports a real CSV export.
//!
//! # Layout
//! - [`catalogue`]: schemes, state rates and districts, with the figures they are based on.
//! - [`world`]: beneficiaries, accounts and payment agents.
//! - [`payments`]: normal payments on the schemes' calendars.
//! - [`fraud`]: labeled fraud injection.
//! - [`import`]: the `--from-csv` import.
//! - [`card`] and [`messy`]: worlds unlike ours, for judging detection on data whose normal and
//!   whose frauds were not designed next to our features ([`Profile`]).

pub mod card;
pub mod catalogue;
pub mod fraud;
pub mod import;
pub mod messy;
pub mod payments;
pub mod world;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use aegis_core::domain::{FraudType, NewTransaction};
use aegis_core::engine::{BeneficiaryRow, Store, Target};
use aegis_core::time::{DAY, EventTime};
use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::catalogue::{DISTRICTS, STATES};
use crate::payments::{Calendar, Draft, Scheduler, expected_payments_per_year};
use crate::world::{World, district_weights};

/// Which world to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Our welfare world: schemes on their calendars at counters in business hours, with the
    /// nine fraud types of [`fraud`].
    #[default]
    Welfare,
    /// Card payments as the Fraud Detection Handbook simulates them (customers paying at
    /// terminals at all hours; extreme amounts, compromised terminals, compromised customers):
    /// a public design that is not ours ([`card`]).
    Card,
    /// Welfare payments with another normal (night batch credits, family accounts, migrants,
    /// split wages, arrears, busy city counters) and subtler frauds ([`messy`]).
    MessyWelfare,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::Welfare, Profile::Card, Profile::MessyWelfare];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Welfare => "welfare",
            Profile::Card => "card",
            Profile::MessyWelfare => "messy-welfare",
        }
    }

    pub fn parse(name: &str) -> Result<Profile, String> {
        Profile::ALL
            .into_iter()
            .find(|profile| profile.name() == name)
            .ok_or_else(|| format!("unknown profile {name:?}: use welfare, card or messy-welfare"))
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    pub profile: Profile,
    pub rows: usize,
    pub seed: u64,
    /// IST midnight of the first day.
    pub start: EventTime,
    pub days: u32,
    pub fraud_rate: f64,
}

/// A generated data set, in event-time order.
#[derive(Debug)]
pub struct Generated {
    pub world: World,
    pub transactions: Vec<NewTransaction>,
}

/// Generates the population and its payments (deterministic for a seed and profile).
pub fn synthesize(config: &GenerateConfig) -> Generated {
    match config.profile {
        Profile::Welfare => synthesize_welfare(config),
        Profile::Card => card::synthesize(config),
        Profile::MessyWelfare => messy::synthesize(config),
    }
}

fn synthesize_welfare(config: &GenerateConfig) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let start = config.start;
    let end = start + i64::from(config.days) * DAY;
    let fraud_rows = (config.rows as f64 * config.fraud_rate).round() as usize;
    let per_type = fraud_rows / FraudType::ALL.len();
    let added_rows = per_type
        * FraudType::ALL
            .iter()
            .filter(|kind| fraud::adds_rows(**kind))
            .count();
    let normal_target = config.rows - added_rows.min(config.rows);

    let years = f64::from(config.days) / 365.0;
    let expected_people =
        (normal_target as f64 / (expected_payments_per_year() * years)).ceil() as usize;
    let mut world = World::with_agents(&mut rng, expected_people.max(50));
    let calendar = Calendar::new(&mut rng, start, end);
    let weights = district_weights();

    let mut drafts: Vec<Draft> = Vec::with_capacity(config.rows + 1024);
    // New beneficiaries with their ordinary payments, until `drafts` holds `target` rows.
    let add_ordinary =
        |rng: &mut ChaCha8Rng, world: &mut World, drafts: &mut Vec<Draft>, target| {
            let mut person_payments = Vec::new();
            while drafts.len() < target {
                let person = world.add_beneficiary(rng, &weights);
                let scheduler = Scheduler {
                    world,
                    calendar: &calendar,
                    start,
                    end,
                    account_change_probability: 0.005,
                };
                person_payments.clear();
                scheduler.schedule(rng, person, &mut person_payments);
                person_payments.sort_by_key(|draft: &Draft| draft.transaction.time);
                let room = target - drafts.len();
                drafts.extend(person_payments.drain(..).take(room));
            }
        };
    add_ordinary(&mut rng, &mut world, &mut drafts, normal_target);
    let scheduler = Scheduler {
        world: &world,
        calendar: &calendar,
        start,
        end,
        account_change_probability: 0.005,
    };
    let compromises = fraud::inject(&mut rng, &scheduler, &mut drafts, per_type);
    // A small world can leave a fraud type short of its quota (no district has the dozen
    // beneficiaries a collusion needs): more ordinary payments make up the difference.
    let injected = drafts.len();
    add_ordinary(&mut rng, &mut world, &mut drafts, config.rows);
    // Those made at a compromised counter during its compromise are diverted like the rest:
    // a compromise takes every ordinary payment at its counter.
    for draft in &mut drafts[injected..] {
        for compromise in &compromises {
            compromise.divert(draft);
        }
    }
    // The last collusion incident may overshoot its quota by a few rows: drop as many of the
    // last beneficiary's ordinary payments, so --rows is exact either way.
    let mut surplus = drafts.len().saturating_sub(config.rows);
    let mut index = normal_target;
    while surplus > 0 && index > 0 {
        index -= 1;
        if drafts[index].transaction.is_anomaly == Some(false) {
            drafts.remove(index);
            surplus -= 1;
        }
    }

    // Event-time order, so transaction ids follow time as they would in a live system.
    drafts.sort_by_key(|draft| draft.transaction.time);
    let transactions = drafts
        .into_iter()
        .enumerate()
        .map(|(index, draft)| {
            let mut transaction = draft.transaction;
            transaction.transaction_ref = Some(format!(
                "DBT{:06}{:010}",
                config.seed % 1_000_000,
                index + 1
            ));
            transaction
        })
        .collect();
    Generated {
        world,
        transactions,
    }
}

/// Counts for the end-of-run summary.
#[derive(Debug, Default)]
pub struct Summary {
    pub rows: usize,
    pub beneficiaries: usize,
    pub per_scheme: BTreeMap<String, (usize, usize)>,
    pub per_fraud_type: BTreeMap<String, usize>,
}

impl Summary {
    pub fn of(transactions: &[NewTransaction], beneficiaries: usize) -> Summary {
        let mut summary = Summary {
            rows: transactions.len(),
            beneficiaries,
            ..Summary::default()
        };
        for transaction in transactions {
            let entry = summary
                .per_scheme
                .entry(transaction.scheme.clone())
                .or_default();
            entry.0 += 1;
            if transaction.is_anomaly == Some(true) {
                entry.1 += 1;
            }
            if let Some(kind) = &transaction.fraud_type {
                *summary.per_fraud_type.entry(kind.clone()).or_default() += 1;
            }
        }
        summary
    }

    pub fn print(&self) {
        println!("\n{:<22} {:>10} {:>10}", "scheme", "rows", "frauds");
        for (scheme, (rows, frauds)) in &self.per_scheme {
            println!("{scheme:<22} {rows:>10} {frauds:>10}");
        }
        println!("\n{:<22} {:>10}", "fraud type", "rows");
        for (kind, rows) in &self.per_fraud_type {
            println!("{kind:<22} {rows:>10}");
        }
        let frauds: usize = self.per_fraud_type.values().sum();
        println!(
            "\n{} rows, {} beneficiaries, {} labeled frauds ({:.2} %)",
            self.rows,
            self.beneficiaries,
            frauds,
            100.0 * frauds as f64 / self.rows.max(1) as f64
        );
    }
}

/// Shortest window the generator fills.
pub const MIN_DAYS: u32 = 7;

/// Refuses to touch a database that already holds transactions unless `force`; and to
/// replace them while a monitor scores it: the monitor keeps its place (the last id it scored)
/// in memory, so it would never score the new rows, whose ids start again at 1, and would
/// write its old place back.
fn refuse_existing(store: &mut Store, target: &Target, force: bool) -> anyhow::Result<()> {
    let existing = store.transaction_count()?;
    if existing > 0 && !force {
        bail!(
            "{target} already holds {existing} transactions: pass --force to replace them, --append (with --from-csv) to add to them, or --db to write elsewhere"
        );
    }
    if existing > 0 && store.monitor_running(target)? {
        bail!(
            "a monitor is scoring {target}: stop it first (Ctrl-C, or stop `launch`), then replace the data; a running monitor would never score the new rows"
        );
    }
    Ok(())
}

/// [`refuse_existing`]'s check again, under the loader's write lock: payments another writer
/// (a feed, the API) stored between that check and the lock would otherwise be cleared
/// without `--force`.
pub fn still_empty(
    load: &mut dyn aegis_core::engine::Loader,
    target: &dyn std::fmt::Display,
) -> anyhow::Result<()> {
    let existing = load.transaction_count()?;
    if existing > 0 {
        bail!(
            "{target} received {existing} transactions while this run started (a feed or the payments API is writing to it): nothing was changed; pass --force to replace them, --append (with --from-csv) to add to them, or --db to write elsewhere"
        );
    }
    Ok(())
}

/// Opens `target` for writing, with a message naming it.
pub fn open_store(target: &Target) -> anyhow::Result<Store> {
    Ok(target.open()?)
}

/// Writes a generated data set into `target` in one transaction.
pub fn write_generated(
    target: &Target,
    generated: &Generated,
    force: bool,
    progress: bool,
) -> anyhow::Result<()> {
    let mut store = open_store(target)?;
    refuse_existing(&mut store, target, force)?;
    let mut load = store.loader()?;
    if !force {
        still_empty(load.as_mut(), target)?;
    }
    load.clear_data()?;
    load.begin_bulk()?;
    let bar = if progress {
        ProgressBar::new(generated.transactions.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:10} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message("writing");
    let started = Instant::now();
    for chunk in generated.transactions.chunks(50_000) {
        load.insert(chunk)?;
        bar.inc(chunk.len() as u64);
    }
    let inserted = started.elapsed();
    bar.set_message("indexing");
    load.finish()?;
    tracing::debug!(
        insert_s = inserted.as_secs_f64(),
        index_s = (started.elapsed() - inserted).as_secs_f64(),
        "written"
    );
    let registry = generated
        .world
        .beneficiaries
        .iter()
        .map(|person| {
            let district = &DISTRICTS[person.district];
            let schemes: Vec<&str> = person.schemes.iter().map(|s| s.code()).collect();
            Ok(BeneficiaryRow {
                beneficiary_id: person.id.clone(),
                account_id: person.account.clone(),
                agent_id: generated.world.agents[person.agent].id.clone(),
                district: district.name.to_string(),
                state: STATES[district.state].name.to_string(),
                home_latitude: person.home.0,
                home_longitude: person.home.1,
                schemes: serde_json::to_string(&schemes)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    load.insert_beneficiaries(&registry)?;
    load.commit()?;
    bar.finish_and_clear();
    Ok(())
}

/// Command-line configuration of `generate`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub db: Target,
    pub generate: GenerateConfig,
    pub force: bool,
    pub from_csv: Option<PathBuf>,
    /// With `from_csv`: add to the existing transactions, skipping refs already stored.
    pub append: bool,
    pub skip_bad: bool,
    pub progress: bool,
}

impl RunConfig {
    /// A quiet generation of `rows` rows over `days` days from 1 January 2025 into `db`.
    pub fn synthetic(
        db: impl Into<Target>,
        rows: usize,
        seed: u64,
        days: u32,
        fraud_rate: f64,
    ) -> RunConfig {
        RunConfig {
            db: db.into(),
            generate: GenerateConfig {
                profile: Profile::Welfare,
                rows,
                seed,
                start: aegis_core::time::ist_midnight(2025, 1, 1),
                days,
                fraud_rate,
            },
            force: false,
            from_csv: None,
            append: false,
            skip_bad: false,
            progress: false,
        }
    }
}

/// Runs `generate` (or the CSV import) and prints a summary.
pub fn run(config: RunConfig) -> anyhow::Result<()> {
    if let Some(csv_path) = &config.from_csv {
        return run_import(&config, csv_path);
    }
    let generate = &config.generate;
    if generate.rows == 0 {
        bail!("--rows must be at least 1");
    }
    if !(0.0..=0.5).contains(&generate.fraud_rate) {
        bail!(
            "--fraud-rate {} is out of range: use a fraction between 0 and 0.5 (0.01 = 1 %)",
            generate.fraud_rate
        );
    }
    // Nobody is paid on a Sunday and instalments fall due by the week and the month: a
    // window shorter than a week can hold no pay day at all (one Sunday), and generating then
    // adds beneficiaries for ever, none of them with a payment in it.
    if generate.days < MIN_DAYS {
        bail!(
            "--days {} is too short: the generator needs at least {MIN_DAYS} days (a week holds every weekday's pay days)",
            generate.days
        );
    }
    // Check before spending time generating.
    {
        let mut store = open_store(&config.db)?;
        refuse_existing(&mut store, &config.db, config.force)?;
    }
    let started = Instant::now();
    let generated = synthesize(generate);
    let synthesized = started.elapsed();
    write_generated(&config.db, &generated, config.force, config.progress)?;
    tracing::info!(
        rows = generated.transactions.len(),
        synthesize_s = synthesized.as_secs_f64(),
        total_s = started.elapsed().as_secs_f64(),
        db = %config.db,
        "generated"
    );
    Summary::of(&generated.transactions, generated.world.beneficiaries.len()).print();
    println!(
        "written to {} in {:.1} s",
        config.db,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_import(config: &RunConfig, csv_path: &std::path::Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut store = open_store(&config.db)?;
    let mode = if config.append {
        import::ImportMode::Append
    } else {
        refuse_existing(&mut store, &config.db, config.force)?;
        if config.force {
            import::ImportMode::Replace
        } else {
            import::ImportMode::Fresh
        }
    };
    let report = import::import_csv(&mut store, csv_path, config.skip_bad, mode)?;
    if !report.unknown_columns.is_empty() {
        eprintln!(
            "ignored unknown column(s): {}",
            report.unknown_columns.join(", ")
        );
    }
    aegis_core::tabular::report_bad_rows(
        csv_path,
        report.rejected.iter().map(|r| (r.line, r.reason.as_str())),
    );
    if !report.rejected.is_empty() && !config.skip_bad {
        bail!(
            "{} bad row(s) in {}: nothing was imported. Fix them, or pass --skip-bad to import the good rows and write the bad ones to {}",
            report.rejected.len(),
            csv_path.display(),
            import::rejects_path(csv_path).display()
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "imported {} rows into {} in {elapsed:.1} s ({:.0} rows/s)",
        report.imported,
        config.db,
        report.imported as f64 / elapsed.max(1e-9)
    );
    if config.append {
        println!(
            "skipped {} row(s) whose transaction_ref was already stored or repeated in the file",
            report.already_present
        );
        if report.without_ref > 0 {
            println!(
                "{} imported row(s) had no transaction_ref: importing this file again would add them again",
                report.without_ref
            );
        }
    }
    if let Some(path) = &report.rejects_file {
        println!(
            "{} bad row(s) written to {}",
            report.rejected.len(),
            path.display()
        );
    }
    Ok(())
}
