//! SQL written once for both engines.
//!
//! A statement that means the same on SQLite and PostgreSQL is written once, in the subset both
//! understand, and run through [`Sql`], which both engines implement:
//! - parameters are `?1`, `?2`, …; on PostgreSQL they become `$1`, `$2`, … (outside quotes);
//! - a parameter whose type the statement does not fix (a bare `?2` in a select list) is
//!   written `CAST(?2 AS BIGINT)` (or `TEXT`, `DOUBLE PRECISION`): both engines accept it;
//! - upserts are `INSERT … ON CONFLICT … DO NOTHING/UPDATE`, new ids come back with
//!   `RETURNING`, the larger of two values is a `CASE`, and booleans used as numbers are
//!   `CASE WHEN … THEN 1 ELSE 0 END`: all four mean the same on both engines.
//!
//! Values cross as [`Value`]: on PostgreSQL an integer is written as whatever integer (or
//! floating) type the column has, so one statement serves `bigint`, `integer` and `smallint`
//! columns alike. Statements are prepared once per connection and cached.
//!
//! What genuinely differs between the engines (writing a score, bulk loads, locks) is not
//! here: it lives in [`crate::db`] and [`crate::pg`], behind the callers' own engine enums.

use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef};

use crate::error::{Error, Result};

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One value of a parameter or a result column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Value {
    /// The integer, if this is one (a NULL is `None`).
    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }

    /// The number as a float, whether stored as an integer or a real.
    pub fn real(&self) -> Option<f64> {
        match self {
            Value::Real(value) => Some(*value),
            Value::Int(value) => Some(*value as f64),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(value) => Some(value),
            _ => None,
        }
    }

    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(value) => Some(value),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Int(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Value {
        Value::Real(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_string())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::Text(value)
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Value {
        Value::Text(value.clone())
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Value {
        Value::Int(value.into())
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Int(value.into())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

/// Parameters for a shared statement: `values![id, name, None::<i64>]`.
#[macro_export]
macro_rules! values {
    ($($value:expr),* $(,)?) => {
        &[$($crate::sql::Value::from($value)),*]
    };
}

/// A Rust value read out of a result column.
pub trait FromValue: Sized {
    /// `None` when the value is not of this type.
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Option<Value> {
        Some(value.clone())
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<i64> {
        value.int()
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<f64> {
        value.real()
    }
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<bool> {
        value.int().map(|value| value != 0)
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<String> {
        value.text().map(str::to_string)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Option<T>> {
        match value {
            Value::Null => Some(None),
            value => T::from_value(value).map(Some),
        }
    }
}

/// Typed access to a result row, as rusqlite's `row.get(i)` gives it (a slice has its own
/// `get`, hence the name).
pub trait Row {
    /// Column `index` as a `T`; an error names the column and what it held.
    fn at<T: FromValue>(&self, index: usize) -> Result<T>;
}

impl Row for [Value] {
    fn at<T: FromValue>(&self, index: usize) -> Result<T> {
        let value = <[Value]>::get(self, index).ok_or_else(|| {
            Error::Invalid(format!(
                "a query read column {index} of a {}-column row",
                self.len()
            ))
        })?;
        T::from_value(value).ok_or_else(|| {
            Error::Invalid(format!(
                "column {index} holds {value:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(value) => ValueRef::Integer(*value),
            Value::Real(value) => ValueRef::Real(*value),
            Value::Text(value) => ValueRef::Text(value.as_bytes()),
        }))
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match (self, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(value), &Type::INT8) => value.to_sql(ty, out),
            (Value::Int(value), &Type::INT4) => i32::try_from(*value)?.to_sql(ty, out),
            (Value::Int(value), &Type::INT2) => i16::try_from(*value)?.to_sql(ty, out),
            (Value::Int(value), &Type::FLOAT8) => (*value as f64).to_sql(ty, out),
            (Value::Int(value), &Type::BOOL) => (*value != 0).to_sql(ty, out),
            (Value::Real(value), &Type::FLOAT8) => value.to_sql(ty, out),
            (Value::Real(value), &Type::FLOAT4) => (*value as f32).to_sql(ty, out),
            (Value::Text(value), _) if <&str as ToSql>::accepts(ty) => {
                value.as_str().to_sql(ty, out)
            }
            (value, ty) => Err(format!("cannot pass {value:?} as a PostgreSQL {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// `sql` with its parameters written `$N`, as PostgreSQL wants them; quoted text and
/// identifiers are left alone. `?N` becomes `$N`; a bare `?` is numbered as SQLite numbers it:
/// one more than the largest number so far.
pub fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut largest = 0u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(open) => {
                if c == open {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                let mut digits = String::new();
                while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                    digits.push(digit);
                }
                let number = if digits.is_empty() {
                    largest + 1
                } else {
                    digits.parse().unwrap_or(u32::MAX)
                };
                largest = largest.max(number);
                out.push('$');
                out.push_str(&number.to_string());
            }
            None => out.push(c),
        }
    }
    out
}

/// A connection (or a transaction) that runs statements written once for both engines.
pub trait Sql {
    fn engine(&self) -> Engine;

    /// Runs a statement; returns the rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;

    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>>;

    /// The first row, if any.
    fn query_row(&mut self, sql: &str, params: &[Value]) -> Result<Option<Vec<Value>>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first column of the first row as an integer (`None`: no row, or NULL).
    fn query_int(&mut self, sql: &str, params: &[Value]) -> Result<Option<i64>> {
        Ok(self
            .query_row(sql, params)?
            .and_then(|row| row.into_iter().next())
            .and_then(|value| value.int()))
    }

    /// Hands the rows to `each` one at a time, without holding them all, until it returns
    /// `false`. Returns how many rows it was given.
    fn for_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&[Value]) -> Result<bool>,
    ) -> Result<u64>;
}

impl dyn Sql + '_ {
    /// Every row, each turned into a `T` by `map`.
    pub fn rows<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        map: impl FnMut(&[Value]) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.query(sql, params)?
            .iter()
            .map(Vec::as_slice)
            .map(map)
            .collect()
    }

    /// The first row turned into a `T`, if there is one.
    pub fn row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        map: impl FnOnce(&[Value]) -> Result<T>,
    ) -> Result<Option<T>> {
        self.query_row(sql, params)?.as_deref().map(map).transpose()
    }

    /// The first column of the first row as a `T`, if there is a row.
    pub fn value<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> Result<Option<T>> {
        self.row(sql, params, |row| row.at(0))
    }

    /// The first column of every row.
    pub fn column<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> Result<Vec<T>> {
        self.rows(sql, params, |row| row.at(0))
    }
}

impl Engine {
    /// The text at `path` (SQLite's JSON path: `$.reasons[0].text`) in the JSON text of
    /// `column`; NULL when the column is not JSON or has no such field.
    pub fn json_text(self, column: &str, path: &str) -> String {
        match self {
            Engine::Sqlite => {
                format!("CASE WHEN json_valid({column}) THEN json_extract({column}, '{path}') END")
            }
            Engine::Postgres => {
                let keys: Vec<&str> = path
                    .trim_start_matches('$')
                    .split(['.', '[', ']'])
                    .filter(|key| !key.is_empty())
                    .collect();
                format!("aegis_json_text({column}, '{{{}}}')", keys.join(","))
            }
        }
    }

    /// The weekday (0 = Sunday … 6 = Saturday) of an IST timestamp text column, as an integer.
    pub fn weekday(self, column: &str) -> String {
        match self {
            Engine::Sqlite => format!("CAST(strftime('%w', {column}) AS INTEGER)"),
            Engine::Postgres => {
                format!("CAST(extract(dow FROM CAST({column} AS timestamp)) AS INTEGER)")
            }
        }
    }

    /// The stored event-time text (`YYYY-MM-DD HH:MM:SS`, IST) of `seconds`, an expression in
    /// [`crate::time::EventTime`] seconds. Comparing `timestamp` with it lets PostgreSQL skip
    /// the months' partitions a lookup by id cannot be in.
    pub fn event_time_text(self, seconds: &str) -> String {
        let ist = crate::time::IST_OFFSET_SECONDS;
        match self {
            Engine::Sqlite => format!("datetime({seconds} + {ist}, 'unixepoch')"),
            Engine::Postgres => format!(
                "to_char(to_timestamp({seconds} + {ist}) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"
            ),
        }
    }

    /// The table payments are inserted into, and the one to read when a statement needs the
    /// payments but not their scores: `transactions` itself on SQLite; on PostgreSQL
    /// `transactions` is a view over `transaction_events` and the scores, whose join keeps the
    /// planner from answering `max(…)` from an index.
    pub fn payments_table(self) -> &'static str {
        match self {
            Engine::Sqlite => "transactions",
            Engine::Postgres => "transaction_events",
        }
    }

    /// The table to read when a statement needs the scores (`transaction_id`, `status`,
    /// `anomaly_score`, `model_version`) with their payments' event `timestamp` but nothing
    /// else of the payments: `transactions` itself on SQLite; on PostgreSQL the scores alone,
    /// which carry their payment's event time (migration 0010) and are indexed by model and
    /// time (0013). Through the `transactions` view a question about one model's scores is a
    /// join whose plan hangs on the statistics of `model_version`, and a model newer than the
    /// last ANALYZE is estimated at a row or two: the planner then reads every score and looks
    /// each up in every month's partition (1 s a request in the soak).
    pub fn scores_table(self) -> &'static str {
        match self {
            Engine::Sqlite => "transactions",
            Engine::Postgres => "transaction_scores",
        }
    }

    /// What to add after `ORDER BY x ASC|DESC` so that NULLs come where SQLite puts them
    /// (first going up, last going down). Nothing on SQLite, where spelling it out would keep
    /// an index from giving the order.
    pub fn nulls_as_sqlite(self, descending: bool) -> &'static str {
        match (self, descending) {
            (Engine::Sqlite, _) => "",
            (Engine::Postgres, false) => " NULLS FIRST",
            (Engine::Postgres, true) => " NULLS LAST",
        }
    }
}

/// An SQLite connection (or a transaction, through `Deref`) as [`Sql`]; statements go
/// through rusqlite's statement cache.
pub struct Sqlite<'a>(pub &'a rusqlite::Connection);

fn sqlite_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(value) => Value::Int(value),
        ValueRef::Real(value) => Value::Real(value),
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            Value::Text(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

impl Sql for Sqlite<'_> {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let changed = self
            .0
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let mut out = Vec::new();
        self.for_each(sql, params, &mut |row| {
            out.push(row.to_vec());
            Ok(true)
        })?;
        Ok(out)
    }

    fn for_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&[Value]) -> Result<bool>,
    ) -> Result<u64> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut visited = 0;
        let mut values = Vec::with_capacity(columns);
        while let Some(row) = rows.next()? {
            visited += 1;
            values.clear();
            for index in 0..columns {
                values.push(sqlite_value(row.get_ref(index)?));
            }
            if !each(&values)? {
                break;
            }
        }
        Ok(visited)
    }
}

/// Prepared statements of one PostgreSQL connection, by their source text. Keep one per
/// [`postgres::Client`] and lend it to each [`Postgres`] over that client's transactions.
#[derive(Default)]
pub struct StatementCache {
    statements: HashMap<String, postgres::Statement>,
}

/// A PostgreSQL connection as [`Sql`]: inside a transaction, or (for work that only reads)
/// statement by statement, each seeing the latest commits, with no BEGIN and COMMIT round
/// trips.
pub struct Postgres<'a, 't> {
    connection: Connection<'a, 't>,
    cache: &'a mut StatementCache,
}

enum Connection<'a, 't> {
    Transaction(&'a mut postgres::Transaction<'t>),
    Autocommit(&'a mut postgres::Client),
}

impl<'a, 't> Postgres<'a, 't> {
    /// Statements inside `transaction`.
    pub fn in_transaction(
        transaction: &'a mut postgres::Transaction<'t>,
        cache: &'a mut StatementCache,
    ) -> Self {
        Postgres {
            connection: Connection::Transaction(transaction),
            cache,
        }
    }

    /// Each statement on its own: for reads that need no single snapshot.
    pub fn autocommit(client: &'a mut postgres::Client, cache: &'a mut StatementCache) -> Self {
        Postgres {
            connection: Connection::Autocommit(client),
            cache,
        }
    }

    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(statement) = self.cache.statements.get(sql) {
            return Ok(statement.clone());
        }
        let text = dollar_parameters(sql);
        let statement = match &mut self.connection {
            Connection::Transaction(transaction) => transaction.prepare(&text)?,
            Connection::Autocommit(client) => client.prepare(&text)?,
        };
        self.cache
            .statements
            .insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

fn params_of(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|value| value as &(dyn ToSql + Sync))
        .collect()
}

fn postgres_value(row: &postgres::Row, index: usize) -> Result<Value> {
    let ty = row.columns()[index].type_();
    Ok(match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.into(),
        Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(i64::from).into(),
        Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map(i64::from).into(),
        Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(i64::from).into(),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.into(),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(index)?.map(f64::from).into(),
        _ if <String as postgres::types::FromSql>::accepts(ty) => {
            row.try_get::<_, Option<String>>(index)?.into()
        }
        _ => {
            return Err(Error::Invalid(format!(
                "column {} has PostgreSQL type {ty}, which the shared SQL does not read: cast it \
                 to bigint, double precision or text",
                row.columns()[index].name()
            )));
        }
    })
}

impl Sql for Postgres<'_, '_> {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let statement = self.statement(sql)?;
        let params = params_of(params);
        Ok(match &mut self.connection {
            Connection::Transaction(transaction) => transaction.execute(&statement, &params)?,
            Connection::Autocommit(client) => client.execute(&statement, &params)?,
        })
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let statement = self.statement(sql)?;
        let params = params_of(params);
        let rows = match &mut self.connection {
            Connection::Transaction(transaction) => transaction.query(&statement, &params)?,
            Connection::Autocommit(client) => client.query(&statement, &params)?,
        };
        rows.iter().map(postgres_row).collect()
    }

    fn for_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut dyn FnMut(&[Value]) -> Result<bool>,
    ) -> Result<u64> {
        use postgres::fallible_iterator::FallibleIterator;
        let statement = self.statement(sql)?;
        let mut rows = match &mut self.connection {
            Connection::Transaction(transaction) => transaction.query_raw(&statement, params)?,
            Connection::Autocommit(client) => client.query_raw(&statement, params)?,
        };
        let mut visited = 0;
        while let Some(row) = rows.next()? {
            visited += 1;
            if !each(&postgres_row(&row)?)? {
                break;
            }
        }
        Ok(visited)
    }
}

fn postgres_row(row: &postgres::Row) -> Result<Vec<Value>> {
    (0..row.len())
        .map(|index| postgres_value(row, index))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_dollars_outside_quotes_only() {
        assert_eq!(
            dollar_parameters("SELECT ?1, '?2', \"?3\", x FROM t WHERE a = ?12 AND b = 'it''s ?4'"),
            "SELECT $1, '?2', \"?3\", x FROM t WHERE a = $12 AND b = 'it''s ?4'"
        );
        assert_eq!(
            dollar_parameters("SELECT ? + ?, ?5, ?, '?'"),
            "SELECT $1 + $2, $5, $6, '?'",
            "bare parameters are numbered as SQLite numbers them"
        );
    }

    #[test]
    fn sqlite_runs_the_shared_statements_and_reads_values_back() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
            .unwrap();
        let mut sql = Sqlite(&conn);
        let id = sql
            .query_int(
                "INSERT INTO t (name, score) VALUES (?1, ?2) RETURNING id",
                &["a".into(), 1.5.into()],
            )
            .unwrap();
        assert_eq!(id, Some(1));
        assert_eq!(
            sql.execute(
                "INSERT INTO t (id, name) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                &[1.into(), Value::Null]
            )
            .unwrap(),
            0
        );
        let rows = sql
            .query("SELECT id, name, score, NULL FROM t", &[])
            .unwrap();
        assert_eq!(
            rows,
            vec![vec![
                Value::Int(1),
                Value::Text("a".into()),
                Value::Real(1.5),
                Value::Null
            ]]
        );
    }
}
