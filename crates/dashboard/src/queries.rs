//! The overview's queries: KPIs, daily trend, weekday × hour heatmap, map points, the paged
//! transaction table and the export. Every aggregation runs in SQLite, over the filtered rows
//! only, through the indexes on `transactions`.

use chrono::NaiveDate;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use serde::Serialize;

use crate::error::AppResult;
use crate::filters::{Filters, PAGE_SIZE, Sort};
use crate::views::{self, group_digits, rupees};

/// Columns of a transaction row, in [`TxRow`] order. The category comes out of the reasons
/// JSON; rows whose reasons are not JSON simply have none.
pub const TX_COLUMNS: &str = "transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme, \
     amount_paise, timestamp, latitude, longitude, district, status, anomaly_score, \
     CASE WHEN json_valid(reasons) THEN json_extract(reasons, '$.category') END, model_version";

/// One transaction as the table, the API and the export show it.
#[derive(Debug, Clone, Serialize)]
pub struct TxRow {
    pub transaction_id: i64,
    pub transaction_ref: Option<String>,
    pub beneficiary_id: String,
    pub account_id: Option<String>,
    pub agent_id: Option<String>,
    pub scheme: String,
    pub amount_paise: Option<i64>,
    pub timestamp: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub district: Option<String>,
    pub status: Option<String>,
    pub anomaly_score: Option<f64>,
    pub category: Option<String>,
    pub model_version: Option<String>,
}

/// Text of any stored type: the schema's types are affinities, and imported rows can surprise.
pub fn text_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(r) => Some(r.to_string()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(String::from_utf8_lossy(t).into_owned()),
    })
}

/// An integer, tolerating a stored real; text that is not a number reads as missing.
pub fn int_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Integer(i) => Some(i),
        ValueRef::Real(r) => Some(r.round() as i64),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| t.trim().parse().ok()),
        _ => None,
    })
}

/// A real, tolerating a stored integer; text that is not a number reads as missing.
pub fn real_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<f64>> {
    Ok(match row.get_ref(index)? {
        ValueRef::Integer(i) => Some(i as f64),
        ValueRef::Real(r) => Some(r),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .ok()
            .and_then(|t| t.trim().parse().ok()),
        _ => None,
    })
}

/// Reads a row selected with [`TX_COLUMNS`].
pub fn tx_row(row: &Row<'_>) -> rusqlite::Result<TxRow> {
    Ok(TxRow {
        transaction_id: row.get(0)?,
        transaction_ref: text_at(row, 1)?,
        beneficiary_id: text_at(row, 2)?.unwrap_or_default(),
        account_id: text_at(row, 3)?,
        agent_id: text_at(row, 4)?,
        scheme: text_at(row, 5)?.unwrap_or_default(),
        amount_paise: int_at(row, 6)?,
        timestamp: text_at(row, 7)?,
        latitude: real_at(row, 8)?,
        longitude: real_at(row, 9)?,
        district: text_at(row, 10)?,
        status: text_at(row, 11)?,
        anomaly_score: real_at(row, 12)?,
        category: text_at(row, 13)?,
        model_version: text_at(row, 14)?,
    })
}

/// `where_sql` with one more condition.
fn and(where_sql: &str, condition: &str) -> String {
    if where_sql.is_empty() {
        format!(" WHERE {condition}")
    } else {
        format!("{where_sql} AND {condition}")
    }
}

/// The schemes present in the data (a full scan: callers cache it).
pub fn distinct_schemes(conn: &Connection) -> AppResult<Vec<String>> {
    let mut statement =
        conn.prepare_cached("SELECT DISTINCT scheme FROM transactions ORDER BY scheme LIMIT 200")?;
    let rows = statement.query_map([], |row| text_at(row, 0))?;
    Ok(rows
        .filter_map(|row| row.transpose())
        .collect::<Result<_, _>>()?)
}

/// Headline numbers of the filtered rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kpis {
    pub transactions: i64,
    pub anomalies: i64,
    /// Anomalies as a percentage of the filtered transactions.
    pub anomaly_percent: f64,
    pub top_scheme: Option<String>,
    pub top_scheme_anomalies: i64,
    /// The amount of every flagged payment: what the alerts are about, not a loss (most alerts
    /// at the budget are not fraud; the model page says how many).
    pub amount_flagged_paise: i64,
    /// Of it, the amount auditors confirmed as fraud (the latest verdict of each payment).
    pub amount_confirmed_paise: i64,
    /// Display forms of the above.
    pub transactions_text: String,
    pub anomalies_text: String,
    pub anomaly_percent_text: String,
    pub top_scheme_text: String,
    pub amount_flagged_text: String,
    pub amount_confirmed_text: String,
}

/// Payments whose latest verdict is confirmed fraud.
const CONFIRMED_FRAUD: &str = "SELECT v.transaction_id FROM verdicts v WHERE v.verdict = 'confirmed_fraud' \
     AND v.verdict_id = (SELECT max(w.verdict_id) FROM verdicts w WHERE w.transaction_id = v.transaction_id)";

/// KPIs of the rows matching `filters`.
pub fn kpis(conn: &Connection, filters: &Filters) -> AppResult<Kpis> {
    let (where_sql, params) = filters.where_clause();
    let (transactions, anomalies, flagged, confirmed): (i64, i64, i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*), count(CASE WHEN status = 'ANOMALY' THEN 1 END), \
             coalesce(sum(CASE WHEN status = 'ANOMALY' THEN amount_paise END), 0), \
             coalesce(sum(CASE WHEN status = 'ANOMALY' AND transaction_id IN ({CONFIRMED_FRAUD}) THEN amount_paise END), 0) \
             FROM transactions{where_sql}"
        ))?
        .query_row(params_from_iter(params.iter()), |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                int_at(row, 2)?.unwrap_or(0),
                int_at(row, 3)?.unwrap_or(0),
            ))
        })?;
    let top: Option<(String, i64)> = if anomalies > 0 {
        conn.prepare_cached(&format!(
            "SELECT scheme, count(*) AS anomalies FROM transactions{} GROUP BY scheme ORDER BY anomalies DESC, scheme LIMIT 1",
            and(&where_sql, "status = 'ANOMALY'")
        ))?
        .query_row(params_from_iter(params.iter()), |row| Ok((text_at(row, 0)?.unwrap_or_default(), row.get(1)?)))
        .optional()?
    } else {
        None
    };
    let anomaly_percent = if transactions > 0 {
        anomalies as f64 * 100.0 / transactions as f64
    } else {
        0.0
    };
    Ok(Kpis {
        transactions,
        anomalies,
        anomaly_percent,
        top_scheme_anomalies: top.as_ref().map_or(0, |(_, n)| *n),
        top_scheme_text: top.as_ref().map_or_else(
            || "—".to_string(),
            |(scheme, n)| format!("{scheme} ({})", group_digits(*n)),
        ),
        top_scheme: top.map(|(scheme, _)| scheme),
        amount_flagged_paise: flagged,
        amount_confirmed_paise: confirmed,
        transactions_text: group_digits(transactions),
        anomalies_text: group_digits(anomalies),
        anomaly_percent_text: format!("{anomaly_percent:.2} %"),
        amount_flagged_text: aegis_core::domain::format_rupees(flagged),
        amount_confirmed_text: format!(
            "{} confirmed fraud",
            aegis_core::domain::format_rupees(confirmed)
        ),
    })
}

/// Transactions of one day, by status.
#[derive(Debug, Clone, Serialize)]
pub struct DailyPoint {
    pub date: String,
    pub normal: i64,
    pub anomalous: i64,
    /// Unscored or unscorable rows.
    pub other: i64,
}

/// The daily trend of the filtered rows.
pub fn daily(conn: &Connection, filters: &Filters) -> AppResult<Vec<DailyPoint>> {
    let (where_sql, params) = filters.where_clause();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT substr(timestamp, 1, 10) AS day, count(CASE WHEN status = 'NORMAL' THEN 1 END), \
         count(CASE WHEN status = 'ANOMALY' THEN 1 END), count(*) FROM transactions{} GROUP BY day ORDER BY day",
        and(&where_sql, "timestamp IS NOT NULL")
    ))?;
    let rows = statement.query_map(params_from_iter(params.iter()), |row| {
        let (normal, anomalous, all): (i64, i64, i64) = (row.get(1)?, row.get(2)?, row.get(3)?);
        Ok(DailyPoint {
            date: text_at(row, 0)?.unwrap_or_default(),
            normal,
            anomalous,
            other: all - normal - anomalous,
        })
    })?;
    let days: Vec<DailyPoint> = rows.collect::<Result<_, _>>()?;
    Ok(continuous_days(days, filters.from, filters.to))
}

/// Most days a trend spans (ten years): a range wider than the data is cut to the data.
const MAX_TREND_DAYS: u64 = 3_660;

/// Every day from the range's first to its last (the filter's dates, else the data's), with
/// zero for days without rows, so that a gap in the data shows as a gap on the time axis
/// instead of a line drawn straight across it.
fn continuous_days(
    days: Vec<DailyPoint>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<DailyPoint> {
    let parse = |p: &DailyPoint| NaiveDate::parse_from_str(&p.date, "%Y-%m-%d").ok();
    let (Some(first), Some(last)) = (days.first().and_then(parse), days.last().and_then(parse))
    else {
        return days;
    };
    let mut start = from.unwrap_or(first).min(first);
    let end = to.unwrap_or(last).max(last);
    if end.signed_duration_since(start).num_days() as u64 > MAX_TREND_DAYS {
        start = first;
    }
    let mut by_date: std::collections::HashMap<String, DailyPoint> =
        days.into_iter().map(|p| (p.date.clone(), p)).collect();
    start
        .iter_days()
        .take_while(|day| *day <= end)
        .map(|day| {
            let date = day.format("%Y-%m-%d").to_string();
            by_date.remove(&date).unwrap_or(DailyPoint {
                date,
                normal: 0,
                anomalous: 0,
                other: 0,
            })
        })
        .collect()
}

/// One cell of the weekday × hour heatmap.
#[derive(Debug, Clone, Serialize)]
pub struct HeatCell {
    /// 0 = Sunday … 6 = Saturday (SQLite's `%w`).
    pub weekday: i64,
    pub hour: i64,
    /// Anomalies in this cell.
    pub count: i64,
    /// All filtered transactions in this cell.
    pub total: i64,
}

/// Anomalies (and all rows) of the filter by weekday and hour of the IST timestamp.
pub fn heatmap(conn: &Connection, filters: &Filters) -> AppResult<Vec<HeatCell>> {
    let (where_sql, params) = filters.where_clause();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT CAST(strftime('%w', timestamp) AS INTEGER) AS weekday, CAST(substr(timestamp, 12, 2) AS INTEGER) AS hour, \
         count(CASE WHEN status = 'ANOMALY' THEN 1 END), count(*) FROM transactions{} \
         GROUP BY weekday, hour ORDER BY weekday, hour",
        and(&where_sql, "strftime('%w', timestamp) IS NOT NULL")
    ))?;
    let rows = statement.query_map(params_from_iter(params.iter()), |row| {
        Ok(HeatCell {
            weekday: row.get(0)?,
            hour: row.get(1)?,
            count: row.get(2)?,
            total: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Most map points drawn: the highest-scoring anomalies.
pub const MAP_LIMIT: i64 = 5000;

/// An anomaly on the map.
#[derive(Debug, Clone, Serialize)]
pub struct MapPoint {
    pub id: i64,
    pub lat: f64,
    pub lon: f64,
    pub category: Option<String>,
    pub amount: String,
    pub scheme: String,
    pub score: Option<f64>,
}

/// Located anomalies of the filter, highest score first.
pub fn map_points(conn: &Connection, filters: &Filters) -> AppResult<Vec<MapPoint>> {
    let (where_sql, mut params) = filters.where_clause();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT transaction_id, latitude, longitude, CASE WHEN json_valid(reasons) THEN json_extract(reasons, '$.category') END, \
         amount_paise, scheme, anomaly_score FROM transactions{} ORDER BY anomaly_score DESC LIMIT ?",
        and(&where_sql, "status = 'ANOMALY' AND latitude IS NOT NULL AND longitude IS NOT NULL")
    ))?;
    params.push(Value::Integer(MAP_LIMIT));
    let rows = statement.query_map(params_from_iter(params.iter()), |row| {
        Ok(MapPoint {
            id: row.get(0)?,
            lat: real_at(row, 1)?.unwrap_or_default(),
            lon: real_at(row, 2)?.unwrap_or_default(),
            category: text_at(row, 3)?,
            amount: rupees(int_at(row, 4)?),
            scheme: text_at(row, 5)?.unwrap_or_default(),
            score: real_at(row, 6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Everything the overview's charts draw.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub kpis: Kpis,
    pub range: String,
    pub daily: Vec<DailyPoint>,
    pub heatmap: Vec<HeatCell>,
    pub map: Vec<MapPoint>,
}

/// The `/api/summary` answer.
pub fn summary(conn: &Connection, filters: &Filters) -> AppResult<Summary> {
    Ok(Summary {
        kpis: kpis(conn, filters)?,
        range: filters.range_text(),
        daily: daily(conn, filters)?,
        heatmap: heatmap(conn, filters)?,
        map: map_points(conn, filters)?,
    })
}

/// One page of the transaction table.
#[derive(Debug, Clone, Serialize)]
pub struct TxPage {
    pub total: i64,
    pub page: i64,
    pub pages: i64,
    pub per_page: i64,
    pub rows: Vec<TxRow>,
}

/// Number of rows matching `filters`.
pub fn count(conn: &Connection, filters: &Filters) -> AppResult<i64> {
    let (where_sql, params) = filters.where_clause();
    Ok(conn
        .prepare_cached(&format!("SELECT count(*) FROM transactions{where_sql}"))?
        .query_row(params_from_iter(params.iter()), |row| row.get(0))?)
}

/// Page `page` (1-based, [`PAGE_SIZE`] rows) of the filtered rows in `sort` order. `total` may be
/// passed when the caller already counted the rows.
pub fn transactions_page(
    conn: &Connection,
    filters: &Filters,
    sort: Sort,
    page: i64,
    total: Option<i64>,
) -> AppResult<TxPage> {
    let total = match total {
        Some(total) => total,
        None => count(conn, filters)?,
    };
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let (where_sql, mut params) = filters.where_clause();
    params.push(Value::Integer(PAGE_SIZE));
    params.push(Value::Integer((page - 1) * PAGE_SIZE));
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {TX_COLUMNS} FROM transactions{where_sql}{} LIMIT ? OFFSET ?",
        sort.order_by()
    ))?;
    let rows = statement
        .query_map(params_from_iter(params.iter()), tx_row)?
        .collect::<Result<_, _>>()?;
    Ok(TxPage {
        total,
        page,
        pages,
        per_page: PAGE_SIZE,
        rows,
    })
}

/// A row of the CSV export: the transaction, why it was flagged, and where auditors left it.
#[derive(Debug, Clone)]
pub struct ExportRow {
    pub transaction: TxRow,
    /// The first reason's sentence (anomalies and errors).
    pub reason: Option<String>,
    /// The latest verdict's code, if any.
    pub verdict: Option<String>,
    /// The incident the alert belongs to (anomalies only).
    pub incident_id: Option<i64>,
}

/// Calls `each` on every filtered row in `sort` order, one row in memory at a time, until it
/// returns `false`. Returns the number of rows visited.
pub fn for_each_transaction(
    conn: &Connection,
    filters: &Filters,
    sort: Sort,
    mut each: impl FnMut(&ExportRow) -> bool,
) -> AppResult<u64> {
    let (where_sql, params) = filters.where_clause();
    let mut statement = conn.prepare(&format!(
        "SELECT {TX_COLUMNS}, \
         CASE WHEN json_valid(reasons) THEN json_extract(reasons, '$.reasons[0].text') END, \
         (SELECT v.verdict FROM verdicts v WHERE v.transaction_id = transactions.transaction_id \
          ORDER BY v.created_at DESC, v.verdict_id DESC LIMIT 1), \
         (SELECT ia.incident_id FROM incident_alerts ia WHERE ia.transaction_id = transactions.transaction_id) \
         FROM transactions{where_sql}{}",
        sort.order_by()
    ))?;
    let mut rows = statement.query(params_from_iter(params.iter()))?;
    let mut visited = 0;
    while let Some(row) = rows.next()? {
        visited += 1;
        let export = ExportRow {
            transaction: tx_row(row)?,
            reason: text_at(row, 15)?,
            verdict: text_at(row, 16)?,
            incident_id: row.get(17)?,
        };
        if !each(&export) {
            break;
        }
    }
    Ok(visited)
}

/// A new anomaly pushed by the live stream.
#[derive(Debug, Clone, Serialize)]
pub struct LiveAnomaly {
    pub transaction_id: i64,
    pub timestamp: Option<String>,
    pub scheme: String,
    pub beneficiary_id: String,
    pub amount: String,
    pub score: String,
    pub category: Option<String>,
    pub category_class: &'static str,
    pub headline: Option<String>,
}

/// Most anomalies pushed per update.
pub const LIVE_LIMIT: i64 = 20;

/// The id up to which rows are final: the monitor's high-water mark (rows above it may still be
/// unscored), or the newest id when there is no monitor.
pub fn live_upper_bound(conn: &Connection) -> AppResult<i64> {
    let mark = aegis_core::store::monitor_mark(&mut aegis_core::sql::Sqlite(conn))?;
    match mark {
        Some(mark) => Ok(mark),
        None => Ok(conn.query_row(
            "SELECT coalesce(max(transaction_id), 0) FROM transactions",
            [],
            |row| row.get(0),
        )?),
    }
}

/// Anomalies with ids in (`after`, upper bound], oldest first, and the id to continue after.
pub fn new_anomalies(
    conn: &Connection,
    filters: &Filters,
    after: i64,
) -> AppResult<(Vec<LiveAnomaly>, i64)> {
    let upper = live_upper_bound(conn)?;
    // The page's filters apply to the live panel too: on a PM-KISAN view, no pension alert.
    let (where_sql, mut params) = filters.where_clause();
    params.extend([
        Value::Integer(after),
        Value::Integer(upper),
        Value::Integer(LIVE_LIMIT),
    ]);
    let mut statement = conn.prepare_cached(&format!(
        "SELECT transaction_id, timestamp, scheme, beneficiary_id, amount_paise, anomaly_score, \
         CASE WHEN json_valid(reasons) THEN json_extract(reasons, '$.category') END, \
         CASE WHEN json_valid(reasons) THEN json_extract(reasons, '$.reasons[0].text') END \
         FROM transactions{} ORDER BY transaction_id LIMIT ?",
        and(
            &where_sql,
            "transaction_id > ? AND transaction_id <= ? AND status = 'ANOMALY'"
        )
    ))?;
    let anomalies: Vec<LiveAnomaly> = statement
        .query_map(params_from_iter(params.iter()), |row| {
            let category = text_at(row, 6)?;
            Ok(LiveAnomaly {
                transaction_id: row.get(0)?,
                timestamp: text_at(row, 1)?,
                scheme: text_at(row, 2)?.unwrap_or_default(),
                beneficiary_id: text_at(row, 3)?.unwrap_or_default(),
                amount: rupees(int_at(row, 4)?),
                score: views::score(real_at(row, 5)?),
                category_class: views::category_class(category.as_deref()),
                category,
                headline: text_at(row, 7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let next = if anomalies.len() as i64 == LIVE_LIMIT {
        anomalies.last().map_or(after, |a| a.transaction_id)
    } else {
        upper.max(after)
    };
    Ok((anomalies, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(date: &str, normal: i64) -> DailyPoint {
        DailyPoint {
            date: date.into(),
            normal,
            anomalous: 1,
            other: 0,
        }
    }

    #[test]
    fn days_without_rows_are_zero_and_the_axis_spans_the_filter() {
        let days = vec![point("2025-03-02", 5), point("2025-03-05", 7)];
        let from = NaiveDate::from_ymd_opt(2025, 3, 1);
        let to = NaiveDate::from_ymd_opt(2025, 3, 6);
        let filled = continuous_days(days, from, to);
        let dates: Vec<&str> = filled.iter().map(|p| p.date.as_str()).collect();
        assert_eq!(
            dates,
            [
                "2025-03-01",
                "2025-03-02",
                "2025-03-03",
                "2025-03-04",
                "2025-03-05",
                "2025-03-06"
            ]
        );
        assert_eq!(
            filled.iter().map(|p| p.normal).collect::<Vec<_>>(),
            [0, 5, 0, 0, 7, 0]
        );
        assert_eq!(filled[2].anomalous, 0);
        assert!(
            continuous_days(Vec::new(), from, to).is_empty(),
            "no rows, no axis"
        );
    }
}
