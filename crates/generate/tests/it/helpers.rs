//! Shared set-up for generate's integration tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use generate::{GenerateConfig, RunConfig};

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

pub fn run_config(db: &Path, rows: usize, seed: u64) -> RunConfig {
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

pub fn read_rows(db: &Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn
        .prepare(
            "SELECT transaction_id, beneficiary_id, account_id, agent_id, scheme, amount_paise, timestamp, \
             latitude, longitude, is_anomaly, fraud_type FROM transactions ORDER BY transaction_id",
        )
        .unwrap();
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

pub fn homes(db: &Path) -> HashMap<String, (f64, f64)> {
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

pub fn count_rows(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM transactions", [], |r| r.get(0))
        .unwrap()
}

pub fn write_csv(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
