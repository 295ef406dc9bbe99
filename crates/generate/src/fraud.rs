//! Fraud injection: turns some normal payments into frauds and adds fraudulent ones, each row
//! labeled (`is_anomaly = 1`, `fraud_type`).
//!
//! The first four types are visible in the row itself; the next four are made of rows that look
//! normal one by one (an entitled amount, business hours, the beneficiary's usual counter) and
//! only history gives them away:
//! - `duplicate_payment`: an instalment paid a second time 1–5 days later;
//! - `burst`: 3–7 more payments to one beneficiary within the hour after a real one;
//! - `shared_account_ring`: 6–15 beneficiaries of one district paid into one account within two weeks;
//! - `agent_collusion`: one agent paying 12–40 beneficiaries of its district within 20–45 minutes.
//!
//! The ninth is not even in the history:
//! - `compromised_counter`: an operator caught colluding goes on diverting ordinary instalments:
//!   every ordinary payment at the counter of an `agent_collusion` incident for 7–21 days,
//!   from 8–10 days after the incident, each row left exactly as it was paid (amount, time,
//!   account, place). Only auditors' verdicts on the collusion at the same counter can give
//!   them away. A world without a collusion incident has no compromised counter.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use aegis_core::domain::FraudType;
use aegis_core::time::{DAY, EventTime, HOUR, MINUTE, ist_day_start};

use crate::catalogue::{DISTRICTS, FOREIGN_PLACES, SchemeKind};
use crate::payments::{Draft, Scheduler, draft, entitled_rupees};
use crate::world::World;
use crate::world::{business_time, jitter, jitter_in_india, new_account_number, working_day_of};

/// Rows each fraud type adds to the data set (the rest modify or only label existing rows).
pub fn adds_rows(kind: FraudType) -> bool {
    matches!(
        kind,
        FraudType::DuplicatePayment | FraudType::Burst | FraudType::AgentCollusion
    )
}

/// Labels a draft as fraud of `kind`.
fn label(draft: &mut Draft, kind: FraudType) {
    draft.transaction.is_anomaly = Some(true);
    draft.transaction.fraud_type = Some(kind.code().to_string());
}

/// Turns a normal payment into a row-visible fraud of `kind` (inflated or probe amount,
/// off-hours, far from home) and labels it.
pub fn mutate<R: Rng>(rng: &mut R, world: &World, draft: &mut Draft, kind: FraudType) {
    let transaction = &mut draft.transaction;
    match kind {
        FraudType::InflatedAmount => {
            let factor = rng.random_range(5.0..40.0);
            transaction.amount_paise =
                ((transaction.amount_paise as f64 * factor) / 10_000.0).round() as i64 * 10_000;
        }
        FraudType::ProbeAmount => transaction.amount_paise = rng.random_range(1..=10) * 100,
        FraudType::OffHours => {
            let day = ist_day_start(transaction.time);
            transaction.time = day + rng.random_range(0..5 * HOUR);
        }
        FraudType::FarFromHome => {
            let home = world.beneficiaries[draft.beneficiary].home;
            let abroad = rng.random_bool(0.3);
            let place = if abroad {
                let (_, lat, lon) = FOREIGN_PLACES.choose(rng).expect("non-empty");
                (*lat, *lon)
            } else {
                // A district at least 600 km from home.
                let far: Vec<_> = DISTRICTS
                    .iter()
                    .filter(|d| {
                        aegis_core::geo::haversine_km(home, (d.latitude, d.longitude)) > 600.0
                    })
                    .collect();
                let district = far.choose(rng).expect("India is wide");
                (district.latitude, district.longitude)
            };
            // On land: abroad, within a few km of an inland city; at home, inside India (a
            // coastal district's jitter that lands in the sea falls back to its centre, with
            // no extra random draw, so the rest of the data set is unchanged).
            let location = if abroad {
                jitter(rng, place, 1.0)
            } else {
                let point = jitter(rng, place, 5.0);
                if aegis_core::geo::is_in_india(point) {
                    point
                } else {
                    place
                }
            };
            transaction.latitude = Some(location.0);
            transaction.longitude = Some(location.1);
        }
        other => panic!("{other:?} is not a single-row fraud"),
    }
    label(draft, kind);
}

/// `extra` more payments like `original` within the hour after it, labeled `burst`.
pub fn burst_rows<R: Rng>(
    rng: &mut R,
    world: &World,
    original: &Draft,
    extra: usize,
) -> Vec<Draft> {
    let mut offsets: Vec<i64> = (0..extra)
        .map(|_| rng.random_range(2 * MINUTE..HOUR))
        .collect();
    offsets.sort_unstable();
    offsets
        .into_iter()
        .map(|offset| {
            let mut copy = original.clone();
            copy.transaction.time = original.transaction.time + offset;
            let location = jitter_in_india(rng, world.agents[copy.agent].location, 1.5);
            copy.transaction.latitude = Some(location.0);
            copy.transaction.longitude = Some(location.1);
            label(&mut copy, FraudType::Burst);
            copy
        })
        .collect()
}

/// `original` paid again 1–5 days later, labeled `duplicate_payment`.
pub fn duplicate_of<R: Rng>(rng: &mut R, original: &Draft) -> Draft {
    let mut copy = original.clone();
    let day = working_day_of(copy.transaction.time + rng.random_range(1..=5) * DAY);
    copy.transaction.time = business_time(rng, day);
    label(&mut copy, FraudType::DuplicatePayment);
    copy
}

/// One agent paying `size` beneficiaries of its district within `span` from `start`, each an
/// entitled amount, labeled `agent_collusion`.
pub fn collusion_rows<R: Rng>(
    rng: &mut R,
    world: &World,
    agent: usize,
    start: EventTime,
    size: usize,
    span: i64,
) -> Vec<Draft> {
    let people = &world.beneficiaries_by_district[world.agents[agent].district];
    let chosen: Vec<usize> = people.choose_multiple(rng, size).copied().collect();
    let mut offsets: Vec<i64> = (0..chosen.len())
        .map(|_| rng.random_range(0..span.max(1)))
        .collect();
    offsets.sort_unstable();
    chosen
        .iter()
        .zip(offsets)
        .map(|(&person, offset)| {
            let scheme = *world.beneficiaries[person]
                .schemes
                .choose(rng)
                .expect("enrolled");
            let scheme = if scheme == SchemeKind::Housing {
                SchemeKind::PmKisan
            } else {
                scheme
            };
            let rupees = entitled_rupees(rng, world, person, scheme);
            let account = world.beneficiaries[person].account.clone();
            let mut draft = draft(
                rng,
                world,
                person,
                agent,
                account,
                scheme,
                rupees * 100,
                start + offset,
            );
            label(&mut draft, FraudType::AgentCollusion);
            draft
        })
        .collect()
}

/// Injects about `per_type` fraud rows of every type into `drafts` (normal rows, any order).
/// Modifies rows in place for the row-visible types, the rings and the compromised counters,
/// and appends rows for the others. Returns the compromised counters, so that payments added
/// to `drafts` afterwards at one of them during its compromise are labeled too
/// ([`Compromise::divert`]).
pub fn inject<R: Rng>(
    rng: &mut R,
    scheduler: &Scheduler<'_>,
    drafts: &mut Vec<Draft>,
    per_type: usize,
) -> Vec<Compromise> {
    if per_type == 0 || drafts.is_empty() {
        return Vec::new();
    }
    let normal_count = drafts.len();
    let mut used = vec![false; normal_count];
    let pick_unused = |rng: &mut R, used: &mut Vec<bool>| -> Option<usize> {
        for _ in 0..1000 {
            let index = rng.random_range(0..normal_count);
            if !used[index] {
                used[index] = true;
                return Some(index);
            }
        }
        None
    };
    let world = scheduler.world;

    // Row-visible frauds: modify a normal payment.
    for kind in [
        FraudType::InflatedAmount,
        FraudType::ProbeAmount,
        FraudType::OffHours,
        FraudType::FarFromHome,
    ] {
        for _ in 0..per_type {
            let Some(index) = pick_unused(rng, &mut used) else {
                break;
            };
            mutate(rng, world, &mut drafts[index], kind);
        }
    }

    // Duplicate payments: the same instalment again, 1–5 days later, inside the generated
    // window (a copy after its end would stretch the data past the days asked for, and every
    // view anchored at the newest payment with it).
    let mut added = Vec::new();
    let mut attempts = 0;
    while added.len() < per_type && attempts < 10 * per_type {
        attempts += 1;
        let Some(index) = pick_unused(rng, &mut used) else {
            break;
        };
        let copy = duplicate_of(rng, &drafts[index]);
        if copy.transaction.time < scheduler.end {
            added.push(copy);
        } else {
            used[index] = false;
        }
    }

    // Bursts: 3–7 extra payments within the hour after a real one.
    let mut burst_count = 0;
    while burst_count < per_type {
        let Some(index) = pick_unused(rng, &mut used) else {
            break;
        };
        let original = drafts[index].clone();
        let extra = rng.random_range(3..=7).min(per_type - burst_count);
        added.extend(burst_rows(rng, world, &original, extra));
        burst_count += extra;
    }

    // Shared-account rings: payments of several beneficiaries of one district diverted into one
    // account within two weeks.
    // Normal rows per district in time order, so a ring finds its members by binary search
    // rather than by scanning every row (that scan was 70 % of generating a million rows).
    let mut district_rows: Vec<Vec<usize>> = vec![Vec::new(); DISTRICTS.len()];
    for (index, draft) in drafts.iter().enumerate().take(normal_count) {
        district_rows[world.beneficiaries[draft.beneficiary].district].push(index);
    }
    for rows in &mut district_rows {
        rows.sort_by_key(|&index| (drafts[index].transaction.time, index));
    }
    let mut ring_rows = 0;
    let mut attempts = 0;
    while ring_rows < per_type && attempts < 10_000 {
        attempts += 1;
        let Some(anchor) = pick_unused(rng, &mut used) else {
            break;
        };
        used[anchor] = false;
        let district = world.beneficiaries[drafts[anchor].beneficiary].district;
        let start = drafts[anchor].transaction.time;
        // The last ring may overshoot the quota a little: a "ring" of one is not a ring.
        let size = rng.random_range(6..=15).min(per_type - ring_rows).max(3);
        let candidates = &district_rows[district];
        let first = candidates.partition_point(|&i| drafts[i].transaction.time < start);
        let last = candidates.partition_point(|&i| drafts[i].transaction.time < start + 14 * DAY);
        let mut members: Vec<usize> = candidates[first..last]
            .iter()
            .copied()
            .filter(|&i| !used[i])
            .collect();
        members.shuffle(rng);
        members.sort_by_key(|&i| drafts[i].beneficiary);
        members.dedup_by_key(|i| drafts[*i].beneficiary);
        if members.len() < 3 {
            continue;
        }
        members.shuffle(rng);
        let ring_account = new_account_number(rng);
        for &member in members.iter().take(size) {
            used[member] = true;
            drafts[member].transaction.account_id = Some(ring_account.clone());
            label(&mut drafts[member], FraudType::SharedAccountRing);
            ring_rows += 1;
        }
    }

    // Agent collusion: one agent paying out to many beneficiaries of its district within 20–45
    // minutes, each an entitled amount.
    // Bounded like the rings: in a small world no district may have the dozen beneficiaries a
    // collusion needs, and then there are fewer collusion rows rather than an endless search.
    // Each incident's agent and start, for the compromises that follow some of them.
    let mut collusions = Vec::new();
    let mut collusion_count = 0;
    let mut attempts = 0;
    while collusion_count < per_type && attempts < 10_000 {
        attempts += 1;
        let Some(index) = pick_unused(rng, &mut used) else {
            break;
        };
        used[index] = false;
        let agent = drafts[index].agent;
        let district = world.agents[agent].district;
        let people = &world.beneficiaries_by_district[district];
        if people.len() < 12 {
            continue;
        }
        let day = working_day_of(drafts[index].transaction.time);
        let start = day + rng.random_range(10 * HOUR..16 * HOUR);
        let size = rng
            .random_range(12..=40)
            .min(per_type - collusion_count)
            .max(10);
        let span = rng.random_range(20 * MINUTE..45 * MINUTE);
        let rows = collusion_rows(rng, world, agent, start, size, span);
        collusions.push((agent, start));
        collusion_count += rows.len();
        added.extend(rows);
    }

    // Compromised counters: every ordinary payment still unused at the counters of some of the
    // collusion incidents, for 7–21 days from 8–10 days after the incident, labeled and
    // otherwise left as it is. Last, so it takes only what no other type used.
    let compromises = compromise_counters(rng, world, drafts, &mut used, &mut collusions, per_type);
    drafts.extend(added);
    compromises
}

/// Days from the IST day of a collusion incident to the start of the compromise that follows
/// it at the same counter. Auditors decide a day's verdicts a week after the day ends, so the
/// first confirmations of the collusion exist from 8 days after its day on: a compromise that
/// starts then follows a fraud the detector can already have been told of, which is the only
/// thing that can give it away.
pub const COMPROMISE_DELAY_DAYS: std::ops::RangeInclusive<i64> = 8..=10;

/// Shortest and longest compromise of a counter, in days. Nothing in a diverted row gives it
/// away: the detector learns of it only from the confirmations of the collusion before it
/// ([`COMPROMISE_DELAY_DAYS`]), and a confirmation counts in full for 7 days after it is
/// decided and fades over 28 (core's `feedback`). A compromise within three weeks of it is
/// what that evidence can catch; weeks more would be payments no feedback reaches, labeled as
/// if it could. A week at least, so a compromise is a stretch of the counter's payments.
pub const COMPROMISE_DAYS: std::ops::RangeInclusive<i64> = 7..=21;

/// A counter (agent) whose operator diverts every ordinary payment made there in
/// `[start, end)`. Plain data, so payments made after the compromise was chosen (the
/// generator's top-up, the live feed's next arrivals) can be labeled by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compromise {
    pub agent: usize,
    pub start: EventTime,
    pub end: EventTime,
}

impl Compromise {
    /// The compromise of `agent`'s counter that follows a collusion incident there starting at
    /// `collusion`: from [`COMPROMISE_DELAY_DAYS`] after the incident's IST day, for
    /// [`COMPROMISE_DAYS`] (uniformly, in whole days). The start may lie after the newest
    /// payment: [`Compromise::divert`] labels payments only inside the span.
    pub fn after_collusion<R: Rng>(rng: &mut R, agent: usize, collusion: EventTime) -> Compromise {
        let start = ist_day_start(collusion) + rng.random_range(COMPROMISE_DELAY_DAYS) * DAY;
        Compromise {
            agent,
            start,
            end: start + rng.random_range(COMPROMISE_DAYS) * DAY,
        }
    }

    /// Whether `draft` is a payment at this counter during the compromise.
    pub fn covers(&self, draft: &Draft) -> bool {
        draft.agent == self.agent && (self.start..self.end).contains(&draft.transaction.time)
    }

    /// Labels `draft` `compromised_counter` if it is an ordinary (unlabeled) payment at this
    /// counter during the compromise, and says whether it did. Nothing else in the row
    /// changes: the diverted payment is the instalment the beneficiary was due.
    pub fn divert(&self, draft: &mut Draft) -> bool {
        if draft.transaction.is_anomaly == Some(true) || !self.covers(draft) {
            return false;
        }
        label(draft, FraudType::CompromisedCounter);
        true
    }
}

/// Compromises the counters of collusion incidents (`collusions`: the agent and start of
/// each) until about `quota` unused normal rows of `drafts` (those with an index below
/// `used.len()`) are labeled, and marks them used. The incidents are taken in a random order,
/// so compromises spread over the window as the incidents do; each is followed by
/// [`Compromise::after_collusion`], which labels every unused payment at its counter in its
/// span. An agent is compromised once at most. An incident whose span holds no unused payment
/// (one near the window's end) is skipped, and so is one that would overshoot the quota by
/// more than half of its payments (a quieter counter after it may fit); the first counter is
/// always taken. Without a collusion incident (a small world may have none) no counter is
/// compromised: a compromise nothing confirmed before could never be caught.
fn compromise_counters<R: Rng>(
    rng: &mut R,
    world: &World,
    drafts: &mut [Draft],
    used: &mut [bool],
    collusions: &mut [(usize, EventTime)],
    quota: usize,
) -> Vec<Compromise> {
    let mut compromises = Vec::new();
    if collusions.is_empty() || quota == 0 {
        return compromises;
    }
    // Normal rows per agent in time order, so a span's payments are a binary search away.
    let mut agent_rows: Vec<Vec<usize>> = vec![Vec::new(); world.agents.len()];
    for (index, draft) in drafts.iter().enumerate().take(used.len()) {
        agent_rows[draft.agent].push(index);
    }
    for rows in &mut agent_rows {
        rows.sort_by_key(|&index| (drafts[index].transaction.time, index));
    }
    collusions.shuffle(rng);
    let mut compromised = vec![false; world.agents.len()];
    let mut labeled = 0;
    for &(agent, collusion) in collusions.iter() {
        if labeled >= quota {
            break;
        }
        if compromised[agent] {
            continue;
        }
        let compromise = Compromise::after_collusion(rng, agent, collusion);
        let rows = &agent_rows[agent];
        let first = rows.partition_point(|&i| drafts[i].transaction.time < compromise.start);
        let last = rows.partition_point(|&i| drafts[i].transaction.time < compromise.end);
        let count = rows[first..last].iter().filter(|&&i| !used[i]).count();
        if count == 0 || (labeled > 0 && labeled + count > quota + count / 2) {
            continue;
        }
        for &index in &rows[first..last] {
            if !used[index] && compromise.divert(&mut drafts[index]) {
                used[index] = true;
                labeled += 1;
            }
        }
        compromised[agent] = true;
        compromises.push(compromise);
    }
    compromises
}
