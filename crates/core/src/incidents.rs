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

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::sql::{Sql, Sqlite, Value};
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
    /// The category code of the alert's leading reason.
    pub category: Option<&'a str>,
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

/// The shared statements of [`link`], written once for both engines ([`crate::sql`]).
const FIND: &str = "SELECT k.incident_id FROM incident_keys k JOIN incidents i USING (incident_id) \
     WHERE k.kind = ?1 AND k.value = ?2 AND k.last_time >= ?3 AND i.first_time >= ?4 \
     ORDER BY k.last_time DESC, k.incident_id DESC LIMIT 1";
const LINKED: &str = "SELECT incident_id FROM incident_alerts WHERE transaction_id = ?1";
const CREATE: &str = "INSERT INTO incidents (first_time, last_time, alerts, max_score, total_paise, lead_id) \
     VALUES (?1, ?1, 0, ?2, 0, ?3) RETURNING incident_id";
/// SET expressions read the row as it was, so the lead changes only for a higher score.
const GROW: &str = "UPDATE incidents SET alerts = alerts + 1, \
     max_score = CASE WHEN ?2 > max_score THEN ?2 ELSE max_score END, total_paise = total_paise + ?3, \
     first_time = CASE WHEN ?4 < first_time THEN ?4 ELSE first_time END, \
     last_time = CASE WHEN ?4 > last_time THEN ?4 ELSE last_time END, \
     lead_id = CASE WHEN ?2 > max_score THEN ?5 ELSE lead_id END WHERE incident_id = ?1";
/// The alert's own columns are copied from its row, already scored in this transaction.
const MEMBER: &str = "INSERT INTO incident_alerts (transaction_id, incident_id, verdict, timestamp, scheme, district, \
     amount_paise, category, beneficiary_id, account_id, agent_id) \
     SELECT t.transaction_id, CAST(?2 AS BIGINT), \
     (SELECT verdict FROM verdicts WHERE transaction_id = ?1 ORDER BY created_at DESC, verdict_id DESC LIMIT 1), \
     t.timestamp, t.scheme, t.district, t.amount_paise, CAST(?3 AS TEXT), \
     t.beneficiary_id, t.account_id, t.agent_id \
     FROM transactions t WHERE t.transaction_id = ?1";
const NEW_KEY: &str = "INSERT INTO incident_keys (kind, value, incident_id, last_time) VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT DO NOTHING";
const SEEN_KEY: &str = "UPDATE incident_keys SET last_time = CASE WHEN ?4 > last_time THEN ?4 ELSE last_time END \
     WHERE kind = ?1 AND value = ?2 AND incident_id = ?3";
const COUNT_KEY: &str = "UPDATE incidents SET \
     beneficiaries = beneficiaries + CASE WHEN ?2 = 'beneficiary' THEN 1 ELSE 0 END, \
     accounts = accounts + CASE WHEN ?2 = 'account' THEN 1 ELSE 0 END, \
     agents = agents + CASE WHEN ?2 = 'agent' THEN 1 ELSE 0 END WHERE incident_id = ?1";

/// Links `alerts` (in transaction-id order) into incidents, inside the caller's transaction.
/// An alert already linked is left where it is. Returns the incident of each alert.
pub fn link(sql: &mut dyn Sql, alerts: &[AlertToLink<'_>]) -> Result<Vec<i64>> {
    let mut incidents = Vec::with_capacity(alerts.len());
    for alert in alerts {
        if let Some(existing) = sql.query_int(LINKED, &[alert.transaction_id.into()])? {
            incidents.push(existing);
            continue;
        }
        let mut joined = None;
        for (kind, value) in alert.keys() {
            joined = sql.query_int(
                FIND,
                &[
                    kind.as_str().into(),
                    value.into(),
                    (alert.time - kind.window()).into(),
                    (alert.time - MAX_SPAN_SECONDS).into(),
                ],
            )?;
            if joined.is_some() {
                break;
            }
        }
        let incident = match joined {
            Some(incident) => incident,
            None => sql
                .query_int(
                    CREATE,
                    &[
                        alert.time.into(),
                        alert.score.into(),
                        alert.transaction_id.into(),
                    ],
                )?
                .ok_or_else(|| Error::Invalid("creating an incident returned no id".into()))?,
        };
        sql.execute(
            GROW,
            &[
                incident.into(),
                alert.score.into(),
                alert.amount_paise.into(),
                alert.time.into(),
                alert.transaction_id.into(),
            ],
        )?;
        let member = [
            alert.transaction_id.into(),
            incident.into(),
            alert.category.into(),
        ];
        if sql.execute(MEMBER, &member)? == 0 {
            // The caller links rows it has just scored; a missing one is a bug, not data.
            return Err(Error::Invalid(format!(
                "alert {} is not a stored transaction",
                alert.transaction_id
            )));
        }
        for (kind, value) in alert.keys() {
            let key = [
                kind.as_str().into(),
                value.into(),
                incident.into(),
                alert.time.into(),
            ];
            if sql.execute(NEW_KEY, &key)? == 1 {
                sql.execute(COUNT_KEY, &[incident.into(), kind.as_str().into()])?;
            } else {
                sql.execute(SEEN_KEY, &key)?;
            }
        }
        incidents.push(incident);
    }
    Ok(incidents)
}

/// The transaction id up to which anomalies are linked.
pub fn linked_up_to(sql: &mut dyn Sql) -> Result<i64> {
    Ok(sql
        .query_int(
            "SELECT linked_up_to FROM incident_state WHERE singleton = 1",
            &[],
        )?
        .unwrap_or(0))
}

/// Records that every anomaly up to `mark` is linked.
pub fn set_linked_up_to(sql: &mut dyn Sql, mark: i64) -> Result<()> {
    sql.execute(
        "UPDATE incident_state SET linked_up_to = CASE WHEN ?1 > linked_up_to THEN ?1 ELSE linked_up_to END \
         WHERE singleton = 1",
        &[mark.into()],
    )?;
    Ok(())
}

/// Links the anomalies between the last linked id and the monitor's mark, in one immediate
/// transaction (safe to run from several programs at once). Returns how many were linked.
pub fn link_pending(conn: &mut Connection) -> Result<usize> {
    let transaction = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut sql = Sqlite(&transaction);
    let mark = store::monitor_mark(&mut sql)?.unwrap_or(0);
    let linked = link_backlog(&mut sql, mark)?;
    transaction.commit()?;
    Ok(linked)
}

/// The category code stored in a `reasons` JSON, if it has one.
fn category_of(reasons: Option<&str>) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(reasons?).ok()?;
    Some(value.get("category")?.as_str()?.to_string())
}

/// Inside the caller's transaction, links the stored anomalies after the last linked id up to
/// `up_to` (which must not pass the monitor's mark: above it statuses are not final), and
/// records `up_to` as linked. Returns how many were linked.
pub fn link_backlog(sql: &mut dyn Sql, up_to: i64) -> Result<usize> {
    let from = linked_up_to(sql)?;
    if up_to <= from {
        return Ok(0);
    }
    let rows: Vec<Vec<Value>> = sql.query(
        "SELECT transaction_id, timestamp, beneficiary_id, account_id, agent_id, anomaly_score, amount_paise, reasons \
         FROM transactions WHERE transaction_id > ?1 AND transaction_id <= ?2 AND status = 'ANOMALY' \
         ORDER BY transaction_id",
        &[from.into(), up_to.into()],
    )?;
    let categories: Vec<Option<String>> =
        rows.iter().map(|row| category_of(row[7].text())).collect();
    // An anomaly whose stored time does not parse still gets an incident, at time 0: it then
    // joins nothing recent and opens its own.
    let alerts: Vec<AlertToLink<'_>> = rows
        .iter()
        .zip(&categories)
        .map(|(row, category)| AlertToLink {
            transaction_id: row[0].int().unwrap_or_default(),
            time: crate::time::parse_timestamp(row[1].text().unwrap_or_default()).unwrap_or(0),
            beneficiary_id: row[2].text().unwrap_or_default(),
            account_id: row[3].text(),
            agent_id: row[4].text(),
            score: row[5].real().unwrap_or(0.0),
            amount_paise: row[6].int().unwrap_or(0),
            category: category.as_deref(),
        })
        .collect();
    link(sql, &alerts)?;
    set_linked_up_to(sql, up_to)?;
    Ok(alerts.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::params;

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
            category: Some("amount"),
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
        let incidents = link(&mut Sqlite(&conn), &alerts).unwrap();
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
        assert_eq!(link(&mut Sqlite(&conn), &alerts).unwrap(), incidents);
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
        let incidents = link(&mut Sqlite(&conn), &alerts).unwrap();
        assert_eq!(incidents[5], incidents[0], "30 days after the first");
        assert_ne!(incidents[6], incidents[0], "36 days after the first");
    }
}
