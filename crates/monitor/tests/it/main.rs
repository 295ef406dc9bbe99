//! Integration tests of `monitor`: exactly-once under kill -9, restart, hot reload, refusals and
//! malformed rows.

mod helpers;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use aegis_core::sql::Value;

use crate::helpers::{
    Db, Engine, config, count, engines, fixture, fixture_on, hold_back, release, train_model,
    train_model_without_choices,
};

/// Records any row whose status is written a second time (SQLite writes scores into the row;
/// on PostgreSQL a second score of a row would break `transaction_scores`' key and fail the
/// batch instead).
const RESCORE_TRIGGER: &str = "CREATE TABLE rescored (transaction_id INTEGER);
     CREATE TRIGGER detect_rescore AFTER UPDATE OF status ON transactions
     WHEN OLD.status IS NOT NULL BEGIN INSERT INTO rescored VALUES (NEW.transaction_id); END;";

fn assert_mark_is_consistent(db: &Db) {
    let mark = db.int("SELECT coalesce((SELECT high_water_mark FROM monitor_state), 0)");
    let unscored_below = db.int(&format!(
        "SELECT count(*) FROM transactions WHERE transaction_id <= {mark} AND status IS NULL"
    ));
    let scored_above = db.int(&format!(
        "SELECT count(*) FROM transactions WHERE transaction_id > {mark} AND status IS NOT NULL"
    ));
    assert_eq!(
        (unscored_below, scored_above),
        (0, 0),
        "rows and the mark disagree at mark {mark}"
    );
}

#[test]
fn every_row_is_scored_exactly_once_across_kill_minus_nine() {
    for engine in engines() {
        exactly_once_across_kill_minus_nine(engine);
    }
}

fn exactly_once_across_kill_minus_nine(engine: Engine) {
    let fixture = fixture_on(engine, 30_000);
    let db = &fixture.store;
    // The same rows scored by a monitor that is never killed, for the scores.
    let reference = db.copy("reference");
    let mut uninterrupted = config(&fixture, true);
    uninterrupted.db = reference.target.clone();
    uninterrupted.checkpoint_dir = Some(fixture.dir.path().join("reference-checkpoints"));
    monitor::run(&uninterrupted, Arc::new(AtomicBool::new(false))).unwrap();
    if engine == Engine::Sqlite {
        db.batch(RESCORE_TRIGGER);
    }
    let binary = env!("CARGO_BIN_EXE_monitor");
    let target = db.target.as_arg();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let mut kills = 0;
    // Small batches make a run long enough to be killed in the middle; keep killing until the
    // monitor has died mid-run several times (or has finished).
    for _ in 0..40 {
        if kills >= 5 || db.int("SELECT count(*) FROM transactions WHERE status IS NULL") == 0 {
            break;
        }
        let mut child = Command::new(binary)
            .args([
                "--db",
                &target,
                "--modeling",
                fixture.modeling.to_str().unwrap(),
            ])
            // A checkpoint after every batch: many kills land while one is being written.
            .args(["--once", "--batch-size", "5", "--checkpoint-rows", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(30..200)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        assert_mark_is_consistent(db);
    }
    let output = Command::new(binary)
        .args([
            "--db",
            &target,
            "--modeling",
            fixture.modeling.to_str().unwrap(),
            "--once",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{engine:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        kills >= 3,
        "{engine:?}: the monitor was killed mid-run only {kills} times"
    );
    assert_eq!(
        db.int("SELECT count(*) FROM transactions WHERE status IS NULL"),
        0,
        "{engine:?}: none skipped"
    );
    if engine == Engine::Sqlite {
        assert_eq!(
            db.int("SELECT count(*) FROM rescored"),
            0,
            "none scored twice"
        );
    }
    assert_eq!(
        db.int("SELECT high_water_mark FROM monitor_state"),
        db.int("SELECT max(transaction_id) FROM transactions")
    );
    let checkpoints =
        monitor::journal::Journal::default_checkpoint_dir(&db.target, &fixture.modeling);
    let files: Vec<String> = std::fs::read_dir(&checkpoints)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().all(|name| !name.ends_with(".tmp")) && !files.is_empty(),
        "{engine:?}: restarts cleaned up the killed writers' partial files: {files:?}"
    );
    assert_same_scores(&reference, db);
    // Incidents are linked in the scoring transaction: every anomaly exactly once, into the
    // same incidents as the run that was never killed.
    assert_eq!(
        db.int("SELECT count(*) FROM incident_alerts"),
        db.int("SELECT count(*) FROM transactions WHERE status = 'ANOMALY'")
    );
    assert_eq!(incidents(&reference), incidents(db), "{engine:?}");
    // The dashboard finds the anomalies of a period through `anomalies` (on PostgreSQL, by the
    // event time each score carries): every one of them, in its own time.
    assert_eq!(
        db.int(
            "SELECT count(*) FROM anomalies a JOIN transactions t USING (transaction_id) \
             WHERE a.timestamp = t.timestamp"
        ),
        db.int("SELECT count(*) FROM transactions WHERE status = 'ANOMALY'"),
        "{engine:?}"
    );
    assert!(
        db.int("SELECT max(alerts) FROM incidents") > 1,
        "some incident groups several alerts"
    );
    // Each feature's drift counts are written with the scores: every scored row counted once,
    // per event day, as by the run that was never killed.
    assert_eq!(feature_days(&reference), feature_days(db), "{engine:?}");
    let counted: i64 = feature_days(db)
        .iter()
        .map(|(_, counts)| counts[0].iter().sum::<i64>())
        .sum();
    assert_eq!(
        counted,
        db.int("SELECT count(*) FROM transactions WHERE status IN ('NORMAL', 'ANOMALY')"),
        "{engine:?}"
    );
}

/// The drift counts per (day, feature, bin) of the one model the fixture trained.
fn feature_days(db: &Db) -> Vec<(String, Vec<Vec<i64>>)> {
    db.rows("SELECT day, counts FROM feature_days ORDER BY day")
        .into_iter()
        .map(|row| {
            (
                row[0].text().unwrap().to_string(),
                serde_json::from_str(row[1].text().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// (transaction, incident) of every linked alert.
fn incidents(db: &Db) -> Vec<Vec<Value>> {
    db.rows("SELECT transaction_id, incident_id FROM incident_alerts ORDER BY 1")
}

/// (payment, status, score) of every row, by the payment's ref: a row held back and released
/// is a new payment to the database, under a new id (ids are never reused), but the same
/// payment to the comparison.
fn scores(db: &Db) -> Vec<(String, String, f64)> {
    db.rows("SELECT transaction_ref, status, anomaly_score FROM transactions ORDER BY 1")
        .into_iter()
        .map(|row| {
            (
                row[0].text().unwrap().to_string(),
                row[1].text().unwrap_or_default().to_string(),
                row[2].real().unwrap_or(0.0),
            )
        })
        .collect()
}

/// Features are bit-identical (core's tests); the network's float rounding may differ with
/// the batch a row lands in, so scores are compared to a relative 1e-5.
fn assert_same_scores(whole: &Db, restarted: &Db) {
    let (whole, restarted) = (scores(whole), scores(restarted));
    assert_eq!(whole.len(), restarted.len());
    for (a, b) in whole.iter().zip(&restarted) {
        assert_eq!((&a.0, &a.1), (&b.0, &b.1), "status differs");
        assert!(
            (a.2 - b.2).abs() <= 1e-5 * a.2.abs().max(1.0),
            "score of {} differs: {} vs {}",
            a.0,
            a.2,
            b.2
        );
    }
}

#[test]
fn features_after_a_restart_match_an_uninterrupted_run() {
    for engine in engines() {
        features_after_a_restart_match(engine);
    }
}

fn features_after_a_restart_match(engine: Engine) {
    let fixture = fixture_on(engine, 12_000);
    let copy = fixture.store.copy("copy");

    monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false))).unwrap();

    // The same rows, scored in two runs with a restart in the middle: the second run restores
    // the history from the checkpoint the first wrote when it stopped.
    copy.hold_back(5_000);
    let mut split = config(&fixture, true);
    split.db = copy.target.clone();
    split.checkpoint_dir = Some(fixture.dir.path().join("copy-checkpoints"));
    let first = monitor::run(&split, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(first.restored_from, None, "nothing to restore at the start");
    let mark = copy.int("SELECT high_water_mark FROM monitor_state");
    copy.put_back();
    let second = monitor::run(&split, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(second.restored_from, Some(mark), "{engine:?}");
    assert_eq!(second.replayed_rows, 0);
    assert_same_scores(&fixture.store, &copy);
}

/// A monitor stopped before its checkpoint interval still bounds the next restart's replay: what
/// a start replayed counts towards the next checkpoint.
#[test]
fn replay_debt_carries_over_restarts_so_frequent_kills_still_checkpoint() {
    let fixture = fixture(12_000);
    let mut run = config(&fixture, true);
    run.checkpoints = monitor::CheckpointPolicy {
        every_rows: 5_000,
        every: Duration::from_secs(3600),
    };
    // No checkpoint at all: a full replay of 7,000 rows next time.
    hold_back(&fixture.db, 5_000);
    let mut without = run.clone();
    without.checkpoints.every_rows = 0;
    monitor::run(&without, Arc::new(AtomicBool::new(false))).unwrap();
    // 1,000 new rows: fewer than the interval, but the start replayed 7,000, so the run
    // checkpoints after its first batch.
    release(&fixture.db, 1_000);
    let first = monitor::run(&run, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!((first.restored_from, first.replayed_rows), (None, 7_000));
    // One checkpoint right after the first batch (the debt), one when the run stopped; without
    // the debt there would only be the last, which a kill -9 never writes.
    let dir = fixture.db.with_file_name("t.db.checkpoints");
    let mut marks: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    marks.sort();
    assert_eq!(marks.len(), 2, "{marks:?}");
    // The released rows are new payments: ids after the 12,000 generated (an id is never
    // handed out twice), and the first batch is 500 of them.
    assert!(
        marks[0].contains(&format!("{:020}", 12_000 + 500)),
        "{marks:?}"
    );
}

/// A corrupt, foreign or future checkpoint is skipped with a log line, down to an older good
/// one or a full replay: a checkpoint can make a restart faster, never a score different.
#[test]
fn corrupt_foreign_and_future_checkpoints_are_skipped_and_scores_do_not_change() {
    let fixture = fixture(12_000);
    let copy = fixture.store.copy("copy");
    monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false))).unwrap();

    copy.hold_back(5_000);
    let mut split = config(&fixture, true);
    split.db = copy.target.clone();
    monitor::run(&split, Arc::new(AtomicBool::new(false))).unwrap();
    let good = copy.int("SELECT high_water_mark FROM monitor_state");
    // Score 2,000 more without checkpoints: the good one is now behind the mark.
    copy.release(2_000);
    let mut no_checkpoints = split.clone();
    no_checkpoints.checkpoints.every_rows = 0;
    monitor::run(&no_checkpoints, Arc::new(AtomicBool::new(false))).unwrap();
    let mark = copy.int("SELECT high_water_mark FROM monitor_state");
    assert_eq!(
        copy.int(&format!(
            "SELECT count(*) FROM transactions WHERE transaction_id > {good} AND transaction_id <= {mark}"
        )),
        2_000
    );

    let dir = fixture.dir.path().join("copy.db.checkpoints");
    let name = |mark: i64| dir.join(format!("state-{mark:020}.ckpt"));
    let bytes = std::fs::read(name(good)).unwrap();
    let mut corrupt = bytes.clone();
    corrupt[bytes.len() / 2] ^= 0x40;
    std::fs::write(name(good + 10), corrupt).unwrap();
    let foreign = aegis_core::features::FeatureState::new().encode("r0-foreign", good + 20, "");
    std::fs::write(name(good + 20), foreign).unwrap();
    // The right feature set, from another database (or this one before it was regenerated).
    let elsewhere = aegis_core::features::FeatureState::new().encode(
        &aegis_core::features::feature_set_id(),
        good + 40,
        "1700000000000:BEN-ELSEWHERE",
    );
    std::fs::write(name(good + 40), elsewhere).unwrap();
    std::fs::write(name(mark + 1_000), &bytes).unwrap();
    std::fs::write(name(good + 30), b"half a file").unwrap();
    // Two from a larger data set this database held before it was regenerated.
    std::fs::write(name(1_000_000), &bytes).unwrap();
    std::fs::write(name(2_000_000), &bytes).unwrap();

    copy.release(3_000);
    let restarted = monitor::run(&split, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(
        restarted.restored_from,
        Some(good),
        "the good checkpoint was used"
    );
    assert_eq!(restarted.replayed_rows, 2_000);
    assert_same_scores(&fixture.store, &copy);
    // The restart's own checkpoint outranks those of the data that is gone, which go.
    let now = copy.int("SELECT high_water_mark FROM monitor_state");
    assert!(name(now).exists(), "the new checkpoint is kept");
    assert!(!name(1_000_000).exists() && !name(2_000_000).exists());

    // With no good checkpoint left, a full replay.
    for entry in std::fs::read_dir(&dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(name(good + 10), b"torn").unwrap();
    let fallback = monitor::run(&split, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(fallback.restored_from, None);
    assert_eq!(
        fallback.replayed_rows,
        copy.int("SELECT count(*) FROM transactions") as u64
    );
}

#[test]
fn a_new_model_is_picked_up_without_a_restart_and_never_mixed_in_a_batch() {
    for engine in engines() {
        new_model_picked_up_live(engine);
    }
}

fn new_model_picked_up_live(engine: Engine) {
    let fixture = fixture_on(engine, 12_000);
    let db = &fixture.store;
    db.hold_back(4_000);
    let first_version = aegis_core::artifacts::read_config(&fixture.modeling)
        .unwrap()
        .model_version;
    let stop = Arc::new(AtomicBool::new(false));
    let live = config(&fixture, false);
    let handle = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || monitor::run(&live, stop))
    };
    let wait_until_scored = || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while db.int("SELECT count(*) FROM transactions WHERE status IS NULL") > 0 {
            assert!(
                Instant::now() < deadline,
                "{engine:?}: monitor did not catch up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    db.release(2_000);
    wait_until_scored();
    let second_version = train_model(db.target.clone(), &fixture.modeling, 2);
    assert_ne!(first_version, second_version);
    std::thread::sleep(Duration::from_millis(300));
    db.release(2_000);
    wait_until_scored();
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().unwrap().unwrap();
    assert_eq!(stats.reloads, 1, "{engine:?}");
    let newest_version = db
        .rows("SELECT model_version FROM transactions ORDER BY transaction_id DESC LIMIT 1")[0][0]
        .clone();
    assert_eq!(newest_version, Value::Text(second_version));
    assert_eq!(
        db.int(
            "SELECT count(*) FROM (SELECT scored_at FROM transactions GROUP BY scored_at \
             HAVING count(DISTINCT model_version) > 1) AS mixed"
        ),
        0,
        "{engine:?}: a batch mixed two model versions"
    );
}

/// One scorer per database: a second monitor is refused, naming the first, on both engines;
/// once the first stops, the next one starts.
#[test]
fn a_second_monitor_is_refused_while_one_is_scoring() {
    for engine in engines() {
        let fixture = fixture_on(engine, 2_000);
        let stop = Arc::new(AtomicBool::new(false));
        let live = config(&fixture, false);
        let first = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || monitor::run(&live, stop))
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while fixture
            .store
            .int("SELECT count(*) FROM transactions WHERE status IS NULL")
            > 0
        {
            assert!(
                !first.is_finished(),
                "{engine:?}: the first monitor stopped: {:?}",
                first.join()
            );
            assert!(
                Instant::now() < deadline,
                "{engine:?}: the first monitor did not score"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = Command::new(env!("CARGO_BIN_EXE_monitor"))
            .args(["--db", &fixture.store.target.as_arg()])
            .args(["--modeling", fixture.modeling.to_str().unwrap(), "--once"])
            .output()
            .unwrap();
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "{engine:?}: the second monitor ran"
        );
        assert!(
            message.contains("another monitor") && message.contains("stop it first"),
            "{engine:?}: {message}"
        );
        assert!(
            !message.contains(":aegis@") && message.lines().count() == 1,
            "{engine:?}: one line, no password: {message}"
        );
        stop.store(true, Ordering::Relaxed);
        first.join().unwrap().unwrap();
        let after = monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false)));
        assert_eq!(
            after.unwrap().scored,
            0,
            "{engine:?}: the lock was released"
        );
    }
}

#[test]
fn missing_or_mismatched_artifacts_are_refused_before_scoring() {
    let fixture = fixture(3_000);
    let path = fixture.modeling.join(aegis_core::artifacts::CONFIG_FILE);
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    value["feature_set"] = serde_json::json!("r0-deadbeef");
    std::fs::write(&path, value.to_string()).unwrap();
    let message = monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false)))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("r0-deadbeef") && message.contains("retrain"),
        "{message}"
    );
    std::fs::remove_dir_all(&fixture.modeling).unwrap();
    let message = monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false)))
        .unwrap_err()
        .to_string();
    assert!(message.contains("cargo run -p train"), "{message}");
    assert_eq!(
        count(
            &fixture.db,
            "SELECT count(*) FROM transactions WHERE status IS NOT NULL"
        ),
        0
    );
}

/// Status and first reason sentence of beneficiary `who`'s one row.
fn status_and_first_reason(conn: &rusqlite::Connection, who: &str) -> (String, String) {
    conn.query_row(
        "SELECT status, json_extract(reasons, '$.reasons[0].text') FROM transactions WHERE beneficiary_id = ?1",
        [who],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn malformed_rows_get_an_error_status_and_the_monitor_goes_on() {
    let fixture = fixture(3_000);
    let conn = rusqlite::Connection::open(&fixture.db).unwrap();
    conn.execute_batch(
        "INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) VALUES ('BX', 'PM-KISAN', NULL, '2025-04-01 10:00:00');
         INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) VALUES ('BY', 'PM-KISAN', 200000, 'last tuesday');
         INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) VALUES ('BZ', 'PM-KISAN', 200000, '2025-04-01 11:00:00');",
    )
    .unwrap();
    let stats = monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(stats.errors, 2);
    let reason = |who: &str| status_and_first_reason(&conn, who);
    let (status, text) = reason("BX");
    assert_eq!(status, "ERROR");
    assert!(text.contains("amount is missing"), "{text}");
    let (status, text) = reason("BY");
    assert_eq!(status, "ERROR");
    assert!(text.contains("last tuesday"), "{text}");
    let status: String = conn
        .query_row(
            "SELECT status FROM transactions WHERE beneficiary_id = 'BZ'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(status == "NORMAL" || status == "ANOMALY");
    assert_eq!(
        count(
            &fixture.db,
            "SELECT count(*) FROM transactions WHERE status IS NULL"
        ),
        0
    );
    // Ground truth is never written by the monitor.
    assert_eq!(
        count(
            &fixture.db,
            "SELECT count(*) FROM transactions WHERE beneficiary_id IN ('BX','BY','BZ') AND (is_anomaly IS NOT NULL OR fraud_type IS NOT NULL)"
        ),
        0
    );
}

/// An auditor's own SQL or another tool can store any type in any column; one such row used to
/// stop all scoring, on every restart.
#[test]
fn hand_written_amounts_of_the_wrong_type_are_errors_and_the_live_monitor_moves_on() {
    let fixture = fixture(3_000);
    hold_back(&fixture.db, 500);
    let stop = Arc::new(AtomicBool::new(false));
    let live = config(&fixture, false);
    let handle = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || monitor::run(&live, stop))
    };
    let conn = rusqlite::Connection::open(&fixture.db).unwrap();
    for (who, amount) in [
        ("BTEXT", "'abc'"),
        ("BREAL", "1234.5"),
        ("BNULL", "NULL"),
        // Past ingest's ceiling: it would overflow the incident totals it entered.
        ("BHUGE", "9000000000000000000"),
    ] {
        release(&fixture.db, 100);
        conn.execute_batch(&format!(
            "INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) \
             VALUES ('{who}', 'PM-KISAN', {amount}, '2025-04-01 10:00:00');"
        ))
        .unwrap();
    }
    release(&fixture.db, 100);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(
        &fixture.db,
        "SELECT count(*) FROM transactions WHERE status IS NULL",
    ) > 0
    {
        assert!(
            !handle.is_finished(),
            "the monitor stopped on a malformed row"
        );
        assert!(Instant::now() < deadline, "monitor did not catch up");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!handle.is_finished(), "the monitor stopped");
    stop.store(true, Ordering::Relaxed);
    let stats = handle.join().unwrap().unwrap();
    assert_eq!(stats.errors, 4);
    let reason = |who: &str| status_and_first_reason(&conn, who);
    for (who, expected) in [
        ("BTEXT", "text \"abc\""),
        ("BREAL", "decimal 1234.5"),
        ("BNULL", "amount is missing"),
        ("BHUGE", "above the largest payment accepted"),
    ] {
        let (status, text) = reason(who);
        assert_eq!(status, "ERROR", "{who}");
        assert!(text.contains(expected), "{who}: {text}");
    }
    // The good rows released after the last bad one were scored normally.
    let last_bad: i64 = conn
        .query_row(
            "SELECT transaction_id FROM transactions WHERE beneficiary_id = 'BHUGE'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mark = aegis_core::store::monitor_mark(&mut aegis_core::sql::Sqlite(&conn))
        .unwrap()
        .unwrap_or(0);
    assert!(
        mark >= last_bad + 100,
        "rows after the last bad one were not scored"
    );
    assert_eq!(
        count(
            &fixture.db,
            "SELECT count(*) FROM transactions WHERE status = 'ERROR'"
        ),
        4
    );
}

#[test]
fn anomalies_carry_readable_reasons_with_a_category() {
    let fixture = fixture(12_000);
    monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false))).unwrap();
    let conn = rusqlite::Connection::open(&fixture.db).unwrap();
    let (category, text): (String, String) = conn
        .query_row(
            "SELECT json_extract(reasons, '$.category'), json_extract(reasons, '$.reasons[0].text') FROM transactions \
             WHERE status = 'ANOMALY' AND fraud_type = 'probe_amount' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(category, "amount");
    assert!(text.contains("% of the usual"), "{text}");
}

/// With a feedback stage, a running monitor that receives auditors' verdicts while it scores
/// gives every row the score a back-fill gives with every verdict known from the start, which
/// is what train computes: each row with the verdicts decided before its time. And the
/// verdicts do move scores.
#[test]
fn verdicts_arriving_mid_stream_score_as_if_known_from_the_start() {
    for engine in engines() {
        verdicts_arriving_mid_stream(engine);
    }
}

fn verdicts_arriving_mid_stream(engine: Engine) {
    use aegis_core::time::{DAY, parse_timestamp};
    let fixture = fixture_on(engine, 12_000);
    let rows: Vec<(i64, i64, bool)> = fixture
        .store
        .rows("SELECT transaction_id, timestamp, is_anomaly FROM transactions ORDER BY transaction_id")
        .into_iter()
        .map(|row| {
            (
                row[0].int().unwrap(),
                parse_timestamp(row[1].text().unwrap()).unwrap(),
                row[2].int() == Some(1),
            )
        })
        .collect();
    // Every labeled fraud confirmed and every 20th ordinary payment dismissed, two days later.
    let mut verdicts: Vec<(i64, &str, i64)> = rows
        .iter()
        .enumerate()
        .filter(|(index, row)| row.2 || index % 20 == 0)
        .map(|(_, &(id, time, fraud))| {
            let verdict = if fraud {
                "confirmed_fraud"
            } else {
                "dismissed"
            };
            (id, verdict, time + 2 * DAY)
        })
        .collect();
    verdicts.sort_by_key(|v| v.2);
    let without = fixture.store.copy("without");
    let live = fixture.store.copy("live");
    fixture.store.record_verdicts(&verdicts);
    // Whether the stage helps on 12,000 rows is train's question; this test needs one.
    train_model_without_choices(fixture.store.target.clone(), &fixture.modeling, 1);
    let model = aegis_core::artifacts::read_config(&fixture.modeling).unwrap();
    let report = aegis_core::artifacts::read_metrics(&fixture.modeling)
        .unwrap()
        .and_then(|metrics| metrics.feedback);
    assert!(
        model.feedback.is_some(),
        "enough verdicts for a feedback stage: {:?}",
        report.map(|r| r.note)
    );
    // A look, which 12,000 rows are too few to earn: the amount against the scheme's usual
    // raises the chance of fraud, a busy counter lowers it, so the look moves scores both
    // ways while the verdicts arrive.
    let mut model = model;
    if let Some(stage) = model.feedback.as_mut() {
        use aegis_core::feedback::{LOOK_INPUTS, Look, look_input_names};
        let names = look_input_names();
        let at = |name: &str| names.iter().position(|n| n == name).expect(name);
        let mut signed = vec![0.0; LOOK_INPUTS];
        signed[at("amount_vs_scheme_log")] = 0.8;
        let mut absolute = vec![0.0; LOOK_INPUTS];
        absolute[at("agent_payments_10min_log")] = -0.5;
        stage.look = Some(Look {
            share: 0.5,
            bias: stage.bias,
            score_weight: stage.score_weight,
            means: vec![0.0; LOOK_INPUTS],
            scales: vec![1.0; LOOK_INPUTS],
            signed,
            absolute,
            names,
        });
    }
    std::fs::write(
        fixture.modeling.join(aegis_core::artifacts::CONFIG_FILE),
        serde_json::to_string(&model).unwrap(),
    )
    .unwrap();

    // Every verdict known from the start.
    monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false))).unwrap();

    // Live: one monitor runs while rows come in chunks of about a day (shorter than the
    // verdicts' delay), and before each chunk the verdicts decided by its last payment are
    // recorded (all about payments already in).
    live.hold_back(6_000);
    let mut run = config(&fixture, false);
    run.db = live.target.clone();
    run.poll_interval = Duration::from_millis(5);
    run.checkpoint_dir = Some(fixture.dir.path().join("live-checkpoints"));
    let held: Vec<(i64, i64, bool)> = rows[rows.len() - 6_000..].to_vec();
    let mut recorded = verdicts.iter().take_while(|v| v.2 < held[0].1).count();
    live.record_verdicts(&verdicts[..recorded]);
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let stop = stop.clone();
        std::thread::spawn(move || monitor::run(&run, stop).unwrap())
    };
    let wait_for_mark = |mark: i64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while live.int("SELECT high_water_mark FROM monitor_state") < mark {
            assert!(Instant::now() < deadline, "{engine:?}: the monitor stalled");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for_mark(held[0].0 - 1);
    let mut chunks: Vec<&[(i64, i64, bool)]> = Vec::new();
    let mut rest = held.as_slice();
    while !rest.is_empty() {
        let end = rest.partition_point(|row| row.1 < rest[0].1 + DAY);
        chunks.push(&rest[..end]);
        rest = &rest[end..];
    }
    for chunk in chunks {
        let last = chunk.last().unwrap();
        let due = verdicts[recorded..]
            .iter()
            .take_while(|v| v.2 < last.1)
            .count();
        let due = &verdicts[recorded..recorded + due];
        assert!(
            due.iter().all(|v| v.0 < chunk[0].0),
            "a verdict about a row not yet in"
        );
        live.record_verdicts(due);
        recorded += due.len();
        live.put_back_through(last.0);
        wait_for_mark(last.0);
    }
    stop.store(true, Ordering::Relaxed);
    monitor.join().unwrap();
    assert_same_scores(&fixture.store, &live);

    // The same model with no verdicts at all scores some rows differently.
    let mut bare = config(&fixture, true);
    bare.db = without.target.clone();
    bare.checkpoint_dir = Some(fixture.dir.path().join("without-checkpoints"));
    monitor::run(&bare, Arc::new(AtomicBool::new(false))).unwrap();
    let (with, bare) = (scores(&fixture.store), scores(&without));
    let moved = with
        .iter()
        .zip(&bare)
        .filter(|(a, b)| (a.2 - b.2).abs() > 1e-3)
        .count();
    let lowered = with.iter().zip(&bare).filter(|(a, b)| a.2 < b.2).count();
    let chances = aegis_core::artifacts::read_metrics(&fixture.modeling)
        .unwrap()
        .and_then(|metrics| metrics.feedback)
        .map(|report| report.chances);
    assert!(
        moved >= 10,
        "{engine:?}: verdicts moved {moved} scores; the stage's chances: {chances:?}"
    );
    // The bare run weighs the same look: what moved is the evidence, and it only raises.
    assert_eq!(lowered, 0, "{engine:?}: evidence only raises a score");
}

/// A commit another writer holds up (here PostgreSQL's lock timeout on the monitor's own row;
/// on SQLite the busy timeout) is tried again with the same scores until it goes through: the
/// rows score once, as in a run nobody held up. Rebuilding the history instead held two whole
/// feature states at once.
#[test]
fn a_commit_another_writer_holds_up_is_tried_again_with_the_same_scores() {
    if aegis_core::pg::test_server().is_none() {
        return;
    }
    let fixture = fixture_on(Engine::Postgres, 6_000);
    let copy = fixture.store.copy("held");
    monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false))).unwrap();

    copy.hold_back(2_000);
    let mut split = config(&fixture, true);
    split.db = copy.target.clone();
    monitor::run(&split, Arc::new(AtomicBool::new(false))).unwrap();
    let aegis_core::engine::Target::Postgres(url) = copy.target.clone() else {
        unreachable!("a PostgreSQL fixture")
    };
    let separator = if url.contains('?') { '&' } else { '?' };
    split.db = aegis_core::engine::Target::Postgres(format!(
        "{url}{separator}options=-c%20lock_timeout%3D100ms"
    ));
    let mut holder = aegis_core::pg::connect(&url).unwrap();
    let mut holding = holder.transaction().unwrap();
    holding
        .query("SELECT * FROM monitor_state FOR UPDATE", &[])
        .unwrap();
    copy.put_back();
    let monitor =
        std::thread::spawn(move || monitor::run(&split, Arc::new(AtomicBool::new(false))));
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(
        !monitor.is_finished(),
        "the monitor gave up on a held-up commit"
    );
    holding.commit().unwrap();
    let stats = monitor.join().unwrap().unwrap();
    assert_eq!(stats.scored, 2_000, "each row counted once");
    assert_same_scores(&fixture.store, &copy);
}

/// PostgreSQL ending the monitor's connection (a restart of the server, an administrator)
/// does not stop the monitor: it connects again, as a restart would, and every row is scored
/// once, as in a run nobody interrupted.
#[test]
fn the_monitor_connects_again_when_postgresql_ends_its_session() {
    if aegis_core::pg::test_server().is_none() {
        return;
    }
    let fixture = fixture_on(Engine::Postgres, 6_000);
    let copy = fixture.store.copy("cut");
    monitor::run(&config(&fixture, true), Arc::new(AtomicBool::new(false))).unwrap();

    copy.hold_back(3_000);
    let mut live = config(&fixture, false);
    live.db = copy.target.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || monitor::run(&live, stop))
    };
    let aegis_core::engine::Target::Postgres(url) = copy.target.clone() else {
        unreachable!("a PostgreSQL fixture")
    };
    let mut admin = aegis_core::pg::connect(&url).unwrap();
    let scored = |count: i64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while copy.int("SELECT coalesce(max(high_water_mark), 0) FROM monitor_state") < count {
            assert!(!monitor.is_finished(), "the monitor stopped");
            assert!(Instant::now() < deadline, "the monitor did not catch up");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    scored(3_000);
    let ended: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name LIKE 'aegis monitor%' AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 1);
    copy.put_back();
    scored(6_000);
    stop.store(true, Ordering::Relaxed);
    let stats = monitor.join().unwrap().unwrap();
    assert_eq!(stats.scored, 6_000, "each row counted once");
    assert_same_scores(&fixture.store, &copy);
}

/// Payments an operator deletes while the monitor scores them (a bad import taken out) keep
/// no score and no alert: the commit leaves out what was deleted after the batch was read.
#[test]
fn payments_deleted_while_being_scored_keep_no_score_and_no_alert() {
    for engine in engines() {
        let fixture = fixture_on(engine, 2_000);
        let db = &fixture.store;
        let mut journal = monitor::journal::Journal::open(&db.target).unwrap();
        let rows = journal.next_batch(0, 10).unwrap().unwrap();
        assert_eq!(rows.len(), 10);
        db.batch("DELETE FROM {events} WHERE transaction_id IN (5, 6)");
        let outcomes = rows
            .iter()
            .map(|row| monitor::journal::Outcome {
                transaction_id: row.transaction_id,
                status: "ANOMALY",
                score: Some(0.9),
                reasons: Some("{}".to_string()),
                timestamp: row.stored_timestamp.clone(),
            })
            .collect();
        let alerts = rows
            .iter()
            .filter(|row| [5, 7].contains(&row.transaction_id))
            .map(|row| {
                let payment = row.payment.as_ref().unwrap();
                aegis_core::incidents::AlertToLink {
                    transaction_id: row.transaction_id,
                    time: payment.time,
                    beneficiary_id: &payment.beneficiary_id,
                    account_id: payment.account_id.as_deref(),
                    agent_id: payment.agent_id.as_deref(),
                    score: 0.9,
                    amount_paise: payment.amount_paise,
                    category: None,
                }
            })
            .collect();
        journal
            .commit(&monitor::journal::ScoredBatch {
                outcomes,
                alerts,
                first_id: 1,
                mark: 10,
                model_version: "m-test",
                scored_at: 1,
                feature_days: Default::default(),
            })
            .unwrap();
        let scores = match engine {
            Engine::Sqlite => "SELECT count(*) FROM transactions WHERE status = 'ANOMALY'",
            Engine::Postgres => "SELECT count(*) FROM transaction_scores",
        };
        assert_eq!(db.int(scores), 8, "{engine:?}");
        assert_eq!(
            db.int("SELECT count(*) FROM incident_alerts WHERE transaction_id IN (5, 7)"),
            1,
            "{engine:?}: only the payment still there"
        );
        assert_eq!(db.int("SELECT high_water_mark FROM monitor_state"), 10);
    }
}
