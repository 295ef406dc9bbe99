//! The `messy-welfare` profile: welfare payments as a real department's export shows them, with a
//! normal unlike our own generator's and frauds subtler than its own. It checks that the
//! detector learns each deployment's normal instead of the one its features were designed next to.
//!
//! The world (the schemes, state rates and districts of [`crate::catalogue`]):
//! - **Night bank credits**: about 29 % of households are paid only by DBT batches that their
//!   bank (`BANK-SBI-DBT`, …) credits between 00:00 and 05:00 IST, hundreds of credits within a
//!   few minutes, with no counter and no location; half of the other households get PM-KISAN
//!   that way too. About a third of all payments are such credits.
//! - **Family accounts**: about 8 % of households are two or three beneficiaries (a farmer, an
//!   old parent, a student…) sharing one bank account and one home: about 17 % of beneficiaries.
//!   Only one member of a family draws PM-KISAN, as the scheme's rules say.
//! - **Migrant workers**: 8.5 % of single-person households (about 7 % of beneficiaries) work
//!   500–1,500 km from home, mostly in a big city, and collect 75–95 % of their payments at a
//!   counter there, the rest at home. They do not draw MGNREGA wages.
//! - **Split wages**: 35 % of MGNREGA wages are paid in two or three parts of different amounts
//!   summing to the wage, on the same day or within two days.
//! - **Pension arrears**: 2 % of monthly pensions pay 2–6 months at once, after as many months
//!   without a payment.
//! - **Busy city counters**: each of eight big cities has one hub counter, open 07:00–21:00 with
//!   morning and evening rushes, which most of the city's and most migrants' payments go
//!   through (hundreds an hour at peaks); other counters open at 08:00–10:00 and close at
//!   16:00–20:00, and one in ten keeps the hub's long hours. People collect a credit at a
//!   counter on the pay day or within three working days; nobody is paid on Sundays.
//!
//! Its frauds, labeled, each row otherwise like the beneficiary's ordinary payments (entitled
//! amounts, the usual channel, counter and hours), each beneficiary in at most one:
//! - `extreme_amount`: one payment of 10–50 × the entitled amount;
//! - `mild_inflation`: one payment of 1.3–2 × the median of the beneficiary's earlier payments
//!   of the scheme;
//! - `late_duplicate`: an instalment paid a second time 2–5 weeks later (same scheme, amount,
//!   account and channel);
//! - `burst`: 3–6 extra payments of a scheme within the hour of a real one, at the same counter;
//! - `slow_collusion`: one counter paying 8–20 beneficiaries of its district who never used it,
//!   entitled amounts into their own accounts, spread over 3–6 hours of its opening hours;
//! - `account_takeover`: every payment of 5–12 beneficiaries of one district (of different
//!   households) redirected into one new account for 2–4 weeks;
//! - `off_hours_counter`: a payment collected at a counter at 01:00–04:00, when no counter
//!   works (it is visible only against the counters' own hours: bank credits are at night).
//!
//! `--fraud-rate` is split equally over the seven types; `account_takeover` and the incident
//! types may overshoot their share by one incident. The data set has exactly `--rows` rows
//! unless the world is too small to hold its frauds (a few dozen rows at a high rate).

use rand::Rng;
use rand::SeedableRng;
use rand::distr::weighted::WeightedIndex;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Geometric, Normal};

use aegis_core::domain::NewTransaction;
use aegis_core::geo::haversine_km;
use aegis_core::time::{DAY, EventTime, HOUR, MINUTE, ist_date, ist_day_start, ist_midnight};

use crate::catalogue::{DISTRICTS, STATES, SchemeKind};
use crate::payments::{Calendar, entitled_rupees};
use crate::world::{
    Agent, Beneficiary, World, district_weights, jitter_in_india, new_account_number,
    next_working_day,
};
use crate::{GenerateConfig, Generated};

/// Bank channels that credit DBT batches at night, with the share of households they serve.
const BANK_CHANNELS: [(&str, f64); 6] = [
    ("BANK-SBI-DBT", 0.40),
    ("BANK-PNB-DBT", 0.15),
    ("BANK-BOB-DBT", 0.15),
    ("BANK-UBI-DBT", 0.10),
    ("BANK-CBI-DBT", 0.10),
    ("BANK-IPPB-DBT", 0.10),
];
/// Share of households whose every payment is a night bank credit.
const BANK_HOUSEHOLD_SHARE: f64 = 0.29;
/// Share of the other households whose PM-KISAN instalment is still a night bank credit.
const PM_KISAN_BANK_SHARE: f64 = 0.5;
/// Credits in one bank batch.
const BATCH_SIZE: std::ops::RangeInclusive<usize> = 150..=600;
/// Seconds a batch spends per credit (a batch of 400 takes 3–8 minutes).
const BATCH_SECONDS_PER_CREDIT: std::ops::Range<f64> = 0.4..1.2;
/// Batches run from midnight until this time of day.
const BATCH_WINDOW_END: i64 = 5 * HOUR;

/// Share of households that are two or three beneficiaries sharing an account and a home.
const FAMILY_HOUSEHOLD_SHARE: f64 = 0.082;
/// Share of family households with three members rather than two.
const THREE_MEMBER_SHARE: f64 = 0.3;

/// Share of single-person households that are migrant workers.
const MIGRANT_SHARE: f64 = 0.085;
/// How far from home a migrant works, km.
const MIGRANT_KM: std::ops::RangeInclusive<f64> = 500.0..=1_500.0;
/// Share of a migrant's payments collected where they work.
const MIGRANT_AWAY_SHARE: std::ops::Range<f64> = 0.75..0.95;
/// How much likelier a big city is as a migrant's destination than its population says.
const MIGRANT_CITY_WEIGHT: f64 = 4.0;

/// Districts whose city has one busy hub counter.
const HUB_CITIES: [&str; 8] = [
    "Pune",
    "Ahmedabad",
    "Surat",
    "Kolkata",
    "Chennai",
    "Hyderabad",
    "Jaipur",
    "Lucknow",
];
/// Share of a hub city's households registered at its hub.
const HUB_RESIDENT_SHARE: f64 = 0.8;
/// Share of migrants to a hub city who collect at its hub.
const HUB_MIGRANT_SHARE: f64 = 0.75;
/// Hours of the hubs and of the ordinary counters that keep long hours.
const LONG_HOURS: (i64, i64) = (7, 21);
/// Share of ordinary counters that keep long hours.
const LONG_HOURS_SHARE: f64 = 0.1;
/// Beneficiaries an ordinary counter serves on average.
const BENEFICIARIES_PER_COUNTER: f64 = 150.0;
/// Share of a beneficiary's counter payments collected at another counter of their district.
const OTHER_COUNTER_SHARE: f64 = 0.06;
/// Payments a beneficiary receives a day on average (in a January–March window), used only to
/// size the counters before the population is drawn.
const PAYMENTS_PER_PERSON_DAY: f64 = 0.042;

/// Share of MGNREGA wages paid in parts, and of those in three parts rather than two.
const WAGE_SPLIT_SHARE: f64 = 0.35;
const THREE_PART_SHARE: f64 = 0.3;
/// Days after the first part that the last part of a split wage may come.
const WAGE_PART_MAX_DAYS: i64 = 2;
/// Share of monthly pensions that are arrears, and how many months they pay.
const ARREARS_SHARE: f64 = 0.02;
const ARREARS_MONTHS: std::ops::RangeInclusive<u32> = 2..=6;

/// Fraud type codes of this profile.
pub const EXTREME_AMOUNT: &str = "extreme_amount";
pub const MILD_INFLATION: &str = "mild_inflation";
pub const LATE_DUPLICATE: &str = "late_duplicate";
pub const BURST: &str = "burst";
pub const SLOW_COLLUSION: &str = "slow_collusion";
pub const ACCOUNT_TAKEOVER: &str = "account_takeover";
pub const OFF_HOURS_COUNTER: &str = "off_hours_counter";
/// Every fraud type of this profile, in the order `--fraud-rate`'s remainder is given out.
pub const FRAUD_TYPES: [&str; 7] = [
    EXTREME_AMOUNT,
    MILD_INFLATION,
    LATE_DUPLICATE,
    BURST,
    SLOW_COLLUSION,
    ACCOUNT_TAKEOVER,
    OFF_HOURS_COUNTER,
];

const EXTREME_FACTOR: std::ops::Range<f64> = 10.0..50.0;
const MILD_FACTOR: std::ops::Range<f64> = 1.3..2.0;
const DUPLICATE_DAYS: std::ops::RangeInclusive<i64> = 14..=35;
const BURST_EXTRA: std::ops::RangeInclusive<usize> = 3..=6;
/// Burst payments fall within this long after (or before, near closing) the real one.
const BURST_SPAN: i64 = 55 * MINUTE;
const COLLUSION_VICTIMS: std::ops::RangeInclusive<usize> = 8..=20;
const COLLUSION_HOURS: std::ops::Range<f64> = 3.0..6.0;
const TAKEOVER_VICTIMS: std::ops::RangeInclusive<usize> = 5..=12;
const TAKEOVER_DAYS: std::ops::RangeInclusive<i64> = 14..=28;
const OFF_HOURS: std::ops::Range<i64> = HOUR..4 * HOUR;

/// Where a payment reached the beneficiary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Credited by a night batch of [`BANK_CHANNELS`]`[i]`.
    Bank(u8),
    /// Collected at `world.agents[i]`.
    Counter(u32),
}

/// What an ordinary payment is, so fraud and trimming pick whole instalments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Whole,
    /// One part of a split wage.
    Part,
    Arrears,
    /// A payment that fraud added.
    Added,
}

#[derive(Debug, Clone)]
struct Draft {
    beneficiary: u32,
    /// Index into `Messy::accounts`.
    account: u32,
    scheme: SchemeKind,
    amount_paise: i64,
    place: Place,
    /// Event time; for a bank credit, the IST midnight of its day until the batches are timed.
    time: EventTime,
    kind: Kind,
    fraud: Option<&'static str>,
}

/// A counter's opening hours, seconds after midnight.
#[derive(Debug, Clone, Copy)]
struct Counter {
    open: i64,
    close: i64,
    hub: bool,
}

/// How a beneficiary is paid.
#[derive(Debug, Clone)]
struct Person {
    /// Index into `Messy::accounts`, shared by a family.
    account: u32,
    bank: u8,
    all_by_bank: bool,
    pm_kisan_by_bank: bool,
    /// The counter registered for the household (a hub or an ordinary counter).
    home_counter: u32,
    /// A migrant's counter where they work and the share of payments collected there.
    work_counter: Option<(u32, f64)>,
}

/// Generates `config.rows` messy welfare payments over `config.days` days.
pub fn synthesize(config: &GenerateConfig) -> Generated {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let quotas = fraud_quotas(config.rows, config.fraud_rate);
    let planned_added: usize = [LATE_DUPLICATE, BURST, SLOW_COLLUSION]
        .iter()
        .map(|kind| quotas[type_index(kind)])
        .sum();
    let normal_target = config.rows.saturating_sub(planned_added);
    let expected_people =
        normal_target as f64 / (PAYMENTS_PER_PERSON_DAY * f64::from(config.days.max(1)));
    let mut messy = Messy::new(&mut rng, config, expected_people.max(100.0));

    while messy.drafts.len() < normal_target {
        messy.add_household(&mut rng);
    }
    let mut used = vec![false; messy.world.beneficiaries.len()];
    messy.inject_frauds(&mut rng, &quotas, &mut used);
    // A small world can leave the adding types short of their quota: more households make up
    // the difference, and the last households' whole payments absorb any overshoot.
    while messy.drafts.len() < config.rows {
        messy.add_household(&mut rng);
    }
    messy.trim_to(config.rows, &used);
    messy.time_bank_batches(&mut rng);
    messy.drafts.sort_by_key(|draft| draft.time);

    let transactions = messy.transactions(&mut rng, config.seed);
    Generated {
        world: messy.world,
        transactions,
    }
}

/// Fraud rows per type: `rows × rate` split equally, the remainder to the first types.
fn fraud_quotas(rows: usize, rate: f64) -> [usize; 7] {
    let total = (rows as f64 * rate).round() as usize;
    let mut quotas = [total / FRAUD_TYPES.len(); 7];
    for quota in quotas.iter_mut().take(total % FRAUD_TYPES.len()) {
        *quota += 1;
    }
    quotas
}

fn type_index(kind: &str) -> usize {
    FRAUD_TYPES
        .iter()
        .position(|known| *known == kind)
        .expect("a fraud type of this profile")
}

/// Splits `total` rupees into `parts` positive, different amounts summing to it.
fn split_rupees<R: Rng>(rng: &mut R, total: i64, parts: usize) -> Vec<i64> {
    let mut amounts = Vec::with_capacity(parts);
    for _ in 0..10 {
        let weights: Vec<f64> = (0..parts).map(|_| rng.random_range(0.5..1.5)).collect();
        let sum: f64 = weights.iter().sum();
        amounts.clear();
        for weight in &weights[..parts - 1] {
            amounts.push((total as f64 * weight / sum).round() as i64);
        }
        amounts.push(total - amounts.iter().sum::<i64>());
        let mut sorted = amounts.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() == parts && sorted[0] > 0 {
            break;
        }
    }
    amounts
}

/// The generator's world and the payments drawn so far.
struct Messy {
    start: EventTime,
    end: EventTime,
    calendar: Calendar,
    district_weights: WeightedIndex<f64>,
    bank_weights: WeightedIndex<f64>,
    world: World,
    /// Opening hours of `world.agents`, index for index.
    counters: Vec<Counter>,
    /// Ordinary (non-hub) counters per district.
    ordinary_counters: Vec<Vec<u32>>,
    /// The hub counter of each hub city's district.
    hubs: Vec<Option<u32>>,
    /// Districts a migrant from each district may work in, with their weights.
    migrant_destinations: Vec<Option<(Vec<usize>, WeightedIndex<f64>)>>,
    people: Vec<Person>,
    accounts: Vec<String>,
    drafts: Vec<Draft>,
}

impl Messy {
    fn new(rng: &mut ChaCha8Rng, config: &GenerateConfig, expected_people: f64) -> Messy {
        let start = config.start;
        let end = start + i64::from(config.days) * DAY;
        let calendar = Calendar::new(rng, start, end);
        let total_population: f64 = DISTRICTS.iter().map(|d| d.population_lakhs).sum();
        let mut world = World {
            agents_by_district: vec![Vec::new(); DISTRICTS.len()],
            beneficiaries_by_district: vec![Vec::new(); DISTRICTS.len()],
            ..World::default()
        };
        let mut counters = Vec::new();
        let mut ordinary_counters = vec![Vec::new(); DISTRICTS.len()];
        let mut hubs = vec![None; DISTRICTS.len()];
        for (index, district) in DISTRICTS.iter().enumerate() {
            let prefix = format!("CSP-{}{index:02}", &district.name[..3].to_uppercase());
            let centre = (district.latitude, district.longitude);
            let is_hub_city = HUB_CITIES.contains(&district.name);
            let mut add = |world: &mut World, id: String, location, counter| {
                let agent = world.agents.len() as u32;
                world.agents_by_district[index].push(agent as usize);
                world.agents.push(Agent {
                    id,
                    district: index,
                    location,
                });
                counters.push(counter);
                agent
            };
            if is_hub_city {
                let location = jitter_in_india(rng, centre, 3.0);
                let hub = Counter {
                    open: LONG_HOURS.0 * HOUR,
                    close: LONG_HOURS.1 * HOUR,
                    hub: true,
                };
                hubs[index] = Some(add(&mut world, format!("{prefix}-HUB1"), location, hub));
            }
            let local_share = if is_hub_city {
                1.0 - HUB_RESIDENT_SHARE
            } else {
                1.0
            };
            let people = expected_people * district.population_lakhs / total_population;
            let count = ((people * local_share / BENEFICIARIES_PER_COUNTER).ceil() as usize).max(2);
            for number in 0..count {
                let location = jitter_in_india(rng, centre, 12.0);
                let (open, close) = if rng.random_bool(LONG_HOURS_SHARE) {
                    LONG_HOURS
                } else {
                    (
                        *[8, 9, 9, 10].choose(rng).expect("non-empty"),
                        *[16, 17, 17, 18, 19, 20].choose(rng).expect("non-empty"),
                    )
                };
                let counter = Counter {
                    open: open * HOUR,
                    close: close * HOUR,
                    hub: false,
                };
                let agent = add(
                    &mut world,
                    format!("{prefix}-{:04}", number + 1),
                    location,
                    counter,
                );
                ordinary_counters[index].push(agent);
            }
        }
        let migrant_destinations = DISTRICTS
            .iter()
            .map(|home| {
                let (districts, weights): (Vec<usize>, Vec<f64>) = DISTRICTS
                    .iter()
                    .enumerate()
                    .filter(|(_, work)| {
                        MIGRANT_KM.contains(&haversine_km(
                            (home.latitude, home.longitude),
                            (work.latitude, work.longitude),
                        ))
                    })
                    .map(|(index, work)| {
                        let city = if HUB_CITIES.contains(&work.name) {
                            MIGRANT_CITY_WEIGHT
                        } else {
                            1.0
                        };
                        (index, work.population_lakhs * city)
                    })
                    .unzip();
                let weights = WeightedIndex::new(weights).ok()?;
                Some((districts, weights))
            })
            .collect();
        Messy {
            start,
            end,
            calendar,
            district_weights: district_weights(),
            bank_weights: WeightedIndex::new(BANK_CHANNELS.iter().map(|(_, share)| *share))
                .expect("positive shares"),
            world,
            counters,
            ordinary_counters,
            hubs,
            migrant_destinations,
            people: Vec::new(),
            accounts: Vec::new(),
            drafts: Vec::new(),
        }
    }

    fn new_account(&mut self, rng: &mut ChaCha8Rng) -> u32 {
        self.accounts.push(new_account_number(rng));
        (self.accounts.len() - 1) as u32
    }

    fn ordinary_counter(&self, rng: &mut ChaCha8Rng, district: usize) -> u32 {
        *self.ordinary_counters[district]
            .choose(rng)
            .expect("every district has counters")
    }

    /// Adds a household (one person, or a family sharing an account) with its payments.
    fn add_household(&mut self, rng: &mut ChaCha8Rng) {
        let district = self.district_weights.sample(rng);
        let place = DISTRICTS[district];
        let members = if rng.random_bool(FAMILY_HOUSEHOLD_SHARE) {
            if rng.random_bool(THREE_MEMBER_SHARE) {
                3
            } else {
                2
            }
        } else {
            1
        };
        let home = jitter_in_india(rng, (place.latitude, place.longitude), 15.0);
        let account = self.new_account(rng);
        let bank = self.bank_weights.sample(rng) as u8;
        let mut all_by_bank = rng.random_bool(BANK_HOUSEHOLD_SHARE);
        let mut pm_kisan_by_bank = all_by_bank || rng.random_bool(PM_KISAN_BANK_SHARE);
        let home_counter = match self.hubs[district] {
            Some(hub) if rng.random_bool(HUB_RESIDENT_SHARE) => hub,
            _ => self.ordinary_counter(rng, district),
        };
        let mut work_counter = None;
        if members == 1
            && rng.random_bool(MIGRANT_SHARE)
            && let Some((districts, weights)) = &self.migrant_destinations[district]
        {
            let work = districts[weights.sample(rng)];
            let counter = match self.hubs[work] {
                Some(hub) if rng.random_bool(HUB_MIGRANT_SHARE) => hub,
                _ => self.ordinary_counter(rng, work),
            };
            work_counter = Some((counter, rng.random_range(MIGRANT_AWAY_SHARE)));
            // A migrant's payments are collected where they are, never credited unseen.
            all_by_bank = false;
            pm_kisan_by_bank = false;
        }
        for member in 0..members {
            let schemes = draw_schemes(rng, place.state, member == 0, work_counter.is_some());
            let index = self.world.beneficiaries.len();
            self.world.beneficiaries_by_district[district].push(index);
            self.world.beneficiaries.push(Beneficiary {
                id: format!("BEN{:08}", index + 1),
                district,
                home,
                account: self.accounts[account as usize].clone(),
                agent: home_counter as usize,
                schemes,
                scholarship_rupees: *[7_000, 12_000, 13_500, 20_000, 25_000]
                    .choose(rng)
                    .expect("non-empty"),
            });
            self.people.push(Person {
                account,
                bank,
                all_by_bank,
                pm_kisan_by_bank,
                home_counter,
                work_counter,
            });
            self.schedule(rng, index);
        }
    }

    /// Lays out one beneficiary's ordinary payments in the window.
    fn schedule(&mut self, rng: &mut ChaCha8Rng, beneficiary: usize) {
        let person = &self.world.beneficiaries[beneficiary];
        let district = person.district;
        let state = STATES[DISTRICTS[district].state];
        let scholarship = person.scholarship_rupees;
        let (first_year, first_month, _) = ist_date(self.start);
        for scheme in person.schemes.clone() {
            match scheme {
                SchemeKind::PmKisan => {
                    let lag = Geometric::new(0.45).expect("valid");
                    for release in self.calendar.pm_kisan_releases.clone() {
                        let day = release + (lag.sample(rng).min(6) as i64) * DAY;
                        self.pay(rng, beneficiary, scheme, day, &[2_000], Kind::Whole);
                    }
                }
                SchemeKind::OldAgePension => {
                    let months = ((self.end - self.start) / (28 * DAY) + 2) as usize;
                    let arrears: Vec<u32> = (0..months)
                        .map(|_| {
                            if rng.random_bool(ARREARS_SHARE) {
                                rng.random_range(ARREARS_MONTHS)
                            } else {
                                1
                            }
                        })
                        .collect();
                    // Arrears of k months follow k - 1 months without a payment.
                    let mut skipped = vec![false; months];
                    for month in (0..months).rev() {
                        if !skipped[month] && arrears[month] > 1 {
                            let first = month.saturating_sub(arrears[month] as usize - 1);
                            skipped[first..month].iter_mut().for_each(|s| *s = true);
                        }
                    }
                    for (offset, months_paid) in arrears.into_iter().enumerate() {
                        if skipped[offset] {
                            continue;
                        }
                        let month_index = first_month - 1 + offset as u32;
                        let (year, month) = (
                            first_year + i64::from(month_index / 12),
                            month_index % 12 + 1,
                        );
                        let day = ist_midnight(
                            year,
                            month,
                            self.calendar.pension_pay_day[district] + rng.random_range(0..3),
                        );
                        let kind = if months_paid > 1 {
                            Kind::Arrears
                        } else {
                            Kind::Whole
                        };
                        let rupees = state.monthly_pension * i64::from(months_paid);
                        self.pay(rng, beneficiary, scheme, day, &[rupees], kind);
                    }
                }
                SchemeKind::Mgnrega => {
                    let period = if rng.random_bool(0.4) { 14 } else { 7 };
                    let weekday = self.calendar.mgnrega_pay_weekday[district];
                    let mut week_start = self.start
                        - i64::from(aegis_core::time::ist_weekday(self.start + HOUR)) * DAY;
                    while week_start < self.end {
                        let (_, month, _) = ist_date(week_start);
                        let lean_season = (1..=6).contains(&month);
                        if rng.random_bool(if lean_season { 0.55 } else { 0.2 }) {
                            let days_worked = rng.random_range(3..=6) * (period / 7);
                            let wage = days_worked * state.mgnrega_daily_wage;
                            let day = week_start + (period + weekday) * DAY;
                            if rng.random_bool(WAGE_SPLIT_SHARE) {
                                let parts = if rng.random_bool(THREE_PART_SHARE) {
                                    3
                                } else {
                                    2
                                };
                                let amounts = split_rupees(rng, wage, parts);
                                self.pay(rng, beneficiary, scheme, day, &amounts, Kind::Part);
                            } else {
                                self.pay(rng, beneficiary, scheme, day, &[wage], Kind::Whole);
                            }
                        }
                        week_start += period * DAY;
                    }
                }
                SchemeKind::Scholarship => {
                    for year in first_year..=ist_date(self.end).0 {
                        let day = ist_midnight(year, 1, 15) + rng.random_range(0..75) * DAY;
                        self.pay(rng, beneficiary, scheme, day, &[scholarship], Kind::Whole);
                    }
                }
                SchemeKind::Housing => {
                    let total = if state.hill_state { 130_000 } else { 120_000 };
                    let sanction =
                        ist_day_start(rng.random_range(self.start - 120 * DAY..self.end));
                    let second = sanction + rng.random_range(120..150) * DAY;
                    let third = sanction + rng.random_range(240..300) * DAY;
                    for (day, percent) in [(sanction, 40), (second, 50), (third, 10)] {
                        let rupees = total * percent / 100;
                        self.pay(rng, beneficiary, scheme, day, &[rupees], Kind::Whole);
                    }
                }
            }
        }
    }

    /// Pays `parts` (one amount, or the parts of a split wage) due on `pay_day` through the
    /// beneficiary's channel, keeping what falls in the window.
    fn pay(
        &mut self,
        rng: &mut ChaCha8Rng,
        beneficiary: usize,
        scheme: SchemeKind,
        pay_day: EventTime,
        parts: &[i64],
        kind: Kind,
    ) {
        let person = &self.people[beneficiary];
        let by_bank =
            person.all_by_bank || (scheme == SchemeKind::PmKisan && person.pm_kisan_by_bank);
        let (first_day, place) = if by_bank {
            (next_working_day(pay_day), Place::Bank(person.bank))
        } else {
            // The credit is collected on the pay day or within a few working days.
            let lag = Geometric::new(0.55).expect("valid").sample(rng).min(3) as i64;
            let counter = self.pick_counter(rng, beneficiary);
            (
                next_working_day(pay_day + lag * DAY),
                Place::Counter(counter),
            )
        };
        let account = person.account;
        let mut offset = 0;
        for (number, rupees) in parts.iter().enumerate() {
            if number > 0 {
                offset = rng.random_range(offset..=WAGE_PART_MAX_DAYS);
            }
            let day = next_working_day(first_day + offset * DAY);
            let time = match place {
                Place::Bank(_) => day,
                Place::Counter(counter) => self.counter_time(rng, counter, day),
            };
            if time < self.start || time >= self.end {
                continue;
            }
            self.drafts.push(Draft {
                beneficiary: beneficiary as u32,
                account,
                scheme,
                amount_paise: rupees * 100,
                place,
                time,
                kind,
                fraud: None,
            });
        }
    }

    /// The counter a payment is collected at: a migrant's work counter most of the time, else
    /// the household's counter, now and then another one of the district.
    fn pick_counter(&self, rng: &mut ChaCha8Rng, beneficiary: usize) -> u32 {
        let person = &self.people[beneficiary];
        if let Some((counter, share)) = person.work_counter
            && rng.random_bool(share)
        {
            return counter;
        }
        if rng.random_bool(OTHER_COUNTER_SHARE) {
            let district = self.world.beneficiaries[beneficiary].district;
            return self.ordinary_counter(rng, district);
        }
        person.home_counter
    }

    /// A time within `counter`'s opening hours on `day`: around midday at an ordinary counter,
    /// at the morning and evening rushes at a hub.
    fn counter_time(&self, rng: &mut ChaCha8Rng, counter: u32, day: EventTime) -> EventTime {
        let hours = self.counters[counter as usize];
        let (open, close) = (hours.open as f64, (hours.close - MINUTE) as f64);
        let shape = if hours.hub {
            let roll: f64 = rng.random();
            if roll < 0.35 {
                Some(Normal::new(8.75 * HOUR as f64, 0.7 * HOUR as f64))
            } else if roll < 0.7 {
                Some(Normal::new(18.25 * HOUR as f64, 0.9 * HOUR as f64))
            } else {
                None
            }
        } else {
            let span = close - open;
            Some(Normal::new(open + 0.45 * span, span / 4.5))
        };
        if let Some(normal) = shape {
            let normal = normal.expect("positive spread");
            for _ in 0..4 {
                let seconds = normal.sample(rng);
                if (open..close).contains(&seconds) {
                    return day + seconds as i64;
                }
            }
        }
        day + rng.random_range(open..close) as i64
    }

    /// Labels fraud rows up to each type's quota, marking the beneficiaries involved in `used`.
    fn inject_frauds(&mut self, rng: &mut ChaCha8Rng, quotas: &[usize; 7], used: &mut [bool]) {
        let mut rows_of: Vec<Vec<u32>> = vec![Vec::new(); self.world.beneficiaries.len()];
        for (index, draft) in self.drafts.iter().enumerate() {
            rows_of[draft.beneficiary as usize].push(index as u32);
        }
        for rows in &mut rows_of {
            rows.sort_by_key(|&row| self.drafts[row as usize].time);
        }
        let mut frauds = Frauds {
            rows_of,
            used,
            made: [0; 7],
        };
        for (index, kind) in FRAUD_TYPES.iter().enumerate() {
            let quota = quotas[index];
            // Enough tries for a sparse world, never an endless search in a tiny one.
            let mut tries = quota * 100 + 1_000;
            while frauds.made[index] < quota && tries > 0 {
                tries -= 1;
                let remaining = quota - frauds.made[index];
                frauds.made[index] += match *kind {
                    EXTREME_AMOUNT => self.extreme_amount(rng, &mut frauds),
                    MILD_INFLATION => self.mild_inflation(rng, &mut frauds),
                    LATE_DUPLICATE => self.late_duplicate(rng, &mut frauds),
                    BURST => self.burst(rng, &mut frauds, remaining),
                    SLOW_COLLUSION => self.slow_collusion(rng, &mut frauds, remaining),
                    ACCOUNT_TAKEOVER => self.account_takeover(rng, &mut frauds),
                    OFF_HOURS_COUNTER => self.off_hours_counter(rng, &mut frauds),
                    _ => unreachable!("every fraud type is handled"),
                };
            }
            if frauds.made[index] < quota {
                tracing::warn!(
                    kind,
                    made = frauds.made[index],
                    quota,
                    "the world is too small for this fraud type's quota"
                );
            }
        }
    }

    /// A random beneficiary not yet in a fraud with at least one ordinary payment.
    fn victim(&self, rng: &mut ChaCha8Rng, frauds: &Frauds) -> Option<usize> {
        let beneficiary = rng.random_range(0..frauds.rows_of.len());
        (!frauds.used[beneficiary] && !frauds.rows_of[beneficiary].is_empty())
            .then_some(beneficiary)
    }

    /// A random whole ordinary payment of `beneficiary` matching `keep`.
    fn whole_row(
        &self,
        rng: &mut ChaCha8Rng,
        frauds: &Frauds,
        beneficiary: usize,
        keep: impl Fn(&Draft) -> bool,
    ) -> Option<usize> {
        let rows: Vec<u32> = frauds.rows_of[beneficiary]
            .iter()
            .copied()
            .filter(|&row| {
                let draft = &self.drafts[row as usize];
                draft.kind == Kind::Whole && keep(draft)
            })
            .collect();
        rows.choose(rng).map(|&row| row as usize)
    }

    fn extreme_amount(&mut self, rng: &mut ChaCha8Rng, frauds: &mut Frauds) -> usize {
        let Some(beneficiary) = self.victim(rng, frauds) else {
            return 0;
        };
        let Some(row) = self.whole_row(rng, frauds, beneficiary, |_| true) else {
            return 0;
        };
        let draft = &mut self.drafts[row];
        let rupees = draft.amount_paise as f64 / 100.0 * rng.random_range(EXTREME_FACTOR);
        draft.amount_paise = rupees.round() as i64 * 100;
        draft.fraud = Some(EXTREME_AMOUNT);
        frauds.used[beneficiary] = true;
        1
    }

    fn mild_inflation(&mut self, rng: &mut ChaCha8Rng, frauds: &mut Frauds) -> usize {
        let Some(beneficiary) = self.victim(rng, frauds) else {
            return 0;
        };
        // A payment with earlier whole payments of its scheme to measure it against.
        let earlier = |draft: &Draft| -> Vec<i64> {
            frauds.rows_of[beneficiary]
                .iter()
                .map(|&row| &self.drafts[row as usize])
                .filter(|other| {
                    other.kind == Kind::Whole
                        && other.scheme == draft.scheme
                        && other.time < draft.time
                })
                .map(|other| other.amount_paise)
                .collect()
        };
        let Some(row) =
            self.whole_row(rng, frauds, beneficiary, |draft| !earlier(draft).is_empty())
        else {
            return 0;
        };
        let mut usual = earlier(&self.drafts[row]);
        usual.sort_unstable();
        let median = usual[usual.len() / 2] as f64;
        let draft = &mut self.drafts[row];
        draft.amount_paise = (median / 100.0 * rng.random_range(MILD_FACTOR)).round() as i64 * 100;
        draft.fraud = Some(MILD_INFLATION);
        frauds.used[beneficiary] = true;
        1
    }

    fn late_duplicate(&mut self, rng: &mut ChaCha8Rng, frauds: &mut Frauds) -> usize {
        let Some(beneficiary) = self.victim(rng, frauds) else {
            return 0;
        };
        let Some(row) = self.whole_row(rng, frauds, beneficiary, |_| true) else {
            return 0;
        };
        let original = self.drafts[row].clone();
        let gap = rng.random_range(DUPLICATE_DAYS);
        let day = next_working_day(ist_day_start(original.time) + gap * DAY);
        if day >= self.end {
            return 0;
        }
        let time = match original.place {
            Place::Bank(_) => day,
            Place::Counter(counter) => self.counter_time(rng, counter, day),
        };
        self.drafts.push(Draft {
            time,
            kind: Kind::Added,
            fraud: Some(LATE_DUPLICATE),
            ..original
        });
        frauds.used[beneficiary] = true;
        1
    }

    /// A new victim and one of their payments collected at a counter (not a bank credit).
    fn counter_payment_of_a_victim(
        &mut self,
        rng: &mut ChaCha8Rng,
        frauds: &mut Frauds,
    ) -> Option<(usize, usize)> {
        let beneficiary = self.victim(rng, frauds)?;
        let row = self.whole_row(rng, frauds, beneficiary, |draft| {
            matches!(draft.place, Place::Counter(_))
        })?;
        Some((beneficiary, row))
    }

    fn burst(&mut self, rng: &mut ChaCha8Rng, frauds: &mut Frauds, remaining: usize) -> usize {
        let Some((beneficiary, row)) = self.counter_payment_of_a_victim(rng, frauds) else {
            return 0;
        };
        let original = self.drafts[row].clone();
        let Place::Counter(counter) = original.place else {
            unreachable!("a counter payment was picked");
        };
        let hours = self.counters[counter as usize];
        let day = ist_day_start(original.time);
        // Within the hour after the real payment, or before it when the counter closes first.
        let window = if original.time + BURST_SPAN < day + hours.close {
            original.time + MINUTE..original.time + BURST_SPAN
        } else {
            (original.time - BURST_SPAN).max(day + hours.open)..original.time - MINUTE
        };
        if window.is_empty() {
            return 0;
        }
        let extra = rng
            .random_range(BURST_EXTRA)
            .min(remaining)
            .max(*BURST_EXTRA.start());
        for _ in 0..extra {
            self.drafts.push(Draft {
                time: rng.random_range(window.clone()),
                kind: Kind::Added,
                fraud: Some(BURST),
                ..original.clone()
            });
        }
        frauds.used[beneficiary] = true;
        extra
    }

    fn slow_collusion(
        &mut self,
        rng: &mut ChaCha8Rng,
        frauds: &mut Frauds,
        remaining: usize,
    ) -> usize {
        let district = rng.random_range(0..DISTRICTS.len());
        let counter = self.ordinary_counter(rng, district);
        let wanted = rng
            .random_range(COLLUSION_VICTIMS)
            .min(remaining)
            .max(*COLLUSION_VICTIMS.start());
        let people = &self.world.beneficiaries_by_district[district];
        if people.len() < wanted * 2 {
            return 0;
        }
        let mut victims: Vec<usize> = Vec::with_capacity(wanted);
        for _ in 0..wanted * 30 {
            if victims.len() == wanted {
                break;
            }
            let person = *people.choose(rng).expect("non-empty");
            let never_there = frauds.rows_of[person]
                .iter()
                .all(|&row| self.drafts[row as usize].place != Place::Counter(counter));
            if !frauds.used[person] && never_there && !victims.contains(&person) {
                victims.push(person);
            }
        }
        if victims.len() < wanted {
            return 0;
        }
        let hours = self.counters[counter as usize];
        let open_for = (hours.close - MINUTE - hours.open) as f64;
        let span = (rng.random_range(COLLUSION_HOURS) * HOUR as f64).min(open_for) as i64;
        let day = next_working_day(ist_day_start(rng.random_range(self.start..self.end)));
        if day >= self.end {
            return 0;
        }
        let first = day + hours.open + rng.random_range(0..=(open_for as i64 - span));
        for &victim in &victims {
            let scheme = *self.world.beneficiaries[victim]
                .schemes
                .choose(rng)
                .expect("every beneficiary has a scheme");
            let rupees = entitled_rupees(rng, &self.world, victim, scheme);
            self.drafts.push(Draft {
                beneficiary: victim as u32,
                account: self.people[victim].account,
                scheme,
                amount_paise: rupees * 100,
                place: Place::Counter(counter),
                time: first + rng.random_range(0..=span),
                kind: Kind::Added,
                fraud: Some(SLOW_COLLUSION),
            });
            frauds.used[victim] = true;
        }
        victims.len()
    }

    fn account_takeover(&mut self, rng: &mut ChaCha8Rng, frauds: &mut Frauds) -> usize {
        let Some(anchor) = self.victim(rng, frauds) else {
            return 0;
        };
        let district = self.world.beneficiaries[anchor].district;
        let length = rng.random_range(TAKEOVER_DAYS) * DAY;
        // Late enough that the victims have a history in their own account.
        let earliest = self.start + (28 * DAY).min((self.end - self.start) / 3);
        let latest = self.end - length;
        let from = if latest > earliest {
            ist_day_start(rng.random_range(earliest..latest))
        } else {
            self.start
        };
        let during = from..from + length;
        let in_window = |frauds: &Frauds, person: usize| -> Vec<u32> {
            frauds.rows_of[person]
                .iter()
                .copied()
                .filter(|&row| during.contains(&self.drafts[row as usize].time))
                .collect()
        };
        if in_window(frauds, anchor).is_empty() {
            return 0;
        }
        let wanted = rng.random_range(TAKEOVER_VICTIMS);
        let people = &self.world.beneficiaries_by_district[district];
        let mut victims: Vec<usize> = vec![anchor];
        let mut redirected: Vec<u32> = Vec::new();
        for _ in 0..wanted * 40 {
            if victims.len() == wanted {
                break;
            }
            let person = *people.choose(rng).expect("the anchor lives there");
            let household = self.people[person].account;
            if frauds.used[person]
                || victims
                    .iter()
                    .any(|&victim| self.people[victim].account == household)
            {
                continue;
            }
            if !in_window(frauds, person).is_empty() {
                victims.push(person);
            }
        }
        if victims.len() < *TAKEOVER_VICTIMS.start() {
            return 0;
        }
        for &victim in &victims {
            redirected.extend(in_window(frauds, victim));
        }
        if redirected.is_empty() {
            return 0;
        }
        let account = self.new_account(rng);
        for &row in &redirected {
            let draft = &mut self.drafts[row as usize];
            draft.account = account;
            draft.fraud = Some(ACCOUNT_TAKEOVER);
        }
        for &victim in &victims {
            frauds.used[victim] = true;
        }
        redirected.len()
    }

    fn off_hours_counter(&mut self, rng: &mut ChaCha8Rng, frauds: &mut Frauds) -> usize {
        let Some((beneficiary, row)) = self.counter_payment_of_a_victim(rng, frauds) else {
            return 0;
        };
        let draft = &mut self.drafts[row];
        draft.time = ist_day_start(draft.time) + rng.random_range(OFF_HOURS);
        draft.fraud = Some(OFF_HOURS_COUNTER);
        frauds.used[beneficiary] = true;
        1
    }

    /// Drops whole ordinary payments of the last households (no one in a fraud) until `rows`
    /// remain: the frauds' incidents may overshoot their quotas by a few rows.
    fn trim_to(&mut self, rows: usize, used: &[bool]) {
        let mut surplus = self.drafts.len().saturating_sub(rows);
        let mut remove = vec![false; self.drafts.len()];
        for (index, draft) in self.drafts.iter().enumerate().rev() {
            if surplus == 0 {
                break;
            }
            let involved = used
                .get(draft.beneficiary as usize)
                .copied()
                .unwrap_or(false);
            if draft.kind == Kind::Whole && draft.fraud.is_none() && !involved {
                remove[index] = true;
                surplus -= 1;
            }
        }
        let mut index = 0;
        self.drafts.retain(|_| {
            index += 1;
            !remove[index - 1]
        });
    }

    /// Gives each bank credit its time: each bank's credits of a day are cut into batches of
    /// hundreds, each run within a few minutes at a random time before 05:00.
    fn time_bank_batches(&mut self, rng: &mut ChaCha8Rng) {
        let mut credits: Vec<(EventTime, u8, u32)> = self
            .drafts
            .iter()
            .enumerate()
            .filter_map(|(index, draft)| match draft.place {
                Place::Bank(bank) => Some((draft.time, bank, index as u32)),
                Place::Counter(_) => None,
            })
            .collect();
        credits.sort_unstable();
        for group in credits.chunk_by_mut(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let day = group[0].0;
            group.shuffle(rng);
            let mut rest: &[(EventTime, u8, u32)] = group;
            while !rest.is_empty() {
                let size = rng.random_range(BATCH_SIZE).min(rest.len());
                let (batch, after) = rest.split_at(size);
                rest = after;
                let duration = size as f64 * rng.random_range(BATCH_SECONDS_PER_CREDIT);
                let latest_start = (BATCH_WINDOW_END - duration.ceil() as i64 - MINUTE).max(MINUTE);
                let first = day + rng.random_range(0..latest_start);
                for (position, &(_, _, index)) in batch.iter().enumerate() {
                    let offset = duration * position as f64 / size as f64;
                    self.drafts[index as usize].time = first + offset as i64;
                }
            }
        }
    }

    /// The drafts as transactions, with refs in their (event-time) order.
    fn transactions(&self, rng: &mut ChaCha8Rng, seed: u64) -> Vec<NewTransaction> {
        self.drafts
            .iter()
            .enumerate()
            .map(|(index, draft)| {
                let (agent_id, location, district) = match draft.place {
                    Place::Bank(bank) => (BANK_CHANNELS[bank as usize].0.to_string(), None, None),
                    Place::Counter(counter) => {
                        let agent = &self.world.agents[counter as usize];
                        (
                            agent.id.clone(),
                            Some(jitter_in_india(rng, agent.location, 1.5)),
                            Some(DISTRICTS[agent.district].name.to_string()),
                        )
                    }
                };
                NewTransaction {
                    transaction_ref: Some(format!("MSW{:06}{:010}", seed % 1_000_000, index + 1)),
                    beneficiary_id: self.world.beneficiaries[draft.beneficiary as usize]
                        .id
                        .clone(),
                    account_id: Some(self.accounts[draft.account as usize].clone()),
                    agent_id: Some(agent_id),
                    scheme: draft.scheme.code().to_string(),
                    amount_paise: draft.amount_paise,
                    time: draft.time,
                    latitude: location.map(|point| point.0),
                    longitude: location.map(|point| point.1),
                    district,
                    is_anomaly: Some(draft.fraud.is_some()),
                    fraud_type: draft.fraud.map(str::to_string),
                }
            })
            .collect()
    }
}

/// What fraud injection keeps track of.
struct Frauds<'a> {
    /// Each beneficiary's ordinary payments (indices into the drafts), in time order.
    rows_of: Vec<Vec<u32>>,
    /// Beneficiaries already in a fraud.
    used: &'a mut [bool],
    /// Fraud rows made per type.
    made: [usize; 7],
}

/// A beneficiary's schemes. Only the first member of a family draws PM-KISAN (one per farmer
/// family), migrants draw no MGNREGA wages, and nobody is registered for nothing.
fn draw_schemes<R: Rng>(
    rng: &mut R,
    state: usize,
    first_member: bool,
    migrant: bool,
) -> Vec<SchemeKind> {
    let wages_paid = STATES[state].mgnrega_daily_wage > 0 && !migrant;
    let mut schemes = Vec::new();
    for kind in SchemeKind::ALL {
        let allowed = match kind {
            SchemeKind::PmKisan => first_member,
            SchemeKind::Mgnrega => wages_paid,
            _ => true,
        };
        if rng.random_bool(kind.enrolment_probability()) && allowed {
            schemes.push(kind);
        }
    }
    if schemes.is_empty() {
        schemes.push(if first_member {
            SchemeKind::PmKisan
        } else if wages_paid && rng.random_bool(0.6) {
            SchemeKind::Mgnrega
        } else {
            SchemeKind::OldAgePension
        });
    }
    schemes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_wage_is_different_positive_parts_summing_to_the_wage() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for total in [711, 1_422, 2_244, 4_488] {
            for parts in [2, 3] {
                let amounts = split_rupees(&mut rng, total, parts);
                assert_eq!(amounts.len(), parts);
                assert_eq!(amounts.iter().sum::<i64>(), total);
                assert!(amounts.iter().all(|&amount| amount > 0), "{amounts:?}");
                let mut distinct = amounts.clone();
                distinct.sort_unstable();
                distinct.dedup();
                assert_eq!(distinct.len(), parts, "{amounts:?}");
            }
        }
    }

    #[test]
    fn quotas_share_the_fraud_rows_over_the_seven_types() {
        let quotas = fraud_quotas(10_000, 0.0103);
        assert_eq!(quotas.iter().sum::<usize>(), 103);
        assert!(quotas.iter().all(|&quota| quota == 14 || quota == 15));
    }
}
