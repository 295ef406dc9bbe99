//! The supervised stage: what auditors' verdicts teach about the payments that come after them.
//!
//! A "noisy or" of auditors' findings ([`FeedbackStage`]): a payment is fraud because of what
//! it looks like (a logistic curve of the unsupervised score) or because of what auditors found
//! about its counter, account or beneficiary (the verdict evidence of
//! [`aegis_core::feedback`], each value coded by a few steps, each step adding a non-negative
//! hazard). Why this learner: its inputs are few (the score and twelve evidence values) and the
//! labels are thousands, where a larger learner would fit noise; its weights say in plain
//! numbers what chance of fraud a confirmation at a counter gives, which the model page shows;
//! a row no verdict bears on keeps its score and its ranking (unless the stage has a look,
//! below); and the evidence gives a
//! payment that looks ordinary (a compromised counter's) the chance the follow-ups found,
//! which a logistic regression with the evidence added to the score's log-odds could not:
//! there the evidence was a shift, worth little where the score's log-odds are very low
//! (compromised-counter recall 0.44–0.54 against 0.86–1.00 in the feedback bench, seeds 7–9).
//!
//! **Evidence only raises a score**: the evidence weights are fitted non-negative, and only
//! confirmations have any (a dismissal's weight is 0; see [`fit`]). Unbounded,
//! the stage learned that after a confirmed fraud the next alerts on the same beneficiary or
//! account were mostly dismissed, and lowered them, which hid a fraudster's next inflated
//! payment below the threshold (6 of 218 in the feedback bench). A payment where fraud was
//! found before is never looked at less for it.
//!
//! **The look** ([`Look`], fitted by [`fit_look`], blended by [`LookRegression::blend`]):
//! auditors dismiss the same ordinary patterns again and again, and a logistic regression of
//! the labels on what a payment looks like (the unsupervised score and each value the
//! detectors see) ranks them below the frauds they resemble in the score. It replaces the
//! score's curve in the noisy or, so it lowers scores as well as raising them; train keeps it
//! only at a share that costs no kind of fraud on the held-out rows (the crate root's
//! `choose_look`).
//!
//! # Labels
//! Only what was known before the held-out period counts (see [`labels`]): a payment whose
//! latest verdict decided before the cutoff is `confirmed_fraud` is a fraud, `dismissed` is
//! ordinary (whether auditors reviewed it as an alert or as a follow-up). An alert the
//! monitor raised (for a row never scored, an unsupervised score at or above the threshold)
//! that nobody reviewed within [`REVIEW_DELAY`] is either presumed ordinary (the alerts
//! auditors saw and let pass) or left unlabeled ([`Unreviewed`]): train fits a stage under
//! each rule and keeps the presumed one unless it fails the held-out check (`choose_stage` in
//! the crate root says why). Other
//! rows are never labels: nobody looked at them, and at a compromised counter most of them
//! are fraud nobody has confirmed yet.
//!
//! The stage so judged is then learned again under the same rule from the labels of every row
//! of the window with every verdict known (the cutoff is the window's end; `refit_stage` in the
//! crate root), its look kept as judged: that is the stage the model scores with, so the
//! newest verdicts teach it what the evidence means now. The held-out figures stay the judged
//! stage's.
//!
//! # Enough verdicts
//! The stage is trained when at least [`MIN_FINDINGS`] confirmed frauds and as many ordinary
//! labels were decided before the cutoff, and kept when the score's weight comes out positive
//! (the stage must agree that a higher score means fraud). Otherwise the unsupervised score is
//! the model's final score, as with `--no-feedback`.

use aegis_core::feedback::{
    COMBINATION, EVIDENCE_NAMES, EVIDENCE_STEPS, Evidence, FeedbackStage, Finding, LOOK_INPUTS,
    Look, STAGE_INPUTS, look_input_names, softplus, spreads,
};
use aegis_core::model::mean_and_std;
use aegis_core::time::{DAY, EventTime};

/// An alert unreviewed this long is presumed ordinary.
pub const REVIEW_DELAY: i64 = 7 * DAY;
/// Confirmed frauds (and ordinary labels) needed before the stage is trained: with fewer, the
/// twelve evidence weights would be fitted to a handful of cases.
pub const MIN_FINDINGS: usize = 30;
/// L2 penalty on the weights (not the bias).
const RIDGE: f64 = 1.0;

/// The labels the stage learns from, and how many of each kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels {
    /// (row index, fraud?)
    pub rows: Vec<(usize, bool)>,
    pub confirmed: usize,
    pub dismissed: usize,
    pub presumed_ordinary: usize,
}

/// One row of the window as the stage's labelling sees it.
pub struct Candidate {
    pub time: EventTime,
    /// The latest finding about the row decided before the cutoff.
    pub finding: Option<Finding>,
    /// The unsupervised score.
    pub score: f32,
    /// Whether the monitor flagged it (`None`: never scored; then a score at or above the
    /// threshold counts as an alert).
    pub alerted: Option<bool>,
}

/// Which rows without a finding are labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreviewed {
    /// An alert nobody reviewed within [`REVIEW_DELAY`] is presumed ordinary.
    PresumedOrdinary,
    /// Only findings are labels.
    Left,
}

/// The labels of rows before `cutoff` (see the module documentation).
pub fn labels(
    candidates: &[Candidate],
    threshold: f32,
    cutoff: EventTime,
    unreviewed: Unreviewed,
) -> Labels {
    let mut labels = Labels::default();
    for (index, candidate) in candidates.iter().enumerate() {
        if candidate.time >= cutoff {
            continue;
        }
        match candidate.finding {
            Some(Finding::Confirmed) => {
                labels.confirmed += 1;
                labels.rows.push((index, true));
            }
            Some(Finding::Dismissed) => {
                labels.dismissed += 1;
                labels.rows.push((index, false));
            }
            None if unreviewed == Unreviewed::PresumedOrdinary
                && candidate.alerted.unwrap_or(candidate.score >= threshold)
                && candidate.time < cutoff - REVIEW_DELAY =>
            {
                labels.presumed_ordinary += 1;
                labels.rows.push((index, false));
            }
            None => {}
        }
    }
    labels
}

/// Why the stage was or was not trained.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Trained(FeedbackStage),
    /// The reason, in a sentence.
    Unsupervised(String),
}

/// Fits the stage on `labels` (row indices into `scores` and `evidence`).
pub fn fit(labels: &Labels, scores: &[f32], evidence: &[Evidence]) -> Decision {
    let ordinary = labels.dismissed + labels.presumed_ordinary;
    if labels.confirmed < MIN_FINDINGS || ordinary < MIN_FINDINGS {
        return Decision::Unsupervised(format!(
            "too few verdicts before the held-out period: {} confirmed frauds and {} ordinary \
             (dismissed or unreviewed alerts); the feedback stage needs {MIN_FINDINGS} of each",
            labels.confirmed, ordinary
        ));
    }
    // Only confirmations are weighed: a dismissal raising a score would make "12 payments at
    // this counter were dismissed as ordinary" a reason for an alert. With dismissals the stage
    // learned +0.1–0.2 for counters where follow-ups had been dismissed (follow-ups happen
    // where fraud was confirmed) and raised 37 % of the held-out rows on the seed-9 million
    // (29,596 of 80,000; 2,722 without them).
    let confirmations: [bool; STAGE_INPUTS] =
        std::array::from_fn(|i| EVIDENCE_NAMES[i / EVIDENCE_STEPS.len()].contains("_confirmed_"));
    let rows: Vec<([f64; STAGE_INPUTS + 2], f64)> = labels
        .rows
        .iter()
        .map(|&(index, fraud)| {
            let inputs = evidence[index].inputs();
            let mut x = [0.0; STAGE_INPUTS + 2];
            x[0] = 1.0;
            x[1] = f64::from(scores[index]);
            for ((slot, value), confirmation) in x[2..].iter_mut().zip(inputs).zip(confirmations) {
                if confirmation {
                    *slot = f64::from(value);
                }
            }
            (x, if fraud { 1.0 } else { 0.0 })
        })
        .collect();
    let weights = non_negative_evidence(&rows);
    let score_weight = weights[1] as f32;
    if !(score_weight > 0.0) || weights.iter().any(|w| !w.is_finite()) {
        return Decision::Unsupervised(format!(
            "the verdicts do not rise with the unsupervised score (its weight came out {score_weight:.3}); \
             the feedback stage was not kept"
        ));
    }
    Decision::Trained(FeedbackStage {
        combination: COMBINATION.into(),
        bias: weights[0] as f32,
        score_weight,
        weights: weights[2..].iter().map(|&w| w as f32).collect(),
        evidence_names: EVIDENCE_NAMES.iter().map(|s| s.to_string()).collect(),
        look: None,
    })
}

/// The look's regression's inputs: the constant, the score, each standardised look input,
/// then each one's absolute value.
const REGRESSION_INPUTS: usize = 2 + 2 * LOOK_INPUTS;

/// Ridge penalty of the look's regression, on inputs standardised to spread 1 (not on the
/// constant). Strong, as 28 inputs and their absolute values learned from a few thousand
/// confirmations can fit a season's noise; 100 is what the hand-made prototype measured in
/// BENCHMARKS used (scikit-learn's C = 0.01).
const LOOK_RIDGE: f64 = 100.0;

/// How far the stage's score curve may be moved towards the look's regression; train tries
/// each and keeps the best on the held-out rows that costs no kind of fraud (see the crate
/// root's `choose_look`).
pub const LOOK_SHARES: [f32; 4] = [0.25, 0.5, 0.75, 1.0];

/// A logistic regression of the verdicts on a payment's look (see [`Look`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LookRegression {
    means: Vec<f32>,
    scales: Vec<f32>,
    /// [`REGRESSION_INPUTS`] weights.
    weights: Vec<f64>,
}

/// Each look input's mean and spread over `rows` (a spread of 0 counts as 1: an input that
/// never moved says nothing, and its standardised value stays 0).
pub fn look_spread(rows: impl Iterator<Item = [f32; LOOK_INPUTS]> + Clone) -> (Vec<f32>, Vec<f32>) {
    (0..LOOK_INPUTS)
        .map(|i| {
            let (mean, spread) = mean_and_std(rows.clone().map(|row| row[i]));
            let spread = spread as f32;
            let spread = if spread > 1e-6 && spread.is_finite() {
                spread
            } else {
                1.0
            };
            (mean as f32, spread)
        })
        .unzip()
}

/// Fits the look's regression on `rows`: (unsupervised score, look inputs, fraud?), with the
/// inputs standardised by `means` and `scales`. `None` when its curvature is singular or it
/// gives a higher unsupervised score no higher chance of fraud.
pub fn fit_look(
    rows: &[(f32, [f32; LOOK_INPUTS], bool)],
    means: Vec<f32>,
    scales: Vec<f32>,
) -> Option<LookRegression> {
    let x: Vec<([f64; REGRESSION_INPUTS], f64)> = rows
        .iter()
        .map(|(score, inputs, fraud)| {
            let mut x = [0.0; REGRESSION_INPUTS];
            x[0] = 1.0;
            x[1] = f64::from(*score);
            for (i, spread) in spreads(inputs, &means, &scales).into_iter().enumerate() {
                x[2 + i] = spread;
                x[2 + LOOK_INPUTS + i] = spread.abs();
            }
            (x, if *fraud { 1.0 } else { 0.0 })
        })
        .collect();
    let weights = logistic(&x, LOOK_RIDGE)?;
    (weights[1] > 0.0 && weights.iter().all(|w| w.is_finite())).then(|| LookRegression {
        means,
        scales,
        weights: weights.to_vec(),
    })
}

impl LookRegression {
    /// The look that moves `stage`'s score curve a `share` of the way towards the regression.
    pub fn blend(&self, stage: &FeedbackStage, share: f32) -> Look {
        let share64 = f64::from(share);
        let towards =
            |from: f32, to: f64| ((1.0 - share64) * f64::from(from) + share64 * to) as f32;
        let scaled = |range: std::ops::Range<usize>| {
            self.weights[range]
                .iter()
                .map(|w| (share64 * w) as f32)
                .collect()
        };
        Look {
            share,
            bias: towards(stage.bias, self.weights[0]),
            score_weight: towards(stage.score_weight, self.weights[1]),
            means: self.means.clone(),
            scales: self.scales.clone(),
            signed: scaled(2..2 + LOOK_INPUTS),
            absolute: scaled(2 + LOOK_INPUTS..REGRESSION_INPUTS),
            names: look_input_names(),
        }
    }
}

/// Ridge-penalised logistic regression by Newton's method (`x[0]` is the constant, not
/// penalised), each step halved until the penalised loss goes down. `None` if the curvature
/// is singular.
fn logistic<const N: usize>(rows: &[([f64; N], f64)], ridge: f64) -> Option<[f64; N]> {
    let loss = |w: &[f64; N]| -> f64 {
        let data: f64 = rows
            .iter()
            .map(|(x, y)| {
                let z: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
                softplus(z) - y * z
            })
            .sum();
        data + 0.5 * ridge * w[1..].iter().map(|v| v * v).sum::<f64>()
    };
    let step = |w: &[f64; N]| {
        let mut gradient = [0.0f64; N];
        let mut hessian = vec![[0.0f64; N]; N];
        for (x, y) in rows {
            let z: f64 = x.iter().zip(w).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-z).exp());
            accumulate(&mut gradient, &mut hessian, x, p - y, p * (1.0 - p));
        }
        newton_step(hessian, gradient, w, ridge)
    };
    let (w, solved) = descend(loss, step, 100);
    solved.then_some(w)
}

/// [`noisy_or`] with every evidence weight (`x[2..]`) at least 0: a weight that comes out
/// negative is fixed at 0 (its input left out) and the rest fitted again, until none is
/// negative.
fn non_negative_evidence<const N: usize>(rows: &[([f64; N], f64)]) -> [f64; N] {
    let mut kept = [true; N];
    let mut masked = rows.to_vec();
    loop {
        let weights = noisy_or(&masked);
        let negative: Vec<usize> = (2..N).filter(|&i| kept[i] && weights[i] < 0.0).collect();
        if negative.is_empty() {
            return weights;
        }
        for i in negative {
            kept[i] = false;
            for (x, _) in &mut masked {
                x[i] = 0.0;
            }
        }
    }
}

/// One row's chance of fraud under weights `w` (see [`FeedbackStage`]): `x[0]` is the
/// constant, `x[1]` the score, the rest the evidence inputs. Returns `(ln P, ln(1 − P), σ(z))`.
fn noisy_or_row<const N: usize>(x: &[f64; N], w: &[f64; N]) -> (f64, f64, f64) {
    let z = w[0] + w[1] * x[1];
    let hazard: f64 = x[2..].iter().zip(&w[2..]).map(|(a, b)| a * b).sum();
    let log_ordinary = -softplus(z) - hazard;
    let log_fraud = (-log_ordinary.exp_m1()).max(f64::MIN_POSITIVE).ln();
    (log_fraud, log_ordinary, 1.0 / (1.0 + (-z).exp()))
}

/// Ridge-penalised maximum likelihood of the noisy-or stage by Fisher scoring (Newton's
/// method with the expected curvature, which is never indefinite where the likelihood itself
/// need not be concave), each step halved until the penalised loss goes down; `x[0]` is the
/// constant, which is not penalised.
fn noisy_or<const N: usize>(rows: &[([f64; N], f64)]) -> [f64; N] {
    let loss = |w: &[f64; N]| -> f64 {
        let data: f64 = rows
            .iter()
            .map(|(x, y)| {
                let (log_fraud, log_ordinary, _) = noisy_or_row(x, w);
                -(y * log_fraud + (1.0 - y) * log_ordinary)
            })
            .sum();
        data + 0.5 * RIDGE * w[1..].iter().map(|v| v * v).sum::<f64>()
    };
    let step = |w: &[f64; N]| {
        let mut gradient = [0.0f64; N];
        let mut fisher = vec![[0.0f64; N]; N];
        for (x, y) in rows {
            let (log_fraud, log_ordinary, p_score) = noisy_or_row(x, w);
            // A fraud the weights give no chance at all would make the step unbounded.
            let (fraud, ordinary) = (log_fraud.exp().max(1e-12), log_ordinary.exp());
            // ∂P/∂w = (1 − P) × u, with u = (σ(z), σ(z) × score, inputs…); the loss's
            // gradient is (P − y)/P × u and its expected curvature (1 − P)/P × u uᵀ.
            let mut u = *x;
            u[0] = p_score;
            u[1] = p_score * x[1];
            accumulate(
                &mut gradient,
                &mut fisher,
                &u,
                (fraud - y) / fraud,
                ordinary / fraud,
            );
        }
        newton_step(fisher, gradient, w, RIDGE)
    };
    descend(loss, step, 200).0
}

/// Adds one row's `slope × u` to `gradient` and `curvature × u uᵀ` to the lower triangle of
/// `hessian`.
fn accumulate<const N: usize>(
    gradient: &mut [f64; N],
    hessian: &mut [[f64; N]],
    u: &[f64; N],
    slope: f64,
    curvature: f64,
) {
    for i in 0..N {
        if u[i] == 0.0 {
            continue;
        }
        gradient[i] += slope * u[i];
        for j in 0..=i {
            hessian[i][j] += curvature * u[i] * u[j];
        }
    }
}

/// The Newton step from a lower-triangular `hessian` and a `gradient` of the data's loss at
/// `w`, with the ridge penalty `ridge` on every weight but the constant `w[0]`. `None` if
/// the curvature is singular.
fn newton_step<const N: usize>(
    mut hessian: Vec<[f64; N]>,
    mut gradient: [f64; N],
    w: &[f64; N],
    ridge: f64,
) -> Option<[f64; N]> {
    for i in 0..N {
        for j in 0..i {
            hessian[j][i] = hessian[i][j];
        }
        if i > 0 {
            gradient[i] += ridge * w[i];
            hessian[i][i] += ridge;
        } else {
            hessian[i][i] += 1e-9;
        }
    }
    solve(&hessian, gradient)
}

/// Minimises `loss` from 0 by the steps `step` gives, each halved until the loss goes down,
/// for at most `iterations`; stops when a step gains nothing. Returns the weights and
/// whether every step could be computed.
fn descend<const N: usize>(
    loss: impl Fn(&[f64; N]) -> f64,
    step: impl Fn(&[f64; N]) -> Option<[f64; N]>,
    iterations: usize,
) -> ([f64; N], bool) {
    let mut w = [0.0f64; N];
    let mut current = loss(&w);
    for _ in 0..iterations {
        let Some(step) = step(&w) else {
            return (w, false);
        };
        let mut scale = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let candidate: [f64; N] = std::array::from_fn(|i| w[i] - scale * step[i]);
            let value = loss(&candidate);
            if value <= current {
                let largest = step.iter().fold(0.0f64, |m, s| m.max((scale * s).abs()));
                w = candidate;
                improved = current - value > 1e-10 * current.abs().max(1.0) && largest > 1e-9;
                current = value;
                break;
            }
            scale *= 0.5;
        }
        if !improved {
            break;
        }
    }
    (w, true)
}

/// Solves `a x = b` for a symmetric positive definite `a` (Cholesky); `None` if it is not.
fn solve<const N: usize>(a: &[[f64; N]], b: [f64; N]) -> Option<[f64; N]> {
    let mut l = vec![[0.0f64; N]; N];
    for i in 0..N {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = a[i][i] - sum;
                if d <= 0.0 {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (a[i][j] - sum) / l[j][j];
            }
        }
    }
    let mut y = [0.0f64; N];
    for i in 0..N {
        let sum: f64 = (0..i).map(|k| l[i][k] * y[k]).sum();
        y[i] = (b[i] - sum) / l[i][i];
    }
    let mut x = [0.0f64; N];
    for i in (0..N).rev() {
        let sum: f64 = (i + 1..N).map(|k| l[k][i] * x[k]).sum();
        x[i] = (y[i] - sum) / l[i][i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The look inputs of a payment at every mean (no stage in these tests has a look).
    const PLAIN: [f32; LOOK_INPUTS] = [0.0; LOOK_INPUTS];

    impl Labels {
        /// Row `index` as a confirmed fraud or a dismissal.
        fn record(&mut self, index: usize, fraud: bool) {
            self.rows.push((index, fraud));
            if fraud {
                self.confirmed += 1;
            } else {
                self.dismissed += 1;
            }
        }
    }

    #[test]
    fn labels_come_only_from_before_the_cutoff_and_unreviewed_alerts_wait_for_the_delay() {
        let cutoff = 100 * DAY;
        let row = |time: EventTime, finding: Option<Finding>, score: f32| Candidate {
            time,
            finding,
            score,
            alerted: None,
        };
        let candidates = [
            row(10 * DAY, Some(Finding::Confirmed), 5.0),
            row(20 * DAY, Some(Finding::Dismissed), 4.0),
            // An alert nobody reviewed for weeks: presumed ordinary.
            row(30 * DAY, None, 3.5),
            // An alert of the last week before the cutoff: still in review, no label.
            row(cutoff - 3 * DAY, None, 3.5),
            // Never an alert: nobody looked.
            row(40 * DAY, None, 0.5),
            // In the held-out period: never a label, whatever is known about it.
            row(cutoff, Some(Finding::Confirmed), 6.0),
            // What the monitor decided outranks today's score: an alert it raised counts,
            // one it did not raise does not.
            Candidate {
                alerted: Some(true),
                ..row(50 * DAY, None, 0.5)
            },
            Candidate {
                alerted: Some(false),
                ..row(60 * DAY, None, 9.0)
            },
        ];
        let presumed = labels(&candidates, 3.0, cutoff, Unreviewed::PresumedOrdinary);
        assert_eq!(
            presumed.rows,
            vec![(0, true), (1, false), (2, false), (6, false)]
        );
        assert_eq!(
            (
                presumed.confirmed,
                presumed.dismissed,
                presumed.presumed_ordinary
            ),
            (1, 1, 2)
        );
        // Left unlabeled, unreviewed alerts teach nothing.
        let findings = labels(&candidates, 3.0, cutoff, Unreviewed::Left);
        assert_eq!(findings.rows, vec![(0, true), (1, false)]);
        assert_eq!(findings.presumed_ordinary, 0);
    }

    /// `n` rows labeled by their verdicts: row i's (evidence, fraud, score) from `row`.
    fn labeled(
        n: usize,
        row: impl Fn(usize) -> (Evidence, bool, f32),
    ) -> (Labels, Vec<f32>, Vec<Evidence>) {
        let mut labels = Labels::default();
        let (mut scores, mut evidence) = (Vec::new(), Vec::new());
        for i in 0..n {
            let (e, fraud, score) = row(i);
            labels.record(i, fraud);
            scores.push(score);
            evidence.push(e);
        }
        (labels, scores, evidence)
    }

    /// Evidence that goes with ordinary payments (a beneficiary's alerts after a confirmed
    /// fraud, dismissed) gets no weight rather than a negative one: it never lowers a score.
    #[test]
    fn evidence_that_goes_with_dismissals_does_not_lower_scores() {
        let (labels, scores, evidence) = labeled(600, |i| {
            let mut e = Evidence::default();
            // Beneficiary confirmations (index 8) on a third of the rows, all of them ordinary;
            // counter confirmations (index 0) on another third, mostly fraud.
            let fraud = match i % 3 {
                0 => {
                    e.values[8] = 1.0;
                    false
                }
                1 => {
                    e.values[0] = 3.0;
                    i % 4 != 0
                }
                _ => i % 5 == 0,
            };
            (
                e,
                fraud,
                2.0 + (i % 11) as f32 * 0.1 + if fraud { 0.4 } else { 0.0 },
            )
        });
        let Decision::Trained(stage) = fit(&labels, &scores, &evidence) else {
            panic!("enough verdicts");
        };
        assert!(
            stage.weights.iter().all(|&w| w >= 0.0),
            "{:?}",
            stage.weights
        );
        assert_eq!(
            stage.adjust(2.5, &PLAIN, &evidence[0]),
            2.5,
            "the beneficiary's evidence is ignored"
        );
        assert!(
            stage.adjust(2.5, &PLAIN, &evidence[1]) > 2.5,
            "the counter's raises the score"
        );
    }

    /// Dismissals never raise a score, even where they go with fraud (follow-ups at a counter
    /// where fraud was confirmed are dismissed, then the counter's next payments are fraud).
    #[test]
    fn dismissals_get_no_weight_even_where_they_go_with_fraud() {
        let (labels, scores, evidence) = labeled(600, |i| {
            let mut e = Evidence::default();
            // Counter dismissals (index 2) on half the rows, fraud four times in five there.
            let fraud = if i % 2 == 0 {
                e.values[2] = 5.0;
                i % 10 != 0
            } else {
                i % 10 == 1
            };
            (
                e,
                fraud,
                2.0 + (i % 11) as f32 * 0.1 + if fraud { 0.3 } else { 0.0 },
            )
        });
        let Decision::Trained(stage) = fit(&labels, &scores, &evidence) else {
            panic!("enough verdicts");
        };
        assert_eq!(
            stage.adjust(2.5, &PLAIN, &evidence[0]),
            2.5,
            "{:?}",
            stage.weights
        );
        for (name, weight) in aegis_core::feedback::stage_input_names()
            .iter()
            .zip(&stage.weights)
        {
            if name.contains("dismissed") {
                assert_eq!(*weight, 0.0, "{name}");
            }
        }
    }

    /// A compromised counter's diverted payments look ordinary: auditors following up on the
    /// counter find two in three of them fraud, at scores where an alert without evidence is
    /// never fraud. The stage learns that chance, and ranks those payments above alerts
    /// that are fraud less often.
    #[test]
    fn the_stage_learns_the_chance_of_fraud_that_evidence_gives_at_an_ordinary_score() {
        let (labels, scores, evidence) = labeled(1500, |i| {
            let mut e = Evidence::default();
            if i % 5 == 0 {
                // A follow-up: an ordinary score, 12 confirmations at the counter.
                e.values[1] = 12.0;
                (e, i % 15 != 0, 0.2 + (i % 7) as f32 * 0.1)
            } else {
                // An alert at score 2.0 + k/10 (k < 20): fraud k times in 19.
                let k = i % 20;
                (e, (i / 20 * 7) % 19 < k, 2.0 + k as f32 * 0.1)
            }
        });
        let Decision::Trained(stage) = fit(&labels, &scores, &evidence) else {
            panic!("enough verdicts");
        };
        let chance = |score: f32| 1.0 / (1.0 + (-(stage.bias + stage.score_weight * score)).exp());
        let follow_up = stage.adjust(0.5, &PLAIN, &evidence[0]);
        assert!(
            (chance(follow_up) - 2.0 / 3.0).abs() < 0.1,
            "{} at {follow_up}: {:?}",
            chance(follow_up),
            stage
        );
        // Above an alert that is fraud one time in three, below one that is fraud nine in ten.
        let (third, most) = (2.6, 3.8);
        assert!(
            chance(third) < 0.5 && chance(most) > 0.8,
            "{} {}",
            chance(third),
            chance(most)
        );
        assert!(follow_up > third && follow_up < most);
    }

    #[test]
    fn the_stage_learns_that_confirmations_at_a_counter_mean_fraud_and_needs_enough_of_them() {
        // Alerts whose counter had a confirmation before are frauds four times in five; the
        // others one time in five, whatever their score.
        let (labels, scores, evidence) = labeled(400, |i| {
            let with_evidence = i % 2 == 0;
            let fraud = if with_evidence {
                i % 10 != 0
            } else {
                i % 10 == 1
            };
            let mut e = Evidence::default();
            if with_evidence {
                e.values[0] = 2.0;
            }
            (
                e,
                fraud,
                3.0 + (i % 7) as f32 * 0.2 + if fraud { 0.3 } else { 0.0 },
            )
        });
        let Decision::Trained(stage) = fit(&labels, &scores, &evidence) else {
            panic!("enough verdicts");
        };
        let crossed: f32 = stage.weights[..3].iter().sum();
        assert!(crossed > 1.0, "{:?}", stage.weights);
        assert!(stage.score_weight > 0.0);
        let with = stage.adjust(3.0, &PLAIN, &evidence[0]);
        assert!(with > 4.0, "a confirmation moves the score up: {with}");
        assert_eq!(stage.adjust(3.0, &PLAIN, &evidence[1]), 3.0);

        let few = Labels {
            rows: labels.rows[..40].to_vec(),
            confirmed: 20,
            dismissed: 20,
            presumed_ordinary: 0,
        };
        assert!(matches!(
            fit(&few, &scores, &evidence),
            Decision::Unsupervised(_)
        ));
    }

    /// Auditors dismiss the busy counters' alerts and confirm the quiet ones' (look input 0:
    /// high at busy counters): the regression learns that a busy counter's payment is less
    /// likely fraud at the same score, and a share of it moves the stage's curve part of the
    /// way.
    #[test]
    fn the_look_learns_which_payments_auditors_dismiss_and_blends_by_its_share() {
        let mut rows = Vec::new();
        for i in 0..400 {
            let busy = i % 2 == 0;
            let score = (i % 10) as f32 * 0.5;
            let mut look = [0.0f32; LOOK_INPUTS];
            look[0] = if busy { 3.0 } else { 1.0 };
            look[1] = (i % 7) as f32;
            // Quiet counters' high scores are fraud; busy counters' alerts are dismissed but
            // for their highest scores.
            let fraud = if busy { score >= 4.5 } else { score >= 2.0 };
            rows.push((score, look, fraud));
        }
        let (means, scales) = look_spread(rows.iter().map(|row| row.1));
        assert_eq!((means[0], scales[0]), (2.0, 1.0));
        // An input that never moves is standardised by 1, not 0.
        assert_eq!((means[2], scales[2]), (0.0, 1.0));
        let regression = fit_look(&rows, means, scales).expect("the regression converges");
        let stage = FeedbackStage {
            combination: COMBINATION.into(),
            bias: -3.0,
            score_weight: 1.0,
            weights: vec![0.0; STAGE_INPUTS],
            evidence_names: EVIDENCE_NAMES.iter().map(|s| s.to_string()).collect(),
            look: None,
        };
        let whole = regression.blend(&stage, 1.0);
        assert!(whole.signed[0] < 0.0, "{:?}", &whole.signed[..3]);
        let busy = {
            let mut look = [0.0f32; LOOK_INPUTS];
            look[0] = 3.0;
            look
        };
        let quiet = {
            let mut look = busy;
            look[0] = 1.0;
            look
        };
        assert!(whole.log_odds(3.0, &busy) < whole.log_odds(3.0, &quiet));
        // No share is the stage's curve; half a share, half the way in log-odds.
        let none = regression.blend(&stage, 0.0);
        let curve = f64::from(stage.bias) + f64::from(stage.score_weight) * 3.0;
        assert!((none.log_odds(3.0, &busy) - curve).abs() < 1e-6);
        let half = regression.blend(&stage, 0.5);
        let midway = (curve + whole.log_odds(3.0, &busy)) / 2.0;
        assert!((half.log_odds(3.0, &busy) - midway).abs() < 1e-4);
        // A stage with the look passes the load check.
        let with = FeedbackStage {
            look: Some(half),
            ..stage
        };
        assert!(with.matches_this_build());
    }
}
