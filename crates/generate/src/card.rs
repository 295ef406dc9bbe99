//! The `card` profile: card payments simulated as the Fraud Detection Handbook does it
//! (Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection — Practical
//! Handbook*, chapter "Transaction data simulator"). It is a public design that was not made next
//! to our features, so a detector tuned to our welfare world has no advantage on it.
//!
//! The world, as in the handbook:
//! - customers at random points of a 100 × 100 square, each with a mean amount drawn from
//!   U(5, 100), a spread of half that mean, and a mean of U(0, 4) payments a day;
//! - terminals (twice as many as customers) at random points; a customer pays at the terminals
//!   within a radius around them, chosen so each has about 78 in reach, as in the handbook's
//!   5,000 customers and 10,000 terminals with r = 5;
//! - each day, a Poisson number of payments per customer, at a time of day drawn from
//!   N(noon, 20,000 s) and kept only within the day (so at all hours, mostly daytime), of an
//!   amount drawn from N(mean, spread) (a negative draw is redrawn from U(0, 2 × mean)).
//!
//! Its three kinds of fraud, labeled:
//! - `extreme_amount`: every payment above 220 (the handbook's baseline scenario);
//! - `compromised_terminal`: every day, 2 terminals per 10,000 are compromised, and every payment
//!   at them over the next 28 days is fraud;
//! - `compromised_customer`: every day, 3 customers per 5,000 have their card details stolen;
//!   over the next 14 days a third of their payments are made 5× larger, and are fraud.
//!
//! What maps to our schema: a customer is a beneficiary (`C00042`), their card is the account
//! (`CARD-C00042`), a terminal is the agent (`T00042`), the scheme is `CARD`, amounts are in
//! rupees, and there is no location or district (the handbook's coordinates only decide which
//! terminals a customer reaches). `--fraud-rate` does not apply: the scenarios set it (about
//! 0.8 % of payments).

use rand::Rng;
use rand::SeedableRng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};

use aegis_core::domain::NewTransaction;
use aegis_core::time::DAY;

use crate::world::World;
use crate::{GenerateConfig, Generated};

/// Side of the square customers and terminals live in.
const SIDE: f64 = 100.0;
/// Terminals per customer (the handbook's 10,000 for 5,000).
const TERMINALS_PER_CUSTOMER: usize = 2;
/// Terminals a customer has in reach on average (10,000 × π × 5² / 100²).
const TERMINALS_IN_REACH: f64 = 78.5;
/// Payments a customer makes a day on average: the mean of U(0, 4), less the share of
/// times of day that fall outside the day.
const PAYMENTS_PER_CUSTOMER_DAY: f64 = 1.9;
/// Every payment above this many rupees is fraud.
const EXTREME_RUPEES: f64 = 220.0;
/// Terminals compromised a day, per terminal.
const COMPROMISED_TERMINALS_PER_DAY: f64 = 2.0 / 10_000.0;
const TERMINAL_COMPROMISE_DAYS: i64 = 28;
/// Customers compromised a day, per customer.
const COMPROMISED_CUSTOMERS_PER_DAY: f64 = 3.0 / 5_000.0;
const CUSTOMER_COMPROMISE_DAYS: i64 = 14;

/// Fraud type codes of this profile.
pub const EXTREME_AMOUNT: &str = "extreme_amount";
pub const COMPROMISED_TERMINAL: &str = "compromised_terminal";
pub const COMPROMISED_CUSTOMER: &str = "compromised_customer";

struct Customer {
    mean_rupees: f64,
    std_rupees: f64,
    payments_per_day: f64,
    terminals: Vec<usize>,
}

/// Generates `config.rows` card payments over `config.days` days (the population is sized so
/// that the days hold about that many; the last day is cut where the count is reached).
pub fn synthesize(config: &GenerateConfig) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let days = i64::from(config.days);
    let customers_count =
        ((config.rows as f64 / (days as f64 * PAYMENTS_PER_CUSTOMER_DAY)).ceil() as usize).max(10);
    let terminals_count = customers_count * TERMINALS_PER_CUSTOMER;
    let radius =
        (TERMINALS_IN_REACH * SIDE * SIDE / (std::f64::consts::PI * terminals_count as f64)).sqrt();

    let terminals: Vec<(f64, f64)> = (0..terminals_count)
        .map(|_| (rng.random_range(0.0..SIDE), rng.random_range(0.0..SIDE)))
        .collect();
    let customers: Vec<Customer> = (0..customers_count)
        .map(|_| {
            let location = (rng.random_range(0.0..SIDE), rng.random_range(0.0..SIDE));
            let mean_rupees = rng.random_range(5.0..100.0);
            Customer {
                mean_rupees,
                std_rupees: mean_rupees / 2.0,
                payments_per_day: rng.random_range(0.0..4.0),
                terminals: terminals_near(&terminals, location, radius),
            }
        })
        .collect();

    // (customer, day, seconds of day, rupees, terminal)
    let mut payments: Vec<(usize, i64, i64, f64, usize)> = Vec::new();
    let time_of_day = Normal::new(DAY as f64 / 2.0, 20_000.0).expect("positive spread");
    for day in 0..days {
        for (index, customer) in customers.iter().enumerate() {
            if customer.terminals.is_empty() || customer.payments_per_day <= 0.0 {
                continue;
            }
            let count = Poisson::new(customer.payments_per_day)
                .expect("positive rate")
                .sample(&mut rng) as usize;
            for _ in 0..count {
                let seconds = time_of_day.sample(&mut rng).round();
                if !(0.0..DAY as f64).contains(&seconds) {
                    continue;
                }
                let mut rupees = Normal::new(customer.mean_rupees, customer.std_rupees)
                    .expect("positive spread")
                    .sample(&mut rng);
                if rupees < 0.0 {
                    rupees = rng.random_range(0.0..customer.mean_rupees * 2.0);
                }
                let terminal = *customer.terminals.choose(&mut rng).expect("non-empty");
                payments.push((index, day, seconds as i64, rupees, terminal));
            }
        }
    }
    payments.sort_by_key(|&(customer, day, seconds, _, _)| (day, seconds, customer));

    // Compromised terminals and customers: (index, first day, last day exclusive).
    let mut compromised_terminals: Vec<Vec<(i64, i64)>> = vec![Vec::new(); terminals_count];
    let mut compromised_customers: Vec<Vec<(i64, i64)>> = vec![Vec::new(); customers_count];
    let per_day = |rate: f64, population: usize, rng: &mut ChaCha8Rng| {
        let expected = rate * population as f64;
        // Fractional expectations (small worlds) are met on average.
        expected.floor() as usize + usize::from(rng.random_bool(expected.fract()))
    };
    for day in 0..days {
        for _ in 0..per_day(COMPROMISED_TERMINALS_PER_DAY, terminals_count, &mut rng) {
            let terminal = rng.random_range(0..terminals_count);
            compromised_terminals[terminal].push((day, day + TERMINAL_COMPROMISE_DAYS));
        }
        for _ in 0..per_day(COMPROMISED_CUSTOMERS_PER_DAY, customers_count, &mut rng) {
            let customer = rng.random_range(0..customers_count);
            compromised_customers[customer].push((day, day + CUSTOMER_COMPROMISE_DAYS));
        }
    }
    let during = |periods: &[(i64, i64)], day: i64| {
        periods
            .iter()
            .any(|&(first, end)| (first..end).contains(&day))
    };

    let transactions = payments
        .into_iter()
        .take(config.rows)
        .enumerate()
        .map(|(index, (customer, day, seconds, rupees, terminal))| {
            let mut rupees = rupees;
            let mut fraud_type = None;
            if rupees > EXTREME_RUPEES {
                fraud_type = Some(EXTREME_AMOUNT);
            }
            if during(&compromised_terminals[terminal], day) {
                fraud_type = Some(COMPROMISED_TERMINAL);
            }
            if during(&compromised_customers[customer], day) && rng.random_bool(1.0 / 3.0) {
                rupees *= 5.0;
                fraud_type = Some(COMPROMISED_CUSTOMER);
            }
            NewTransaction {
                transaction_ref: Some(format!(
                    "CARD{:06}{:010}",
                    config.seed % 1_000_000,
                    index + 1
                )),
                beneficiary_id: format!("C{customer:05}"),
                account_id: Some(format!("CARD-C{customer:05}")),
                agent_id: Some(format!("T{terminal:05}")),
                scheme: "CARD".to_string(),
                amount_paise: ((rupees * 100.0).round() as i64).max(1),
                time: config.start + day * DAY + seconds,
                latitude: None,
                longitude: None,
                district: None,
                is_anomaly: Some(fraud_type.is_some()),
                fraud_type: fraud_type.map(str::to_string),
            }
        })
        .collect();
    Generated {
        world: World::default(),
        transactions,
    }
}

/// Indices of the terminals within `radius` of `location`.
fn terminals_near(terminals: &[(f64, f64)], location: (f64, f64), radius: f64) -> Vec<usize> {
    terminals
        .iter()
        .enumerate()
        .filter(|(_, t)| ((t.0 - location.0).powi(2) + (t.1 - location.1).powi(2)).sqrt() < radius)
        .map(|(index, _)| index)
        .collect()
}
