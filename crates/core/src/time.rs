//! Event time: the text format stored in `transactions.timestamp` and its conversion to seconds.
//!
//! Stored timestamps are `YYYY-MM-DD HH:MM:SS` in Indian Standard Time (UTC+05:30, no daylight
//! saving), so they sort as text and read naturally in an auditor's SQL. In memory an event time
//! is [`EventTime`]: whole seconds since the Unix epoch (UTC). The fixed format is parsed by hand
//! because the monitor and trainer parse a million of them; RFC 3339 (CSV imports) goes through
//! chrono.

use crate::error::{Error, Result};

/// Seconds since 1970-01-01T00:00:00Z.
pub type EventTime = i64;

/// IST is UTC+05:30.
pub const IST_OFFSET_SECONDS: i64 = 5 * 3600 + 30 * 60;

pub const MINUTE: i64 = 60;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats an event time as the stored IST text.
pub fn format_ist(time: EventTime) -> String {
    let local = time + IST_OFFSET_SECONDS;
    let days = local.div_euclid(DAY);
    let seconds = local.rem_euclid(DAY);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60
    )
}

/// Parses the stored format `YYYY-MM-DD HH:MM:SS` (IST), also accepting `T` as separator and a
/// bare date (midnight), or any RFC 3339 timestamp with an explicit offset.
pub fn parse_timestamp(text: &str) -> Result<EventTime> {
    let trimmed = text.trim();
    if let Some(time) = parse_ist_fixed(trimmed) {
        return Ok(time);
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(trimmed) {
        return Ok(time.timestamp());
    }
    Err(Error::BadTimestamp(text.to_string()))
}

fn parse_ist_fixed(text: &str) -> Option<EventTime> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let mut value = 0u32;
        for &byte in bytes.get(range)? {
            if !byte.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(byte - b'0');
        }
        Some(value)
    };
    if bytes.len() != 10 && bytes.len() != 19 {
        return None;
    }
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(i64::from(year), month) {
        return None;
    }
    let (hour, minute, second) = if bytes.len() == 19 {
        if !(bytes[10] == b' ' || bytes[10] == b'T') || bytes[13] != b':' || bytes[16] != b':' {
            return None;
        }
        (digits(11..13)?, digits(14..16)?, digits(17..19)?)
    } else {
        (0, 0, 0)
    };
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    Some(days * DAY + i64::from(hour * 3600 + minute * 60 + second) - IST_OFFSET_SECONDS)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Seconds since local (IST) midnight.
pub fn ist_seconds_of_day(time: EventTime) -> i64 {
    (time + IST_OFFSET_SECONDS).rem_euclid(DAY)
}

/// Day of the week in IST, Monday = 0 … Sunday = 6.
pub fn ist_weekday(time: EventTime) -> u32 {
    // 1970-01-01 was a Thursday (3 with Monday = 0).
    ((time + IST_OFFSET_SECONDS).div_euclid(DAY) + 3).rem_euclid(7) as u32
}

/// The IST midnight starting the day of `time`.
pub fn ist_day_start(time: EventTime) -> EventTime {
    (time + IST_OFFSET_SECONDS).div_euclid(DAY) * DAY - IST_OFFSET_SECONDS
}

/// IST midnight of a calendar date.
pub fn ist_midnight(year: i64, month: u32, day: u32) -> EventTime {
    days_from_civil(year, month, day) * DAY - IST_OFFSET_SECONDS
}

/// The IST calendar date of `time`.
pub fn ist_date(time: EventTime) -> (i64, u32, u32) {
    civil_from_days((time + IST_OFFSET_SECONDS).div_euclid(DAY))
}

/// Now, as an event time.
pub fn now() -> EventTime {
    chrono::Utc::now().timestamp()
}

/// Now in unix milliseconds (the unit of `inserted_at` and `scored_at`).
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_format_round_trips_through_ist() {
        let time = parse_timestamp("2025-03-01 09:30:15").unwrap();
        // 09:30:15 IST is 04:00:15 UTC.
        assert_eq!(
            time,
            chrono::DateTime::parse_from_rfc3339("2025-03-01T04:00:15Z")
                .unwrap()
                .timestamp()
        );
        assert_eq!(format_ist(time), "2025-03-01 09:30:15");
        assert_eq!(ist_weekday(time), 5, "1 March 2025 was a Saturday");
        assert_eq!(ist_seconds_of_day(time), 9 * 3600 + 30 * 60 + 15);
    }

    #[test]
    fn rfc3339_with_offset_is_accepted() {
        let a = parse_timestamp("2025-03-01T04:00:15Z").unwrap();
        let b = parse_timestamp("2025-03-01 09:30:15").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn impossible_dates_are_rejected() {
        for bad in [
            "2025-02-30 10:00:00",
            "2025-13-01 10:00:00",
            "yesterday",
            "2025-01-01 24:00:00",
            "",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn civil_conversion_is_inverse_over_centuries() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
