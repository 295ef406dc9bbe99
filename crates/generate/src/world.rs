//! The synthetic population: beneficiaries at real places, their accounts, the payment agents
//! near them, and what each is entitled to. Also used by `simulate` to pay the same people.

use rand::Rng;
use rand::distr::weighted::WeightedIndex;
use rand::seq::IndexedRandom;
use rand_distr::{Distribution, Normal};

use aegis_core::time::{DAY, EventTime, HOUR, ist_day_start, ist_weekday};

use crate::catalogue::{DISTRICTS, STATES, SchemeKind};

/// A payment point (CSP / bank mitra / terminal).
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: String,
    pub district: usize,
    pub location: (f64, f64),
}

/// A registered beneficiary.
#[derive(Debug, Clone)]
pub struct Beneficiary {
    pub id: String,
    pub district: usize,
    pub home: (f64, f64),
    pub account: String,
    pub agent: usize,
    pub schemes: Vec<SchemeKind>,
    /// Scholarship amount by course, rupees.
    pub scholarship_rupees: i64,
}

/// Agents and the people they serve.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub agents: Vec<Agent>,
    /// Agent indices per district.
    pub agents_by_district: Vec<Vec<usize>>,
    pub beneficiaries: Vec<Beneficiary>,
    /// Beneficiary indices per district.
    pub beneficiaries_by_district: Vec<Vec<usize>>,
}

/// Beneficiaries one agent serves on average.
const BENEFICIARIES_PER_AGENT: f64 = 120.0;
/// One degree of latitude in km.
const KM_PER_DEGREE: f64 = 111.0;

/// Picks a point near `centre` that lies in India (resampled until it does): people and
/// counters are on land, not in the Bay of Bengal off Chennai.
pub fn jitter_in_india<R: Rng>(rng: &mut R, centre: (f64, f64), sigma_km: f64) -> (f64, f64) {
    for _ in 0..100 {
        let point = jitter(rng, centre, sigma_km);
        if aegis_core::geo::is_in_india(point) {
            return point;
        }
    }
    centre
}

/// Picks a point near `centre`, `sigma_km` standard deviation in each direction.
pub fn jitter<R: Rng>(rng: &mut R, centre: (f64, f64), sigma_km: f64) -> (f64, f64) {
    let normal = Normal::new(0.0, sigma_km / KM_PER_DEGREE).expect("positive sigma");
    let lat = centre.0 + normal.sample(rng);
    let lon = centre.1 + normal.sample(rng) / centre.0.to_radians().cos();
    ((lat * 1e5).round() / 1e5, (lon * 1e5).round() / 1e5)
}

impl World {
    /// Creates agents for about `expected_beneficiaries` people, spread by district population.
    pub fn with_agents<R: Rng>(rng: &mut R, expected_beneficiaries: usize) -> World {
        let total_population: f64 = DISTRICTS.iter().map(|d| d.population_lakhs).sum();
        let mut world = World {
            agents_by_district: vec![Vec::new(); DISTRICTS.len()],
            beneficiaries_by_district: vec![Vec::new(); DISTRICTS.len()],
            ..World::default()
        };
        for (index, district) in DISTRICTS.iter().enumerate() {
            let share = district.population_lakhs / total_population;
            let count = ((expected_beneficiaries as f64 * share / BENEFICIARIES_PER_AGENT).ceil()
                as usize)
                .max(2);
            for number in 0..count {
                // The district's number keeps ids unique (Nagpur and Nagaon share "NAG").
                let id = format!(
                    "CSP-{}{index:02}-{:04}",
                    &district.name[..3].to_uppercase(),
                    number + 1
                );
                let location = jitter_in_india(rng, (district.latitude, district.longitude), 12.0);
                world.agents_by_district[index].push(world.agents.len());
                world.agents.push(Agent {
                    id,
                    district: index,
                    location,
                });
            }
        }
        world
    }

    /// Adds one beneficiary at a population-weighted district.
    pub fn add_beneficiary<R: Rng>(
        &mut self,
        rng: &mut R,
        district_weights: &WeightedIndex<f64>,
    ) -> usize {
        let district = district_weights.sample(rng);
        let place = &DISTRICTS[district];
        let home = jitter_in_india(rng, (place.latitude, place.longitude), 15.0);
        let index = self.beneficiaries.len();
        let id = format!("BEN{:08}", index + 1);
        // 3 % share an account with a family member in the same district: normal, and the
        // reason a shared account alone is not fraud.
        let family = &self.beneficiaries_by_district[district];
        let account = if !family.is_empty() && rng.random_bool(0.03) {
            self.beneficiaries[*family.choose(rng).expect("non-empty")]
                .account
                .clone()
        } else {
            new_account_number(rng)
        };
        let agent = *self.agents_by_district[district]
            .choose(rng)
            .expect("every district has agents");
        let mut schemes: Vec<SchemeKind> = SchemeKind::ALL
            .into_iter()
            .filter(|kind| rng.random_bool(kind.enrolment_probability()))
            .filter(|kind| {
                *kind != SchemeKind::Mgnrega || STATES[place.state].mgnrega_daily_wage > 0
            })
            .collect();
        if schemes.is_empty() {
            schemes.push(SchemeKind::PmKisan);
        }
        let scholarship_rupees = *[7_000, 12_000, 13_500, 20_000, 25_000]
            .choose(rng)
            .expect("non-empty");
        self.beneficiaries_by_district[district].push(index);
        self.beneficiaries.push(Beneficiary {
            id,
            district,
            home,
            account,
            agent,
            schemes,
            scholarship_rupees,
        });
        index
    }
}

/// A fresh 12-digit bank account number with a bank prefix.
pub fn new_account_number<R: Rng>(rng: &mut R) -> String {
    format!("AC{:012}", rng.random_range(0..1_000_000_000_000u64))
}

/// District sampling weights (population).
pub fn district_weights() -> WeightedIndex<f64> {
    WeightedIndex::new(DISTRICTS.iter().map(|d| d.population_lakhs)).expect("positive weights")
}

/// A time during business hours on the IST day starting at `day_start`: most payments between
/// 10:00 and 16:00, a few from 08:00 or until 20:00.
pub fn business_time<R: Rng>(rng: &mut R, day_start: EventTime) -> EventTime {
    let hours = if rng.random_bool(0.97) {
        Normal::<f64>::new(12.75, 2.0)
            .expect("valid")
            .sample(rng)
            .clamp(8.5, 18.5)
    } else {
        rng.random_range(8.0..20.5)
    };
    day_start + (hours * HOUR as f64) as i64
}

/// Moves a Sunday to the following Monday: banks and CSPs do not pay on Sundays.
pub fn next_working_day(day_start: EventTime) -> EventTime {
    if ist_weekday(day_start + HOUR) == 6 {
        day_start + DAY
    } else {
        day_start
    }
}

/// The IST day start of `time`, as a working day.
pub fn working_day_of(time: EventTime) -> EventTime {
    next_working_day(ist_day_start(time))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use aegis_core::time::ist_seconds_of_day;

    #[test]
    fn business_times_fall_between_eight_and_half_past_eight() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let day = aegis_core::time::ist_midnight(2025, 3, 3);
        for _ in 0..10_000 {
            let seconds = ist_seconds_of_day(business_time(&mut rng, day));
            assert!((8 * 3600..20 * 3600 + 1800).contains(&seconds));
        }
    }

    #[test]
    fn sundays_move_to_monday() {
        let sunday = aegis_core::time::ist_midnight(2025, 3, 2);
        assert_eq!(ist_weekday(next_working_day(sunday)), 0);
    }
}
