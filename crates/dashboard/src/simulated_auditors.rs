//! `dashboard verdicts simulate`: simulated auditors, for demos and benchmarks of the verdict
//! loop on generated data.
//!
//! Each simulated day (IST, event time) the auditors review the day's `per_day` highest-scored
//! alerts and record the ground truth the generator labeled (`is_anomaly`): `confirmed_fraud`
//! or `dismissed`. They decide `delay` after the end of that day, so a verdict is dated in
//! event time and counts, for the detector, only for payments after it. A day is reviewed once
//! its decision time has come (`through`, by default the newest payment's time), which makes a
//! run repeatable: run again later and only the days that became due are added.
//!
//! Verdicts are recorded for the disabled system user [`SIMULATED_USER`], so the case queue and
//! the audit log show them as the simulation's, never as a person's. Alerts that already have a
//! verdict (a person's, or an earlier run's) are left as they are, and alerts without ground
//! truth are skipped: a simulation cannot know what they were.

use std::collections::BTreeMap;

use aegis_core::sql::{Row, Sql};
use aegis_core::time::{DAY, EventTime, format_ist, ist_day_start, parse_timestamp};
use aegis_core::values;

use crate::audit;
use crate::database::Database;
use crate::error::AppResult;

/// The system user simulated verdicts are recorded for.
pub const SIMULATED_USER: &str = "simulated-auditor";

/// How the simulated auditors work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReviewPlan {
    /// Alerts reviewed per event day, highest score first.
    pub per_day: usize,
    /// From the end of an alert's day to the verdict (seconds).
    pub delay: i64,
    /// Review the days whose verdicts are due by then (`None`: the newest payment's time).
    pub through: Option<EventTime>,
}

/// What a run recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reviewed {
    /// Days whose reviews were due.
    pub days: usize,
    pub confirmed: usize,
    pub dismissed: usize,
    /// Top alerts left alone because they have a verdict (a person's, or an earlier run's).
    pub already_judged: usize,
    /// Top alerts left alone because the data does not say what they were.
    pub without_truth: usize,
}

struct Alert {
    transaction_id: i64,
    score: f64,
    truth: Option<bool>,
    has_verdict: bool,
}

/// Reviews every due day in one write transaction.
pub fn review(db: &Database, plan: ReviewPlan, now_millis: i64) -> AppResult<Reviewed> {
    db.write(|sql| review_in(sql, plan, now_millis))
}

fn review_in(sql: &mut dyn Sql, plan: ReviewPlan, now_millis: i64) -> AppResult<Reviewed> {
    let through = match plan.through {
        Some(through) => through,
        None => {
            let newest: Option<String> =
                sql.value("SELECT max(timestamp) FROM transactions", &[])?;
            match newest.as_deref().map(parse_timestamp) {
                Some(Ok(time)) => time,
                _ => return Ok(Reviewed::default()),
            }
        }
    };
    let rows = sql.rows(
        "SELECT t.transaction_id, t.timestamp, t.anomaly_score, t.is_anomaly, \
         CASE WHEN EXISTS (SELECT 1 FROM verdicts v WHERE v.transaction_id = t.transaction_id) \
         THEN 1 ELSE 0 END \
         FROM transactions t WHERE t.status = 'ANOMALY' AND t.timestamp < ?1",
        values![format_ist(through - plan.delay)],
        |row| {
            let timestamp: String = row.at(1)?;
            Ok((
                parse_timestamp(&timestamp).ok(),
                Alert {
                    transaction_id: row.at(0)?,
                    score: row.at::<Option<f64>>(2)?.unwrap_or(0.0),
                    truth: row.at::<Option<i64>>(3)?.map(|v| v != 0),
                    has_verdict: row.at::<i64>(4)? != 0,
                },
            ))
        },
    )?;
    let mut days: BTreeMap<EventTime, Vec<Alert>> = BTreeMap::new();
    for (time, alert) in rows {
        if let Some(time) = time {
            days.entry(ist_day_start(time)).or_default().push(alert);
        }
    }
    let mut reviewed = Reviewed::default();
    let user = crate::users::system_user(sql, SIMULATED_USER, now_millis)?;
    for (day, mut alerts) in days {
        let decided_at = day + DAY + plan.delay;
        if decided_at > through {
            continue;
        }
        reviewed.days += 1;
        alerts.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.transaction_id.cmp(&b.transaction_id))
        });
        for alert in alerts.iter().take(plan.per_day) {
            let verdict = match (alert.has_verdict, alert.truth) {
                (true, _) => {
                    reviewed.already_judged += 1;
                    continue;
                }
                (false, None) => {
                    reviewed.without_truth += 1;
                    continue;
                }
                (false, Some(true)) => "confirmed_fraud",
                (false, Some(false)) => "dismissed",
            };
            if verdict == "confirmed_fraud" {
                reviewed.confirmed += 1;
            } else {
                reviewed.dismissed += 1;
            }
            sql.execute(
                "INSERT INTO verdicts (transaction_id, verdict, note, user_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                values![
                    alert.transaction_id,
                    verdict,
                    "simulated review: ground truth of one of the day's top alerts",
                    user,
                    decided_at * 1000
                ],
            )?;
        }
    }
    if reviewed.confirmed + reviewed.dismissed > 0 {
        audit::record(
            sql,
            now_millis,
            Some(SIMULATED_USER),
            "verdicts simulate",
            &format!(
                "{} confirmed, {} dismissed over {} days (top {} alerts a day, decided {} days after the day)",
                reviewed.confirmed,
                reviewed.dismissed,
                reviewed.days,
                plan.per_day,
                plan.delay / DAY
            ),
        )?;
    }
    Ok(reviewed)
}
