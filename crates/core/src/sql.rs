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

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
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

/// `sql` with `?N` parameters written `$N`, as PostgreSQL wants them; quoted text and
/// identifiers are left alone.
pub fn dollar_parameters(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
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
            None if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
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
        let mut statement = self.0.prepare_cached(sql)?;
        let columns = statement.column_count();
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(
                (0..columns)
                    .map(|index| row.get_ref(index).map(sqlite_value))
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
        }
        Ok(out)
    }
}

/// Prepared statements of one PostgreSQL connection, by their source text. Keep one per
/// [`postgres::Client`] and lend it to each [`Postgres`] over that client's transactions.
#[derive(Default)]
pub struct StatementCache {
    statements: HashMap<String, postgres::Statement>,
}

/// A PostgreSQL transaction as [`Sql`].
pub struct Postgres<'a, 't> {
    pub transaction: &'a mut postgres::Transaction<'t>,
    pub cache: &'a mut StatementCache,
}

impl Postgres<'_, '_> {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(statement) = self.cache.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.transaction.prepare(&dollar_parameters(sql))?;
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
        Ok(self.transaction.execute(&statement, &params_of(params))?)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let statement = self.statement(sql)?;
        let rows = self.transaction.query(&statement, &params_of(params))?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| postgres_value(row, index))
                    .collect()
            })
            .collect()
    }
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
        assert_eq!(dollar_parameters("SELECT ? + 1"), "SELECT ? + 1");
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
