//! The overview's queries: KPIs, daily trend, weekday × hour heatmap, map points, the paged
//! transaction table and the export. Every aggregation runs in SQLite, over the filtered rows
//! only, through the indexes on `transactions`.

use aegis_core::sql::{Engine, Row, Sql, Value};
use chrono::NaiveDate;
use serde::Serialize;

use crate::error::AppResult;
use crate::filters::{Filters, PAGE_SIZE, Sort};
use crate::views::{self, group_digits, rupees};

/// Columns of a transaction row, in [`TxRow`] order. The category comes out of the reasons
/// JSON; rows whose reasons are not JSON simply have none.
pub fn tx_columns(engine: Engine) -> String {
    format!(
        "transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme, \
         amount_paise, timestamp, latitude, longitude, district, status, anomaly_score, {}, model_version",
        engine.json_text("reasons", "$.category")
    )
}

/// The first reason's sentence, out of the reasons JSON.
pub fn headline(engine: Engine) -> String {
    engine.json_text("reasons", "$.reasons[0].text")
}

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

fn column(row: &[Value], index: usize) -> &Value {
    row.get(index).unwrap_or(&Value::Null)
}

/// Text of any stored type: SQLite's column types are affinities, and imported rows can
/// surprise.
pub fn text_at(row: &[Value], index: usize) -> Option<String> {
    match column(row, index) {
        Value::Null => None,
        Value::Int(i) => Some(i.to_string()),
        Value::Real(r) => Some(r.to_string()),
        Value::Text(t) => Some(t.clone()),
    }
}

/// An integer, tolerating a stored real; text that is not a number reads as missing.
pub fn int_at(row: &[Value], index: usize) -> Option<i64> {
    match column(row, index) {
        Value::Int(i) => Some(*i),
        Value::Real(r) => Some(r.round() as i64),
        Value::Text(t) => t.trim().parse().ok(),
        Value::Null => None,
    }
}

/// A real, tolerating a stored integer; text that is not a number reads as missing.
pub fn real_at(row: &[Value], index: usize) -> Option<f64> {
    match column(row, index) {
        Value::Int(i) => Some(*i as f64),
        Value::Real(r) => Some(*r),
        Value::Text(t) => t.trim().parse().ok(),
        Value::Null => None,
    }
}

/// Reads a row selected with [`tx_columns`].
pub fn tx_row(row: &[Value]) -> aegis_core::Result<TxRow> {
    Ok(TxRow {
        transaction_id: row.at(0)?,
        transaction_ref: text_at(row, 1),
        beneficiary_id: text_at(row, 2).unwrap_or_default(),
        account_id: text_at(row, 3),
        agent_id: text_at(row, 4),
        scheme: text_at(row, 5).unwrap_or_default(),
        amount_paise: int_at(row, 6),
        timestamp: text_at(row, 7),
        latitude: real_at(row, 8),
        longitude: real_at(row, 9),
        district: text_at(row, 10),
        status: text_at(row, 11),
        anomaly_score: real_at(row, 12),
        category: text_at(row, 13),
        model_version: text_at(row, 14),
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
pub fn distinct_schemes(sql: &mut dyn Sql) -> AppResult<Vec<String>> {
    // The payments alone: on PostgreSQL the view would join each to its score first.
    let rows = sql.query(
        &format!(
            "SELECT DISTINCT scheme FROM {} ORDER BY scheme LIMIT 200",
            sql.engine().payments_table()
        ),
        &[],
    )?;
    Ok(rows.iter().filter_map(|row| text_at(row, 0)).collect())
}

/// Headline numbers of the filtered rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kpis {
    pub transactions: i64,
    /// Of them, the payments the monitor has scored (not those it has not reached yet).
    pub scored: i64,
    pub anomalies: i64,
    /// Anomalies as a percentage of the filtered payments scored: the alert rate the Model
    /// page's drift compares with the budget.
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

/// Payments whose latest verdict is confirmed fraud: latest by decision time, then id, as the
/// alert page, the case queue and the export order them (an imported verdict's id does not
/// follow its `decided_at`).
const CONFIRMED_FRAUD: &str = "SELECT v.transaction_id FROM verdicts v WHERE v.verdict = 'confirmed_fraud' \
     AND v.verdict_id = (SELECT w.verdict_id FROM verdicts w WHERE w.transaction_id = v.transaction_id \
     ORDER BY w.created_at DESC, w.verdict_id DESC LIMIT 1)";

/// KPIs of the rows matching `filters`.
pub fn kpis(sql: &mut dyn Sql, filters: &Filters) -> AppResult<Kpis> {
    let (where_sql, params) = filters.where_clause(sql.engine());
    // The payments counted apart from the anomalies: without a condition on the status,
    // PostgreSQL counts the payments without joining each to its score, and the anomalies come
    // from the index of anomalies by time (the `anomalies` view; SQLite's partial index).
    let transactions = sql
        .query_int(
            &format!("SELECT count(*) FROM transactions{where_sql}"),
            &params,
        )?
        .unwrap_or(0);
    // Per scheme, in one statement: the totals are the sums, the top scheme the largest count.
    // Sums are cast back to integers: PostgreSQL sums bigints as numeric.
    let schemes = sql.rows(
        &format!(
            "SELECT scheme, count(*), CAST(coalesce(sum(amount_paise), 0) AS BIGINT), \
             CAST(coalesce(sum(CASE WHEN transaction_id IN ({CONFIRMED_FRAUD}) THEN amount_paise END), 0) AS BIGINT) \
             FROM anomalies{where_sql} GROUP BY scheme"
        ),
        &params,
        |row| {
            Ok((
                text_at(row, 0).unwrap_or_default(),
                row.at::<i64>(1)?,
                int_at(row, 2).unwrap_or(0),
                int_at(row, 3).unwrap_or(0),
            ))
        },
    )?;
    let anomalies: i64 = schemes.iter().map(|(_, n, _, _)| n).sum();
    let flagged: i64 = schemes.iter().map(|(_, _, paise, _)| paise).sum();
    let confirmed: i64 = schemes.iter().map(|(_, _, _, paise)| paise).sum();
    // Ties go to the first scheme by name.
    let top: Option<(String, i64)> = schemes
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
        .map(|(scheme, n, _, _)| (scheme.clone(), *n));
    // The rate is of the payments scored: a monitor back-filling an import (or stopped) has
    // not reached the newest. The count avoids joining every payment to its score (and, on
    // SQLite, reading every row of the range): the monitor scores in id order, so what it has
    // not reached is above its mark (before any monitor ran, the rows without a status).
    // ERROR rows (a handful, if any) stay in: counting them apart read every row of the
    // range, which doubled the KPIs' cost on SQLite.
    let unscored = match aegis_core::store::monitor_mark(sql)? {
        Some(mark) => {
            let mut above = params.clone();
            above.push(Value::Int(mark));
            sql.query_int(
                &format!(
                    "SELECT count(*) FROM transactions{}",
                    and(&where_sql, "transaction_id > ?")
                ),
                &above,
            )?
        }
        None => sql.query_int(
            &format!(
                "SELECT count(*) FROM transactions{}",
                and(&where_sql, "status IS NULL")
            ),
            &params,
        )?,
    }
    .unwrap_or(0);
    let scored = (transactions - unscored).max(anomalies);
    let anomaly_percent = if scored > 0 {
        anomalies as f64 * 100.0 / scored as f64
    } else {
        0.0
    };
    let anomaly_percent_text = if scored < transactions {
        format!("{anomaly_percent:.2} % of {} scored", group_digits(scored))
    } else {
        format!("{anomaly_percent:.2} %")
    };
    Ok(Kpis {
        transactions,
        scored,
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
        anomaly_percent_text,
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
///
/// Read in three parts so that no part joins every payment to its score on PostgreSQL: the
/// payments per day; the anomalies and scoring errors per day (`flagged`, found by time); and
/// the payments not scored yet, which are above the monitor's mark (it scores in id order and
/// commits each score with the mark). Normal is what is left.
pub fn daily(sql: &mut dyn Sql, filters: &Filters) -> AppResult<Vec<DailyPoint>> {
    let (where_sql, params) = filters.where_clause(sql.engine());
    let dated = and(&where_sql, "timestamp IS NOT NULL");
    let mut per_day = |from: &str, condition: Option<&str>| -> AppResult<Vec<(String, i64, i64)>> {
        Ok(sql.rows(
            &format!(
                "SELECT substr(timestamp, 1, 10) AS day, {from}{} GROUP BY day",
                condition.map_or_else(|| dated.clone(), |condition| and(&dated, condition))
            ),
            &params,
            |row| Ok((text_at(row, 0).unwrap_or_default(), row.at(1)?, row.at(2)?)),
        )?)
    };
    // [all, anomalous, errors, pending] per day.
    let mut days: std::collections::BTreeMap<String, [i64; 4]> = Default::default();
    for (day, all, _) in per_day("count(*), 0 FROM transactions", None)? {
        days.entry(day).or_default()[0] += all;
    }
    for (day, anomalous, errors) in per_day(
        "count(CASE WHEN status = 'ANOMALY' THEN 1 END), \
         count(CASE WHEN status <> 'ANOMALY' THEN 1 END) FROM flagged",
        None,
    )? {
        let counts = days.entry(day).or_default();
        counts[1] += anomalous;
        counts[2] += errors;
    }
    for (day, pending, _) in per_day(
        "count(*), 0 FROM transactions",
        Some(
            "transaction_id > (SELECT coalesce(max(high_water_mark), 0) FROM monitor_state) \
             AND status IS NULL",
        ),
    )? {
        days.entry(day).or_default()[3] += pending;
    }
    let days = days
        .into_iter()
        .map(|(date, [all, anomalous, errors, pending])| DailyPoint {
            date,
            normal: (all - anomalous - errors - pending).max(0),
            anomalous,
            other: errors + pending,
        })
        .collect();
    // Days after the newest payment of all have not happened: drawn as zeros they would look
    // like payments stopping.
    let newest = crate::filters::last_date(sql)?;
    Ok(continuous_days(
        days,
        filters.from,
        filters.to.min(newest).or(filters.to),
    ))
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
    let mut end = to.unwrap_or(last).max(last);
    // Cut at both ends: `?to=2100-12-31` would otherwise draw 27,000 empty days after the data.
    if end.signed_duration_since(start).num_days() as u64 > MAX_TREND_DAYS {
        start = first;
    }
    if end.signed_duration_since(start).num_days() as u64 > MAX_TREND_DAYS {
        end = last;
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

/// Anomalies (and all rows) of the filter by weekday and hour of the IST timestamp: all rows
/// and the anomalies counted apart (see [`daily`]).
pub fn heatmap(sql: &mut dyn Sql, filters: &Filters) -> AppResult<Vec<HeatCell>> {
    let engine = sql.engine();
    let (where_sql, params) = filters.where_clause(engine);
    let weekday = engine.weekday("timestamp");
    let mut per_cell = |from: &str| -> AppResult<Vec<((i64, i64), i64)>> {
        Ok(sql.rows(
            &format!(
                "SELECT {weekday} AS weekday, CAST(substr(timestamp, 12, 2) AS INTEGER) AS hour, \
                 count(*) FROM {from}{} GROUP BY weekday, hour",
                and(&where_sql, &format!("{weekday} IS NOT NULL"))
            ),
            &params,
            |row| Ok(((row.at(0)?, row.at(1)?), row.at(2)?)),
        )?)
    };
    let mut cells: std::collections::BTreeMap<(i64, i64), HeatCell> = per_cell("transactions")?
        .into_iter()
        .map(|((weekday, hour), total)| {
            let cell = HeatCell {
                weekday,
                hour,
                count: 0,
                total,
            };
            ((weekday, hour), cell)
        })
        .collect();
    for (key, count) in per_cell("anomalies")? {
        if let Some(cell) = cells.get_mut(&key) {
            cell.count = count;
        }
    }
    Ok(cells.into_values().collect())
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

/// How many anomalies of the filter have a location.
pub fn located_anomalies(sql: &mut dyn Sql, filters: &Filters) -> AppResult<i64> {
    let (where_sql, params) = filters.where_clause(sql.engine());
    Ok(sql
        .query_int(
            &format!(
                "SELECT count(*) FROM anomalies{}",
                and(&where_sql, "latitude IS NOT NULL AND longitude IS NOT NULL")
            ),
            &params,
        )?
        .unwrap_or(0))
}

/// Located anomalies of the filter, highest score first.
pub fn map_points(sql: &mut dyn Sql, filters: &Filters) -> AppResult<Vec<MapPoint>> {
    let engine = sql.engine();
    let (where_sql, mut params) = filters.where_clause(engine);
    params.push(Value::Int(MAP_LIMIT));
    Ok(sql.rows(
        &format!(
            "SELECT transaction_id, latitude, longitude, {}, amount_paise, scheme, anomaly_score \
             FROM anomalies{} ORDER BY anomaly_score DESC{} LIMIT ?",
            engine.json_text("reasons", "$.category"),
            and(&where_sql, "latitude IS NOT NULL AND longitude IS NOT NULL"),
            engine.nulls_as_sqlite(true)
        ),
        &params,
        |row| {
            Ok(MapPoint {
                id: row.at(0)?,
                lat: real_at(row, 1).unwrap_or_default(),
                lon: real_at(row, 2).unwrap_or_default(),
                category: text_at(row, 3),
                amount: rupees(int_at(row, 4)),
                scheme: text_at(row, 5).unwrap_or_default(),
                score: real_at(row, 6),
            })
        },
    )?)
}

/// Everything the overview's charts draw.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub kpis: Kpis,
    pub range: String,
    pub daily: Vec<DailyPoint>,
    pub heatmap: Vec<HeatCell>,
    /// The highest-scoring located anomalies, at most [`MAP_LIMIT`].
    pub map: Vec<MapPoint>,
    /// How many located anomalies the filters select: more than `map` holds when the map shows
    /// only the top ones, which the page then says.
    pub map_located: i64,
}

/// The `/api/summary` answer.
pub fn summary(sql: &mut dyn Sql, filters: &Filters) -> AppResult<Summary> {
    Ok(Summary {
        kpis: kpis(sql, filters)?,
        range: filters.range_text(),
        daily: daily(sql, filters)?,
        heatmap: heatmap(sql, filters)?,
        map: map_points(sql, filters)?,
        map_located: located_anomalies(sql, filters)?,
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
pub fn count(sql: &mut dyn Sql, filters: &Filters) -> AppResult<i64> {
    let (where_sql, params) = filters.where_clause(sql.engine());
    Ok(sql
        .query_int(
            &format!("SELECT count(*) FROM transactions{where_sql}"),
            &params,
        )?
        .unwrap_or(0))
}

/// Page `page` (1-based, [`PAGE_SIZE`] rows) of the filtered rows in `sort` order. `total` may be
/// passed when the caller already counted the rows.
pub fn transactions_page(
    sql: &mut dyn Sql,
    filters: &Filters,
    sort: Sort,
    page: i64,
    total: Option<i64>,
) -> AppResult<TxPage> {
    let total = match total {
        Some(total) => total,
        None => count(sql, filters)?,
    };
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let engine = sql.engine();
    let (where_sql, mut params) = filters.where_clause(engine);
    params.push(Value::Int(PAGE_SIZE));
    params.push(Value::Int((page - 1) * PAGE_SIZE));
    let rows = sql.rows(
        &format!(
            "SELECT {} FROM transactions{where_sql}{} LIMIT ? OFFSET ?",
            tx_columns(engine),
            sort.order_by(engine)
        ),
        &params,
        tx_row,
    )?;
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
    sql: &mut dyn Sql,
    filters: &Filters,
    sort: Sort,
    mut each: impl FnMut(&ExportRow) -> bool,
) -> AppResult<u64> {
    let engine = sql.engine();
    let (where_sql, params) = filters.where_clause(engine);
    let statement = format!(
        "SELECT {}, {}, \
         (SELECT v.verdict FROM verdicts v WHERE v.transaction_id = transactions.transaction_id \
          ORDER BY v.created_at DESC, v.verdict_id DESC LIMIT 1), \
         (SELECT ia.incident_id FROM incident_alerts ia WHERE ia.transaction_id = transactions.transaction_id) \
         FROM transactions{where_sql}{}",
        tx_columns(engine),
        headline(engine),
        sort.order_by(engine)
    );
    Ok(sql.for_each(&statement, &params, &mut |row| {
        let export = ExportRow {
            transaction: tx_row(row)?,
            reason: text_at(row, 15),
            verdict: text_at(row, 16),
            incident_id: row.at(17)?,
        };
        Ok(each(&export))
    })?)
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
pub fn live_upper_bound(sql: &mut dyn Sql) -> AppResult<i64> {
    match aegis_core::store::monitor_mark(sql)? {
        Some(mark) => Ok(mark),
        None => Ok(sql
            .query_int(
                &format!(
                    "SELECT coalesce(max(transaction_id), 0) FROM {}",
                    sql.engine().payments_table()
                ),
                &[],
            )?
            .unwrap_or(0)),
    }
}

/// Anomalies with ids in (`after`, upper bound], oldest first, and the id to continue after.
pub fn new_anomalies(
    sql: &mut dyn Sql,
    filters: &Filters,
    after: i64,
) -> AppResult<(Vec<LiveAnomaly>, i64)> {
    let upper = live_upper_bound(sql)?;
    let engine = sql.engine();
    // The page's filters apply to the live panel too: on a PM-KISAN view, no pension alert.
    let (where_sql, mut params) = filters.where_clause(engine);
    params.extend([Value::Int(after), Value::Int(upper), Value::Int(LIVE_LIMIT)]);
    let anomalies: Vec<LiveAnomaly> = sql.rows(
        &format!(
            "SELECT transaction_id, timestamp, scheme, beneficiary_id, amount_paise, anomaly_score, {}, {} \
             FROM transactions{} ORDER BY transaction_id LIMIT ?",
            engine.json_text("reasons", "$.category"),
            headline(engine),
            and(
                &where_sql,
                "transaction_id > ? AND transaction_id <= ? AND status = 'ANOMALY'"
            )
        ),
        &params,
        |row| {
            let category = text_at(row, 6);
            Ok(LiveAnomaly {
                transaction_id: row.at(0)?,
                timestamp: text_at(row, 1),
                scheme: text_at(row, 2).unwrap_or_default(),
                beneficiary_id: text_at(row, 3).unwrap_or_default(),
                amount: rupees(int_at(row, 4)),
                score: views::score(real_at(row, 5)),
                category_class: views::category_class(category.as_deref()),
                category,
                headline: text_at(row, 7),
            })
        },
    )?;
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

    #[test]
    fn a_range_far_wider_than_the_data_is_cut_to_the_data_at_both_ends() {
        let days = vec![point("2025-03-02", 5), point("2025-03-05", 7)];
        let far = |from, to| {
            continuous_days(
                days.clone(),
                NaiveDate::from_ymd_opt(from, 1, 1),
                NaiveDate::from_ymd_opt(to, 12, 31),
            )
            .len()
        };
        // From 1990: cut to the data's first day, then on to the end of 2025 as asked.
        assert_eq!(far(1990, 2025), 305, "a range from long before");
        assert_eq!(far(2025, 2100), 4, "a range to long after");
    }
}
