//! Integration tests of `simulate`: labels agree with event times, every fraud type is fed, a
//! compromised counter follows collusion there and diverts every ordinary payment made there,
//! replay keeps event-time order, and a stop never leaves half a batch.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use aegis_core::domain::FraudType;
use aegis_core::engine::Target;
use aegis_core::pg::ScratchDatabase;
use aegis_core::sql::Value;
use aegis_core::time::{
    DAY, HOUR, ist_day_start, ist_seconds_of_day, ist_weekday, parse_timestamp,
};
use simulate::SimulateConfig;

fn population(dir: &std::path::Path) -> std::path::PathBuf {
    let db = dir.join("t.db");
    generate::run(generate::RunConfig::synthetic(&db, 8_000, 3, 60, 0.01)).unwrap();
    db
}

fn config(db: &std::path::Path) -> SimulateConfig {
    SimulateConfig {
        db: db.into(),
        rate: 4_000.0,
        speed: 600.0,
        fraud_rate: 0.2,
        count: Some(6_000),
        duration: Some(Duration::from_secs(30)),
        seed: 9,
        start: None,
        replay: None,
        commit_interval: Duration::from_millis(20),
        api: None,
    }
}

/// The SQLite file, and a scratch PostgreSQL database when a test server is configured (it
/// must be in CI), each with a generated population.
fn populations(dir: &std::path::Path) -> Vec<(Target, Option<ScratchDatabase>)> {
    let mut targets = vec![(Target::Sqlite(population(dir)), None)];
    if let Some(server) = aegis_core::pg::test_server() {
        let scratch = ScratchDatabase::create(&server, "simulate").unwrap();
        let target = Target::Postgres(scratch.url().to_string());
        generate::run(generate::RunConfig::synthetic(
            target.clone(),
            8_000,
            3,
            60,
            0.01,
        ))
        .unwrap();
        targets.push((target, Some(scratch)));
    }
    targets
}

#[test]
fn simulated_labels_agree_with_event_times_and_every_type_is_fed() {
    let dir = tempfile::tempdir().unwrap();
    for (target, _scratch) in populations(dir.path()) {
        labels_agree_and_every_type_is_fed(target);
    }
}

fn labels_agree_and_every_type_is_fed(target: Target) {
    let query = |sql: &str, params: &[Value]| {
        target
            .open()
            .unwrap()
            .read(|db| db.query(sql, params))
            .unwrap()
    };
    let before = query("SELECT max(transaction_id) FROM transactions", &[])[0][0]
        .int()
        .unwrap();
    let config = SimulateConfig {
        db: target.clone(),
        ..config(std::path::Path::new("unused"))
    };
    let stats = simulate::run(&config, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(stats.inserted, 6_000);
    let rows: Vec<(String, i64, Option<String>, String)> = query(
        "SELECT timestamp, is_anomaly, fraud_type, agent_id FROM transactions \
         WHERE transaction_id > ?1 ORDER BY transaction_id",
        &[before.into()],
    )
    .into_iter()
    .map(|row| {
        (
            row[0].text().unwrap().to_string(),
            row[1].int().unwrap(),
            row[2].text().map(str::to_string),
            row[3].text().unwrap().to_string(),
        )
    })
    .collect();
    assert_eq!(rows.len(), 6_000, "{target}");
    let mut kinds = std::collections::BTreeSet::new();
    for (timestamp, is_anomaly, fraud_type, _) in &rows {
        let time = parse_timestamp(timestamp).unwrap();
        let seconds = ist_seconds_of_day(time);
        match fraud_type.as_deref() {
            Some("off_hours") => assert!(seconds < 5 * HOUR, "off-hours fraud at {timestamp}"),
            Some(_) => {}
            None => {
                assert_eq!(*is_anomaly, 0);
                assert!(
                    (8 * HOUR..20 * HOUR + 1800).contains(&seconds),
                    "normal payment at {timestamp}"
                );
                assert_ne!(
                    ist_weekday(time),
                    6,
                    "normal payment on a Sunday: {timestamp}"
                );
            }
        }
        if let Some(kind) = fraud_type {
            assert_eq!(*is_anomaly, 1);
            kinds.insert(kind.clone());
        }
    }
    assert_eq!(
        kinds.len(),
        FraudType::ALL.len(),
        "{target}: fed fraud types: {kinds:?}"
    );

    // A compromised counter follows a collusion incident the feed started there: its first
    // diverted payment comes 8–10 days after the incident's day (IST), or at the counter's
    // first payment after that, and every ordinary payment the feed makes there from then
    // through a stretch of three weeks at most is diverted.
    let time = |timestamp: &str| parse_timestamp(timestamp).unwrap();
    let code = FraudType::CompromisedCounter.code();
    let mut stretches: std::collections::BTreeMap<&str, (i64, i64, usize)> = Default::default();
    for (timestamp, _, fraud_type, agent) in &rows {
        if fraud_type.as_deref() == Some(code) {
            let at = time(timestamp);
            let entry = stretches.entry(agent.as_str()).or_insert((at, at, 0));
            entry.0 = entry.0.min(at);
            entry.1 = entry.1.max(at);
            entry.2 += 1;
        }
    }
    assert!(
        stretches.values().any(|&(_, _, count)| count > 1),
        "{target}: a compromise diverts more than one payment: {stretches:?}"
    );
    let mut soon = 0;
    for (agent, &(first, last, count)) in &stretches {
        let days = (last - first) as f64 / DAY as f64;
        assert!(
            days < 21.0,
            "{target}: {agent}: {count} payments diverted over {days:.1} days"
        );
        let first_day = ist_day_start(first);
        let collusion = rows
            .iter()
            .filter(|(_, _, fraud_type, at)| {
                at == agent && fraud_type.as_deref() == Some("agent_collusion")
            })
            .map(|(timestamp, ..)| ist_day_start(time(timestamp)))
            .filter(|&day| first_day - day >= 8 * DAY)
            .max();
        let Some(collusion) = collusion else {
            panic!(
                "{target}: {agent} is compromised, yet no collusion was fed there 8 days before"
            );
        };
        let after = (first_day - collusion) / DAY;
        assert!(
            after < 31,
            "{target}: {agent}: the first payment diverted {after} days after the collusion"
        );
        if after <= 14 {
            soon += 1;
        }
        let ordinary: Vec<&String> = rows
            .iter()
            .filter(|(timestamp, is_anomaly, _, at)| {
                at == agent
                    && *is_anomaly == 0
                    && (collusion + 10 * DAY..=last).contains(&time(timestamp))
            })
            .map(|(timestamp, ..)| timestamp)
            .collect();
        assert!(
            ordinary.is_empty(),
            "{target}: {agent} is compromised, yet paid ordinary payments at {ordinary:?}"
        );
    }
    // Most counters divert a payment within the first days of their compromise; a quiet one
    // may pay nobody for a week or two.
    assert!(
        2 * soon >= stretches.len(),
        "{target}: first diverted payments long after the collusion: {stretches:?}"
    );
}

/// Where the feed meets the generated history, it must not pay an instalment the generator
/// already paid: such a row repeats a payment within days, the monitor rightly flags it as a
/// duplicate, and a "normal" label on it would count a true alert as a false one.
#[test]
fn no_payment_labeled_normal_repeats_a_recent_instalment() {
    let dir = tempfile::tempdir().unwrap();
    let db = population(dir.path());
    let before: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT max(transaction_id) FROM transactions", [], |r| {
            r.get(0)
        })
        .unwrap();
    let mut feed = config(&db);
    feed.fraud_rate = 0.0;
    feed.count = Some(20_000);
    simulate::run(&feed, Arc::new(AtomicBool::new(false))).unwrap();
    let window = simulate::feed::DUPLICATE_WINDOW;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let repeats: Vec<(i64, String, String)> = conn
        .prepare(
            "SELECT new.transaction_id, new.beneficiary_id, new.timestamp FROM transactions new \
             JOIN transactions old ON old.beneficiary_id = new.beneficiary_id \
               AND old.scheme = new.scheme AND old.amount_paise = new.amount_paise \
               AND old.transaction_id <> new.transaction_id \
               AND old.timestamp <= new.timestamp \
               AND unixepoch(new.timestamp) - unixepoch(old.timestamp) < ?2 \
             WHERE new.transaction_id > ?1 AND new.is_anomaly = 0 \
               AND (old.timestamp < new.timestamp OR old.transaction_id < new.transaction_id) \
             LIMIT 5",
        )
        .unwrap()
        .query_map([before, window], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        repeats.is_empty(),
        "normal rows repeating an instalment: {repeats:?}"
    );
}

#[test]
fn replay_inserts_an_export_in_event_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("export.csv");
    std::fs::write(
        &csv,
        "beneficiary_id,amount,timestamp,scheme\n\
         B3,300,2025-03-03 12:00:00,PM-KISAN\n\
         B1,100,2025-03-03 10:00:00,PM-KISAN\n\
         B4,400,2025-03-03T07:30:01Z,PM-KISAN\n\
         B2,200,2025-03-03 11:00:00,PM-KISAN\n",
    )
    .unwrap();
    let db = dir.path().join("replay.db");
    let mut replay = config(&db);
    replay.replay = Some(csv);
    replay.speed = 1e9;
    replay.count = None;
    let stats = simulate::run(&replay, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(stats.inserted, 4);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut statement = conn
        .prepare("SELECT beneficiary_id FROM transactions ORDER BY transaction_id")
        .unwrap();
    let order: Vec<String> = statement
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(order, ["B1", "B2", "B3", "B4"]);
}

/// A replay skips the payments already stored (a file replayed twice) but refuses a ref that
/// names another payment, stored or earlier in the file, naming both.
#[test]
fn a_replay_refuses_a_ref_on_a_different_payment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("replay.db");
    let replay = |body: &str, name: &str| {
        let csv = dir.path().join(name);
        std::fs::write(
            &csv,
            format!("transaction_ref,beneficiary_id,amount,timestamp,scheme\n{body}"),
        )
        .unwrap();
        let mut replay = config(&db);
        replay.replay = Some(csv);
        replay.speed = 1e9;
        replay.count = None;
        simulate::run(&replay, Arc::new(AtomicBool::new(false)))
    };
    let first = "R1,B1,100,2025-03-03 10:00:00,PM-KISAN\n";
    assert_eq!(replay(first, "one.csv").unwrap().inserted, 1);
    assert_eq!(
        replay(first, "again.csv").unwrap().inserted,
        0,
        "already stored"
    );
    let corrected = replay("R1,B1,150,2025-03-03 10:00:00,PM-KISAN\n", "corrected.csv")
        .unwrap_err()
        .to_string();
    assert!(
        corrected.contains("\"R1\" is already stored for a different payment"),
        "{corrected}"
    );
    let twice = replay(
        "R2,B2,100,2025-03-04 10:00:00,PM-KISAN\nR2,B2,200,2025-03-04 10:00:00,PM-KISAN\n",
        "twice.csv",
    )
    .unwrap_err()
    .to_string();
    assert!(twice.contains("earlier in the file"), "{twice}");
}

#[test]
fn a_database_without_a_population_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    let message = simulate::run(&config(&db), Arc::new(AtomicBool::new(false)))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("cargo run -p generate") && message.contains("--replay"),
        "{message}"
    );
}

#[test]
fn a_stop_request_ends_the_feed_with_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = population(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let mut endless = config(&db);
    endless.count = None;
    endless.fraud_rate = 0.0;
    let handle = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || simulate::run(&endless, stop))
    };
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stats = handle.join().unwrap().unwrap();
    assert!(stats.inserted > 0);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let fed: i64 = conn
        .query_row(
            "SELECT count(*) FROM transactions WHERE transaction_id > 8000",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        fed as u64, stats.inserted,
        "every generated row was committed, none half-way"
    );
}

/// A feed fast enough to outrun the calendar (it pays on the schemes' calendars ahead of its
/// clock) goes on writing directly: the soak's and a long demo's data run on their own
/// calendar. (Through the payments API, which refuses such payments, it stops with advice.)
#[test]
fn a_direct_feed_that_outruns_the_calendar_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = population(dir.path());
    let today = aegis_core::time::ist_day_start(aegis_core::time::now());
    let config = SimulateConfig {
        speed: 200_000.0,
        count: Some(3_000),
        start: Some(today),
        ..config(&db)
    };
    let stats = simulate::run(&config, Arc::new(AtomicBool::new(false))).unwrap();
    assert_eq!(stats.inserted, 3_000);
}
