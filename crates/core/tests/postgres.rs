//! PostgreSQL as the second engine: schema versions, connection errors, partitions, and the
//! trap of sequence values that commit out of order. Needs `AEGIS_TEST_PG` (see
//! `aegis_core::pg::test_server`).

use std::sync::mpsc;
use std::time::Duration;

use aegis_core::domain::NewTransaction;
use aegis_core::pg::{self, ScratchDatabase};
use aegis_core::sql::Value;

fn scratch(prefix: &str) -> Option<ScratchDatabase> {
    let server = pg::test_server()?;
    Some(ScratchDatabase::create(&server, prefix).unwrap())
}

fn payment(reference: &str, when: &str) -> NewTransaction {
    NewTransaction {
        transaction_ref: Some(reference.to_string()),
        beneficiary_id: "B1".to_string(),
        account_id: Some("A1".to_string()),
        agent_id: Some("G1".to_string()),
        scheme: "PM-KISAN".to_string(),
        amount_paise: 200_000,
        time: aegis_core::time::parse_timestamp(when).unwrap(),
        latitude: Some(26.8),
        longitude: Some(80.9),
        district: Some("Lucknow".to_string()),
        is_anomaly: Some(false),
        fraud_type: None,
    }
}

#[test]
fn opening_creates_the_schema_once_and_refuses_a_newer_one() {
    let Some(db) = scratch("schema") else { return };
    let mut client = pg::open(db.url()).unwrap();
    assert_eq!(
        pg::schema_version(&mut client).unwrap(),
        aegis_core::db::SCHEMA_VERSION
    );
    // A second program opening the same database applies nothing twice.
    let mut again = pg::open(db.url()).unwrap();
    let tables: i64 = again
        .query_one("SELECT count(*) FROM aegis_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
    again
        .execute("UPDATE aegis_schema SET version = 99", &[])
        .unwrap();
    let message = pg::open(db.url()).err().unwrap().to_string();
    assert!(
        message.contains("schema version 99") && message.contains("upgrade Aegis"),
        "{message}"
    );
}

#[test]
fn connection_failures_are_one_line_that_names_the_fix() {
    let Some(server) = pg::test_server() else {
        return;
    };
    let message = |url: &str| {
        let text = pg::connect(url).err().unwrap().to_string();
        assert!(!text.contains('\n'), "{text}");
        text
    };
    let unreachable = message("postgres://aegis:pw@127.0.0.1:1/aegis");
    assert!(
        unreachable.contains("cannot reach PostgreSQL at postgres://aegis:***@127.0.0.1:1/aegis")
            && unreachable.contains("is the server running"),
        "{unreachable}"
    );
    let config: postgres::Config = server.parse().unwrap();
    let user = config.get_user().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(host) => host.clone(),
        other => panic!("test server must be TCP, not {other:?}"),
    };
    let port = config.get_ports()[0];
    let wrong = message(&format!(
        "postgres://{user}:not-the-password@{host}:{port}/postgres"
    ));
    assert!(
        wrong.contains("refused the password") && !wrong.contains("not-the-password"),
        "{wrong}"
    );
    let missing = message(&pg::replace_database(&server, "aegis_no_such_database"));
    assert!(
        missing.contains("\"aegis_no_such_database\" does not exist")
            && missing.contains("createdb aegis_no_such_database"),
        "{missing}"
    );
}

#[test]
fn rows_land_in_the_partition_of_their_event_month() {
    let Some(db) = scratch("months") else { return };
    let mut client = pg::open(db.url()).unwrap();
    let mut transaction = client.transaction().unwrap();
    pg::copy_transactions(
        &mut transaction,
        &[
            payment("R1", "2025-01-31 23:30:00"),
            payment("R2", "2025-03-01 00:00:00"),
        ],
    )
    .unwrap();
    transaction.commit().unwrap();
    let rows = client
        .query(
            "SELECT transaction_ref, tableoid::regclass::text FROM transaction_events ORDER BY transaction_id",
            &[],
        )
        .unwrap();
    let placed: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        placed,
        vec![
            ("R1".to_string(), "transaction_events_2025_01".to_string()),
            ("R2".to_string(), "transaction_events_2025_03".to_string()),
        ]
    );
    // The month between exists too, so a feed moving through it never waits on DDL.
    let february: bool = client
        .query_one(
            "SELECT to_regclass('transaction_events_2025_02') IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(february);
    // Readers see the SQLite-shaped view, refs registered by the trigger.
    let registered: i64 = client
        .query_one("SELECT count(*) FROM payment_refs", &[])
        .unwrap()
        .get(0);
    assert_eq!(registered, 2);
}

/// The trap: with a plain sequence, a reader that follows `id > mark` skips a row that commits
/// after a row with a higher id. The fix: every insert takes the append lock before drawing an
/// id, so a second writer waits for the first to commit, and id order is commit order.
#[test]
fn ids_commit_in_id_order_so_a_reader_following_the_mark_skips_nothing() {
    let Some(db) = scratch("order") else { return };
    let url = db.url().to_string();
    let mut reader = pg::open(&url).unwrap();

    // First, the trap itself, on a table without the lock.
    reader
        .batch_execute("CREATE TABLE plain (id bigint GENERATED ALWAYS AS IDENTITY, v int)")
        .unwrap();
    let mut early = pg::connect(&url).unwrap();
    let mut late = pg::connect(&url).unwrap();
    let mut slow = early.transaction().unwrap();
    slow.execute("INSERT INTO plain (v) VALUES (1)", &[])
        .unwrap();
    let mut fast = late.transaction().unwrap();
    fast.execute("INSERT INTO plain (v) VALUES (2)", &[])
        .unwrap();
    fast.commit().unwrap();
    let mark: i64 = reader
        .query_one("SELECT max(id) FROM plain", &[])
        .unwrap()
        .get(0);
    slow.commit().unwrap();
    let after_mark: i64 = reader
        .query_one("SELECT count(*) FROM plain WHERE id > $1", &[&mark])
        .unwrap()
        .get(0);
    let total: i64 = reader
        .query_one("SELECT count(*) FROM plain", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        (mark, after_mark, total),
        (2, 0, 2),
        "the row with id 1 committed after the reader passed it"
    );

    // Then transaction_events: the second writer cannot draw an id until the first commits.
    // March exists beforehand, so what the second writer waits for is the append lock.
    let march = aegis_core::time::parse_timestamp("2025-03-01 00:00:00").unwrap();
    pg::ensure_months(
        &mut aegis_core::sql::Postgres::autocommit(&mut reader, &mut Default::default()),
        march,
        march,
    )
    .unwrap();
    let mut first = pg::connect(&url).unwrap();
    let mut first_tx = first.transaction().unwrap();
    pg::copy_transactions(&mut first_tx, &[payment("A", "2025-03-03 10:00:00")]).unwrap();
    let (done, finished) = mpsc::channel();
    let second_url = url.clone();
    let second = std::thread::spawn(move || {
        let mut second = pg::connect(&second_url).unwrap();
        let mut tx = second.transaction().unwrap();
        // Every writer makes sure its month exists first.
        let when = aegis_core::time::parse_timestamp("2025-03-03 10:00:01").unwrap();
        pg::ensure_months(
            &mut aegis_core::sql::Postgres::in_transaction(&mut tx, &mut Default::default()),
            when,
            when,
        )
        .unwrap();
        tx.execute(
            "INSERT INTO transaction_events (transaction_ref, beneficiary_id, scheme, amount_paise, timestamp) \
             VALUES ('B', 'B2', 'MGNREGA', 100, '2025-03-03 10:00:01')",
            &[],
        )
        .unwrap();
        tx.commit().unwrap();
        done.send(()).unwrap();
    });
    assert!(
        finished.recv_timeout(Duration::from_millis(500)).is_err(),
        "the second writer inserted while the first had not committed"
    );
    let seen: i64 = reader
        .query_one("SELECT count(*) FROM transactions", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen, 0);
    first_tx.commit().unwrap();
    finished.recv_timeout(Duration::from_secs(30)).unwrap();
    second.join().unwrap();
    let order: Vec<String> = reader
        .query(
            "SELECT transaction_ref FROM transactions ORDER BY transaction_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(order, vec!["A".to_string(), "B".to_string()]);

    // Verdicts too (0014): a monitor reads them after the last id it read.
    reader
        .batch_execute(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES ('a', 'x', 'auditor', 0)",
        )
        .unwrap();
    let insert_verdict = "INSERT INTO verdicts (transaction_id, verdict, user_id, created_at) \
                          SELECT min(transaction_id), 'dismissed', (SELECT min(user_id) FROM users), 0 \
                          FROM transaction_events";
    inserts_take_turns(&mut first, &url, insert_verdict, "verdict");
    assert_eq!(count(&mut reader, "SELECT count(*) FROM verdicts"), 2);

    // Audit entries too (0018): the log's pages are anchored at the newest id.
    let insert_entry = "INSERT INTO audit_log (at, username, action) VALUES (0, 'a', 'login')";
    inserts_take_turns(&mut first, &url, insert_entry, "audit entry");
    assert_eq!(count(&mut reader, "SELECT count(*) FROM audit_log"), 2);
}

/// Runs `insert` in a transaction on `first`, left open, and again on a second connection:
/// the second must wait until the first commits, since its id could otherwise commit first.
fn inserts_take_turns(first: &mut postgres::Client, url: &str, insert: &'static str, what: &str) {
    let mut first_tx = first.transaction().unwrap();
    first_tx.execute(insert, &[]).unwrap();
    let (done, finished) = mpsc::channel();
    let second_url = url.to_string();
    let second = std::thread::spawn(move || {
        let mut second = pg::connect(&second_url).unwrap();
        second.execute(insert, &[]).unwrap();
        done.send(()).unwrap();
    });
    assert!(
        finished.recv_timeout(Duration::from_millis(500)).is_err(),
        "a second {what} drew its id while the first had not committed"
    );
    first_tx.commit().unwrap();
    finished.recv_timeout(Duration::from_secs(30)).unwrap();
    second.join().unwrap();
}

/// One statement of the shared dialect gives the same rows on both engines, whatever integer
/// type the PostgreSQL column has (bigint, integer, smallint) and with NULLs.
#[test]
fn shared_statements_give_the_same_rows_on_both_engines() {
    let Some(db) = scratch("shared_sql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let targets = [
        aegis_core::engine::Target::Sqlite(dir.path().join("t.db")),
        aegis_core::engine::Target::Postgres(db.url().to_string()),
    ];
    let outcomes: Vec<Vec<Vec<Value>>> = targets
        .iter()
        .map(|target| {
            let mut store = target.open().unwrap();
            store
                .in_transaction(|sql| {
                    // users.disabled is integer, is_anomaly smallint, ids bigint.
                    let user = sql
                        .query_int(
                            "INSERT INTO users (username, password_hash, role, disabled, created_at) \
                             VALUES (?1, ?2, 'auditor', ?3, ?4) RETURNING user_id",
                            &["asha".into(), "x".into(), 1.into(), 1_700_000_000_000i64.into()],
                        )?
                        .unwrap();
                    let again = sql.execute(
                        "INSERT INTO users (user_id, username, password_hash, role, created_at) \
                         VALUES (?1, ?2, 'x', 'admin', 0) ON CONFLICT DO NOTHING",
                        &[user.into(), "asha".into()],
                    )?;
                    assert_eq!(again, 0);
                    sql.execute(
                        "INSERT INTO audit_log (at, username, action, detail) \
                         SELECT m.column1, m.column2, 'login', m.column3 \
                         FROM (VALUES (CAST(?1 AS BIGINT), CAST(?2 AS TEXT), CAST(?3 AS TEXT)), (?4, ?5, ?6)) AS m",
                        &[
                            5.into(),
                            "asha".into(),
                            "?1 stays text".into(),
                            6.into(),
                            Value::Null,
                            "from 'here'".into(),
                        ],
                    )?;
                    let mut rows = sql.query(
                        "SELECT user_id, username, disabled, CAST(CASE WHEN disabled > 0 THEN 1.5 ELSE 0.5 END AS DOUBLE PRECISION), \
                         failed_logins, locked_until FROM users ORDER BY user_id",
                        &[],
                    )?;
                    rows.extend(sql.query(
                        "SELECT at, username, detail FROM audit_log WHERE action = 'login' ORDER BY at",
                        &[],
                    )?);
                    Ok(rows)
                })
                .unwrap()
        })
        .collect();
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(
        outcomes[0],
        vec![
            vec![
                Value::Int(1),
                Value::Text("asha".into()),
                Value::Int(1),
                Value::Real(1.5),
                Value::Int(0),
                Value::Null
            ],
            vec![
                Value::Int(5),
                Value::Text("asha".into()),
                Value::Text("?1 stays text".into())
            ],
            vec![
                Value::Int(6),
                Value::Null,
                Value::Text("from 'here'".into())
            ],
        ]
    );
}

#[test]
fn json_fields_of_reasons_read_alike_and_text_that_is_not_json_is_refused_on_write() {
    let Some(db) = scratch("reasons") else { return };
    let mut store = aegis_core::engine::Target::Postgres(db.url().to_string())
        .open()
        .unwrap();
    let reasons = r#"{"category":"amount","reasons":[{"text":"₹50,000 is 25× the usual"}]}"#;
    let engine = aegis_core::sql::Engine::Postgres;
    let read = store
        .in_transaction(|sql| {
            let id = aegis_core::store::insert_payment(sql, &payment("R1", "2025-03-01 10:00:00"))?;
            sql.execute(
                "INSERT INTO transaction_scores (transaction_id, status, anomaly_score, reasons) \
                 VALUES (?1, 'ANOMALY', 0.9, ?2)",
                &[id.into(), reasons.into()],
            )?;
            sql.query_row(
                &format!(
                    "SELECT {}, {}, {} FROM transactions WHERE transaction_id = ?1",
                    engine.json_text("reasons", "$.category"),
                    engine.json_text("reasons", "$.reasons[0].text"),
                    engine.json_text("reasons", "$.missing"),
                ),
                &[id.into()],
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        read,
        [
            Value::Text("amount".into()),
            Value::Text("₹50,000 is 25× the usual".into()),
            Value::Null
        ]
    );
    let refused = store.in_transaction(|sql| {
        let id = aegis_core::store::insert_payment(sql, &payment("R2", "2025-03-01 11:00:00"))?;
        sql.execute(
            "INSERT INTO transaction_scores (transaction_id, status, reasons) VALUES (?1, 'ERROR', ?2)",
            &[id.into(), "checked by phone, fine".into()],
        )
    });
    assert!(refused.is_err(), "a reason that is not JSON is refused");
}

/// The bound the case queue puts on a lead's month must name exactly the stored event time on
/// both engines, or a lead at the edge of its incident's span would drop out of the queue.
#[test]
fn event_time_text_is_the_stored_timestamp_on_both_engines() {
    let texts = [
        "2025-01-01 00:00:00",
        "2025-03-31 23:59:59",
        "2025-04-01 05:29:59",
        "2024-02-29 18:30:00",
    ];
    let mut stores = vec![aegis_core::engine::Store::Sqlite(
        rusqlite::Connection::open_in_memory().unwrap(),
    )];
    let db = scratch("event_time");
    if let Some(db) = &db {
        stores.push(
            aegis_core::engine::Target::Postgres(db.url().to_string())
                .open()
                .unwrap(),
        );
    }
    for mut store in stores {
        for text in texts {
            let seconds = aegis_core::time::parse_timestamp(text).unwrap();
            let read = store
                .in_transaction(|sql| {
                    let engine = sql.engine();
                    sql.query_row(
                        &format!("SELECT {}", engine.event_time_text("CAST(?1 AS BIGINT)")),
                        &[seconds.into()],
                    )
                })
                .unwrap()
                .unwrap();
            assert_eq!(read, [Value::Text(text.into())], "{seconds}");
        }
    }
}

/// Sessions plan for data in memory (see `pg::SESSION_OPTIONS`), unless the URL says otherwise.
#[test]
fn sessions_price_random_reads_for_memory_unless_the_url_sets_it() {
    let Some(server) = pg::test_server() else {
        return;
    };
    let cost = |url: &str| -> String {
        pg::connect(url)
            .unwrap()
            .query_one("SHOW random_page_cost", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(cost(&server), "1.1");
    let separator = if server.contains('?') { '&' } else { '?' };
    assert_eq!(
        cost(&format!(
            "{server}{separator}options=-c%20random_page_cost%3D2.5"
        )),
        "2.5"
    );
}

/// A database written before schema 10 gets its scores' event times when it is opened, so the
/// anomalies view finds the anomalies scored before the upgrade.
#[test]
fn upgrading_to_schema_10_gives_earlier_scores_their_event_time() {
    let Some(db) = scratch("upgrade10") else {
        return;
    };
    let mut store = aegis_core::engine::Target::Postgres(db.url().to_string())
        .open()
        .unwrap();
    store
        .in_transaction(|sql| {
            for (reference, when, status) in [
                ("U1", "2025-03-01 10:00:00", "ANOMALY"),
                ("U2", "2025-04-02 11:00:00", "NORMAL"),
            ] {
                let id = aegis_core::store::insert_payment(sql, &payment(reference, when))?;
                sql.execute(
                    "INSERT INTO transaction_scores (transaction_id, status, anomaly_score) VALUES (?1, ?2, 0.5)",
                    &[id.into(), status.into()],
                )?;
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    // Back to version 9 as it was: no notices, no event time on the scores, no views.
    let mut client = pg::connect(db.url()).unwrap();
    client
        .batch_execute(
            "DROP VIEW anomalies; DROP VIEW flagged; DROP FUNCTION aegis_notify_change() CASCADE; \
             ALTER TABLE transaction_scores DROP COLUMN timestamp; DROP TABLE feature_days; \
             DROP TABLE control_draws; DROP TABLE control_days; \
             DROP FUNCTION aegis_verdicts_in_commit_order() CASCADE; \
             DROP FUNCTION aegis_refuse_judged_delete() CASCADE; \
             DROP FUNCTION aegis_drop_score() CASCADE; DROP FUNCTION aegis_retire_month(text); \
             DROP FUNCTION aegis_count_deletions() CASCADE; DROP TABLE payment_deletions; \
             DROP FUNCTION aegis_leave_incident() CASCADE; \
             DROP FUNCTION aegis_recount_incidents(bigint[]); \
             ALTER TABLE verdicts DROP COLUMN via; ALTER TABLE sessions DROP COLUMN idle_until; \
             DROP FUNCTION aegis_audit_in_commit_order() CASCADE; \
             UPDATE aegis_schema SET version = 9",
        )
        .unwrap();
    drop(pg::open(db.url()).unwrap());
    let rows = client
        .query(
            "SELECT s.timestamp, a.transaction_ref FROM transaction_scores s \
             LEFT JOIN anomalies a USING (transaction_id) ORDER BY s.transaction_id",
            &[],
        )
        .unwrap();
    let read: Vec<(Option<String>, Option<String>)> =
        rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    assert_eq!(
        read,
        [
            (Some("2025-03-01 10:00:00".into()), Some("U1".into())),
            (Some("2025-04-02 11:00:00".into()), None)
        ]
    );
}

/// Stores payments `refs` (in January and February 2025), scores each, and records a verdict
/// on the first; returns their ids.
fn stored_and_scored(db: &ScratchDatabase, refs: &[(&str, &str)]) -> Vec<i64> {
    let mut store = aegis_core::engine::Target::Postgres(db.url().to_string())
        .open()
        .unwrap();
    store
        .in_transaction(|sql| {
            let ids = store_scored(sql, refs)?;
            sql.execute(
                "INSERT INTO users (username, password_hash, role, created_at) VALUES ('a', 'x', 'auditor', 0)",
                &[],
            )?;
            sql.execute(
                "INSERT INTO verdicts (transaction_id, verdict, user_id, created_at) \
                 SELECT ?1, 'dismissed', user_id, 0 FROM users",
                &[ids[0].into()],
            )?;
            Ok(ids)
        })
        .unwrap()
}

fn count(client: &mut postgres::Client, query: &str) -> i64 {
    client.query_one(query, &[]).unwrap().get(0)
}

/// An operator deleting payments on PostgreSQL gets what SQLite's schema gives: a payment an
/// auditor judged stays, and a deleted one takes its score along (the drift view counted
/// orphaned scores) and frees its ref.
#[test]
fn deleting_payments_spares_judged_ones_and_takes_their_scores() {
    let Some(db) = scratch("deletes") else { return };
    let ids = stored_and_scored(
        &db,
        &[("D1", "2025-01-05 10:00:00"), ("D2", "2025-01-06 10:00:00")],
    );
    let mut client = pg::connect(db.url()).unwrap();
    let refused = client
        .execute(
            "DELETE FROM transaction_events WHERE transaction_id = $1",
            &[&ids[0]],
        )
        .unwrap_err();
    let text = pg::describe(&refused);
    assert!(
        text.contains("has verdicts and cannot be deleted"),
        "{text}"
    );
    client
        .execute(
            "DELETE FROM transaction_events WHERE transaction_id = $1",
            &[&ids[1]],
        )
        .unwrap();
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM transaction_scores"),
        1
    );
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM payment_refs WHERE transaction_ref = 'D2'"
        ),
        0
    );
    assert_eq!(count(&mut client, "SELECT count(*) FROM transactions"), 1);
}

/// A delete sent to one month's partition, not through `transaction_events`, is counted and
/// announced as one through it: the monitor and the dashboards' cache read the count, and a
/// monitor scoring those payments at that moment stopped without it. Months there before the
/// upgrade (0019) and months made after it alike.
#[test]
fn a_delete_sent_to_one_month_is_counted_like_any_other() {
    let Some(db) = scratch("month_deletes") else {
        return;
    };
    stored_and_scored(
        &db,
        &[("M0", "2025-01-04 10:00:00"), ("M1", "2025-01-05 10:00:00")],
    );
    let mut client = pg::connect(db.url()).unwrap();
    // January as a database of schema 18 left it.
    client
        .batch_execute(
            "DROP TRIGGER month_count_deletions ON transaction_events_2025_01; \
             DROP TRIGGER month_deleted_notify ON transaction_events_2025_01; \
             UPDATE aegis_schema SET version = 18",
        )
        .unwrap();
    drop(pg::open(db.url()).unwrap());
    // February is made by this version.
    stored_and_scored_more(&db, &[("M2", "2025-02-05 10:00:00")]);
    let deleted =
        |client: &mut postgres::Client| count(client, "SELECT deleted FROM payment_deletions");
    let before = deleted(&mut client);
    for (month, reference) in [("2025_01", "M1"), ("2025_02", "M2")] {
        let gone = client
            .execute(
                &format!("DELETE FROM transaction_events_{month} WHERE transaction_ref = $1"),
                &[&reference],
            )
            .unwrap();
        assert_eq!(gone, 1);
    }
    assert_eq!(deleted(&mut client), before + 2);
    // Each month carries both triggers, the count's and the notice's (a notice also comes
    // from the case queue's trigger, so the notice itself proves nothing here).
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM pg_trigger WHERE tgname IN ('month_count_deletions', 'month_deleted_notify') \
             AND tgrelid IN ('transaction_events_2025_01'::regclass, 'transaction_events_2025_02'::regclass)"
        ),
        4
    );
    // The scores went with them (row triggers, cloned onto every month).
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM transaction_scores"),
        1
    );
    // Through the whole table: counted once, not once more per month.
    let before = deleted(&mut client);
    client
        .execute(
            "DELETE FROM transaction_events WHERE transaction_ref = 'none'",
            &[],
        )
        .unwrap();
    assert_eq!(deleted(&mut client), before + 1);
}

/// Stores and scores more payments (no verdict).
fn stored_and_scored_more(db: &ScratchDatabase, refs: &[(&str, &str)]) {
    let mut store = aegis_core::engine::Target::Postgres(db.url().to_string())
        .open()
        .unwrap();
    store
        .in_transaction(|sql| store_scored(sql, refs).map(drop))
        .unwrap()
}

/// Stores `refs` as payments at their times, each scored ANOMALY; their ids.
fn store_scored(
    sql: &mut dyn aegis_core::sql::Sql,
    refs: &[(&str, &str)],
) -> aegis_core::Result<Vec<i64>> {
    let mut ids = Vec::new();
    for (reference, when) in refs {
        let id = aegis_core::store::insert_payment(sql, &payment(reference, when))?;
        sql.execute(
            "INSERT INTO transaction_scores (transaction_id, status, anomaly_score, timestamp) \
             VALUES (?1, 'ANOMALY', 0.9, ?2)",
            &[id.into(), (*when).into()],
        )?;
        ids.push(id);
    }
    Ok(ids)
}

/// Retiring a month detaches its partition and takes out what refers to its payments: a
/// retried ref of that month is then stored as a new payment instead of failing, an incident
/// left without alerts goes and one spanning the month's end is counted again, and the table
/// stays behind, renamed, for the archive. A month that is not one, not attached, retired
/// before and not archived, not scored to the end, or holding verdicts that are still evidence
/// is refused by name, and stays.
#[test]
fn retiring_a_month_detaches_it_and_frees_its_refs() {
    let Some(db) = scratch("retire") else { return };
    let ids = stored_and_scored(
        &db,
        &[
            ("J1", "2025-01-05 10:00:00"),
            ("J2", "2025-01-20 10:00:00"),
            ("F1", "2025-02-05 10:00:00"),
        ],
    );
    let mut client = pg::connect(db.url()).unwrap();
    let refused = |client: &mut postgres::Client, month: &str| -> String {
        let error = client
            .query_one("SELECT aegis_retire_month($1)", &[&month])
            .unwrap_err();
        pg::describe(&error)
    };
    let message = refused(&mut client, "2025-01");
    assert!(
        message.contains("has 2 payments the monitor has not scored yet"),
        "{message}"
    );
    client
        .batch_execute(&format!(
            "INSERT INTO monitor_state (id, high_water_mark, updated_at) VALUES (1, {}, 0); \
             INSERT INTO verdicts (transaction_id, verdict, user_id, created_at) \
             SELECT {}, 'confirmed_fraud', user_id, 1737000000000 FROM users",
            ids[2], ids[1]
        ))
        .unwrap();
    let message = refused(&mut client, "2025-01");
    assert!(
        message.contains("has 1 verdicts decided within 28 days of the newest payment"),
        "{message}"
    );
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM transactions"),
        3,
        "still there"
    );
    // That verdict decided long before instead; incidents: one across the month's end, one
    // inside it.
    client
        .batch_execute(&format!(
            "UPDATE verdicts SET created_at = 0; \
             UPDATE transaction_scores SET anomaly_score = 0.7 WHERE transaction_id = {f1}; \
             INSERT INTO incidents (incident_id, first_time, last_time, alerts, max_score, total_paise, lead_id) \
             VALUES (1, 1736051400, 1738729800, 2, 0.9, 400000, {j1}), (2, 1737347400, 1737347400, 1, 0.9, 200000, {j2}); \
             INSERT INTO incident_alerts (transaction_id, incident_id, timestamp, amount_paise) \
             VALUES ({j1}, 1, '2025-01-05 10:00:00', 200000), ({f1}, 1, '2025-02-05 10:00:00', 200000), \
                    ({j2}, 2, '2025-01-20 10:00:00', 200000); \
             INSERT INTO incident_keys (kind, value, incident_id, last_time) VALUES ('agent', 'G1', 2, 0); \
             INSERT INTO control_days (day, population, size, drawn, drawn_by, drawn_at) VALUES ('2025-01-20', 1, 1, 1, 'test', 0); \
             INSERT INTO control_draws (transaction_id, day) VALUES ({j2}, '2025-01-20');",
            j1 = ids[0],
            j2 = ids[1],
            f1 = ids[2]
        ))
        .unwrap();
    let retired: i64 = client
        .query_one("SELECT aegis_retire_month('2025-01')", &[])
        .unwrap()
        .get(0);
    assert_eq!(retired, 2);
    assert_eq!(count(&mut client, "SELECT count(*) FROM transactions"), 1);
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM transaction_scores"),
        1
    );
    assert_eq!(count(&mut client, "SELECT count(*) FROM payment_refs"), 1);
    assert_eq!(count(&mut client, "SELECT count(*) FROM control_draws"), 0);
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM verdicts"),
        2,
        "verdicts stay"
    );
    let incidents = incidents_of(&mut client);
    assert_eq!(incidents, [(1, 1, 1, 0.7, 200_000, ids[2], 1738729800)]);
    assert_eq!(count(&mut client, "SELECT count(*) FROM incident_keys"), 0);
    assert_eq!(
        count(&mut client, "SELECT deleted FROM payment_deletions"),
        1
    );
    // The retried ref is a new payment, in a new January partition.
    let mut store = aegis_core::engine::Target::Postgres(db.url().to_string())
        .open()
        .unwrap();
    let again = store.in_transaction(|sql| {
        aegis_core::store::insert_payment(sql, &payment("J1", "2025-01-05 10:00:00"))
    });
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM transaction_events_2025_01_retired"
        ),
        2,
        "the retired month stays, renamed, to be archived"
    );
    for (month, expected) in [
        ("2025-13", "is not a month"),
        ("'; DROP TABLE users; --", "is not a month"),
        ("2024-06", "has no attached partition"),
        ("2025-01", "was retired before"),
    ] {
        let message = refused(&mut client, month);
        assert!(message.contains(expected), "{month}: {message}");
    }
}

/// A read in one snapshot sees the data as it was when it began, whatever commits meanwhile:
/// a page's total and its rows agree. A plain read sees each commit at once.
#[test]
fn a_snapshot_read_sees_one_state_of_the_data() {
    let Some(db) = scratch("snapshot") else {
        return;
    };
    let target = aegis_core::engine::Target::Postgres(db.url().to_string());
    let mut store = target.open().unwrap();
    let mut other = target.open().unwrap();
    let add = |other: &mut aegis_core::engine::Store, reference: &str| {
        other
            .in_transaction(|sql| {
                aegis_core::store::insert_payment(sql, &payment(reference, "2025-03-01 10:00:00"))
            })
            .unwrap();
    };
    add(&mut other, "S1");
    let count = "SELECT count(*) FROM transactions";
    let mut cache = Default::default();
    let (before, after) = store
        .read_snapshot(&mut cache, |sql| -> aegis_core::Result<(i64, i64)> {
            let before = sql.query_int(count, &[])?.unwrap_or(0);
            add(&mut other, "S2");
            Ok((before, sql.query_int(count, &[])?.unwrap_or(0)))
        })
        .unwrap();
    assert_eq!((before, after), (1, 1));
    let (before, after) = store
        .transact(&mut cache, false, |sql| -> aegis_core::Result<(i64, i64)> {
            let before = sql.query_int(count, &[])?.unwrap_or(0);
            add(&mut other, "S3");
            Ok((before, sql.query_int(count, &[])?.unwrap_or(0)))
        })
        .unwrap();
    assert_eq!((before, after), (2, 3), "a plain read sees each commit");
}

/// A deleted payment leaves the case queue on PostgreSQL too: its incident is counted again
/// from the alerts it keeps, or goes with its keys when none is left.
#[test]
fn a_deleted_payment_leaves_its_incident_counted_again() {
    let Some(db) = scratch("leave") else { return };
    let ids = stored_and_scored(
        &db,
        &[
            ("V1", "2025-01-04 10:00:00"),
            ("L1", "2025-01-05 10:00:00"),
            ("L2", "2025-01-06 10:00:00"),
            ("L3", "2025-01-07 10:00:00"),
        ],
    );
    let (l1, l2, l3) = (ids[1], ids[2], ids[3]);
    let mut client = pg::connect(db.url()).unwrap();
    client
        .batch_execute(&format!(
            "UPDATE transaction_scores SET anomaly_score = 0.7 WHERE transaction_id = {l2}; \
             INSERT INTO incidents (incident_id, first_time, last_time, alerts, max_score, total_paise, lead_id, beneficiaries) \
             VALUES (1, 0, 0, 2, 0.9, 400000, {l1}, 1), (2, 0, 0, 1, 0.9, 200000, {l3}, 1); \
             INSERT INTO incident_alerts (transaction_id, incident_id, timestamp, amount_paise, beneficiary_id) VALUES \
                 ({l1}, 1, '2025-01-05 10:00:00', 200000, 'B1'), ({l2}, 1, '2025-01-06 10:00:00', 200000, 'B1'), \
                 ({l3}, 2, '2025-01-07 10:00:00', 200000, 'B1'); \
             INSERT INTO incident_keys (kind, value, incident_id, last_time) VALUES ('beneficiary', 'B1', 2, 0); \
             DELETE FROM transaction_events WHERE transaction_id IN ({l1}, {l3});"
        ))
        .unwrap();
    let incidents = incidents_of(&mut client);
    assert_eq!(incidents, [(1, 1, 1, 0.7, 200_000, l2, 1736137800)]);
    assert_eq!(
        count(&mut client, "SELECT count(*) FROM incident_alerts"),
        1
    );
    assert_eq!(count(&mut client, "SELECT count(*) FROM incident_keys"), 0);
}

/// (id, alerts, unreviewed, highest score, amount, lead alert, first time) of every incident.
fn incidents_of(client: &mut postgres::Client) -> Vec<(i64, i64, i64, f64, i64, i64, i64)> {
    client
        .query(
            "SELECT incident_id, alerts, unreviewed, max_score, total_paise, lead_id, first_time \
             FROM incidents ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
                row.get(6),
            )
        })
        .collect()
}

/// A feed (COPY) and an import (append lock first) that both need a month not made yet take
/// turns. The feed took the partition lock before its COPY's trigger asked for the append
/// lock, the import the other way round: each waited for the other and PostgreSQL aborted one.
#[test]
fn a_feed_and_an_import_making_the_same_new_month_take_turns() {
    let Some(db) = scratch("month_race") else {
        return;
    };
    drop(pg::open(db.url()).unwrap());
    let mut import = pg::connect(db.url()).unwrap();
    let mut import_tx = import.transaction().unwrap();
    let mut state = Default::default();
    pg::lock_appends(&mut aegis_core::sql::Postgres::in_transaction(
        &mut import_tx,
        &mut state,
    ))
    .unwrap();
    let (done, finished) = mpsc::channel();
    let url = db.url().to_string();
    let feed = std::thread::spawn(move || {
        let mut feed = pg::connect(&url).unwrap();
        let mut tx = feed.transaction().unwrap();
        let copied = pg::copy_transactions(&mut tx, &[payment("F1", "2031-05-03 10:00:00")])
            .and_then(|()| Ok(tx.commit()?));
        done.send(()).unwrap();
        copied
    });
    // The feed is under way (waiting, with the fix, for the import's append lock).
    assert!(finished.recv_timeout(Duration::from_millis(300)).is_err());
    let may = aegis_core::time::parse_timestamp("2031-05-04 10:00:00").unwrap();
    let made = pg::ensure_months(
        &mut aegis_core::sql::Postgres::in_transaction(&mut import_tx, &mut state),
        may,
        may,
    );
    assert!(made.is_ok(), "the import was aborted: {made:?}");
    import_tx.commit().unwrap();
    finished.recv_timeout(Duration::from_secs(30)).unwrap();
    let copied = feed.join().unwrap();
    assert!(copied.is_ok(), "the feed was aborted: {copied:?}");
    let mut client = pg::connect(db.url()).unwrap();
    assert_eq!(
        count(
            &mut client,
            "SELECT count(*) FROM transaction_events_2031_05"
        ),
        1
    );
}
