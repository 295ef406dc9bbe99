//! The robustness suite: detection judged on our own world and on two unlike it, so that a gain
//! on the data our features were designed next to is not taken for a gain.
//!
//! The data sets (generated into the suite's directory unless already there):
//! - `welfare`: our generator, seed 7, 1,000,000 payments over a year (the figures every earlier
//!   report quotes);
//! - `card`: card payments as the Fraud Detection Handbook simulates them (its design, not
//!   ours), 430,000 payments over 45 days, as the handbook's first weeks;
//! - `messy-welfare`: welfare payments with another normal (night bank batches, family
//!   accounts, migrants, split wages, arrears, busy hubs) and subtler frauds, 1,000,000 payments
//!   over 91 days.
//!
//! Each is trained twice with the caller's settings: once letting the held-out rows' labels
//! choose the detectors' combination (what `train` does on a labeled export) and once with the
//! default combination (an export without labels). The report gives, per data set, the AUC, the
//! average precision and the recall of every fraud type at the alert budget for both scores and
//! for every single detector, on the held-out last fifth.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use aegis_core::metrics::Evaluation;
use generate::{GenerateConfig, Profile, RunConfig};

use crate::{TrainConfig, TrainOutcome};

/// One data set of the suite.
struct DataSet {
    name: &'static str,
    profile: Profile,
    rows: usize,
    days: u32,
    seed: u64,
}

const DATA_SETS: [DataSet; 3] = [
    DataSet {
        name: "welfare",
        profile: Profile::Welfare,
        rows: 1_000_000,
        days: 365,
        seed: 7,
    },
    DataSet {
        name: "card",
        profile: Profile::Card,
        rows: 430_000,
        days: 45,
        seed: 1,
    },
    DataSet {
        name: "messy-welfare",
        profile: Profile::MessyWelfare,
        rows: 1_000_000,
        days: 91,
        seed: 3,
    },
];

/// Runs the suite in `dir` with `base`'s training settings, prints the report and writes it to
/// `dir/suite.md`.
pub fn run(dir: &Path, base: &TrainConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut report = String::new();
    writeln!(
        report,
        "# Robustness suite\n\nHeld-out last fifth of each data set, alert budget {:.1} %. \
         \"aegis\" is the score `train` saves when the held-out rows' labels choose the \
         detectors' combination; \"aegis, no labels\" the default combination (reconstruction \
         and rarity) an export without labels gets. The per-row detector is the baseline.",
        base.alert_rate * 100.0
    )?;
    for set in &DATA_SETS {
        let db = dir.join(format!("{}.db", set.name));
        // A run stopped while generating leaves the file with the schema and no rows.
        let generated = db.exists()
            && aegis_core::engine::Target::from(&db)
                .open()?
                .transaction_count()?
                > 0;
        if !generated {
            println!("generating {} ({} rows)…", set.name, set.rows);
            let mut config = RunConfig::synthetic(&db, set.rows, set.seed, set.days, 0.01);
            config.generate = GenerateConfig {
                profile: set.profile,
                ..config.generate
            };
            generate::run(config).with_context(|| format!("generating {}", db.display()))?;
        }
        let mut outcomes = Vec::new();
        for choose_with_labels in [true, false] {
            let modeling = dir.join(format!(
                "{}-{}",
                set.name,
                if choose_with_labels {
                    "modeling"
                } else {
                    "modeling-no-labels"
                }
            ));
            println!(
                "training on {} ({})…",
                set.name,
                if choose_with_labels {
                    "labels choose"
                } else {
                    "default combination"
                }
            );
            let outcome = crate::run(&TrainConfig {
                db: db.clone().into(),
                modeling,
                from: None,
                until: None,
                per_row: true,
                choose_with_labels,
                feedback: true,
                ..base.clone()
            })
            .with_context(|| format!("training on {}", db.display()))?;
            outcomes.push(outcome);
        }
        table(&mut report, set, &outcomes[0], &outcomes[1])?;
    }
    print!("\n{report}");
    let path = dir.join("suite.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("\nwritten to {}", path.display());
    Ok(())
}

/// One data set's table: a row per score, a column per measure and fraud type.
fn table(
    out: &mut String,
    set: &DataSet,
    chosen: &TrainOutcome,
    default: &TrainOutcome,
) -> anyhow::Result<()> {
    let evaluation = chosen
        .evaluation
        .as_ref()
        .context("the generated data set has labels")?;
    let combination = |outcome: &TrainOutcome| {
        outcome
            .config
            .calibration
            .as_ref()
            .map_or_else(String::new, |c| {
                c.combination
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(" + ")
            })
    };
    let types: Vec<&str> = evaluation
        .per_type
        .iter()
        .map(|t| t.fraud_type.as_str())
        .collect();
    writeln!(
        out,
        "\n## {} ({} rows, {} days; held out: {} rows, {} frauds)\n",
        set.name, set.rows, set.days, evaluation.rows, evaluation.positives
    )?;
    write!(out, "| score | ROC-AUC | AP |")?;
    for kind in &types {
        write!(out, " {kind} |")?;
    }
    write!(out, "\n|---|---|---|")?;
    for _ in &types {
        write!(out, "---|")?;
    }
    writeln!(out)?;
    let mut rows: Vec<(String, &Evaluation)> =
        vec![(format!("**aegis** ({})", combination(chosen)), evaluation)];
    if let Some(default_evaluation) = &default.evaluation {
        rows.push((
            format!("aegis, no labels ({})", combination(default)),
            default_evaluation,
        ));
    }
    for single in &chosen.metrics.detectors {
        rows.push((single.name.clone(), &single.evaluation));
    }
    for (name, evaluation) in rows {
        write!(
            out,
            "| {name} | {:.3} | {:.3} |",
            evaluation.roc_auc, evaluation.average_precision
        )?;
        for kind in &types {
            let recall = evaluation
                .per_type
                .iter()
                .find(|t| t.fraud_type == *kind)
                .map_or(f64::NAN, |t| t.recall);
            write!(out, " {recall:.2} |")?;
        }
        writeln!(out)?;
    }
    Ok(())
}
