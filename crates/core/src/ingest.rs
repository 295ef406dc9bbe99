//! One validation for every way a payment comes in: a CSV export (`generate --from-csv`,
//! `simulate --replay`) and the payments API (`POST /api/v1/payments`). Both hand each field's
//! text to [`validate`]; the field names, units and rules live only here.
//!
//! Fields: required `beneficiary_id`, `amount` (rupees, decimal), `timestamp`, `scheme`;
//! optional `transaction_ref`, `account_id`, `agent_id`, `latitude`, `longitude`, `district`,
//! `is_anomaly` (0/1, a ground-truth label), `fraud_type`. The API also requires
//! `transaction_ref` (it is what makes a retry safe) and a timestamp with an explicit UTC
//! offset (a machine must say which clock it means); an export may write IST wall time.

use std::fmt;

use serde_json::{Map, Value, json};

use crate::domain::{NewTransaction, parse_rupees};
use crate::time::{EventTime, format_ist, parse_timestamp};

/// Fields every payment has.
pub const REQUIRED: [&str; 4] = ["beneficiary_id", "amount", "timestamp", "scheme"];
/// Fields a payment may have.
pub const OPTIONAL: [&str; 8] = [
    "transaction_ref",
    "account_id",
    "agent_id",
    "latitude",
    "longitude",
    "district",
    "is_anomaly",
    "fraud_type",
];

/// Longest identifier or text field accepted (a ref, an id, a district, a scheme).
pub const MAX_TEXT_CHARS: usize = 128;

/// Earliest and latest accepted event time: 2000-01-01 and 2100-01-01 (IST midnight). A
/// timestamp outside is a typo or a unit error (milliseconds for seconds), never a payment.
const EARLIEST: EventTime = 946_665_000;
const LATEST: EventTime = 4_102_425_000;

/// Where a payment comes from: the rules that differ between an export and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A CSV export: `transaction_ref` optional, IST wall time accepted.
    Export,
    /// The payments API: `transaction_ref` required, timestamps carry their UTC offset.
    Api,
}

/// Why a payment was refused: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// A sentence that names the field and the fix.
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// Validates one payment whose fields are read through `field` (`None`: absent or empty).
pub fn validate<'a>(
    field: impl Fn(&str) -> Option<&'a str>,
    source: Source,
) -> Result<NewTransaction, FieldError> {
    let required =
        |name: &str| field(name).ok_or_else(|| FieldError::new(name, format!("{name} is missing")));
    let text = |name: &str| -> Result<Option<String>, FieldError> {
        match field(name) {
            Some(value) if value.chars().count() > MAX_TEXT_CHARS => Err(FieldError::new(
                name,
                format!("{name} is longer than {MAX_TEXT_CHARS} characters"),
            )),
            // PostgreSQL's text cannot hold NUL, and no identifier or scheme carries a tab or
            // a line break: refused by name rather than failing the whole write later.
            Some(value) if value.chars().any(char::is_control) => Err(FieldError::new(
                name,
                format!(
                    "{name} contains a control character (NUL, tab, line break…); send the value without it"
                ),
            )),
            other => Ok(other.map(str::to_string)),
        }
    };
    let transaction_ref = text("transaction_ref")?;
    if source == Source::Api && transaction_ref.is_none() {
        return Err(FieldError::new(
            "transaction_ref",
            "transaction_ref is missing: the API needs the payment's own reference, so that a retry is recognised and never stored twice",
        ));
    }
    let beneficiary_id = text("beneficiary_id")?
        .ok_or_else(|| FieldError::new("beneficiary_id", "beneficiary_id is missing"))?;
    let amount_paise =
        parse_rupees(required("amount")?).map_err(|reason| FieldError::new("amount", reason))?;
    let time = parse_time(required("timestamp")?, source)?;
    let scheme = text("scheme")?.ok_or_else(|| FieldError::new("scheme", "scheme is missing"))?;
    let coordinate = |name: &str, limit: f64| -> Result<Option<f64>, FieldError> {
        field(name)
            .map(|text| {
                let value: f64 = text.parse().map_err(|_| {
                    FieldError::new(name, format!("{name} {text:?} is not a number"))
                })?;
                if !value.is_finite() || value.abs() > limit {
                    return Err(FieldError::new(
                        name,
                        format!("{name} {value} is out of range (±{limit})"),
                    ));
                }
                Ok(value)
            })
            .transpose()
    };
    let latitude = coordinate("latitude", 90.0)?;
    let longitude = coordinate("longitude", 180.0)?;
    if latitude.is_some() != longitude.is_some() {
        let missing = if latitude.is_some() {
            "longitude"
        } else {
            "latitude"
        };
        return Err(FieldError::new(
            missing,
            "latitude and longitude must be given together",
        ));
    }
    let is_anomaly = match field("is_anomaly") {
        None => None,
        Some("0") | Some("false") => Some(false),
        Some("1") | Some("true") => Some(true),
        Some(other) => {
            return Err(FieldError::new(
                "is_anomaly",
                format!("is_anomaly {other:?} is not 0 or 1"),
            ));
        }
    };
    Ok(NewTransaction {
        transaction_ref,
        beneficiary_id,
        account_id: text("account_id")?,
        agent_id: text("agent_id")?,
        scheme,
        amount_paise,
        time,
        latitude,
        longitude,
        district: text("district")?,
        is_anomaly,
        fraud_type: text("fraud_type")?,
    })
}

fn parse_time(text: &str, source: Source) -> Result<EventTime, FieldError> {
    let trimmed = text.trim();
    let time = match source {
        Source::Export => parse_timestamp(trimmed).map_err(|_| {
            FieldError::new(
                "timestamp",
                format!("timestamp {text:?} is not 'YYYY-MM-DD HH:MM:SS' (IST) or RFC 3339"),
            )
        })?,
        Source::Api => match chrono::DateTime::parse_from_rfc3339(trimmed) {
            Ok(time) => time.timestamp(),
            Err(_) if parse_timestamp(trimmed).is_ok() => {
                return Err(FieldError::new(
                    "timestamp",
                    format!(
                        "timestamp {text:?} has no UTC offset: send RFC 3339 with one, such as 2025-03-01T10:00:00+05:30"
                    ),
                ));
            }
            Err(_) => {
                return Err(FieldError::new(
                    "timestamp",
                    format!(
                        "timestamp {text:?} is not RFC 3339 (such as 2025-03-01T10:00:00+05:30)"
                    ),
                ));
            }
        },
    };
    if !(EARLIEST..LATEST).contains(&time) {
        return Err(FieldError::new(
            "timestamp",
            format!("timestamp {text:?} is out of range: payments from 2000 to 2099 are accepted"),
        ));
    }
    if time > crate::time::now() + FUTURE_SLACK {
        return Err(FieldError::new(
            "timestamp",
            format!(
                "timestamp {text:?} is more than a day after this machine's clock: a payment is reported after it is made; check the year (or the clock)"
            ),
        ));
    }
    Ok(time)
}

/// How far past this machine's clock a payment's time may be (clock skew between systems).
/// Beyond it the time is a typo: a payment dated in 2052 would move "now" for the overview and
/// the control sample, and hold its counter's and beneficiary's history windows open for
/// decades (every later payment there queued behind it, counted as recent).
pub const FUTURE_SLACK: EventTime = crate::time::DAY;

/// Validates one JSON payment of the API. Strings are read as they are, numbers and booleans
/// as their JSON text, `null` as absent; any other value, and any field not in
/// [`REQUIRED`]/[`OPTIONAL`], is refused by name.
pub fn validate_json(item: &Value) -> Result<NewTransaction, FieldError> {
    let Value::Object(object) = item else {
        return Err(FieldError::new(
            "",
            "each payment must be a JSON object of fields",
        ));
    };
    let mut texts: Vec<(&str, String)> = Vec::with_capacity(object.len());
    for (name, value) in object {
        let Some(known) = REQUIRED.iter().chain(&OPTIONAL).find(|k| **k == name) else {
            return Err(FieldError::new(
                name,
                format!(
                    "{name:?} is not a payment field: the fields are {}, {}",
                    REQUIRED.join(", "),
                    OPTIONAL.join(", ")
                ),
            ));
        };
        let text = match value {
            Value::Null => continue,
            Value::String(text) => text.trim().to_string(),
            // A number that is not an exact integer went through `f64` (serde_json keeps
            // no more): only the amount and the coordinates may be fractions. An identifier
            // sent as a large number would be stored rounded (`1.2345678901234568e20`).
            Value::Number(number)
                if number.is_i64()
                    || number.is_u64()
                    || matches!(*known, "amount" | "latitude" | "longitude") =>
            {
                number.to_string()
            }
            Value::Number(number) => {
                return Err(FieldError::new(
                    known,
                    format!(
                        "{known} {number} is not an exact whole number; send {known} as a string"
                    ),
                ));
            }
            Value::Bool(flag) => flag.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(FieldError::new(
                    known,
                    format!("{known} must be a string or a number, not a list or an object"),
                ));
            }
        };
        if !text.is_empty() {
            texts.push((known, text));
        }
    }
    validate(
        |name| {
            texts
                .iter()
                .find(|(known, _)| *known == name)
                .map(|(_, text)| text.as_str())
        },
        Source::Api,
    )
}

/// The API's JSON for `payment`: what a client such as `simulate --via-api` sends. Amounts
/// are rupee strings (exact), times RFC 3339 in IST.
pub fn to_json(payment: &NewTransaction) -> Value {
    let mut object = Map::new();
    let mut put = |name: &str, value: Value| {
        if !value.is_null() {
            object.insert(name.to_string(), value);
        }
    };
    put("transaction_ref", json!(payment.transaction_ref));
    put("beneficiary_id", json!(payment.beneficiary_id));
    put("account_id", json!(payment.account_id));
    put("agent_id", json!(payment.agent_id));
    put("scheme", json!(payment.scheme));
    put("amount", json!(rupees_text(payment.amount_paise)));
    put("timestamp", json!(rfc3339_ist(payment.time)));
    put("latitude", json!(payment.latitude));
    put("longitude", json!(payment.longitude));
    put("district", json!(payment.district));
    put("is_anomaly", json!(payment.is_anomaly));
    put("fraud_type", json!(payment.fraud_type));
    Value::Object(object)
}

/// Paise as the plain rupee text [`parse_rupees`] reads back exactly: `2000.50`.
pub fn rupees_text(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let paise = paise.unsigned_abs();
    format!("{sign}{}.{:02}", paise / 100, paise % 100)
}

/// An event time as RFC 3339 in IST: `2025-03-01T10:00:00+05:30`.
pub fn rfc3339_ist(time: EventTime) -> String {
    format!("{}+05:30", format_ist(time).replacen(' ', "T", 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> Value {
        json!({
            "transaction_ref": "R1",
            "beneficiary_id": "B1",
            "amount": "2000.50",
            "timestamp": "2025-03-01T10:00:00+05:30",
            "scheme": "PM-KISAN",
            "latitude": 25.6,
            "longitude": 85.1,
            "is_anomaly": false
        })
    }

    fn refused(item: Value) -> FieldError {
        validate_json(&item).expect_err("refused")
    }

    #[test]
    fn a_json_payment_round_trips_through_the_clients_encoding() {
        let parsed = validate_json(&payment()).unwrap();
        assert_eq!(parsed.amount_paise, 200_050);
        assert_eq!(format_ist(parsed.time), "2025-03-01 10:00:00");
        assert_eq!(parsed.is_anomaly, Some(false));
        assert_eq!(validate_json(&to_json(&parsed)).unwrap(), parsed);
        let mut number = payment();
        number["amount"] = json!(2000.5);
        assert_eq!(validate_json(&number).unwrap().amount_paise, 200_050);
    }

    #[test]
    fn each_bad_field_is_named_with_its_fix() {
        let with = |name: &str, value: Value| {
            let mut item = payment();
            item[name] = value;
            refused(item)
        };
        let error = with("amount", json!("12abc"));
        assert_eq!(error.field, "amount");
        assert!(error.reason.contains("not a number of rupees"), "{error}");
        let error = with("timestamp", json!("2025-03-01 10:00:00"));
        assert!(error.reason.contains("no UTC offset"), "{error}");
        let error = with("timestamp", json!("1970-01-01T00:00:00Z"));
        assert!(error.reason.contains("out of range"), "{error}");
        let error = with("timestamp", json!("2098-03-01T10:00:00+05:30"));
        assert!(
            error.reason.contains("after this machine's clock"),
            "{error}"
        );
        assert_eq!(with("amount", json!([1])).field, "amount");
        assert_eq!(with("ammount", json!("1")).field, "ammount");
        assert_eq!(with("latitude", json!("north")).field, "latitude");
        let mut no_ref = payment();
        no_ref.as_object_mut().unwrap().remove("transaction_ref");
        assert_eq!(refused(no_ref).field, "transaction_ref");
        let mut no_scheme = payment();
        no_scheme["scheme"] = Value::Null;
        assert_eq!(refused(no_scheme).reason, "scheme is missing");
        assert_eq!(refused(json!([1, 2])).field, "");
    }

    #[test]
    fn values_that_would_be_stored_wrong_are_refused() {
        let with = |name: &str, value: Value| {
            let mut item = payment();
            item[name] = value;
            refused(item)
        };
        // PostgreSQL cannot store a NUL; the whole batch used to fail with a bare 500.
        let error = with("beneficiary_id", json!("B1\u{0}"));
        assert_eq!(error.field, "beneficiary_id");
        assert!(error.reason.contains("control character"), "{error}");
        assert_eq!(with("scheme", json!("PM\tKISAN")).field, "scheme");
        // A reference past u64 reaches us as a float and would be stored rounded.
        let error = with("transaction_ref", json!(123_456_789_012_345_678_901.0));
        assert!(
            error.reason.contains("send transaction_ref as a string"),
            "{error}"
        );
        assert_eq!(with("agent_id", json!(12.5)).field, "agent_id");
        let error = with("amount", json!("2000,50"));
        assert!(error.reason.contains("decimals with a point"), "{error}");
        let error = with("amount", json!(50_000_000_000_000_000_u64));
        assert!(
            error.reason.contains("above the largest payment"),
            "{error}"
        );
        // Whole numbers stay welcome where a string is expected.
        let mut numbered = payment();
        numbered["beneficiary_id"] = json!(1000);
        assert_eq!(validate_json(&numbered).unwrap().beneficiary_id, "1000");
    }

    #[test]
    fn an_export_may_use_ist_wall_time_and_omit_the_ref() {
        let fields = [
            ("beneficiary_id", "B1"),
            ("amount", "₹1,20,000"),
            ("timestamp", "2025-03-01 10:00:00"),
            ("scheme", "PENSION"),
        ];
        let get = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        let parsed = validate(get, Source::Export).unwrap();
        assert_eq!(parsed.amount_paise, 12_000_000);
        assert_eq!(parsed.transaction_ref, None);
        assert_eq!(
            validate(get, Source::Api).unwrap_err().field,
            "transaction_ref"
        );
    }

    #[test]
    fn rupee_text_is_exact() {
        assert_eq!(rupees_text(5), "0.05");
        assert_eq!(rupees_text(200_000), "2000.00");
        assert_eq!(parse_rupees(&rupees_text(123_456_789)), Ok(123_456_789));
    }
}
