//! Integration tests of `generate`: determinism, fraud types, geography, overwrite refusal and
//! CSV import.

mod card;
mod helpers;
mod messy;

use std::collections::HashMap;

use aegis_core::domain::{FraudType, NewTransaction};
use aegis_core::geo::{haversine_km, is_in_india};
use aegis_core::time::{DAY, HOUR, ist_day_start, ist_seconds_of_day, parse_timestamp};
use generate::catalogue::{DISTRICTS, STATES, SchemeKind};
use generate::import::ImportMode;
use generate::world::World;
use generate::{GenerateConfig, Generated, synthesize};

use crate::helpers::{Row, config, count_rows, each_engine, read_rows, run_config, write_csv};

#[test]
fn same_seed_gives_identical_data_and_another_seed_does_not() {
    let first = synthesize(&config(6_000, 3));
    let second = synthesize(&config(6_000, 3));
    let other = synthesize(&config(6_000, 4));
    assert_eq!(first.transactions.len(), 6_000);
    assert_eq!(first.transactions, second.transactions);
    assert_ne!(first.transactions, other.transactions);
}

/// `generate --rows 2000` (a year by default) once searched for ever for a district with the
/// dozen beneficiaries a collusion needs.
#[test]
fn a_small_world_spread_over_a_year_still_finishes() {
    let generated = synthesize(&GenerateConfig {
        days: 365,
        ..config(2_000, 7)
    });
    assert!(generated.transactions.len() >= 2_000);
}

#[test]
fn same_seed_gives_identical_database_files_content() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.db");
    let b = dir.path().join("b.db");
    generate::run(run_config(&a, 3_000, 9)).unwrap();
    generate::run(run_config(&b, 3_000, 9)).unwrap();
    let strip = |rows: Vec<Row>| {
        rows.into_iter()
            .map(|r| {
                (
                    r.id,
                    r.beneficiary,
                    r.account,
                    r.agent,
                    r.scheme,
                    r.paise,
                    r.timestamp,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(read_rows(&a)), strip(read_rows(&b)));
}

#[test]
fn every_fraud_type_is_present_with_its_defining_property() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut run = run_config(&path, 60_000, 5);
    run.generate.fraud_rate = 0.02;
    run.generate.days = 200;
    generate::run(run).unwrap();
    let rows = read_rows(&path);
    let homes = helpers::homes(&path);
    let time = |row: &Row| parse_timestamp(&row.timestamp).unwrap();

    let mut by_type: HashMap<String, Vec<&Row>> = HashMap::new();
    for row in rows.iter().filter(|r| r.is_anomaly == Some(1)) {
        by_type
            .entry(row.fraud_type.clone().unwrap())
            .or_default()
            .push(row);
    }
    for kind in FraudType::ALL {
        let count = by_type.get(kind.code()).map_or(0, Vec::len);
        // Compromised counters follow the collusion incidents (five here), and a counter of
        // this small world takes about two payments a day: a compromise of one to three weeks
        // diverts a dozen or two, and all five fall short of the quota (133).
        let least = if kind == FraudType::CompromisedCounter {
            50
        } else {
            100
        };
        assert!(count >= least, "{} has only {count} rows", kind.code());
    }
    let normal_min: HashMap<(String, String), i64> = rows
        .iter()
        .filter(|r| r.is_anomaly == Some(0))
        .fold(HashMap::new(), |mut map, r| {
            let entry = map
                .entry((r.beneficiary.clone(), r.scheme.clone()))
                .or_insert(i64::MAX);
            *entry = (*entry).min(r.paise);
            map
        });
    let mut by_beneficiary: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in &rows {
        by_beneficiary
            .entry(row.beneficiary.as_str())
            .or_default()
            .push(row);
    }

    for row in &by_type["inflated_amount"] {
        if let Some(min) = normal_min.get(&(row.beneficiary.clone(), row.scheme.clone())) {
            assert!(
                row.paise as f64 >= 4.9 * *min as f64,
                "inflated {} vs usual {min}",
                row.paise
            );
        }
    }
    assert!(by_type["probe_amount"].iter().all(|r| r.paise <= 1_000));
    assert!(
        by_type["off_hours"]
            .iter()
            .all(|r| ist_seconds_of_day(time(r)) < 5 * HOUR)
    );
    for row in &by_type["far_from_home"] {
        let point = (row.latitude.unwrap(), row.longitude.unwrap());
        let home = homes[&row.beneficiary];
        assert!(
            !is_in_india(point) || haversine_km(point, home) > 500.0,
            "{point:?} is near home {home:?}"
        );
        // On land: in India, or at one of the foreign cities, never at sea.
        let abroad_in_a_city = generate::catalogue::FOREIGN_PLACES
            .iter()
            .any(|(_, lat, lon)| haversine_km(point, (*lat, *lon)) < 5.0);
        assert!(
            is_in_india(point) || abroad_in_a_city,
            "far-from-home point {point:?} is neither in India nor at a foreign city"
        );
    }
    for row in rows
        .iter()
        .filter(|r| r.fraud_type.as_deref() != Some("far_from_home"))
    {
        if let (Some(lat), Some(lon)) = (row.latitude, row.longitude) {
            assert!(
                is_in_india((lat, lon)),
                "row {} at {lat},{lon} is outside India",
                row.id
            );
        }
    }
    for row in &by_type["duplicate_payment"] {
        let original = by_beneficiary[row.beneficiary.as_str()]
            .iter()
            .any(|other| {
                let gap = time(row) - time(other);
                other.id != row.id
                    && other.scheme == row.scheme
                    && other.paise == row.paise
                    && (0..6 * 86_400 + 86_400).contains(&gap)
            });
        assert!(
            original,
            "duplicate {} repeats no earlier instalment",
            row.id
        );
    }
    for row in &by_type["burst"] {
        let earlier = by_beneficiary[row.beneficiary.as_str()]
            .iter()
            .filter(|other| other.id != row.id && (0..HOUR).contains(&(time(row) - time(other))))
            .count();
        assert!(
            earlier >= 1,
            "burst row {} has no payment to the same person in the hour before",
            row.id
        );
    }
    let mut ring_accounts: HashMap<&str, std::collections::HashSet<&str>> = HashMap::new();
    for row in &by_type["shared_account_ring"] {
        ring_accounts
            .entry(row.account.as_deref().unwrap())
            .or_default()
            .insert(&row.beneficiary);
    }
    assert!(
        ring_accounts.values().all(|people| people.len() >= 3),
        "every ring account pays several beneficiaries"
    );
    let mut agents: HashMap<&str, Vec<i64>> = HashMap::new();
    for row in &by_type["agent_collusion"] {
        agents
            .entry(row.agent.as_deref().unwrap())
            .or_default()
            .push(time(row));
    }
    for times in agents.values() {
        let busiest = times
            .iter()
            .map(|t| {
                times
                    .iter()
                    .filter(|u| (0..45 * 60).contains(&(*u - t)))
                    .count()
            })
            .max()
            .unwrap();
        assert!(
            busiest >= 10,
            "a colluding agent pays many beneficiaries within 45 minutes ({busiest})"
        );
    }
    // The types that are not visible in the row look normal row by row: business hours,
    // ordinary amounts.
    for kind in [
        "duplicate_payment",
        "burst",
        "shared_account_ring",
        "agent_collusion",
        "compromised_counter",
    ] {
        for row in &by_type[kind] {
            let seconds = ist_seconds_of_day(time(row));
            assert!(
                (8 * HOUR..21 * HOUR).contains(&seconds),
                "{kind} row {} at night",
                row.id
            );
            assert!(
                row.paise >= 50_000,
                "{kind} row {} has a probe-like amount",
                row.id
            );
        }
    }
}

/// Whether `row` pays the amount its beneficiary is entitled to for its scheme (what the
/// calendar pays; a fraud that changes the amount does not).
fn entitled(world: &World, people: &HashMap<&str, usize>, row: &NewTransaction) -> bool {
    let person = &world.beneficiaries[people[row.beneficiary_id.as_str()]];
    let state = &STATES[DISTRICTS[person.district].state];
    let rupees = row.amount_paise / 100;
    row.amount_paise % 100 == 0
        && match SchemeKind::from_code(&row.scheme) {
            Some(SchemeKind::PmKisan) => rupees == 2_000,
            // 3–6 days of work a week, paid weekly or fortnightly.
            Some(SchemeKind::Mgnrega) => {
                rupees % state.mgnrega_daily_wage == 0
                    && (3..=12).contains(&(rupees / state.mgnrega_daily_wage))
            }
            Some(SchemeKind::OldAgePension) => rupees == state.monthly_pension,
            Some(SchemeKind::Scholarship) => rupees == person.scholarship_rupees,
            Some(SchemeKind::Housing) => {
                let total = if state.hill_state { 130_000 } else { 120_000 };
                [40, 50, 10]
                    .iter()
                    .any(|share| rupees == total * share / 100)
            }
            None => false,
        }
}

/// `compromised_counter` follows a fraud auditors can see: a few counters where collusion was
/// caught, each diverting every payment made there (but those another fraud used) for one
/// stretch of 7–21 days from 8–10 days after the collusion's day, each row exactly the
/// ordinary payment it was (the entitled amount, at the counter, in business hours). A type
/// that labels scattered rows, a stretch with holes, changed rows, a counter nothing was
/// confirmed at before, or weeks no verdict on the collusion still reaches fails.
#[test]
fn a_compromised_counter_diverts_every_ordinary_payment_there_for_weeks() {
    // A fraud rate high enough for half a dozen collusion incidents, so the quota does not
    // hang on the traffic of two or three counters.
    let world = GenerateConfig {
        fraud_rate: 0.05,
        ..config(30_000, 5)
    };
    let per_type = (world.rows as f64 * world.fraud_rate) as usize / FraudType::ALL.len();
    let stretches = compromised_stretches(&synthesize(&world));
    let total: usize = stretches.values().map(|stretch| stretch.2).sum();
    assert!(
        (3..=10).contains(&stretches.len()),
        "a few counters: {stretches:?}"
    );
    assert!(
        (per_type / 2..=2 * per_type).contains(&total),
        "about {per_type} rows: {total}"
    );
    // Most counters divert a payment within the first days of their compromise; a quiet one
    // may pay nobody for a week or two after the collusion.
    let soon = stretches
        .values()
        .filter(|stretch| (8..=14).contains(&stretch.3))
        .count();
    assert!(
        2 * soon >= stretches.len(),
        "days from the collusion to the first diverted payment: {stretches:?}"
    );
}

/// Checks the compromised counters of `generated` (see above) and returns, per counter, its
/// first and last diverted payment, how many it diverted, and how many days after the day of
/// the collusion before it (IST days) the first came.
fn compromised_stretches(generated: &Generated) -> HashMap<String, (i64, i64, usize, i64)> {
    let world = &generated.world;
    let rows = &generated.transactions;
    let people: HashMap<&str, usize> = world
        .beneficiaries
        .iter()
        .enumerate()
        .map(|(index, person)| (person.id.as_str(), index))
        .collect();
    let counters: HashMap<&str, usize> = world
        .agents
        .iter()
        .enumerate()
        .map(|(index, agent)| (agent.id.as_str(), index))
        .collect();
    let code = FraudType::CompromisedCounter.code();
    let mut stretches: HashMap<String, (i64, i64, usize, i64)> = HashMap::new();
    for row in rows
        .iter()
        .filter(|r| r.fraud_type.as_deref() == Some(code))
    {
        assert_eq!(row.is_anomaly, Some(true));
        assert!(
            entitled(world, &people, row),
            "not an entitled amount: {row:?}"
        );
        let agent = row.agent_id.clone().unwrap();
        let counter = world.agents[counters[agent.as_str()]].location;
        let place = (row.latitude.unwrap(), row.longitude.unwrap());
        assert!(
            haversine_km(place, counter) < 15.0,
            "a diverted payment is made at its counter: {row:?}"
        );
        let seconds = ist_seconds_of_day(row.time);
        assert!(
            (8 * HOUR..21 * HOUR).contains(&seconds),
            "a diverted payment is made in business hours: {row:?}"
        );
        let stretch = stretches.entry(agent).or_insert((row.time, row.time, 0, 0));
        stretch.0 = stretch.0.min(row.time);
        stretch.1 = stretch.1.max(row.time);
        stretch.2 += 1;
    }
    // The original of a duplicate or a burst, left unlabeled while its copies are frauds.
    let repeated = |row: &NewTransaction| {
        rows.iter().any(|other| {
            matches!(
                other.fraud_type.as_deref(),
                Some("duplicate_payment" | "burst")
            ) && other.beneficiary_id == row.beneficiary_id
                && other.scheme == row.scheme
                && other.amount_paise == row.amount_paise
                && (1..8 * DAY).contains(&(other.time - row.time))
        })
    };
    for (agent, stretch) in &mut stretches {
        let (first, last, count, _) = *stretch;
        let days = (last - first) as f64 / DAY as f64;
        assert!(
            days < 21.0,
            "{agent}: {count} payments diverted over {days:.1} days"
        );
        // The compromise follows collusion at the same counter: its first diverted payment
        // comes 8–10 days after the collusion's day, or at the counter's first payment after
        // that (a quiet counter may have none for days; checked below).
        let first_day = ist_day_start(first);
        let collusion = rows
            .iter()
            .filter(|r| {
                r.agent_id.as_ref() == Some(agent)
                    && r.fraud_type.as_deref() == Some("agent_collusion")
            })
            .map(|r| ist_day_start(r.time))
            .filter(|&day| first_day - day >= 8 * DAY)
            .max();
        let Some(collusion) = collusion else {
            panic!("{agent} is compromised, yet no collusion was there 8 days before {first}");
        };
        stretch.3 = (first_day - collusion) / DAY;
        // Within the compromise, which starts by the tenth day and lasts three weeks at most.
        assert!(
            stretch.3 < 31,
            "{agent}: the first payment diverted {} days after the collusion",
            stretch.3
        );
        // Nothing paid there from 10 days after the collusion's day through the stretch is
        // left ordinary, and the ordinary payments on either side of the stretch are more than
        // a week apart: the compromise lies between them.
        let ordinary: Vec<i64> = rows
            .iter()
            .filter(|r| {
                r.agent_id.as_ref() == Some(agent) && r.is_anomaly == Some(false) && !repeated(r)
            })
            .map(|r| r.time)
            .collect();
        assert!(
            !ordinary
                .iter()
                .any(|time| (collusion + 10 * DAY..=last).contains(time)),
            "{agent} is compromised, yet a payment there in the stretch is not labeled"
        );
        let before = ordinary.iter().filter(|&&time| time < first).max();
        let after = ordinary.iter().filter(|&&time| time > last).min();
        if let (Some(before), Some(after)) = (before, after) {
            let days = (after - before) as f64 / DAY as f64;
            assert!(
                days > 7.0,
                "{agent}: {count} payments diverted between ordinary ones {days:.1} days apart"
            );
        }
    }
    stretches
}

/// Tiny worlds, short or long, with a high fraud rate: the compromised counters, like the
/// rings and the collusion, give up rather than search for ever or index out of range. Those
/// there are (the last world has a few) follow collusion at their counter: a world without
/// a collusion incident has none.
#[test]
fn tiny_worlds_finish_with_every_fraud_type_bounded() {
    for (rows, days) in [(30, 7), (120, 30), (400, 365), (1_500, 3), (3_000, 60)] {
        let generated = synthesize(&GenerateConfig {
            days,
            fraud_rate: 0.5,
            ..config(rows, 2)
        });
        assert!(
            generated.transactions.len() >= rows,
            "{rows} rows over {days} days"
        );
        compromised_stretches(&generated);
    }
}

#[test]
fn normal_rows_are_paid_in_india_and_never_at_sea() {
    let generated = synthesize(&config(20_000, 8));
    for transaction in generated
        .transactions
        .iter()
        .filter(|t| t.is_anomaly == Some(false))
    {
        let point = (
            transaction.latitude.unwrap(),
            transaction.longitude.unwrap(),
        );
        assert!(is_in_india(point), "normal payment at {point:?}");
    }
}

/// A window shorter than a week may hold no pay day (a single Sunday): refused at once, where
/// generating would add beneficiaries without end.
#[test]
fn a_window_shorter_than_a_week_is_refused() {
    for db in each_engine("short") {
        let mut short = run_config(db.target.clone(), 1_000, 1);
        short.generate.days = 1;
        let message = generate::run(short).unwrap_err().to_string();
        assert!(message.contains("--days 1 is too short"), "{message}");
    }
}

#[test]
fn an_existing_database_is_not_overwritten_without_force() {
    for db in each_engine("overwrite") {
        let path = &db.target;
        generate::run(run_config(path.clone(), 2_000, 1)).unwrap();
        let message = generate::run(run_config(path.clone(), 500, 2))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("already holds 2000 transactions") && message.contains("--force"),
            "{path}: {message}"
        );
        assert_eq!(count_rows(path.clone()), 2_000);
        let mut forced = run_config(path.clone(), 500, 2);
        forced.force = true;
        // Not while a monitor scores the database: it would never score the new rows.
        {
            let _monitor = hold_monitor_lock(path);
            let message = generate::run(forced.clone()).unwrap_err().to_string();
            assert!(
                message.contains("a monitor is scoring") && message.contains("stop it first"),
                "{path}: {message}"
            );
            assert_eq!(count_rows(path.clone()), 2_000, "{path}: nothing replaced");
        }
        generate::run(forced).unwrap();
        assert_eq!(count_rows(path.clone()), 500, "{path}");
        assert_eq!(read_rows(path.clone())[0].id, 1, "{path}: ids start again");
    }
}

#[test]
fn both_engines_store_the_same_generated_rows_and_registry() {
    let dbs = each_engine("same");
    for db in &dbs {
        generate::run(run_config(db.target.clone(), 3_000, 9)).unwrap();
    }
    let first = read_rows(dbs[0].target.clone());
    assert_eq!(first.len(), 3_000);
    for db in &dbs[1..] {
        let rows = read_rows(db.target.clone());
        assert_eq!(format!("{first:?}"), format!("{rows:?}"), "{}", db.target);
        assert_eq!(
            helpers::homes(dbs[0].target.clone()),
            helpers::homes(db.target.clone())
        );
    }
}

/// Holds what a running monitor holds on `target` (its lock file, or its advisory lock) until
/// dropped.
enum MonitorHold {
    File(#[allow(dead_code)] std::fs::File),
    Session(#[allow(dead_code)] aegis_core::engine::Store),
}

fn hold_monitor_lock(target: &aegis_core::engine::Target) -> MonitorHold {
    use aegis_core::engine::{Store, Target};
    match target {
        Target::Sqlite(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(aegis_core::engine::monitor_lock_path(path))
                .unwrap();
            file.lock().unwrap();
            MonitorHold::File(file)
        }
        Target::Postgres(_) => {
            let mut store = target.open().unwrap();
            if let Store::Postgres(client) = &mut store {
                client
                    .execute(
                        "SELECT pg_advisory_lock($1)",
                        &[&aegis_core::pg::MONITOR_LOCK],
                    )
                    .unwrap();
            }
            MonitorHold::Session(store)
        }
    }
}

fn open_store(db: &helpers::TestDb) -> aegis_core::engine::Store {
    db.target.open().unwrap()
}

const GOOD_CSV: &str = "Beneficiary_ID,amount,timestamp,scheme,latitude,longitude,unexpected\n\
    B1,2000,2025-03-03 10:00:00,PM-KISAN,26.85,80.95,x\n\
    B2,1234.50,2025-03-03T04:30:00Z,MGNREGA,,,y\n\
    \"B,3\",\"1,500\",2025-03-04 11:00:00,NSAP-OAP,25.0,82.0,z\n";

#[test]
fn a_good_csv_is_imported_with_exact_amounts_and_unknown_columns_reported() {
    for db in each_engine("goodcsv") {
        let csv = write_csv(db.dir.path(), "good.csv", GOOD_CSV);
        let report =
            generate::import::import_csv(&mut open_store(&db), &csv, false, ImportMode::Fresh)
                .unwrap();
        assert_eq!(report.imported, 3);
        assert_eq!(report.unknown_columns, vec!["unexpected".to_string()]);
        let rows = read_rows(db.target.clone());
        assert_eq!(
            rows.iter().map(|r| r.paise).collect::<Vec<_>>(),
            vec![200_000, 123_450, 150_000],
            "{}",
            db.target
        );
        assert_eq!(
            rows[1].timestamp, "2025-03-03 10:00:00",
            "RFC 3339 is stored as IST"
        );
        assert_eq!(rows[2].beneficiary, "B,3");
        assert_eq!(rows[1].latitude, None);
    }
}

#[test]
fn bad_rows_are_named_by_line_and_nothing_is_imported() {
    for db in each_engine("badcsv") {
        let csv = write_csv(
            db.dir.path(),
            "bad.csv",
            "beneficiary_id,amount,timestamp,scheme,latitude,longitude\n\
             B1,2000,2025-03-03 10:00:00,PM-KISAN,26.8,80.9\n\
             ,2000,2025-03-03 10:00:00,PM-KISAN,26.8,80.9\n\
             B3,two thousand,2025-03-03 10:00:00,PM-KISAN,26.8,80.9\n\
             B4,2000,2025-02-30 10:00:00,PM-KISAN,26.8,80.9\n\
             B5,-20,2025-03-03 10:00:00,PM-KISAN,26.8,80.9\n\
             B6,2000,2025-03-03 10:00:00,PM-KISAN,126.8,80.9\n",
        );
        let report =
            generate::import::import_csv(&mut open_store(&db), &csv, false, ImportMode::Fresh)
                .unwrap();
        assert_eq!(report.imported, 0);
        let lines: Vec<(u64, &str)> = report
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(
            lines[0].0 == 3 && lines[0].1.contains("beneficiary_id is missing"),
            "{lines:?}"
        );
        assert!(
            lines[1].0 == 4 && lines[1].1.contains("not a number"),
            "{lines:?}"
        );
        assert!(
            lines[2].0 == 5 && lines[2].1.contains("timestamp"),
            "{lines:?}"
        );
        assert!(
            lines[3].0 == 6 && lines[3].1.contains("negative"),
            "{lines:?}"
        );
        assert!(
            lines[4].0 == 7 && lines[4].1.contains("latitude"),
            "{lines:?}"
        );
        assert_eq!(
            count_rows(db.target.clone()),
            0,
            "{}: a failed import leaves nothing behind",
            db.target
        );
    }
}

#[test]
fn skip_bad_imports_good_rows_and_writes_the_rejects() {
    for db in each_engine("skipbad") {
        let csv = write_csv(
            db.dir.path(),
            "mixed.csv",
            "beneficiary_id,amount,timestamp,scheme\nB1,2000,2025-03-03 10:00:00,PM-KISAN\nB2,,2025-03-03 10:00:00,PM-KISAN\n",
        );
        let report =
            generate::import::import_csv(&mut open_store(&db), &csv, true, ImportMode::Fresh)
                .unwrap();
        assert_eq!(report.imported, 1);
        assert_eq!(count_rows(db.target.clone()), 1, "{}", db.target);
        let rejects = std::fs::read_to_string(report.rejects_file.unwrap()).unwrap();
        assert!(
            rejects.starts_with("line,reason,beneficiary_id"),
            "{rejects}"
        );
        assert!(rejects.contains("3,amount is missing,B2"), "{rejects}");
    }
}

/// A quote left open swallows the lines after it into one value: those payments would be
/// lost without a word, so the file is refused, `--skip-bad` or not. An amount with an
/// unquoted comma splits into two values: that row is bad, not ₹1.
#[test]
fn an_unclosed_quote_refuses_the_file_and_an_unquoted_comma_its_row() {
    for db in each_engine("quotes") {
        let header = "transaction_ref,beneficiary_id,scheme,timestamp,amount,remarks\n";
        let open_quote = write_csv(
            db.dir.path(),
            "open.csv",
            &format!(
                "{header}R1,B1,PM-KISAN,2025-03-03 10:00:00,2000,\"paid late\n\
                 R2,B2,PM-KISAN,2025-03-03 11:00:00,2000,\n\
                 R3,B3,PM-KISAN,2025-03-03 12:00:00,2000,\n"
            ),
        );
        for skip_bad in [false, true] {
            let message = format!(
                "{:#}",
                generate::import::import_csv(
                    &mut open_store(&db),
                    &open_quote,
                    skip_bad,
                    ImportMode::Fresh
                )
                .unwrap_err()
            );
            assert!(message.contains("a quote opened on line 2"), "{message}");
            assert!(message.contains("nothing was imported"), "{message}");
            assert_eq!(count_rows(db.target.clone()), 0, "{}", db.target);
        }
        let comma = write_csv(
            db.dir.path(),
            "comma.csv",
            &format!(
                "{header}R1,B1,PM-KISAN,2025-03-03 10:00:00,1,200,\nR2,B2,PM-KISAN,2025-03-03 11:00:00,\"1,200\",\n"
            ),
        );
        let report =
            generate::import::import_csv(&mut open_store(&db), &comma, true, ImportMode::Fresh)
                .unwrap();
        assert_eq!(report.imported, 1);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].line, 2);
        assert!(
            report.rejected[0]
                .reason
                .contains("7 values and the header 6"),
            "{}",
            report.rejected[0].reason
        );
    }
}

/// Replacing the stored payments with a file that has none to import (a header alone, or
/// every row rejected with `--skip-bad`) would empty the database: refused, nothing changed.
#[test]
fn replacing_with_a_file_of_no_good_rows_keeps_the_database() {
    for db in each_engine("replace_empty") {
        let good = write_csv(
            db.dir.path(),
            "good.csv",
            "beneficiary_id,amount,timestamp,scheme\nB1,2000,2025-03-03 10:00:00,PM-KISAN\n",
        );
        generate::import::import_csv(&mut open_store(&db), &good, false, ImportMode::Fresh)
            .unwrap();
        let header_only = write_csv(
            db.dir.path(),
            "empty.csv",
            "beneficiary_id,amount,timestamp,scheme\n",
        );
        let all_bad = write_csv(
            db.dir.path(),
            "bad.csv",
            "beneficiary_id,amount,timestamp,scheme\nB1,,2025-03-03 10:00:00,PM-KISAN\n",
        );
        for file in [&header_only, &all_bad] {
            let message = format!(
                "{:#}",
                generate::import::import_csv(&mut open_store(&db), file, true, ImportMode::Replace)
                    .unwrap_err()
            );
            assert!(message.contains("would empty the database"), "{message}");
            assert_eq!(count_rows(db.target.clone()), 1, "{}", db.target);
        }
    }
}

/// A fresh import checks the database is still empty under its write lock: payments a feed
/// stored after the first check are not loaded over in bulk (or, for generate, cleared).
#[test]
fn a_fresh_import_into_a_database_that_filled_meanwhile_changes_nothing() {
    for db in each_engine("filled") {
        let first = write_csv(
            db.dir.path(),
            "first.csv",
            "beneficiary_id,amount,timestamp,scheme\nB1,2000,2025-03-03 10:00:00,PM-KISAN\n",
        );
        generate::import::import_csv(&mut open_store(&db), &first, false, ImportMode::Fresh)
            .unwrap();
        let message = format!(
            "{:#}",
            generate::import::import_csv(&mut open_store(&db), &first, false, ImportMode::Fresh)
                .unwrap_err()
        );
        assert!(message.contains("received 1 transactions"), "{message}");
        assert_eq!(count_rows(db.target.clone()), 1, "{}", db.target);
    }
}

#[test]
fn a_file_without_required_columns_is_refused_by_name() {
    for db in each_engine("cols") {
        let csv = write_csv(
            db.dir.path(),
            "cols.csv",
            "beneficiary,amount,timestamp\nB1,2000,2025-03-03 10:00:00\n",
        );
        let message =
            generate::import::import_csv(&mut open_store(&db), &csv, false, ImportMode::Fresh)
                .unwrap_err()
                .to_string();
        assert!(message.contains("beneficiary_id, scheme"), "{message}");
    }
}

/// Tomorrow's export goes into today's database: refs already stored are skipped and counted,
/// so re-importing a file adds nothing, and a bad row still aborts the whole append.
#[test]
fn an_appending_import_adds_only_payments_not_yet_stored() {
    for db in each_engine("append") {
        let dir = db.dir.path();
        let header = "transaction_ref,beneficiary_id,amount,timestamp,scheme\n";
        let monday = write_csv(
            dir,
            "monday.csv",
            &format!(
                "{header}R1,B1,2000,2025-03-03 10:00:00,PM-KISAN\nR2,B2,2000,2025-03-03 11:00:00,PM-KISAN\n"
            ),
        );
        // Tuesday's export repeats R2 (an overlapping extract), repeats R3 within itself, and
        // has one row without a reference. R4 is the first payment of April, a month the
        // database has not seen.
        let tuesday = write_csv(
            dir,
            "tuesday.csv",
            &format!(
                "{header}R2,B2,2000,2025-03-03 11:00:00,PM-KISAN\nR3,B3,1500,2025-03-04 10:00:00,NSAP-OAP\n\
                 R3,B3,1500,2025-03-04 10:00:00,NSAP-OAP\n,B4,900,2025-03-04 12:00:00,MGNREGA\n\
                 R4,B5,700,2025-04-01 00:00:00,MGNREGA\n"
            ),
        );
        let target = db.target.clone();
        let run = |csv: &std::path::Path, append: bool| {
            let mut config = run_config(target.clone(), 1, 1);
            config.from_csv = Some(csv.to_path_buf());
            config.append = append;
            generate::run(config)
        };
        run(&monday, false).unwrap();
        assert_eq!(count_rows(target.clone()), 2);
        let refused = run(&tuesday, false).unwrap_err().to_string();
        assert!(refused.contains("--append"), "{refused}");

        let mut store = open_store(&db);
        let report =
            generate::import::import_csv(&mut store, &tuesday, false, ImportMode::Append).unwrap();
        assert_eq!(
            report.imported, 3,
            "{target}: R3 once, R4 and the row without a ref"
        );
        assert_eq!(report.already_present, 2, "R2 stored, R3 repeated");
        assert_eq!(report.without_ref, 1);
        assert_eq!(count_rows(target.clone()), 5);

        let again =
            generate::import::import_csv(&mut store, &monday, false, ImportMode::Append).unwrap();
        assert_eq!((again.imported, again.already_present), (0, 2));
        assert_eq!(
            count_rows(target.clone()),
            5,
            "the same daily file twice adds nothing"
        );

        let bad = write_csv(
            dir,
            "bad.csv",
            &format!(
                "{header}R9,B9,2000,2025-03-05 10:00:00,PM-KISAN\nR10,B10,lots,2025-03-05 10:00:00,PM-KISAN\n"
            ),
        );
        let report =
            generate::import::import_csv(&mut store, &bad, false, ImportMode::Append).unwrap();
        assert_eq!(report.imported, 0);
        assert_eq!(report.rejected[0].line, 3);
        assert_eq!(
            count_rows(target.clone()),
            5,
            "{target}: all or nothing holds for appends"
        );
        // A stored ref on a different payment (a corrected amount) is not "already present":
        // it is named by its line, and nothing of the file is written.
        let corrected = write_csv(
            dir,
            "corrected.csv",
            &format!(
                "{header}R11,B11,2000,2025-03-06 10:00:00,PM-KISAN
R2,B2,2500,2025-03-03 11:00:00,PM-KISAN
"
            ),
        );
        let report =
            generate::import::import_csv(&mut store, &corrected, false, ImportMode::Append)
                .unwrap();
        assert_eq!((report.imported, report.already_present), (0, 0));
        assert_eq!(report.rejected.len(), 1, "{target}");
        assert_eq!(report.rejected[0].line, 3);
        let reason = &report.rejected[0].reason;
        assert!(
            reason.contains("\"R2\" is already stored for a different payment")
                && reason.contains("₹2,000")
                && reason.contains("₹2,500"),
            "{target}: {reason}"
        );
        assert_eq!(count_rows(target.clone()), 5);
        // So is a ref that a file gives two different payments.
        let twice = write_csv(
            dir,
            "twice.csv",
            &format!(
                "{header}R12,B12,2000,2025-03-06 10:00:00,PM-KISAN\nR12,B12,2100,2025-03-06 10:00:00,PM-KISAN\n"
            ),
        );
        let report =
            generate::import::import_csv(&mut store, &twice, false, ImportMode::Append).unwrap();
        assert_eq!(report.rejected.len(), 1, "{target}");
        assert_eq!(report.rejected[0].line, 3);
        assert!(
            report.rejected[0]
                .reason
                .contains("repeats line 2 for a different payment"),
            "{}",
            report.rejected[0].reason
        );
        assert_eq!(count_rows(target.clone()), 5);
        // (indexes found, indexes the schema has: PostgreSQL has one more, for a scheme's
        // payments in a date range)
        let (indexes, expected) = match &mut store {
            aegis_core::engine::Store::Sqlite(conn) => (
                conn.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_transactions_%'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap(),
                6,
            ),
            aegis_core::engine::Store::Postgres(client) => (
                client
                    .query_one(
                        "SELECT count(*) FROM pg_indexes WHERE tablename IN ('transaction_events', 'transaction_scores') \
                         AND indexname LIKE 'idx_transactions_%'",
                        &[],
                    )
                    .unwrap()
                    .get(0),
                7,
            ),
        };
        assert_eq!(indexes, expected, "{target}: an append keeps every index");
    }
}

/// Every payment, frauds included, falls inside the days asked for: a duplicate of the last
/// days' instalments must not stretch the data (and every view anchored at its newest payment)
/// past the window. Several seeds, since it takes one unlucky draw.
#[test]
fn every_payment_falls_inside_the_generated_window() {
    for seed in 1..=6 {
        let config = GenerateConfig {
            days: 90,
            fraud_rate: 0.02,
            ..config(20_000, seed)
        };
        let end = config.start + i64::from(config.days) * DAY;
        let generated = synthesize(&config);
        let late: Vec<_> = generated
            .transactions
            .iter()
            .filter(|row| row.time < config.start || row.time >= end)
            .map(|row| (row.fraud_type.clone(), row.time))
            .collect();
        assert!(late.is_empty(), "seed {seed}: outside the window: {late:?}");
    }
}
