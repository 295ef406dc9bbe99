//! The control sample: what the detector misses, measured without its help.
//!
//! Every verdict on an alert is about a payment the detector chose, so verdicts alone can never
//! say how much fraud passes unflagged. Audit teams keep a control sample against that blind
//! spot: each day, a few of the payments the detector scored and did not flag, drawn at random,
//! are reviewed like alerts. The share confirmed estimates the fraud among all unflagged
//! payments, and with the confirmed alerts, the detector's recall.
//!
//! A day (IST event date) is drawn once ([`draw`]), when it is over and every payment of it is
//! scored, so nobody can draw again until the sample looks better. The draw is random but
//! repeatable: payments are ordered by a hash of their id ([`order`]), so the same day drawn in
//! two databases holding the same payments picks the same ones. It is recorded in
//! `control_days` (the day's unflagged payments then, the size asked and drawn) and
//! `control_draws` (the payments), so a verdict on a drawn payment, by whoever records it, is
//! the sample's: its latest final verdict (confirmed fraud or dismissed) counts.
//!
//! [`estimate`] weighs each decided draw by its day's unflagged payments over the day's decided
//! draws, so days drawn at different sizes, or with different shares still undecided, add up
//! to the right total; its 95 % interval is Wilson's on Kish's effective sample size (exactly
//! Wilson's on the pooled share when every day is drawn in proportion).

use crate::error::{Error, Result};
use crate::sql::{Row, Sql};
use crate::time::{DAY, EventTime, format_ist, ist_day_start, parse_timestamp};
use crate::values;

/// The most payments one day's draw may take: a sample is reviewed by hand.
pub const MAX_SIZE: usize = 1_000;

/// The order of the sample: a payment's id, mixed (splitmix64's finalizer) so that neighbouring
/// ids land far apart, as a seeded shuffle would put them, but the same on every run and for
/// every subset of the day.
pub fn order(transaction_id: i64) -> u64 {
    let mut z = (transaction_id as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How much of a day to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// This many payments (1 to [`MAX_SIZE`]).
    Payments(usize),
    /// This many per thousand of the day's unflagged payments (1 to 1,000), rounded up, at
    /// most [`MAX_SIZE`]: draws in proportion to each day's payments make the estimate as
    /// precise as a pooled sample of the same size (days of equal draws count for fewer).
    PerThousand(usize),
}

impl Size {
    /// The payments to draw from a day of `population`, or what is wrong with the size.
    fn of(self, population: usize) -> Result<usize, String> {
        match self {
            Size::Payments(n) if (1..=MAX_SIZE).contains(&n) => Ok(n),
            Size::Payments(n) => Err(format!(
                "a sample of {n} payments is out of range: draw 1 to {MAX_SIZE} a day (20 to 50 is usual)"
            )),
            Size::PerThousand(r) if (1..=1_000).contains(&r) => {
                Ok((population * r).div_ceil(1_000).clamp(1, MAX_SIZE))
            }
            Size::PerThousand(r) => Err(format!(
                "{r} per thousand is out of range: draw 1 to 1,000 per thousand of the day's payments"
            )),
        }
    }
}

/// A size as the command lines take it: `50` (payments) or `2/1000` (per thousand), within
/// the limits.
impl std::str::FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Size, String> {
        let text = text.trim();
        let invalid = || {
            format!(
                "{text:?} is not a sample size: give a number of payments a day (50) or a share \
                 per thousand of the day's unflagged payments (2/1000)"
            )
        };
        let number = |digits: &str| digits.trim().parse::<usize>().map_err(|_| invalid());
        let size = match text.split_once('/') {
            Some((share, "1000")) => Size::PerThousand(number(share)?),
            Some(_) => return Err(invalid()),
            None => Size::Payments(number(text)?),
        };
        size.of(1)?;
        Ok(size)
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Payments(n) => write!(f, "{n}"),
            Size::PerThousand(r) => write!(f, "{r}/1000"),
        }
    }
}

impl Size {
    /// The size in words, per day.
    pub fn describe(self) -> String {
        match self {
            Size::Payments(n) => format!("{n} a day"),
            Size::PerThousand(r) => format!("{r} per thousand a day"),
        }
    }
}

/// A day's draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    /// The IST date, `YYYY-MM-DD`.
    pub day: String,
    /// The day's scored, unflagged payments when it was drawn.
    pub population: i64,
    /// The payments drawn, in the sample's order.
    pub drawn: Vec<i64>,
}

/// Why a draw was refused: what a machine client branches on (the message says it to people).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The size is out of range: ask for another.
    Size,
    /// The day was drawn before: review its draws instead.
    AlreadyDrawn,
    /// The day is not over: draw it later.
    NotOver,
    /// Some of the day's payments are not scored yet: draw it once the monitor has caught up.
    Unscored,
    /// The day has no payment scored as normal.
    NothingToDraw,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Size => "size",
            Refusal::AlreadyDrawn => "already_drawn",
            Refusal::NotOver => "not_over",
            Refusal::Unscored => "unscored",
            Refusal::NothingToDraw => "nothing_to_draw",
        }
    }
}

/// Why a draw did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    /// Something the person drawing can act on; the message says what.
    #[error("{1}")]
    Refused(Refusal, String),
    #[error(transparent)]
    Database(#[from] Error),
}

/// The IST date of the day starting at `day`, `YYYY-MM-DD`.
pub fn date_text(day: EventTime) -> String {
    format_ist(ist_day_start(day))[..10].to_string()
}

/// The payments drawn for `day` (IST midnight), in the sample's order, or `None` when the day
/// has not been drawn.
pub fn drawn_on(sql: &mut dyn Sql, day: EventTime) -> Result<Option<Vec<i64>>> {
    let date = date_text(day);
    let exists: Option<i64> = sql.value(
        "SELECT drawn FROM control_days WHERE day = ?1",
        values![date.as_str()],
    )?;
    if exists.is_none() {
        return Ok(None);
    }
    let mut drawn: Vec<i64> = sql.column(
        "SELECT transaction_id FROM control_draws WHERE day = ?1",
        values![date.as_str()],
    )?;
    drawn.sort_by_key(|&id| order(id));
    Ok(Some(drawn))
}

/// The event time it is now, as the data tells it: the newest payment's time (`None`: no
/// payment yet). Generated data lives in its own calendar, so a day is over when a payment
/// after it has arrived, not when the wall clock says so
/// ([`crate::store::newest_timestamp`], as the overview's newest date).
pub fn event_now(sql: &mut dyn Sql) -> Result<Option<EventTime>> {
    Ok(crate::store::newest_timestamp(sql)?
        .as_deref()
        .and_then(|text| parse_timestamp(text).ok()))
}

/// Draws `size` ([`Size`]) of day `day`'s (IST midnight) payments the detector scored as
/// normal, at random ([`order`]), and records the draw as `by`'s. Refused, with what to do, when the size
/// is out of range, the day is already drawn, not over at event time `now` ([`event_now`]; the
/// simulated auditors pass their own), or has payments the monitor has not scored.
pub fn draw(
    sql: &mut dyn Sql,
    day: EventTime,
    size: Size,
    by: &str,
    now: Option<EventTime>,
    now_millis: i64,
) -> Result<Drawn, DrawError> {
    let day = ist_day_start(day);
    let date = date_text(day);
    size.of(1)
        .map_err(|problem| DrawError::Refused(Refusal::Size, problem))?;
    let earlier: Option<(i64, String)> = sql.row(
        "SELECT drawn, drawn_by FROM control_days WHERE day = ?1",
        values![date.as_str()],
        |row| Ok((row.at(0)?, row.at(1)?)),
    )?;
    if let Some((drawn, by)) = earlier {
        return Err(DrawError::Refused(
            Refusal::AlreadyDrawn,
            format!(
                "{date} was already drawn ({drawn} payments, by {by}): a day is drawn once, so that the \
             sample stays random; review its payments, or draw another day"
            ),
        ));
    }
    if now.is_none_or(|now| now < day + DAY) {
        return Err(DrawError::Refused(
            Refusal::NotOver,
            format!(
                "{date} is not over yet (no payment after it has arrived): draw a day once it has ended, \
             so its sample is drawn from all of its payments"
            ),
        ));
    }
    let (start, end) = (format_ist(day), format_ist(day + DAY));
    let unscored = sql
        .value::<i64>(
            "SELECT count(*) FROM transactions WHERE timestamp >= ?1 AND timestamp < ?2 \
             AND status IS NULL",
            values![start.as_str(), end.as_str()],
        )?
        .unwrap_or(0);
    if unscored > 0 {
        return Err(DrawError::Refused(
            Refusal::Unscored,
            format!(
                "{unscored} payments of {date} are not scored yet: start the monitor (or wait for it \
             to catch up), then draw the day"
            ),
        ));
    }
    let mut candidates: Vec<(i64, Option<String>)> = sql.rows(
        "SELECT transaction_id, model_version FROM transactions \
         WHERE timestamp >= ?1 AND timestamp < ?2 AND status = 'NORMAL'",
        values![start.as_str(), end.as_str()],
        |row| Ok((row.at(0)?, row.at(1)?)),
    )?;
    if candidates.is_empty() {
        return Err(DrawError::Refused(
            Refusal::NothingToDraw,
            format!(
                "{date} has no payment the detector scored as normal: there is nothing to draw"
            ),
        ));
    }
    let population = candidates.len() as i64;
    let size = size
        .of(candidates.len())
        .map_err(|problem| DrawError::Refused(Refusal::Size, problem))?;
    candidates.sort_by_key(|&(id, _)| order(id));
    candidates.truncate(size);
    // Another writer may have drawn the day since the check above (on PostgreSQL two
    // processes' transactions interleave): the key decides, and the loser is told as above.
    let inserted = sql.execute(
        "INSERT INTO control_days (day, population, size, drawn, drawn_by, drawn_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (day) DO NOTHING",
        values![
            date.as_str(),
            population,
            size as i64,
            candidates.len() as i64,
            by,
            now_millis
        ],
    )?;
    if inserted == 0 {
        return Err(DrawError::Refused(
            Refusal::AlreadyDrawn,
            format!(
                "{date} was drawn by someone else a moment ago: a day is drawn once; review its payments"
            ),
        ));
    }
    for (id, model) in &candidates {
        sql.execute(
            "INSERT INTO control_draws (transaction_id, day, model_version) VALUES (?1, ?2, ?3)",
            values![*id, date.as_str(), model.as_deref()],
        )?;
    }
    Ok(Drawn {
        day: date,
        population,
        drawn: candidates.into_iter().map(|(id, _)| id).collect(),
    })
}

/// A drawn day and what its draws' verdicts say.
#[derive(Debug, Clone, PartialEq)]
pub struct DaySample {
    pub day: String,
    /// Scored, unflagged payments of the day when drawn.
    pub population: i64,
    pub size: i64,
    pub drawn: i64,
    /// Draws whose latest verdict is final: confirmed fraud or dismissed.
    pub decided: i64,
    pub confirmed: i64,
    pub drawn_by: String,
    /// Unix ms.
    pub drawn_at: i64,
    /// The model that scored the day's draws, when one model scored them all (`None`: several,
    /// as on the day a new model took over).
    pub model_version: Option<String>,
    /// The day's alerts whose latest verdict is confirmed fraud: the frauds the detector found.
    pub alerts_confirmed: i64,
    /// The day's alerts without a final verdict.
    pub alerts_open: i64,
}

/// A drawn payment and its latest verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Draw {
    pub transaction_id: i64,
    /// The payment's own reference, when it came with one.
    pub transaction_ref: Option<String>,
    pub day: String,
    /// `confirmed_fraud`, `dismissed`, `needs_field_check`, or `None` when nobody has looked at
    /// it yet.
    pub verdict: Option<String>,
}

/// The columns of a [`Draw`] from `control_draws d`, then the draw's model.
const DRAW_COLUMNS: &str = "d.transaction_id, \
     (SELECT t.transaction_ref FROM transactions t WHERE t.transaction_id = d.transaction_id), \
     d.day, (SELECT v.verdict FROM verdicts v \
     WHERE v.transaction_id = d.transaction_id ORDER BY v.created_at DESC, v.verdict_id DESC \
     LIMIT 1), d.model_version";

fn draw_row(row: &[crate::sql::Value]) -> Result<(Draw, Option<String>)> {
    let draw = Draw {
        transaction_id: row.at(0)?,
        transaction_ref: row.at(1)?,
        day: row.at(2)?,
        verdict: row.at(3)?,
    };
    Ok((draw, row.at(4)?))
}

/// The payments drawn on `date` (`YYYY-MM-DD`) with their latest verdicts, in the sample's
/// order (empty when the day was not drawn).
pub fn draws_of(sql: &mut dyn Sql, date: &str) -> Result<Vec<Draw>> {
    let mut draws: Vec<Draw> = sql
        .rows(
            &format!("SELECT {DRAW_COLUMNS} FROM control_draws d WHERE d.day = ?1"),
            values![date],
            draw_row,
        )?
        .into_iter()
        .map(|(draw, _)| draw)
        .collect();
    draws.sort_by_key(|draw| order(draw.transaction_id));
    Ok(draws)
}

/// Whether a latest verdict is final (confirmed fraud or dismissed).
fn is_final(verdict: Option<&str>) -> bool {
    matches!(verdict, Some("confirmed_fraud" | "dismissed"))
}

/// Every drawn day, oldest first, with its draws' verdicts and its alerts counted.
pub fn days(sql: &mut dyn Sql) -> Result<Vec<DaySample>> {
    Ok(sample(sql)?.0)
}

/// Every drawn day ([`days`]) and the drawn payments without a final verdict, oldest day
/// first: what the Control page shows, from one reading of the draws.
pub fn sample(sql: &mut dyn Sql) -> Result<(Vec<DaySample>, Vec<Draw>)> {
    let mut days = sql.rows(
        "SELECT day, population, size, drawn, drawn_by, drawn_at FROM control_days ORDER BY day",
        &[],
        |row| {
            Ok(DaySample {
                day: row.at(0)?,
                population: row.at(1)?,
                size: row.at(2)?,
                drawn: row.at(3)?,
                decided: 0,
                confirmed: 0,
                drawn_by: row.at(4)?,
                drawn_at: row.at(5)?,
                model_version: None,
                alerts_confirmed: 0,
                alerts_open: 0,
            })
        },
    )?;
    let draws = sql.rows(
        &format!("SELECT {DRAW_COLUMNS} FROM control_draws d"),
        &[],
        draw_row,
    )?;
    // Per day, the model of its first draw (outer `None`: none seen yet) and whether another
    // model scored one of the others.
    let mut models: Vec<Option<Option<String>>> = vec![None; days.len()];
    let mut mixed = vec![false; days.len()];
    let mut pending = Vec::new();
    for (draw, model) in draws {
        let Ok(index) = days.binary_search_by(|sample| sample.day.as_str().cmp(&draw.day)) else {
            continue;
        };
        match &models[index] {
            None => models[index] = Some(model),
            Some(seen) if *seen != model => mixed[index] = true,
            Some(_) => {}
        }
        let day = &mut days[index];
        if is_final(draw.verdict.as_deref()) {
            day.decided += 1;
            day.confirmed += i64::from(draw.verdict.as_deref() == Some("confirmed_fraud"));
        } else {
            pending.push(draw);
        }
    }
    for ((day, model), mixed) in days.iter_mut().zip(models).zip(mixed) {
        day.model_version = if mixed { None } else { model.flatten() };
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        // Each alert's latest verdict, as the case queue keeps it (`incident_alerts`).
        let alerts = sql.rows(
            "SELECT substr(timestamp, 1, 10), verdict, count(*) FROM incident_alerts \
             WHERE timestamp >= ?1 AND timestamp < ?2 \
             GROUP BY substr(timestamp, 1, 10), verdict",
            values![
                format!("{} 00:00:00", first.day),
                format!("{} 99", last.day)
            ],
            |row| {
                Ok((
                    row.at::<String>(0)?,
                    row.at::<Option<String>>(1)?,
                    row.at::<i64>(2)?,
                ))
            },
        )?;
        for (day, verdict, count) in alerts {
            let Ok(index) = days.binary_search_by(|sample| sample.day.as_str().cmp(&day)) else {
                continue;
            };
            match verdict.as_deref() {
                Some("confirmed_fraud") => days[index].alerts_confirmed += count,
                Some("dismissed") => {}
                _ => days[index].alerts_open += count,
            }
        }
    }
    pending.sort_by(|a, b| {
        a.day
            .cmp(&b.day)
            .then(order(a.transaction_id).cmp(&order(b.transaction_id)))
    });
    Ok((days, pending))
}

/// The drawn days grouped by the model that scored them, each group oldest day first, the
/// groups in the order their models started (days that several models scored are left out).
pub fn by_model(days: &[DaySample]) -> Vec<(String, Vec<DaySample>)> {
    let mut groups: Vec<(String, Vec<DaySample>)> = Vec::new();
    for day in days {
        let Some(model) = &day.model_version else {
            continue;
        };
        match groups.iter_mut().find(|(version, _)| version == model) {
            Some((_, group)) => group.push(day.clone()),
            None => groups.push((model.clone(), vec![day.clone()])),
        }
    }
    groups
}

/// The day a payment was drawn for, if it was.
pub fn drawn_day(sql: &mut dyn Sql, transaction_id: i64) -> Result<Option<String>> {
    sql.value(
        "SELECT day FROM control_draws WHERE transaction_id = ?1",
        values![transaction_id],
    )
}

/// What the sample says of the unflagged payments of the days it has decided draws on.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Days with at least one decided draw: the days the estimate speaks for.
    pub days: usize,
    pub first_day: String,
    pub last_day: String,
    /// Their scored, unflagged payments.
    pub population: i64,
    pub decided: i64,
    pub confirmed: i64,
    /// The estimated share of those payments that are fraud, with its 95 % interval.
    pub share: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    /// The estimated frauds among the unflagged payments: point, low, high.
    pub fn missed(&self) -> (f64, f64, f64) {
        let n = self.population as f64;
        (self.share * n, self.low * n, self.high * n)
    }
}

/// The estimate from the drawn days (`None` until a draw has a final verdict).
pub fn estimate(days: &[DaySample]) -> Option<Estimate> {
    let used: Vec<&DaySample> = days.iter().filter(|d| d.decided > 0).collect();
    let (first, last) = (used.first()?, used.last()?);
    let population: f64 = used.iter().map(|d| d.population as f64).sum();
    if population <= 0.0 {
        return None;
    }
    // Each decided draw stands for population / decided payments of its day.
    let found: f64 = used
        .iter()
        .map(|d| d.population as f64 * d.confirmed as f64 / d.decided as f64)
        .sum();
    let share = found / population;
    let squared_weights: f64 = used
        .iter()
        .map(|d| (d.population as f64).powi(2) / d.decided as f64)
        .sum();
    let effective = population * population / squared_weights;
    let (low, high) = wilson_interval(share * effective, effective);
    Some(Estimate {
        days: used.len(),
        first_day: first.day.clone(),
        last_day: last.day.clone(),
        population: population as i64,
        decided: used.iter().map(|d| d.decided).sum(),
        confirmed: used.iter().map(|d| d.confirmed).sum(),
        share,
        low,
        high,
    })
}

/// The detector's recall as the verdicts estimate it, on the days of an [`Estimate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Recall {
    /// Alerts of those days confirmed fraud: the frauds the detector found.
    pub alerts_confirmed: i64,
    /// Alerts of those days without a final verdict: while there are any, recall reads low.
    pub alerts_open: i64,
    pub recall: f64,
    pub low: f64,
    pub high: f64,
}

/// The recall an audit team estimates from its verdicts alone: confirmed alerts over confirmed
/// alerts plus the frauds the sample says passed unflagged, on the estimate's days (those of
/// `days` with a decided draw). NaN while no alert of those days is confirmed fraud.
pub fn recall(estimate: &Estimate, days: &[DaySample]) -> Recall {
    let used = days.iter().filter(|d| d.decided > 0);
    let confirmed: i64 = used.clone().map(|d| d.alerts_confirmed).sum();
    let open: i64 = used.map(|d| d.alerts_open).sum();
    let found = confirmed as f64;
    // With no alert confirmed there is nothing to estimate recall from (it read 1.00 when the
    // sample found nothing either): not a number, which callers show as unknown.
    let of = |missed: f64| {
        if found > 0.0 {
            found / (found + missed)
        } else {
            f64::NAN
        }
    };
    let (missed, missed_low, missed_high) = estimate.missed();
    Recall {
        alerts_confirmed: confirmed,
        alerts_open: open,
        recall: of(missed),
        low: of(missed_high),
        high: of(missed_low),
    }
}

/// The Wilson score interval (95 %) of a share `successes / trials`: unlike the normal
/// approximation it stays inside 0–1 and is honest about a handful of confirmations.
pub fn wilson_interval(successes: f64, trials: f64) -> (f64, f64) {
    if trials <= 0.0 {
        return (0.0, 1.0);
    }
    let z = 1.96_f64;
    let p = successes / trials;
    let denominator = 1.0 + z * z / trials;
    let centre = (p + z * z / (2.0 * trials)) / denominator;
    let half = z * (p * (1.0 - p) / trials + z * z / (4.0 * trials * trials)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, population: i64, decided: i64, confirmed: i64) -> DaySample {
        DaySample {
            day: day.into(),
            population,
            size: decided,
            drawn: decided,
            decided,
            confirmed,
            drawn_by: "a".into(),
            drawn_at: 0,
            model_version: None,
            alerts_confirmed: 0,
            alerts_open: 0,
        }
    }

    /// The interval: inside 0–1, around the share, wide for a handful of trials, honest at 0.
    #[test]
    fn wilson_interval_brackets_the_share_and_stays_honest_at_zero() {
        let (low, high) = wilson_interval(5.0, 100.0);
        assert!((low - 0.0215).abs() < 1e-3 && (high - 0.1118).abs() < 1e-3);
        let (low, high) = wilson_interval(0.0, 100.0);
        assert_eq!(low, 0.0);
        assert!((high - 0.0370).abs() < 1e-3);
        assert_eq!(wilson_interval(0.0, 0.0), (0.0, 1.0));
    }

    /// Days drawn in proportion give the pooled share and its Wilson interval exactly.
    #[test]
    fn proportional_days_give_the_pooled_share() {
        let estimate = estimate(&[
            day("2026-01-01", 1_000, 20, 1),
            day("2026-01-02", 2_000, 40, 1),
        ])
        .unwrap();
        assert!((estimate.share - 2.0 / 60.0).abs() < 1e-12);
        let (low, high) = wilson_interval(2.0, 60.0);
        assert!((estimate.low - low).abs() < 1e-12 && (estimate.high - high).abs() < 1e-12);
        assert_eq!(
            (estimate.population, estimate.decided, estimate.confirmed),
            (3_000, 60, 2)
        );
    }

    /// A busy day drawn at the same size as a quiet one counts for its payments, not its draws:
    /// one fraud in 20 draws of 10,000 payments is 500 frauds, one in 20 of 100 only 5.
    #[test]
    fn a_busy_day_weighs_by_its_payments() {
        let busy = estimate(&[
            day("2026-01-01", 10_000, 20, 1),
            day("2026-01-02", 100, 20, 0),
        ])
        .unwrap();
        let quiet = estimate(&[
            day("2026-01-01", 10_000, 20, 0),
            day("2026-01-02", 100, 20, 1),
        ])
        .unwrap();
        assert!((busy.missed().0 - 500.0).abs() < 1e-9);
        assert!((quiet.missed().0 - 5.0).abs() < 1e-9);
        // Fewer effective draws than the 40 made: the interval is wider than the pooled one.
        assert!(
            busy.high - busy.low > {
                let (low, high) = wilson_interval(1.0, 40.0);
                high - low
            } * 0.99
        );
    }

    /// Days without a decided draw are not part of the estimate.
    #[test]
    fn undecided_days_are_left_out() {
        assert_eq!(estimate(&[day("2026-01-01", 500, 0, 0)]), None);
        let estimate =
            estimate(&[day("2026-01-01", 500, 0, 0), day("2026-01-02", 700, 10, 0)]).unwrap();
        assert_eq!((estimate.days, estimate.population), (1, 700));
        assert_eq!(estimate.first_day, "2026-01-02");
        assert_eq!(estimate.share, 0.0);
        assert!(estimate.high > 0.0);
    }

    /// A share of the day is rounded up and kept within the limits.
    #[test]
    fn a_share_of_the_day_is_rounded_up_within_the_limits() {
        assert_eq!(Size::PerThousand(20).of(1_245), Ok(25));
        assert_eq!(Size::PerThousand(20).of(1_250), Ok(25));
        assert_eq!(Size::PerThousand(1).of(10), Ok(1));
        assert_eq!(Size::PerThousand(1_000).of(5_000), Ok(MAX_SIZE));
        assert_eq!(Size::Payments(20).of(5), Ok(20));
        assert!(
            Size::PerThousand(0)
                .of(100)
                .unwrap_err()
                .contains("per thousand")
        );
    }

    /// A command line's size reads back as it was written; anything else, or out of range,
    /// names the two forms.
    #[test]
    fn a_size_is_a_count_or_a_share_per_thousand() {
        for (text, size) in [
            ("50", Size::Payments(50)),
            (" 2/1000 ", Size::PerThousand(2)),
        ] {
            assert_eq!(text.parse::<Size>(), Ok(size));
            assert_eq!(size.to_string(), text.trim());
        }
        for text in ["", "fifty", "2/100", "2%", "0", "1001", "0/1000", "-3"] {
            let problem = text.parse::<Size>().unwrap_err();
            assert!(
                problem.contains("(2/1000)") || problem.contains("out of range"),
                "{text}: {problem}"
            );
        }
    }

    /// The order mixes ids: a day's first ids are not the sample's first.
    #[test]
    fn the_order_is_not_the_id_order() {
        let mut ids: Vec<i64> = (1..=100).collect();
        ids.sort_by_key(|&id| order(id));
        assert_ne!(&ids[..10], &(1..=10).collect::<Vec<_>>()[..]);
        assert!(ids[..10].iter().any(|&id| id > 50));
    }

    /// A database with day 2026-01-01's payments: ids 1–40 scored normal, 41–43 alerts, and a
    /// payment of the next day (so the first is over). `unscored` leaves payment 40 unscored.
    fn database(unscored: bool) -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("t.db")).unwrap();
        for id in 1..=44_i64 {
            let (time, status) = match id {
                44 => ("2026-01-02 08:00:00", None),
                40 if unscored => ("2026-01-01 10:00:00", None),
                41..=43 => ("2026-01-01 11:00:00", Some("ANOMALY")),
                _ => ("2026-01-01 10:00:00", Some("NORMAL")),
            };
            conn.execute(
                "INSERT INTO transactions (transaction_id, beneficiary_id, scheme, amount_paise, \
                 timestamp, status, model_version) \
                 VALUES (?1, 'B', 'PM-KISAN', 100, ?2, ?3, CASE WHEN ?3 IS NULL THEN NULL ELSE 'm1' END)",
                rusqlite::params![id, time, status],
            )
            .unwrap();
        }
        // As the monitor does when it scores them: the alerts get their incidents.
        crate::incidents::link_backlog(&mut crate::sql::Sqlite(&conn), 44).unwrap();
        conn.execute(
            "INSERT INTO users (user_id, username, password_hash, role, created_at) \
             VALUES (1, 'asha', 'x', 'auditor', 0)",
            [],
        )
        .unwrap();
        (dir, conn)
    }

    fn verdict(conn: &rusqlite::Connection, id: i64, verdict: &str, at: i64) {
        conn.execute(
            "INSERT INTO verdicts (transaction_id, verdict, user_id, created_at) \
             VALUES (?1, ?2, 1, ?3)",
            rusqlite::params![id, verdict, at],
        )
        .unwrap();
    }

    /// The newest payment's time in [`database`].
    fn now() -> Option<EventTime> {
        Some(parse_timestamp("2026-01-02 08:00:00").unwrap())
    }

    /// A stored timestamp that is not one (letters sort after every date) does not hide the
    /// newest real payment: without the bound, every draw was refused as "not over".
    #[test]
    fn a_timestamp_that_is_not_one_does_not_stop_the_clock() {
        let (_dir, conn) = database(false);
        conn.execute(
            "INSERT INTO transactions (beneficiary_id, scheme, timestamp) VALUES ('B', 'S', 'yesterday')",
            [],
        )
        .unwrap();
        assert_eq!(event_now(&mut crate::sql::Sqlite(&conn)).unwrap(), now());
    }

    /// Draws 4 of the first day's payments in [`database`].
    fn draw_four(conn: &rusqlite::Connection) -> Vec<i64> {
        let sql = &mut crate::sql::Sqlite(conn);
        draw(sql, first_day(), Size::Payments(4), "a", now(), 0)
            .unwrap()
            .drawn
    }

    /// The refusal of a draw that must be refused.
    fn refusal(result: Result<Drawn, DrawError>) -> (Refusal, String) {
        match result {
            Err(DrawError::Refused(kind, message)) => (kind, message),
            other => panic!("not refused: {other:?}"),
        }
    }

    fn first_day() -> EventTime {
        parse_timestamp("2026-01-01 00:00:00").unwrap()
    }

    /// A draw takes only payments scored normal, the same ones again in another database,
    /// records the day's population, and a day is drawn once.
    #[test]
    fn a_day_is_drawn_once_from_its_unflagged_payments() {
        let (_dir, conn) = database(false);
        let sql = &mut crate::sql::Sqlite(&conn);
        let drawn = draw(
            sql,
            first_day() + 3_600,
            Size::Payments(10),
            "asha",
            now(),
            7,
        )
        .unwrap();
        assert_eq!((drawn.day.as_str(), drawn.population), ("2026-01-01", 40));
        assert_eq!(drawn.drawn.len(), 10);
        assert!(drawn.drawn.iter().all(|&id| (1..=40).contains(&id)));
        assert_ne!(drawn.drawn, (1..=10).collect::<Vec<_>>());
        assert_eq!(
            drawn_on(sql, first_day()).unwrap(),
            Some(drawn.drawn.clone())
        );
        assert_eq!(event_now(sql).unwrap(), now());

        let (_other_dir, other) = database(false);
        let again = draw(
            &mut crate::sql::Sqlite(&other),
            first_day(),
            Size::Payments(10),
            "b",
            now(),
            9,
        )
        .unwrap();
        assert_eq!(again.drawn, drawn.drawn);

        let refused = refusal(draw(sql, first_day(), Size::Payments(5), "asha", now(), 8));
        assert!(
            refused.0 == Refusal::AlreadyDrawn
                && refused.1.contains("already drawn (10 payments, by asha)"),
            "{refused:?}"
        );
        let day = &days(sql).unwrap()[0];
        assert_eq!((day.population, day.size, day.drawn), (40, 10, 10));
        // A whole day smaller than the size asked for is drawn in full.
        let (_dir3, small) = database(false);
        let all = draw(
            &mut crate::sql::Sqlite(&small),
            first_day(),
            Size::Payments(500),
            "a",
            now(),
            0,
        )
        .unwrap();
        assert_eq!(all.drawn.len(), 40);
        // 25 per thousand of 40 payments, rounded up: 1.
        let (_dir4, share) = database(false);
        let sql = &mut crate::sql::Sqlite(&share);
        let one = draw(sql, first_day(), Size::PerThousand(25), "a", now(), 0).unwrap();
        assert_eq!(one.drawn.len(), 1);
        assert_eq!(days(sql).unwrap()[0].size, 1);
    }

    /// A day still open, a day with unscored payments, and sizes out of range are refused
    /// with what to do, and nothing is written.
    #[test]
    fn a_draw_is_refused_until_the_day_is_over_and_scored() {
        let (_dir, conn) = database(true);
        let sql = &mut crate::sql::Sqlite(&conn);
        for (day, kind, named) in [
            (
                first_day(),
                Refusal::Unscored,
                "1 payments of 2026-01-01 are not scored yet",
            ),
            (
                first_day() + DAY,
                Refusal::NotOver,
                "2026-01-02 is not over yet",
            ),
            (first_day() - DAY, Refusal::NothingToDraw, "nothing to draw"),
        ] {
            let refused = refusal(draw(sql, day, Size::Payments(10), "a", now(), 0));
            assert!(
                refused.0 == kind && refused.1.contains(named),
                "{refused:?}"
            );
        }
        for size in [
            Size::Payments(0),
            Size::Payments(MAX_SIZE + 1),
            Size::PerThousand(0),
            Size::PerThousand(1_001),
        ] {
            let refused = refusal(draw(sql, first_day(), size, "a", now(), 0));
            assert!(
                refused.0 == Refusal::Size && refused.1.contains("out of range"),
                "{refused:?}"
            );
        }
        assert_eq!(days(sql).unwrap(), Vec::new());
        assert_eq!(drawn_on(sql, first_day()).unwrap(), None);
    }

    /// The latest verdict of a draw counts: a field check leaves it pending, a revision
    /// replaces a dismissal; verdicts on payments not drawn do not count.
    #[test]
    fn the_latest_verdict_of_each_draw_counts() {
        let (_dir, conn) = database(false);
        let drawn = draw_four(&conn);
        verdict(&conn, drawn[0], "dismissed", 1);
        verdict(&conn, drawn[0], "confirmed_fraud", 2);
        verdict(&conn, drawn[1], "dismissed", 1);
        verdict(&conn, drawn[2], "needs_field_check", 1);
        verdict(&conn, 41, "confirmed_fraud", 1);
        verdict(&conn, 42, "dismissed", 1);
        let sql = &mut crate::sql::Sqlite(&conn);
        let (all, pending) = sample(sql).unwrap();
        assert_eq!((all[0].decided, all[0].confirmed), (2, 1));
        assert_eq!(all, days(sql).unwrap());
        let mut waiting: Vec<i64> = pending.iter().map(|p| p.transaction_id).collect();
        waiting.sort();
        let mut expected = vec![drawn[2], drawn[3]];
        expected.sort();
        assert_eq!(waiting, expected);
        assert_eq!(pending[0].transaction_id, drawn[2], "in the sample's order");
        assert_eq!(pending[0].verdict.as_deref(), Some("needs_field_check"));
        assert_eq!(
            drawn_day(sql, drawn[3]).unwrap().as_deref(),
            Some("2026-01-01")
        );
        assert_eq!(drawn_day(sql, 41).unwrap(), None);
        let listed = draws_of(sql, "2026-01-01").unwrap();
        assert_eq!(
            listed.iter().map(|d| d.transaction_id).collect::<Vec<_>>(),
            drawn
        );
        assert_eq!(
            listed
                .iter()
                .map(|d| d.verdict.as_deref())
                .collect::<Vec<_>>(),
            [
                Some("confirmed_fraud"),
                Some("dismissed"),
                Some("needs_field_check"),
                None
            ]
        );
        assert_eq!(draws_of(sql, "2026-01-02").unwrap(), Vec::new());

        // 1 of 2 decided draws among 40 unflagged: 20 frauds missed; 1 alert confirmed, 1 (43)
        // open.
        let estimate = estimate(&all).unwrap();
        assert!((estimate.missed().0 - 20.0).abs() < 1e-9);
        let recall = recall(&estimate, &all);
        assert_eq!((recall.alerts_confirmed, recall.alerts_open), (1, 1));
        assert!((recall.recall - 1.0 / 21.0).abs() < 1e-9);
        assert!(recall.low <= recall.recall && recall.recall <= recall.high);
        // Before any alert is confirmed there is no recall to speak of (it read 1.00).
        let none_confirmed: Vec<DaySample> = all
            .iter()
            .cloned()
            .map(|day| DaySample {
                alerts_confirmed: 0,
                ..day
            })
            .collect();
        let unknown = super::recall(&estimate, &none_confirmed);
        assert!(unknown.recall.is_nan() && unknown.low.is_nan() && unknown.high.is_nan());
    }

    /// A draw keeps the model that scored it; a day belongs to the model that scored all of
    /// its draws, a day two models scored to neither, and groups follow the order the models
    /// started in.
    #[test]
    fn days_are_grouped_by_the_model_that_scored_them() {
        let (_dir, conn) = database(false);
        let drawn = draw_four(&conn);
        let model = |conn: &rusqlite::Connection| {
            days(&mut crate::sql::Sqlite(conn)).unwrap()[0]
                .model_version
                .clone()
        };
        assert_eq!(model(&conn).as_deref(), Some("m1"));
        conn.execute(
            "UPDATE control_draws SET model_version = 'm2' WHERE transaction_id = ?1",
            [drawn[2]],
        )
        .unwrap();
        assert_eq!(model(&conn), None);

        let scored = |name: &str, version: Option<&str>| DaySample {
            model_version: version.map(String::from),
            ..day(name, 100, 10, 0)
        };
        let groups = by_model(&[
            scored("2026-01-01", Some("m1")),
            scored("2026-01-02", None),
            scored("2026-01-03", Some("m2")),
            scored("2026-01-04", Some("m1")),
        ]);
        let names: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|(model, days)| {
                (
                    model.as_str(),
                    days.iter().map(|d| d.day.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("m1", vec!["2026-01-01", "2026-01-04"]),
                ("m2", vec!["2026-01-03"])
            ]
        );
    }
}
