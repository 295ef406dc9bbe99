//! What the Model page shows: the current model's config and its evaluation against the
//! per-row baseline, read from `modeling/` (the dashboard never scores).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use aegis_core::artifacts::{ModelConfig, read_config, read_metrics};

/// The one sentence shown when there is no model yet.
pub const NO_MODEL_MESSAGE: &str = "no model: run `cargo run -p train`";

/// A row of a model-vs-baseline table.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    pub name: &'static str,
    pub model: String,
    pub baseline: String,
}

/// Recall on one fraud type.
#[derive(Debug, Clone, Serialize)]
pub struct TypeRow {
    pub fraud_type: String,
    pub rows: String,
    pub caught: String,
    pub recall: String,
    pub median_score: String,
    pub baseline_caught: String,
    pub baseline_recall: String,
}

/// The Model page's content.
#[derive(Debug, Clone, Serialize)]
pub struct ModelView {
    pub model_version: String,
    pub created_at: String,
    pub training_window: String,
    pub rows: String,
    pub epochs: u32,
    pub backend: String,
    pub feature_set: String,
    pub threshold: String,
    pub alert_rate: String,
    pub normal_only: bool,
    pub has_metrics: bool,
    pub has_evaluation: bool,
    pub has_baseline: bool,
    pub test_period: String,
    pub metrics: Vec<MetricRow>,
    pub confusion: Vec<MetricRow>,
    pub per_type: Vec<TypeRow>,
}

/// The model directory's state.
#[derive(Debug, Clone)]
pub enum ModelState {
    Missing,
    /// Present but unreadable: the message says what to do.
    Broken(String),
    Ready(Box<ModelView>),
}

/// The current model's threshold, if a model exists.
pub fn threshold(modeling: &Path) -> Option<f32> {
    read_config(modeling).ok().map(|config| config.threshold)
}

/// `metrics.json`'s score histogram (`{edges, counts, threshold}`), if any.
pub fn histogram(modeling: &Path) -> Option<Value> {
    read_metrics(modeling)?
        .get("score_histogram")
        .filter(|h| h.get("counts").is_some())
        .cloned()
}

/// Reads `modeling/` into the Model page's content.
pub fn load(modeling: &Path) -> ModelState {
    let config = match read_config(modeling) {
        Ok(config) => config,
        Err(aegis_core::Error::ModelMissing { .. }) => return ModelState::Missing,
        Err(error) => return ModelState::Broken(error.to_string()),
    };
    ModelState::Ready(Box::new(view(&config, read_metrics(modeling))))
}

fn number(value: Option<&Value>, decimals: usize) -> String {
    match value {
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            crate::views::group_digits(n.as_i64().unwrap_or(i64::MAX))
        }
        Some(Value::Number(n)) => n
            .as_f64()
            .map_or_else(|| "—".into(), |f| format!("{f:.decimals$}")),
        Some(Value::String(s)) => s.clone(),
        _ => "—".to_string(),
    }
}

fn view(config: &ModelConfig, metrics: Option<Value>) -> ModelView {
    let window = &config.training_window;
    let mut training_window = format!("{} to {}", window.first_event, window.last_event);
    if window.from.is_some() || window.until.is_some() {
        training_window.push_str(&format!(
            " (asked for {} to {})",
            window.from.as_deref().unwrap_or("the start"),
            window.until.as_deref().unwrap_or("the end")
        ));
    }
    let metrics = metrics.unwrap_or(Value::Null);
    let evaluation = metrics.get("evaluation").filter(|e| e.is_object());
    let baseline = metrics.get("baseline").filter(|b| b.is_object());
    let pick = |source: Option<&Value>, key: &str, decimals: usize| {
        number(source.and_then(|s| s.get(key)), decimals)
    };
    let metric_rows = [
        ("ROC-AUC", "roc_auc", 4),
        ("Average precision", "average_precision", 4),
        ("Precision at threshold", "precision", 4),
        ("Recall at threshold", "recall", 4),
        ("F1", "f1", 4),
        ("Precision @ k", "precision_at_k", 4),
        ("k (daily alert budget)", "k", 0),
        ("Test rows", "rows", 0),
        ("Fraudulent test rows", "positives", 0),
        ("Threshold", "threshold", 4),
    ]
    .into_iter()
    .map(|(name, key, decimals)| MetricRow {
        name,
        model: pick(evaluation, key, decimals),
        baseline: pick(baseline, key, decimals),
    })
    .collect();
    let confusion_of = |source: Option<&Value>, key: &str| {
        number(
            source
                .and_then(|s| s.get("confusion"))
                .and_then(|c| c.get(key)),
            0,
        )
    };
    let confusion = [
        ("True positives", "true_positives"),
        ("False positives", "false_positives"),
        ("False negatives", "false_negatives"),
        ("True negatives", "true_negatives"),
    ]
    .into_iter()
    .map(|(name, key)| MetricRow {
        name,
        model: confusion_of(evaluation, key),
        baseline: confusion_of(baseline, key),
    })
    .collect();
    let baseline_types = baseline
        .and_then(|b| b.get("per_type"))
        .and_then(Value::as_array);
    let per_type = evaluation
        .and_then(|e| e.get("per_type"))
        .and_then(Value::as_array)
        .map(|types| {
            types
                .iter()
                .map(|row| {
                    let fraud_type = row
                        .get("fraud_type")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string();
                    let theirs = baseline_types.and_then(|list| {
                        list.iter().find(|b| {
                            b.get("fraud_type").and_then(Value::as_str) == Some(&fraud_type)
                        })
                    });
                    TypeRow {
                        rows: number(row.get("rows"), 0),
                        caught: number(row.get("caught"), 0),
                        recall: number(row.get("recall"), 3),
                        median_score: number(row.get("median_score"), 4),
                        baseline_caught: number(theirs.and_then(|t| t.get("caught")), 0),
                        baseline_recall: number(theirs.and_then(|t| t.get("recall")), 3),
                        fraud_type,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let test_period = metrics
        .get("test_period")
        .map(|p| {
            format!(
                "{} to {}",
                number(p.get("first_event"), 0),
                number(p.get("last_event"), 0)
            )
        })
        .unwrap_or_default();
    ModelView {
        model_version: config.model_version.clone(),
        created_at: config.created_at.clone(),
        training_window,
        rows: crate::views::group_digits(i64::try_from(config.rows).unwrap_or(i64::MAX)),
        epochs: config.epochs,
        backend: config.backend.clone(),
        feature_set: config.feature_set.clone(),
        threshold: format!("{:.4}", config.threshold),
        alert_rate: format!("{:.2} %", config.alert_rate * 100.0),
        normal_only: config.normal_only,
        has_metrics: !metrics.is_null(),
        has_evaluation: evaluation.is_some(),
        has_baseline: baseline.is_some(),
        test_period,
        metrics: metric_rows,
        confusion,
        per_type,
    }
}
