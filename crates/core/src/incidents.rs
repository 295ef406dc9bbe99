//! Incidents: the alerts one investigation should settle together.
//!
//! A new anomaly joins the most recent incident that shares its beneficiary or account within
//! [`PERSON_WINDOW_SECONDS`] (7 days), or its agent (counter) within [`COUNTER_WINDOW_SECONDS`]
//! (2 hours), in that
//! order of preference, as long as the incident began no more than [`MAX_SPAN_SECONDS`] before
//! it; otherwise it opens a new incident. Incidents are never merged, so an incident id, once
//! shown to an auditor, keeps meaning the same alerts.
//!
//! Linking follows the monitor's mark: the monitor links each batch's anomalies in the
//! transaction that scores them ([`link`] then [`set_linked_up_to`]), so an alert never exists
//! without its incident. [`link_pending`] links anomalies scored before incidents existed (or by
//! another tool); it only ever looks at rows at or below the mark, whose status is final.
//! Linking is deterministic in transaction-id order, so a monitor restarted after kill -9
//! builds the same incidents as one that never stopped.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;
use crate::store;
use crate::time::EventTime;

/// How far back an alert of the same beneficiary or account joins its incident.
pub const PERSON_WINDOW_SECONDS: i64 = 7 * 86_400;
/// How far back an alert at the same agent (counter) joins its incident. Two hours keeps every
/// collusion ring of the seed-7 million in one incident while a day mixed 2.4× as many ordinary
/// false alerts of busy counters into incidents with a fraud (1,901 against 795).
pub const COUNTER_WINDOW_SECONDS: i64 = 2 * 3600;
/// An incident takes no alert more than this after its first one.
pub const MAX_SPAN_SECONDS: i64 = 30 * 86_400;

/// What an incident is recognised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Beneficiary,
    Account,
    Agent,
}

impl KeyKind {
    /// The `incident_keys.kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Beneficiary => "beneficiary",
            KeyKind::Account => "account",
            KeyKind::Agent => "agent",
        }
    }

    fn window(self) -> i64 {
        match self {
            KeyKind::Beneficiary | KeyKind::Account => PERSON_WINDOW_SECONDS,
            KeyKind::Agent => COUNTER_WINDOW_SECONDS,
        }
    }
}

/// An anomaly to link, as the monitor knows it when it scores the row.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertToLink<'a> {
    pub transaction_id: i64,
    pub time: EventTime,
    pub beneficiary_id: &'a str,
    pub account_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    pub score: f64,
    pub amount_paise: i64,
}

impl AlertToLink<'_> {
    fn keys(&self) -> impl Iterator<Item = (KeyKind, &str)> {
        [
            (KeyKind::Beneficiary, Some(self.beneficiary_id)),
            (KeyKind::Account, self.account_id),
            (KeyKind::Agent, self.agent_id),
        ]
        .into_iter()
        .filter_map(|(kind, value)| Some((kind, value.filter(|v| !v.is_empty())?)))
    }
}

/// Links `alerts` (in transaction-id order) into incidents, inside the caller's transaction.
/// An alert already linked is left where it is. Returns the incident of each alert.
pub fn link(conn: &Connection, alerts: &[AlertToLink<'_>]) -> Result<Vec<i64>> {
    let mut incidents = Vec::with_capacity(alerts.len());
    let mut find = conn.prepare_cached(
        "SELECT k.incident_id FROM incident_keys k JOIN incidents i USING (incident_id) \
         WHERE k.kind = ?1 AND k.value = ?2 AND k.last_time >= ?3 AND i.first_time >= ?4 \
         ORDER BY k.last_time DESC, k.incident_id DESC LIMIT 1",
    )?;
    let mut linked =
        conn.prepare_cached("SELECT incident_id FROM incident_alerts WHERE transaction_id = ?1")?;
    let mut create = conn.prepare_cached(
        "INSERT INTO incidents (first_time, last_time, alerts, max_score, total_paise, lead_id) VALUES (?1, ?1, 0, ?2, 0, ?3)",
    )?;
    // SET expressions read the row as it was, so the lead changes only for a higher score.
    let mut grow = conn.prepare_cached(
        "UPDATE incidents SET alerts = alerts + 1, max_score = max(max_score, ?2), total_paise = total_paise + ?3, \
         first_time = min(first_time, ?4), last_time = max(last_time, ?4), \
         lead_id = CASE WHEN ?2 > max_score THEN ?5 ELSE lead_id END WHERE incident_id = ?1",
    )?;
    // The alert's own columns are copied from its row, already scored in this transaction.
    let mut member = conn.prepare_cached(
        "INSERT INTO incident_alerts (transaction_id, incident_id, verdict, timestamp, scheme, district, \
         amount_paise, category, beneficiary_id, account_id, agent_id) \
         SELECT t.transaction_id, ?2, \
         (SELECT verdict FROM verdicts WHERE transaction_id = ?1 ORDER BY created_at DESC, verdict_id DESC LIMIT 1), \
         t.timestamp, t.scheme, t.district, t.amount_paise, \
         CASE WHEN json_valid(t.reasons) THEN json_extract(t.reasons, '$.category') END, \
         t.beneficiary_id, t.account_id, t.agent_id \
         FROM transactions t WHERE t.transaction_id = ?1",
    )?;
    let mut new_key = conn.prepare_cached(
        "INSERT OR IGNORE INTO incident_keys (kind, value, incident_id, last_time) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut seen_key = conn.prepare_cached(
        "UPDATE incident_keys SET last_time = max(last_time, ?4) WHERE kind = ?1 AND value = ?2 AND incident_id = ?3",
    )?;
    let mut count_key = conn.prepare_cached(
        "UPDATE incidents SET beneficiaries = beneficiaries + (?2 = 'beneficiary'), \
         accounts = accounts + (?2 = 'account'), agents = agents + (?2 = 'agent') WHERE incident_id = ?1",
    )?;
    for alert in alerts {
        if let Some(existing) = linked
            .query_row([alert.transaction_id], |row| row.get::<_, i64>(0))
            .optional()?
        {
            incidents.push(existing);
            continue;
        }
        let mut joined = None;
        for (kind, value) in alert.keys() {
            joined = find
                .query_row(
                    params![
                        kind.as_str(),
                        value,
                        alert.time - kind.window(),
                        alert.time - MAX_SPAN_SECONDS
                    ],
                    |row| row.get::<_, i64>(0),
                )
                .optional()?;
            if joined.is_some() {
                break;
            }
        }
        let incident = match joined {
            Some(incident) => incident,
            None => {
                create.execute(params![alert.time, alert.score, alert.transaction_id])?;
                conn.last_insert_rowid()
            }
        };
        grow.execute(params![
            incident,
            alert.score,
            alert.amount_paise,
            alert.time,
            alert.transaction_id
        ])?;
        if member.execute(params![alert.transaction_id, incident])? == 0 {
            // The caller links rows it has just scored; a missing one is a bug, not data.
            return Err(rusqlite::Error::QueryReturnedNoRows.into());
        }
        for (kind, value) in alert.keys() {
            let key = params![kind.as_str(), value, incident, alert.time];
            if new_key.execute(key)? == 1 {
                count_key.execute(params![incident, kind.as_str()])?;
            } else {
                seen_key.execute(key)?;
            }
        }
        incidents.push(incident);
    }
    Ok(incidents)
}

/// The transaction id up to which anomalies are linked.
pub fn linked_up_to(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT linked_up_to FROM incident_state WHERE singleton = 1",
        [],
        |row| row.get(0),
    )?)
}

/// Records that every anomaly up to `mark` is linked.
pub fn set_linked_up_to(conn: &Connection, mark: i64) -> Result<()> {
    conn.execute(
        "UPDATE incident_state SET linked_up_to = max(linked_up_to, ?1) WHERE singleton = 1",
        [mark],
    )?;
    Ok(())
}

/// Links the anomalies between the last linked id and the monitor's mark, in one immediate
/// transaction (safe to run from several programs at once). Returns how many were linked.
pub fn link_pending(conn: &mut Connection) -> Result<usize> {
    let transaction = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mark = store::monitor_mark(&transaction)?.unwrap_or(0);
    let linked = link_backlog(&transaction, mark)?;
    transaction.commit()?;
    Ok(linked)
}

/// Inside the caller's transaction, links the stored anomalies after the last linked id up to
/// `up_to` (which must not pass the monitor's mark: above it statuses are not final), and
/// records `up_to` as linked. Returns how many were linked.
pub fn link_backlog(conn: &Connection, up_to: i64) -> Result<usize> {
    let from = linked_up_to(conn)?;
    if up_to <= from {
        return Ok(0);
    }
    let rows: Vec<(i64, String, String, Option<String>, Option<String>, f64, i64)> = conn
        .prepare_cached(
            "SELECT transaction_id, timestamp, beneficiary_id, account_id, agent_id, anomaly_score, amount_paise \
             FROM transactions WHERE transaction_id > ?1 AND transaction_id <= ?2 AND status = 'ANOMALY' \
             ORDER BY transaction_id",
        )?
        .query_map(params![from, up_to], |row| {
            Ok((
                row.get(0)?,
                row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                row.get(3)?,
                row.get(4)?,
                row.get::<_, Option<f64>>(5)?.unwrap_or(0.0),
                row.get::<_, Option<i64>>(6)?.unwrap_or(0),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // An anomaly whose stored time does not parse still gets an incident, at time 0: it then
    // joins nothing recent and opens its own.
    let alerts: Vec<AlertToLink<'_>> = rows
        .iter()
        .map(
            |(id, timestamp, beneficiary, account, agent, score, paise)| AlertToLink {
                transaction_id: *id,
                time: crate::time::parse_timestamp(timestamp).unwrap_or(0),
                beneficiary_id: beneficiary,
                account_id: account.as_deref(),
                agent_id: agent.as_deref(),
                score: *score,
                amount_paise: *paise,
            },
        )
        .collect();
    link(conn, &alerts)?;
    set_linked_up_to(conn, up_to)?;
    Ok(alerts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(
        id: i64,
        hours: i64,
        beneficiary: &'static str,
        agent: &'static str,
    ) -> AlertToLink<'static> {
        AlertToLink {
            transaction_id: id,
            time: 1_740_000_000 + hours * 3600,
            beneficiary_id: beneficiary,
            account_id: None,
            agent_id: Some(agent),
            score: id as f64,
            amount_paise: 100,
        }
    }

    /// A database holding a scored row for each alert.
    fn stored(alerts: &[AlertToLink<'_>]) -> Connection {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("t.db")).unwrap();
        std::mem::forget(dir);
        for alert in alerts {
            conn.execute(
                "INSERT INTO transactions (transaction_id, beneficiary_id, agent_id, scheme, amount_paise, timestamp, status, anomaly_score) \
                 VALUES (?1, ?2, ?3, 'PM-KISAN', ?4, ?5, 'ANOMALY', ?6)",
                params![
                    alert.transaction_id,
                    alert.beneficiary_id,
                    alert.agent_id,
                    alert.amount_paise,
                    crate::time::format_ist(alert.time),
                    alert.score
                ],
            )
            .unwrap();
        }
        conn
    }

    #[test]
    fn alerts_group_by_beneficiary_within_a_week_and_by_counter_within_two_hours() {
        let alerts = [
            alert(1, 0, "B1", "G1"),
            alert(2, 100, "B1", "G7"), // same beneficiary 4 days later: joins
            alert(3, 1, "B2", "G1"),   // same counter an hour after: joins
            alert(4, 4, "B3", "G1"),   // same counter 3 hours after that: new
            alert(5, 24 * 9, "B4", "G9"),
            alert(6, 24 * 9 + 1, "B1", "G9"), // B1's last alert was 5 days ago: joins 1, not 5's
        ];
        let conn = stored(&alerts);
        let incidents = link(&conn, &alerts).unwrap();
        assert_eq!(incidents[0], incidents[1]);
        assert_eq!(incidents[0], incidents[2]);
        assert_ne!(incidents[3], incidents[0]);
        assert_ne!(incidents[4], incidents[0]);
        assert_eq!(
            incidents[5], incidents[0],
            "the beneficiary is preferred over the counter"
        );
        let figures: (i64, f64, i64, i64, i64, i64, i64) = conn
            .query_row(
                "SELECT alerts, max_score, total_paise, lead_id, beneficiaries, accounts, agents \
                 FROM incidents WHERE incident_id = ?1",
                [incidents[0]],
                |row| {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                        row.get(5)?,
                        row.get(6)?,
                    ))
                },
            )
            .unwrap();
        // Alerts 1, 2, 3, 6: beneficiaries B1, B2; agents G1, G7, G9; no account.
        assert_eq!(figures, (4, 6.0, 400, 6, 2, 0, 3));
        // Linking again changes nothing.
        assert_eq!(link(&conn, &alerts).unwrap(), incidents);
        let count: i64 = conn
            .query_row("SELECT sum(alerts) FROM incidents", [], |row| row.get(0))
            .unwrap();
        assert_eq!(count, 6);
    }

    #[test]
    fn an_incident_stops_growing_a_month_after_it_began() {
        let alerts: Vec<_> = (0..8)
            .map(|week| alert(week + 1, week * 24 * 6, "B1", "G1"))
            .collect();
        let conn = stored(&alerts);
        let incidents = link(&conn, &alerts).unwrap();
        assert_eq!(incidents[5], incidents[0], "30 days after the first");
        assert_ne!(incidents[6], incidents[0], "36 days after the first");
    }
}
