//! Reading and writing transaction rows: the one place that maps rows to domain types.

use rusqlite::{Connection, Row, params};

use crate::domain::{NewTransaction, Payment};
use crate::error::Result;
use crate::time::{format_ist, parse_timestamp};

/// A stored transaction as feature engineering and evaluation see it.
#[derive(Debug, Clone)]
pub struct StoredTransaction {
    pub transaction_id: i64,
    /// The parsed payment, or why the row cannot be scored.
    pub payment: std::result::Result<Payment, String>,
    pub is_anomaly: Option<bool>,
    pub fraud_type: Option<String>,
}

/// Columns selected by [`read_stored`]; `WHERE`/`ORDER BY` clauses are appended by callers.
pub const STORED_COLUMNS: &str = "SELECT transaction_id, beneficiary_id, account_id, agent_id, scheme, \
     amount_paise, timestamp, latitude, longitude, is_anomaly, fraud_type FROM transactions";

/// Maps a row selected with [`STORED_COLUMNS`].
pub fn read_stored(row: &Row<'_>) -> rusqlite::Result<StoredTransaction> {
    let transaction_id: i64 = row.get(0)?;
    let beneficiary_id: String = row.get(1)?;
    let account_id: Option<String> = row.get(2)?;
    let agent_id: Option<String> = row.get(3)?;
    let scheme: String = row.get(4)?;
    let amount_paise: Option<i64> = row.get(5)?;
    let timestamp: Option<String> = row.get(6)?;
    let latitude: Option<f64> = row.get(7)?;
    let longitude: Option<f64> = row.get(8)?;
    let is_anomaly: Option<i64> = row.get(9)?;
    let fraud_type: Option<String> = row.get(10)?;
    let payment = (|| {
        let amount_paise =
            amount_paise.ok_or_else(|| "amount is missing (NULL amount_paise)".to_string())?;
        if amount_paise < 0 {
            return Err(format!("amount is negative ({amount_paise} paise)"));
        }
        let text = timestamp.ok_or_else(|| "timestamp is missing".to_string())?;
        let time = parse_timestamp(&text)
            .map_err(|_| format!("timestamp {text:?} is not 'YYYY-MM-DD HH:MM:SS'"))?;
        let location = latitude
            .zip(longitude)
            .filter(|(lat, lon)| (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon));
        Ok(Payment {
            beneficiary_id,
            account_id,
            agent_id,
            scheme,
            amount_paise,
            time,
            location,
        })
    })();
    Ok(StoredTransaction {
        transaction_id,
        payment,
        is_anomaly: is_anomaly.map(|v| v != 0),
        fraud_type,
    })
}

/// The INSERT used by every writer of `transactions`.
const INSERT_SQL: &str = "INSERT INTO transactions (transaction_ref, beneficiary_id, account_id, agent_id, scheme, \
     amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// Inserts rows with one prepared statement; the caller owns the surrounding transaction.
/// `inserted_at` is the wall clock in unix ms at the time of the call.
pub fn insert_transactions(conn: &Connection, rows: &[NewTransaction]) -> Result<()> {
    let mut statement = conn.prepare_cached(INSERT_SQL)?;
    let inserted_at = crate::time::now_millis();
    for row in rows {
        statement.execute(params![
            row.transaction_ref,
            row.beneficiary_id,
            row.account_id,
            row.agent_id,
            row.scheme,
            row.amount_paise,
            format_ist(row.time),
            row.latitude,
            row.longitude,
            row.district,
            row.is_anomaly.map(i64::from),
            row.fraud_type,
            inserted_at,
        ])?;
    }
    Ok(())
}

/// Loads every stored transaction in event-time order (ties by id), optionally within
/// `[from, until)` as stored text bounds.
pub fn load_in_event_order(
    conn: &Connection,
    from: Option<&str>,
    until: Option<&str>,
) -> Result<Vec<StoredTransaction>> {
    let sql = format!(
        "{STORED_COLUMNS} WHERE (?1 IS NULL OR timestamp >= ?1) AND (?2 IS NULL OR timestamp < ?2) \
         ORDER BY timestamp, transaction_id"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![from, until], read_stored)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
