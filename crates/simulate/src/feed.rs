//! What the live feed inserts: ordinary payments of the registered population, and fraud
//! incidents of every type the generator knows, built against that same population (a
//! duplicate repeats a real beneficiary's recent instalment).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use aegis_core::engine::Store;
use aegis_core::sql::Value;
use anyhow::{Context, bail};
use rand::Rng;
use rand::seq::IndexedRandom;

use aegis_core::domain::{FraudType, NewTransaction};
use aegis_core::time::{DAY, EventTime, HOUR, MINUTE, ist_day_start, parse_timestamp};
use generate::catalogue::{DISTRICTS, SchemeKind};
use generate::fraud::{Compromise, burst_rows, collusion_rows, duplicate_of, mutate};
use generate::payments::{Calendar, Draft, Scheduler, draft, entitled_rupees};
use generate::world::{Agent, Beneficiary, World, new_account_number};

/// Recent ordinary payments kept for duplicates.
const RECENT_POOL: usize = 20_000;

/// Recent collusion incidents kept for the compromises that follow them.
const RECENT_COLLUSIONS: usize = 32;

/// The feed's population and pending incident rows.
pub struct Feed {
    pub world: World,
    fraud_rate: f64,
    /// Incident rows scheduled for later event times (bursts, rings, collusion).
    pending: BinaryHeap<Reverse<(EventTime, u64, usize)>>,
    pending_rows: Vec<Option<NewTransaction>>,
    sequence: u64,
    recent: VecDeque<Draft>,
    calendar: Calendar,
    /// Ordinary payments due in the week being paid, in scheduled order.
    schedule: VecDeque<Draft>,
    /// End of the scheduled weeks so far.
    scheduled_until: EventTime,
    /// Latest event time fed: a fast feed runs ahead of the clock, and incidents follow it.
    frontier: EventTime,
    /// When each (beneficiary, scheme, amount) was last paid, from the stored history and the
    /// feed: an ordinary payment that would repeat one within the duplicate window is an
    /// instalment already paid (the feed's calendar is not the generator's), and is skipped.
    paid: HashMap<(usize, String, i64), EventTime>,
    /// Counters compromised now or from a later day, by agent: their ordinary payments are
    /// diverted during the compromise, and it is forgotten once it has ended.
    compromised: HashMap<usize, Compromise>,
    /// The latest collusion incidents (agent, start) no compromise has followed yet, oldest
    /// first: a compromised counter is one where collusion was caught (see [`Feed::arrival`]).
    collusions: VecDeque<(usize, EventTime)>,
    /// Rows the `compromised_counter` type is owed: one per arrival that picked it, less one
    /// per payment diverted (see [`Feed::arrival`]).
    compromised_owed: i64,
}

/// An ordinary payment never repeats the same scheme and amount to the same person within six
/// days: in the world the generator draws, instalments are a week or more apart, and a repeat
/// sooner is what its `duplicate_payment` fraud looks like.
pub const DUPLICATE_WINDOW: i64 = 6 * DAY;

/// Ordinary payments are scheduled a week at a time.
const SCHEDULE_CHUNK: i64 = 7 * DAY;

impl Feed {
    /// Loads the beneficiary registry and the agents' usual places from the database.
    pub fn from_database<R: Rng>(
        store: &mut Store,
        rng: &mut R,
        fraud_rate: f64,
        start_day: EventTime,
    ) -> anyhow::Result<Feed> {
        let mut world = World {
            agents_by_district: vec![Vec::new(); DISTRICTS.len()],
            beneficiaries_by_district: vec![Vec::new(); DISTRICTS.len()],
            ..World::default()
        };
        let mut agent_index = std::collections::HashMap::new();
        let (places, registry) = store.read(|sql| {
            let places = sql.query(
                "SELECT agent_id, avg(latitude), avg(longitude) FROM transactions \
                 WHERE agent_id IS NOT NULL AND latitude IS NOT NULL GROUP BY agent_id",
                &[],
            )?;
            let registry = sql.query(
                "SELECT beneficiary_id, account_id, agent_id, district, home_latitude, home_longitude, schemes \
                 FROM beneficiaries ORDER BY beneficiary_id",
                &[],
            )?;
            Ok((places, registry))
        })?;
        let agent_places: std::collections::HashMap<String, (f64, f64)> = places
            .into_iter()
            .filter_map(|row| {
                let [agent, latitude, longitude] = <[Value; 3]>::try_from(row).ok()?;
                Some((agent.into_text()?, (latitude.real()?, longitude.real()?)))
            })
            .collect();
        for row in registry {
            let Some(district) = row[3]
                .text()
                .and_then(|name| DISTRICTS.iter().position(|d| d.name == name))
            else {
                continue;
            };
            let Some(agent_id) = row[2].text().map(str::to_string) else {
                continue;
            };
            let agent = *agent_index.entry(agent_id.clone()).or_insert_with(|| {
                let place = &DISTRICTS[district];
                let location = agent_places
                    .get(&agent_id)
                    .copied()
                    .unwrap_or((place.latitude, place.longitude));
                world.agents_by_district[district].push(world.agents.len());
                world.agents.push(Agent {
                    id: agent_id.clone(),
                    district,
                    location,
                });
                world.agents.len() - 1
            });
            let codes: Vec<String> = serde_json::from_str(row[6].text().unwrap_or_default())
                .context("beneficiaries.schemes")?;
            let schemes: Vec<SchemeKind> = codes
                .iter()
                .filter_map(|c| SchemeKind::from_code(c))
                .collect();
            if schemes.is_empty() {
                continue;
            }
            world.beneficiaries_by_district[district].push(world.beneficiaries.len());
            world.beneficiaries.push(Beneficiary {
                id: row[0].text().unwrap_or_default().to_string(),
                district,
                home: (
                    row[4].real().unwrap_or(DISTRICTS[district].latitude),
                    row[5].real().unwrap_or(DISTRICTS[district].longitude),
                ),
                account: row[1].text().unwrap_or_default().to_string(),
                agent,
                schemes,
                scholarship_rupees: 12_000,
            });
        }
        if world.beneficiaries.is_empty() {
            bail!(
                "this database has no beneficiary registry to pay: run `cargo run -p generate` first, \
                 or replay an export with --replay FILE.csv"
            );
        }
        let paid = recently_paid(store, &world, start_day)?;
        Ok(Feed {
            paid,
            world,
            fraud_rate,
            pending: BinaryHeap::new(),
            pending_rows: Vec::new(),
            sequence: 0,
            recent: VecDeque::with_capacity(RECENT_POOL),
            calendar: Calendar::new(rng, start_day - 30 * DAY, start_day + 3 * 365 * DAY),
            schedule: VecDeque::new(),
            scheduled_until: start_day,
            frontier: start_day,
            compromised: HashMap::new(),
            collusions: VecDeque::with_capacity(RECENT_COLLUSIONS),
            compromised_owed: 0,
        })
    }

    /// Whether `row` repeats a payment of the same scheme and amount to the same person within
    /// the duplicate window; if not, it is recorded as paid.
    fn repeats_an_instalment(&mut self, row: &Draft) -> bool {
        let key = (
            row.beneficiary,
            row.transaction.scheme.clone(),
            row.transaction.amount_paise,
        );
        let time = row.transaction.time;
        if let Some(&last) = self.paid.get(&key)
            && (time - last).abs() < DUPLICATE_WINDOW
        {
            return true;
        }
        self.paid.insert(key, time);
        false
    }

    /// IST midnight of the day after the newest transaction (or today if there is none).
    pub fn day_after_newest(store: &mut Store) -> anyhow::Result<EventTime> {
        // Times only: one row of stray text would sort last and restart the feed at today.
        let newest = store.read(|sql| Ok(aegis_core::store::newest_timestamp(sql)?))?;
        let newest = newest
            .and_then(|text| parse_timestamp(&text).ok())
            .unwrap_or_else(aegis_core::time::now);
        Ok(ist_day_start(newest) + DAY)
    }

    /// The next ordinary payment: the population's payments follow the schemes' calendars
    /// (as `generate` lays them out), so the feed looks like the history the model learned. It
    /// is stamped with the simulated clock, or with its scheduled time when a fast feed runs
    /// ahead of the clock.
    fn ordinary<R: Rng>(&mut self, rng: &mut R, now: EventTime) -> Draft {
        loop {
            while self.schedule.is_empty() {
                let scheduler = Scheduler {
                    world: &self.world,
                    calendar: &self.calendar,
                    start: self.scheduled_until,
                    end: self.scheduled_until + SCHEDULE_CHUNK,
                    account_change_probability: 0.0,
                };
                let mut week = Vec::new();
                for person in 0..self.world.beneficiaries.len() {
                    scheduler.schedule(rng, person, &mut week);
                }
                week.sort_by_key(|draft| draft.transaction.time);
                self.schedule.extend(week);
                self.scheduled_until += SCHEDULE_CHUNK;
            }
            let mut row = self.schedule.pop_front().expect("refilled above");
            row.transaction.time = row.transaction.time.max(now);
            if self.repeats_an_instalment(&row) {
                continue;
            }
            self.frontier = self.frontier.max(row.transaction.time);
            return row;
        }
    }

    fn schedule(&mut self, rows: Vec<Draft>) {
        for row in rows {
            self.sequence += 1;
            self.pending.push(Reverse((
                row.transaction.time,
                self.sequence,
                self.pending_rows.len(),
            )));
            self.pending_rows.push(Some(row.transaction));
        }
    }

    /// Labels `row` `compromised_counter` if its counter is compromised at its event time (and
    /// forgets a compromise that has ended); says whether it did.
    fn divert(&mut self, row: &mut Draft) -> bool {
        let Some(compromise) = self.compromised.get(&row.agent).copied() else {
            return false;
        };
        if row.transaction.time >= compromise.end {
            self.compromised.remove(&row.agent);
            return false;
        }
        let diverted = compromise.divert(row);
        if diverted {
            self.compromised_owed -= 1;
        }
        diverted
    }

    /// What one arrival at event time `now` inserts right away (incidents may also schedule
    /// rows for later).
    pub fn arrival<R: Rng>(&mut self, rng: &mut R, now: EventTime) -> Vec<NewTransaction> {
        let mut row = self.ordinary(rng, now);
        // A payment at a compromised counter is that incident's: it is diverted as it is, and
        // starts no other incident.
        if self.divert(&mut row) {
            return vec![row.transaction];
        }
        if !rng.random_bool(self.fraud_rate.clamp(0.0, 1.0)) {
            if self.recent.len() == RECENT_POOL {
                self.recent.pop_front();
            }
            self.recent.push_back(row.clone());
            return vec![row.transaction];
        }
        // Incidents of several rows are started proportionally less often, so every type
        // contributes about the same number of rows.
        let kind = *FraudType::ALL.choose(rng).expect("non-empty");
        match kind {
            FraudType::InflatedAmount | FraudType::ProbeAmount | FraudType::FarFromHome => {
                mutate(rng, &self.world, &mut row, kind);
                vec![row.transaction]
            }
            FraudType::OffHours => {
                // The payment was made in the small hours of today (simulated) and reaches us
                // now; its label and its event time agree.
                mutate(rng, &self.world, &mut row, kind);
                row.transaction.time = ist_day_start(now) + rng.random_range(0..5 * HOUR);
                vec![row.transaction]
            }
            FraudType::DuplicatePayment => {
                let original = self
                    .recent
                    .iter()
                    .rev()
                    .find(|d| (DAY..5 * DAY).contains(&(now - d.transaction.time)))
                    .or(self.recent.back())
                    .cloned()
                    .unwrap_or(row);
                let mut copy = duplicate_of(rng, &original);
                copy.transaction.time = copy.transaction.time.max(now);
                vec![copy.transaction]
            }
            FraudType::Burst => {
                if rng.random_bool(0.2) {
                    let extra = rng.random_range(3..=7);
                    let rows = burst_rows(rng, &self.world, &row, extra);
                    self.schedule(rows);
                }
                vec![row.transaction]
            }
            FraudType::AgentCollusion => {
                if rng.random_bool(0.04) {
                    let size = rng.random_range(12..=40);
                    let span = rng.random_range(20 * MINUTE..45 * MINUTE);
                    let rows = collusion_rows(rng, &self.world, row.agent, now, size, span);
                    self.schedule(rows);
                    if self.collusions.len() == RECENT_COLLUSIONS {
                        self.collusions.pop_front();
                    }
                    self.collusions.push_back((row.agent, now));
                }
                vec![row.transaction]
            }
            FraudType::SharedAccountRing => {
                if rng.random_bool(0.1) {
                    self.start_ring(rng, row.beneficiary, now);
                }
                vec![row.transaction]
            }
            FraudType::CompromisedCounter => {
                // The counter of the latest collusion incident not followed yet is compromised
                // as the generator compromises one (from 8–10 days after the incident's day,
                // when the first verdicts on it exist, for 7–21 days), and every ordinary
                // payment there in that span is diverted as it arrives. How many that is
                // depends on the counter and on how fast the feed runs, so a compromise is
                // started only while the type is owed rows: every arrival that picks it owes
                // one (what each other type yields on average), every diverted payment pays
                // one back. Without an incident to follow, the rows stay owed.
                self.compromised_owed += 1;
                if self.compromised_owed > 0 {
                    self.follow_collusion(rng);
                }
                vec![row.transaction]
            }
        }
    }

    /// Compromises the counter of the latest remembered collusion incident whose counter is not
    /// compromised now ([`Compromise::after_collusion`]), and forgets the incident; does
    /// nothing when there is none. An incident whose compromise would be over before the
    /// feed's newest payment could divert nothing: it is forgotten, and the one before it
    /// tried.
    fn follow_collusion<R: Rng>(&mut self, rng: &mut R) {
        let frontier = self.frontier;
        loop {
            let compromised = &self.compromised;
            let live = |agent: &usize| {
                compromised
                    .get(agent)
                    .is_some_and(|compromise| compromise.end > frontier)
            };
            let Some(position) = self.collusions.iter().rposition(|(agent, _)| !live(agent)) else {
                return;
            };
            let Some((agent, time)) = self.collusions.remove(position) else {
                return;
            };
            let compromise = Compromise::after_collusion(rng, agent, time);
            if compromise.end > frontier {
                self.compromised.insert(agent, compromise);
                return;
            }
        }
    }

    /// Payments of 6–15 beneficiaries of one district into one new account over two hours.
    fn start_ring<R: Rng>(&mut self, rng: &mut R, anchor: usize, now: EventTime) {
        let district = self.world.beneficiaries[anchor].district;
        let people = &self.world.beneficiaries_by_district[district];
        let size = rng.random_range(6..=15).min(people.len());
        let account = new_account_number(rng);
        let members: Vec<usize> = people.choose_multiple(rng, size).copied().collect();
        let mut rows = Vec::new();
        for person in members {
            let beneficiary = &self.world.beneficiaries[person];
            let scheme = *beneficiary.schemes.choose(rng).expect("enrolled");
            let rupees = entitled_rupees(rng, &self.world, person, scheme);
            let agent = beneficiary.agent;
            let time = now + rng.random_range(0..2 * HOUR);
            let mut row = draft(
                rng,
                &self.world,
                person,
                agent,
                account.clone(),
                scheme,
                rupees * 100,
                time,
            );
            row.transaction.is_anomaly = Some(true);
            row.transaction.fraud_type = Some(FraudType::SharedAccountRing.code().to_string());
            rows.push(row);
        }
        self.schedule(rows);
    }

    /// Scheduled incident rows whose event time has come (by the clock, or by the feed when it
    /// runs ahead of the clock), in event-time order.
    pub fn due(&mut self, now: EventTime) -> Vec<NewTransaction> {
        let now = now.max(self.frontier);
        let mut out = Vec::new();
        while let Some(Reverse((time, _, index))) = self.pending.peek().copied() {
            if time > now {
                break;
            }
            self.pending.pop();
            if let Some(row) = self.pending_rows[index].take() {
                out.push(row);
            }
        }
        if self.pending.is_empty() {
            self.pending_rows.clear();
        }
        out
    }
}

/// The last time each registered beneficiary was paid each (scheme, amount) within the
/// duplicate window before `start_day`.
fn recently_paid(
    store: &mut Store,
    world: &World,
    start_day: EventTime,
) -> anyhow::Result<HashMap<(usize, String, i64), EventTime>> {
    let index: HashMap<&str, usize> = world
        .beneficiaries
        .iter()
        .enumerate()
        .map(|(position, beneficiary)| (beneficiary.id.as_str(), position))
        .collect();
    let since = aegis_core::time::format_ist(start_day - DUPLICATE_WINDOW);
    let rows = store.read(|sql| {
        sql.query(
            "SELECT beneficiary_id, scheme, amount_paise, max(timestamp) FROM transactions \
             WHERE timestamp >= ?1 AND amount_paise IS NOT NULL \
             GROUP BY beneficiary_id, scheme, amount_paise",
            &[since.into()],
        )
    })?;
    let mut paid = HashMap::new();
    for row in rows {
        let Some(&position) = row[0].text().and_then(|id| index.get(id)) else {
            continue;
        };
        let Some(time) = row[3].text().and_then(|text| parse_timestamp(text).ok()) else {
            continue;
        };
        let (Some(scheme), Some(paise)) = (row[1].text(), row[2].int()) else {
            continue;
        };
        paid.insert((position, scheme.to_string(), paise), time);
    }
    Ok(paid)
}
