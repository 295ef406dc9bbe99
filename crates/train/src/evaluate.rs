//! Honest evaluation on the held-out, most recent part of the window: ranking quality, the
//! alert budget's precision and recall, and recall per fraud type (the per-type report is a
//! polars group-by over the scored rows).

use polars::prelude::*;

pub use aegis_core::metrics::{Confusion, Evaluation, TypeRecall};

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

/// Average precision: mean of the precision at each positive, scores descending.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> f64 {
    let one_kind: Vec<Option<u32>> = labels.iter().map(|&fraud| fraud.then_some(0)).collect();
    average_precision_per_kind(scores, &one_kind)
}

/// The average precision of each kind of fraud against the ordinary rows alone (other kinds'
/// rows left out), averaged over the kinds (`labels[i]`: the kind of row i's fraud, `None` for
/// an ordinary row). A kind with a hundred rows weighs as much as one with ten, so a cluster
/// of one easy kind cannot decide alone which detectors win. NaN without any fraud.
pub fn average_precision_per_kind(scores: &[f32], labels: &[Option<u32>]) -> f64 {
    let kinds = labels.iter().flatten().max().map_or(0, |&k| k as usize + 1);
    let mut positives = vec![0usize; kinds];
    for &kind in labels.iter().flatten() {
        positives[kind as usize] += 1;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let (mut seen, mut sums, mut ordinary) = (vec![0usize; kinds], vec![0.0f64; kinds], 0usize);
    for index in order {
        match labels[index] {
            Some(kind) => {
                let kind = kind as usize;
                seen[kind] += 1;
                sums[kind] += seen[kind] as f64 / (seen[kind] + ordinary) as f64;
            }
            None => ordinary += 1,
        }
    }
    let per_kind: Vec<f64> = (0..kinds)
        .filter(|&kind| positives[kind] > 0)
        .map(|kind| sums[kind] / positives[kind] as f64)
        .collect();
    if per_kind.is_empty() {
        return f64::NAN;
    }
    per_kind.iter().sum::<f64>() / per_kind.len() as f64
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

    #[test]
    fn perfect_ranking_scores_one_and_reverse_scores_zero() {
        let labels = [false, false, true, true];
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
        assert_eq!(average_precision(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        // Ranked 1st and 3rd: (1/1 + 2/3) / 2.
        let ap = average_precision(&[0.9, 0.7, 0.5, 0.1], &[true, false, true, false]);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }

    /// A ranking that puts a large easy kind first and a small kind last wins on pooled average
    /// precision but loses on the per-kind mean to one that finds both.
    #[test]
    fn each_kind_of_fraud_weighs_the_same_in_the_per_kind_average_precision() {
        // 100 ordinary rows, 50 frauds of kind 0, 5 of kind 1.
        let labels: Vec<Option<u32>> = (0..155)
            .map(|i| match i {
                0..100 => None,
                100..150 => Some(0),
                _ => Some(1),
            })
            .collect();
        let pooled =
            |labels: &[Option<u32>]| labels.iter().map(Option::is_some).collect::<Vec<_>>();
        // A: kind 0 on top, then the ordinary rows, kind 1 last.
        let a: Vec<f32> = (0..155)
            .map(|i| match i {
                0..100 => 1.0,
                100..150 => 2.0,
                _ => 0.0,
            })
            .collect();
        // B: kind 1 on top, then kind 0 and the ordinary rows interleaved.
        let b: Vec<f32> = (0..155)
            .map(|i| match i {
                0..100 => (i % 2) as f32,
                100..150 => 0.5,
                _ => 3.0,
            })
            .collect();
        assert!(average_precision(&a, &pooled(&labels)) > average_precision(&b, &pooled(&labels)));
        let (per_a, per_b) = (
            average_precision_per_kind(&a, &labels),
            average_precision_per_kind(&b, &labels),
        );
        assert!(per_a < per_b, "{per_a} against {per_b}");
        // Kind 0 perfect (1.0), kind 1 behind all 100 ordinary rows (about 0.03).
        assert!(
            (per_a - 0.5 * (1.0 + (1..=5).map(|n| n as f64 / (n + 100) as f64).sum::<f64>() / 5.0))
                .abs()
                < 1e-9
        );
        assert!(average_precision_per_kind(&a, &[None; 155]).is_nan());
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
