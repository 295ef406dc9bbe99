//! Shared set-up for monitor's integration tests: a generated database with a trained model,
//! and rows held back to be "inserted live", on either engine.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aegis_core::engine::{Store, Target};
use aegis_core::model::BackendKind;
use aegis_core::pg::ScratchDatabase;
use aegis_core::sql::Value;
use monitor::MonitorConfig;

/// A database of either engine, queried with statements both understand.
pub struct Db {
    pub target: Target,
    scratch: Option<ScratchDatabase>,
}

impl Db {
    fn store(&self) -> Store {
        self.target.open().unwrap()
    }

    pub fn rows(&self, sql: &str) -> Vec<Vec<Value>> {
        self.store().read(|db| db.query(sql, &[])).unwrap()
    }

    /// The first column of the first row (0 for NULL).
    pub fn int(&self, sql: &str) -> i64 {
        self.rows(sql)
            .first()
            .and_then(|row| row[0].int())
            .unwrap_or(0)
    }

    /// Runs several statements; `{events}` is the table payments are inserted into and
    /// deleted from (`transactions` on SQLite, `transaction_events` on PostgreSQL).
    pub fn batch(&self, sql: &str) {
        match self.store() {
            Store::Sqlite(conn) => conn
                .execute_batch(&sql.replace("{events}", "transactions"))
                .unwrap(),
            Store::Postgres(mut client) => client
                .batch_execute(&sql.replace("{events}", "transaction_events"))
                .unwrap(),
        }
    }

    /// A copy of this database, beside it (SQLite) or on the same server.
    pub fn copy(&self, name: &str) -> Db {
        match (&self.target, &self.scratch) {
            (Target::Sqlite(path), _) => {
                let copy = path.with_file_name(format!("{name}.db"));
                std::fs::copy(path, &copy).unwrap();
                Db {
                    target: Target::Sqlite(copy),
                    scratch: None,
                }
            }
            (Target::Postgres(_), Some(scratch)) => {
                let copy = scratch.copy(name).unwrap();
                Db {
                    target: Target::Postgres(copy.url().to_string()),
                    scratch: Some(copy),
                }
            }
            (Target::Postgres(_), None) => unreachable!("test databases are scratch databases"),
        }
    }

    /// Copies the newest `n` rows aside and deletes them, to insert them again later as new
    /// rows.
    pub fn hold_back(&self, n: i64) {
        self.batch(&format!(
            "CREATE TABLE held AS SELECT * FROM transactions ORDER BY transaction_id DESC LIMIT {n};
             DELETE FROM {{events}} WHERE transaction_id IN (SELECT transaction_id FROM held);"
        ));
    }

    /// Puts every held-back row back under its own id, as if it had never left.
    pub fn put_back(&self) {
        self.batch(
            "INSERT INTO {events} (transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme,
                 amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at)
               SELECT transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme,
                 amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at
               FROM held ORDER BY transaction_id;
             DROP TABLE held;",
        );
    }

    /// Puts back the held-back rows up to id `last` under their own ids.
    pub fn put_back_through(&self, last: i64) {
        self.batch(&format!(
            "INSERT INTO {{events}} (transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme,
                 amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at)
               SELECT transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme,
                 amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at
               FROM held WHERE transaction_id <= {last} ORDER BY transaction_id;
             DELETE FROM held WHERE transaction_id <= {last};"
        ));
    }

    /// Records verdicts (transaction, verdict, decided at in event seconds) for a test auditor.
    pub fn record_verdicts(&self, verdicts: &[(i64, &str, i64)]) {
        self.store()
            .in_transaction(|sql| {
                sql.execute(
                    "INSERT INTO users (username, password_hash, role, disabled, created_at) \
                     VALUES ('auditor', 'x', 'auditor', 0, 0) ON CONFLICT (username) DO NOTHING",
                    &[],
                )?;
                for &(transaction, verdict, decided_at) in verdicts {
                    sql.execute(
                        "INSERT INTO verdicts (transaction_id, verdict, user_id, created_at) \
                         SELECT ?1, ?2, user_id, ?3 FROM users WHERE username = 'auditor'",
                        aegis_core::values![transaction, verdict, decided_at * 1000],
                    )?;
                }
                Ok(())
            })
            .unwrap();
    }

    /// Inserts up to `n` held-back rows as new transactions (fresh ids), oldest first.
    pub fn release(&self, n: i64) {
        self.batch(&format!(
            "CREATE TEMP TABLE batch AS SELECT * FROM held ORDER BY transaction_id LIMIT {n};
             INSERT INTO {{events}} (transaction_ref, beneficiary_id, account_id, agent_id, scheme, amount_paise, timestamp,
                 latitude, longitude, district, is_anomaly, fraud_type)
               SELECT transaction_ref, beneficiary_id, account_id, agent_id, scheme, amount_paise, timestamp,
                 latitude, longitude, district, is_anomaly, fraud_type FROM batch ORDER BY transaction_id;
             DELETE FROM held WHERE transaction_id IN (SELECT transaction_id FROM batch);
             DROP TABLE batch;"
        ));
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The SQLite file (on PostgreSQL: a path in the fixture's folder that nothing uses).
    pub db: PathBuf,
    pub store: Db,
    pub modeling: PathBuf,
}

/// A database of `rows` generated transactions, a model trained on it, and nothing scored.
pub fn fixture(rows: usize) -> Fixture {
    fixture_on(Engine::Sqlite, rows)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// SQLite, and PostgreSQL when a test server is configured (it must be in CI).
pub fn engines() -> Vec<Engine> {
    let mut engines = vec![Engine::Sqlite];
    if aegis_core::pg::test_server().is_some() {
        engines.push(Engine::Postgres);
    }
    engines
}

/// [`fixture`] on `engine`.
pub fn fixture_on(engine: Engine, rows: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let store = match engine {
        Engine::Sqlite => Db {
            target: Target::Sqlite(db.clone()),
            scratch: None,
        },
        Engine::Postgres => {
            let server = aegis_core::pg::test_server().expect("a PostgreSQL test server");
            let scratch = ScratchDatabase::create(&server, "monitor").unwrap();
            Db {
                target: Target::Postgres(scratch.url().to_string()),
                scratch: Some(scratch),
            }
        }
    };
    let modeling = dir.path().join("modeling");
    generate::run(generate::RunConfig::synthetic(
        store.target.clone(),
        rows,
        5,
        120,
        0.02,
    ))
    .unwrap();
    train_model(store.target.clone(), &modeling, 1);
    Fixture {
        dir,
        db,
        store,
        modeling,
    }
}

pub fn train_model(db: impl Into<Target>, modeling: &Path, seed: u64) -> String {
    train_model_choosing(db, modeling, seed, true)
}

/// [`train_model`] with the default combination and no held-out check of the feedback stage
/// (both need the held-out labels): for tests of how a stage is applied, which need one
/// whether or not it would help on a small fixture.
pub fn train_model_without_choices(db: impl Into<Target>, modeling: &Path, seed: u64) -> String {
    train_model_choosing(db, modeling, seed, false)
}

fn train_model_choosing(
    db: impl Into<Target>,
    modeling: &Path,
    seed: u64,
    choose_with_labels: bool,
) -> String {
    let outcome = train::run(&train::TrainConfig {
        db: db.into(),
        modeling: modeling.to_path_buf(),
        from: None,
        until: None,
        alert_rate: 0.02,
        normal_only: false,
        per_row: false,
        choose_with_labels,
        feedback: true,
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
        db: fixture.store.target.clone(),
        modeling: fixture.modeling.clone(),
        backend: BackendKind::Flex,
        once,
        batch_size: 500,
        poll_interval: Duration::from_millis(10),
        checkpoints: monitor::CheckpointPolicy::default(),
        checkpoint_dir: None,
    }
}

pub fn count(db: &Path, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Copies the newest `n` rows of an SQLite database aside (see [`Db::hold_back`]).
pub fn hold_back(db: &Path, n: i64) {
    Db {
        target: Target::Sqlite(db.to_path_buf()),
        scratch: None,
    }
    .hold_back(n);
}

/// Inserts up to `n` held-back rows of an SQLite database (see [`Db::release`]).
pub fn release(db: &Path, n: i64) {
    Db {
        target: Target::Sqlite(db.to_path_buf()),
        scratch: None,
    }
    .release(n);
}
