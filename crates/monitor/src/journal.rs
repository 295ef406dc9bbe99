//! What the monitor needs from its database, once per engine.
//!
//! Both engines keep the same promise: a batch's scores, its incidents and the new mark commit
//! in one transaction, and rows are read in id order above the mark. Id order is commit order
//! on both (SQLite has one writer; on PostgreSQL every insert takes `pg::APPEND_LOCK` before an
//! id is drawn), so a row that commits late is never skipped. What differs:
//!
//! | | SQLite | PostgreSQL |
//! |---|---|---|
//! | one scorer | OS lock on `<db>.monitor.lock` | session advisory lock on the scoring connection |
//! | scores | `UPDATE transactions` | one multi-row insert into `transaction_scores` |
//! | waiting for rows | poll every `--poll-ms` | `LISTEN aegis_payments` (notified on commit) |
//! | checkpoints | `<db>.checkpoints/` | `--checkpoint-dir` (default under `--modeling`) |
//!
//! Incidents and the mark are written by the same statements on both ([`aegis_core::sql`]).
//! Both locks die with the process, so `kill -9` never leaves a stale one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::bail;
use postgres::fallible_iterator::FallibleIterator;
use rusqlite::{OptionalExtension, params};

use aegis_core::drift::FeatureDays;
use aegis_core::engine::{Store, Target};
use aegis_core::feedback::VerdictBook;
use aegis_core::incidents::{self, AlertToLink};
use aegis_core::pg;
use aegis_core::sql::{Postgres, Sql, Sqlite, StatementCache};
use aegis_core::store::{self, STORED_COLUMNS, StoredTransaction};

use crate::lock::MonitorLock;

/// One row's outcome, as written back.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub transaction_id: i64,
    pub status: &'static str,
    pub score: Option<f64>,
    pub reasons: Option<String>,
    /// The payment's stored event time, which PostgreSQL's scores carry.
    pub timestamp: Option<String>,
}

/// A scored batch, to commit as one transaction.
pub struct ScoredBatch<'a> {
    pub outcomes: Vec<Outcome>,
    pub alerts: Vec<AlertToLink<'a>>,
    /// The first and last ids of the batch (the last is the new mark).
    pub first_id: i64,
    pub mark: i64,
    pub model_version: &'a str,
    pub scored_at: i64,
    /// The batch's feature values counted per event day into the model's bins (empty for a
    /// model without them), added to `feature_days` with the scores.
    pub feature_days: FeatureDays,
}

/// The monitor's database, with its one-scorer lock.
pub struct Journal {
    store: Store,
    /// PostgreSQL's prepared statements (SQLite's connection caches its own).
    cache: StatementCache,
    /// SQLite's lock file; PostgreSQL's lock lives in the connection.
    _lock: Option<MonitorLock>,
    /// PostgreSQL's prepared read of the next batch (the hot path's one statement outside
    /// the shared SQL).
    next_batch: Option<postgres::Statement>,
    name: String,
    /// The count of payment deletions (migration 0015) as the last commit (or the opening)
    /// read it, before the next batch is read: a commit that finds it moved leaves out the
    /// rows deleted since. Kept from the commit, so reading a batch costs no extra query.
    deletions: i64,
}

use aegis_core::error::sqlite_busy as is_busy_sqlite;

/// Whether PostgreSQL rolled the batch back for another transaction (a deadlock with a
/// dashboard write over the same incidents, a serialization failure, a lock wait that timed
/// out): the same batch retried goes through.
fn is_transient_postgres(error: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    error.code().is_some_and(|code| {
        [
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::LOCK_NOT_AVAILABLE,
        ]
        .contains(code)
    })
}

/// Whether an error is another writer in the way (SQLite busy, a PostgreSQL deadlock or
/// serialization failure), which a retry of the same batch fixes.
pub fn is_busy(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<rusqlite::Error>()
            .is_some_and(is_busy_sqlite)
            || cause
                .downcast_ref::<postgres::Error>()
                .is_some_and(is_transient_postgres)
            || match cause.downcast_ref::<aegis_core::Error>() {
                Some(aegis_core::Error::Sqlite(error)) => is_busy_sqlite(error),
                Some(aegis_core::Error::Postgres(error)) => is_transient_postgres(error),
                _ => false,
            }
    })
}

/// Whether an error says the database went away or cannot be reached now: PostgreSQL
/// restarted, the network dropped, the server is starting up.
pub fn is_connection_lost(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<postgres::Error>()
            .is_some_and(aegis_core::pg::connection_lost)
            || cause
                .downcast_ref::<aegis_core::Error>()
                .is_some_and(aegis_core::Error::is_connection_lost)
    })
}

impl Journal {
    /// Takes the one-scorer lock, then opens (and migrates) the database.
    pub fn open(target: &Target) -> anyhow::Result<Journal> {
        Journal::open_as(target, &session_name())
    }

    /// [`Journal::open`], named `session` on a server ([`session_name`]): the sessions of one
    /// run share a name, by which a new session finds the run's earlier one.
    pub fn open_as(target: &Target, session: &str) -> anyhow::Result<Journal> {
        let lock = match target {
            Target::Sqlite(path) => Some(MonitorLock::acquire(path)?),
            Target::Postgres(_) => None,
        };
        let mut store = target.open()?;
        if let (Store::Postgres(client), Target::Postgres(url)) = (&mut store, target) {
            lock_scorer(client, url, session)?;
            client.batch_execute(&format!("LISTEN {}", pg::PAYMENTS_CHANNEL))?;
        }
        let mut cache = StatementCache::default();
        let deletions = store.read_cached(&mut cache, |sql| deletions(sql))?;
        Ok(Journal {
            store,
            cache,
            _lock: lock,
            next_batch: None,
            name: target.to_string(),
            deletions,
        })
    }

    /// Where checkpoints go unless `--checkpoint-dir` says otherwise: beside the SQLite file,
    /// or, for a server, in a folder of `modeling` named after it.
    pub fn default_checkpoint_dir(target: &Target, modeling: &Path) -> PathBuf {
        match target {
            Target::Sqlite(path) => {
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(".checkpoints");
                path.with_file_name(name)
            }
            Target::Postgres(url) => {
                let slug: String = pg::redact(url)
                    .split_once("://")
                    .map_or(url.as_str(), |(_, rest)| rest)
                    .rsplit('@')
                    .next()
                    .unwrap_or_default()
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                modeling.join("monitor-checkpoints").join(slug)
            }
        }
    }

    /// Links anomalies scored before incidents existed (or by another tool).
    pub fn link_pending(&mut self) -> anyhow::Result<usize> {
        Ok(self
            .store
            .in_transaction_cached(&mut self.cache, incidents::link_pending)?)
    }

    /// Adds the verdicts recorded since `book` last read; returns how many.
    pub fn refresh_verdicts(&mut self, book: &mut VerdictBook) -> anyhow::Result<usize> {
        Ok(self
            .store
            .read_cached(&mut self.cache, |sql| book.refresh(sql))?)
    }

    /// The committed high-water mark (0 before the first batch).
    pub fn mark(&mut self) -> anyhow::Result<i64> {
        Ok(self.store.read_cached(&mut self.cache, |sql| {
            Ok(store::monitor_mark(sql)?.unwrap_or(0))
        })?)
    }

    /// What identifies the row at `mark` in this database, for checkpoints: its insert time
    /// (wall clock, ms) and beneficiary. `None` when there is no such row.
    pub fn anchor(&mut self, mark: i64) -> Option<String> {
        if mark == 0 {
            return Some(String::new());
        }
        let row = self
            .store
            .read_cached(&mut self.cache, |sql| {
                // As text: an auditor's own SQL may have stored any type in either column.
                sql.query_row(
                    "SELECT CAST(inserted_at AS TEXT), CAST(beneficiary_id AS TEXT) \
                     FROM transactions WHERE transaction_id = ?1",
                    &[mark.into()],
                )
            })
            .ok()??;
        Some(format!(
            "{}:{}",
            row[0].text().unwrap_or_default(),
            row[1].text().unwrap_or_default()
        ))
    }

    /// Hands every row in `(after, upto]` to `visit`, in id order, streaming. Returns the rows.
    pub fn replay(
        &mut self,
        after: i64,
        upto: i64,
        visit: &mut dyn FnMut(StoredTransaction),
    ) -> anyhow::Result<u64> {
        let mut read = 0;
        match &mut self.store {
            Store::Sqlite(conn) => {
                let mut statement = conn.prepare(&format!(
                    "{STORED_COLUMNS} WHERE transaction_id > ?1 AND transaction_id <= ?2 ORDER BY transaction_id"
                ))?;
                let mut rows = statement.query([after, upto])?;
                while let Some(row) = rows.next()? {
                    read += 1;
                    visit(store::read_stored(row)?);
                }
            }
            Store::Postgres(client) => {
                let mut transaction = client.transaction()?;
                let mut rows = transaction.query_raw(
                    &format!(
                        "{STORED_COLUMNS} WHERE transaction_id > $1 AND transaction_id <= $2 ORDER BY transaction_id"
                    ),
                    [after, upto],
                )?;
                while let Some(row) = rows.next()? {
                    read += 1;
                    visit(pg::read_stored(&row)?);
                }
            }
        }
        Ok(read)
    }

    /// Up to `limit` rows above `mark`, in id order; `None` when SQLite is busy (try again).
    pub fn next_batch(
        &mut self,
        mark: i64,
        limit: usize,
    ) -> anyhow::Result<Option<Vec<StoredTransaction>>> {
        const SELECT: &str = "WHERE transaction_id > ?1 ORDER BY transaction_id LIMIT ?2";
        match &mut self.store {
            Store::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(&format!("{STORED_COLUMNS} {SELECT}"))?;
                let rows = statement.query_map(params![mark, limit as i64], store::read_stored)?;
                match rows.collect::<rusqlite::Result<Vec<_>>>() {
                    Ok(rows) => Ok(Some(rows)),
                    Err(error) if is_busy_sqlite(&error) => Ok(None),
                    Err(error) => Err(error.into()),
                }
            }
            Store::Postgres(client) => {
                let statement = match &self.next_batch {
                    Some(statement) => statement.clone(),
                    None => {
                        let sql = aegis_core::sql::dollar_parameters(&format!(
                            "{STORED_COLUMNS} {SELECT}"
                        ));
                        let statement = client.prepare(&sql)?;
                        self.next_batch = Some(statement.clone());
                        statement
                    }
                };
                let rows = client.query(&statement, &[&mark, &(limit as i64)])?;
                Ok(Some(
                    rows.iter()
                        .map(pg::read_stored)
                        .collect::<aegis_core::Result<Vec<_>>>()?,
                ))
            }
        }
    }

    /// Writes a batch's outcomes, links its alerts into incidents and advances the mark, in
    /// one transaction.
    pub fn commit(&mut self, batch: &ScoredBatch<'_>) -> anyhow::Result<()> {
        match &mut self.store {
            Store::Sqlite(conn) => {
                let transaction =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let (kept, deletions) =
                    without_deleted(&mut Sqlite(&transaction), batch, self.deletions)?;
                let batch = kept.as_ref().unwrap_or(batch);
                {
                    let mut update = transaction.prepare_cached(
                        "UPDATE transactions SET status = ?1, anomaly_score = ?2, reasons = ?3, model_version = ?4, scored_at = ?5 \
                         WHERE transaction_id = ?6",
                    )?;
                    for outcome in &batch.outcomes {
                        update.execute(params![
                            outcome.status,
                            outcome.score,
                            outcome.reasons,
                            batch.model_version,
                            batch.scored_at,
                            outcome.transaction_id
                        ])?;
                    }
                }
                link_and_mark(&mut Sqlite(&transaction), batch)?;
                transaction.commit()?;
                self.deletions = deletions;
            }
            Store::Postgres(client) => {
                let mut transaction = client.transaction()?;
                // A lock another session holds (an operator's delete left open in psql holds
                // the scores' lock) is waited for 5 s at a time: the wait ends as busy, and the
                // batch is committed again after a look at the stop flag and a log line,
                // instead of one silent wait without end.
                transaction.batch_execute("SET LOCAL lock_timeout = '5s'")?;
                transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&pg::SCORES_LOCK])?;
                let (kept, deletions) = without_deleted(
                    &mut Postgres::in_transaction(&mut transaction, &mut self.cache),
                    batch,
                    self.deletions,
                )?;
                let batch = kept.as_ref().unwrap_or(batch);
                let ids: Vec<i64> = batch.outcomes.iter().map(|o| o.transaction_id).collect();
                let statuses: Vec<&str> = batch.outcomes.iter().map(|o| o.status).collect();
                let scores: Vec<Option<f64>> = batch.outcomes.iter().map(|o| o.score).collect();
                let reasons: Vec<Option<&str>> = batch
                    .outcomes
                    .iter()
                    .map(|o| o.reasons.as_deref())
                    .collect();
                let times: Vec<Option<&str>> = batch
                    .outcomes
                    .iter()
                    .map(|o| o.timestamp.as_deref())
                    .collect();
                // One statement for the whole batch: a row per score, no index of the payment
                // touched (the scores are their own table). Each score carries its payment's
                // event time, by which the anomalies of a period are found.
                transaction.execute(
                    "INSERT INTO transaction_scores (transaction_id, status, anomaly_score, reasons, model_version, scored_at, timestamp) \
                     SELECT id, status, score, reasons, $5, $6, stamp \
                     FROM unnest($1::bigint[], $2::text[], $3::float8[], $4::text[], $7::text[]) AS s (id, status, score, reasons, stamp)",
                    &[
                        &ids as &(dyn postgres::types::ToSql + Sync),
                        &statuses,
                        &scores,
                        &reasons,
                        &batch.model_version,
                        &batch.scored_at,
                        &times,
                    ],
                )?;
                link_and_mark(
                    &mut Postgres::in_transaction(&mut transaction, &mut self.cache),
                    batch,
                )?;
                transaction.commit()?;
                self.deletions = deletions;
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` for new rows: SQLite sleeps `poll`, PostgreSQL wakes on the first
    /// notice of a commit.
    pub fn wait(&mut self, poll: Duration, timeout: Duration) -> anyhow::Result<()> {
        match &mut self.store {
            Store::Sqlite(_) => std::thread::sleep(poll),
            Store::Postgres(client) => {
                let mut notices = client.notifications();
                if notices.timeout_iter(timeout).next()?.is_some() {
                    // Commits that arrived meanwhile are covered by the next read.
                    while notices.iter().next()?.is_some() {}
                }
            }
        }
        Ok(())
    }

    /// The insert time of the row at `mark` and the newest id, for the progress line.
    pub fn progress(&mut self, mark: i64) -> anyhow::Result<(Option<i64>, i64)> {
        match &mut self.store {
            Store::Sqlite(conn) => {
                // Any type may be stored there by an auditor's own SQL: only an integer is a time.
                let inserted = conn
                    .query_row(
                        "SELECT inserted_at FROM transactions WHERE transaction_id = ?1",
                        [mark],
                        |row| Ok(row.get_ref(0)?.as_i64().ok()),
                    )
                    .optional()?
                    .flatten();
                let newest = conn.query_row(
                    "SELECT coalesce(max(transaction_id), 0) FROM transactions",
                    [],
                    |row| row.get(0),
                )?;
                Ok((inserted, newest))
            }
            Store::Postgres(client) => {
                let inserted = client
                    .query_opt(
                        "SELECT inserted_at FROM transaction_events WHERE transaction_id = $1",
                        &[&mark],
                    )?
                    .map(|row| row.get(0));
                let newest = client
                    .query_one(
                        "SELECT coalesce(max(transaction_id), 0) FROM transaction_events",
                        &[],
                    )?
                    .get(0);
                Ok((inserted, newest))
            }
        }
    }

    /// What the database is, for messages (a server's password redacted).
    pub fn describe(&self) -> &str {
        &self.name
    }
}

/// A monitor run's name on the server: its pid and a random tag, so that two monitors with the
/// same pid (containers behind one address) or two runs in one process are never taken for
/// each other.
pub fn session_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    // The standard library seeds RandomState from the system's randomness, and no two
    // are alike.
    let tag = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32;
    format!("aegis monitor (pid {}, {tag:08x})", std::process::id())
}

/// Takes the session's advisory lock that makes this connection the database's one scorer, or
/// names who holds it. The server drops it with the connection, so a killed monitor's lock
/// goes with it.
fn lock_scorer(client: &mut postgres::Client, url: &str, name: &str) -> anyhow::Result<()> {
    client.batch_execute(&format!("SET application_name = '{name}'"))?;
    let try_lock = |client: &mut postgres::Client| -> anyhow::Result<bool> {
        Ok(client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&pg::MONITOR_LOCK])?
            .get(0))
    };
    if try_lock(client)? {
        return Ok(());
    }
    // This run's own earlier session, whose network went away silently: the server holds its
    // lock until it notices the connection is dead, which can take hours. Same name (this
    // run's pid and tag), same database: ended, so that this session can go on.
    let ghosts = client.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND pid <> pg_backend_pid() \
         AND datname = current_database()",
        &[&name],
    )?;
    if ghosts > 0 {
        tracing::warn!(
            sessions = ghosts,
            "ended this monitor's own earlier session, which the server still held"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if try_lock(client)? {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // A bigint key is held as two 32-bit halves (classid high, objid low).
    let holder = client
        .query_opt(
            "SELECT a.application_name, coalesce(host(a.client_addr), 'a local socket') \
             FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&pg::MONITOR_LOCK],
        )?
        .map(|row| {
            format!(
                " ({} from {})",
                row.get::<_, String>(0),
                row.get::<_, String>(1)
            )
        })
        .unwrap_or_default();
    bail!(
        "another monitor{holder} is already scoring {}: stop it first — two monitors would score rows twice",
        pg::redact(url)
    )
}

/// The count of payment deletions so far.
fn deletions(sql: &mut dyn Sql) -> aegis_core::Result<i64> {
    Ok(sql
        .query_int(
            "SELECT deleted FROM payment_deletions WHERE singleton = 1",
            &[],
        )?
        .unwrap_or(0))
}

/// `batch` without the rows deleted since it was read, or `None` when nothing was deleted
/// since `seen` (the count read before the batch): the common case costs one read. Also the
/// count now, which the next batch is read after. In the commit's transaction, after the
/// scores' lock on PostgreSQL, so that a delete either committed before (and is seen here) or
/// waits for this commit (and takes the scores).
fn without_deleted<'a>(
    sql: &mut dyn Sql,
    batch: &ScoredBatch<'a>,
    seen: i64,
) -> anyhow::Result<(Option<ScoredBatch<'a>>, i64)> {
    let now = deletions(sql)?;
    if now == seen {
        return Ok((None, now));
    }
    let payments = sql.engine().payments_table();
    let present: std::collections::HashSet<i64> = sql
        .rows(
            &format!(
                "SELECT transaction_id FROM {payments} WHERE transaction_id BETWEEN ?1 AND ?2"
            ),
            &[batch.first_id.into(), batch.mark.into()],
            |row| aegis_core::sql::Row::at(row, 0),
        )?
        .into_iter()
        .collect();
    let gone: std::collections::HashSet<i64> = batch
        .outcomes
        .iter()
        .map(|outcome| outcome.transaction_id)
        .filter(|id| !present.contains(id))
        .collect();
    if !gone.is_empty() {
        tracing::info!(
            deleted = gone.len(),
            "payments deleted while being scored: left out"
        );
    }
    Ok((
        Some(ScoredBatch {
            outcomes: batch
                .outcomes
                .iter()
                .filter(|outcome| !gone.contains(&outcome.transaction_id))
                .cloned()
                .collect(),
            alerts: batch
                .alerts
                .iter()
                .filter(|alert| !gone.contains(&alert.transaction_id))
                .cloned()
                .collect(),
            first_id: batch.first_id,
            mark: batch.mark,
            model_version: batch.model_version,
            scored_at: batch.scored_at,
            feature_days: batch.feature_days.clone(),
        }),
        now,
    ))
}

/// The part of a commit both engines write with the same statements.
fn link_and_mark(sql: &mut dyn Sql, batch: &ScoredBatch<'_>) -> anyhow::Result<()> {
    // Incidents are linked in the transaction that scores: an alert never exists without its
    // incident, and a restart neither links twice nor skips (core::incidents).
    incidents::link_backlog(sql, batch.first_id - 1)?;
    incidents::link(sql, &batch.alerts)?;
    incidents::set_linked_up_to(sql, batch.mark)?;
    store::write_monitor_mark(sql, batch.mark, batch.model_version, batch.scored_at)?;
    batch.feature_days.write(sql, batch.model_version)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a retry of the same batch fixes is retried; anything else stops the monitor.
    #[test]
    fn a_batch_another_writer_was_in_the_way_of_is_retried() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(is_busy(
            &anyhow::Error::from(aegis_core::Error::from(busy)).context("scoring a batch")
        ));
        let Some(url) = aegis_core::pg::test_server() else {
            return;
        };
        let mut holder = aegis_core::pg::connect(&url).unwrap();
        let mut waiter = aegis_core::pg::connect(&url).unwrap();
        // A key of this test's own (Aegis's keys are listed in core::pg).
        let key = 4_702_111_234_474_980_001_i64;
        holder
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .unwrap();
        waiter.batch_execute("SET lock_timeout = '10ms'").unwrap();
        let timed_out = waiter
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .unwrap_err();
        assert!(is_busy(
            &anyhow::Error::from(aegis_core::Error::from(timed_out)).context("scoring a batch")
        ));
        let broken = waiter.execute("SELECT 1 / 0", &[]).unwrap_err();
        assert!(!is_busy(&anyhow::Error::from(broken)));
    }
}
