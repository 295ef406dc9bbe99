//! The per-row detector's inputs: what the payment alone says (amount, hour, weekday, place),
//! with no history. The prototype's whole idea, kept as one of the detectors because it is the
//! strongest where frauds are extreme single payments (see [`crate::model::Detector::PerRow`]).

use crate::domain::Payment;
use crate::time::{ist_seconds_of_day, ist_weekday};

/// Number of per-row inputs.
pub const PER_ROW_COUNT: usize = 6;

/// Names of the per-row inputs, in input order.
pub const PER_ROW_NAMES: [&str; PER_ROW_COUNT] = [
    "rupees",
    "rupees_log",
    "hour",
    "weekday",
    "latitude",
    "longitude",
];

/// The per-row inputs of a payment: rupees (linear, so the largest amounts are the furthest
/// out), their logarithm, the IST hour and weekday, and the place (0, 0 when unknown).
pub fn per_row_values(payment: &Payment) -> [f32; PER_ROW_COUNT] {
    let (latitude, longitude) = payment.location.unwrap_or((0.0, 0.0));
    let rupees = payment.amount_paise as f32 / 100.0;
    [
        rupees,
        rupees.ln_1p(),
        (ist_seconds_of_day(payment.time) / 3600) as f32,
        ist_weekday(payment.time) as f32,
        latitude as f32,
        longitude as f32,
    ]
}
