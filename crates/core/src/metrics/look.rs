//! How `train` judged the feedback stage's look at each share: the figures behind the choice,
//! kept as data so that the Model page can lay them out as a table and the sentence in
//! `look_note` is written from the same numbers.

use serde::{Deserialize, Serialize};

/// Every share of the look `train` tried, with what decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookTrial {
    /// The held-out rows' merit (recall and average precision per kind) without a look.
    pub merit_without: f64,
    /// How much a share must raise that merit to be used.
    pub min_gain: f64,
    /// Each share tried, smallest first.
    pub shares: Vec<LookShare>,
    /// The index of the share train used ([`LookTrial::judged`] set it by [`LookTrial::best`]),
    /// `None` for no look: recorded, so that a later rule never re-judges an older model.
    pub used: Option<usize>,
}

/// One share of the look, judged on the held-out rows and on blocks of the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookShare {
    /// How much of the look's regression is blended into the stage's score curve (0–1).
    pub share: f32,
    /// The held-out rows' merit with it.
    pub merit: f64,
    /// Held-out frauds the alert budget no longer catches with it, summed over the kinds.
    pub held_out_lost: usize,
    /// Per kind of fraud the share moved across the budget in the blocks of the training
    /// rows, in the kinds' order: only kinds with a swap.
    #[serde(default)]
    pub blocks: Vec<KindSwaps>,
    /// Kinds whose held-out average precision it lowered by a named margin or more.
    #[serde(default)]
    pub lowered: Vec<Lowered>,
}

/// A kind's frauds a share swaps across the budget in the blocks of the training rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindSwaps {
    /// The kind's name; `None` for frauds without a type.
    pub kind: Option<String>,
    /// Caught without the look and not with it.
    pub lost: usize,
    /// Caught only with it.
    pub gained: usize,
    /// The part of the net loss that chance does not explain (0 when within chance).
    pub beyond_chance: usize,
}

/// A kind whose held-out average precision a share lowered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lowered {
    /// The kind's name; `None` for frauds without a type.
    pub kind: Option<String>,
    /// Its held-out average precision without the look.
    pub before: f64,
    /// And with the share.
    pub after: f64,
}

impl Lowered {
    /// The kind's name, frauds without a type as such.
    pub fn name(&self) -> &str {
        kind_name(self.kind.as_deref())
    }
}

/// Why a share was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Held-out frauds fell below the budget.
    LosesHeldOut,
    /// A kind lost more frauds in the blocks than chance explains.
    LosesInBlocks,
    /// It raised the merit by less than the trial's minimum gain.
    GainsTooLittle,
    /// It earns its place, but a share with a higher merit (or a smaller one with the same)
    /// was used.
    Outranked,
}

impl KindSwaps {
    /// The kind's name, frauds without a type as such.
    pub fn name(&self) -> &str {
        kind_name(self.kind.as_deref())
    }
}

fn kind_name(kind: Option<&str>) -> &str {
    kind.unwrap_or("unlabeled frauds")
}

impl LookShare {
    /// Frauds lost in the blocks beyond those gained and beyond chance, over the kinds.
    pub fn beyond_chance(&self) -> usize {
        self.blocks.iter().map(|kind| kind.beyond_chance).sum()
    }

    /// Whether it raises the merit over `without` by `min_gain` (a merit that is not a number
    /// raises nothing).
    fn gains_enough(&self, without: f64, min_gain: f64) -> bool {
        self.merit >= without + min_gain
    }

    /// Whether it loses no fraud, held out or in the blocks, and raises the merit enough.
    fn earns(&self, without: f64, min_gain: f64) -> bool {
        self.held_out_lost == 0 && self.beyond_chance() == 0 && self.gains_enough(without, min_gain)
    }

    /// The kinds that lost more frauds than they gained in the blocks, as `NAME −LOST +GAINED`.
    pub fn net_losses(&self) -> String {
        self.blocks
            .iter()
            .filter(|kind| kind.lost > kind.gained)
            .map(|kind| format!("{} −{} +{}", kind.name(), kind.lost, kind.gained))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The kinds whose held-out average precision fell, as `NAME 0.71 → 0.63`.
    pub fn lowered_text(&self) -> String {
        self.lowered
            .iter()
            .map(|l| {
                format!(
                    "{} {:.2} → {:.2}",
                    kind_name(l.kind.as_deref()),
                    l.before,
                    l.after
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The share's part of the note: `0.5: 0.919, but …, in the earlier blocks … (…)`.
    fn note(&self) -> String {
        let lost = match self.held_out_lost {
            0 => String::new(),
            1 => ", but 1 held-out fraud fell below the budget".to_string(),
            lost => format!(", but {lost} held-out frauds fell below the budget"),
        };
        let named = self.net_losses();
        let blocks = match self.beyond_chance() {
            _ if named.is_empty() => String::new(),
            0 => format!(", in the earlier blocks {named} (within chance)"),
            beyond => format!(", in the earlier blocks {named} ({beyond} beyond chance)"),
        };
        let lowered = match self.lowered_text() {
            text if text.is_empty() => text,
            text => format!(" (average precision lowered: {text})"),
        };
        format!("{}: {:.3}{lost}{blocks}{lowered}", self.share, self.merit)
    }
}

impl LookTrial {
    /// The trial of `shares`, with the share [`best`](Self::best) picks recorded as used.
    pub fn judged(merit_without: f64, min_gain: f64, shares: Vec<LookShare>) -> LookTrial {
        let mut trial = LookTrial {
            merit_without,
            min_gain,
            shares,
            used: None,
        };
        trial.used = trial.best();
        trial
    }

    /// The share to use (its index): the best merit among those that lose no fraud of any
    /// kind and raise the merit by [`min_gain`](Self::min_gain); the smaller share on a tie.
    /// `None`: no look.
    pub fn best(&self) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (index, share) in self.shares.iter().enumerate() {
            if share.earns(self.merit_without, self.min_gain)
                && best.is_none_or(|b| share.merit > self.shares[b].merit)
            {
                best = Some(index);
            }
        }
        best
    }

    /// The share used, if any.
    pub fn used_share(&self) -> Option<f32> {
        self.used
            .and_then(|index| self.shares.get(index))
            .map(|share| share.share)
    }

    /// Why the share at `index` was not used, every rule it fails; empty when it was used.
    pub fn refusals(&self, index: usize) -> Vec<Refusal> {
        let share = &self.shares[index];
        if self.used == Some(index) {
            return Vec::new();
        }
        let failed = [
            (share.held_out_lost > 0, Refusal::LosesHeldOut),
            (share.beyond_chance() > 0, Refusal::LosesInBlocks),
            (
                !share.gains_enough(self.merit_without, self.min_gain),
                Refusal::GainsTooLittle,
            ),
        ];
        let refusals: Vec<Refusal> = failed
            .into_iter()
            .filter_map(|(fails, refusal)| fails.then_some(refusal))
            .collect();
        if refusals.is_empty() {
            vec![Refusal::Outranked]
        } else {
            refusals
        }
    }

    /// The trial in a sentence, as train's log and `look_note` give it.
    pub fn note(&self) -> String {
        let tried = self
            .shares
            .iter()
            .map(LookShare::note)
            .collect::<Vec<_>>()
            .join("; ");
        match self.used_share() {
            Some(share) => format!(
                "used at share {share}: the held-out rows' merit (recall and average precision \
                 per kind) was {:.3} without it; at each share {tried}",
                self.merit_without
            ),
            None => format!(
                "not used: no share raised the held-out rows' merit (recall and average precision \
                 per kind) by {} over {:.3} without losing a fraud of any kind there, or more of \
                 a kind than chance explains in the earlier blocks (at each share {tried})",
                self.min_gain, self.merit_without
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(share: f32, merit: f64, held_out_lost: usize) -> LookShare {
        LookShare {
            share,
            merit,
            held_out_lost,
            blocks: Vec::new(),
            lowered: Vec::new(),
        }
    }

    fn trial(without: f64, figures: &[(f64, usize)]) -> LookTrial {
        LookTrial::judged(
            without,
            0.01,
            figures
                .iter()
                .zip([0.25, 0.5, 0.75, 1.0])
                .map(|(&(merit, lost), s)| share(s, merit, lost))
                .collect(),
        )
    }

    fn swaps(kind: &str, lost: usize, gained: usize, beyond_chance: usize) -> KindSwaps {
        KindSwaps {
            kind: Some(kind.into()).filter(|k: &String| !k.is_empty()),
            lost,
            gained,
            beyond_chance,
        }
    }

    /// The collusion guard: the whole regression ranks best but drops frauds of one kind at
    /// the budget, so a smaller share that loses none is used; a gain under the minimum is
    /// no reason to lower scores; each share that is not used names every rule it fails.
    #[test]
    fn the_look_is_used_at_the_best_share_that_loses_no_fraud_and_earns_its_place() {
        // Seed 8's held-out figures by hand: 0.75 and 1 rank better but lose collusions.
        let seed_8 = trial(0.746, &[(0.812, 0), (0.844, 0), (0.850, 3), (0.840, 18)]);
        assert_eq!(seed_8.used, Some(1));
        assert_eq!(seed_8.used_share(), Some(0.5));
        assert_eq!(
            (0..4).map(|i| seed_8.refusals(i)).collect::<Vec<_>>(),
            [
                vec![Refusal::Outranked],
                vec![],
                vec![Refusal::LosesHeldOut],
                vec![Refusal::LosesHeldOut]
            ]
        );
        // Card payments: the best share that loses nothing gains 0.004.
        let card = trial(0.526, &[(0.530, 0), (0.533, 1), (0.532, 1), (0.508, 2)]);
        assert_eq!(card.used, None);
        assert_eq!(card.refusals(0), [Refusal::GainsTooLittle]);
        assert_eq!(
            card.refusals(3),
            [Refusal::LosesHeldOut, Refusal::GainsTooLittle],
            "every rule it fails"
        );
        // Every share loses a fraud: none is used, however high its merit.
        assert_eq!(trial(0.5, &[(0.9, 1), (0.95, 2)]).best(), None);
        // A tie goes to the smaller share.
        assert_eq!(trial(0.5, &[(0.6, 0), (0.6, 0)]).best(), Some(0));
        // A share that loses frauds in the earlier blocks is not used.
        let mut seasonal = trial(0.691, &[(0.736, 0), (0.754, 0)]);
        seasonal.shares[1].blocks = vec![swaps("mild_inflation", 40, 0, 21)];
        seasonal.used = seasonal.best();
        assert_eq!(seasonal.used, Some(0));
        assert_eq!(seasonal.refusals(1), [Refusal::LosesInBlocks]);
    }

    /// The note is written from the figures: each share's merit, its held-out losses, the
    /// kinds with a net loss in the blocks (gains alone are not named), whether that is
    /// within chance, and the kinds whose average precision fell.
    #[test]
    fn the_note_names_what_decided_each_share() {
        let mut trial = trial(0.797, &[(0.873, 0), (0.930, 2)]);
        trial.shares[0].blocks = vec![
            swaps("compromised_counter", 0, 3, 0),
            swaps("agent_collusion", 6, 1, 0),
        ];
        trial.shares[0].lowered = vec![Lowered {
            kind: Some("agent_collusion".into()),
            before: 0.871,
            after: 0.838,
        }];
        trial.shares[1].blocks = vec![swaps("", 22, 5, 2), swaps("off_hours", 1, 1, 0)];
        assert_eq!(
            trial.note(),
            "used at share 0.25: the held-out rows' merit (recall and average precision per \
             kind) was 0.797 without it; at each share 0.25: 0.873, in the earlier blocks \
             agent_collusion −6 +1 (within chance) (average precision lowered: agent_collusion \
             0.87 → 0.84); 0.5: 0.930, but 2 held-out frauds fell below the budget, in the \
             earlier blocks unlabeled frauds −22 +5 (2 beyond chance)"
        );
        trial.shares[0].held_out_lost = 1;
        trial.used = trial.best();
        assert!(trial.note().starts_with(
            "not used: no share raised the held-out rows' merit (recall and average precision \
             per kind) by 0.01 over 0.797 without losing a fraud of any kind there, or more of \
             a kind than chance explains in the earlier blocks (at each share 0.25: 0.873, but \
             1 held-out fraud fell below the budget, in"
        ));
    }

    /// A share whose merit is not a number gains nothing: refused as such, never used.
    #[test]
    fn a_merit_that_is_not_a_number_is_no_gain() {
        let trial = trial(0.5, &[(f64::NAN, 0)]);
        assert_eq!(trial.used, None);
        assert_eq!(trial.refusals(0), [Refusal::GainsTooLittle]);
    }

    /// metrics.json of a model trained before the trial was recorded still loads, without it.
    #[test]
    fn a_report_without_the_trial_still_loads() {
        let report: crate::metrics::FeedbackReport = serde_json::from_value(serde_json::json!({
            "used": true,
            "note": "trained on 41 confirmed frauds",
            "verdicts": 170,
            "confirmed": 41,
            "dismissed": 120,
            "presumed_ordinary": 3,
            "look_note": "used at share 0.5: the held-out rows' merit went from 0.767 to 0.859",
            "test_rows_with_evidence": 12,
            "unsupervised": null
        }))
        .unwrap();
        assert_eq!(report.look_trial, None);
        assert!(report.look_note.starts_with("used at share 0.5"));
    }
}
