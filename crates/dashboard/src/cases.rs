//! The case queue: incidents (grouped by `aegis_core::incidents` as the monitor scores) filtered,
//! sorted, assigned and settled with one verdict; verdicts revised only with a reason.
//!
//! An incident is listed when at least one of its alerts matches every alert filter (dates,
//! scheme, district, category, amount, search, verdict state); the assignee filter and the sort
//! keys are the incident's own (its highest score, its total amount, its latest alert).

use aegis_core::sql::{Row, Sql, Value};
use aegis_core::values;
use serde::{Deserialize, Serialize};

use aegis_core::time::{EventTime, format_ist};

use crate::alerts::{Auditor, MAX_NOTE_CHARS, Verdict};
use crate::audit;
use crate::error::{AppError, AppResult};
use crate::filters::{Filters, ListParams, PAGE_SIZE};
use crate::queries::{TxRow, headline, text_at, tx_columns, tx_row};
use crate::views::{format_millis, query_string};

/// The queue's query string. Every field is text so a bad value gets a clear message.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct QueueParams {
    pub from: String,
    pub to: String,
    pub scheme: String,
    pub district: String,
    pub category: String,
    pub min_amount: String,
    pub max_amount: String,
    pub q: String,
    /// [`VerdictState`] (`open` by default).
    pub state: String,
    /// The older spelling of `state=field_checks` (`/alerts?queue=field_checks`).
    pub queue: String,
    /// `me`, `none`, a username, or empty for anyone.
    pub assignee: String,
    pub sort: String,
    pub dir: String,
    pub page: String,
    /// What the last bulk action did (`verdict-3`), for the notice line.
    pub done: String,
}

/// Which alerts of an incident count for the queue, by their latest verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictState {
    /// No verdict yet, or a field check pending: work still to do.
    Open,
    Unreviewed,
    FieldChecks,
    Confirmed,
    Dismissed,
    All,
}

impl VerdictState {
    pub const ALL: [VerdictState; 6] = [
        VerdictState::Open,
        VerdictState::Unreviewed,
        VerdictState::FieldChecks,
        VerdictState::Confirmed,
        VerdictState::Dismissed,
        VerdictState::All,
    ];

    pub fn param(self) -> &'static str {
        match self {
            VerdictState::Open => "open",
            VerdictState::Unreviewed => "unreviewed",
            VerdictState::FieldChecks => "field_checks",
            VerdictState::Confirmed => "confirmed",
            VerdictState::Dismissed => "dismissed",
            VerdictState::All => "all",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            VerdictState::Open => "Open (no verdict or field check pending)",
            VerdictState::Unreviewed => "No verdict yet",
            VerdictState::FieldChecks => "Field check pending",
            VerdictState::Confirmed => "Confirmed fraud",
            VerdictState::Dismissed => "Dismissed",
            VerdictState::All => "Any verdict state",
        }
    }

    fn parse(text: &str) -> AppResult<VerdictState> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(VerdictState::Open);
        }
        VerdictState::ALL
            .into_iter()
            .find(|state| state.param() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = VerdictState::ALL.iter().map(|s| s.param()).collect();
                AppError::BadRequest(format!("state: one of {}", names.join(", ")))
            })
    }

    /// The condition on an incident's verdict counts (`incidents i`): it has an alert in this
    /// state.
    fn incident_condition(self) -> Option<&'static str> {
        match self {
            VerdictState::Open => Some("i.unreviewed + i.field_checks > 0"),
            VerdictState::Unreviewed => Some("i.unreviewed > 0"),
            VerdictState::FieldChecks => Some("i.field_checks > 0"),
            VerdictState::Confirmed => Some("i.confirmed > 0"),
            VerdictState::Dismissed => Some("i.dismissed > 0"),
            VerdictState::All => None,
        }
    }

    /// The condition on `incident_alerts ia` (a literal: the values are a fixed set).
    fn condition(self) -> Option<&'static str> {
        match self {
            VerdictState::Open => Some("(ia.verdict IS NULL OR ia.verdict = 'needs_field_check')"),
            VerdictState::Unreviewed => Some("ia.verdict IS NULL"),
            VerdictState::FieldChecks => Some("ia.verdict = 'needs_field_check'"),
            VerdictState::Confirmed => Some("ia.verdict = 'confirmed_fraud'"),
            VerdictState::Dismissed => Some("ia.verdict = 'dismissed'"),
            VerdictState::All => None,
        }
    }
}

/// Whose incidents are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignee {
    Anyone,
    /// The logged-in user ("my cases").
    Me,
    Unassigned,
    User(String),
}

impl Assignee {
    fn parse(text: &str) -> AppResult<Assignee> {
        Ok(match text.trim() {
            "" => Assignee::Anyone,
            "me" => Assignee::Me,
            "none" => Assignee::Unassigned,
            name if name.len() <= 64 => Assignee::User(name.to_string()),
            _ => {
                return Err(AppError::BadRequest(
                    "assignee: me, none or a username".into(),
                ));
            }
        })
    }

    fn param(&self) -> String {
        match self {
            Assignee::Anyone => String::new(),
            Assignee::Me => "me".into(),
            Assignee::Unassigned => "none".into(),
            Assignee::User(name) => name.clone(),
        }
    }
}

/// What the queue is sorted by (the incident's own figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueSort {
    /// Highest score of its alerts.
    Score,
    /// Total amount of its alerts.
    Amount,
    /// Event time of its latest alert.
    Time,
}

impl QueueSort {
    pub const ALL: [QueueSort; 3] = [QueueSort::Score, QueueSort::Amount, QueueSort::Time];

    pub fn param(self) -> &'static str {
        match self {
            QueueSort::Score => "score",
            QueueSort::Amount => "amount",
            QueueSort::Time => "time",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            QueueSort::Score => "Highest score",
            QueueSort::Amount => "Total amount",
            QueueSort::Time => "Latest alert",
        }
    }

    fn column(self) -> &'static str {
        match self {
            QueueSort::Score => "i.max_score",
            QueueSort::Amount => "i.total_paise",
            QueueSort::Time => "i.last_time",
        }
    }
}

/// The validated queue filters and sort.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFilters {
    /// Dates, scheme, category, amounts and search, as on the overview (status unused).
    pub alerts: Filters,
    pub district: Option<String>,
    pub state: VerdictState,
    pub assignee: Assignee,
    pub sort: QueueSort,
    pub descending: bool,
}

impl Default for QueueFilters {
    fn default() -> Self {
        QueueFilters {
            alerts: Filters::default(),
            district: None,
            state: VerdictState::Open,
            assignee: Assignee::Anyone,
            sort: QueueSort::Score,
            descending: true,
        }
    }
}

impl QueueFilters {
    pub fn parse(params: &QueueParams) -> AppResult<QueueFilters> {
        let alerts = Filters::parse(&ListParams {
            from: params.from.clone(),
            to: params.to.clone(),
            scheme: params.scheme.clone(),
            category: params.category.clone(),
            min_amount: params.min_amount.clone(),
            max_amount: params.max_amount.clone(),
            q: params.q.clone(),
            ..ListParams::default()
        })?;
        let district = Some(params.district.trim())
            .filter(|d| !d.is_empty())
            .map(str::to_string);
        if district.as_ref().is_some_and(|d| d.len() > 64) {
            return Err(AppError::BadRequest(
                "district: at most 64 characters".into(),
            ));
        }
        let state = if params.state.trim().is_empty() && params.queue.trim() == "field_checks" {
            VerdictState::FieldChecks
        } else {
            VerdictState::parse(&params.state)?
        };
        let sort = match params.sort.trim() {
            "" => QueueSort::Score,
            text => QueueSort::ALL
                .into_iter()
                .find(|sort| sort.param() == text)
                .ok_or_else(|| AppError::BadRequest("sort: one of score, amount, time".into()))?,
        };
        let descending = match params.dir.trim() {
            "" | "desc" => true,
            "asc" => false,
            _ => return Err(AppError::BadRequest("dir: asc or desc".into())),
        };
        Ok(QueueFilters {
            alerts,
            district,
            state,
            assignee: Assignee::parse(&params.assignee)?,
            sort,
            descending,
        })
    }

    /// The filters as query-string pairs; defaults are left out so links stay short.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = self.alerts.pairs();
        pairs.retain(|(key, _)| *key != "status");
        pairs.push(("district", self.district.clone().unwrap_or_default()));
        if self.state != VerdictState::Open {
            pairs.push(("state", self.state.param().to_string()));
        }
        pairs.push(("assignee", self.assignee.param()));
        if self.sort != QueueSort::Score {
            pairs.push(("sort", self.sort.param().to_string()));
        }
        if !self.descending {
            pairs.push(("dir", "asc".to_string()));
        }
        pairs
    }

    pub fn query_string(&self) -> String {
        query_string(self.pairs())
    }

    /// Whether any filter applies to the alerts (rather than the incident as a whole).
    fn has_alert_filters(&self) -> bool {
        self.district.is_some() || !self.alerts.alert_conditions().0.is_empty()
    }

    /// ` WHERE …` over `incidents i`, with its parameters. `me` is the logged-in user's id.
    fn where_clause(&self, me: i64) -> (String, Vec<Value>) {
        // `incident_alerts` carries each alert's columns, so the alert filters never visit
        // `transactions`; with none, the incident's own verdict counts answer the state filter.
        let (mut alert_conditions, mut params) = self.alerts.alert_conditions();
        let mut conditions: Vec<String> = Vec::new();
        if let Some(district) = &self.district {
            alert_conditions.push("district = ?".to_string());
            params.push(Value::Text(district.clone()));
        }
        if alert_conditions.is_empty() {
            conditions.extend(self.state.incident_condition().map(str::to_string));
        } else {
            alert_conditions.extend(self.state.condition().map(str::to_string));
            conditions.push(format!(
                "i.incident_id IN (SELECT ia.incident_id FROM incident_alerts ia WHERE {})",
                alert_conditions.join(" AND ")
            ));
        }
        match &self.assignee {
            Assignee::Anyone => {}
            Assignee::Me => {
                conditions.push("i.assignee_id = ?".into());
                params.push(Value::Int(me));
            }
            Assignee::Unassigned => conditions.push("i.assignee_id IS NULL".into()),
            Assignee::User(name) => {
                conditions
                    .push("i.assignee_id = (SELECT user_id FROM users WHERE username = ?)".into());
                params.push(Value::Text(name.clone()));
            }
        }
        if conditions.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", conditions.join(" AND ")), params)
        }
    }

    /// The incident's own sort keys are never NULL, so both engines order them alike.
    fn order_by(&self) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        format!(
            " ORDER BY {} {dir}, i.incident_id {dir}",
            self.sort.column()
        )
    }
}

/// How an incident's alerts stand, by their latest verdicts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerdictCounts {
    pub alerts: i64,
    pub unreviewed: i64,
    pub field_checks: i64,
    pub confirmed: i64,
    pub dismissed: i64,
}

impl VerdictCounts {
    /// Alerts with work left: no verdict, or a field check pending.
    pub fn open(&self) -> i64 {
        self.unreviewed + self.field_checks
    }

    /// In words: "2 open · 1 confirmed".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.unreviewed, "awaiting a verdict"),
            (self.field_checks, "field check pending"),
            (self.confirmed, "confirmed fraud"),
            (self.dismissed, "dismissed"),
        ]
        .into_iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, what)| format!("{count} {what}"))
        .collect();
        parts.join(" · ")
    }
}

/// An incident as the queue lists it.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentSummary {
    pub incident_id: i64,
    pub first_time: String,
    pub last_time: String,
    pub max_score: f64,
    pub total_paise: i64,
    pub assignee: Option<String>,
    pub assigned_at: Option<String>,
    pub counts: VerdictCounts,
    pub beneficiaries: i64,
    pub accounts: i64,
    pub agents: i64,
    /// Its highest-scoring alert, and that alert's first reason.
    pub lead: TxRow,
    pub headline: Option<String>,
}

/// A page of the queue.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentPage {
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub rows: Vec<IncidentSummary>,
}

fn event_time(time: EventTime) -> String {
    format_ist(time)
}

/// One incident's figures, or `None` if there is no such incident: one read of the incident,
/// its assignee and its lead alert (the counts are kept on the incident as it grows).
pub fn incident_summary(sql: &mut dyn Sql, id: i64) -> AppResult<Option<IncidentSummary>> {
    Ok(incident_summaries(sql, &[id])?.pop())
}

/// The figures of the incidents `ids` that exist, in the order of `ids`, read in one statement
/// (a page of the queue is one query, not one per incident: on PostgreSQL each lead is found
/// in whichever month's partition holds it, and starting that search once per incident cost
/// more than the search). The lead happened within the incident's span, which the join says,
/// so that PostgreSQL searches only the months of that span (every month's index before:
/// 5.2 ms for a page of 25 on a million payments).
pub fn incident_summaries(sql: &mut dyn Sql, ids: &[i64]) -> AppResult<Vec<IncidentSummary>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let engine = sql.engine();
    let placeholders = vec!["?"; ids.len()].join(", ");
    let params: Vec<Value> = ids.iter().map(|&id| Value::Int(id)).collect();
    let mut found = sql.rows(
        &format!(
            "SELECT {}, {}, \
             i.first_time, i.last_time, i.max_score, i.total_paise, u.username, i.assigned_at, \
             i.alerts, i.unreviewed, i.field_checks, i.confirmed, i.dismissed, i.beneficiaries, i.accounts, i.agents, \
             i.incident_id \
             FROM incidents i JOIN transactions t ON t.transaction_id = i.lead_id \
             AND t.timestamp BETWEEN {} AND {} \
             LEFT JOIN users u ON u.user_id = i.assignee_id WHERE i.incident_id IN ({placeholders})",
            tx_columns(engine),
            headline(engine),
            engine.event_time_text("i.first_time"),
            engine.event_time_text("i.last_time"),
        ),
        &params,
        |row| {
            Ok(IncidentSummary {
                incident_id: row.at(30)?,
                lead: tx_row(row)?,
                headline: text_at(row, 15),
                first_time: event_time(row.at(16)?),
                last_time: event_time(row.at(17)?),
                max_score: row.at(18)?,
                total_paise: row.at(19)?,
                assignee: row.at(20)?,
                assigned_at: row.at::<Option<i64>>(21)?.map(format_millis),
                counts: VerdictCounts {
                    alerts: row.at(22)?,
                    unreviewed: row.at(23)?,
                    field_checks: row.at(24)?,
                    confirmed: row.at(25)?,
                    dismissed: row.at(26)?,
                },
                beneficiaries: row.at(27)?,
                accounts: row.at(28)?,
                agents: row.at(29)?,
            })
        },
    )?;
    let position = |summary: &IncidentSummary| ids.iter().position(|&id| id == summary.incident_id);
    found.sort_by_key(position);
    Ok(found)
}

fn pages_of(total: i64) -> i64 {
    ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1)
}

/// A page of the queue for the user `me`.
pub fn incident_queue(
    sql: &mut dyn Sql,
    filters: &QueueFilters,
    me: i64,
    page: i64,
) -> AppResult<IncidentPage> {
    let (where_clause, params) = filters.where_clause(me);
    let (total, page, ids) = if filters.has_alert_filters() {
        // The alert filters scan `incident_alerts` once: every matching id in order, then the
        // page is a slice (cheaper than scanning again to count).
        let all: Vec<i64> = sql.column(
            &format!(
                "SELECT i.incident_id FROM incidents i{where_clause}{}",
                filters.order_by()
            ),
            &params,
        )?;
        let total = all.len() as i64;
        let page = page.clamp(1, pages_of(total));
        let start = ((page - 1) * PAGE_SIZE) as usize;
        let ids = all
            .into_iter()
            .skip(start)
            .take(PAGE_SIZE as usize)
            .collect();
        (total, page, ids)
    } else {
        // Incident-level conditions only: counted from the incidents, and the page read in
        // sort order with LIMIT.
        let total = sql
            .query_int(
                &format!("SELECT count(*) FROM incidents i{where_clause}"),
                &params,
            )?
            .unwrap_or(0);
        let page = page.clamp(1, pages_of(total));
        let mut paged = params.clone();
        paged.push(Value::Int(PAGE_SIZE));
        paged.push(Value::Int((page - 1) * PAGE_SIZE));
        let ids: Vec<i64> = sql.column(
            &format!(
                "SELECT i.incident_id FROM incidents i{where_clause}{} LIMIT ? OFFSET ?",
                filters.order_by()
            ),
            &paged,
        )?;
        (total, page, ids)
    };
    let pages = pages_of(total);
    let rows = incident_summaries(sql, &ids)?;
    Ok(IncidentPage {
        total,
        page,
        pages,
        rows,
    })
}

/// The incident after `after` in the queue's order, for "save and next"; when `after` was the
/// last, the first one left in the queue other than `after`.
pub fn next_incident(
    sql: &mut dyn Sql,
    filters: &QueueFilters,
    me: i64,
    after: i64,
) -> AppResult<Option<i64>> {
    let (where_clause, params) = filters.where_clause(me);
    let column = filters.sort.column();
    let value: Option<Value> = sql.value(
        &format!("SELECT {column} FROM incidents i WHERE i.incident_id = ?1"),
        values![after],
    )?;
    let joiner = if where_clause.is_empty() {
        " WHERE"
    } else {
        " AND"
    };
    if let Some(value) = value {
        let past = if filters.descending { "<" } else { ">" };
        let mut keyset = params.clone();
        keyset.extend([value.clone(), value, Value::Int(after)]);
        let next = sql.value(
            &format!(
                "SELECT i.incident_id FROM incidents i{where_clause}{joiner} \
                 ({column} {past} ? OR ({column} = ? AND i.incident_id {past} ?)){} LIMIT 1",
                filters.order_by()
            ),
            &keyset,
        )?;
        if next.is_some() {
            return Ok(next);
        }
    }
    let mut wrap = params;
    wrap.push(Value::Int(after));
    Ok(sql.value(
        &format!(
            "SELECT i.incident_id FROM incidents i{where_clause}{joiner} i.incident_id <> ?{} LIMIT 1",
            filters.order_by()
        ),
        &wrap,
    )?)
}

/// One alert of an incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentAlert {
    pub transaction: TxRow,
    pub headline: Option<String>,
    pub verdict: Option<String>,
}

/// A verdict in an incident's history.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictEntry {
    pub transaction_id: i64,
    pub verdict: String,
    pub note: String,
    /// Why a final verdict was changed (empty unless this one revises another).
    pub reason: String,
    pub revises: Option<i64>,
    pub username: String,
    /// What recorded it on the user's behalf: empty for the user in the dashboard, `api:KEY`
    /// for an API key, `import` for `dashboard verdicts import`.
    pub via: String,
    pub at: String,
}

/// The beneficiaries, accounts and agents of an incident with more alerts than its page
/// lists: from its alerts (indexed by incident), not `incident_keys` (keyed for linking), the
/// three lists in one statement.
fn incident_keys(sql: &mut dyn Sql, id: i64) -> AppResult<(Vec<String>, Vec<String>, Vec<String>)> {
    let keys = |column: &str, kind: i64| {
        format!(
            "SELECT * FROM (SELECT DISTINCT {kind} AS kind, {column} AS value FROM incident_alerts \
             WHERE incident_id = ?1 AND {column} IS NOT NULL AND {column} <> '' ORDER BY 2 LIMIT {KEYS_LISTED}) AS k{kind}"
        )
    };
    let mut lists = (Vec::new(), Vec::new(), Vec::new());
    for (kind, value) in sql.rows(
        &format!(
            "{} UNION ALL {} UNION ALL {}",
            keys("beneficiary_id", 0),
            keys("account_id", 1),
            keys("agent_id", 2)
        ),
        values![id],
        |row| Ok((row.at::<i64>(0)?, row.at::<String>(1)?)),
    )? {
        match kind {
            0 => lists.0.push(value),
            1 => lists.1.push(value),
            _ => lists.2.push(value),
        }
    }
    // A union promises no order; each list was the first ones in order, and is sorted again.
    for list in [&mut lists.0, &mut lists.1, &mut lists.2] {
        list.sort_unstable();
    }
    Ok(lists)
}

/// Beneficiaries, accounts and agents listed on an incident's page, at most.
const KEYS_LISTED: usize = 100;

/// Everything about one incident.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    pub summary: IncidentSummary,
    pub alerts: Vec<IncidentAlert>,
    /// The beneficiaries, accounts and agents it is known by.
    pub beneficiaries: Vec<String>,
    pub accounts: Vec<String>,
    pub agents: Vec<String>,
    /// Every verdict on its alerts, newest first.
    pub history: Vec<VerdictEntry>,
}

/// Most alerts listed on an incident's page.
pub const INCIDENT_ALERT_LIMIT: i64 = 200;

/// The incident `id`, or `None`.
pub fn incident_detail(sql: &mut dyn Sql, id: i64) -> AppResult<Option<IncidentDetail>> {
    let Some(summary) = incident_summary(sql, id)? else {
        return Ok(None);
    };
    let engine = sql.engine();
    let alerts = sql.rows(
        &format!(
            "SELECT {}, {}, \
             (SELECT ia.verdict FROM incident_alerts ia WHERE ia.transaction_id = transactions.transaction_id) \
             FROM transactions WHERE transaction_id IN (SELECT transaction_id FROM incident_alerts WHERE incident_id = ?1) \
             ORDER BY timestamp, transaction_id LIMIT ?2",
            tx_columns(engine),
            headline(engine)
        ),
        values![id, INCIDENT_ALERT_LIMIT],
        |row| {
            Ok(IncidentAlert {
                transaction: tx_row(row)?,
                headline: text_at(row, 15),
                verdict: row.at(16)?,
            })
        },
    )?;
    // Every alert is on the page unless there are more than the limit: then the lists and the
    // history are all there is to know without asking again (a round trip to a server counts).
    let complete = summary.counts.alerts <= INCIDENT_ALERT_LIMIT;
    let (beneficiaries, accounts, agents) = if complete {
        let list = |key: fn(&TxRow) -> Option<&str>| {
            let values: std::collections::BTreeSet<&str> = alerts
                .iter()
                .filter_map(|alert| key(&alert.transaction))
                .filter(|value| !value.is_empty())
                .collect();
            values
                .into_iter()
                .take(KEYS_LISTED)
                .map(str::to_string)
                .collect()
        };
        (
            list(|tx| Some(&tx.beneficiary_id)),
            list(|tx| tx.account_id.as_deref()),
            list(|tx| tx.agent_id.as_deref()),
        )
    } else {
        incident_keys(sql, id)?
    };
    // An alert's latest verdict is kept on it: no verdict on any alert, no history.
    let history = if complete && alerts.iter().all(|alert| alert.verdict.is_none()) {
        Vec::new()
    } else {
        sql.rows(
            &format!(
                "SELECT {VERDICT_COLUMNS} FROM verdicts v JOIN incident_alerts ia USING (transaction_id) \
                 LEFT JOIN users u ON u.user_id = v.user_id \
                 WHERE ia.incident_id = ?1 ORDER BY v.created_at DESC, v.verdict_id DESC LIMIT 500"
            ),
            values![id],
            verdict_entry,
        )?
    };
    Ok(Some(IncidentDetail {
        summary,
        alerts,
        beneficiaries,
        accounts,
        agents,
        history,
    }))
}

/// Columns read by [`verdict_entry`], over `verdicts v` joined with `users u`.
const VERDICT_COLUMNS: &str = "v.transaction_id, v.verdict, v.note, v.reason, v.revises, coalesce(u.username, '?'), v.created_at, v.via";

fn verdict_entry(row: &[Value]) -> aegis_core::Result<VerdictEntry> {
    Ok(VerdictEntry {
        transaction_id: row.at(0)?,
        verdict: row.at(1)?,
        note: row.at(2)?,
        reason: row.at(3)?,
        revises: row.at(4)?,
        username: row.at(5)?,
        at: format_millis(row.at(6)?),
        via: row.at(7)?,
    })
}

/// Verdicts on transaction `id`, newest first.
pub fn verdicts_of(sql: &mut dyn Sql, id: i64) -> AppResult<Vec<VerdictEntry>> {
    Ok(sql.rows(
        &format!(
            "SELECT {VERDICT_COLUMNS} FROM verdicts v LEFT JOIN users u ON u.user_id = v.user_id \
             WHERE v.transaction_id = ?1 ORDER BY v.created_at DESC, v.verdict_id DESC"
        ),
        values![id],
        verdict_entry,
    )?)
}

/// The incident transaction `id` belongs to.
pub fn incident_of(sql: &mut dyn Sql, id: i64) -> AppResult<Option<i64>> {
    Ok(sql.query_int(
        "SELECT incident_id FROM incident_alerts WHERE transaction_id = ?1",
        values![id],
    )?)
}

/// What a verdict is recorded on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// One transaction (recorded even if its latest verdict is the same: a new note).
    Alert(i64),
    /// Every alert of these incidents whose latest verdict differs.
    Incidents(&'a [i64]),
    /// These alerts of one incident (the ones the auditor kept ticked), where the latest
    /// verdict differs.
    IncidentAlerts { incident: i64, alerts: &'a [i64] },
}

/// What [`record_verdicts`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Recorded {
    /// Verdict rows written.
    pub verdicts: usize,
    /// Of those, how many replaced a final verdict.
    pub revised: usize,
    /// The newest verdict id written (0 if none).
    pub last_verdict_id: i64,
}

fn checked_text(name: &str, text: &str) -> AppResult<String> {
    let text = text.trim();
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(AppError::BadRequest(format!(
            "{name}: at most {MAX_NOTE_CHARS} characters"
        )));
    }
    Ok(text.to_string())
}

/// A payment's latest verdict, as [`latest_verdict`] finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestVerdict {
    pub verdict_id: i64,
    pub verdict: String,
    pub note: String,
    pub reason: String,
    pub user_id: i64,
    /// What recorded it on the user's behalf ([`Auditor::via`]).
    pub via: String,
    pub created_at: i64,
}

/// The latest verdict on `transaction_id` decided at or before `decided_by` (milliseconds;
/// `i64::MAX` for the latest of all), latest by decision time, then id: the order every page,
/// the export and the triggers use.
pub fn latest_verdict(
    sql: &mut dyn Sql,
    transaction_id: i64,
    decided_by: i64,
) -> AppResult<Option<LatestVerdict>> {
    Ok(sql.row(
        "SELECT verdict_id, verdict, note, reason, user_id, created_at, via FROM verdicts \
         WHERE transaction_id = ?1 AND created_at <= ?2 \
         ORDER BY created_at DESC, verdict_id DESC LIMIT 1",
        values![transaction_id, decided_by],
        |row| {
            Ok(LatestVerdict {
                verdict_id: row.at(0)?,
                verdict: row.at(1)?,
                note: row.at(2)?,
                reason: row.at(3)?,
                user_id: row.at(4)?,
                created_at: row.at(5)?,
                via: row.at(6)?,
            })
        },
    )?)
}

pub(crate) fn is_final(verdict: &str) -> bool {
    verdict == Verdict::ConfirmedFraud.as_str() || verdict == Verdict::Dismissed.as_str()
}

/// Records `verdict` on `target` and audits it, in the caller's transaction (the dashboard's
/// writes take turns on one connection, so what this reads stays true until it commits; an
/// error rolls all of it back). Changing a final verdict
/// (confirmed fraud or dismissed) to anything else is a revision: it needs a `reason`, which is
/// kept with the new verdict beside the id of the one it replaces; the old one stays in the
/// history.
pub fn record_verdicts(
    sql: &mut dyn Sql,
    target: Target<'_>,
    verdict: Verdict,
    note: &str,
    reason: &str,
    auditor: &Auditor,
    now_millis: i64,
) -> AppResult<Recorded> {
    let note = checked_text("note", note)?;
    let reason = checked_text("reason", reason)?;
    // The revision rule reads the latest verdicts, then writes: no other process's in between.
    aegis_core::pg::lock_verdicts(sql)?;
    // (transaction id, latest verdict id and value)
    let mut alerts: Vec<(i64, Option<(i64, String)>)> = Vec::new();
    {
        let latest_of =
            |sql: &mut dyn Sql, id: i64| -> AppResult<Option<(i64, String)>> {
                Ok(latest_verdict(sql, id, i64::MAX)?
                    .map(|latest| (latest.verdict_id, latest.verdict)))
            };
        match target {
            Target::Alert(id) => {
                // Also what keeps a verdict off a payment that does not exist on PostgreSQL,
                // where `verdicts` cannot have a foreign key into the partitioned payments.
                let exists = sql.query_int(
                    "SELECT CASE WHEN EXISTS (SELECT 1 FROM transactions WHERE transaction_id = ?1) \
                     THEN 1 ELSE 0 END",
                    values![id],
                )?;
                if exists != Some(1) {
                    return Err(AppError::NotFound);
                }
                alerts.push((id, latest_of(sql, id)?));
            }
            Target::Incidents(incidents) => {
                if incidents.is_empty() {
                    return Err(AppError::BadRequest("choose at least one incident".into()));
                }
                for &incident in incidents {
                    let ids: Vec<i64> = sql.column(
                        "SELECT transaction_id FROM incident_alerts WHERE incident_id = ?1 ORDER BY transaction_id",
                        values![incident],
                    )?;
                    if ids.is_empty() {
                        return Err(AppError::NotFound);
                    }
                    for id in ids {
                        let current = latest_of(sql, id)?;
                        if current.as_ref().is_none_or(|(_, v)| v != verdict.as_str()) {
                            alerts.push((id, current));
                        }
                    }
                }
            }
            Target::IncidentAlerts {
                incident,
                alerts: chosen,
            } => {
                if chosen.is_empty() {
                    return Err(AppError::BadRequest(
                        "tick at least one alert of the incident".into(),
                    ));
                }
                for &id in chosen {
                    let of = sql.query_int(
                        "SELECT incident_id FROM incident_alerts WHERE transaction_id = ?1",
                        values![id],
                    )?;
                    if of != Some(incident) {
                        return Err(AppError::BadRequest(format!(
                            "alert {id} is not part of incident {incident}"
                        )));
                    }
                    let current = latest_of(sql, id)?;
                    if current.as_ref().is_none_or(|(_, v)| v != verdict.as_str()) {
                        alerts.push((id, current));
                    }
                }
            }
        }
    }
    // (transaction, the final verdict this one revises, if it does), decided once.
    let alerts: Vec<(i64, Option<i64>)> = alerts
        .into_iter()
        .map(|(id, current)| {
            let revises = current
                .filter(|(_, v)| is_final(v) && v != verdict.as_str())
                .map(|(verdict_id, _)| verdict_id);
            (id, revises)
        })
        .collect();
    let revisions: Vec<i64> = alerts
        .iter()
        .filter(|(_, revises)| revises.is_some())
        .map(|(id, _)| *id)
        .collect();
    if !revisions.is_empty() && reason.is_empty() {
        let shown: Vec<String> = revisions.iter().take(5).map(i64::to_string).collect();
        return Err(AppError::BadRequest(format!(
            "reason: this changes a final verdict (transaction {}{}); say why in the reason field",
            shown.join(", "),
            if revisions.len() > 5 { ", …" } else { "" }
        )));
    }
    let mut recorded = Recorded::default();
    for &(id, revises) in &alerts {
        recorded.last_verdict_id = sql
            .query_int(
                "INSERT INTO verdicts (transaction_id, verdict, note, user_id, created_at, revises, reason, via) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING verdict_id",
                values![
                    id,
                    verdict.as_str(),
                    note.as_str(),
                    auditor.user_id,
                    now_millis,
                    revises,
                    if revises.is_some() {
                        reason.as_str()
                    } else {
                        ""
                    },
                    auditor.via.as_str(),
                ],
            )?
            .unwrap_or_default();
        recorded.verdicts += 1;
        recorded.revised += usize::from(revises.is_some());
    }
    // What was decided first, then on what: the entry is cut at 500 characters, and a long
    // list of ids must not cut the verdict or the reason off.
    let mut detail = verdict.as_str().to_string();
    if recorded.revised > 0 {
        detail.push_str(&format!(
            "; revises {} final verdict(s), reason: {reason}",
            recorded.revised
        ));
    }
    let detail = match target {
        Target::Alert(id) => format!("transaction {id}: {detail}"),
        Target::Incidents(incidents) => {
            let ids: Vec<String> = incidents.iter().map(i64::to_string).collect();
            format!(
                "{detail} — {} alerts of incident {}",
                recorded.verdicts,
                ids.join(", ")
            )
        }
        Target::IncidentAlerts { incident, alerts } => {
            let ids: Vec<String> = alerts.iter().map(i64::to_string).collect();
            let already = alerts.len().saturating_sub(recorded.verdicts);
            let had = if already > 0 {
                format!(" ({already} of those ticked had it already)")
            } else {
                String::new()
            };
            format!(
                "{detail} — {} alerts of incident {incident}{had}: transactions {}",
                recorded.verdicts,
                ids.join(", ")
            )
        }
    };
    let action = if recorded.revised > 0 {
        "verdict revised"
    } else {
        "verdict"
    };
    audit::record(sql, now_millis, Some(&auditor.username), action, &detail)?;
    Ok(recorded)
}

/// Users an incident can be assigned to: every active user, by name.
pub fn assignable_users(sql: &mut dyn Sql) -> AppResult<Vec<String>> {
    Ok(sql.column(
        "SELECT username FROM users WHERE disabled = 0 ORDER BY username",
        &[],
    )?)
}

/// What a page showed of one incident, sent back with a form that acts on the whole incident
/// (the queue's bulk form, the incident page's verdict and assignment). The write is refused
/// when the incident changed since: a verdict for "the incident" must not settle an alert the
/// monitor linked after the auditor looked, and an assignment must not silently take a case
/// another auditor took meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub incident: i64,
    pub alerts: i64,
    /// The assignee's username; `None` when unassigned.
    pub assignee: Option<String>,
}

/// Which part of a [`Shown`] incident a write depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Its alerts (a verdict on the whole incident).
    Alerts,
    /// Its assignee (an assignment).
    Assignee,
}

impl Shown {
    pub fn of(summary: &IncidentSummary) -> Shown {
        Shown {
            incident: summary.incident_id,
            alerts: summary.counts.alerts,
            assignee: summary.assignee.clone(),
        }
    }

    /// The form field's value: `incident:alerts:assignee` (the assignee last, empty when
    /// unassigned, since a username may hold a colon).
    pub fn field(&self) -> String {
        format!(
            "{}:{}:{}",
            self.incident,
            self.alerts,
            self.assignee.as_deref().unwrap_or_default()
        )
    }

    pub fn parse(value: &str) -> Option<Shown> {
        let mut parts = value.splitn(3, ':');
        let incident = parts.next()?.trim().parse().ok()?;
        let alerts = parts.next()?.trim().parse().ok()?;
        let assignee = parts.next()?;
        Some(Shown {
            incident,
            alerts,
            assignee: (!assignee.is_empty()).then(|| assignee.to_string()),
        })
    }
}

/// Refuses, naming each incident that changed and how, when any of `shown` no longer matches
/// the database in what `watch` depends on. In the caller's write transaction, so nothing can
/// change between the check and the write: on SQLite the transaction holds the database; on
/// PostgreSQL the no-op update locks each incident's row until the commit, and the monitor's
/// linking of a new alert updates the same row, so it waits (as it does for `link_backlog`).
pub fn unchanged(sql: &mut dyn Sql, shown: &[Shown], watch: Watch) -> AppResult<()> {
    // A verdict follows: the verdict lock first, then the incidents' rows, in the order every
    // verdict writer takes them (a verdict's insert updates its incident's counts), so that
    // two writers never wait for each other.
    if watch == Watch::Alerts {
        aegis_core::pg::lock_verdicts(sql)?;
    }
    let mut changes = Vec::new();
    for seen in shown {
        let now: Option<(i64, Option<i64>)> = sql.row(
            "UPDATE incidents SET alerts = alerts WHERE incident_id = ?1 \
             RETURNING alerts, assignee_id",
            values![seen.incident],
            |row| Ok((row.at(0)?, row.at(1)?)),
        )?;
        let Some((alerts, assignee_id)) = now else {
            return Err(AppError::NotFound);
        };
        let assignee: Option<String> = match assignee_id {
            Some(id) => sql.value("SELECT username FROM users WHERE user_id = ?1", values![id])?,
            None => None,
        };
        let id = seen.incident;
        match watch {
            Watch::Alerts if alerts != seen.alerts => changes.push(format!(
                "incident {id} has {alerts} alerts now, {} when the page was loaded",
                seen.alerts
            )),
            Watch::Assignee if assignee != seen.assignee => changes.push(format!(
                "incident {id} was {} meanwhile",
                assignee.map_or_else(
                    || "unassigned".to_string(),
                    |name| format!("assigned to {name}")
                )
            )),
            _ => {}
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    let (done, check) = match watch {
        Watch::Alerts => (
            "no verdict was recorded",
            "look at the new alerts, then record the verdict again",
        ),
        Watch::Assignee => (
            "nothing was assigned",
            "check who has it, then assign again",
        ),
    };
    Err(AppError::BadRequest(format!(
        "{}: {done}; {check}",
        changes.join("; ")
    )))
}

/// Assigns `incidents` to `assignee` (a username; `None` unassigns) and audits it, in the
/// caller's transaction. Returns the number of incidents changed.
pub fn assign(
    sql: &mut dyn Sql,
    incidents: &[i64],
    assignee: Option<&str>,
    auditor: &Auditor,
    now_millis: i64,
) -> AppResult<usize> {
    if incidents.is_empty() {
        return Err(AppError::BadRequest("choose at least one incident".into()));
    }
    let user_id: Option<i64> = match assignee {
        None => None,
        Some(name) => Some(
            sql.query_int(
                "SELECT user_id FROM users WHERE username = ?1 AND disabled = 0",
                values![name],
            )?
            .ok_or_else(|| {
                AppError::BadRequest(format!("assignee: {name:?} is not an active user"))
            })?,
        ),
    };
    let mut changed = 0;
    for &incident in incidents {
        let updated = sql.execute(
            "UPDATE incidents SET assignee_id = CAST(?2 AS BIGINT), \
             assigned_at = CASE WHEN ?2 IS NULL THEN NULL ELSE CAST(?3 AS BIGINT) END \
             WHERE incident_id = ?1",
            values![incident, user_id, now_millis],
        )?;
        if updated == 0 {
            return Err(AppError::NotFound);
        }
        changed += 1;
    }
    let ids: Vec<String> = incidents.iter().map(i64::to_string).collect();
    audit::record(
        sql,
        now_millis,
        Some(&auditor.username),
        "assign",
        &format!(
            "to {}: {} incident(s): {}",
            assignee.unwrap_or("nobody"),
            incidents.len(),
            ids.join(", ")
        ),
    )?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_left_out_of_links_and_the_old_field_check_link_still_works() {
        let filters = QueueFilters::parse(&QueueParams::default()).unwrap();
        assert_eq!(filters, QueueFilters::default());
        assert_eq!(filters.query_string(), "");
        let old = QueueParams {
            queue: "field_checks".into(),
            ..QueueParams::default()
        };
        let filters = QueueFilters::parse(&old).unwrap();
        assert_eq!(filters.state, VerdictState::FieldChecks);
        assert_eq!(filters.query_string(), "state=field_checks");
    }

    #[test]
    fn bad_values_name_the_field() {
        for (params, field) in [
            (
                QueueParams {
                    state: "closed".into(),
                    ..QueueParams::default()
                },
                "state:",
            ),
            (
                QueueParams {
                    sort: "beneficiary".into(),
                    ..QueueParams::default()
                },
                "sort:",
            ),
            (
                QueueParams {
                    min_amount: "2k".into(),
                    ..QueueParams::default()
                },
                "min_amount:",
            ),
        ] {
            let error = QueueFilters::parse(&params).unwrap_err().to_string();
            assert!(error.starts_with(field), "{error}");
        }
    }
}
