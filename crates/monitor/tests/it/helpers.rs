//! Shared set-up for monitor's integration tests: a generated database with a trained model,
//! and rows held back to be "inserted live".

use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_core::model::BackendKind;
use monitor::MonitorConfig;

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub db: PathBuf,
    pub modeling: PathBuf,
}

/// A database of `rows` generated transactions, a model trained on it, and nothing scored.
pub fn fixture(rows: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let modeling = dir.path().join("modeling");
    generate::run(generate::RunConfig::synthetic(&db, rows, 5, 120, 0.02)).unwrap();
    train_model(&db, &modeling, 1);
    Fixture {
        _dir: dir,
        db,
        modeling,
    }
}

pub fn train_model(db: &Path, modeling: &Path, seed: u64) -> String {
    let outcome = train::run(&train::TrainConfig {
        db: db.into(),
        modeling: modeling.to_path_buf(),
        from: None,
        until: None,
        alert_rate: 0.02,
        normal_only: false,
        per_row: false,
        choose_with_labels: true,
        fit: train::fit::FitConfig {
            max_epochs: 2,
            batch_size: 256,
            learning_rate: 2e-3,
            patience: 2,
            seed,
            backend: BackendKind::Flex,
            progress: false,
        },
    })
    .unwrap();
    outcome.config.model_version
}

pub fn config(fixture: &Fixture, once: bool) -> MonitorConfig {
    MonitorConfig {
        db: fixture.db.clone(),
        modeling: fixture.modeling.clone(),
        backend: BackendKind::Flex,
        once,
        batch_size: 500,
        poll_interval: Duration::from_millis(10),
        checkpoints: monitor::CheckpointPolicy::default(),
    }
}

pub fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Copies the newest `n` rows aside and deletes them, to insert them again later as new rows.
pub fn hold_back(db: &Path, n: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE held AS SELECT * FROM transactions ORDER BY transaction_id DESC LIMIT {n};
         DELETE FROM transactions WHERE transaction_id IN (SELECT transaction_id FROM held);"
    ))
    .unwrap();
}

/// Inserts up to `n` held-back rows as new transactions (fresh ids), oldest first.
pub fn release(db: &Path, n: i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE batch AS SELECT * FROM held ORDER BY transaction_id LIMIT {n};
         INSERT INTO transactions (transaction_ref, beneficiary_id, account_id, agent_id, scheme, amount_paise, timestamp,
             latitude, longitude, district, is_anomaly, fraud_type)
           SELECT transaction_ref, beneficiary_id, account_id, agent_id, scheme, amount_paise, timestamp,
             latitude, longitude, district, is_anomaly, fraud_type FROM batch ORDER BY transaction_id;
         DELETE FROM held WHERE transaction_id IN (SELECT transaction_id FROM batch);
         DROP TABLE batch;"
    ))
    .unwrap();
}
