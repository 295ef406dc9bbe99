//! Shared set-up for train's integration tests: a small labeled database and a quick fit.

use std::path::{Path, PathBuf};

use aegis_core::engine::Target;
use aegis_core::model::BackendKind;
use train::TrainConfig;
use train::fit::FitConfig;

/// A generated database of `rows` transactions over four months.
pub fn labeled_db(dir: &Path, rows: usize) -> PathBuf {
    let db = dir.join("t.db");
    generate::run(generate::RunConfig::synthetic(&db, rows, 21, 120, 0.02)).unwrap();
    db
}

/// A short training run (a few epochs, no baseline).
pub fn train_config(db: impl Into<Target>, modeling: &Path, seed: u64) -> TrainConfig {
    TrainConfig {
        db: db.into(),
        modeling: modeling.to_path_buf(),
        from: None,
        until: None,
        alert_rate: 0.02,
        normal_only: false,
        per_row: false,
        choose_with_labels: true,
        feedback: true,
        fit: FitConfig {
            max_epochs: 3,
            batch_size: 256,
            learning_rate: 2e-3,
            patience: 3,
            seed,
            backend: BackendKind::Flex,
            progress: false,
        },
    }
}
