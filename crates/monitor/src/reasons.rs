//! The `reasons` JSON: a short category and the features that contributed most to the
//! reconstruction error, as sentences an auditor understands.

use serde_json::{Value, json};

use aegis_core::artifacts::BatchScores;
use aegis_core::features::{FEATURE_NAMES, FeatureContext, category_of, explain};

/// Features explaining less than this share of the error are not listed.
const MIN_SHARE: f32 = 0.08;
/// At most this many reasons per transaction.
const MAX_REASONS: usize = 3;

/// Reasons for row `row` of a scored batch.
pub fn explain_row(scores: &BatchScores, row: usize, context: &FeatureContext) -> Value {
    let ranked = scores.ranked_features(row);
    let mut reasons = Vec::new();
    let mut seen_texts: Vec<String> = Vec::new();
    for &feature in &ranked {
        let share = scores.contribution(row, feature);
        if reasons.len() == MAX_REASONS || (share < MIN_SHARE && !reasons.is_empty()) {
            break;
        }
        let text = explain(feature, context);
        // Two features can describe the same fact (amount vs scheme, log amount).
        if seen_texts.contains(&text) {
            continue;
        }
        seen_texts.push(text.clone());
        reasons.push(json!({
            "feature": FEATURE_NAMES[feature],
            "category": category_of(feature),
            "share": (share * 1000.0).round() / 1000.0,
            "text": text,
        }));
    }
    json!({
        "category": category_of(ranked[0]),
        "reasons": reasons,
    })
}

/// Reasons for a row that could not be scored.
pub fn error(problem: &str) -> Value {
    json!({
        "category": "error",
        "reasons": [{"feature": null, "category": "error", "share": 1.0, "text": format!("not scored: {problem}")}],
    })
}
