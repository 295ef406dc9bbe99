//! Shared set-up for generate's integration tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use aegis_core::engine::Target;
use aegis_core::pg::ScratchDatabase;
use generate::{GenerateConfig, RunConfig};

/// An empty database of one engine for one test: an SQLite file in a temporary directory, or
/// a scratch database on the PostgreSQL test server (dropped at the end).
pub struct TestDb {
    pub target: Target,
    pub dir: tempfile::TempDir,
    _scratch: Option<ScratchDatabase>,
}

/// The same empty database on each engine, so one test body checks a behaviour on both.
pub fn each_engine(name: &str) -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = vec![TestDb {
        target: Target::Sqlite(dir.path().join(format!("{name}.db"))),
        dir,
        _scratch: None,
    }];
    if let Some(server) = aegis_core::pg::test_server() {
        let scratch = ScratchDatabase::create(&server, name).unwrap();
        dbs.push(TestDb {
            target: Target::Postgres(scratch.url().to_string()),
            dir: tempfile::tempdir().unwrap(),
            _scratch: Some(scratch),
        });
    }
    dbs
}

pub fn config(rows: usize, seed: u64) -> GenerateConfig {
    GenerateConfig {
        profile: generate::Profile::Welfare,
        rows,
        seed,
        start: aegis_core::time::ist_midnight(2025, 1, 1),
        days: 120,
        fraud_rate: 0.01,
    }
}

pub fn run_config(db: impl Into<Target>, rows: usize, seed: u64) -> RunConfig {
    RunConfig {
        generate: config(rows, seed),
        ..RunConfig::synthetic(db, rows, seed, 120, 0.01)
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub id: i64,
    pub beneficiary: String,
    pub account: Option<String>,
    pub agent: Option<String>,
    pub scheme: String,
    pub paise: i64,
    pub timestamp: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub is_anomaly: Option<i64>,
    pub fraud_type: Option<String>,
}

const ROWS_SQL: &str = "SELECT transaction_id, beneficiary_id, account_id, agent_id, scheme, amount_paise, timestamp, \
     latitude, longitude, is_anomaly, fraud_type FROM transactions ORDER BY transaction_id";

/// Every stored row, read back through the engine's own driver.
pub fn read_rows(db: impl Into<Target>) -> Vec<Row> {
    let db = match db.into() {
        Target::Sqlite(path) => path,
        Target::Postgres(url) => {
            let mut client = aegis_core::pg::connect(&url).unwrap();
            return client
                .query(ROWS_SQL, &[])
                .unwrap()
                .iter()
                .map(|r| Row {
                    id: r.get(0),
                    beneficiary: r.get(1),
                    account: r.get(2),
                    agent: r.get(3),
                    scheme: r.get(4),
                    paise: r.get(5),
                    timestamp: r.get(6),
                    latitude: r.get(7),
                    longitude: r.get(8),
                    is_anomaly: r.get::<_, Option<i16>>(9).map(i64::from),
                    fraud_type: r.get(10),
                })
                .collect();
        }
    };
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn.prepare(ROWS_SQL).unwrap();
    statement
        .query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                beneficiary: r.get(1)?,
                account: r.get(2)?,
                agent: r.get(3)?,
                scheme: r.get(4)?,
                paise: r.get(5)?,
                timestamp: r.get(6)?,
                latitude: r.get(7)?,
                longitude: r.get(8)?,
                is_anomaly: r.get(9)?,
                fraud_type: r.get(10)?,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

pub fn homes(db: impl Into<Target>) -> HashMap<String, (f64, f64)> {
    let sql = "SELECT beneficiary_id, home_latitude, home_longitude FROM beneficiaries";
    let db = match db.into() {
        Target::Sqlite(path) => path,
        Target::Postgres(url) => {
            let mut client = aegis_core::pg::connect(&url).unwrap();
            let rows = client.query(sql, &[]).unwrap();
            return rows
                .iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect();
        }
    };
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn
        .prepare("SELECT beneficiary_id, home_latitude, home_longitude FROM beneficiaries")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

pub fn count_rows(db: impl Into<Target>) -> i64 {
    let db = match db.into() {
        Target::Sqlite(path) => path,
        Target::Postgres(url) => {
            let mut client = aegis_core::pg::connect(&url).unwrap();
            return client
                .query_one("SELECT count(*) FROM transactions", &[])
                .unwrap()
                .get(0);
        }
    };
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))
        .unwrap()
}

pub fn write_csv(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
