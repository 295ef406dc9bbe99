//! The `card` profile: the Fraud Detection Handbook's world and its three labeled scenarios.

use std::collections::{HashMap, HashSet};

use aegis_core::time::DAY;
use generate::card::{COMPROMISED_CUSTOMER, COMPROMISED_TERMINAL, EXTREME_AMOUNT};
use generate::{GenerateConfig, Profile, synthesize};

use crate::helpers::config;

fn card(rows: usize, seed: u64) -> GenerateConfig {
    GenerateConfig {
        profile: Profile::Card,
        days: 30,
        ..config(rows, seed)
    }
}

#[test]
fn card_payments_follow_the_handbook_and_label_its_three_scenarios() {
    let generated = synthesize(&card(60_000, 5));
    let transactions = &generated.transactions;
    assert_eq!(transactions.len(), 60_000, "--rows is met exactly");
    assert_eq!(synthesize(&card(60_000, 5)).transactions, *transactions);
    assert!(transactions.windows(2).all(|w| w[0].time <= w[1].time));
    let refs: HashSet<_> = transactions.iter().map(|t| &t.transaction_ref).collect();
    assert_eq!(refs.len(), transactions.len());

    let mut per_type: HashMap<&str, usize> = HashMap::new();
    for transaction in transactions {
        assert!(transaction.latitude.is_none() && transaction.district.is_none());
        assert_eq!(transaction.scheme, "CARD");
        // Every payment above ₹220 is fraud, whatever else happened to it.
        if transaction.amount_paise > 22_000 {
            assert_eq!(transaction.is_anomaly, Some(true), "{transaction:?}");
        }
        if let Some(kind) = &transaction.fraud_type {
            *per_type.entry(kind.as_str()).or_default() += 1;
        }
    }
    for kind in [EXTREME_AMOUNT, COMPROMISED_TERMINAL, COMPROMISED_CUSTOMER] {
        assert!(
            per_type.get(kind).copied().unwrap_or(0) > 20,
            "{kind}: {per_type:?}"
        );
    }
    let frauds: usize = per_type.values().sum();
    let share = frauds as f64 / transactions.len() as f64;
    assert!((0.003..0.02).contains(&share), "fraud share {share}");

    // Payments happen at all hours, mostly around noon.
    let hours: HashSet<i64> = transactions
        .iter()
        .map(|t| (t.time - generated_start()) % DAY / 3600)
        .collect();
    assert_eq!(hours.len(), 24, "payments at every hour of the day");

    // A compromised terminal's payments are all fraud once it is compromised: some terminal has
    // several fraud payments in a row.
    let mut by_terminal: HashMap<&str, Vec<bool>> = HashMap::new();
    for transaction in transactions {
        by_terminal
            .entry(transaction.agent_id.as_deref().unwrap())
            .or_default()
            .push(transaction.fraud_type.as_deref() == Some(COMPROMISED_TERMINAL));
    }
    assert!(
        by_terminal
            .values()
            .any(|flags| flags.windows(3).any(|w| w.iter().all(|&f| f)))
    );
}

fn generated_start() -> i64 {
    card(1, 1).start
}
