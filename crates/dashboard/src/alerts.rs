//! The alert queue and the investigation of one alert: its context and the auditors' verdicts.

use aegis_core::sql::{Row, Sql};
use aegis_core::values;
use serde::{Deserialize, Serialize};

use aegis_core::reasons::{Reason, Reasons};

use crate::cases::{self, VerdictEntry};
use crate::error::{AppError, AppResult};
use crate::queries::{TxRow, int_at, text_at, tx_columns, tx_row};

/// An auditor's conclusion about an alert (the `verdicts.verdict` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    ConfirmedFraud,
    Dismissed,
    NeedsFieldCheck,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [
        Verdict::ConfirmedFraud,
        Verdict::Dismissed,
        Verdict::NeedsFieldCheck,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ConfirmedFraud => "confirmed_fraud",
            Verdict::Dismissed => "dismissed",
            Verdict::NeedsFieldCheck => "needs_field_check",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Verdict::ConfirmedFraud => "Confirmed fraud",
            Verdict::Dismissed => "Dismissed (false alarm)",
            Verdict::NeedsFieldCheck => "Needs field check",
        }
    }

    pub fn parse(text: &str) -> AppResult<Verdict> {
        Verdict::ALL
            .into_iter()
            .find(|verdict| verdict.as_str() == text.trim())
            .ok_or_else(|| {
                AppError::BadRequest(
                    "verdict: one of confirmed_fraud, dismissed, needs_field_check".into(),
                )
            })
    }
}

/// Longest note kept with a verdict, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// A beneficiary paid into the same account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSharer {
    pub beneficiary_id: String,
    pub payments: i64,
    pub last_payment: Option<String>,
}

/// Everything an auditor needs to decide on one transaction.
#[derive(Debug, Clone, Serialize)]
pub struct AlertDetail {
    pub transaction: TxRow,
    /// The raw `reasons` text when it is not the expected JSON.
    pub reasons_raw: Option<String>,
    pub reasons: Vec<Reason>,
    /// Ground truth from the generator, shown as a label only.
    pub is_anomaly: Option<bool>,
    pub fraud_type: Option<String>,
    /// The beneficiary's payments up to this one (this one included), newest first: those its
    /// reasons compare it with, however many came after.
    pub history: Vec<TxRow>,
    /// Beneficiaries paid into this account in the 30 days up to this payment.
    pub account_sharers: Vec<AccountSharer>,
    /// The agent's payments in the 24 hours up to this payment.
    pub agent_activity: Vec<TxRow>,
    /// All the agent's payments in those 24 hours (the list holds at most [`AGENT_LIMIT`]).
    pub agent_payments: i64,
    pub agent_beneficiaries: i64,
    /// Every verdict on it, newest first (revisions included).
    pub verdicts: Vec<VerdictEntry>,
    /// The incident it belongs to (anomalies only).
    pub incident_id: Option<i64>,
    /// The day whose control sample drew it, if one did.
    pub control_day: Option<String>,
}

/// How many of the beneficiary's payments are shown.
pub const HISTORY_LIMIT: i64 = 20;
/// How many of the agent's payments are listed.
pub const AGENT_LIMIT: i64 = 50;

fn shifted(timestamp: &str, seconds: i64) -> Option<String> {
    let time = aegis_core::time::parse_timestamp(timestamp).ok()?;
    Some(aegis_core::time::format_ist(time + seconds))
}

/// The detail of transaction `id`, or `None` if there is no such row.
pub fn alert_detail(sql: &mut dyn Sql, id: i64) -> AppResult<Option<AlertDetail>> {
    let columns = tx_columns(sql.engine());
    let found = sql.row(
        &format!("SELECT {columns}, reasons, is_anomaly, fraud_type FROM transactions WHERE transaction_id = ?1"),
        values![id],
        |row| Ok((tx_row(row)?, text_at(row, 15), int_at(row, 16), text_at(row, 17))),
    )?;
    let Some((transaction, reasons_text, is_anomaly, fraud_type)) = found else {
        return Ok(None);
    };
    let (reasons, reasons_raw) = parse_reasons(reasons_text.as_deref());

    let timestamp = transaction.timestamp.clone().unwrap_or_default();
    let history = sql.rows(
        &format!(
            "SELECT {columns} FROM transactions WHERE beneficiary_id = ?1 \
             AND (timestamp < ?2 OR (timestamp = ?2 AND transaction_id <= ?3)) \
             ORDER BY timestamp DESC, transaction_id DESC LIMIT ?4"
        ),
        values![
            transaction.beneficiary_id.as_str(),
            timestamp.as_str(),
            id,
            HISTORY_LIMIT
        ],
        tx_row,
    )?;

    let mut account_sharers = Vec::new();
    if let (Some(account), Some(start)) =
        (&transaction.account_id, shifted(&timestamp, -30 * 86_400))
    {
        account_sharers = sql.rows(
            "SELECT beneficiary_id, count(*), max(timestamp) FROM transactions \
             WHERE account_id = ?1 AND timestamp >= ?2 AND timestamp <= ?3 \
             GROUP BY beneficiary_id ORDER BY count(*) DESC, beneficiary_id LIMIT 100",
            values![account, start, timestamp.as_str()],
            |row| {
                Ok(AccountSharer {
                    beneficiary_id: text_at(row, 0).unwrap_or_default(),
                    payments: row.at(1)?,
                    last_payment: text_at(row, 2),
                })
            },
        )?;
    }

    let mut agent_activity = Vec::new();
    let mut agent_payments = 0;
    let mut agent_beneficiaries = 0;
    if let (Some(agent), Some(start)) = (&transaction.agent_id, shifted(&timestamp, -86_400)) {
        agent_activity = sql.rows(
            &format!(
                "SELECT {columns} FROM transactions WHERE agent_id = ?1 AND timestamp >= ?2 AND timestamp <= ?3 \
                 ORDER BY timestamp DESC, transaction_id DESC LIMIT ?4"
            ),
            values![agent, start.as_str(), timestamp.as_str(), AGENT_LIMIT],
            tx_row,
        )?;
        (agent_payments, agent_beneficiaries) = sql
            .row(
                "SELECT count(*), count(DISTINCT beneficiary_id) FROM transactions \
                 WHERE agent_id = ?1 AND timestamp >= ?2 AND timestamp <= ?3",
                values![agent, start, timestamp.as_str()],
                |row| Ok((row.at::<i64>(0)?, row.at::<i64>(1)?)),
            )?
            .unwrap_or((0, 0));
    }

    let verdicts = cases::verdicts_of(sql, id)?;
    let incident_id = cases::incident_of(sql, id)?;
    let control_day = aegis_core::control::drawn_day(sql, id)?;
    Ok(Some(AlertDetail {
        transaction,
        reasons_raw,
        reasons,
        is_anomaly: is_anomaly.map(|flag| flag != 0),
        fraud_type,
        history,
        account_sharers,
        agent_activity,
        agent_payments,
        agent_beneficiaries,
        verdicts,
        incident_id,
        control_day,
    }))
}

/// Reads the monitor's reasons JSON; text that is not that JSON is returned raw.
fn parse_reasons(text: Option<&str>) -> (Vec<Reason>, Option<String>) {
    let Some(text) = text else {
        return (Vec::new(), None);
    };
    match Reasons::parse(text) {
        Some(parsed) => (parsed.reasons, None),
        None => (Vec::new(), Some(text.to_string())),
    }
}

/// Who records a verdict (the data layer's view of a logged-in user).
#[derive(Debug, Clone)]
pub struct Auditor {
    pub user_id: i64,
    /// As the audit log names them ("alice", or "alice via api:cases").
    pub username: String,
    /// What recorded the verdict on the user's behalf, kept with it: empty for the user in the
    /// dashboard, `api:KEY` for an API key.
    pub via: String,
}

/// Records a verdict on transaction `id` and audits it, in one transaction; changing a final
/// verdict needs a `reason` (see [`cases::record_verdicts`]). Returns the new verdict's id.
pub fn record_verdict(
    sql: &mut dyn Sql,
    id: i64,
    verdict: Verdict,
    note: &str,
    reason: &str,
    auditor: &Auditor,
    now_millis: i64,
) -> AppResult<i64> {
    let recorded = cases::record_verdicts(
        sql,
        cases::Target::Alert(id),
        verdict,
        note,
        reason,
        auditor,
        now_millis,
    )?;
    Ok(recorded.last_verdict_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_reasons_are_read_and_other_text_is_kept_raw() {
        let json = r#"{"category":"amount","reasons":[{"feature":"amount_log","category":"amount","share":0.8,"text":"₹50,000 is 25.0× the usual"}]}"#;
        let (reasons, raw) = parse_reasons(Some(json));
        assert_eq!(reasons.len(), 1);
        assert_eq!(reasons[0].category, aegis_core::features::Category::Amount);
        assert!(raw.is_none());
        let (reasons, raw) = parse_reasons(Some("not json"));
        assert!(reasons.is_empty());
        assert_eq!(raw.as_deref(), Some("not json"));
    }

    #[test]
    fn verdicts_parse_only_the_three_known_values() {
        assert_eq!(Verdict::parse("dismissed").unwrap(), Verdict::Dismissed);
        assert!(Verdict::parse("DROP TABLE verdicts").is_err());
    }
}
