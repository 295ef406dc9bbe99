//! Honest evaluation on the held-out, most recent part of the window: ranking quality, the
//! alert budget's precision and recall, and recall per fraud type (the per-type report is a
//! polars group-by over the scored rows).

use polars::prelude::*;

pub use aegis_core::metrics::{
    Confusion, Evaluation, TypeRecall, average_precision, average_precision_of_each_kind,
    average_precision_per_kind,
};

/// ROC-AUC by the rank-sum (Mann–Whitney) formula, ties counted half.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    let positives = labels.iter().filter(|l| **l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        for &index in &order[i..=j] {
            if labels[index] {
                rank_sum += average_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Evaluates `scores` against labels at `threshold`.
pub fn evaluate(
    scores: &[f32],
    labels: &[bool],
    fraud_types: &[Option<String>],
    threshold: f32,
    k: usize,
) -> anyhow::Result<Evaluation> {
    let mut confusion = Confusion::default();
    for (&score, &label) in scores.iter().zip(labels) {
        match (score >= threshold, label) {
            (true, true) => confusion.true_positives += 1,
            (true, false) => confusion.false_positives += 1,
            (false, false) => confusion.true_negatives += 1,
            (false, true) => confusion.false_negatives += 1,
        }
    }
    let flagged = confusion.true_positives + confusion.false_positives;
    let positives = confusion.true_positives + confusion.false_negatives;
    let precision = ratio(confusion.true_positives, flagged);
    let recall = ratio(confusion.true_positives, positives);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };

    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let k = k.clamp(1, scores.len().max(1));
    let precision_at_k = ratio(order.iter().take(k).filter(|&&i| labels[i]).count(), k);

    Ok(Evaluation {
        rows: scores.len(),
        positives,
        roc_auc: roc_auc(scores, labels),
        average_precision: average_precision(scores, labels),
        threshold,
        precision,
        recall,
        f1,
        k,
        precision_at_k,
        confusion,
        per_type: per_type_recall(scores, fraud_types, threshold)?,
        unlabeled: 0,
    })
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

/// Recall per fraud type: a polars group-by over (fraud_type, score, flagged).
pub fn per_type_recall(
    scores: &[f32],
    fraud_types: &[Option<String>],
    threshold: f32,
) -> anyhow::Result<Vec<TypeRecall>> {
    let mut types = Vec::new();
    let mut type_scores = Vec::new();
    for (score, kind) in scores.iter().zip(fraud_types) {
        if let Some(kind) = kind {
            types.push(kind.as_str());
            type_scores.push(*score);
        }
    }
    if types.is_empty() {
        return Ok(Vec::new());
    }
    let frame = df!(
        "fraud_type" => types,
        "score" => type_scores,
    )?;
    let report = frame
        .lazy()
        .with_column(
            col("score")
                .gt_eq(lit(threshold))
                .cast(DataType::UInt32)
                .alias("caught"),
        )
        .group_by([col("fraud_type")])
        .agg([
            len().alias("rows"),
            col("caught").sum().alias("caught"),
            col("score").median().alias("median_score"),
        ])
        .sort(["fraud_type"], SortMultipleOptions::default())
        .collect()?;
    let names = report.column("fraud_type")?.str()?.clone();
    let rows = report.column("rows")?.cast(&DataType::UInt64)?;
    let rows = rows.u64()?;
    let caught = report.column("caught")?.cast(&DataType::UInt64)?;
    let caught = caught.u64()?;
    let medians = report.column("median_score")?.cast(&DataType::Float64)?;
    let medians = medians.f64()?;
    let mut out = Vec::new();
    for index in 0..report.height() {
        let total = rows.get(index).unwrap_or(0) as usize;
        let hit = caught.get(index).unwrap_or(0) as usize;
        out.push(TypeRecall {
            fraud_type: names.get(index).unwrap_or("").to_string(),
            rows: total,
            caught: hit,
            recall: ratio(hit, total),
            median_score: medians.get(index).unwrap_or(f64::NAN),
        });
    }
    Ok(out)
}

/// The share of each kind of fraud the alert budget catches (rows scoring at or above the
/// `1 - alert_rate` quantile, as the threshold is cut), averaged over the kinds (`labels[i]`:
/// the kind of row i's fraud, `None` for an ordinary row): what an auditor who works through
/// the budget's alerts sees of each kind, each kind weighing the same. NaN without any fraud.
pub fn recall_per_kind_at(scores: &[f32], labels: &[Option<u32>], alert_rate: f64) -> f64 {
    mean_recall(&caught_per_kind_at(scores, labels, alert_rate), labels)
}

/// The mean over the kinds of `labels` of the share of each kind `caught` (indexed by kind, as
/// [`caught_per_kind_at`] counts them); NaN without any fraud.
pub fn mean_recall(caught: &[usize], labels: &[Option<u32>]) -> f64 {
    let recalls: Vec<f64> = caught
        .iter()
        .copied()
        .zip(rows_per_kind(labels))
        .filter(|&(_, rows)| rows > 0)
        .map(|(caught, rows)| caught as f64 / rows as f64)
        .collect();
    if recalls.is_empty() {
        return f64::NAN;
    }
    recalls.iter().sum::<f64>() / recalls.len() as f64
}

/// How many frauds of each kind (`labels[i]`, see [`recall_per_kind_at`]) the `alert_rate`
/// budget catches, indexed by kind.
pub fn caught_per_kind_at(scores: &[f32], labels: &[Option<u32>], alert_rate: f64) -> Vec<usize> {
    let mut caught = vec![0usize; kind_count(labels)];
    for (caught_here, kind) in caught_at(scores, alert_rate).into_iter().zip(labels) {
        if let Some(kind) = kind {
            caught[*kind as usize] += usize::from(caught_here);
        }
    }
    caught
}

/// Whether the budget (`alert_rate` of `scores`) catches each row: its score is at or above
/// the budget's quantile of `scores`.
pub fn caught_at(scores: &[f32], alert_rate: f64) -> Vec<bool> {
    let threshold = quantile(scores, 1.0 - alert_rate);
    scores.iter().map(|&score| score >= threshold).collect()
}

/// How many kinds of fraud `labels` indexes: the largest kind plus one (0 without frauds).
pub fn kind_count(labels: &[Option<u32>]) -> usize {
    labels.iter().flatten().max().map_or(0, |&k| k as usize + 1)
}

/// How many frauds of each kind `labels` holds, indexed by kind.
fn rows_per_kind(labels: &[Option<u32>]) -> Vec<usize> {
    let mut rows = vec![0usize; kind_count(labels)];
    for kind in labels.iter().flatten() {
        rows[*kind as usize] += 1;
    }
    rows
}

/// The score at quantile `q` (0–1) of `scores`.
pub fn quantile(scores: &[f32], q: f64) -> f32 {
    if scores.is_empty() {
        return f32::INFINITY;
    }
    let mut sorted = scores.to_vec();
    sorted.sort_by(f32::total_cmp);
    let position = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[position.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two kinds, one of 8 rows and one of 2: catching both of the small kind and half the
    /// large one (0.75) beats catching the large kind whole and none of the small (0.5), though
    /// the second catches more frauds in all.
    #[test]
    fn recall_at_the_budget_weighs_each_kind_the_same() {
        // 90 ordinary rows scoring 0..1, 8 frauds of kind 0, 2 of kind 1; a 10 % budget alerts
        // the scores at or above the 90th lowest.
        let mut labels: Vec<Option<u32>> = vec![None; 90];
        labels.extend([Some(0); 8]);
        labels.extend([Some(1); 2]);
        let ordinary = (0..90).map(|i| i as f32 / 100.0);
        // A: kind 0 on top, kind 1 among the ordinary rows' lowest.
        let a: Vec<f32> = ordinary.clone().chain([5.0; 8]).chain([0.0; 2]).collect();
        // B: kind 1 on top, then 4 of kind 0, 4 ordinary rows above the other 4.
        let mut b: Vec<f32> = ordinary
            .map(|s| if s > 0.85 { s + 4.0 } else { s })
            .collect();
        b.extend([4.5, 4.5, 4.5, 4.5, 0.0, 0.0, 0.0, 0.0]);
        b.extend([6.0; 2]);
        let (at_a, at_b) = (
            recall_per_kind_at(&a, &labels, 0.1),
            recall_per_kind_at(&b, &labels, 0.1),
        );
        assert_eq!(at_a, 0.5);
        assert_eq!(at_b, 0.75);
        assert!(recall_per_kind_at(&a, &[None; 100], 0.1).is_nan());
    }

    #[test]
    fn perfect_ranking_scores_one_and_reverse_scores_zero() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
    }

    #[test]
    fn per_type_recall_counts_rows_at_or_above_threshold() {
        let scores = [5.0, 0.1, 3.0, 0.2, 9.0];
        let types = [
            Some("burst".to_string()),
            Some("burst".to_string()),
            Some("off_hours".to_string()),
            None,
            Some("off_hours".to_string()),
        ];
        let report = per_type_recall(&scores, &types, 1.0).unwrap();
        assert_eq!(report.len(), 2);
        assert_eq!(
            (
                report[0].fraud_type.as_str(),
                report[0].rows,
                report[0].caught
            ),
            ("burst", 2, 1)
        );
        assert_eq!(
            (
                report[1].fraud_type.as_str(),
                report[1].rows,
                report[1].caught
            ),
            ("off_hours", 2, 2)
        );
    }
}
