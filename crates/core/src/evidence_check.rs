//! Whether the verdict evidence still means what the feedback stage learned.
//!
//! The stage learned, from the verdicts decided before it was trained, what chance of fraud
//! each evidence step gives by itself ("≥ 10 payments at this counter were confirmed fraud in
//! the last 7 days: 0.72"). Once the model is live, the auditors' verdicts on the payments it
//! scored say how often that evidence really went with fraud: of the reviewed payments that
//! carried the step when they were scored, the share confirmed. A payment's chance of fraud is
//! at least its evidence's (the noisy or's floor, see `aegis_core::feedback::FeedbackStage`),
//! so a share clearly below the step's chance means the evidence now lifts payments that
//! auditors dismiss: the Model page flags the step and says so, and `launch feedback-bench`
//! reports the same check for its live period. A retrain learns from these verdicts: once
//! its stage passes the held-out check, train learns it again from every verdict in its window
//! (on the seed-7 bench a retrain at the end of the live period learned 0.50 for the step; it
//! learned 0.77 while the stage was fitted on the verdicts before the held-out period only).
//!
//! Why the page needs it (BENCHMARKS.md, issue 12): on the seed-7 bench the stage learned 0.72
//! for that step from a history where 77 % of the payments carrying it were fraud; of the 152
//! live payments carrying it, all reviewed, 38 % were. Nothing else on the page showed it.

use crate::domain::Payment;
use crate::error::Result;
use crate::feedback::{Finding, STAGE_INPUTS, VerdictBook};
use crate::metrics::FeedbackReport;
use crate::sql::{Row, Sql};
use crate::time::{EventTime, parse_timestamp};
use crate::values;

/// Fewer reviewed payments with a step than this say nothing about it.
pub const MIN_REVIEWED: usize = 30;

/// One payment the current model scored and an auditor decided: the evidence inputs it was
/// scored with, and whether it was confirmed fraud.
#[derive(Debug, Clone, PartialEq)]
pub struct Reviewed {
    pub inputs: [f32; STAGE_INPUTS],
    pub confirmed: bool,
}

/// The payments scored by `model_version` whose latest verdict is a finding (confirmed or
/// dismissed; `needs_field_check` is none), each with the evidence from the verdicts decided
/// before its own time, as the monitor scored it.
pub fn reviewed(sql: &mut dyn Sql, model_version: &str) -> Result<Vec<Reviewed>> {
    let book = VerdictBook::load(sql)?;
    if book.is_empty() {
        return Ok(Vec::new());
    }
    let payments = sql.rows(
        "SELECT DISTINCT t.transaction_id, t.beneficiary_id, t.account_id, t.agent_id, t.timestamp \
         FROM verdicts v JOIN transactions t ON t.transaction_id = v.transaction_id \
         WHERE t.model_version = ?",
        values![model_version],
        |row| {
            let timestamp: String = row.at(4)?;
            Ok((
                row.at::<i64>(0)?,
                Payment {
                    beneficiary_id: row.at(1)?,
                    account_id: row.at(2)?,
                    agent_id: row.at(3)?,
                    scheme: String::new(),
                    amount_paise: 0,
                    time: parse_timestamp(&timestamp)?,
                    location: None,
                },
            ))
        },
    )?;
    Ok(payments
        .into_iter()
        .filter_map(|(id, payment)| {
            let finding = book.finding_before(id, EventTime::MAX)?;
            Some(Reviewed {
                inputs: book.evidence(&payment).inputs(),
                confirmed: finding == Finding::Confirmed,
            })
        })
        .collect())
}

/// Of `reviewed`, how many carried stage input `input`, and how many of those were confirmed.
fn tally(reviewed: &[Reviewed], input: usize) -> (usize, usize) {
    reviewed
        .iter()
        .filter(|payment| payment.inputs[input] > 0.0)
        .fold((0, 0), |(carried, confirmed), payment| {
            (carried + 1, confirmed + usize::from(payment.confirmed))
        })
}

/// How many evidence steps are checked (and shown): the largest chances.
pub const STEPS_CHECKED: usize = 12;

/// One evidence step against the verdicts on the model's payments.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCheck {
    /// The stage input it is ([`crate::feedback::Evidence::inputs`] order).
    pub input: usize,
    /// `counter_confirmed_7d ≥ 10`.
    pub name: String,
    /// The chance of fraud it gives by itself, as learned.
    pub chance: f32,
    /// Reviewed payments that carried it, and how many of them were confirmed.
    pub carried: usize,
    pub confirmed: usize,
    /// [`falls_short`].
    pub short: bool,
}

impl StepCheck {
    /// Counts the payments of `reviewed` that carried the step, and decides [`falls_short`].
    pub fn count(&mut self, reviewed: &[Reviewed]) {
        (self.carried, self.confirmed) = tally(reviewed, self.input);
        self.short = falls_short(self.chance, self.carried, self.confirmed);
    }

    /// The share of the payments that carried the step that were confirmed; `None` without any.
    pub fn share(&self) -> Option<f64> {
        (self.carried > 0).then(|| self.confirmed as f64 / self.carried as f64)
    }
}

/// The steps of `report` that raise the chance of fraud (by 0.01 at least over the step
/// below), the [`STEPS_CHECKED`] largest first, each counted over `reviewed`.
pub fn check(report: &FeedbackReport, reviewed: &[Reviewed]) -> Vec<StepCheck> {
    report
        .rising_chances(0.01)
        .into_iter()
        .take(STEPS_CHECKED)
        .filter_map(|(name, chance)| {
            let mut step = StepCheck {
                input: report.chances.iter().position(|(n, _)| n == name)?,
                name: name.to_string(),
                chance,
                carried: 0,
                confirmed: 0,
                short: false,
            };
            step.count(reviewed);
            Some(step)
        })
        .collect()
}

/// Whether `confirmed` of `carried` reviewed payments is clearly below `chance`: at least
/// [`MIN_REVIEWED`] payments, and a share more than two standard errors of a share at `chance`
/// below it (about one time in forty by luck alone when the chance is right).
pub fn falls_short(chance: f32, carried: usize, confirmed: usize) -> bool {
    if carried < MIN_REVIEWED {
        return false;
    }
    let (chance, n) = (f64::from(chance), carried as f64);
    let share = confirmed as f64 / n;
    share < chance - 2.0 * (chance * (1.0 - chance) / n).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reviewed_with(input: usize, carried: usize, confirmed: usize) -> Vec<Reviewed> {
        (0..carried + 5)
            .map(|i| {
                let mut inputs = [0.0; STAGE_INPUTS];
                if i < carried {
                    inputs[input] = 1.0;
                }
                Reviewed {
                    inputs,
                    confirmed: i < confirmed || i >= carried,
                }
            })
            .collect()
    }

    #[test]
    fn a_tally_counts_only_the_payments_that_carried_the_step() {
        let reviewed = reviewed_with(7, 40, 15);
        assert_eq!(tally(&reviewed, 7), (40, 15));
        assert_eq!(tally(&reviewed, 8), (0, 0));
    }

    #[test]
    fn a_share_falls_short_only_when_clearly_below_the_chance_on_enough_payments() {
        // The seed-7 bench: 0.72 learned, 58 of 152 confirmed live.
        assert!(falls_short(0.72, 152, 58));
        // As often confirmed as learned, or more: fine.
        assert!(!falls_short(0.72, 152, 110));
        assert!(!falls_short(0.30, 152, 100));
        // A little below, within chance: 0.72 of 40 is 28.8, two standard errors 0.14.
        assert!(!falls_short(0.72, 40, 25));
        assert!(falls_short(0.72, 40, 20));
        // Too few payments to say.
        assert!(!falls_short(0.72, MIN_REVIEWED - 1, 0));
        assert!(falls_short(0.72, MIN_REVIEWED, 0));
    }
}
