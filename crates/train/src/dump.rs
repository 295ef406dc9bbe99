//! `train --dump-features FILE`: every row of the training window with the values the
//! detectors see (the features, the per-row inputs, the steady-amount change), beside its
//! label, as CSV. For the question a detection figure raises ("what
//! do this deployment's frauds look like to the features, and what do its ordinary rows look
//! like?"), answered with any spreadsheet or data-frame tool instead of a debugger.
//!
//! The values are exactly train's (the same replay through `FeatureState`, `--from` rows
//! before the window warming the history as in training). The file is written whole, through
//! [`write_atomic`], so an interrupted dump never leaves half a file.

use std::path::Path;

use anyhow::Context;

use aegis_core::artifacts::write_atomic;
use aegis_core::features::{FEATURE_NAMES, PER_ROW_COUNT, PER_ROW_NAMES};
use aegis_core::reasons::STEADY_CHANGE;
use aegis_core::time::format_ist;

use crate::TrainConfig;

/// Writes the window of `config` (database, `from`, `until`) to `path`; returns the rows
/// written.
pub fn run(config: &TrainConfig, path: &Path) -> anyhow::Result<usize> {
    // Refused before the replay, which takes seconds on a million rows.
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        anyhow::bail!(
            "--dump-features {}: the folder {} does not exist; create it or name a file in an existing folder",
            path.display(),
            folder.display()
        );
    }
    let data = crate::load_window(config)?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut header = vec![
        "transaction_id".to_string(),
        "timestamp".to_string(),
        "is_anomaly".to_string(),
        "fraud_type".to_string(),
    ];
    header.extend(FEATURE_NAMES.iter().map(|name| name.to_string()));
    header.extend(PER_ROW_NAMES.iter().map(|name| format!("per_row_{name}")));
    header.push(STEADY_CHANGE.to_string());
    out.write_record(&header)?;
    let mut record = Vec::with_capacity(header.len());
    for (index, example) in data.examples.iter().enumerate() {
        record.clear();
        record.push(example.transaction_id.to_string());
        record.push(format_ist(example.time));
        record.push(
            example
                .is_anomaly
                .map_or(String::new(), |a| u8::from(a).to_string()),
        );
        record.push(example.fraud_type.clone().unwrap_or_default());
        record.extend(data.row(index).iter().map(f32::to_string));
        let per_row = &data.per_row_features[index * PER_ROW_COUNT..(index + 1) * PER_ROW_COUNT];
        record.extend(per_row.iter().map(f32::to_string));
        record.push(data.steady[index].to_string());
        out.write_record(&record)?;
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(data.len())
}
