//! Normal payments: each beneficiary's entitlements laid out on the schemes' calendars.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_distr::{Distribution, Geometric};

use aegis_core::domain::NewTransaction;
use aegis_core::time::{DAY, EventTime, ist_date, ist_midnight};

use crate::catalogue::{DISTRICTS, STATES, SchemeKind};
use crate::world::{World, business_time, jitter_in_india, new_account_number, next_working_day};

/// A generated payment with the indices it came from (used by fraud injection).
#[derive(Debug, Clone)]
pub struct Draft {
    pub transaction: NewTransaction,
    pub beneficiary: usize,
    pub agent: usize,
}

/// Scheme-wide dates shared by everybody in the window.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// PM-KISAN national release days (IST midnights).
    pub pm_kisan_releases: Vec<EventTime>,
    /// Old-age pension pay day of the month (1–8) per district.
    pub pension_pay_day: Vec<u32>,
    /// MGNREGA weekly pay weekday (Monday = 0 … Saturday = 5) per district.
    pub mgnrega_pay_weekday: Vec<i64>,
}

impl Calendar {
    pub fn new<R: Rng>(rng: &mut R, start: EventTime, end: EventTime) -> Calendar {
        // One release per four-month period (Apr–Jul, Aug–Nov, Dec–Mar), on a weekday in its
        // second month, as the real instalments have been.
        let mut pm_kisan_releases = Vec::new();
        let (first_year, _, _) = ist_date(start);
        for year in first_year - 1..=ist_date(end).0 + 1 {
            for month in [5, 9, 1] {
                let release_year = if month == 1 { year + 1 } else { year };
                let day = rng.random_range(1..=25);
                let release = next_working_day(ist_midnight(release_year, month, day));
                if release + 10 * DAY >= start && release < end {
                    pm_kisan_releases.push(release);
                }
            }
        }
        pm_kisan_releases.sort_unstable();
        Calendar {
            pm_kisan_releases,
            pension_pay_day: DISTRICTS.iter().map(|_| rng.random_range(1..=8)).collect(),
            mgnrega_pay_weekday: DISTRICTS.iter().map(|_| rng.random_range(0..6)).collect(),
        }
    }
}

/// The amount, in rupees, a beneficiary is entitled to for one payment of `scheme`.
pub fn entitled_rupees<R: Rng>(
    rng: &mut R,
    world: &World,
    beneficiary: usize,
    scheme: SchemeKind,
) -> i64 {
    let person = &world.beneficiaries[beneficiary];
    let state = &STATES[DISTRICTS[person.district].state];
    match scheme {
        SchemeKind::PmKisan => 2_000,
        SchemeKind::Mgnrega => rng.random_range(3..=6) * state.mgnrega_daily_wage,
        SchemeKind::OldAgePension => state.monthly_pension,
        SchemeKind::Scholarship => person.scholarship_rupees,
        SchemeKind::Housing => {
            let total = if state.hill_state { 130_000 } else { 120_000 };
            total * [40, 50, 10].choose(rng).copied().expect("non-empty") / 100
        }
    }
}

/// Lays out one beneficiary's normal payments in `[start, end)`.
pub struct Scheduler<'a> {
    pub world: &'a World,
    pub calendar: &'a Calendar,
    pub start: EventTime,
    pub end: EventTime,
    /// Share of beneficiaries who switch bank account during `[start, end)` (0.5 % a year).
    pub account_change_probability: f64,
}

impl Scheduler<'_> {
    /// Appends `beneficiary`'s payments to `out`.
    pub fn schedule<R: Rng>(&self, rng: &mut R, beneficiary: usize, out: &mut Vec<Draft>) {
        let person = &self.world.beneficiaries[beneficiary];
        let state = &STATES[DISTRICTS[person.district].state];
        // A few people change bank account during the year: normal, and the reason a new account
        // alone is not fraud.
        let account_change = rng.random_bool(self.account_change_probability).then(|| {
            (
                rng.random_range(self.start..self.end),
                new_account_number(rng),
            )
        });
        let pay =
            |rng: &mut R, day: EventTime, scheme: SchemeKind, rupees: i64, out: &mut Vec<Draft>| {
                let day = next_working_day(day);
                let time = business_time(rng, day);
                if time < self.start || time >= self.end {
                    return;
                }
                let agent = pick_agent(rng, self.world, beneficiary);
                let account = match &account_change {
                    Some((from, account)) if time >= *from => account.clone(),
                    _ => person.account.clone(),
                };
                out.push(draft(
                    rng,
                    self.world,
                    beneficiary,
                    agent,
                    account,
                    scheme,
                    rupees * 100,
                    time,
                ));
            };
        let (first_year, first_month, _) = ist_date(self.start);
        let months = ((self.end - self.start) / (28 * DAY) + 2) as u32;
        for scheme in person.schemes.clone() {
            match scheme {
                SchemeKind::PmKisan => {
                    let lag = Geometric::new(0.45).expect("valid");
                    for release in &self.calendar.pm_kisan_releases {
                        let delay = lag.sample(rng).min(6) as i64;
                        pay(rng, release + delay * DAY, scheme, 2_000, out);
                    }
                }
                SchemeKind::OldAgePension => {
                    for offset in 0..months {
                        let month_index = first_month - 1 + offset;
                        let (year, month) = (
                            first_year + i64::from(month_index / 12),
                            month_index % 12 + 1,
                        );
                        let day =
                            self.calendar.pension_pay_day[person.district] + rng.random_range(0..3);
                        pay(
                            rng,
                            ist_midnight(year, month, day),
                            scheme,
                            state.monthly_pension,
                            out,
                        );
                    }
                }
                SchemeKind::Mgnrega => {
                    let fortnightly = rng.random_bool(0.4);
                    let weekday = self.calendar.mgnrega_pay_weekday[person.district];
                    // Monday of the first week.
                    let first_monday = self.start
                        - i64::from(aegis_core::time::ist_weekday(self.start + 3600)) * DAY;
                    let period = if fortnightly { 14 } else { 7 };
                    let mut week_start = first_monday;
                    while week_start < self.end {
                        let (_, month, _) = ist_date(week_start);
                        let lean_season = (1..=6).contains(&month);
                        if rng.random_bool(if lean_season { 0.55 } else { 0.2 }) {
                            let days_worked = rng.random_range(3..=6) * (period / 7);
                            let rupees = days_worked * state.mgnrega_daily_wage;
                            pay(
                                rng,
                                week_start + (period + weekday) * DAY,
                                scheme,
                                rupees,
                                out,
                            );
                        }
                        week_start += period * DAY;
                    }
                }
                SchemeKind::Scholarship => {
                    for year in first_year..=ist_date(self.end).0 {
                        let day = ist_midnight(year, 1, 15) + rng.random_range(0..75) * DAY;
                        pay(rng, day, scheme, person.scholarship_rupees, out);
                    }
                }
                SchemeKind::Housing => {
                    let total = if state.hill_state { 130_000 } else { 120_000 };
                    let sanction = rng.random_range(self.start - 120 * DAY..self.end);
                    let sanction = aegis_core::time::ist_day_start(sanction);
                    pay(rng, sanction, scheme, total * 40 / 100, out);
                    let second = sanction + rng.random_range(120..150) * DAY;
                    let third = sanction + rng.random_range(240..300) * DAY;
                    pay(rng, second, scheme, total * 50 / 100, out);
                    pay(rng, third, scheme, total * 10 / 100, out);
                }
            }
        }
    }
}

/// A payment to `beneficiary` at `agent`'s counter (located near the counter).
#[allow(clippy::too_many_arguments)]
pub fn draft<R: Rng>(
    rng: &mut R,
    world: &World,
    beneficiary: usize,
    agent: usize,
    account: String,
    scheme: SchemeKind,
    amount_paise: i64,
    time: EventTime,
) -> Draft {
    let person = &world.beneficiaries[beneficiary];
    let counter = &world.agents[agent];
    let location = jitter_in_india(rng, counter.location, 1.5);
    Draft {
        transaction: NewTransaction {
            transaction_ref: None,
            beneficiary_id: person.id.clone(),
            account_id: Some(account),
            agent_id: Some(counter.id.clone()),
            scheme: scheme.code().to_string(),
            amount_paise,
            time,
            latitude: Some(location.0),
            longitude: Some(location.1),
            district: Some(DISTRICTS[counter.district].name.to_string()),
            is_anomaly: Some(false),
            fraud_type: None,
        },
        beneficiary,
        agent,
    }
}

/// The counter a beneficiary is paid at: usually their own agent; sometimes another one in the
/// district; rarely (a migrant worker home for a while) one in another district.
pub fn pick_agent<R: Rng>(rng: &mut R, world: &World, beneficiary: usize) -> usize {
    let person = &world.beneficiaries[beneficiary];
    let roll: f64 = rng.random();
    if roll < 0.90 {
        person.agent
    } else if roll < 0.998 {
        *world.agents_by_district[person.district]
            .choose(rng)
            .expect("agents")
    } else {
        rng.random_range(0..world.agents.len())
    }
}

/// Expected payments per beneficiary per year (for sizing the population).
pub fn expected_payments_per_year() -> f64 {
    // PM-KISAN 3, MGNREGA ~17 weeks of pay, pension 12, scholarship 1, housing ~1.5.
    0.55 * 3.0 + 0.35 * 0.75 * 17.0 + 0.20 * 12.0 + 0.08 + 0.04 * 1.5
}
