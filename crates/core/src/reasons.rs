//! The `reasons` column: why the monitor flagged a payment (the features that contributed most
//! to its reconstruction error, as sentences) or why it could not score it. Written by the
//! monitor and read by the dashboard through these types, so both sides agree by construction.

use serde::{Deserialize, Serialize};

use crate::features::{Category, Feature, FeatureContext, explain_steady_change};
use crate::feedback::{EVIDENCE_COUNT, EVIDENCE_NAMES, Evidence};

/// Features explaining less than this share of the error are not listed.
const MIN_SHARE: f32 = 0.08;
/// At most this many reasons per transaction.
const MAX_REASONS: usize = 3;
/// The name a steady amount's change goes by in reasons (it is no model input).
pub const STEADY_CHANGE: &str = "steady_amount_change";

/// The `reasons` JSON of one transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reasons {
    /// The category of the leading reason (`error` for a row that could not be scored).
    pub category: Category,
    pub reasons: Vec<Reason>,
}

/// One sentence of [`Reasons`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The feature's name; `None` for an error.
    pub feature: Option<String>,
    pub category: Category,
    /// Share of the score, 0–1, to three decimals: of the row's feature evidence, a steady
    /// amount's change and the auditors' verdicts together.
    pub share: f32,
    pub text: String,
}

/// How to correct a payment that could not be scored, said with each such row.
pub const CORRECTING: &str = "To correct it, store the corrected payment again as a new row \
     with a new ref: the monitor scores each row once, and does not come back to one edited in place";

impl Reasons {
    /// Reasons for a scored row from its per-feature squared errors (model input order): the
    /// largest contributions first, at most [`MAX_REASONS`], none under [`MIN_SHARE`] after the
    /// first, and never the same sentence twice (two features can describe one fact).
    pub fn from_errors(squared_errors: &[f32], context: &FeatureContext) -> Reasons {
        let mut ranked: Vec<Feature> = Feature::ALL.to_vec();
        ranked.sort_by(|a, b| squared_errors[b.index()].total_cmp(&squared_errors[a.index()]));
        let total: f32 = squared_errors.iter().sum();
        let mut reasons: Vec<Reason> = Vec::new();
        for &feature in &ranked {
            let share = if total > 0.0 {
                squared_errors[feature.index()] / total
            } else {
                0.0
            };
            if reasons.len() == MAX_REASONS || (share < MIN_SHARE && !reasons.is_empty()) {
                break;
            }
            let text = feature.explain(context);
            if reasons.iter().any(|reason| reason.text == text) {
                continue;
            }
            reasons.push(Reason {
                feature: Some(feature.name().to_string()),
                category: feature.category(),
                share: (share * 1000.0).round() / 1000.0,
                text,
            });
        }
        Reasons {
            category: ranked[0].category(),
            reasons,
        }
    }

    /// Adds the auditors' verdicts that raised a score (`contributions`: what each evidence
    /// value added, [`crate::feedback::FeedbackStage::contributions`]; `score`: the final score). The strongest
    /// verdict sentence leads when the verdicts added at least half of the score, and comes last
    /// otherwise; either way the list keeps at most [`MAX_REASONS`] sentences.
    pub fn with_verdicts(
        mut self,
        contributions: &[f32; EVIDENCE_COUNT],
        evidence: &Evidence,
        score: f32,
    ) -> Reasons {
        let added: f32 = contributions.iter().filter(|&&c| c > 0.0).sum();
        let strongest = (0..EVIDENCE_COUNT)
            .filter(|&i| contributions[i] > 0.0)
            .max_by(|&a, &b| contributions[a].total_cmp(&contributions[b]));
        let Some(index) = strongest else {
            return self;
        };
        let Some(text) = evidence.explain(index) else {
            return self;
        };
        let share = if score > 0.0 {
            (added / score).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let reason = Reason {
            feature: Some(EVIDENCE_NAMES[index].to_string()),
            category: Category::Verdicts,
            share: self.make_room(share),
            text,
        };
        if share >= 0.5 {
            self.category = Category::Verdicts;
            self.reasons.insert(0, reason);
        } else {
            self.reasons.push(reason);
        }
        if self.reasons.len() > MAX_REASONS {
            let last = self.reasons.len() - 1;
            // Keep the verdict sentence wherever it is; drop the weakest feature.
            let drop = if self.reasons[last].category == Category::Verdicts {
                last - 1
            } else {
                last
            };
            self.reasons.remove(drop);
        }
        self
    }

    /// Adds a steady amount's change (`surprise`: what it added to the rarity detector, in the
    /// units of `evidence`, the row's per-feature evidence): first when it is the strongest,
    /// else after the features, keeping at most [`MAX_REASONS`] sentences. Nothing when it
    /// added nothing.
    pub fn with_steady_change(
        mut self,
        surprise: f32,
        evidence: &[f32],
        context: &FeatureContext,
    ) -> Reasons {
        let Some(text) = explain_steady_change(context).filter(|_| surprise > 0.0) else {
            return self;
        };
        let strongest = evidence.iter().copied().fold(0.0f32, f32::max);
        let total: f32 = evidence.iter().sum();
        let share = surprise / (surprise + total);
        let reason = Reason {
            feature: Some(STEADY_CHANGE.to_string()),
            category: Category::Amount,
            share: self.make_room(share),
            text,
        };
        if surprise >= strongest {
            self.category = Category::Amount;
            self.reasons.insert(0, reason);
            self.reasons.truncate(MAX_REASONS);
        } else if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason);
        }
        self
    }

    /// Makes room for one more reason worth `share` of the score: the reasons already listed
    /// had the whole score between them, and now share what it leaves. Returns `share` as
    /// stored (to three decimals).
    fn make_room(&mut self, share: f32) -> f32 {
        let round = |share: f32| (share * 1000.0).round() / 1000.0;
        for reason in &mut self.reasons {
            reason.share = round(reason.share * (1.0 - share));
        }
        round(share)
    }

    /// Reasons for a row that could not be scored. They say how to correct it: the monitor
    /// scores each row once, so a row corrected in place stays unscored (and a restart that
    /// replays it would count it in the history the running monitor left it out of).
    pub fn error(problem: &str) -> Reasons {
        Reasons {
            category: Category::Error,
            reasons: vec![Reason {
                feature: None,
                category: Category::Error,
                share: 1.0,
                text: format!("not scored: {problem}. {CORRECTING}"),
            }],
        }
    }

    /// The text stored in the `reasons` column.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("reasons serialise")
    }

    /// Reads the `reasons` column; `None` for text that is not this JSON (an auditor's own
    /// note, a future format), which callers show as it is.
    pub fn parse(text: &str) -> Option<Reasons> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::FEATURE_COUNT;

    #[test]
    fn verdicts_lead_the_reasons_when_they_made_most_of_the_score() {
        let context = FeatureContext {
            amount_paise: 5_000_000,
            scheme: "PM-KISAN".into(),
            scheme_typical_paise: Some(200_000),
            ..FeatureContext::default()
        };
        let mut errors = [0.0f32; FEATURE_COUNT];
        errors[Feature::AmountVsSchemeLog.index()] = 6.0;
        errors[Feature::HourRarityAtCounter.index()] = 3.0;
        errors[Feature::AmountLog.index()] = 1.0;
        let mut evidence = Evidence::default();
        evidence.values[0] = 2.0;
        evidence.values[1] = 3.0;
        let mut contributions = [0.0f32; EVIDENCE_COUNT];
        contributions[0] = 2.5;
        contributions[1] = 0.5;
        contributions[2] = -0.4;
        let led =
            Reasons::from_errors(&errors, &context).with_verdicts(&contributions, &evidence, 4.0);
        assert_eq!(led.category, Category::Verdicts);
        assert_eq!(led.reasons.len(), 3);
        assert_eq!(
            led.reasons[0].text,
            "2 payments at this counter were confirmed fraud in the last 7 days"
        );
        assert_eq!(led.reasons[0].share, 0.75);
        // The row's reasons share what the verdicts left, as they shared the whole before.
        let alone = Reasons::from_errors(&errors, &context);
        for (after, before) in led.reasons[1..].iter().zip(&alone.reasons) {
            assert_eq!(after.text, before.text);
            assert!(
                (after.share - before.share * 0.25).abs() < 1e-3,
                "{after:?}"
            );
        }
        assert_eq!(
            led.reasons[0].feature.as_deref(),
            Some("counter_confirmed_7d")
        );
        // A score made mostly by the row: the verdicts come last, the row's reason leads.
        let trailing =
            Reasons::from_errors(&errors, &context).with_verdicts(&contributions, &evidence, 12.0);
        assert_eq!(trailing.category, Category::Amount);
        assert_eq!(trailing.reasons.len(), 3);
        assert_eq!(trailing.reasons[2].category, Category::Verdicts);
        // Verdicts that only lowered the score are not a reason.
        let lowered = Reasons::from_errors(&errors, &context).with_verdicts(
            &[-1.0; EVIDENCE_COUNT],
            &evidence,
            4.0,
        );
        assert_eq!(lowered, Reasons::from_errors(&errors, &context));
    }

    #[test]
    fn a_steady_amounts_change_leads_when_it_counted_most_and_is_absent_when_it_did_not() {
        let context = FeatureContext {
            amount_paise: 115_000,
            scheme: "NSAP-OAP".into(),
            scheme_typical_paise: Some(100_000),
            steady_paise: Some(100_000),
            steady_payments: 12,
            steady_change_share: 0.0005,
            ..FeatureContext::default()
        };
        let mut errors = [0.0f32; FEATURE_COUNT];
        errors[Feature::AmountVsSchemeLog.index()] = 1.0;
        errors[Feature::HourRarityAtCounter.index()] = 0.5;
        let led =
            Reasons::from_errors(&errors, &context).with_steady_change(3.0, &errors, &context);
        assert_eq!(led.category, Category::Amount);
        assert_eq!(led.reasons[0].feature.as_deref(), Some(STEADY_CHANGE));
        assert_eq!(
            led.reasons[0].text,
            "₹1,150 after ₹1,000 in each of this beneficiary's 12 NSAP-OAP payments before; 0.05 % of NSAP-OAP payments to steady payers change the amount"
        );
        assert_eq!(led.reasons[0].share, 0.667);
        assert!(led.reasons.len() <= 3);
        // The features' shares are now of everything that counted: 1.0 of 4.5.
        assert_eq!(led.reasons[1].share, 0.222);
        // Weaker than the row's strongest feature: after it.
        let trailing =
            Reasons::from_errors(&errors, &context).with_steady_change(0.7, &errors, &context);
        assert_eq!(
            trailing.reasons[0].feature.as_deref(),
            Some("amount_vs_scheme_log")
        );
        assert_eq!(
            trailing.reasons.last().unwrap().feature.as_deref(),
            Some(STEADY_CHANGE)
        );
        // It added nothing (the model does not combine rarity), or nothing changed.
        let plain = Reasons::from_errors(&errors, &context);
        assert_eq!(
            plain.clone().with_steady_change(0.0, &errors, &context),
            plain
        );
        let unchanged = FeatureContext {
            amount_paise: 100_000,
            ..context.clone()
        };
        assert_eq!(
            Reasons::from_errors(&errors, &unchanged).with_steady_change(3.0, &errors, &unchanged),
            Reasons::from_errors(&errors, &unchanged)
        );
    }

    #[test]
    fn reasons_lead_with_the_largest_error_and_skip_repeated_sentences() {
        let context = FeatureContext {
            amount_paise: 5_000_000,
            scheme: "PM-KISAN".into(),
            scheme_typical_paise: Some(200_000),
            ..FeatureContext::default()
        };
        let mut errors = [0.0f32; FEATURE_COUNT];
        // amount_vs_scheme and amount_log say the same sentence; the second is skipped.
        errors[Feature::AmountVsSchemeLog.index()] = 6.0;
        errors[Feature::AmountLog.index()] = 3.0;
        errors[Feature::HourRarityAtCounter.index()] = 1.0;
        let reasons = Reasons::from_errors(&errors, &context);
        assert_eq!(reasons.category, Category::Amount);
        assert_eq!(reasons.reasons.len(), 2);
        assert_eq!(reasons.reasons[0].share, 0.6);
        assert!(reasons.reasons[0].text.contains("25.0× the usual PM-KISAN"));
        assert_eq!(reasons.reasons[1].category, Category::Timing);
        let stored = reasons.to_json();
        assert!(stored.contains("\"category\":\"amount\""), "{stored}");
        assert_eq!(Reasons::parse(&stored), Some(reasons));
    }

    #[test]
    fn an_unscorable_row_reads_back_as_an_error_and_other_text_is_not_reasons() {
        let reasons = Reasons::error("amount is missing");
        let back = Reasons::parse(&reasons.to_json()).unwrap();
        assert_eq!(back.category, Category::Error);
        assert_eq!(back.reasons[0].feature, None);
        assert_eq!(
            back.reasons[0].text,
            format!("not scored: amount is missing. {CORRECTING}")
        );
        assert_eq!(Reasons::parse("checked by phone, fine"), None);
    }
}
