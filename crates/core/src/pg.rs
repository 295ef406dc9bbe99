//! PostgreSQL, the second engine: connecting with errors a user can act on, the versioned
//! schema, monthly partitions, and the bulk load by binary COPY.
//!
//! Everything PostgreSQL does differently from SQLite is here (and in `migrations/postgres/`);
//! [`crate::engine`] chooses between the two. The schema has the same version numbers as
//! SQLite's: a new database is created at version 7 by one baseline script, and each later
//! migration comes as a pair, one file per engine ([`MIGRATIONS`] must end at
//! [`crate::db::SCHEMA_VERSION`]; a test checks it).

use std::time::Duration;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::{Client, GenericClient, NoTls};

use crate::domain::NewTransaction;
use crate::error::{Error, Result};
use crate::time::{EventTime, format_ist};

/// Migrations in order, each with the schema version it brings the database to.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        7,
        "postgres/0007_baseline",
        include_str!("../../../migrations/postgres/0007_baseline.sql"),
    ),
    (
        8,
        "postgres/0008_payment_notices",
        include_str!("../../../migrations/postgres/0008_payment_notices.sql"),
    ),
    (
        9,
        "postgres/0009_dashboard_reads",
        include_str!("../../../migrations/postgres/0009_dashboard_reads.sql"),
    ),
    (
        10,
        "postgres/0010_notices_and_anomalies",
        include_str!("../../../migrations/postgres/0010_notices_and_anomalies.sql"),
    ),
    (
        11,
        "postgres/0011_feature_days",
        include_str!("../../../migrations/postgres/0011_feature_days.sql"),
    ),
    (
        12,
        "postgres/0012_control_sample",
        include_str!("../../../migrations/postgres/0012_control_sample.sql"),
    ),
    (
        13,
        "postgres/0013_scores_by_model",
        include_str!("../../../migrations/postgres/0013_scores_by_model.sql"),
    ),
    (
        14,
        "postgres/0014_verdicts_in_commit_order",
        include_str!("../../../migrations/postgres/0014_verdicts_in_commit_order.sql"),
    ),
    (
        15,
        "postgres/0015_payment_ids_never_reused",
        include_str!("../../../migrations/postgres/0015_payment_ids_never_reused.sql"),
    ),
    (
        16,
        "postgres/0016_verdicts_via",
        include_str!("../../../migrations/postgres/0016_verdicts_via.sql"),
    ),
    (
        17,
        "postgres/0017_session_idle",
        include_str!("../../../migrations/postgres/0017_session_idle.sql"),
    ),
    (
        18,
        "postgres/0018_audit_in_commit_order",
        include_str!("../../../migrations/postgres/0018_audit_in_commit_order.sql"),
    ),
    (
        19,
        "postgres/0019_partition_deletes_counted",
        include_str!("../../../migrations/postgres/0019_partition_deletes_counted.sql"),
    ),
];

/// The channel [`MIGRATIONS`]' trigger notifies when payments are committed.
pub const PAYMENTS_CHANNEL: &str = "aegis_payments";

/// The channel [`MIGRATIONS`]' triggers notify when the monitor's mark, a verdict, an incident,
/// a user or a session changes; the payload says which ([`CHANGED_DATA`] or
/// [`CHANGED_ACCOUNTS`]).
pub const CHANGES_CHANNEL: &str = "aegis_changes";

/// The payload on [`CHANGES_CHANNEL`] when the mark moved, a verdict was written or an
/// incident (or one of its alerts) changed.
pub const CHANGED_DATA: &str = "data";

/// The payload on [`CHANGES_CHANNEL`] when a user or a session changed.
pub const CHANGED_ACCOUNTS: &str = "accounts";

/// The advisory lock every insert into `transaction_events` takes first (a statement trigger
/// in the baseline), so that transaction ids are committed in id order: a reader following
/// `transaction_id > mark` cannot skip a row that commits late. Writers that must decide
/// something before inserting (an appending import checking which refs are stored) take it
/// themselves, earlier in their transaction.
pub const APPEND_LOCK: i64 = 4_702_111_234_474_983_745;

/// Held while migrating, so two programs starting together apply each migration once.
const MIGRATION_LOCK: i64 = 4_702_111_234_474_983_746;

/// Held by the one monitor scoring the database, on its connection, for as long as it runs.
/// (Every advisory lock key Aegis takes is declared here, one after the other, so two can never
/// be the same by accident.)
pub const MONITOR_LOCK: i64 = 4_702_111_234_474_983_748;

/// The advisory lock every insert into `verdicts` takes first (a statement trigger, migration
/// 0014), so that verdict ids are committed in id order: a monitor reading verdicts after the
/// last id it read cannot skip one that commits late.
pub const VERDICT_LOCK: i64 = 4_702_111_234_474_983_749;

/// The advisory lock the monitor takes before it writes a batch's scores, and a delete of
/// payments before it deletes (migration 0015's trigger), so that a payment deleted while the
/// monitor scores it keeps no score and no alert: whichever comes second sees the other's
/// commit.
pub const SCORES_LOCK: i64 = 4_702_111_234_474_983_750;

/// The advisory lock every insert into `audit_log` takes first (a statement trigger, migration
/// 0018), so that audit ids are committed in id order: the audit log's pages, anchored at the
/// newest id, never show an entry twice. Writers write their entry last, after every other
/// lock they take, advisory or row (an API key's use is counted before its verdict), so it is
/// always the last lock taken and closes no cycle.
pub const AUDIT_LOCK: i64 = 4_702_111_234_474_983_751;

/// Takes [`APPEND_LOCK`] until the caller's transaction ends, on PostgreSQL (an SQLite write
/// transaction already holds the whole database): a writer that checks which refs are stored
/// before it inserts payments (the payments API) sees no other writer's payment come in
/// between.
pub fn lock_appends(sql: &mut dyn crate::sql::Sql) -> Result<()> {
    if sql.engine() == crate::sql::Engine::Postgres {
        sql.execute("SELECT pg_advisory_xact_lock(?1)", &[APPEND_LOCK.into()])?;
    }
    Ok(())
}

/// Takes [`VERDICT_LOCK`] until the caller's transaction ends, on PostgreSQL (an SQLite write
/// transaction already holds the whole database): a writer that decides from the verdicts
/// stored (the revision rule, the simulated auditors' "not reviewed yet", a retried API call)
/// then writes with no other process's verdict committed in between.
pub fn lock_verdicts(sql: &mut dyn crate::sql::Sql) -> Result<()> {
    if sql.engine() == crate::sql::Engine::Postgres {
        sql.execute("SELECT pg_advisory_xact_lock(?1)", &[VERDICT_LOCK.into()])?;
    }
    Ok(())
}

/// Whether `--db` names a PostgreSQL server rather than an SQLite file.
pub fn is_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

/// `url` with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _password)) => format!("{scheme}://{name}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Settings every Aegis session starts with, sent with the connection (no round trip); a
/// URL's own `options` come after them and win.
///
/// `random_page_cost` 1.1 instead of PostgreSQL's default 4 (which prices a disk seek): the
/// payments and scores Aegis reads are in memory or on SSD. With 4, the overview's figures for
/// a busy day (14,000 payments) joined them to their scores by reading all million scores
/// (157 ms) rather than looking up each (17 ms).
pub const SESSION_OPTIONS: &str = "-c random_page_cost=1.1";

/// Connects to the server at `url`. Failures are one line naming the problem and the fix.
///
/// Unless the URL sets its own, a connection attempt gives up after 10 s, and the connection
/// probes a silent peer (TCP keepalives after 30 s idle, every 10 s, 3 tries) and gives up on
/// data unacknowledged for 60 s: a server behind a
/// dropped network is then an error within about a minute, which a monitor answers by
/// connecting again, instead of a call that waits for the system's default of hours.
pub fn connect(url: &str) -> Result<Client> {
    let mut config: postgres::Config = url.parse().map_err(|error| connect_error(url, &error))?;
    let options = match config.get_options() {
        Some(theirs) => format!("{SESSION_OPTIONS} {theirs}"),
        None => SESSION_OPTIONS.to_string(),
    };
    config.options(&options);
    if !url.contains("keepalives") {
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .keepalives_interval(Duration::from_secs(10))
            .keepalives_retries(3);
    }
    if !url.contains("tcp_user_timeout") {
        config.tcp_user_timeout(Duration::from_secs(60));
    }
    if !url.contains("connect_timeout") {
        config.connect_timeout(Duration::from_secs(10));
    }
    config
        .connect(NoTls)
        .map_err(|error| connect_error(url, &error))
}

/// Whether `error` says the connection is gone or the server cannot take one now: closed,
/// broken on the wire, a connection exception (SQLSTATE class 08), or the server shutting
/// down or starting up.
pub fn connection_lost(error: &postgres::Error) -> bool {
    let refused = error.code().is_some_and(|code| {
        code.code().starts_with("08")
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code)
    });
    let broken = std::error::Error::source(error)
        .is_some_and(|cause| cause.downcast_ref::<std::io::Error>().is_some());
    error.is_closed() || refused || broken
}

/// Connects and brings the schema up to date; refuses a database written by a newer build.
pub fn open(url: &str) -> Result<Client> {
    let mut client = connect(url)?;
    migrate(&mut client, url)?;
    Ok(client)
}

fn connect_error(url: &str, error: &postgres::Error) -> Error {
    let shown = redact(url);
    let config: Option<postgres::Config> = url.parse().ok();
    let user = config
        .as_ref()
        .and_then(|c| c.get_user())
        .unwrap_or("(none)")
        .to_string();
    let database = config
        .as_ref()
        .and_then(|c| c.get_dbname())
        .unwrap_or(&user)
        .to_string();
    let message = match error.code() {
        Some(code) if *code == SqlState::INVALID_PASSWORD => format!(
            "PostgreSQL refused the password for user {user:?} at {shown}: correct it in the URL (postgres://user:password@host/db)"
        ),
        Some(code) if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => format!(
            "PostgreSQL does not let user {user:?} log in at {shown}: create the role (`createuser {user}`) or allow it in pg_hba.conf"
        ),
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => format!(
            "database {database:?} does not exist on the server at {shown}: create it with `createdb {database}` (or ask its administrator), then run again"
        ),
        Some(code) if *code == SqlState::INSUFFICIENT_PRIVILEGE => format!(
            "user {user:?} may not connect to database {database:?} at {shown}: grant it with `GRANT CONNECT ON DATABASE {database} TO {user}`"
        ),
        Some(code) if *code == SqlState::TOO_MANY_CONNECTIONS => {
            return Error::Unreachable(format!(
                "the PostgreSQL server at {shown} has no free connections: raise max_connections or stop idle clients"
            ));
        }
        Some(code) if *code == SqlState::CANNOT_CONNECT_NOW => {
            return Error::Unreachable(format!(
                "the PostgreSQL server at {shown} is starting up or shutting down: wait for it, then run again"
            ));
        }
        _ if error.to_string() == "invalid connection string" => format!(
            "{shown} is not a valid PostgreSQL URL: write it as postgres://user:password@host:port/database"
        ),
        _ => {
            let cause = std::error::Error::source(error)
                .map(ToString::to_string)
                .unwrap_or_else(|| describe(error));
            if cause.contains("password missing") {
                format!(
                    "the server at {shown} asks for a password: put it in the URL (postgres://user:password@host/db)"
                )
            } else {
                return Error::Unreachable(format!(
                    "cannot reach PostgreSQL at {shown} ({cause}): is the server running and listening there? Check host and port"
                ));
            }
        }
    };
    Error::Invalid(message)
}

/// The server's own words for a failed statement (the driver's `Display` says only "db
/// error"), with its detail and hint.
pub fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_string();
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
                text.push_str(
                    ": the database user needs to own the Aegis tables (or be granted rights on them)",
                );
            }
            text
        }
        None => match std::error::Error::source(error) {
            Some(cause) => format!("{error}: {cause}"),
            None => error.to_string(),
        },
    }
}

/// The schema version of the database (0: not created yet).
pub fn schema_version(client: &mut impl GenericClient) -> Result<i64> {
    let exists: bool = client
        .query_one("SELECT to_regclass('aegis_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client.query_opt("SELECT version FROM aegis_schema", &[])?;
    Ok(row.map_or(0, |row| row.get(0)))
}

fn migrate(client: &mut Client, url: &str) -> Result<()> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let version = schema_version(&mut transaction)?;
    if version > crate::db::SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: redact(url).into(),
            found: version,
            supported: crate::db::SCHEMA_VERSION,
        });
    }
    if version == 0 {
        transaction.batch_execute("CREATE TABLE aegis_schema (version bigint NOT NULL)")?;
        transaction.execute("INSERT INTO aegis_schema (version) VALUES (0)", &[])?;
    }
    for (target, name, sql) in MIGRATIONS {
        if *target <= version {
            continue;
        }
        transaction.batch_execute(sql).map_err(|error| {
            Error::Invalid(format!("migration {name} failed: {}", describe(&error)))
        })?;
        transaction.execute("UPDATE aegis_schema SET version = $1", &[target])?;
        tracing::debug!(migration = name, "applied");
    }
    // This month and the next two exist from the start, so a live feed never waits on DDL
    // at a month's turn; older and later months are made by the writers that need them.
    let now = crate::time::now_millis() / 1000;
    ensure_months(
        &mut crate::sql::Postgres::in_transaction(&mut transaction, &mut Default::default()),
        now,
        now + 62 * crate::time::DAY,
    )?;
    transaction.commit()?;
    Ok(())
}

/// The first day of the event month of `time`, as `(year, month)`.
fn month_of(time: EventTime) -> (i64, u32) {
    let text = format_ist(time);
    let year = text[0..4].parse().unwrap_or(1970);
    let month = text[5..7].parse().unwrap_or(1);
    (year, month)
}

fn next_month((year, month): (i64, u32)) -> (i64, u32) {
    if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    }
}

/// The name of the partition that holds event month `(year, month)`.
pub fn partition_name((year, month): (i64, u32)) -> String {
    format!("transaction_events_{year:04}_{month:02}")
}

/// Held (until commit) by whoever is adding a month, so two writers do not add the same one.
const PARTITION_LOCK: i64 = 4_702_111_234_474_983_747;

/// Creates the monthly partitions of `transaction_events` for every event month from `first`
/// to `last` (inclusive) that does not have one yet. Writers call it before inserting.
///
/// A month is created as a table of its own and then attached: `CREATE TABLE … PARTITION OF`
/// would lock the whole parent against readers until the writer commits (a dashboard page
/// would wait for an import), while `ATTACH PARTITION` takes a lock that readers and other
/// writers do not conflict with.
pub fn ensure_months(
    sql: &mut dyn crate::sql::Sql,
    first: EventTime,
    last: EventTime,
) -> Result<()> {
    // The catalog itself, read with this statement's snapshot: `to_regclass` answers from the
    // session's catalog cache, which taking an advisory lock does not refresh, so a writer
    // that waited for another to make the month still saw none and failed to make it again
    // ("already exists").
    const EXISTS: &str = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                          WHERE c.relname = CAST(?1 AS TEXT) AND n.nspname = current_schema()";
    for month in months_between(first, last) {
        let name = partition_name(month);
        if sql.query_int(EXISTS, &[name.as_str().into()])? == Some(0) {
            // The append lock first, as every writer of payments takes it before anything
            // else (the API and the import loader explicitly, a COPY by its trigger): a feed
            // that took the partition lock first and then waited for the append lock while an
            // import held it and waited for the partition lock was a deadlock.
            sql.execute("SELECT pg_advisory_xact_lock(?1)", &[APPEND_LOCK.into()])?;
            sql.execute("SELECT pg_advisory_xact_lock(?1)", &[PARTITION_LOCK.into()])?;
            if sql.query_int(EXISTS, &[name.as_str().into()])? == Some(0) {
                for statement in add_month_sql(month).split("; ") {
                    sql.execute(statement, &[])?;
                }
            }
        }
    }
    Ok(())
}

/// The event months from `first`'s to `last`'s, inclusive.
fn months_between(first: EventTime, last: EventTime) -> Vec<(i64, u32)> {
    let mut month = month_of(first.min(last));
    let end = month_of(first.max(last));
    let mut months = vec![month];
    while month != end {
        month = next_month(month);
        months.push(month);
    }
    months
}

/// Creates the partition of `month` as a table of its own, with the statement triggers that
/// count and announce a delete sent to it alone (migration 0019; row triggers come with the
/// attachment), then attaches it (statements separated by "; ").
fn add_month_sql(month: (i64, u32)) -> String {
    let name = partition_name(month);
    let (next_year, next) = next_month(month);
    format!(
        "CREATE TABLE {name} (LIKE transaction_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
         CREATE TRIGGER month_count_deletions AFTER DELETE OR TRUNCATE ON {name} \
         FOR EACH STATEMENT EXECUTE FUNCTION aegis_count_deletions(); \
         CREATE TRIGGER month_deleted_notify AFTER DELETE OR TRUNCATE ON {name} \
         FOR EACH STATEMENT EXECUTE FUNCTION aegis_notify_change('data'); \
         ALTER TABLE transaction_events ATTACH PARTITION {name} \
         FOR VALUES FROM ('{:04}-{:02}-01 00:00:00') TO ('{next_year:04}-{next:02}-01 00:00:00')",
        month.0, month.1
    )
}

/// Secondary indexes of `transaction_events` that a bulk load into an empty table drops and
/// builds once at the end. They must match the baseline's definitions; a test compares them.
const TRANSACTION_INDEXES: &[(&str, &str)] = &[
    (
        "idx_transactions_timestamp",
        "transaction_events (timestamp)",
    ),
    (
        "idx_transactions_beneficiary",
        "transaction_events (beneficiary_id, timestamp)",
    ),
    (
        "idx_transactions_account",
        "transaction_events (account_id, timestamp)",
    ),
    (
        "idx_transactions_agent",
        "transaction_events (agent_id, timestamp)",
    ),
    (
        "idx_transactions_scheme",
        "transaction_events (scheme, timestamp)",
    ),
    (
        "idx_transactions_ref",
        "transaction_events (transaction_ref)",
    ),
];

/// The row trigger that registers each inserted ref in `payment_refs`.
const REGISTER_TRIGGER: &str = "CREATE TRIGGER transactions_register_ref AFTER INSERT ON transaction_events \
     FOR EACH ROW WHEN (NEW.transaction_ref IS NOT NULL) EXECUTE FUNCTION aegis_register_ref()";

/// Before a bulk load into an empty `transaction_events`, inside its transaction: drops the
/// secondary indexes and the per-row ref trigger (PostgreSQL's DDL is transactional, so a
/// failed load puts them back by rolling back).
pub fn begin_bulk_load(client: &mut impl GenericClient) -> Result<()> {
    client
        .batch_execute("DROP TRIGGER IF EXISTS transactions_register_ref ON transaction_events")?;
    for (name, _) in TRANSACTION_INDEXES {
        client.batch_execute(&format!("DROP INDEX IF EXISTS {name}"))?;
    }
    Ok(())
}

/// After a bulk load: builds the indexes, registers the loaded refs in one pass, restores the
/// trigger, and refreshes the planner's statistics.
pub fn finish_bulk_load(client: &mut impl GenericClient) -> Result<()> {
    // The server's default (64 MB) sorts a million keys in several passes on disk; a few
    // hundred MB for this transaction only sorts them in memory.
    client.batch_execute("SET LOCAL maintenance_work_mem = '512MB'")?;
    for (name, target) in TRANSACTION_INDEXES {
        client.batch_execute(&format!("CREATE INDEX IF NOT EXISTS {name} ON {target}"))?;
    }
    // The load went into an empty table and checked its own refs for repeats, so each ref is
    // registered by a plain insert, and the key is built once over all of them (8 s → 2 s at
    // a million rows, against grouping into the live key). A repeat would still fail here.
    client.batch_execute(
        "ALTER TABLE payment_refs DROP CONSTRAINT payment_refs_pkey; \
         INSERT INTO payment_refs (transaction_ref, transaction_id) \
         SELECT transaction_ref, transaction_id FROM transaction_events WHERE transaction_ref IS NOT NULL; \
         ALTER TABLE payment_refs ADD CONSTRAINT payment_refs_pkey PRIMARY KEY (transaction_ref)",
    )?;
    client.batch_execute(REGISTER_TRIGGER)?;
    client.batch_execute("ANALYZE transaction_events")?;
    Ok(())
}

/// Maps a row selected with [`crate::store::STORED_COLUMNS`]. PostgreSQL's columns hold only
/// their declared types, so what SQLite's reader checks per value reduces to NULLs and ranges;
/// a payment that cannot be scored is an `Err` naming why, as on SQLite.
pub fn read_stored(row: &postgres::Row) -> Result<crate::store::StoredTransaction> {
    let transaction_id: i64 = row.try_get(0)?;
    let is_anomaly: Option<i16> = row.try_get(9)?;
    let fraud_type: Option<String> = row.try_get(10)?;
    let payment = (|| -> std::result::Result<crate::domain::Payment, String> {
        let text = |index: usize| {
            row.try_get::<_, Option<String>>(index)
                .map_err(|e| e.to_string())
        };
        let beneficiary_id = text(1)?.ok_or("beneficiary_id is missing")?;
        let scheme = text(4)?.ok_or("scheme is missing")?;
        let amount_paise = match row
            .try_get::<_, Option<i64>>(5)
            .map_err(|e| e.to_string())?
        {
            Some(paise) => crate::domain::stored_amount(paise)?,
            None => return Err("amount is missing (NULL amount_paise)".to_string()),
        };
        let stamp = text(6)?.ok_or("timestamp is missing")?;
        let time = crate::time::parse_timestamp(&stamp)
            .map_err(|_| format!("timestamp {stamp:?} is not 'YYYY-MM-DD HH:MM:SS'"))?;
        let degrees = |index: usize| {
            row.try_get::<_, Option<f64>>(index)
                .map_err(|e| e.to_string())
        };
        let location = degrees(7)?
            .zip(degrees(8)?)
            .filter(|(lat, lon)| (-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon));
        Ok(crate::domain::Payment {
            beneficiary_id,
            account_id: text(2)?,
            agent_id: text(3)?,
            scheme,
            amount_paise,
            time,
            location,
        })
    })();
    Ok(crate::store::StoredTransaction {
        transaction_id,
        payment,
        is_anomaly: is_anomaly.map(|flag| flag != 0),
        fraud_type,
        stored_timestamp: row.try_get(6)?,
    })
}

/// Column types of the binary COPY, in [`COPY_TRANSACTIONS`]'s order.
const COPY_TYPES: &[Type] = &[
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::TEXT,
    Type::INT2,
    Type::TEXT,
    Type::INT8,
];

const COPY_TRANSACTIONS: &str = "COPY transaction_events (transaction_ref, beneficiary_id, account_id, agent_id, scheme, \
     amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, inserted_at) \
     FROM STDIN (FORMAT binary)";

/// Appends `rows` with one binary COPY, creating the months they fall in first; the caller
/// owns the transaction. Ids are drawn in the order of `rows`.
pub fn copy_transactions(
    transaction: &mut postgres::Transaction<'_>,
    rows: &[NewTransaction],
) -> Result<()> {
    let Some(first) = rows.iter().map(|row| row.time).min() else {
        return Ok(());
    };
    let last = rows.iter().map(|row| row.time).max().unwrap_or(first);
    ensure_months(
        &mut crate::sql::Postgres::in_transaction(transaction, &mut Default::default()),
        first,
        last,
    )?;
    let inserted_at = crate::time::now_millis();
    let sink = transaction.copy_in(COPY_TRANSACTIONS)?;
    let mut writer = BinaryCopyInWriter::new(sink, COPY_TYPES);
    for row in rows {
        let timestamp = format_ist(row.time);
        let is_anomaly = row.is_anomaly.map(i16::from);
        writer.write(&[
            &row.transaction_ref,
            &row.beneficiary_id,
            &row.account_id,
            &row.agent_id,
            &row.scheme,
            &row.amount_paise,
            &timestamp,
            &row.latitude,
            &row.longitude,
            &row.district,
            &is_anomaly,
            &row.fraud_type,
            &inserted_at,
        ])?;
    }
    writer.finish()?;
    Ok(())
}

/// The server the tests use: `AEGIS_TEST_PG`, the URL of a role that may create databases
/// (`.ci/postgres` starts one and prints it). Tests that need PostgreSQL fail without it, as
/// they must in CI; a developer without a server can skip them by setting `AEGIS_SKIP_PG=1`,
/// in which case this is `None`.
pub fn test_server() -> Option<String> {
    match std::env::var("AEGIS_TEST_PG") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("AEGIS_SKIP_PG").is_ok_and(|v| v == "1") => None,
        _ => panic!(
            "AEGIS_TEST_PG is not set: start a throwaway server with `export AEGIS_TEST_PG=$(bash .ci/postgres)`, \
             or set AEGIS_SKIP_PG=1 to skip the PostgreSQL half of the tests"
        ),
    }
}

/// The engines a test body runs on: SQLite, and PostgreSQL when [`test_server`] has one.
pub fn test_engines() -> Vec<crate::sql::Engine> {
    let mut engines = vec![crate::sql::Engine::Sqlite];
    if test_server().is_some() {
        engines.push(crate::sql::Engine::Postgres);
    }
    engines
}

/// A throwaway database on a server, for tests and benchmarks: created empty from the URL of
/// a role that may create databases, dropped (with whatever is connected to it) on drop.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates database `aegis_<prefix>_<pid>_<n>` on the server of `admin_url`.
    pub fn create(admin_url: &str, prefix: &str) -> Result<ScratchDatabase> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("aegis_{prefix}_{}_{n}", std::process::id());
        let url = recreate_database(admin_url, &name)?;
        Ok(ScratchDatabase {
            admin_url: admin_url.to_string(),
            name,
            url,
        })
    }

    /// A new scratch database holding a copy of this one (nothing may be connected to it).
    pub fn copy(&self, prefix: &str) -> Result<ScratchDatabase> {
        let copy = ScratchDatabase::create(&self.admin_url, prefix)?;
        let mut admin = connect(&self.admin_url)?;
        admin.batch_execute(&format!("DROP DATABASE {}", copy.name))?;
        admin.batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {}",
            copy.name, self.name
        ))?;
        Ok(copy)
    }

    /// The URL of the scratch database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = connect(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Drops database `name` (whoever is connected to it) and creates it empty, on the server of
/// `admin_url` (a role that may create databases); returns its URL.
pub fn recreate_database(admin_url: &str, name: &str) -> Result<String> {
    let mut admin = connect(admin_url)?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(replace_database(admin_url, name))
}

/// `url` pointing at database `name` on the same server, as the same user.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |at| scheme_end + at);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://aegis:s3cret@db.example:5432/audit"),
            "postgres://aegis:***@db.example:5432/audit"
        );
        assert_eq!(
            redact("postgres://db.example/audit"),
            "postgres://db.example/audit"
        );
        assert_eq!(
            redact("postgres://aegis@db/audit"),
            "postgres://aegis@db/audit"
        );
    }

    #[test]
    fn a_scratch_url_names_the_new_database_on_the_same_server() {
        assert_eq!(
            replace_database("postgres://u:p@h:5/postgres", "x"),
            "postgres://u:p@h:5/x"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
        assert_eq!(
            replace_database("postgresql://u@h/db?sslmode=disable", "x"),
            "postgresql://u@h/x?sslmode=disable"
        );
    }

    #[test]
    fn the_migrations_end_at_the_schema_version_sqlite_has() {
        assert_eq!(MIGRATIONS.last().unwrap().0, crate::db::SCHEMA_VERSION);
    }

    #[test]
    fn the_bulk_load_rebuilds_exactly_the_migrations_indexes_and_trigger() {
        let baseline = MIGRATIONS[0].2;
        let all: String = MIGRATIONS.iter().map(|(_, _, sql)| *sql).collect();
        for (name, target) in TRANSACTION_INDEXES {
            assert!(
                all.contains(&format!("CREATE INDEX {name} ON {target};")),
                "{name}"
            );
        }
        assert_eq!(
            all.lines()
                .filter(|line| line.starts_with("CREATE INDEX")
                    && line.contains(" ON transaction_events ("))
                .count(),
            TRANSACTION_INDEXES.len(),
            "every index of the payments is rebuilt after a bulk load"
        );
        let trigger = baseline
            .split("CREATE TRIGGER transactions_register_ref")
            .nth(1)
            .unwrap();
        let trigger: String = trigger[..trigger.find(';').unwrap()]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(
            format!("CREATE TRIGGER transactions_register_ref {trigger}"),
            REGISTER_TRIGGER
        );
        assert!(baseline.contains(&format!("pg_advisory_xact_lock({APPEND_LOCK})")));
    }

    /// The keys the migrations' triggers take are the ones the code declares and takes.
    #[test]
    fn the_migrations_lock_the_declared_keys() {
        let migration = |name: &str| {
            MIGRATIONS
                .iter()
                .find(|(_, migration, _)| migration.ends_with(name))
                .map(|(_, _, sql)| *sql)
                .unwrap()
        };
        for (name, key) in [
            ("0014_verdicts_in_commit_order", VERDICT_LOCK),
            ("0015_payment_ids_never_reused", SCORES_LOCK),
            ("0018_audit_in_commit_order", AUDIT_LOCK),
        ] {
            assert!(
                migration(name).contains(&format!("pg_advisory_xact_lock({key})")),
                "{name} takes {key}"
            );
        }
    }

    #[test]
    fn months_roll_over_the_year() {
        assert_eq!(next_month((2025, 12)), (2026, 1));
        // 2025-01-31 23:00 IST is still January, though UTC is the same day.
        let time = crate::time::parse_timestamp("2025-01-31 23:00:00").unwrap();
        assert_eq!(month_of(time), (2025, 1));
        assert_eq!(partition_name((2025, 1)), "transaction_events_2025_01");
    }
}
