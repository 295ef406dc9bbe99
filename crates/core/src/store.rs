//! Reading and writing transaction rows: the one place that maps rows to domain types.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, params};

use crate::domain::{NewTransaction, Payment};
use crate::error::{Error, Result};
use crate::sql::Sql;
use crate::time::{format_ist, parse_timestamp};

/// A stored transaction as feature engineering and evaluation see it.
#[derive(Debug, Clone)]
pub struct StoredTransaction {
    pub transaction_id: i64,
    /// The parsed payment, or why the row cannot be scored.
    pub payment: std::result::Result<Payment, String>,
    pub is_anomaly: Option<bool>,
    pub fraud_type: Option<String>,
    /// The `timestamp` text as stored, on PostgreSQL, where each score carries its payment's
    /// (`None` on SQLite, whose scores are columns of the payment).
    pub stored_timestamp: Option<String>,
}

/// Columns selected by [`read_stored`]; `WHERE`/`ORDER BY` clauses are appended by callers.
pub const STORED_COLUMNS: &str = "SELECT transaction_id, beneficiary_id, account_id, agent_id, scheme, \
     amount_paise, timestamp, latitude, longitude, is_anomaly, fraud_type FROM transactions";

/// Maps a row selected with [`STORED_COLUMNS`].
///
/// SQLite stores whatever a writer gives it (a TEXT `amount_paise` from an auditor's own SQL, a
/// REAL from another tool), so every column is read by its stored type rather than trusted: a
/// value of the wrong kind makes the payment an `Err` naming the column and what it held, and
/// the row is marked `ERROR` by the monitor instead of stopping all scoring. Only a database
/// error (I/O, a dropped table) is an `Err` of this function.
pub fn read_stored(row: &Row<'_>) -> rusqlite::Result<StoredTransaction> {
    let transaction_id: i64 = row.get(0)?;
    let is_anomaly = match row.get_ref(9)? {
        ValueRef::Integer(value) => Some(value != 0),
        _ => None,
    };
    let fraud_type = match row.get_ref(10)? {
        ValueRef::Text(text) => Some(String::from_utf8_lossy(text).into_owned()),
        _ => None,
    };
    let payment = parse_payment(row);
    Ok(StoredTransaction {
        transaction_id,
        payment,
        is_anomaly,
        fraud_type,
        stored_timestamp: None,
    })
}

/// The payment of a row selected with [`STORED_COLUMNS`], or why it cannot be scored.
fn parse_payment(row: &Row<'_>) -> std::result::Result<Payment, String> {
    let value = |index: usize| row.get_ref(index).map_err(|error| error.to_string());
    let beneficiary_id = identifier(value(1)?, "beneficiary_id")?
        .ok_or_else(|| "beneficiary_id is missing".to_string())?;
    let account_id = identifier(value(2)?, "account_id")?;
    let agent_id = identifier(value(3)?, "agent_id")?;
    let scheme = identifier(value(4)?, "scheme")?.ok_or_else(|| "scheme is missing".to_string())?;
    let amount_paise = match value(5)? {
        ValueRef::Integer(paise) => crate::domain::stored_amount(paise)?,
        ValueRef::Null => return Err("amount is missing (NULL amount_paise)".to_string()),
        ValueRef::Real(number) => {
            return Err(format!(
                "amount_paise holds the decimal {number}, not whole paise (store rupees × 100 as an integer)"
            ));
        }
        ValueRef::Text(text) => {
            return Err(format!(
                "amount_paise holds the text {:?}, not a number of paise",
                String::from_utf8_lossy(text)
            ));
        }
        ValueRef::Blob(_) => return Err("amount_paise holds binary data, not paise".to_string()),
    };
    let time = match value(6)? {
        ValueRef::Text(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            parse_timestamp(&text)
                .map_err(|_| format!("timestamp {text:?} is not 'YYYY-MM-DD HH:MM:SS'"))?
        }
        ValueRef::Null => return Err("timestamp is missing".to_string()),
        other => {
            return Err(format!(
                "timestamp holds a {}, not text 'YYYY-MM-DD HH:MM:SS'",
                kind_of(other)
            ));
        }
    };
    let latitude = coordinate(value(7)?, "latitude")?;
    let longitude = coordinate(value(8)?, "longitude")?;
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
}

/// An id column: text, or a number written without quotes (SQLite keeps `123` as an integer in
/// a TEXT column only when it cannot convert, so accept both).
fn identifier(value: ValueRef<'_>, column: &str) -> std::result::Result<Option<String>, String> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(text) => Ok(Some(String::from_utf8_lossy(text).into_owned())),
        ValueRef::Integer(number) => Ok(Some(number.to_string())),
        other => Err(format!("{column} holds a {}, not text", kind_of(other))),
    }
}

fn coordinate(value: ValueRef<'_>, column: &str) -> std::result::Result<Option<f64>, String> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Real(number) => Ok(Some(number)),
        ValueRef::Integer(number) => Ok(Some(number as f64)),
        ValueRef::Text(text) => Err(format!(
            "{column} holds the text {:?}, not degrees",
            String::from_utf8_lossy(text)
        )),
        ValueRef::Blob(_) => Err(format!("{column} holds binary data, not degrees")),
    }
}

fn kind_of(value: ValueRef<'_>) -> &'static str {
    match value {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "number",
        ValueRef::Real(_) => "decimal number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "binary value",
    }
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
        insert_one(&mut statement, row, inserted_at)?;
    }
    Ok(())
}

/// Inserts one payment through the shared SQL, inside the caller's transaction, and returns
/// its `transaction_id`. On PostgreSQL its month's partition is created first if needed.
pub fn insert_payment(sql: &mut dyn Sql, row: &NewTransaction) -> Result<i64> {
    if sql.engine() == crate::sql::Engine::Postgres {
        crate::pg::ensure_months(sql, row.time, row.time)?;
    }
    let statement = format!(
        "INSERT INTO {} (transaction_ref, beneficiary_id, account_id, agent_id, scheme, \
         amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING transaction_id",
        sql.engine().payments_table()
    );
    sql.query_int(
        &statement,
        crate::values![
            row.transaction_ref.as_deref(),
            row.beneficiary_id.as_str(),
            row.account_id.as_deref(),
            row.agent_id.as_deref(),
            row.scheme.as_str(),
            row.amount_paise,
            format_ist(row.time),
            row.latitude,
            row.longitude,
            row.district.as_deref(),
            row.is_anomaly.map(i64::from),
            row.fraud_type.as_deref(),
            crate::time::now_millis(),
        ],
    )?
    .ok_or_else(|| Error::Invalid("the insert returned no transaction id".into()))
}

fn insert_one(
    statement: &mut rusqlite::Statement<'_>,
    row: &NewTransaction,
    inserted_at: i64,
) -> Result<()> {
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
    Ok(())
}

/// The monitor's committed high-water mark: every row with an id at or below it is scored.
/// `None` before the monitor's first batch.
pub fn monitor_mark(sql: &mut dyn Sql) -> Result<Option<i64>> {
    sql.query_int(
        "SELECT high_water_mark FROM monitor_state WHERE id = 1",
        &[],
    )
}

/// Advances the monitor's mark; the caller's transaction also holds the scores it covers.
/// Refused when the stored mark is already at or past `mark`: another monitor scored these
/// rows (one lock per database keeps a second monitor out, but two names of one file, a link,
/// are two lock files), and committing would score them twice.
pub fn write_monitor_mark(
    sql: &mut dyn Sql,
    mark: i64,
    model_version: &str,
    updated_at_millis: i64,
) -> Result<()> {
    let moved = sql.execute(
        "INSERT INTO monitor_state (id, high_water_mark, model_version, updated_at) VALUES (1, ?1, ?2, ?3) \
         ON CONFLICT (id) DO UPDATE SET high_water_mark = excluded.high_water_mark, \
         model_version = excluded.model_version, updated_at = excluded.updated_at \
         WHERE monitor_state.high_water_mark < excluded.high_water_mark",
        &[mark.into(), model_version.into(), updated_at_millis.into()],
    )?;
    if moved == 0 {
        return Err(Error::Invalid(format!(
            "the monitor's mark is already at or past id {mark}: another monitor is scoring this database; stop one of them (were they started with two paths to one file?)"
        )));
    }
    Ok(())
}

/// The transaction registered for `transaction_ref` (migration 0006's unique `payment_refs`):
/// the first one stored with it.
pub fn registered_ref(sql: &mut dyn Sql, transaction_ref: &str) -> Result<Option<i64>> {
    sql.query_int(
        "SELECT transaction_id FROM payment_refs WHERE transaction_ref = ?1",
        &[transaction_ref.into()],
    )
}

/// The payment stored under `transaction_ref`, if one is (any engine).
pub fn payment_of_ref(
    sql: &mut dyn crate::sql::Sql,
    transaction_ref: &str,
) -> Result<Option<PaymentIdentity>> {
    identity_where(sql, "transaction_ref = ?1", transaction_ref.into())
}

/// The payment stored as `transaction_id`, if there is one (any engine).
pub fn payment_of_id(
    sql: &mut dyn crate::sql::Sql,
    transaction_id: i64,
) -> Result<Option<PaymentIdentity>> {
    identity_where(sql, "transaction_id = ?1", transaction_id.into())
}

fn identity_where(
    sql: &mut dyn crate::sql::Sql,
    condition: &str,
    value: crate::sql::Value,
) -> Result<Option<PaymentIdentity>> {
    use crate::sql::Row;
    sql.row(
        &format!(
            "SELECT beneficiary_id, amount_paise, timestamp, scheme FROM transactions \
             WHERE {condition} LIMIT 1"
        ),
        &[value],
        |row| {
            Ok(PaymentIdentity {
                beneficiary_id: row.at(0)?,
                amount_paise: row.at(1)?,
                timestamp: row.at(2)?,
                scheme: row.at(3)?,
            })
        },
    )
}

/// The condition that keeps a stored `timestamp` that is not a time out of a search for the
/// newest or the latest days: text of letters sorts after every time, and NULL (a score of a
/// month detached before PostgreSQL's version 10) first when descending; either would hide
/// the real ones. It also lets the timestamp indexes answer.
pub const TIMES_ONLY: &str = "timestamp <= '9999-12-31 23:59:59'";

/// The newest payment's timestamp text: "now" in the data's own calendar ([`TIMES_ONLY`]).
pub fn newest_timestamp(sql: &mut dyn crate::sql::Sql) -> Result<Option<String>> {
    Ok(sql
        .value::<Option<String>>(
            &format!(
                "SELECT max(timestamp) FROM {} WHERE {TIMES_ONLY}",
                sql.engine().payments_table()
            ),
            &[],
        )?
        .flatten())
}

/// What tells one payment from another under the same reference: a retry or an overlapping
/// export repeats all of it; a reused or corrected reference does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentIdentity {
    pub beneficiary_id: String,
    pub amount_paise: Option<i64>,
    /// IST wall time, as stored.
    pub timestamp: Option<String>,
    pub scheme: String,
}

impl PaymentIdentity {
    pub fn of(payment: &NewTransaction) -> PaymentIdentity {
        PaymentIdentity {
            beneficiary_id: payment.beneficiary_id.clone(),
            amount_paise: Some(payment.amount_paise),
            timestamp: Some(crate::time::format_ist(payment.time)),
            scheme: payment.scheme.clone(),
        }
    }

    /// "B1 ₹2,000 at 2025-03-01 10:00:00 IST, PENSION".
    pub fn describe(&self) -> String {
        format!(
            "{} {} at {} IST, {}",
            self.beneficiary_id,
            self.amount_paise
                .map(crate::domain::format_rupees)
                .unwrap_or_default(),
            self.timestamp.as_deref().unwrap_or_default(),
            self.scheme
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second monitor committing rows the first already committed (two lock files for one
    /// database) is refused instead of scoring them twice.
    #[test]
    fn the_mark_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("t.db")).unwrap();
        let sql = &mut crate::sql::Sqlite(&conn);
        write_monitor_mark(sql, 10, "m1", 1).unwrap();
        write_monitor_mark(sql, 20, "m1", 2).unwrap();
        let message = write_monitor_mark(sql, 20, "m1", 3)
            .unwrap_err()
            .to_string();
        assert!(message.contains("another monitor is scoring"), "{message}");
        write_monitor_mark(sql, 15, "m1", 3).unwrap_err();
        assert_eq!(monitor_mark(sql).unwrap(), Some(20));
    }
}
