//! The `messy-welfare` profile: exact and reproducible output, its ordinary behaviours (night
//! bank credits, family accounts, migrants, split wages, arrears, busy hubs) labeled normal, and
//! its seven fraud types labeled with their defining property.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aegis_core::domain::NewTransaction;
use aegis_core::geo::haversine_km;
use aegis_core::time::{DAY, HOUR, ist_day_start, ist_seconds_of_day};
use generate::messy::FRAUD_TYPES;
use generate::{GenerateConfig, Generated, Profile, synthesize};

use crate::helpers::{config, count_rows, run_config};

fn messy(rows: usize, seed: u64) -> GenerateConfig {
    GenerateConfig {
        profile: Profile::MessyWelfare,
        days: 91,
        ..config(rows, seed)
    }
}

fn is_bank(transaction: &NewTransaction) -> bool {
    transaction
        .agent_id
        .as_deref()
        .is_some_and(|agent| agent.starts_with("BANK-"))
}

fn normal(transactions: &[NewTransaction]) -> impl Iterator<Item = &NewTransaction> {
    transactions.iter().filter(|t| t.is_anomaly == Some(false))
}

#[test]
fn messy_same_seed_gives_identical_payments_and_another_seed_does_not() {
    let first = synthesize(&messy(20_000, 3));
    let second = synthesize(&messy(20_000, 3));
    let other = synthesize(&messy(20_000, 4));
    assert_eq!(first.transactions, second.transactions);
    assert_ne!(first.transactions, other.transactions);
}

#[test]
fn messy_has_exactly_the_requested_rows_in_time_order_with_unique_refs() {
    for (rows, days, fraud_rate) in [(30_000, 91, 0.01), (5_000, 30, 0.05), (60, 91, 0.01)] {
        let config = GenerateConfig {
            days,
            fraud_rate,
            ..messy(rows, 11)
        };
        let generated = synthesize(&config);
        let transactions = &generated.transactions;
        assert_eq!(transactions.len(), rows, "{rows} rows over {days} days");
        assert!(
            transactions
                .windows(2)
                .all(|pair| pair[0].time <= pair[1].time),
            "not in event-time order"
        );
        let end = config.start + i64::from(days) * DAY;
        assert!(
            transactions
                .iter()
                .all(|t| (config.start..end).contains(&t.time))
        );
        let refs: BTreeSet<&str> = transactions
            .iter()
            .map(|t| t.transaction_ref.as_deref().expect("every row has a ref"))
            .collect();
        assert_eq!(refs.len(), rows, "transaction refs repeat");
        assert!(transactions.iter().all(|t| t.amount_paise > 0));
    }
}

#[test]
fn messy_about_a_third_of_payments_are_night_bank_credits_labeled_normal() {
    let generated = synthesize(&messy(50_000, 5));
    let transactions = &generated.transactions;
    let bank: Vec<&NewTransaction> = transactions.iter().filter(|t| is_bank(t)).collect();
    let share = bank.len() as f64 / transactions.len() as f64;
    assert!((0.28..0.40).contains(&share), "bank credits {share:.3}");
    assert!(
        bank.iter().all(|t| ist_seconds_of_day(t.time) < 5 * HOUR),
        "a bank credit outside 00:00-05:00"
    );
    assert!(bank.iter().all(|t| t.latitude.is_none()));
    let normal_share =
        bank.iter().filter(|t| t.is_anomaly == Some(false)).count() as f64 / bank.len() as f64;
    assert!(normal_share > 0.98, "normal bank credits {normal_share:.3}");
    // Batches: a bank credits dozens of payments within a few minutes.
    let mut per_ten_minutes: HashMap<(&str, i64), usize> = HashMap::new();
    for t in &bank {
        *per_ten_minutes
            .entry((t.agent_id.as_deref().unwrap(), t.time / 600))
            .or_default() += 1;
    }
    let busiest = per_ten_minutes.values().max().copied().unwrap_or(0);
    assert!(busiest >= 50, "busiest ten bank minutes hold {busiest}");
    // The night is the banks' alone: no counter pays before 07:00 in ordinary times.
    assert!(
        normal(transactions)
            .filter(|t| !is_bank(t))
            .all(|t| ist_seconds_of_day(t.time) >= 7 * HOUR)
    );
}

#[test]
fn messy_some_accounts_are_shared_by_two_or_three_family_members_without_a_fraud_label() {
    let generated = synthesize(&messy(50_000, 6));
    let mut registered: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, person) in generated.world.beneficiaries.iter().enumerate() {
        registered.entry(&person.account).or_default().push(index);
    }
    let sharing: usize = registered
        .values()
        .filter(|p| p.len() > 1)
        .map(Vec::len)
        .sum();
    let share = sharing as f64 / generated.world.beneficiaries.len() as f64;
    assert!((0.12..0.24).contains(&share), "family share {share:.3}");
    for members in registered.values() {
        assert!(members.len() <= 3, "an account of {} people", members.len());
        let home = generated.world.beneficiaries[members[0]].home;
        assert!(
            members
                .iter()
                .all(|&m| generated.world.beneficiaries[m].home == home)
        );
    }
    let mut paid: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for t in normal(&generated.transactions) {
        paid.entry(t.account_id.as_deref().unwrap())
            .or_default()
            .insert(&t.beneficiary_id);
    }
    let shared = paid.values().filter(|people| people.len() >= 2).count();
    assert!(shared >= 200, "only {shared} accounts pay a family");
    assert!(paid.values().all(|people| people.len() <= 3));
}

#[test]
fn messy_migrants_collect_most_payments_far_from_home_as_normal_payments() {
    let generated = synthesize(&messy(50_000, 7));
    let homes: HashMap<&str, (f64, f64)> = generated
        .world
        .beneficiaries
        .iter()
        .map(|person| (person.id.as_str(), person.home))
        .collect();
    // (payments at a counter, of which far from home) per beneficiary
    let mut collected: HashMap<&str, (usize, usize)> = HashMap::new();
    for t in normal(&generated.transactions).filter(|t| !is_bank(t)) {
        let point = (t.latitude.unwrap(), t.longitude.unwrap());
        let distance = haversine_km(point, homes[t.beneficiary_id.as_str()]);
        let entry = collected.entry(&t.beneficiary_id).or_default();
        entry.0 += 1;
        if distance > 450.0 {
            entry.1 += 1;
            assert!(distance < 1_650.0, "a normal payment {distance:.0} km away");
        }
    }
    let migrants = collected
        .values()
        .filter(|(all, far)| *far * 2 > *all)
        .count();
    let share = migrants as f64 / generated.world.beneficiaries.len() as f64;
    assert!((0.04..0.10).contains(&share), "migrants {share:.3}");
}

#[test]
fn messy_split_wages_and_pension_arrears_are_ordinary_payments() {
    let generated = synthesize(&messy(50_000, 8));
    let mut by_person: HashMap<(&str, &str), Vec<(i64, i64)>> = HashMap::new();
    for t in normal(&generated.transactions) {
        by_person
            .entry((&t.beneficiary_id, &t.scheme))
            .or_default()
            .push((t.time, t.amount_paise));
    }
    let (mut wages, mut in_parts) = (0, 0);
    let (mut pensions, mut arrears) = (0, 0);
    for ((_, scheme), payments) in &by_person {
        match *scheme {
            "MGNREGA" => {
                for (index, (time, _)) in payments.iter().enumerate() {
                    wages += 1;
                    let near = |other: &(i64, i64)| (time - other.0).abs() <= 3 * DAY;
                    if payments[..index]
                        .iter()
                        .chain(&payments[index + 1..])
                        .any(near)
                    {
                        in_parts += 1;
                    }
                }
            }
            "NSAP-OAP" => {
                let least = payments.iter().map(|p| p.1).min().unwrap();
                pensions += payments.len();
                arrears += payments.iter().filter(|p| p.1 >= 2 * least).count();
            }
            _ => {}
        }
    }
    let parts_share = in_parts as f64 / wages as f64;
    assert!(
        parts_share > 0.35,
        "wage rows paid in parts {parts_share:.3}"
    );
    let arrears_share = arrears as f64 / pensions as f64;
    assert!(
        (0.005..0.05).contains(&arrears_share),
        "pension arrears {arrears_share:.4}"
    );
}

#[test]
fn messy_busy_city_hubs_take_a_large_share_of_counter_payments_at_long_hours() {
    let generated = synthesize(&messy(50_000, 9));
    let mut per_counter: HashMap<&str, usize> = HashMap::new();
    let counter_rows: Vec<&NewTransaction> = normal(&generated.transactions)
        .filter(|t| !is_bank(t))
        .collect();
    for t in &counter_rows {
        *per_counter
            .entry(t.agent_id.as_deref().unwrap())
            .or_default() += 1;
    }
    let mut counts: Vec<usize> = per_counter.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top_share = counts[..8].iter().sum::<usize>() as f64 / counter_rows.len() as f64;
    assert!(
        top_share > 0.12,
        "8 of {} counters take {top_share:.3}",
        counts.len()
    );
    let early_or_late = counter_rows
        .iter()
        .filter(|t| !(8 * HOUR..20 * HOUR).contains(&ist_seconds_of_day(t.time)))
        .count();
    assert!(
        early_or_late as f64 > 0.01 * counter_rows.len() as f64,
        "counters keeping long hours pay {early_or_late} before 08:00 or after 20:00"
    );
}

#[test]
fn messy_every_fraud_type_is_present_at_about_the_configured_rate() {
    let config = GenerateConfig {
        fraud_rate: 0.02,
        ..messy(50_000, 5)
    };
    let Generated { transactions, .. } = synthesize(&config);
    let mut by_type: BTreeMap<&str, Vec<&NewTransaction>> = BTreeMap::new();
    for t in transactions.iter().filter(|t| t.is_anomaly == Some(true)) {
        let kind = t.fraud_type.as_deref().expect("a fraud has a type");
        assert!(FRAUD_TYPES.contains(&kind), "unknown type {kind}");
        by_type.entry(kind).or_default().push(t);
    }
    assert!(
        transactions
            .iter()
            .all(|t| (t.is_anomaly == Some(true)) == t.fraud_type.is_some())
    );
    for kind in FRAUD_TYPES {
        let count = by_type.get(kind).map_or(0, Vec::len);
        assert!(count >= 120, "{kind} has only {count} rows");
    }
    let frauds: usize = by_type.values().map(Vec::len).sum();
    let rate = frauds as f64 / transactions.len() as f64;
    assert!((0.018..0.023).contains(&rate), "fraud rate {rate:.4}");

    let mut history: HashMap<&str, Vec<&NewTransaction>> = HashMap::new();
    for t in &transactions {
        history.entry(&t.beneficiary_id).or_default().push(t);
    }
    let normal_of = |t: &NewTransaction| -> Vec<&NewTransaction> {
        history[t.beneficiary_id.as_str()]
            .iter()
            .copied()
            .filter(|o| o.is_anomaly == Some(false) && o.scheme == t.scheme)
            .collect()
    };
    for t in &by_type["extreme_amount"] {
        if let Some(least) = normal_of(t).iter().map(|o| o.amount_paise).min() {
            assert!(t.amount_paise >= 5 * least, "extreme {t:?} vs {least}");
        }
    }
    for t in by_type["mild_inflation"]
        .iter()
        .filter(|t| t.scheme == "NSAP-OAP" || t.scheme == "PM-KISAN")
    {
        let earlier: Vec<i64> = normal_of(t)
            .iter()
            .filter(|o| o.time < t.time)
            .map(|o| o.amount_paise)
            .collect();
        let least = *earlier.iter().min().expect("inflated against a history");
        let ratio = t.amount_paise as f64 / least as f64;
        assert!((1.29..2.01).contains(&ratio), "mild inflation {ratio:.2}");
    }
    for t in &by_type["late_duplicate"] {
        let repeats = history[t.beneficiary_id.as_str()].iter().any(|o| {
            let gap = ist_day_start(t.time) - ist_day_start(o.time);
            o.scheme == t.scheme
                && o.amount_paise == t.amount_paise
                && o.account_id == t.account_id
                && (14 * DAY..=36 * DAY).contains(&gap)
        });
        assert!(repeats, "late duplicate repeats no instalment: {t:?}");
    }
    let mut bursts: HashMap<&str, usize> = HashMap::new();
    for t in &by_type["burst"] {
        *bursts.entry(&t.beneficiary_id).or_default() += 1;
        let real = normal_of(t)
            .iter()
            .any(|o| (o.time - t.time).abs() < HOUR && o.agent_id == t.agent_id && !is_bank(o));
        assert!(real, "burst row without a real payment in its hour: {t:?}");
    }
    assert!(bursts.values().all(|extra| (3..=6).contains(extra)));

    let mut colluding: HashMap<(&str, i64), Vec<&NewTransaction>> = HashMap::new();
    for t in &by_type["slow_collusion"] {
        colluding
            .entry((t.agent_id.as_deref().unwrap(), ist_day_start(t.time)))
            .or_default()
            .push(t);
    }
    for rows in colluding.values() {
        let people: BTreeSet<&str> = rows.iter().map(|t| t.beneficiary_id.as_str()).collect();
        assert!((8..=20).contains(&people.len()), "{} victims", people.len());
        let span =
            rows.iter().map(|t| t.time).max().unwrap() - rows.iter().map(|t| t.time).min().unwrap();
        assert!(span <= 6 * HOUR, "collusion spread over {span} s");
        for t in rows {
            let seen_before = history[t.beneficiary_id.as_str()]
                .iter()
                .any(|o| o.agent_id == t.agent_id && o.is_anomaly == Some(false));
            assert!(!seen_before, "a collusion victim who used the counter");
        }
    }
    let mut takeovers: HashMap<&str, Vec<&NewTransaction>> = HashMap::new();
    for t in &by_type["account_takeover"] {
        takeovers
            .entry(t.account_id.as_deref().unwrap())
            .or_default()
            .push(t);
    }
    let normal_accounts: BTreeSet<&str> = normal(&transactions)
        .map(|t| t.account_id.as_deref().unwrap())
        .collect();
    for (account, rows) in &takeovers {
        let people: BTreeSet<&str> = rows.iter().map(|t| t.beneficiary_id.as_str()).collect();
        assert!((5..=12).contains(&people.len()), "{} victims", people.len());
        assert!(
            !normal_accounts.contains(account),
            "the takeover account is someone's own"
        );
        let span =
            rows.iter().map(|t| t.time).max().unwrap() - rows.iter().map(|t| t.time).min().unwrap();
        assert!(span <= 28 * DAY);
    }
    let night_counters: BTreeSet<&str> = normal(&transactions)
        .filter(|t| !is_bank(t) && ist_seconds_of_day(t.time) < 5 * HOUR)
        .map(|t| t.agent_id.as_deref().unwrap())
        .collect();
    for t in &by_type["off_hours_counter"] {
        assert!(!is_bank(t) && t.latitude.is_some());
        assert!((HOUR..4 * HOUR).contains(&ist_seconds_of_day(t.time)));
        assert!(!night_counters.contains(t.agent_id.as_deref().unwrap()));
    }
    // The history-only types keep the hours of ordinary payments: counters by day, banks by night.
    for kind in [
        "late_duplicate",
        "burst",
        "slow_collusion",
        "account_takeover",
    ] {
        for t in &by_type[kind] {
            let seconds = ist_seconds_of_day(t.time);
            if is_bank(t) {
                assert!(seconds < 5 * HOUR, "{kind} bank credit by day");
            } else {
                assert!((7 * HOUR..21 * HOUR).contains(&seconds), "{kind} at night");
            }
        }
    }
}

#[test]
fn messy_generate_writes_its_payments_and_beneficiary_registry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("messy.db");
    let mut run = run_config(&path, 4_000, 12);
    run.generate = messy(4_000, 12);
    generate::run(run).unwrap();
    assert_eq!(count_rows(&path), 4_000);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (beneficiaries, shared): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(*) - count(DISTINCT account_id) FROM beneficiaries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(
        beneficiaries > 500,
        "{beneficiaries} beneficiaries registered"
    );
    assert!(shared > 0, "no family shares an account in the registry");
    let unregistered: i64 = conn
        .query_row(
            "SELECT count(*) FROM transactions t WHERE NOT EXISTS \
             (SELECT 1 FROM beneficiaries b WHERE b.beneficiary_id = t.beneficiary_id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(unregistered, 0, "a payment to someone not in the registry");
}
