//! Drift: whether the payments the current model scores still look like the ones it was
//! calibrated on. Per event day of the newest scored rows: the alert rate against the budget,
//! and how far the day's scores have moved from the held-out scores `train` recorded (their
//! quantiles in `metrics.json`), as a population stability index over the bands between those
//! quantiles. A model whose days keep leaving its budget or its score distribution is due for
//! retraining, and the page says so.
//!
//! Each feature's own shift: the monitor counts every scored row's feature values per event day
//! into the bins `train` cut from the held-out rows (`aegis_core::drift`); the page shows, per
//! feature, the same index over the last [`FEATURE_WEEK`] counted days and the ones before, so
//! an auditor sees *what* moved (night bank batches arriving, a scheme's amounts raised), not
//! only that the scores did. A feature's shift alone never calls for retraining (see
//! [`add_features`]).

use aegis_core::drift::{DayCounts, FeatureBins};
use aegis_core::sql::{Row, Sql, Value};
use aegis_core::store::TIMES_ONLY;
use aegis_core::values;

use crate::error::AppResult;
use crate::views::group_digits;

/// Event days shown, counted back from the newest scored payment.
pub const DRIFT_DAYS: i64 = 14;
/// A day with fewer scored payments has no stability index: a few dozen rows move it by chance.
pub const MIN_ROWS_FOR_INDEX: i64 = 200;
/// The usual reading of a population stability index: above 0.25, a shift that calls for a new
/// model (below 0.1 is called stable; between, single days of a stable model land there too:
/// the seed-7 model's own held-out days read 0.05-0.23 over every quantile, so the page flags
/// only the significant level).
pub const SHIFT_SIGNIFICANT: f64 = 0.25;
/// The index is taken over the tail from this held-out level up (the bands below it merged):
/// where alerts come from, and where ordinary day-to-day wobble of small scores does not count.
pub const TAIL_FROM: f64 = 0.9;
/// A day whose alert rate is more than this many times the budget, or less than its inverse,
/// is off budget.
pub const BUDGET_FACTOR: f64 = 2.0;
/// Retraining is due when this many of the last seven days are off budget or shifted.
pub const DAYS_TO_WARN: usize = 3;

/// One event day of the current model's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct DayScores {
    pub date: String,
    pub scored: i64,
    pub alerts: i64,
    /// Per quantile cut, how many of the day's scores are at or above it.
    pub at_or_above: Vec<i64>,
}

/// Per event day of the newest [`DRIFT_DAYS`] with rows scored by `model_version`: the rows,
/// alerts and counts at or above each of `cuts`. Reads only the days' rows: through the
/// timestamp index on SQLite, through the scores' index by model and time on PostgreSQL
/// ([`aegis_core::sql::Engine::scores_table`]).
pub fn day_scores(
    sql: &mut dyn Sql,
    model_version: &str,
    cuts: &[f32],
) -> AppResult<Vec<DayScores>> {
    let scores = sql.engine().scores_table();
    let newest: Option<String> = sql
        .value(
            &format!(
                // Only times: a NULL or stray text hid the model's days.
                "SELECT timestamp FROM {scores} WHERE model_version = ?1 \
                 AND status IN ('NORMAL', 'ANOMALY') AND {TIMES_ONLY} \
                 ORDER BY timestamp DESC LIMIT 1"
            ),
            values![model_version],
        )?
        .flatten();
    // The first of the days shown, counted back from the newest (a text timestamp).
    let Some(first_day) = newest.as_deref().and_then(|newest| {
        let day = chrono::NaiveDate::parse_from_str(newest.get(..10)?, "%Y-%m-%d").ok()?;
        let first = day.checked_sub_days(chrono::Days::new(DRIFT_DAYS as u64 - 1))?;
        Some(first.format("%Y-%m-%d").to_string())
    }) else {
        return Ok(Vec::new());
    };
    let above: String = (0..cuts.len())
        .map(|i| format!(", count(CASE WHEN anomaly_score >= ?{} THEN 1 END)", i + 3))
        .collect();
    let statement = format!(
        "SELECT substr(timestamp, 1, 10) AS day, count(*), \
         count(CASE WHEN status = 'ANOMALY' THEN 1 END){above} FROM {scores} \
         WHERE timestamp >= ?1 AND {TIMES_ONLY} AND model_version = ?2 \
         AND status IN ('NORMAL', 'ANOMALY') GROUP BY day ORDER BY day"
    );
    let mut params: Vec<Value> = vec![first_day.into(), model_version.into()];
    params.extend(cuts.iter().map(|&cut| f64::from(cut).into()));
    Ok(sql.rows(&statement, &params, |row| {
        Ok(DayScores {
            date: row.at(0)?,
            scored: row.at(1)?,
            alerts: row.at(2)?,
            at_or_above: (0..cuts.len())
                .map(|i| row.at(i + 3))
                .collect::<aegis_core::Result<_>>()?,
        })
    })?)
}

/// The population stability index of scores counted at or above `cuts` (the held-out scores'
/// quantiles at `levels`, ascending) against the held-out shares between them. `None` below
/// [`MIN_ROWS_FOR_INDEX`] rows.
pub fn stability_index(levels: &[f64], scored: i64, at_or_above: &[i64]) -> Option<f64> {
    if levels.len() != at_or_above.len() {
        return None;
    }
    // Bands: below the first cut, between each two, at or above the last.
    let mut expected = Vec::with_capacity(levels.len() + 1);
    let mut counts = Vec::with_capacity(levels.len() + 1);
    let mut below_level = 0.0;
    let mut below_count = 0;
    for (&level, &count) in levels.iter().zip(at_or_above) {
        let under = scored - count;
        expected.push(level - below_level);
        counts.push(under - below_count);
        below_level = level;
        below_count = under;
    }
    expected.push(1.0 - below_level);
    counts.push(scored - below_count);
    aegis_core::drift::stability_index(&expected, &counts, MIN_ROWS_FOR_INDEX)
}

/// One day on the Model page.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRow {
    pub date: String,
    pub scored: String,
    pub alerts: String,
    pub alert_rate: String,
    pub stability: String,
    /// What is wrong with the day, in words; empty when nothing is.
    pub note: String,
    pub flagged: bool,
}

/// One feature on the Model page.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureDriftRow {
    pub name: String,
    /// The index of the last [`FEATURE_WEEK`] counted days, pooled.
    pub recent: String,
    /// The same for the days before them (`—` without any).
    pub before: String,
    pub flagged: bool,
    recent_value: f64,
}

/// Days pooled for a feature's index. A week, not a day: features of the calendar (the
/// weekday) take one value all day, so any single day reads as a shift against a held-out
/// period of every weekday (the weekday's index was 6–10 every day of a stable model), and
/// a week also evens out a scheme's instalment days.
pub const FEATURE_WEEK: usize = 7;

/// The drift section: the days, each feature's shift, and a warning when retraining is due.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DriftView {
    pub rows: Vec<DriftRow>,
    pub warning: Option<String>,
    /// Why there is nothing to show, when there is not.
    pub empty: Option<String>,
    /// Features, the most shifted over the last week first.
    pub features: Vec<FeatureDriftRow>,
    /// Why features are not shown, when they are not.
    pub features_empty: Option<String>,
}

/// Adds each feature's shift to `view`: `days` are the monitor's counts per event day (oldest
/// first), `bins` each feature's name and held-out bins in model input order.
pub fn add_features(
    view: &mut DriftView,
    days: &[(String, DayCounts)],
    bins: &[(String, FeatureBins)],
) {
    if view.empty.is_some() {
        return;
    }
    if bins.is_empty() {
        view.features_empty = Some(
            "This model has no held-out bins of its features (trained before they were \
             recorded): retrain to see each feature's shift."
                .to_string(),
        );
        return;
    }
    let counted: Vec<&DayCounts> = days
        .iter()
        .map(|(_, counts)| counts)
        .filter(|counts| {
            counts.len() == bins.len()
                && counts
                    .iter()
                    .zip(bins)
                    .all(|(c, (_, b))| c.len() == b.counts.len())
        })
        .collect();
    let split = counted.len().saturating_sub(FEATURE_WEEK);
    let (earlier, recent) = counted.split_at(split);
    let earlier = &earlier[earlier.len().saturating_sub(FEATURE_WEEK)..];
    // Each feature's counts summed over `days`.
    let pooled = |days: &[&DayCounts], feature: usize| -> Vec<i64> {
        let mut sum = vec![0i64; bins[feature].1.counts.len()];
        for day in days {
            for (s, c) in sum.iter_mut().zip(&day[feature]) {
                *s += c;
            }
        }
        sum
    };
    let index = |days: &[&DayCounts], feature: usize| {
        aegis_core::drift::stability_index(
            &bins[feature].1.shares(),
            &pooled(days, feature),
            MIN_ROWS_FOR_INDEX,
        )
    };
    if (0..bins.len()).all(|feature| index(recent, feature).is_none()) {
        view.features_empty = Some(format!(
            "The monitor has counted fewer than {MIN_ROWS_FOR_INDEX} payments with this model \
             yet (it counts features from the first batch it scores with it on)."
        ));
        return;
    }
    let show = |value: Option<f64>| value.map_or_else(|| "—".to_string(), |v| format!("{v:.3}"));
    let mut rows: Vec<FeatureDriftRow> = bins
        .iter()
        .enumerate()
        .map(|(feature, (name, _))| {
            let recent_value = index(recent, feature);
            FeatureDriftRow {
                name: name.clone(),
                recent: show(recent_value),
                before: show(index(earlier, feature)),
                flagged: recent_value.is_some_and(|v| v > SHIFT_SIGNIFICANT),
                recent_value: recent_value.unwrap_or(0.0),
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.recent_value
            .total_cmp(&a.recent_value)
            .then(a.name.cmp(&b.name))
    });
    // A feature's shift alone does not call for retraining: features move with the schemes'
    // calendar (instalment months, a season's volumes at the counters) while the calibrated
    // score stays put; on the seed-7 million's own last weeks nine features read above 0.25
    // with every day's score index under 0.05. When the scores or the alert rate did move,
    // the features that moved most say why.
    if let Some(warning) = view.warning.take() {
        let moved: Vec<String> = rows
            .iter()
            .filter(|row| row.flagged)
            .take(3)
            .map(|row| format!("{} ({})", row.name, row.recent))
            .collect();
        view.warning = Some(if moved.is_empty() {
            warning
        } else {
            format!(
                "{warning} The features that moved most over the last {} days: {}.",
                recent.len(),
                moved.join(", ")
            )
        });
    }
    view.features = rows;
}

/// The held-out quantiles the index is taken over: from [`TAIL_FROM`] up.
pub fn tail(quantiles: &[(f64, f32)]) -> impl Iterator<Item = &(f64, f32)> {
    quantiles.iter().filter(|(level, _)| *level >= TAIL_FROM)
}

/// The drift section from the days' counts, the held-out quantiles (level, score) and the alert
/// budget (a share).
pub fn view(days: &[DayScores], quantiles: &[(f64, f32)], budget: f64) -> DriftView {
    if quantiles.is_empty() {
        return DriftView {
            empty: Some(
                "metrics.json has no held-out score quantiles (a model from before they were \
                 recorded): retrain to see drift."
                    .to_string(),
            ),
            ..DriftView::default()
        };
    }
    if days.is_empty() {
        return DriftView {
            empty: Some(
                "No payment has been scored by this model yet: start the monitor.".to_string(),
            ),
            ..DriftView::default()
        };
    }
    let levels: Vec<f64> = tail(quantiles).map(|&(level, _)| level).collect();
    let rows: Vec<DriftRow> = days
        .iter()
        .map(|day| {
            let rate = day.alerts as f64 / day.scored.max(1) as f64;
            let index = stability_index(&levels, day.scored, &day.at_or_above);
            let mut problems = Vec::new();
            if day.scored >= MIN_ROWS_FOR_INDEX {
                if rate > budget * BUDGET_FACTOR {
                    problems.push(format!("{:.1}× the alert budget", rate / budget));
                } else if rate < budget / BUDGET_FACTOR {
                    problems.push(format!("alerts at {:.1}× the budget", rate / budget));
                }
            }
            match index {
                Some(index) if index > SHIFT_SIGNIFICANT => {
                    problems.push("scores shifted from the held-out period".to_string())
                }
                None => problems.push(format!("under {MIN_ROWS_FOR_INDEX} rows")),
                _ => {}
            }
            let flagged = day.scored >= MIN_ROWS_FOR_INDEX
                && (!(budget / BUDGET_FACTOR..=budget * BUDGET_FACTOR).contains(&rate)
                    || index.is_some_and(|index| index > SHIFT_SIGNIFICANT));
            DriftRow {
                date: day.date.clone(),
                scored: group_digits(day.scored),
                alerts: group_digits(day.alerts),
                alert_rate: format!("{:.2} %", rate * 100.0),
                stability: index.map_or_else(|| "—".to_string(), |i| format!("{i:.3}")),
                note: problems.join("; "),
                flagged,
            }
        })
        .collect();
    let recent = &rows[rows.len().saturating_sub(7)..];
    let flagged = recent.iter().filter(|row| row.flagged).count();
    let warning = (flagged >= DAYS_TO_WARN).then(|| {
        format!(
            "Retraining is due: {flagged} of the last {} days left the alert budget ({:.2} %) \
             or the score distribution of the held-out period. Run `cargo run -p train` on \
             recent data; the monitor picks the new model up without a restart.",
            recent.len(),
            budget * 100.0
        )
    });
    DriftView {
        rows,
        warning,
        empty: None,
        ..DriftView::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: [f64; 3] = [0.9, 0.95, 0.98];

    #[test]
    fn scores_spread_as_held_out_are_stable_and_a_shift_is_not() {
        // 1,000 rows: 900 under the 90th percentile, 50 to the 95th, 30 to the 98th, 20 above.
        let same = stability_index(&LEVELS, 1000, &[100, 50, 20]).unwrap();
        assert!(same.abs() < 1e-9, "{same}");
        // Half the rows above the 98th percentile.
        let shifted = stability_index(&LEVELS, 1000, &[700, 600, 500]).unwrap();
        assert!(shifted > SHIFT_SIGNIFICANT, "{shifted}");
        assert_eq!(stability_index(&LEVELS, 50, &[5, 2, 1]), None);
    }

    fn day(date: &str, scored: i64, alerts: i64, at_or_above: [i64; 3]) -> DayScores {
        DayScores {
            date: date.into(),
            scored,
            alerts,
            at_or_above: at_or_above.to_vec(),
        }
    }

    #[test]
    fn three_days_off_budget_in_a_week_call_for_retraining() {
        let quantiles: Vec<(f64, f32)> = LEVELS.iter().map(|&l| (l, l as f32)).collect();
        let calm = day("2025-03-01", 1000, 20, [100, 50, 20]);
        let stormy = day("2025-03-02", 1000, 300, [600, 450, 300]);
        let quiet = view(
            &[calm.clone(), stormy.clone(), calm.clone()],
            &quantiles,
            0.02,
        );
        assert_eq!(quiet.warning, None);
        assert!(quiet.rows[1].flagged);
        assert!(
            quiet.rows[1].note.contains("15.0× the alert budget"),
            "{}",
            quiet.rows[1].note
        );
        assert!(quiet.rows[1].note.contains("scores shifted"));
        assert!(!quiet.rows[0].flagged);
        assert_eq!(quiet.rows[0].alert_rate, "2.00 %");
        let loud = view(
            &[calm, stormy.clone(), stormy.clone(), stormy],
            &quantiles,
            0.02,
        );
        assert!(
            loud.warning
                .unwrap()
                .starts_with("Retraining is due: 3 of the last 4 days")
        );
    }

    /// Two features counted over four days; the second moves from day 2 on.
    fn feature_days() -> (Vec<(String, DayCounts)>, Vec<(String, FeatureBins)>) {
        let bins = FeatureBins {
            cuts: vec![1.0, 2.0],
            counts: vec![500, 300, 200],
        };
        let names = ["amount_log", "hour_rarity_at_counter"];
        let days = (1..=4)
            .map(|day| {
                let hours = if day == 1 {
                    vec![150, 90, 60]
                } else {
                    vec![30, 60, 210]
                };
                (format!("2026-02-0{day}"), vec![vec![150, 90, 60], hours])
            })
            .collect();
        (
            days,
            names
                .iter()
                .map(|n| (n.to_string(), bins.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_shifted_feature_is_flagged_but_only_shifted_scores_call_for_retraining() {
        let (days, bins) = feature_days();
        let mut calm = DriftView::default();
        add_features(&mut calm, &days, &bins);
        assert_eq!(calm.features[0].name, "hour_rarity_at_counter");
        assert!(calm.features[0].flagged);
        assert_eq!(calm.features[0].before, "—", "no week before");
        assert!(!calm.features[1].flagged);
        assert_eq!(calm.features[1].recent, "0.000");
        assert_eq!(calm.warning, None, "the scores did not move");

        let mut stormy = DriftView {
            warning: Some("Retraining is due: 3 of the last 4 days left the budget.".into()),
            ..DriftView::default()
        };
        add_features(&mut stormy, &days, &bins);
        let warning = stormy.warning.unwrap();
        assert!(
            warning.ends_with(
                "The features that moved most over the last 4 days: hour_rarity_at_counter (0.692)."
            ),
            "{warning}"
        );

        let mut old_model = DriftView::default();
        add_features(&mut old_model, &days, &[]);
        assert!(old_model.features.is_empty());
        assert!(old_model.features_empty.unwrap().contains("retrain"));
    }

    #[test]
    fn a_model_without_quantiles_or_scores_says_why_there_is_no_drift() {
        let none = view(&[], &[(0.5, 0.1)], 0.02);
        assert!(none.empty.unwrap().contains("start the monitor"));
        let old = view(&[day("2025-03-01", 10, 1, [5, 1, 0])], &[], 0.02);
        assert!(old.empty.unwrap().contains("retrain"));
    }
}
