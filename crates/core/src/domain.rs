//! Domain types shared by every program: fraud types, statuses and the transaction record.

use serde::{Deserialize, Serialize};

use crate::time::EventTime;

/// Labeled fraud types (the `fraud_type` column). The last five look normal row by row: only
/// history reveals the first four of them, and not even history the last
/// (`compromised_counter`: ordinary payments at a counter whose operator diverts them, caught
/// only through auditors' verdicts on earlier payments at the same counter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FraudType {
    InflatedAmount,
    ProbeAmount,
    OffHours,
    FarFromHome,
    DuplicatePayment,
    Burst,
    SharedAccountRing,
    AgentCollusion,
    CompromisedCounter,
}

impl FraudType {
    pub const ALL: [FraudType; 9] = [
        FraudType::InflatedAmount,
        FraudType::ProbeAmount,
        FraudType::OffHours,
        FraudType::FarFromHome,
        FraudType::DuplicatePayment,
        FraudType::Burst,
        FraudType::SharedAccountRing,
        FraudType::AgentCollusion,
        FraudType::CompromisedCounter,
    ];

    /// The code stored in `fraud_type`.
    pub fn code(self) -> &'static str {
        match self {
            FraudType::InflatedAmount => "inflated_amount",
            FraudType::ProbeAmount => "probe_amount",
            FraudType::OffHours => "off_hours",
            FraudType::FarFromHome => "far_from_home",
            FraudType::DuplicatePayment => "duplicate_payment",
            FraudType::Burst => "burst",
            FraudType::SharedAccountRing => "shared_account_ring",
            FraudType::AgentCollusion => "agent_collusion",
            FraudType::CompromisedCounter => "compromised_counter",
        }
    }

    pub fn from_code(code: &str) -> Option<FraudType> {
        FraudType::ALL.into_iter().find(|kind| kind.code() == code)
    }
}

/// The monitor's verdict on a row (the `status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Normal,
    Anomaly,
    /// The row could not be scored (NULL amount, unparsable timestamp…); `reasons` says why.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Normal => "NORMAL",
            Status::Anomaly => "ANOMALY",
            Status::Error => "ERROR",
        }
    }
}

/// What feature engineering needs of one transaction, already parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub beneficiary_id: String,
    pub account_id: Option<String>,
    pub agent_id: Option<String>,
    pub scheme: String,
    pub amount_paise: i64,
    pub time: EventTime,
    pub location: Option<(f64, f64)>,
}

/// A transaction to insert (generator, simulator, CSV import).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTransaction {
    pub transaction_ref: Option<String>,
    pub beneficiary_id: String,
    pub account_id: Option<String>,
    pub agent_id: Option<String>,
    pub scheme: String,
    pub amount_paise: i64,
    pub time: EventTime,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub district: Option<String>,
    pub is_anomaly: Option<bool>,
    pub fraud_type: Option<String>,
}

impl NewTransaction {
    /// The feature-engineering view of this transaction.
    pub fn payment(&self) -> Payment {
        Payment {
            beneficiary_id: self.beneficiary_id.clone(),
            account_id: self.account_id.clone(),
            agent_id: self.agent_id.clone(),
            scheme: self.scheme.clone(),
            amount_paise: self.amount_paise,
            time: self.time,
            location: self.latitude.zip(self.longitude),
        }
    }
}

/// The largest amount one payment may carry: ₹1,000 crore. No welfare instalment comes near it,
/// and below it a beneficiary's or an incident's total of a million such payments still fits in
/// `i64` paise. An amount above it is an export's mistake (paise read as rupees, a column
/// shifted), refused rather than stored to overflow every sum it enters.
pub const MAX_RUPEES: i64 = 10_000_000_000;

/// A stored `amount_paise` as the monitor may score it, or why not: the readers of both
/// engines check what another writer (an auditor's own SQL, another tool) may have stored past
/// ingest's checks. An amount above [`MAX_RUPEES`] would overflow the incident totals it
/// enters, which on PostgreSQL failed the scoring transaction on every restart.
pub fn stored_amount(paise: i64) -> Result<i64, String> {
    if paise < 0 {
        Err(format!("amount is negative ({paise} paise)"))
    } else if paise > MAX_RUPEES * 100 {
        Err(format!(
            "amount_paise {paise} is above the largest payment accepted ({}): paise stored as rupees × 100 twice, or a shifted column?",
            format_rupees(MAX_RUPEES * 100)
        ))
    } else {
        Ok(paise)
    }
}

/// Parses a rupee amount as people and exports write it (`2000`, `1234.50`, `.50`, `₹1,20,000`,
/// `120,000`) into paise, exactly, without going through a float. The one parser for the CSV
/// import, the ingest API and the dashboard's amount filters. The error says what was wrong
/// with the text.
///
/// A comma only groups digits (Indian or international grouping); any other comma is refused,
/// because a decimal comma (`2000,50`) read as grouping would store a hundred times the amount.
pub fn parse_rupees(text: &str) -> Result<i64, String> {
    let written = text.trim();
    let text = written.trim_start_matches('₹').trim_start();
    if text.is_empty() {
        return Err("amount is empty".into());
    }
    if text.starts_with('-') {
        return Err(format!("amount {written} is negative"));
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.contains(',') && !grouped_digits(whole) {
        return Err(format!(
            "amount {written:?}: a comma may only group digits (1,20,000 or 120,000); write decimals with a point (2000.50)"
        ));
    }
    let whole = whole.replace(',', "");
    if whole.is_empty() && fraction.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || fraction.len() > 2
    {
        return Err(format!(
            "amount {written:?} is not a number of rupees with at most two decimals"
        ));
    }
    let too_large = || {
        format!(
            "amount {written:?} is above the largest payment accepted ({}): give it in rupees (an amount in paise, or a shifted column?)",
            format_rupees(MAX_RUPEES * 100)
        )
    };
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let fraction: i64 = format!("{fraction:0<2}").parse().unwrap_or(0);
    match whole
        .checked_mul(100)
        .and_then(|paise| paise.checked_add(fraction))
    {
        Some(paise) if paise <= MAX_RUPEES * 100 => Ok(paise),
        _ => Err(too_large()),
    }
}

/// Whether `whole` (digits and commas) is grouped as Indian (`12,34,567`) or international
/// (`1,234,567`) digits are: the last group three digits, the first one to three, those
/// between two or three.
fn grouped_digits(whole: &str) -> bool {
    let groups: Vec<&str> = whole.split(',').collect();
    let last = groups.len() - 1;
    groups.iter().enumerate().all(|(index, group)| {
        let size = group.len();
        group.chars().all(|c| c.is_ascii_digit())
            && match index {
                0 => (1..=3).contains(&size),
                i if i == last => size == 3,
                _ => size == 2 || size == 3,
            }
    })
}

/// Formats paise as rupees for people: `₹2,000`, `₹1,234.50`, with Indian digit grouping.
pub fn format_rupees(paise: i64) -> String {
    let negative = paise < 0;
    let paise = paise.unsigned_abs();
    let rupees = paise / 100;
    let fraction = paise % 100;
    let digits = rupees.to_string();
    let mut grouped = String::new();
    let len = digits.len();
    for (index, ch) in digits.chars().enumerate() {
        grouped.push(ch);
        // Indian grouping: the last three digits, then pairs (12,34,567).
        let digits_after = len - index - 1;
        if digits_after >= 3 && (digits_after - 3).is_multiple_of(2) {
            grouped.push(',');
        }
    }
    let sign = if negative { "-" } else { "" };
    if fraction == 0 {
        format!("{sign}₹{grouped}")
    } else {
        format!("{sign}₹{grouped}.{fraction:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_use_indian_grouping() {
        assert_eq!(format_rupees(200_000), "₹2,000");
        assert_eq!(format_rupees(123_456_789), "₹12,34,567.89");
        assert_eq!(format_rupees(5_000), "₹50");
        assert_eq!(format_rupees(10_000_000_000), "₹10,00,00,000");
    }

    #[test]
    fn rupee_amounts_become_exact_paise() {
        assert_eq!(parse_rupees("2000"), Ok(200_000));
        assert_eq!(parse_rupees("1234.5"), Ok(123_450));
        assert_eq!(parse_rupees("0.07"), Ok(7));
        assert_eq!(parse_rupees(".50"), Ok(50));
        assert_eq!(parse_rupees("₹1,20,000.00"), Ok(12_000_000));
        assert!(parse_rupees("-5").unwrap_err().contains("negative"));
        assert!(parse_rupees("12.345").is_err());
        assert!(parse_rupees("abc").is_err());
        assert!(parse_rupees(".").is_err());
        assert!(parse_rupees("").is_err());
        assert!(
            parse_rupees("99999999999999999999")
                .unwrap_err()
                .contains("above the largest payment")
        );
        assert!(
            parse_rupees("92233720368547758.07")
                .unwrap_err()
                .contains("above the largest payment"),
            "would overflow every sum it enters"
        );
        assert_eq!(parse_rupees("10000000000"), Ok(MAX_RUPEES * 100));
        assert!(parse_rupees("10000000000.01").is_err());
    }

    #[test]
    fn a_comma_only_groups_digits() {
        assert_eq!(parse_rupees("120,000"), Ok(12_000_000));
        assert_eq!(parse_rupees("1,234,567.50"), Ok(123_456_750));
        assert_eq!(parse_rupees("12,34,567"), Ok(123_456_700));
        assert_eq!(parse_rupees("₹ 2,000"), Ok(200_000));
        // A decimal comma would otherwise store a hundred times the amount.
        let error = parse_rupees("2000,50").unwrap_err();
        assert!(error.contains("decimals with a point"), "{error}");
        assert!(parse_rupees("2,00").is_err());
        assert!(parse_rupees(",500").is_err());
        assert!(parse_rupees("1,2345").is_err());
    }

    #[test]
    fn fraud_codes_round_trip() {
        for kind in FraudType::ALL {
            assert_eq!(FraudType::from_code(kind.code()), Some(kind));
        }
    }
}
