//! Each feature's drift: how the values the monitor computes spread, per event day, against the
//! held-out rows the model was calibrated on.
//!
//! `train` cuts each feature's held-out values into [`BINS`] bins of about equal count and
//! keeps the cuts and every bin's held-out rows with the model ([`FeatureBins`], in
//! `model_config.json`). The monitor counts each scored row's feature values into those bins
//! per event day, in the transaction that writes the scores (table `feature_days`, one row per
//! model and day), so a restarted monitor counts every row exactly once. The dashboard compares
//! a week's counts with the held-out shares by the population stability index
//! ([`stability_index`]): which features moved.
//!
//! A feature that is 0 on most rows has fewer bins (equal cuts merge), the zeros one of their
//! own.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::sql::{Row, Sql};
use crate::time::{EventTime, format_ist, ist_day_start};
use crate::values;

/// Bins per feature before equal cuts merge: deciles.
pub const BINS: usize = 10;

/// One feature's bins: `cuts` ascending (a value at or above `cuts[i]` is in bin `i + 1` or
/// higher) and each bin's held-out rows (counts, which survive a JSON round trip exactly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureBins {
    pub cuts: Vec<f32>,
    pub counts: Vec<u64>,
}

impl FeatureBins {
    /// The bins of `values` (the held-out rows' values of one feature). `None` without values.
    pub fn fit(values: &[f32]) -> Option<FeatureBins> {
        let mut sorted: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f32::total_cmp);
        let mut cuts: Vec<f32> = (1..BINS).map(|i| sorted[i * sorted.len() / BINS]).collect();
        cuts.dedup();
        // A cut at the smallest value would leave its bin below empty; a value most rows share
        // (a count that is 0 on 85 % of them) gets a bin of its own instead, so a day where it
        // is rarer reads as a shift.
        cuts.retain(|&cut| cut > sorted[0]);
        let above_smallest = sorted.partition_point(|&v| v <= sorted[0]);
        if above_smallest > sorted.len() / BINS
            && let Some(&next) = sorted.get(above_smallest)
            && cuts.first() != Some(&next)
        {
            cuts.insert(0, next);
        }
        let mut bins = FeatureBins {
            counts: vec![0; cuts.len() + 1],
            cuts,
        };
        for &value in &sorted {
            let bin = bins.bin(value);
            bins.counts[bin] += 1;
        }
        Some(bins)
    }

    /// Each bin's share of the held-out rows.
    pub fn shares(&self) -> Vec<f64> {
        let total = self.counts.iter().sum::<u64>().max(1) as f64;
        self.counts.iter().map(|&c| c as f64 / total).collect()
    }

    /// The bin of `value` (NaN counts in the lowest).
    pub fn bin(&self, value: f32) -> usize {
        self.cuts.partition_point(|&cut| value >= cut)
    }
}

/// The population stability index of a day's `counts` per bin against the held-out `shares`:
/// Σ (actual − expected) · ln(actual / expected). `None` below `min_rows` rows (a few dozen
/// rows move it by chance). An empty bin counts as half a row, so it does not read as an
/// infinite shift.
pub fn stability_index(shares: &[f64], counts: &[i64], min_rows: i64) -> Option<f64> {
    let total: i64 = counts.iter().sum();
    if total < min_rows || shares.len() != counts.len() {
        return None;
    }
    let total = total as f64;
    let floor = 0.5 / total;
    Some(
        shares
            .iter()
            .zip(counts)
            .filter(|(expected, _)| **expected > 0.0)
            .map(|(&expected, &count)| {
                let actual = (count as f64 / total).max(floor);
                (actual - expected) * (actual / expected).ln()
            })
            .sum(),
    )
}

/// One event day's counts: per feature, per bin.
pub type DayCounts = Vec<Vec<i64>>;

/// A batch's counts per event day (the IST date, `YYYY-MM-DD`), each row's feature `values`
/// counted into `bins`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureDays {
    pub days: Vec<(String, DayCounts)>,
    /// Each of `days`' start (event time), which a row is matched by: the monitor counts every
    /// row it scores, so the date is written once per day, not once per row.
    starts: Vec<EventTime>,
}

/// Counts stored in `feature_days`, read back.
fn parse_counts(text: &str, model_version: &str, day: &str) -> Result<DayCounts> {
    serde_json::from_str(text).map_err(|e| {
        Error::Invalid(format!(
            "feature_days holds unreadable counts for {model_version} on {day}: {e}"
        ))
    })
}

impl FeatureDays {
    /// Counts one row at event time `time`.
    pub fn count(&mut self, bins: &[FeatureBins], time: EventTime, values: &[f32]) {
        let start = ist_day_start(time);
        let index = match self.starts.iter().position(|&s| s == start) {
            Some(index) => index,
            None => {
                let empty = bins.iter().map(|b| vec![0; b.counts.len()]).collect();
                self.days.push((format_ist(start)[..10].to_string(), empty));
                self.starts.push(start);
                self.days.len() - 1
            }
        };
        let counts = &mut self.days[index].1;
        for ((feature, bins), &value) in counts.iter_mut().zip(bins).zip(values) {
            feature[bins.bin(value)] += 1;
        }
    }

    /// Adds the counts to `model_version`'s days in `feature_days` (in the caller's transaction).
    pub fn write(&self, sql: &mut dyn Sql, model_version: &str) -> Result<()> {
        for (day, counts) in &self.days {
            let stored: Option<String> = sql
                .value(
                    "SELECT counts FROM feature_days WHERE model_version = ?1 AND day = ?2",
                    values![model_version, day.as_str()],
                )?
                .flatten();
            let mut total = counts.clone();
            if let Some(stored) = stored {
                let before = parse_counts(&stored, model_version, day)?;
                // Counts of another shape cannot be this model's (its bins are fixed): they
                // are replaced rather than added to.
                if before.len() == total.len()
                    && before.iter().zip(&total).all(|(a, b)| a.len() == b.len())
                {
                    for (sum, old) in total.iter_mut().zip(before) {
                        for (s, o) in sum.iter_mut().zip(old) {
                            *s += o;
                        }
                    }
                }
            }
            let text = serde_json::to_string(&total).expect("counts serialize");
            sql.execute(
                "INSERT INTO feature_days (model_version, day, counts) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (model_version, day) DO UPDATE SET counts = excluded.counts",
                values![model_version, day.as_str(), text],
            )?;
        }
        Ok(())
    }
}

/// `model_version`'s counted days from `first_day` (`YYYY-MM-DD`) on, oldest first.
pub fn read_days(
    sql: &mut dyn Sql,
    model_version: &str,
    first_day: &str,
) -> Result<Vec<(String, DayCounts)>> {
    let rows = sql.rows(
        "SELECT day, counts FROM feature_days WHERE model_version = ?1 AND day >= ?2 ORDER BY day",
        values![model_version, first_day],
        |row| Ok((row.at::<String>(0)?, row.at::<String>(1)?)),
    )?;
    rows.into_iter()
        .map(|(day, text)| {
            let counts = parse_counts(&text, model_version, &day)?;
            Ok((day, counts))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_split_held_out_values_evenly_and_merge_equal_cuts() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let bins = FeatureBins::fit(&values).unwrap();
        assert_eq!(bins.cuts.len(), BINS - 1);
        assert!(bins.counts.iter().all(|&c| c == 100), "{bins:?}");
        assert_eq!(bins.bin(-5.0), 0);
        assert_eq!(bins.bin(100.0), 1, "a value at a cut is above it");
        assert_eq!(bins.bin(5_000.0), BINS - 1);

        // A feature that is 0 on 85 % of rows: one bin holds exactly the zeros.
        let sparse: Vec<f32> = (0..1000)
            .map(|i| if i < 850 { 0.0 } else { i as f32 })
            .collect();
        let bins = FeatureBins::fit(&sparse).unwrap();
        assert_eq!(bins.cuts, vec![850.0, 900.0]);
        assert_eq!(bins.counts, vec![850, 50, 100]);
        assert!((bins.shares()[0] - 0.85).abs() < 1e-9);
        assert!(FeatureBins::fit(&[]).is_none());
    }

    #[test]
    fn the_index_is_small_for_the_held_out_spread_and_large_for_a_shift() {
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let bins = FeatureBins::fit(&values).unwrap();
        let count = |day: &[f32]| {
            let mut counts = vec![0i64; bins.counts.len()];
            for &v in day {
                counts[bins.bin(v)] += 1;
            }
            counts
        };
        let same: Vec<f32> = (0..500).map(|i| (i * 2) as f32 + 0.5).collect();
        let index = stability_index(&bins.shares(), &count(&same), 200).unwrap();
        assert!(index < 0.01, "{index}");
        // Half the day's rows above everything held out.
        let shifted: Vec<f32> = (0..500)
            .map(|i| if i % 2 == 0 { 5_000.0 } else { i as f32 })
            .collect();
        let index = stability_index(&bins.shares(), &count(&shifted), 200).unwrap();
        assert!(index > 0.25, "{index}");
        assert_eq!(
            stability_index(&bins.shares(), &count(&same[..100]), 200),
            None
        );
    }

    #[test]
    fn a_batch_is_counted_per_event_day() {
        let bins = vec![
            FeatureBins::fit(&[0.0, 1.0, 2.0, 3.0]).unwrap(),
            FeatureBins::fit(&[5.0, 5.0]).unwrap(),
        ];
        let day = crate::time::parse_timestamp("2025-03-03 23:30:00").unwrap();
        let mut counted = FeatureDays::default();
        counted.count(&bins, day, &[0.0, 5.0]);
        counted.count(&bins, day + 3600, &[3.0, 5.0]);
        counted.count(&bins, day + 60, &[3.0, 7.0]);
        assert_eq!(counted.days.len(), 2);
        assert_eq!(counted.days[0].0, "2025-03-03");
        assert_eq!(counted.days[1].0, "2025-03-04");
        let first = &counted.days[0].1;
        assert_eq!(first[0].iter().sum::<i64>(), 2);
        assert_eq!(first[0][0], 1);
        assert_eq!(first[1], vec![2]);
    }
}
