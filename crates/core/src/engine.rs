//! Which engine holds the data, chosen once from `--db`: a path is an SQLite file (the embedded
//! default), a `postgres://` URL a PostgreSQL server. Code that writes in bulk goes through
//! [`Loader`], which each engine implements in its own way (prepared inserts with indexes
//! rebuilt at the end on SQLite; binary COPY into monthly partitions on PostgreSQL), so the
//! programs above it have one body for both.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rusqlite::TransactionBehavior;

use postgres::fallible_iterator::FallibleIterator;

use crate::domain::NewTransaction;
use crate::error::{Error, Result};
use crate::store::{PaymentIdentity, STORED_COLUMNS, StoredTransaction};
use crate::time::EventTime;

/// The database `--db` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An SQLite file, created with the schema if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL server and database, `postgres://user:password@host:port/database`.
    Postgres(String),
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Target, String> {
        if text.trim().is_empty() {
            return Err(
                "an empty --db: give an SQLite file path or a postgres://user@host/database URL"
                    .to_string(),
            );
        }
        if crate::pg::is_url(text) {
            Ok(Target::Postgres(text.to_string()))
        } else if text.contains("://") {
            Err(format!(
                "{text:?} is neither a file path nor a postgres:// URL: Aegis stores its data in SQLite or PostgreSQL"
            ))
        } else {
            Ok(Target::Sqlite(PathBuf::from(text)))
        }
    }
}

impl From<&Path> for Target {
    fn from(path: &Path) -> Target {
        Target::Sqlite(path.to_path_buf())
    }
}

impl From<PathBuf> for Target {
    fn from(path: PathBuf) -> Target {
        Target::Sqlite(path)
    }
}

impl From<&PathBuf> for Target {
    fn from(path: &PathBuf) -> Target {
        Target::Sqlite(path.clone())
    }
}

impl fmt::Display for Target {
    /// The path, or the URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(path) => write!(f, "{}", path.display()),
            Target::Postgres(url) => f.write_str(&crate::pg::redact(url)),
        }
    }
}

impl Target {
    /// The `--db` value that names this target (a URL keeps its password).
    pub fn as_arg(&self) -> String {
        match self {
            Target::Sqlite(path) => path.display().to_string(),
            Target::Postgres(url) => url.clone(),
        }
    }

    /// Opens (creating and migrating as needed) the database. Errors name it.
    pub fn open(&self) -> Result<Store> {
        match self {
            Target::Sqlite(path) => match crate::db::open(path) {
                Ok(conn) => Ok(Store::Sqlite(conn)),
                Err(error @ Error::SchemaTooNew { .. }) => Err(error),
                Err(error) => Err(Error::Invalid(format!(
                    "opening {}: {error}",
                    path.display()
                ))),
            },
            Target::Postgres(url) => Ok(Store::Postgres(Box::new(crate::pg::open(url)?))),
        }
    }
}

/// An open database of either engine.
pub enum Store {
    Sqlite(rusqlite::Connection),
    Postgres(Box<postgres::Client>),
}

/// The file a monitor holds an exclusive OS lock on while it scores the SQLite file `db`
/// (`<db>.monitor.lock`): one monitor per database, and what other programs ask to learn
/// whether one runs.
/// The file is named after the database's real path, links resolved, so that two names of one
/// file (`/srv/aegis.db`, a link to `/data/aegis.db`) are one lock.
pub fn monitor_lock_path(db: &Path) -> PathBuf {
    let db = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_path_buf());
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".monitor.lock");
    db.with_file_name(name)
}

impl Store {
    /// Whether a monitor is scoring this database now (`target` names it): it holds the lock
    /// file beside an SQLite file, or the monitor's advisory lock on PostgreSQL
    /// ([`crate::pg::MONITOR_LOCK`]). Asked, not held: the lock is let go at once.
    pub fn monitor_running(&mut self, target: &Target) -> Result<bool> {
        match (self, target) {
            (Store::Sqlite(_), Target::Sqlite(path)) => {
                let lock = monitor_lock_path(path);
                let file = match std::fs::OpenOptions::new().read(true).open(&lock) {
                    Ok(file) => file,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                    Err(error) => return Err(Error::io(&lock, error)),
                };
                match file.try_lock() {
                    Ok(()) => Ok(false),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(true),
                    Err(std::fs::TryLockError::Error(error)) => Err(Error::io(&lock, error)),
                }
            }
            (Store::Postgres(client), _) => {
                let free: bool = client
                    .query_one(
                        "SELECT pg_try_advisory_lock($1)",
                        &[&crate::pg::MONITOR_LOCK],
                    )?
                    .get(0);
                if free {
                    client.execute("SELECT pg_advisory_unlock($1)", &[&crate::pg::MONITOR_LOCK])?;
                }
                Ok(!free)
            }
            (Store::Sqlite(_), Target::Postgres(_)) => Ok(false),
        }
    }

    /// Number of stored transactions.
    pub fn transaction_count(&mut self) -> Result<i64> {
        match self {
            Store::Sqlite(conn) => crate::db::transaction_count(conn),
            Store::Postgres(client) => Ok(client
                .query_one("SELECT count(*) FROM transaction_events", &[])?
                .get(0)),
        }
    }

    /// Hands every stored transaction with an event time before `until` (all without it) to
    /// `visit`, in event-time order (ties by id), streaming: the rows are never all in memory.
    pub fn replay(
        &mut self,
        until: Option<EventTime>,
        mut visit: impl FnMut(StoredTransaction) -> Result<()>,
    ) -> Result<()> {
        let until = until.map(crate::time::format_ist);
        match self {
            Store::Sqlite(conn) => {
                let sql = format!(
                    "{STORED_COLUMNS} WHERE (?1 IS NULL OR timestamp < ?1) ORDER BY timestamp, transaction_id"
                );
                let mut statement = conn.prepare(&sql)?;
                let mut rows = statement.query([until])?;
                while let Some(row) = rows.next()? {
                    visit(crate::store::read_stored(row)?)?;
                }
            }
            Store::Postgres(client) => {
                let sql = format!(
                    "{STORED_COLUMNS} WHERE ($1::text IS NULL OR timestamp < $1) ORDER BY timestamp, transaction_id"
                );
                let mut rows = client.query_raw(&sql, [until])?;
                while let Some(row) = rows.next()? {
                    visit(crate::pg::read_stored(&row)?)?;
                }
            }
        }
        Ok(())
    }

    /// Appends live payments in one transaction: all or none. On PostgreSQL they go in with
    /// one binary COPY after their months' partitions exist.
    pub fn append(&mut self, rows: &[crate::domain::NewTransaction]) -> Result<()> {
        match self {
            Store::Sqlite(conn) => {
                let transaction = conn.transaction()?;
                crate::store::insert_transactions(&transaction, rows)?;
                transaction.commit()?;
            }
            Store::Postgres(client) => {
                let mut transaction = client.transaction()?;
                crate::pg::copy_transactions(&mut transaction, rows)?;
                transaction.commit()?;
            }
        }
        Ok(())
    }

    /// Runs `work` in one transaction that may write, with statements written once for both
    /// engines ([`crate::sql`]); commits if it succeeds. On SQLite it takes the write lock at
    /// the start, so a read followed by a write cannot be refused half-way.
    pub fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut dyn crate::sql::Sql) -> Result<T>,
    ) -> Result<T> {
        self.transact(&mut crate::sql::StatementCache::default(), true, work)
    }

    /// [`in_transaction`](Self::in_transaction) for a caller that keeps the connection's
    /// prepared statements in `cache` (PostgreSQL; SQLite caches its own).
    pub fn in_transaction_cached<T>(
        &mut self,
        cache: &mut crate::sql::StatementCache,
        work: impl FnOnce(&mut dyn crate::sql::Sql) -> Result<T>,
    ) -> Result<T> {
        self.transact(cache, true, work)
    }

    /// Runs `work`, which only reads and never waits for a writer. On SQLite it is one
    /// transaction (one snapshot) that does not take the write lock; on PostgreSQL each
    /// statement runs on its own and sees the latest commits, saving BEGIN and COMMIT round
    /// trips: callers must not need one snapshot across statements (what they read first,
    /// such as the monitor's mark, stays true when they read on).
    pub fn read<T>(
        &mut self,
        work: impl FnOnce(&mut dyn crate::sql::Sql) -> Result<T>,
    ) -> Result<T> {
        self.transact(&mut crate::sql::StatementCache::default(), false, work)
    }

    /// [`read`](Self::read) with the caller's statement cache.
    pub fn read_cached<T>(
        &mut self,
        cache: &mut crate::sql::StatementCache,
        work: impl FnOnce(&mut dyn crate::sql::Sql) -> Result<T>,
    ) -> Result<T> {
        self.transact(cache, false, work)
    }

    /// [`in_transaction`](Self::in_transaction) (`writes`) or [`read`](Self::read), for
    /// callers with an error type of their own: a write commits if `work` returns `Ok` and
    /// rolls back if not.
    pub fn transact<T, E: From<Error>>(
        &mut self,
        cache: &mut crate::sql::StatementCache,
        writes: bool,
        work: impl FnOnce(&mut dyn crate::sql::Sql) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        match self {
            Store::Sqlite(conn) => {
                let transaction = conn
                    .transaction_with_behavior(if writes {
                        TransactionBehavior::Immediate
                    } else {
                        TransactionBehavior::Deferred
                    })
                    .map_err(Error::from)?;
                let out = work(&mut crate::sql::Sqlite(&transaction))?;
                transaction.commit().map_err(Error::from)?;
                Ok(out)
            }
            Store::Postgres(client) if !writes => {
                work(&mut crate::sql::Postgres::autocommit(client, cache))
            }
            Store::Postgres(client) => {
                let transaction = client.transaction().map_err(Error::from)?;
                run_and_commit(transaction, cache, work)
            }
        }
    }

    /// Runs `work`, which only reads, in one snapshot of the data: a page whose figures come
    /// from several statements (a total and its rows, a day's counts and its alerts) then
    /// agrees with itself. SQLite's read transaction is one snapshot already; on PostgreSQL
    /// this is a `REPEATABLE READ READ ONLY` transaction (a plain read there runs statement by
    /// statement, each seeing the latest commits: two round trips fewer, for reads of one
    /// statement).
    pub fn read_snapshot<T, E: From<Error>>(
        &mut self,
        cache: &mut crate::sql::StatementCache,
        work: impl FnOnce(&mut dyn crate::sql::Sql) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        match self {
            Store::Sqlite(_) => self.transact(cache, false, work),
            Store::Postgres(client) => {
                let transaction = client
                    .build_transaction()
                    .isolation_level(postgres::IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(Error::from)?;
                run_and_commit(transaction, cache, work)
            }
        }
    }

    /// Starts a load: one transaction that holds the engine's write lock from the start, so
    /// what the load checks (is the table empty, which refs are stored) stays true until it
    /// commits. Dropping the loader without [`Loader::commit`] rolls everything back.
    pub fn loader(&mut self) -> Result<Box<dyn Loader + '_>> {
        match self {
            Store::Sqlite(conn) => Ok(Box::new(SqliteLoader {
                transaction: conn.transaction_with_behavior(TransactionBehavior::Immediate)?,
                bulk: None,
            })),
            Store::Postgres(client) => {
                let mut transaction = client.transaction()?;
                transaction.execute(
                    "SELECT pg_advisory_xact_lock($1)",
                    &[&crate::pg::APPEND_LOCK],
                )?;
                Ok(Box::new(PostgresLoader {
                    transaction,
                    bulk: false,
                }))
            }
        }
    }
}

/// Runs `work` in a PostgreSQL transaction and commits it if `work` succeeds (dropped, it rolls
/// back).
fn run_and_commit<T, E: From<Error>>(
    mut transaction: postgres::Transaction<'_>,
    cache: &mut crate::sql::StatementCache,
    work: impl FnOnce(&mut dyn crate::sql::Sql) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let out = work(&mut crate::sql::Postgres::in_transaction(
        &mut transaction,
        cache,
    ))?;
    transaction.commit().map_err(Error::from)?;
    Ok(out)
}

/// A row of the beneficiary registry (`generate` writes it; `simulate` pays the same people).
#[derive(Debug, Clone)]
pub struct BeneficiaryRow {
    pub beneficiary_id: String,
    pub account_id: String,
    pub agent_id: String,
    pub district: String,
    pub state: String,
    pub home_latitude: f64,
    pub home_longitude: f64,
    /// JSON array of scheme codes.
    pub schemes: String,
}

/// One all-or-nothing load of payments (and the registry) into either engine.
pub trait Loader {
    /// Number of stored transactions, as this load's transaction sees them.
    fn transaction_count(&mut self) -> Result<i64>;
    /// Empties the data tables (`--force`): payments, scores, verdicts, incidents, registry,
    /// the monitor's mark, the drift counts and the control sample. Users, sessions, API keys
    /// and the audit log stay.
    fn clear_data(&mut self) -> Result<()>;
    /// Into an empty table: drops the secondary indexes, to build them once in
    /// [`Loader::finish`].
    fn begin_bulk(&mut self) -> Result<()>;
    /// The stored payments of those of `refs` already stored, by ref.
    fn stored_payments(&mut self, refs: &[&str]) -> Result<HashMap<String, PaymentIdentity>>;
    /// Appends rows; ids follow the order of `rows`.
    fn insert(&mut self, rows: &[NewTransaction]) -> Result<()>;
    /// Inserts registry rows.
    fn insert_beneficiaries(&mut self, rows: &[BeneficiaryRow]) -> Result<()>;
    /// Rebuilds what [`Loader::begin_bulk`] dropped, if anything.
    fn finish(&mut self) -> Result<()>;
    /// Commits the load.
    fn commit(self: Box<Self>) -> Result<()>;
}

struct SqliteLoader<'a> {
    transaction: rusqlite::Transaction<'a>,
    bulk: Option<crate::db::BulkLoad>,
}

impl Loader for SqliteLoader<'_> {
    fn transaction_count(&mut self) -> Result<i64> {
        crate::db::transaction_count(&self.transaction)
    }

    fn clear_data(&mut self) -> Result<()> {
        self.transaction.execute_batch(
            "DELETE FROM verdicts; DELETE FROM incident_keys; DELETE FROM incident_alerts; \
             DELETE FROM incidents; UPDATE incident_state SET linked_up_to = 0; \
             DELETE FROM payment_refs; DELETE FROM transactions; DELETE FROM beneficiaries; \
             DELETE FROM monitor_state; DELETE FROM control_draws; DELETE FROM control_days; \
             DELETE FROM feature_days; DELETE FROM sqlite_sequence WHERE name = 'transactions';",
        )?;
        Ok(())
    }

    fn begin_bulk(&mut self) -> Result<()> {
        if self.bulk.is_none() {
            self.bulk = Some(crate::db::drop_transaction_indexes(&self.transaction)?);
        }
        Ok(())
    }

    fn stored_payments(&mut self, refs: &[&str]) -> Result<HashMap<String, PaymentIdentity>> {
        let mut stored = HashMap::new();
        for reference in refs {
            let sql = &mut crate::sql::Sqlite(&self.transaction);
            if let Some(payment) = crate::store::payment_of_ref(sql, reference)? {
                stored.insert((*reference).to_string(), payment);
            }
        }
        Ok(stored)
    }

    fn insert(&mut self, rows: &[NewTransaction]) -> Result<()> {
        crate::store::insert_transactions(&self.transaction, rows)
    }

    fn insert_beneficiaries(&mut self, rows: &[BeneficiaryRow]) -> Result<()> {
        let mut statement = self.transaction.prepare_cached(
            "INSERT INTO beneficiaries (beneficiary_id, account_id, agent_id, district, state, home_latitude, home_longitude, schemes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for row in rows {
            statement.execute(rusqlite::params![
                row.beneficiary_id,
                row.account_id,
                row.agent_id,
                row.district,
                row.state,
                row.home_latitude,
                row.home_longitude,
                row.schemes,
            ])?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some(bulk) = self.bulk.take() {
            crate::db::create_transaction_indexes(&self.transaction, bulk)?;
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.transaction.commit()?;
        Ok(())
    }
}

struct PostgresLoader<'a> {
    transaction: postgres::Transaction<'a>,
    bulk: bool,
}

impl Loader for PostgresLoader<'_> {
    fn transaction_count(&mut self) -> Result<i64> {
        Ok(self
            .transaction
            .query_one("SELECT count(*) FROM transaction_events", &[])?
            .get(0))
    }

    fn clear_data(&mut self) -> Result<()> {
        self.transaction.batch_execute(
            "TRUNCATE verdicts, incident_keys, incident_alerts, incidents, payment_refs, \
             transaction_scores, transaction_events, beneficiaries, monitor_state, control_draws, \
             control_days, feature_days RESTART IDENTITY; \
             UPDATE incident_state SET linked_up_to = 0;",
        )?;
        Ok(())
    }

    fn begin_bulk(&mut self) -> Result<()> {
        if !self.bulk {
            crate::pg::begin_bulk_load(&mut self.transaction)?;
            self.bulk = true;
        }
        Ok(())
    }

    fn stored_payments(&mut self, refs: &[&str]) -> Result<HashMap<String, PaymentIdentity>> {
        let rows = self.transaction.query(
            "SELECT transaction_ref, beneficiary_id, amount_paise, timestamp, scheme \
             FROM transaction_events WHERE transaction_ref = ANY($1)",
            &[&refs],
        )?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    PaymentIdentity {
                        beneficiary_id: row.get(1),
                        amount_paise: row.get(2),
                        timestamp: row.get(3),
                        scheme: row.get(4),
                    },
                )
            })
            .collect())
    }

    fn insert(&mut self, rows: &[NewTransaction]) -> Result<()> {
        crate::pg::copy_transactions(&mut self.transaction, rows)
    }

    fn insert_beneficiaries(&mut self, rows: &[BeneficiaryRow]) -> Result<()> {
        let statement = self.transaction.prepare(
            "INSERT INTO beneficiaries (beneficiary_id, account_id, agent_id, district, state, home_latitude, home_longitude, schemes) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::float8[], $8::text[])",
        )?;
        for chunk in rows.chunks(10_000) {
            let column =
                |f: fn(&BeneficiaryRow) -> &str| -> Vec<&str> { chunk.iter().map(f).collect() };
            let ids = column(|r| &r.beneficiary_id);
            let accounts = column(|r| &r.account_id);
            let agents = column(|r| &r.agent_id);
            let districts = column(|r| &r.district);
            let states = column(|r| &r.state);
            let schemes = column(|r| &r.schemes);
            let latitudes: Vec<f64> = chunk.iter().map(|r| r.home_latitude).collect();
            let longitudes: Vec<f64> = chunk.iter().map(|r| r.home_longitude).collect();
            self.transaction.execute(
                &statement,
                &[
                    &ids,
                    &accounts,
                    &agents,
                    &districts,
                    &states,
                    &latitudes,
                    &longitudes,
                    &schemes,
                ],
            )?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.bulk {
            crate::pg::finish_bulk_load(&mut self.transaction)?;
            self.bulk = false;
        }
        Ok(())
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_sqlite_and_a_postgres_url_is_postgres() {
        assert_eq!(
            "./transactions.db".parse::<Target>().unwrap(),
            Target::Sqlite("./transactions.db".into())
        );
        assert_eq!(
            "postgresql://a@h/d".parse::<Target>().unwrap(),
            Target::Postgres("postgresql://a@h/d".into())
        );
        let error = "mysql://a@h/d".parse::<Target>().unwrap_err();
        assert!(error.contains("SQLite or PostgreSQL"), "{error}");
        assert!("".parse::<Target>().is_err());
    }

    #[test]
    fn a_url_is_shown_without_its_password_and_passed_on_with_it() {
        let target: Target = "postgres://aegis:hunter2@db/audit".parse().unwrap();
        assert_eq!(target.to_string(), "postgres://aegis:***@db/audit");
        assert_eq!(target.as_arg(), "postgres://aegis:hunter2@db/audit");
    }
}
