//! Opening `transactions.db`: pragmas for concurrent use, migrations, and bulk-load helpers.
//!
//! Only core knows the SQL schema's evolution: every program opens the database through
//! [`open`], which applies the migrations in `migrations/` (tracked with `PRAGMA user_version`)
//! and refuses a database written by a newer build.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::{Error, Result};

/// Migrations in order; the schema version is the number applied.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_transactions",
        include_str!("../../../migrations/0001_transactions.sql"),
    ),
    (
        "0002_registry_and_monitor",
        include_str!("../../../migrations/0002_registry_and_monitor.sql"),
    ),
    (
        "0003_dashboard",
        include_str!("../../../migrations/0003_dashboard.sql"),
    ),
    (
        "0004_anomaly_index_filters",
        include_str!("../../../migrations/0004_anomaly_index_filters.sql"),
    ),
    (
        "0005_transaction_ref_index",
        include_str!("../../../migrations/0005_transaction_ref_index.sql"),
    ),
    (
        "0006_payments_api",
        include_str!("../../../migrations/0006_payments_api.sql"),
    ),
    (
        "0007_cases",
        include_str!("../../../migrations/0007_cases.sql"),
    ),
    (
        "0008_payment_notices",
        include_str!("../../../migrations/0008_payment_notices.sql"),
    ),
    (
        "0009_dashboard_reads",
        include_str!("../../../migrations/0009_dashboard_reads.sql"),
    ),
    (
        "0010_notices_and_anomalies",
        include_str!("../../../migrations/0010_notices_and_anomalies.sql"),
    ),
    (
        "0011_feature_days",
        include_str!("../../../migrations/0011_feature_days.sql"),
    ),
    (
        "0012_control_sample",
        include_str!("../../../migrations/0012_control_sample.sql"),
    ),
    (
        "0013_scores_by_model",
        include_str!("../../../migrations/0013_scores_by_model.sql"),
    ),
    (
        "0014_verdicts_in_commit_order",
        include_str!("../../../migrations/0014_verdicts_in_commit_order.sql"),
    ),
    (
        "0015_payment_ids_never_reused",
        include_str!("../../../migrations/0015_payment_ids_never_reused.sql"),
    ),
    (
        "0016_verdicts_via",
        include_str!("../../../migrations/0016_verdicts_via.sql"),
    ),
    (
        "0017_session_idle",
        include_str!("../../../migrations/0017_session_idle.sql"),
    ),
    (
        "0018_audit_in_commit_order",
        include_str!("../../../migrations/0018_audit_in_commit_order.sql"),
    ),
    (
        "0019_partition_deletes_counted",
        include_str!("../../../migrations/0019_partition_deletes_counted.sql"),
    ),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Secondary indexes on `transactions` that bulk loads drop and rebuild (building an index over
/// sorted data once is several times faster than maintaining it row by row). They must match
/// the latest migration's definitions; a test compares them.
const TRANSACTION_INDEXES: &[(&str, &str)] = &[
    ("idx_transactions_timestamp", "transactions (timestamp)"),
    (
        "idx_transactions_beneficiary",
        "transactions (beneficiary_id, timestamp)",
    ),
    (
        "idx_transactions_account",
        "transactions (account_id, timestamp)",
    ),
    (
        "idx_transactions_agent",
        "transactions (agent_id, timestamp)",
    ),
    (
        "idx_transactions_anomalies",
        "transactions (anomaly_score, scheme, timestamp) WHERE status = 'ANOMALY'",
    ),
    ("idx_transactions_ref", "transactions (transaction_ref)"),
];

/// How long a statement waits for another process's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for a lock another connection holds: polls every 250 µs for the first 10 ms, every
/// millisecond up to 110 ms, then every 10 ms, until [`BUSY_TIMEOUT`]. SQLite's own
/// `busy_timeout` backs off to 25–100 ms sleeps after a few tries, so with the monitor, the
/// simulator and the payments API committing hundreds of small transactions a second, a
/// writer that just missed the lock slept for tens of milliseconds after it was free: that was
/// most of a `?wait=` decision's p99.
fn wait_for_lock(attempt: i32) -> bool {
    if spent_before(attempt) >= BUSY_TIMEOUT {
        return false;
    }
    std::thread::sleep(pause_of(attempt));
    true
}

const FAST_POLLS: i32 = 40;
const MEDIUM_POLLS: i32 = FAST_POLLS + 100;

/// The sleep after failed attempt `attempt` (0-based).
fn pause_of(attempt: i32) -> Duration {
    if attempt < FAST_POLLS {
        Duration::from_micros(250)
    } else if attempt < MEDIUM_POLLS {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(10)
    }
}

/// The time slept before attempt `attempt`: the sum of the earlier pauses.
fn spent_before(attempt: i32) -> Duration {
    let count = |from: i32, to: i32| attempt.clamp(from, to) - from;
    Duration::from_micros(250) * count(0, FAST_POLLS) as u32
        + Duration::from_millis(1) * count(FAST_POLLS, MEDIUM_POLLS) as u32
        + Duration::from_millis(10) * count(MEDIUM_POLLS, i32::MAX) as u32
}

/// Opens (creating if needed) and migrates the database at `path`.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    migrate(&conn, path)?;
    // Refresh the planner's statistics when they are missing or stale (SQLite's advice for
    // long-lived connections), sampling at most ~1000 rows per index so that a first open of a
    // million rows takes milliseconds, not a second. Without statistics SQLite guessed that a
    // 30-day range on the timestamp index beats the partial anomaly index, and the dashboard's
    // "anomalies by score" page read every row of the month: 10 ms instead of 2.
    conn.execute_batch("PRAGMA analysis_limit=1000; PRAGMA optimize=0x10002;")?;
    Ok(conn)
}

/// Opens an existing database read-only (the dashboard's readers). It must already be migrated.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "database {} does not exist: run `cargo run -p generate` to create one",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_handler(Some(wait_for_lock))?;
    let version = schema_version(&conn)?;
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_handler(Some(wait_for_lock))?;
    // WAL lets the dashboard and the monitor read while the simulator writes.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The `user_version` of the database.
pub fn schema_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

fn migrate(conn: &Connection, path: &Path) -> Result<()> {
    let version = schema_version(conn)?;
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        // IMMEDIATE takes the write lock first, so two programs starting together cannot both
        // apply the same migration.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let applied = schema_version(conn)?;
        if applied > index as i64 {
            conn.execute_batch("COMMIT")?;
            continue;
        }
        let result = conn
            .execute_batch(sql)
            .and_then(|()| conn.pragma_update(None, "user_version", index as i64 + 1))
            .and_then(|()| move_schema_cookie(conn));
        match result {
            Ok(()) => conn.execute_batch("COMMIT")?,
            Err(error) => {
                conn.execute_batch("ROLLBACK")?;
                return Err(Error::Invalid(format!("migration {name} failed: {error}")));
            }
        }
        tracing::debug!(migration = name, "applied");
        if *name == "0015_payment_ids_never_reused" {
            warn_if_ids_may_be_reused(conn);
        }
    }
    Ok(())
}

/// Migration 0015 edits `transactions`' definition only where it reads as Aegis wrote it; a
/// table another tool rebuilt is left alone, and says so once, when it is left.
fn warn_if_ids_may_be_reused(conn: &Connection) {
    let definition: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'transactions'",
            [],
            |row| row.get(0),
        )
        .optional()
        .ok()
        .flatten();
    if definition.is_some_and(|sql| !sql.to_ascii_uppercase().contains("AUTOINCREMENT")) {
        tracing::warn!(
            "the transactions table was not written by Aegis's migrations, so its ids were not \
             made AUTOINCREMENT: after deleting the newest payments, new ones may reuse their ids \
             and the monitor would not score them; do not delete the newest payments"
        );
    }
}

/// Moves the schema cookie on, so that every connection, this one included, reads the schema
/// again at its next statement: a migration that edits a definition in place (0015, as
/// SQLite's documentation describes) changes the schema without moving it.
fn move_schema_cookie(conn: &Connection) -> rusqlite::Result<()> {
    let cookie: i64 = conn.pragma_query_value(None, "schema_version", |row| row.get(0))?;
    conn.pragma_update(None, "schema_version", cookie + 1)
}

/// The trigger that registers each inserted ref in `payment_refs` (migration 0006).
const REGISTER_TRIGGER: &str = "transactions_register_ref";

/// What a bulk load took off `transactions` and must put back
/// ([`create_transaction_indexes`]).
#[must_use = "pass it to create_transaction_indexes"]
pub struct BulkLoad {
    register_trigger: Option<String>,
}

/// Drops the secondary indexes of `transactions` and the ref-registering trigger; call inside
/// the bulk load's transaction, into an empty table. The load checks its own refs for repeats.
pub fn drop_transaction_indexes(conn: &Connection) -> Result<BulkLoad> {
    let register_trigger: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
            [REGISTER_TRIGGER],
            |row| row.get(0),
        )
        .optional()?;
    if register_trigger.is_some() {
        conn.execute_batch(&format!("DROP TRIGGER {REGISTER_TRIGGER}"))?;
    }
    for (name, _) in TRANSACTION_INDEXES {
        conn.execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(BulkLoad { register_trigger })
}

/// Recreates what [`drop_transaction_indexes`] dropped: the indexes, then the loaded refs'
/// registrations in one sorted pass, then the trigger.
pub fn create_transaction_indexes(conn: &Connection, bulk: BulkLoad) -> Result<()> {
    for (name, target) in TRANSACTION_INDEXES {
        conn.execute_batch(&format!("CREATE INDEX IF NOT EXISTS {name} ON {target}"))?;
    }
    if let Some(sql) = bulk.register_trigger {
        conn.execute_batch(
            "INSERT OR IGNORE INTO payment_refs (transaction_ref, transaction_id) \
             SELECT transaction_ref, min(transaction_id) FROM transactions \
             WHERE transaction_ref IS NOT NULL GROUP BY transaction_ref",
        )?;
        conn.execute_batch(&sql)?;
    }
    Ok(())
}

/// Number of rows in `transactions`.
pub fn transaction_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM transactions", [], |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_database_is_waited_for_up_to_the_busy_timeout() {
        let mut attempt = 0;
        let mut waited = Duration::ZERO;
        while spent_before(attempt) < BUSY_TIMEOUT {
            assert_eq!(spent_before(attempt), waited, "attempt {attempt}");
            waited += pause_of(attempt);
            attempt += 1;
        }
        assert!(
            waited >= BUSY_TIMEOUT - Duration::from_millis(10),
            "{waited:?}"
        );
        assert!(
            waited <= BUSY_TIMEOUT + Duration::from_millis(10),
            "{waited:?}"
        );
        assert!(attempt > 100, "short polls first: {attempt} attempts");
    }

    #[test]
    fn fresh_database_gets_every_migration() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        conn.execute_batch(
            "SELECT verdict_id FROM verdicts; SELECT high_water_mark FROM monitor_state;",
        )
        .unwrap();
    }

    #[test]
    fn old_database_is_migrated_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0].1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) \
                 VALUES ('B1', 'PM-KISAN', 200000, '2025-01-02 10:00:00')",
                [],
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(transaction_count(&conn).unwrap(), 1);
        conn.execute_batch("SELECT username FROM users").unwrap();
    }

    /// Ids of deleted payments are not handed out again, so a payment stored after an operator
    /// removed the newest rows lands above the monitor's mark and gets scored.
    #[test]
    fn deleted_payment_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        let insert = "INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) \
                      VALUES ('B1', 'PM-KISAN', 200000, '2025-01-02 10:00:00') RETURNING transaction_id";
        let add = || -> i64 { conn.query_row(insert, [], |row| row.get(0)).unwrap() };
        assert_eq!((add(), add(), add()), (1, 2, 3));
        conn.execute("DELETE FROM transactions WHERE transaction_id >= 2", [])
            .unwrap();
        assert_eq!(add(), 4);
    }

    /// A database of schema 14 whose newest payments an operator deleted after the monitor
    /// passed them, and to which an auditor added a column, an index, a trigger and a view:
    /// the upgrade keeps every row, id, index, trigger, view and reference, theirs included,
    /// and the next payment gets an id past the monitor's mark, also through a connection
    /// another program opened before the upgrade.
    #[test]
    fn upgrading_to_schema_15_keeps_everything_and_starts_ids_past_the_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            for (_, sql) in &MIGRATIONS[..14] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 14).unwrap();
            conn.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) \
                 INSERT INTO transactions (transaction_ref, beneficiary_id, scheme, amount_paise, timestamp, status) \
                 SELECT 'R' || i, 'B1', 'PM-KISAN', 200000, '2025-01-02 10:00:00', \
                        CASE WHEN i = 3 THEN 'ANOMALY' ELSE 'NORMAL' END FROM n; \
                 INSERT INTO users (username, password_hash, role, created_at) VALUES ('a', 'x', 'auditor', 0); \
                 INSERT INTO verdicts (transaction_id, verdict, user_id, created_at) VALUES (3, 'dismissed', 1, 0); \
                 INSERT INTO monitor_state (id, high_water_mark, updated_at) VALUES (1, 10, 0); \
                 DELETE FROM transactions WHERE transaction_id > 7; \
                 ALTER TABLE transactions ADD COLUMN office_note TEXT; \
                 CREATE INDEX audit_by_district ON transactions (district); \
                 CREATE TABLE audit_trail (transaction_id INTEGER); \
                 CREATE TRIGGER audit_inserts AFTER INSERT ON transactions \
                 BEGIN INSERT INTO audit_trail VALUES (NEW.transaction_id); END; \
                 CREATE VIEW by_scheme AS SELECT scheme, count(*) AS n FROM transactions GROUP BY scheme;",
            )
            .unwrap();
        }
        let earlier = Connection::open(&path).unwrap();
        earlier
            .query_row("SELECT count(*) FROM transactions", [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap();

        let conn = open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        let one = |query: &str| -> i64 { conn.query_row(query, [], |row| row.get(0)).unwrap() };
        let text = |query: &str| -> String { conn.query_row(query, [], |row| row.get(0)).unwrap() };
        assert_eq!(text("PRAGMA integrity_check"), "ok");
        assert_eq!(one("SELECT count(*) FROM transactions"), 7);
        assert_eq!(one("SELECT count(*) FROM anomalies"), 1);
        assert_eq!(one("SELECT n FROM by_scheme"), 7, "the auditor's view");
        assert_eq!(
            one(
                "SELECT count(*) FROM sqlite_master WHERE tbl_name = 'transactions' AND type = 'index' AND name LIKE 'idx_%'"
            ),
            TRANSACTION_INDEXES.len() as i64
        );
        assert_eq!(
            one(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('audit_by_district', 'audit_inserts')"
            ),
            2,
            "the auditor's index and trigger"
        );
        conn.execute(
            "INSERT INTO transactions (transaction_ref, beneficiary_id, scheme, amount_paise, timestamp, office_note) \
             VALUES ('R11', 'B1', 'PM-KISAN', 200000, '2025-01-03 10:00:00', 'checked')",
            [],
        )
        .unwrap();
        assert_eq!(
            one("SELECT transaction_id FROM payment_refs WHERE transaction_ref = 'R11'"),
            11,
            "past the mark, and registered by the trigger"
        );
        assert_eq!(one("SELECT max(transaction_id) FROM audit_trail"), 11);
        // The newest payment deleted again: the next id is still past it, whichever
        // connection inserts.
        conn.execute("DELETE FROM transactions WHERE transaction_id = 11", [])
            .unwrap();
        earlier
            .execute(
                "INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) \
                 VALUES ('B2', 'PM-KISAN', 200000, '2025-01-03 11:00:00')",
                [],
            )
            .unwrap();
        assert_eq!(
            earlier.last_insert_rowid(),
            12,
            "a connection another program opened before the upgrade"
        );
        let refused = conn
            .execute("DELETE FROM transactions WHERE transaction_id = 3", [])
            .unwrap_err()
            .to_string();
        assert!(refused.contains("FOREIGN KEY"), "{refused}");
        assert_eq!(one("SELECT deleted FROM payment_deletions"), 1);
    }

    /// A deleted payment leaves the case queue: its incident is counted again from the alerts
    /// it keeps, or goes with its keys when none is left.
    #[test]
    fn a_deleted_payment_leaves_its_incident_counted_again() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        conn.execute_batch(
            "INSERT INTO transactions (transaction_id, beneficiary_id, scheme, amount_paise, timestamp, status, anomaly_score) VALUES \
                 (1, 'B1', 'PM-KISAN', 100, '2025-01-05 10:00:00', 'ANOMALY', 0.9), \
                 (2, 'B2', 'PM-KISAN', 200, '2025-01-06 10:00:00', 'ANOMALY', 0.7), \
                 (3, 'B3', 'PM-KISAN', 300, '2025-01-07 10:00:00', 'ANOMALY', 0.8); \
             INSERT INTO incidents (incident_id, first_time, last_time, alerts, max_score, total_paise, lead_id, beneficiaries) \
             VALUES (1, 0, 0, 2, 0.9, 300, 1, 2), (2, 0, 0, 1, 0.8, 300, 3, 1); \
             INSERT INTO incident_alerts (transaction_id, incident_id, timestamp, amount_paise, beneficiary_id) VALUES \
                 (1, 1, '2025-01-05 10:00:00', 100, 'B1'), (2, 1, '2025-01-06 10:00:00', 200, 'B2'), \
                 (3, 2, '2025-01-07 10:00:00', 300, 'B3'); \
             INSERT INTO incident_keys (kind, value, incident_id, last_time) VALUES \
                 ('beneficiary', 'B1', 1, 0), ('beneficiary', 'B3', 2, 0); \
             DELETE FROM transactions WHERE transaction_id IN (1, 3);",
        )
        .unwrap();
        let incidents: Vec<(i64, i64, i64, f64, i64, i64, i64)> = conn
            .prepare(
                "SELECT incident_id, alerts, unreviewed, max_score, total_paise, lead_id, first_time \
                 FROM incidents ORDER BY 1",
            )
            .unwrap()
            .query_map([], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        // 2025-01-06 10:00 IST is 04:30 UTC.
        assert_eq!(incidents, [(1, 1, 1, 0.7, 200, 2, 1736137800)]);
        let one = |query: &str| -> i64 { conn.query_row(query, [], |row| row.get(0)).unwrap() };
        assert_eq!(one("SELECT count(*) FROM incident_alerts"), 1);
        assert_eq!(
            one("SELECT count(*) FROM incident_keys WHERE incident_id = 2"),
            0
        );
        assert_eq!(one("SELECT beneficiaries FROM incidents"), 1);
    }

    #[test]
    fn newer_database_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 5)
                .unwrap();
        }
        let message = open(&path).unwrap_err().to_string();
        assert!(message.contains("newer than this build"), "{message}");
        assert!(message.contains("upgrade Aegis"), "{message}");
    }

    #[test]
    fn opening_gives_the_planner_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        {
            let conn = open(&path).unwrap();
            conn.execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) \
                 INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp, status, anomaly_score) \
                 SELECT 'B' || i, 'PM-KISAN', 200000, '2025-03-03 10:00:00', \
                        CASE WHEN i % 50 = 0 THEN 'ANOMALY' ELSE 'NORMAL' END, 0.1 FROM n",
            )
            .unwrap();
        }
        let conn = open(&path).unwrap();
        let analysed: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_stat1 WHERE idx = 'idx_transactions_anomalies'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            analysed, 1,
            "the next open analyses the table it finds unanalysed"
        );
    }

    #[test]
    fn bulk_load_indexes_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        let count = |conn: &Connection| -> i64 {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'transactions' AND name LIKE 'idx_%'",
                [],
                |row| row.get(0),
            )
            .unwrap()
        };
        // Column lists, as SQLite reports them, of each index the migrations created.
        let definitions = |conn: &Connection| -> Vec<(String, String)> {
            let mut statement = conn
                .prepare(
                    "SELECT m.name, group_concat(i.name, ',') FROM sqlite_master AS m, \
                     pragma_index_info(m.name) AS i \
                     WHERE m.type = 'index' AND m.tbl_name = 'transactions' AND m.name LIKE 'idx_%' \
                     GROUP BY m.name ORDER BY m.name",
                )
                .unwrap();
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let before = count(&conn);
        let migrated = definitions(&conn);
        let trigger = |conn: &Connection| -> Option<String> {
            conn.query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [REGISTER_TRIGGER],
                |row| row.get(0),
            )
            .optional()
            .unwrap()
        };
        let migrated_trigger = trigger(&conn).expect("migration 0006 made the trigger");
        let bulk = drop_transaction_indexes(&conn).unwrap();
        assert_eq!(count(&conn), 0);
        assert_eq!(trigger(&conn), None);
        conn.execute_batch(
            "INSERT INTO transactions (transaction_ref, beneficiary_id, scheme) VALUES ('R1', 'B1', 'S'), ('R2', 'B1', 'S')",
        )
        .unwrap();
        create_transaction_indexes(&conn, bulk).unwrap();
        assert_eq!(count(&conn), before);
        assert_eq!(trigger(&conn), Some(migrated_trigger));
        let registered: i64 = conn
            .query_row("SELECT count(*) FROM payment_refs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(registered, 2, "the bulk-loaded refs are registered");
        assert!(
            conn.execute(
                "INSERT INTO transactions (transaction_ref, beneficiary_id, scheme) VALUES ('R1', 'B2', 'S')",
                []
            )
            .is_err(),
            "and protected again"
        );
        assert_eq!(before, TRANSACTION_INDEXES.len() as i64);
        assert_eq!(
            definitions(&conn),
            migrated,
            "a bulk load must rebuild the indexes the migrations define"
        );
        let partial: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'idx_transactions_anomalies'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(partial.contains("WHERE status = 'ANOMALY'"), "{partial}");
    }
}
