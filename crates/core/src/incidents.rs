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

use crate::error::{Error, Result};
use crate::sql::{Sql, Value};
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// Rows per multi-row statement of [`link`] (the statement text varies only with the length of
/// the last chunk, so each connection prepares a handful).
const CHUNK: usize = 100;

/// An incident as [`link`] sees it while it links a batch: its current figures, and what the
/// batch adds.
#[derive(Debug, Clone)]
struct Linking {
    /// None for an incident this batch opens (its id comes when it is written).
    id: Option<i64>,
    first_time: i64,
    last_time: i64,
    max_score: f64,
    lead_id: i64,
    added_alerts: i64,
    added_paise: i64,
    /// New keys by kind: beneficiaries, accounts, agents.
    added_keys: [i64; 3],
}

impl Linking {
    /// Ties between keys seen at the same time go to the newest incident, as ids grow: an
    /// incident opened in this batch is newer than any stored one, and later than those opened
    /// before it.
    fn age_rank(&self, slot: usize) -> (bool, i64) {
        match self.id {
            Some(id) => (false, id),
            None => (true, slot as i64),
        }
    }
}

/// A key of an incident: when it was last seen, and whether this batch changed it.
#[derive(Debug, Clone)]
struct KeyRow {
    slot: usize,
    last_time: i64,
    touched: bool,
}

fn kind_index(kind: KeyKind) -> usize {
    match kind {
        KeyKind::Beneficiary => 0,
        KeyKind::Account => 1,
        KeyKind::Agent => 2,
    }
}

fn kind_of(code: &str) -> Option<KeyKind> {
    [KeyKind::Beneficiary, KeyKind::Account, KeyKind::Agent]
        .into_iter()
        .find(|kind| kind.as_str() == code)
}

/// `VALUES (…), (…)` with `rows` rows of `columns` parameters each, numbered from `?1`; the
/// first row casts its parameters to `types` so that both engines know them.
fn values_list(rows: usize, types: &[&str]) -> String {
    let columns = types.len();
    (0..rows)
        .map(|row| {
            let cells: Vec<String> = (0..columns)
                .map(|column| {
                    let number = row * columns + column + 1;
                    if row == 0 {
                        format!("CAST(?{number} AS {})", types[column])
                    } else {
                        format!("?{number}")
                    }
                })
                .collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Links `alerts` (in transaction-id order) into incidents, inside the caller's transaction.
/// An alert already linked is left where it is. Returns the incident of each alert.
///
/// The result is the same as linking the alerts one at a time (and so the same whatever the
/// batches): the incidents and keys the batch can reach are read once, the alerts are placed in
/// memory in id order, and the outcome is written with multi-row statements (new incidents,
/// grown incidents, members, keys). One alert at a time took eight round trips per alert, which
/// on PostgreSQL held the monitor to 15,000 tx/s.
pub fn link(sql: &mut dyn Sql, alerts: &[AlertToLink<'_>]) -> Result<Vec<i64>> {
    let (Some(first), Some(last)) = (alerts.first(), alerts.last()) else {
        return Ok(Vec::new());
    };
    let linked: std::collections::HashMap<i64, i64> = sql
        .query(
            "SELECT transaction_id, incident_id FROM incident_alerts \
             WHERE transaction_id >= ?1 AND transaction_id <= ?2",
            &[first.transaction_id.into(), last.transaction_id.into()],
        )?
        .into_iter()
        .filter_map(|row| Some((row[0].int()?, row[1].int()?)))
        .collect();
    let fresh: Vec<&AlertToLink<'_>> = alerts
        .iter()
        .filter(|alert| !linked.contains_key(&alert.transaction_id))
        .collect();

    // Every stored incident a fresh alert could join, with its keys among theirs.
    let mut slots: Vec<Linking> = Vec::new();
    let mut slot_of_id: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut keys: std::collections::HashMap<(KeyKind, String), Vec<KeyRow>> =
        std::collections::HashMap::new();
    if let Some(earliest) = fresh.iter().map(|alert| alert.time).min() {
        let mut wanted: Vec<(KeyKind, &str)> =
            fresh.iter().flat_map(|alert| alert.keys()).collect();
        wanted.sort_by_key(|(kind, value)| (kind_index(*kind), *value));
        wanted.dedup();
        for chunk in wanted.chunks(CHUNK) {
            let mut params: Vec<Value> = chunk
                .iter()
                .flat_map(|(kind, value)| [kind.as_str().into(), (*value).into()])
                .collect();
            params.push((earliest - MAX_SPAN_SECONDS).into());
            let statement = format!(
                "SELECT k.kind, k.value, k.last_time, i.incident_id, i.first_time, i.last_time, i.max_score, i.lead_id \
                 FROM incident_keys k JOIN incidents i USING (incident_id) \
                 WHERE (k.kind, k.value) IN (VALUES {}) AND i.first_time >= ?{}",
                values_list(chunk.len(), &["TEXT", "TEXT"]),
                params.len()
            );
            for row in sql.query(&statement, &params)? {
                let (Some(kind), Some(value), Some(key_time), Some(id)) = (
                    row[0].text().and_then(kind_of),
                    row[1].text(),
                    row[2].int(),
                    row[3].int(),
                ) else {
                    continue;
                };
                let slot = *slot_of_id.entry(id).or_insert_with(|| {
                    slots.push(Linking {
                        id: Some(id),
                        first_time: row[4].int().unwrap_or(0),
                        last_time: row[5].int().unwrap_or(0),
                        max_score: row[6].real().unwrap_or(0.0),
                        lead_id: row[7].int().unwrap_or(0),
                        added_alerts: 0,
                        added_paise: 0,
                        added_keys: [0; 3],
                    });
                    slots.len() - 1
                });
                keys.entry((kind, value.to_string()))
                    .or_default()
                    .push(KeyRow {
                        slot,
                        last_time: key_time,
                        touched: false,
                    });
            }
        }
    }

    // Place each fresh alert, in id order, exactly as one-at-a-time linking would.
    let mut placed: Vec<usize> = Vec::with_capacity(fresh.len());
    for alert in &fresh {
        let mut joined = None;
        for (kind, value) in alert.keys() {
            joined = keys
                .get(&(kind, value.to_string()))
                .into_iter()
                .flatten()
                .filter(|key| {
                    key.last_time >= alert.time - kind.window()
                        && slots[key.slot].first_time >= alert.time - MAX_SPAN_SECONDS
                })
                .max_by_key(|key| (key.last_time, slots[key.slot].age_rank(key.slot)))
                .map(|key| key.slot);
            if joined.is_some() {
                break;
            }
        }
        let slot = joined.unwrap_or_else(|| {
            slots.push(Linking {
                id: None,
                first_time: alert.time,
                last_time: alert.time,
                max_score: alert.score,
                lead_id: alert.transaction_id,
                added_alerts: 0,
                added_paise: 0,
                added_keys: [0; 3],
            });
            slots.len() - 1
        });
        let incident = &mut slots[slot];
        incident.added_alerts += 1;
        incident.added_paise = incident.added_paise.saturating_add(alert.amount_paise);
        if alert.score > incident.max_score {
            incident.max_score = alert.score;
            incident.lead_id = alert.transaction_id;
        }
        incident.first_time = incident.first_time.min(alert.time);
        incident.last_time = incident.last_time.max(alert.time);
        for (kind, value) in alert.keys() {
            let rows = keys.entry((kind, value.to_string())).or_default();
            match rows.iter_mut().find(|key| key.slot == slot) {
                Some(key) => {
                    key.last_time = key.last_time.max(alert.time);
                    key.touched = true;
                }
                None => {
                    rows.push(KeyRow {
                        slot,
                        last_time: alert.time,
                        touched: true,
                    });
                    slots[slot].added_keys[kind_index(kind)] += 1;
                }
            }
        }
        placed.push(slot);
    }

    // Write: incidents first (new ones numbered after the newest stored one, in the order they
    // opened, as one at a time would have numbered them), then members, then keys: a few
    // multi-row statements per batch. Only linking creates incidents, and it runs in the
    // transaction of the one scorer (or, on SQLite, an immediate one), so the numbers are free.
    let opened: Vec<usize> = (0..slots.len())
        .filter(|slot| slots[*slot].id.is_none())
        .collect();
    if !opened.is_empty() {
        let newest = sql
            .query_int("SELECT coalesce(max(incident_id), 0) FROM incidents", &[])?
            .unwrap_or(0);
        for (offset, slot) in opened.iter().enumerate() {
            slots[*slot].id = Some(newest + 1 + offset as i64);
        }
    }
    let figures = |incident: &Linking| -> [Value; 10] {
        let [beneficiaries, accounts, agents] = incident.added_keys;
        [
            incident.id.unwrap_or_default().into(),
            incident.added_alerts.into(),
            incident.max_score.into(),
            incident.added_paise.into(),
            incident.first_time.into(),
            incident.last_time.into(),
            incident.lead_id.into(),
            beneficiaries.into(),
            accounts.into(),
            agents.into(),
        ]
    };
    const FIGURE_TYPES: [&str; 10] = [
        "BIGINT",
        "BIGINT",
        "DOUBLE PRECISION",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
        "BIGINT",
    ];
    let new_rows: Vec<[Value; 10]> = opened.iter().map(|slot| figures(&slots[*slot])).collect();
    for chunk in new_rows.chunks(CHUNK) {
        let params: Vec<Value> = chunk.iter().flat_map(|row| row.iter().cloned()).collect();
        sql.execute(
            &format!(
                "INSERT INTO incidents (incident_id, alerts, max_score, total_paise, first_time, last_time, \
                 lead_id, beneficiaries, accounts, agents) VALUES {}",
                values_list(chunk.len(), &FIGURE_TYPES)
            ),
            &params,
        )?;
    }
    let grown: Vec<[Value; 10]> = slots
        .iter()
        .enumerate()
        .filter(|(slot, incident)| incident.added_alerts > 0 && !opened.contains(slot))
        .map(|(_, incident)| figures(incident))
        .collect();
    for chunk in grown.chunks(CHUNK) {
        let params: Vec<Value> = chunk.iter().flat_map(|row| row.iter().cloned()).collect();
        sql.execute(
            &format!(
                "UPDATE incidents SET alerts = incidents.alerts + v.column2, max_score = v.column3, \
                 total_paise = incidents.total_paise + v.column4, first_time = v.column5, \
                 last_time = v.column6, lead_id = v.column7, \
                 beneficiaries = incidents.beneficiaries + v.column8, \
                 accounts = incidents.accounts + v.column9, agents = incidents.agents + v.column10 \
                 FROM (VALUES {}) AS v WHERE incidents.incident_id = v.column1",
                values_list(chunk.len(), &FIGURE_TYPES)
            ),
            &params,
        )?;
    }
    let id_of = |slot: usize| slots[slot].id.unwrap_or_default();
    let members: Vec<(&&AlertToLink<'_>, i64)> = fresh
        .iter()
        .zip(placed.iter().map(|slot| id_of(*slot)))
        .collect();
    for chunk in members.chunks(CHUNK) {
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|(alert, incident)| {
                [
                    alert.transaction_id.into(),
                    (*incident).into(),
                    alert.category.into(),
                ]
            })
            .collect();
        // The alert's own columns are copied from its row, already scored in this transaction.
        let statement = format!(
            "INSERT INTO incident_alerts (transaction_id, incident_id, verdict, timestamp, scheme, district, \
             amount_paise, category, beneficiary_id, account_id, agent_id) \
             SELECT t.transaction_id, m.column2, \
             (SELECT v.verdict FROM verdicts v WHERE v.transaction_id = t.transaction_id \
              ORDER BY v.created_at DESC, v.verdict_id DESC LIMIT 1), \
             t.timestamp, t.scheme, t.district, t.amount_paise, m.column3, \
             t.beneficiary_id, t.account_id, t.agent_id \
             FROM (VALUES {}) AS m JOIN transactions t ON t.transaction_id = m.column1",
            values_list(chunk.len(), &["BIGINT", "BIGINT", "TEXT"])
        );
        if sql.execute(&statement, &params)? != chunk.len() as u64 {
            // The caller links rows it has just scored; a missing one is a bug, not data.
            return Err(Error::Invalid(
                "an alert to link is not a stored transaction".into(),
            ));
        }
    }
    let touched: Vec<(KeyKind, &str, i64, i64)> = keys
        .iter()
        .flat_map(|((kind, value), rows)| {
            rows.iter()
                .filter(|key| key.touched)
                .map(move |key| (*kind, value.as_str(), key.slot, key.last_time))
        })
        .map(|(kind, value, slot, last_time)| (kind, value, id_of(slot), last_time))
        .collect();
    for chunk in touched.chunks(CHUNK) {
        let params: Vec<Value> = chunk
            .iter()
            .flat_map(|(kind, value, incident, last_time)| {
                [
                    kind.as_str().into(),
                    (*value).into(),
                    (*incident).into(),
                    (*last_time).into(),
                ]
            })
            .collect();
        let statement = format!(
            "INSERT INTO incident_keys (kind, value, incident_id, last_time) VALUES {} \
             ON CONFLICT (kind, value, incident_id) DO UPDATE SET last_time = excluded.last_time",
            values_list(chunk.len(), &["TEXT", "TEXT", "BIGINT", "BIGINT"])
        );
        sql.execute(&statement, &params)?;
    }

    let mut placed = placed.into_iter();
    Ok(alerts
        .iter()
        .map(|alert| match linked.get(&alert.transaction_id) {
            Some(incident) => *incident,
            None => id_of(placed.next().unwrap_or_default()),
        })
        .collect())
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

/// Inside the caller's transaction (one that may write), links the anomalies between the last
/// linked id and the monitor's mark: safe to run from several programs at once. Returns how
/// many were linked.
pub fn link_pending(sql: &mut dyn Sql) -> Result<usize> {
    let mark = store::monitor_mark(sql)?.unwrap_or(0);
    link_backlog(sql, mark)
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
    // Read through a write of the row, which PostgreSQL locks until this transaction ends: two
    // linkers (the monitor and a starting dashboard) take turns instead of both linking the same
    // alerts and both taking the next incident ids. SQLite callers hold the write lock already.
    let from = sql
        .query_int(
            "UPDATE incident_state SET linked_up_to = linked_up_to WHERE singleton = 1 \
             RETURNING linked_up_to",
            &[],
        )?
        .unwrap_or(0);
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
    use crate::sql::Sqlite;
    use rusqlite::Connection;
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

    /// Everything linking wrote, in a comparable form.
    fn written(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for sql in [
            "SELECT incident_id, first_time, last_time, alerts, max_score, total_paise, lead_id, \
             beneficiaries, accounts, agents, unreviewed FROM incidents ORDER BY 1",
            "SELECT transaction_id, incident_id, category FROM incident_alerts ORDER BY 1",
            "SELECT kind, value, incident_id, last_time FROM incident_keys ORDER BY 1, 2, 3",
        ] {
            for row in Sqlite(conn).query(sql, &[]).unwrap() {
                out.push(format!("{row:?}"));
            }
        }
        out
    }

    /// The monitor links a batch at a time, and batches differ between runs (a restart, a
    /// smaller --batch-size): the incidents must not.
    #[test]
    fn linking_in_batches_gives_the_incidents_of_linking_one_at_a_time() {
        let beneficiaries = ["B1", "B2", "B3", "B4", "B5"];
        let agents = ["G1", "G2", "G3"];
        // Out-of-order times, repeated people and counters, ties in time and score.
        let alerts: Vec<AlertToLink<'static>> = (0..60)
            .map(|i: i64| {
                let mut alert = alert(
                    i + 1,
                    (i * 37 % 50) * 3 + i / 20,
                    beneficiaries[(i * 7 % 5) as usize],
                    agents[(i % 3) as usize],
                );
                alert.score = (i % 4) as f64;
                alert.account_id = (i % 6 == 0).then_some("AC1");
                alert
            })
            .collect();
        let whole = stored(&alerts);
        link(&mut Sqlite(&whole), &alerts).unwrap();
        let one_by_one = stored(&alerts);
        for alert in &alerts {
            link(&mut Sqlite(&one_by_one), std::slice::from_ref(alert)).unwrap();
        }
        let in_sevens = stored(&alerts);
        for chunk in alerts.chunks(7) {
            link(&mut Sqlite(&in_sevens), chunk).unwrap();
        }
        let expected = written(&one_by_one);
        assert!(expected.len() > 60, "{expected:?}");
        assert_eq!(written(&whole), expected);
        assert_eq!(written(&in_sevens), expected);
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
