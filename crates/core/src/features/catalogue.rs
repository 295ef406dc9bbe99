//! The feature vocabulary: every feature declared once, as a [`Feature`] variant, with its name,
//! its [`Category`], the window it looks back over, how its value is computed from the
//! [`FeatureContext`], and the sentence an auditor reads. Every property is an exhaustive
//! `match`, so a new feature without a category, a value or a sentence does not compile.
//!
//! The history that fills a [`FeatureContext`] is [`crate::features::FeatureState`]'s.

use serde::{Deserialize, Serialize};

use crate::domain::format_rupees;
use crate::time::{DAY, HOUR, MINUTE};

/// The model's inputs, in model input order. The order and the names are the feature set's
/// identity ([`crate::features::feature_set_id`]): a model trained on another set is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    AmountVsSchemeLog,
    AmountLog,
    HourRarityAtCounter,
    WeekdaySin,
    WeekdayCos,
    HundredsOfKmFromUsualPlace,
    BeneficiarySameScheme1hLog,
    BeneficiaryPayments24hLog,
    BeneficiaryPayments30dLog,
    BeneficiaryHoursSincePreviousLog,
    SameSchemeGapRarity,
    SameAmountGapRarity,
    AmountVsOwnHistoryLog,
    AccountOtherBeneficiaries30dLog,
    AccountNewForBeneficiary,
    AgentPayments10minLog,
    AgentRateVsUsualLog,
    AgentBeneficiaries1hLog,
    AgentNewForBeneficiary,
    AgentFirstVisits15min,
    AgentFirstVisits6hVsUsual,
}

/// Number of features.
pub const FEATURE_COUNT: usize = Feature::ALL.len();

/// Names of the features, in model input order.
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = {
    let mut names = [""; FEATURE_COUNT];
    let mut index = 0;
    while index < FEATURE_COUNT {
        names[index] = Feature::ALL[index].name();
        index += 1;
    }
    names
};

/// Longest window any feature looks back over; older history is pruned.
pub(crate) const HISTORY_WINDOW: i64 = 30 * DAY;
/// The rarity features (decades below one in ten of the scheme's payments) stop here: one in
/// ten million.
const MAX_RARITY: f64 = 6.0;
/// How far back the slow first-visit count looks.
pub(crate) const FIRST_VISIT_WINDOW: i64 = 6 * HOUR;
/// Hours-since-previous is capped here (and a first payment counts as this long ago).
pub(crate) const MAX_GAP_HOURS: f64 = 30.0 * 24.0;

/// What kind of evidence a feature is, for the dashboard's colours and filters. `Error` is no
/// feature's: it marks a row that could not be scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Amount,
    Timing,
    Location,
    Duplicate,
    Burst,
    SharedAccount,
    Agent,
    /// Auditors' verdicts on earlier payments of the same counter, account or beneficiary.
    Verdicts,
    Error,
}

impl Category {
    /// Every category, in the order the dashboard's legend shows them.
    pub const ALL: [Category; 9] = [
        Category::Amount,
        Category::Timing,
        Category::Location,
        Category::Duplicate,
        Category::Burst,
        Category::SharedAccount,
        Category::Agent,
        Category::Verdicts,
        Category::Error,
    ];

    /// The code stored in the `reasons` JSON.
    pub fn code(self) -> &'static str {
        match self {
            Category::Amount => "amount",
            Category::Timing => "timing",
            Category::Location => "location",
            Category::Duplicate => "duplicate",
            Category::Burst => "burst",
            Category::SharedAccount => "shared_account",
            Category::Agent => "agent",
            Category::Verdicts => "verdicts",
            Category::Error => "error",
        }
    }

    pub fn from_code(code: &str) -> Option<Category> {
        Category::ALL
            .into_iter()
            .find(|category| category.code() == code)
    }

    /// The category as people read it.
    pub fn label(self) -> &'static str {
        match self {
            Category::SharedAccount => "shared account",
            other => other.code(),
        }
    }
}

/// The raw numbers behind a payment's features, kept for the sentences auditors read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureContext {
    pub amount_paise: i64,
    pub scheme: String,
    /// Median amount of the scheme so far (None for the first payment of a scheme).
    pub scheme_typical_paise: Option<i64>,
    pub seconds_of_day: i64,
    pub weekday: u32,
    /// Share of this counter's earlier payments made in this hour of the day (smoothed towards
    /// all counters' share, so a counter with little history is judged by everybody's hours);
    /// without a counter, the share of all payments.
    pub hour_share: f64,
    /// Whether `hour_share` is a counter's (else all payments').
    pub hour_share_at_counter: bool,
    pub km_from_usual_place: Option<f64>,
    /// Payments of the same scheme to this beneficiary in the last hour (a burst).
    pub same_scheme_1h: u32,
    pub beneficiary_payments_24h: u32,
    pub beneficiary_payments_30d: u32,
    pub hours_since_previous: Option<f64>,
    /// Days since this beneficiary's previous payment of the same scheme (None for the first).
    pub same_scheme_days_since: Option<f64>,
    /// The share of the scheme's earlier payments (first ones counting as never repeated) that
    /// came this soon or sooner after their beneficiary's previous payment of it.
    pub same_scheme_gap_share: f64,
    /// Days since this beneficiary was last paid the same amount of the same scheme, within the
    /// 30-day history.
    pub same_amount_days_since: Option<f64>,
    /// The share of the scheme's earlier payments that repeated such an amount this soon or
    /// sooner (payments repeating none within 30 days counting as never repeated).
    pub same_amount_gap_share: f64,
    /// The beneficiary's own typical (mean) amount in this scheme so far.
    pub own_typical_paise: Option<i64>,
    /// The amount this beneficiary was paid every time in this scheme, when paid at least
    /// twice and never another amount; with how many payments.
    pub steady_paise: Option<i64>,
    pub steady_payments: u32,
    /// The share of the scheme's payments to such steady payers that changed the amount.
    pub steady_change_share: f64,
    pub account_other_beneficiaries_30d: u32,
    pub account_new_for_beneficiary: bool,
    pub agent_payments_10min: u32,
    pub agent_usual_10min: f64,
    pub agent_beneficiaries_1h: u32,
    pub agent_new_for_beneficiary: bool,
    /// Payments in the last 15 minutes at this agent to beneficiaries who had never used it
    /// before, this one included.
    pub agent_first_visits_15min: u32,
    /// The same over the last six hours, this one included.
    pub agent_first_visits_6h: u32,
    /// How many of the counter's payments of the last six hours (this one included) would be
    /// first visits at its usual share of them.
    pub agent_first_visits_6h_expected: f64,
}

fn ln1p_count(count: u32) -> f32 {
    (f64::from(count)).ln_1p() as f32
}

/// How many decades rarer than one in ten a share is, up to [`MAX_RARITY`]: 0 for anything a
/// tenth of the scheme's payments do (a weekly wage repeating last week's amount), 2 for one in
/// a thousand. Ordinary shares all read 0, so the feature's usual spread stays small and a rare
/// repeat stands as far out of it as a count that is normally zero would.
fn rarity(share: f64) -> f32 {
    (-share.max(1e-12).log10() - 1.0).clamp(0.0, MAX_RARITY) as f32
}

fn flag(set: bool) -> f32 {
    f32::from(u8::from(set))
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

impl Feature {
    /// Every feature, in model input order.
    pub const ALL: [Feature; 21] = [
        Feature::AmountVsSchemeLog,
        Feature::AmountLog,
        Feature::HourRarityAtCounter,
        Feature::WeekdaySin,
        Feature::WeekdayCos,
        Feature::HundredsOfKmFromUsualPlace,
        Feature::BeneficiarySameScheme1hLog,
        Feature::BeneficiaryPayments24hLog,
        Feature::BeneficiaryPayments30dLog,
        Feature::BeneficiaryHoursSincePreviousLog,
        Feature::SameSchemeGapRarity,
        Feature::SameAmountGapRarity,
        Feature::AmountVsOwnHistoryLog,
        Feature::AccountOtherBeneficiaries30dLog,
        Feature::AccountNewForBeneficiary,
        Feature::AgentPayments10minLog,
        Feature::AgentRateVsUsualLog,
        Feature::AgentBeneficiaries1hLog,
        Feature::AgentNewForBeneficiary,
        Feature::AgentFirstVisits15min,
        Feature::AgentFirstVisits6hVsUsual,
    ];

    /// The feature at model input position `index`.
    pub fn at(index: usize) -> Feature {
        Feature::ALL[index]
    }

    /// Position in the model's input.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name stored in the model config and the `reasons` JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Feature::AmountVsSchemeLog => "amount_vs_scheme_log",
            Feature::AmountLog => "amount_log",
            Feature::HourRarityAtCounter => "hour_rarity_at_counter",
            Feature::WeekdaySin => "weekday_sin",
            Feature::WeekdayCos => "weekday_cos",
            Feature::HundredsOfKmFromUsualPlace => "hundreds_of_km_from_usual_place",
            Feature::BeneficiarySameScheme1hLog => "beneficiary_same_scheme_1h_log",
            Feature::BeneficiaryPayments24hLog => "beneficiary_payments_24h_log",
            Feature::BeneficiaryPayments30dLog => "beneficiary_payments_30d_log",
            Feature::BeneficiaryHoursSincePreviousLog => "beneficiary_hours_since_previous_log",
            Feature::SameSchemeGapRarity => "same_scheme_gap_rarity",
            Feature::SameAmountGapRarity => "same_amount_gap_rarity",
            Feature::AmountVsOwnHistoryLog => "amount_vs_own_history_log",
            Feature::AccountOtherBeneficiaries30dLog => "account_other_beneficiaries_30d_log",
            Feature::AccountNewForBeneficiary => "account_new_for_beneficiary",
            Feature::AgentPayments10minLog => "agent_payments_10min_log",
            Feature::AgentRateVsUsualLog => "agent_rate_vs_usual_log",
            Feature::AgentBeneficiaries1hLog => "agent_beneficiaries_1h_log",
            Feature::AgentNewForBeneficiary => "agent_new_for_beneficiary",
            Feature::AgentFirstVisits15min => "agent_first_visits_15min",
            Feature::AgentFirstVisits6hVsUsual => "agent_first_visits_6h_vs_usual",
        }
    }

    pub fn category(self) -> Category {
        match self {
            Feature::AmountVsSchemeLog | Feature::AmountLog | Feature::AmountVsOwnHistoryLog => {
                Category::Amount
            }
            Feature::HourRarityAtCounter | Feature::WeekdaySin | Feature::WeekdayCos => {
                Category::Timing
            }
            Feature::HundredsOfKmFromUsualPlace => Category::Location,
            Feature::SameAmountGapRarity | Feature::SameSchemeGapRarity => Category::Duplicate,
            Feature::BeneficiarySameScheme1hLog
            | Feature::BeneficiaryPayments24hLog
            | Feature::BeneficiaryPayments30dLog
            | Feature::BeneficiaryHoursSincePreviousLog => Category::Burst,
            Feature::AccountOtherBeneficiaries30dLog | Feature::AccountNewForBeneficiary => {
                Category::SharedAccount
            }
            Feature::AgentPayments10minLog
            | Feature::AgentRateVsUsualLog
            | Feature::AgentBeneficiaries1hLog
            | Feature::AgentNewForBeneficiary
            | Feature::AgentFirstVisits15min
            | Feature::AgentFirstVisits6hVsUsual => Category::Agent,
        }
    }

    /// How far back the feature looks (seconds), for those that count recent history.
    pub fn window(self) -> Option<i64> {
        match self {
            Feature::BeneficiarySameScheme1hLog | Feature::AgentBeneficiaries1hLog => Some(HOUR),
            Feature::BeneficiaryPayments24hLog => Some(DAY),
            Feature::BeneficiaryPayments30dLog
            | Feature::SameAmountGapRarity
            | Feature::AccountOtherBeneficiaries30dLog => Some(HISTORY_WINDOW),
            Feature::AgentPayments10minLog | Feature::AgentRateVsUsualLog => Some(10 * MINUTE),
            Feature::AgentFirstVisits15min => Some(15 * MINUTE),
            Feature::AgentFirstVisits6hVsUsual => Some(FIRST_VISIT_WINDOW),
            Feature::AmountVsSchemeLog
            | Feature::AmountLog
            | Feature::HourRarityAtCounter
            | Feature::WeekdaySin
            | Feature::WeekdayCos
            | Feature::HundredsOfKmFromUsualPlace
            | Feature::BeneficiaryHoursSincePreviousLog
            | Feature::AmountVsOwnHistoryLog
            | Feature::SameSchemeGapRarity
            | Feature::AccountNewForBeneficiary
            | Feature::AgentNewForBeneficiary => None,
        }
    }

    /// The model input value, from the raw numbers of the payment.
    pub fn value(self, context: &FeatureContext) -> f32 {
        let amount = context.amount_paise.max(1) as f64;
        match self {
            Feature::AmountVsSchemeLog => context
                .scheme_typical_paise
                .map_or(0.0, |typical| (amount / typical as f64).ln())
                as f32,
            Feature::AmountLog => (amount / 100.0).ln_1p() as f32,
            // How many times rarer than an even spread over the day this hour is where the
            // payment was made: below 1 for a busy hour, 100 for a counter's 1-in-2,400 hour.
            // Linear, not log: an hour a counter never works in should stand as far out as a
            // payment that never happens. Learned from the data, so a bank's night batches are
            // ordinary for the bank and a counter's 2 a.m. payment is not.
            Feature::HourRarityAtCounter => {
                (1.0 / (context.hour_share * 24.0).max(1e-3)).min(1000.0) as f32
            }
            Feature::WeekdaySin => weekday_angle(context.weekday).sin() as f32,
            Feature::WeekdayCos => weekday_angle(context.weekday).cos() as f32,
            // Linear, not log: the gap between a few km and a few hundred km is the signal.
            Feature::HundredsOfKmFromUsualPlace => {
                (context.km_from_usual_place.map_or(0.0, |km| km.min(5000.0)) / 100.0) as f32
            }
            Feature::BeneficiarySameScheme1hLog => ln1p_count(context.same_scheme_1h),
            Feature::BeneficiaryPayments24hLog => ln1p_count(context.beneficiary_payments_24h),
            Feature::BeneficiaryPayments30dLog => ln1p_count(context.beneficiary_payments_30d),
            Feature::BeneficiaryHoursSincePreviousLog => context
                .hours_since_previous
                .unwrap_or(MAX_GAP_HOURS)
                .ln_1p() as f32,
            // How rarely the scheme's payments come this soon after their beneficiary's previous
            // one, learned from the scheme's own gaps: a wage a week after the last is ordinary,
            // a pension after 19 days or a PM-KISAN instalment after 25 (paid every four months)
            // is not. A first payment is no repeat at all.
            Feature::SameSchemeGapRarity => match context.same_scheme_days_since {
                Some(_) => rarity(context.same_scheme_gap_share),
                None => 0.0,
            },
            // The same, for a repeat of the very amount: a weekly wage of last week's amount is
            // ordinary, the same pension twice in three weeks is a duplicate.
            Feature::SameAmountGapRarity => match context.same_amount_days_since {
                Some(_) => rarity(context.same_amount_gap_share),
                None => 0.0,
            },
            Feature::AmountVsOwnHistoryLog => context
                .own_typical_paise
                .map_or(0.0, |typical| (amount / typical.max(1) as f64).ln())
                as f32,
            Feature::AccountOtherBeneficiaries30dLog => {
                ln1p_count(context.account_other_beneficiaries_30d)
            }
            Feature::AccountNewForBeneficiary => flag(context.account_new_for_beneficiary),
            Feature::AgentPayments10minLog => ln1p_count(context.agent_payments_10min),
            Feature::AgentRateVsUsualLog => ((f64::from(context.agent_payments_10min) + 1.0)
                / (context.agent_usual_10min + 1.0))
                .ln() as f32,
            Feature::AgentBeneficiaries1hLog => ln1p_count(context.agent_beneficiaries_1h),
            Feature::AgentNewForBeneficiary => flag(context.agent_new_for_beneficiary),
            // Squared: each further first-time customer in a quarter hour is far rarer than the
            // one before (an agent sees one now and then, three almost never).
            Feature::AgentFirstVisits15min => (context.agent_first_visits_15min as f32).powi(2),
            // How many more first-time customers than the counter's usual share of them would
            // bring in its last six hours, in Poisson standard deviations: a collusion spread
            // over an afternoon, which the quarter hour above cannot see.
            Feature::AgentFirstVisits6hVsUsual => {
                ((f64::from(context.agent_first_visits_6h)
                    - context.agent_first_visits_6h_expected)
                    / (context.agent_first_visits_6h_expected + 1.0).sqrt()) as f32
            }
        }
    }

    /// Every feature's value, in model input order.
    pub fn values(context: &FeatureContext) -> [f32; FEATURE_COUNT] {
        Feature::ALL.map(|feature| feature.value(context))
    }

    /// A sentence an auditor understands, explaining what this feature saw in the payment.
    pub fn explain(self, context: &FeatureContext) -> String {
        let amount = format_rupees(context.amount_paise);
        match self {
            Feature::AmountVsSchemeLog | Feature::AmountLog => match context.scheme_typical_paise {
                Some(typical) => {
                    let ratio = context.amount_paise as f64 / typical.max(1) as f64;
                    let usual = format_rupees(typical);
                    if ratio >= 1.0 {
                        format!(
                            "{amount} is {ratio:.1}× the usual {} payment of {usual}",
                            context.scheme
                        )
                    } else {
                        format!(
                            "{amount} is only {:.1}% of the usual {} payment of {usual}",
                            ratio * 100.0,
                            context.scheme
                        )
                    }
                }
                None => format!("{amount} is the first {} payment seen", context.scheme),
            },
            Feature::AmountVsOwnHistoryLog => match context.own_typical_paise {
                Some(typical) => format!(
                    "{amount} differs from this beneficiary's usual {} payment of {}",
                    context.scheme,
                    format_rupees(typical)
                ),
                None => format!("first {} payment to this beneficiary", context.scheme),
            },
            Feature::HourRarityAtCounter | Feature::WeekdaySin | Feature::WeekdayCos => {
                const DAYS: [&str; 7] = [
                    "Monday",
                    "Tuesday",
                    "Wednesday",
                    "Thursday",
                    "Friday",
                    "Saturday",
                    "Sunday",
                ];
                let share = percent(context.hour_share);
                let usual = if context.hour_share_at_counter {
                    format!("this counter makes {share} of its payments")
                } else {
                    format!("{share} of all payments are made")
                };
                format!(
                    "paid at {:02}:{:02} on a {}, an hour in which {usual}",
                    context.seconds_of_day / 3600,
                    (context.seconds_of_day / 60) % 60,
                    DAYS[context.weekday as usize % 7],
                )
            }
            Feature::HundredsOfKmFromUsualPlace => match context.km_from_usual_place {
                Some(km) => format!(
                    "paid {km:.0} km from where this beneficiary is usually paid and from where this counter usually pays"
                ),
                None => "payment location unknown".to_string(),
            },
            Feature::BeneficiarySameScheme1hLog => format!(
                "{} {} payment to this beneficiary within an hour",
                ordinal(context.same_scheme_1h + 1),
                context.scheme
            ),
            Feature::BeneficiaryPayments24hLog => format!(
                "{} payment to this beneficiary within 24 hours",
                ordinal(context.beneficiary_payments_24h + 1)
            ),
            Feature::BeneficiaryPayments30dLog => format!(
                "{} payment to this beneficiary within 30 days",
                ordinal(context.beneficiary_payments_30d + 1)
            ),
            Feature::BeneficiaryHoursSincePreviousLog => match context.hours_since_previous {
                Some(hours) if hours < 1.0 => format!(
                    "only {:.0} minutes after this beneficiary's previous payment",
                    hours * 60.0
                ),
                Some(hours) => {
                    format!("{hours:.1} hours after this beneficiary's previous payment")
                }
                None => "first payment seen for this beneficiary".to_string(),
            },
            Feature::SameSchemeGapRarity => match context.same_scheme_days_since {
                Some(days) => format!(
                    "{} paid again {} after this beneficiary's previous {} payment; {} of {} payments come that soon",
                    context.scheme,
                    format_days(days),
                    context.scheme,
                    percent(context.same_scheme_gap_share),
                    context.scheme
                ),
                None => format!("first {} payment to this beneficiary", context.scheme),
            },
            Feature::SameAmountGapRarity => match context.same_amount_days_since {
                Some(days) => format!(
                    "same {} amount {amount} already paid to this beneficiary {} before (possible duplicate); {} of {} payments repeat an amount that soon",
                    context.scheme,
                    format_days(days),
                    percent(context.same_amount_gap_share),
                    context.scheme
                ),
                None => format!(
                    "no {} payment of {amount} to this beneficiary in the last 30 days",
                    context.scheme
                ),
            },
            Feature::AccountOtherBeneficiaries30dLog => format!(
                "account received payments for {} beneficiaries this month",
                context.account_other_beneficiaries_30d + 1
            ),
            Feature::AccountNewForBeneficiary => {
                "paid into an account this beneficiary never used before".to_string()
            }
            Feature::AgentPayments10minLog | Feature::AgentRateVsUsualLog => {
                let count = context.agent_payments_10min + 1;
                format!(
                    "agent processed {count} {} in 10 minutes (usually {:.1})",
                    if count == 1 { "payment" } else { "payments" },
                    context.agent_usual_10min
                )
            }
            Feature::AgentBeneficiaries1hLog => format!(
                "agent paid {} different beneficiaries within an hour",
                context.agent_beneficiaries_1h + 1
            ),
            Feature::AgentFirstVisits15min => format!(
                "agent paid {} beneficiaries it had never served before within 15 minutes",
                context.agent_first_visits_15min
            ),
            Feature::AgentFirstVisits6hVsUsual => format!(
                "agent paid {} beneficiaries it had never served before within 6 hours (about {:.1} at its usual share of new customers)",
                context.agent_first_visits_6h, context.agent_first_visits_6h_expected
            ),
            Feature::AgentNewForBeneficiary => {
                "paid through an agent this beneficiary never used before".to_string()
            }
        }
    }
}

/// A share as people read it: "0.04 %", "3 %".
/// A change of a steady amount (the one amount a beneficiary was paid every time before, at
/// least twice), judged by how rarely the scheme's steady payments change, in decades below one
/// in ten (as the rarity features); 0 for a payment that changes nothing. A pension paid the
/// same every month changes about never, so ₹1,150 after twelve ₹1,000s stands out however
/// ordinary 1.15× is for a wage, whose amounts change every week (share ≥ 0.1: 0).
///
/// Not an input of the autoencoder: a single value that is zero on nearly every row moved
/// other types' recall when the network was given it (revision 10 in BENCHMARKS.md). The
/// rarity detector judges it beside the features.
pub fn steady_change(context: &FeatureContext) -> f32 {
    match context.steady_paise {
        Some(steady) if steady != context.amount_paise => rarity(context.steady_change_share),
        _ => 0.0,
    }
}

/// The sentence for [`steady_change`], `None` for a payment that changes no steady amount.
pub fn explain_steady_change(context: &FeatureContext) -> Option<String> {
    let steady = context
        .steady_paise
        .filter(|&s| s != context.amount_paise)?;
    Some(format!(
        "{} after {} in each of this beneficiary's {} {} payments before; {} of {} payments to steady payers change the amount",
        format_rupees(context.amount_paise),
        format_rupees(steady),
        context.steady_payments,
        context.scheme,
        percent(context.steady_change_share),
        context.scheme
    ))
}

fn percent(share: f64) -> String {
    let percent = share * 100.0;
    if percent >= 1.0 {
        format!("{percent:.0} %")
    } else if percent >= 0.1 {
        format!("{percent:.1} %")
    } else if percent >= 0.01 {
        format!("{percent:.2} %")
    } else {
        "under 0.01 %".to_string()
    }
}

/// A gap as people read it: "40 minutes", "5 hours", "19 days".
fn format_days(days: f64) -> String {
    let hours = days * 24.0;
    if hours < 1.0 {
        format!("{:.0} minutes", hours * 60.0)
    } else if days < 2.0 {
        format!("{hours:.0} hours")
    } else {
        format!("{days:.0} days")
    }
}

fn weekday_angle(weekday: u32) -> f64 {
    f64::from(weekday) / 7.0 * std::f64::consts::TAU
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indices_follow_the_declaration() {
        for (index, feature) in Feature::ALL.into_iter().enumerate() {
            assert_eq!(feature.index(), index);
            assert_eq!(Feature::at(index), feature);
            assert_eq!(FEATURE_NAMES[index], feature.name());
        }
        let mut names = FEATURE_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FEATURE_COUNT);
    }

    #[test]
    fn category_codes_round_trip_and_no_feature_is_an_error() {
        for category in Category::ALL {
            assert_eq!(Category::from_code(category.code()), Some(category));
            assert_eq!(
                serde_json::to_string(&category).unwrap(),
                format!("\"{}\"", category.code())
            );
        }
        assert_eq!(Category::from_code("\" onclick="), None);
        assert!(Feature::ALL.iter().all(|f| f.category() != Category::Error));
    }
}
