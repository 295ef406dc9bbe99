//! The simulated clock: real seconds × speed become *business* seconds, laid out on working
//! days (Monday–Saturday) with the hour-of-day profile of real payments, so a feed running at a
//! constant rate still produces the lunchtime peak and quiet evenings the detector learned.

use aegis_core::time::{DAY, EventTime, ist_weekday};

/// Simulated business seconds in one working day.
pub const BUSINESS_SECONDS_PER_DAY: f64 = 9.0 * 3600.0;

/// Maps business time to event time on working days with a realistic hour profile.
#[derive(Debug, Clone)]
pub struct SimulatedClock {
    /// IST midnight of the first simulated day.
    start_day: EventTime,
    /// Cumulative share of a day's payments by the end of each 5-minute slot.
    cdf: Vec<f64>,
}

const SLOT: i64 = 300;

impl SimulatedClock {
    /// A clock whose first working day is the IST day starting at `start_day`.
    pub fn new(start_day: EventTime) -> SimulatedClock {
        // The generator's profile: N(12:45, 2 h) clipped to 08:30–18:30, plus a thin 08:00–20:30
        // band. Integrated per 5-minute slot.
        let slots = (DAY / SLOT) as usize;
        let mut density = vec![0.0; slots];
        for (slot, value) in density.iter_mut().enumerate() {
            let hour = (slot as f64 + 0.5) * SLOT as f64 / 3600.0;
            let core = if (8.5..18.5).contains(&hour) {
                (-((hour - 12.75) / 2.0).powi(2) / 2.0).exp()
            } else {
                0.0
            };
            let band = if (8.0..20.5).contains(&hour) {
                0.012
            } else {
                0.0
            };
            *value = core + band;
        }
        let total: f64 = density.iter().sum();
        let mut running = 0.0;
        let cdf = density
            .iter()
            .map(|d| {
                running += d / total;
                running
            })
            .collect();
        SimulatedClock { start_day, cdf }
    }

    /// The event time `business_seconds` into the simulation.
    pub fn event_time(&self, business_seconds: f64) -> EventTime {
        let working_days = (business_seconds / BUSINESS_SECONDS_PER_DAY).floor() as i64;
        let fraction = business_seconds / BUSINESS_SECONDS_PER_DAY - working_days as f64;
        // Skip Sundays: count working days forward from the start.
        let mut day = self.start_day;
        let mut remaining = working_days;
        if ist_weekday(day + 3600) == 6 {
            day += DAY;
        }
        while remaining > 0 {
            day += DAY;
            if ist_weekday(day + 3600) != 6 {
                remaining -= 1;
            }
        }
        let slot = self
            .cdf
            .partition_point(|&c| c <= fraction)
            .min(self.cdf.len() - 1);
        let before = if slot == 0 { 0.0 } else { self.cdf[slot - 1] };
        let width = (self.cdf[slot] - before).max(1e-12);
        let within = ((fraction - before) / width).clamp(0.0, 1.0);
        day + slot as i64 * SLOT + (within * SLOT as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_core::time::{ist_midnight, ist_seconds_of_day};

    #[test]
    fn event_times_follow_business_hours_and_skip_sundays() {
        // 1 March 2025 was a Saturday.
        let clock = SimulatedClock::new(ist_midnight(2025, 3, 1));
        let mut previous = 0;
        let mut by_hour = [0u32; 24];
        for step in 0..20_000 {
            let time = clock.event_time(step as f64 * 30.0);
            assert!(time >= previous, "event time never goes back");
            previous = time;
            assert_ne!(ist_weekday(time), 6, "no payments on Sunday");
            let seconds = ist_seconds_of_day(time);
            assert!((8 * 3600..20 * 3600 + 1800).contains(&seconds));
            by_hour[(seconds / 3600) as usize] += 1;
        }
        assert!(
            by_hour[12] > 3 * by_hour[9],
            "midday is busier than 09:00: {by_hour:?}"
        );
    }
}
