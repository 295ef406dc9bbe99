//! `dashboard verdicts simulate`: simulated auditors, for demos and benchmarks of the verdict
//! loop on generated data.
//!
//! Each simulated day (IST, event time) the auditors review the day's `per_day` highest-scored
//! alerts, a whole incident at a time as the case queue lists them (an incident's alerts of
//! the day right after its highest one), and record the ground truth the generator labeled
//! (`is_anomaly`): `confirmed_fraud` or `dismissed`. They decide `delay` after the end of that day, so a verdict is dated in
//! event time and counts, for the detector, only for payments after it. A day is reviewed once
//! its decision time has come (`through`, by default the newest payment's time), which makes a
//! run repeatable: run again later and only the days that became due are added.
//!
//! A control sample (`control`, off by default) is what audit teams keep against their own
//! blind spot: each day the auditors also review that many of the day's payments the detector
//! scored as normal, drawn at random and recorded as the dashboard's Control page draws them
//! ([`aegis_core::control`]; a day drawn before, by a person, keeps its draw). Its
//! confirmations are frauds the detector missed, found without its help, so the verdicts it
//! learns from are not only its own alerts', and the share confirmed estimates how much fraud
//! passes unflagged.
//!
//! Verdicts are recorded for the disabled system user [`SIMULATED_USER`], so the case queue and
//! the audit log show them as the simulation's, never as a person's. Alerts that already have a
//! verdict (a person's, or an earlier run's) are left as they are, and alerts without ground
//! truth are skipped: a simulation cannot know what they were.

use std::collections::BTreeMap;

use aegis_core::control::{self, DrawError};
use aegis_core::sql::{Row, Sql};
use aegis_core::time::{DAY, EventTime, format_ist, ist_day_start, parse_timestamp};
use aegis_core::values;

use crate::audit;
use crate::database::Database;
use crate::error::AppResult;

/// The system user simulated verdicts are recorded for.
pub const SIMULATED_USER: &str = "simulated-auditor";

/// The note of a control-sample verdict: how a report tells them from the alerts' reviews.
pub const CONTROL_NOTE: &str = "simulated control sample: ground truth of a payment the detector did not flag, chosen at random";

/// How the simulated auditors work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReviewPlan {
    /// Alerts reviewed per event day, highest score first.
    pub per_day: usize,
    /// From the end of an alert's day to the verdict (seconds).
    pub delay: i64,
    /// Review the days whose verdicts are due by then (`None`: the newest payment's time).
    pub through: Option<EventTime>,
    /// Follow-up: on a day after fraud was confirmed at a counter (decided in the 7 days
    /// before it), the auditors also review this many of the counter's payments of the day,
    /// alerts or not.
    pub follow_ups: usize,
    /// Control sample: payments a day (or a share of the day's), among those the detector did
    /// not flag, reviewed at random (`None`: no sample).
    pub control: Option<control::Size>,
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
    /// Payments reviewed as follow-ups at counters with a recent confirmed fraud (counted in
    /// `confirmed` and `dismissed` too).
    pub follow_ups: usize,
    /// Payments reviewed as the control sample (counted in `confirmed` and `dismissed` too).
    pub control: usize,
    /// Of those, confirmed frauds: what the detector missed.
    pub control_confirmed: usize,
}

struct Alert {
    transaction_id: i64,
    score: f64,
    truth: Option<bool>,
    has_verdict: bool,
    /// The incident the monitor linked it into (`None`: not linked).
    incident: Option<i64>,
}

/// Whether a payment `t` has any verdict, as a 0/1 column.
const HAS_VERDICT: &str = "CASE WHEN EXISTS (SELECT 1 FROM verdicts v \
     WHERE v.transaction_id = t.transaction_id) THEN 1 ELSE 0 END";

impl Alert {
    /// Reads columns 0 (`transaction_id`), 2 (`anomaly_score`), 3 (`is_anomaly`) and 4
    /// ([`HAS_VERDICT`]); column 1 is each query's own.
    fn read(row: &[aegis_core::sql::Value]) -> aegis_core::Result<Alert> {
        Ok(Alert {
            transaction_id: row.at(0)?,
            score: row.at::<Option<f64>>(2)?.unwrap_or(0.0),
            truth: row.at::<Option<i64>>(3)?.map(|v| v != 0),
            has_verdict: row.at::<i64>(4)? != 0,
            incident: None,
        })
    }
}

/// Day `day`'s first `per_counter` payments (in time order) at each counter where a fraud was
/// confirmed in the 7 days before the day began: what an auditor who confirmed a fraud at a
/// counter checks next.
fn follow_ups_of(sql: &mut dyn Sql, day: EventTime, per_counter: usize) -> AppResult<Vec<Alert>> {
    let rows = sql.rows(
        &format!(
            "SELECT t.transaction_id, t.agent_id, t.anomaly_score, t.is_anomaly, {HAS_VERDICT} \
         FROM transactions t WHERE t.timestamp >= ?1 AND t.timestamp < ?2 AND t.agent_id IN ( \
           SELECT c.agent_id FROM verdicts v JOIN transactions c ON c.transaction_id = v.transaction_id \
           WHERE v.verdict = 'confirmed_fraud' AND v.created_at >= ?3 AND v.created_at < ?4) \
         ORDER BY t.agent_id, t.timestamp, t.transaction_id"
        ),
        values![
            format_ist(day),
            format_ist(day + DAY),
            (day - 7 * DAY) * 1000,
            day * 1000
        ],
        |row| {
            Ok((row.at::<String>(1)?, Alert::read(row)?))
        },
    )?;
    let mut chosen = Vec::new();
    let mut counter = String::new();
    let mut taken = 0;
    for (agent, alert) in rows {
        if agent != counter {
            counter = agent;
            taken = 0;
        }
        if taken < per_counter {
            taken += 1;
            chosen.push(alert);
        }
    }
    Ok(chosen)
}

/// Day `day`'s control sample ([`aegis_core::control`]): the payments drawn for it before (by
/// a person or an earlier run), or `size` drawn now (event time `through`) and recorded as the
/// simulation's. Empty while the day cannot be drawn (payments of it not scored yet): a later
/// run draws it.
fn control_sample_of(
    sql: &mut dyn Sql,
    day: EventTime,
    size: control::Size,
    through: EventTime,
    now_millis: i64,
) -> AppResult<Vec<Alert>> {
    let drawn = match control::drawn_on(sql, day)? {
        Some(drawn) => drawn,
        None => match control::draw(sql, day, size, SIMULATED_USER, Some(through), now_millis) {
            Ok(drawn) => drawn.drawn,
            Err(DrawError::Refused(..)) => return Ok(Vec::new()),
            Err(DrawError::Database(error)) => return Err(error.into()),
        },
    };
    let mut sample = Vec::with_capacity(drawn.len());
    for id in drawn {
        let alert = sql.row(
            &format!(
                "SELECT t.transaction_id, NULL, t.anomaly_score, t.is_anomaly, {HAS_VERDICT} \
                 FROM transactions t WHERE t.transaction_id = ?1"
            ),
            values![id],
            Alert::read,
        )?;
        sample.extend(alert);
    }
    Ok(sample)
}

/// `alerts` (highest score first) as an auditor works through them in the case queue: each
/// incident's alerts right after its highest one, so a collusion's twenty alerts are judged
/// together instead of the cap cutting them off after the first few.
fn by_incident(alerts: Vec<Alert>) -> Vec<Alert> {
    let mut groups: Vec<Vec<Alert>> = Vec::new();
    let mut group_of: std::collections::HashMap<i64, usize> = Default::default();
    for alert in alerts {
        match alert.incident {
            Some(incident) => match group_of.get(&incident) {
                Some(&group) => groups[group].push(alert),
                None => {
                    group_of.insert(incident, groups.len());
                    groups.push(vec![alert]);
                }
            },
            None => groups.push(vec![alert]),
        }
    }
    groups.into_iter().flatten().collect()
}

/// Reviews every due day in one write transaction.
pub fn review(db: &Database, plan: ReviewPlan, now_millis: i64) -> AppResult<Reviewed> {
    db.write(|sql| review_in(sql, plan, now_millis))
}

fn review_in(sql: &mut dyn Sql, plan: ReviewPlan, now_millis: i64) -> AppResult<Reviewed> {
    // What is reviewed already is read, then written to: no auditor's verdict in between.
    aegis_core::pg::lock_verdicts(sql)?;
    let through = match plan.through {
        Some(through) => through,
        None => match control::event_now(sql)? {
            Some(time) => time,
            None => return Ok(Reviewed::default()),
        },
    };
    let rows = sql.rows(
        &format!(
            "SELECT t.transaction_id, t.timestamp, t.anomaly_score, t.is_anomaly, {HAS_VERDICT}, \
             ia.incident_id FROM transactions t \
             LEFT JOIN incident_alerts ia ON ia.transaction_id = t.transaction_id \
             WHERE t.status = 'ANOMALY' AND t.timestamp < ?1"
        ),
        values![format_ist(through - plan.delay)],
        |row| {
            let timestamp: String = row.at(1)?;
            Ok((
                parse_timestamp(&timestamp).ok(),
                Alert {
                    incident: row.at(5)?,
                    ..Alert::read(row)?
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
    // Follow-ups happen on days without alerts too: every day from the first alert's on; the
    // control sample every day from the first scored payment's on.
    let mut first = days.keys().next().copied();
    if plan.control.is_some() {
        let scored: Option<String> = sql.value(
            "SELECT min(timestamp) FROM transactions WHERE status IS NOT NULL",
            &[],
        )?;
        if let Some(Ok(time)) = scored.as_deref().map(parse_timestamp) {
            first = Some(first.map_or(ist_day_start(time), |day| day.min(ist_day_start(time))));
        }
    }
    if (plan.follow_ups > 0 || plan.control.is_some())
        && let Some(first) = first
    {
        let mut day = first;
        while day + DAY + plan.delay <= through {
            days.entry(day).or_default();
            day += DAY;
        }
    }
    let mut reviewed = Reviewed::default();
    let user = crate::users::system_user(sql, SIMULATED_USER, now_millis)?;
    let mut judged = std::collections::HashSet::new();
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
        let alerts = by_incident(alerts);
        let follow_ups = if plan.follow_ups > 0 {
            follow_ups_of(sql, day, plan.follow_ups)?
        } else {
            Vec::new()
        };
        let control = match plan.control {
            Some(size) => control_sample_of(sql, day, size, through, now_millis)?,
            None => Vec::new(),
        };
        let top = alerts.iter().take(plan.per_day);
        let top_count = top.len();
        // The control sample before the follow-ups: a payment drawn for both is the sample's,
        // so the sample stays random (follow-ups pick suspect counters' payments).
        let control_end = top_count + control.len();
        for (position, alert) in top.chain(&control).chain(&follow_ups).enumerate() {
            let controlled = (top_count..control_end).contains(&position);
            let follow_up = position >= control_end;
            // A follow-up may be one of the day's top alerts or the sample's, judged a moment
            // ago.
            let has_verdict = alert.has_verdict || !judged.insert(alert.transaction_id);
            let verdict = match (has_verdict, alert.truth) {
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
            reviewed.follow_ups += usize::from(follow_up);
            reviewed.control += usize::from(controlled);
            reviewed.control_confirmed += usize::from(controlled && verdict == "confirmed_fraud");
            let note = if follow_up {
                "simulated follow-up: ground truth of a payment at a counter with a recent confirmed fraud"
            } else if controlled {
                CONTROL_NOTE
            } else {
                "simulated review: ground truth of one of the day's top alerts"
            };
            sql.execute(
                "INSERT INTO verdicts (transaction_id, verdict, note, user_id, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                values![alert.transaction_id, verdict, note, user, decided_at * 1000],
            )?;
        }
    }
    if reviewed.confirmed + reviewed.dismissed > 0 {
        let follow_ups = if plan.follow_ups > 0 {
            format!(
                ", {} of them follow-ups ({} a day at counters with a fraud confirmed in the week before)",
                reviewed.follow_ups, plan.follow_ups
            )
        } else {
            String::new()
        };
        let control = match plan.control {
            Some(size) => format!(
                ", {} in the control sample ({} of the payments not flagged, at random; {} of them confirmed)",
                reviewed.control,
                size.describe(),
                reviewed.control_confirmed
            ),
            None => String::new(),
        };
        audit::record(
            sql,
            now_millis,
            Some(SIMULATED_USER),
            "verdicts simulate",
            &format!(
                "{} confirmed, {} dismissed over {} days (top {} alerts a day, decided {} days after the day){follow_ups}{control}",
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
