//! The Control page: the control sample auditors draw from the payments the detector did not
//! flag, the draws still to review, and what the verdicts on them say the detector misses
//! ([`aegis_core::control`]).

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use aegis_core::control::{
    self, DaySample, Draw, DrawError, Drawn, Estimate, Recall, Refusal, Size,
};
use aegis_core::sql::Sql;
use aegis_core::time::{DAY, EventTime, format_ist, ist_day_start, parse_timestamp};

use crate::audit;
use crate::error::{AppError, AppResult};
use crate::queries::{tx_columns, tx_row};
use crate::routes::{page_status, render};
use crate::session::{PageSession, Session};
use crate::state::AppState;
use crate::templates::{ControlDayView, ControlPage, Layout, ModelEstimateView, TxView};
use crate::views::{format_millis, group_digits};

/// Drawn payments awaiting a verdict listed on the page (the count says how many in all).
const PENDING_SHOWN: usize = 100;

/// The size the draw form suggests.
const DEFAULT_SIZE: usize = 20;

/// `?drawn=` after a draw: the day just drawn, named above the page.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ControlParams {
    pub drawn: String,
}

/// The draw form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DrawForm {
    pub day: String,
    pub size: String,
    /// `payments` (a count, the default) or `per_thousand` (of the day's unflagged payments).
    pub unit: String,
}

/// Drawn days listed on the page, newest first (the rest are counted).
const DAYS_SHOWN: usize = 60;

/// The control sample as it stands, read in one go: what the page and the API show.
pub(crate) struct Summary {
    pub days: Vec<DaySample>,
    pub estimate: Option<Judged>,
    /// Per model that scored drawn days, oldest first: its days and its estimate, when it has
    /// one.
    pub models: Vec<(String, usize, Option<Judged>)>,
    /// Drawn payments without a final verdict, oldest day first, in the sample's order.
    pub pending: Vec<Draw>,
    /// The newest finished day not drawn yet: the form's default.
    pub suggested_day: Option<String>,
}

/// An estimate with the recall on the same days.
pub(crate) type Judged = (Estimate, Recall);

/// The estimate from `days` and the recall on them (`None`: no decided draw).
fn estimate_of(days: &[DaySample]) -> Option<Judged> {
    let estimate = control::estimate(days)?;
    let recall = control::recall(&estimate, days);
    Some((estimate, recall))
}

pub(crate) fn summary(sql: &mut dyn Sql) -> AppResult<Summary> {
    let (days, pending) = control::sample(sql)?;
    let estimate = estimate_of(&days);
    let models = control::by_model(&days)
        .into_iter()
        .map(|(version, model_days)| (version, model_days.len(), estimate_of(&model_days)))
        .collect();
    // The newest finished day not drawn yet (within a year).
    let drawn: std::collections::HashSet<&str> = days.iter().map(|d| d.day.as_str()).collect();
    let suggested_day = control::event_now(sql)?.and_then(|time| {
        (1..=366)
            .map(|back| control::date_text(ist_day_start(time) - back * DAY))
            .find(|day| !drawn.contains(day.as_str()))
    });
    Ok(Summary {
        days,
        estimate,
        models,
        pending,
        suggested_day,
    })
}

/// Everything the page shows: the [`Summary`] and the first draws to review as rows.
struct ControlData {
    summary: Summary,
    pending: Vec<(String, Option<String>, TxView)>,
}

fn read(sql: &mut dyn Sql) -> AppResult<ControlData> {
    let summary = summary(sql)?;
    let mut pending = Vec::with_capacity(PENDING_SHOWN);
    for draw in summary.pending.iter().take(PENDING_SHOWN) {
        let row = sql.row(
            &format!(
                "SELECT {} FROM transactions WHERE transaction_id = ?1",
                tx_columns(sql.engine())
            ),
            aegis_core::values![draw.transaction_id],
            tx_row,
        )?;
        if let Some(row) = row {
            pending.push((draw.day.clone(), draw.verdict.clone(), TxView::from(&row)));
        }
    }
    Ok(ControlData { summary, pending })
}

/// The Model page's estimate: from the drawn days model `version` scored, in sentences (empty
/// until one of their draws has a final verdict), and how many drawn days other models scored.
pub fn model_estimate(sql: &mut dyn Sql, version: &str) -> AppResult<(Vec<String>, usize)> {
    let days = control::days(sql)?;
    let (own, others): (Vec<DaySample>, Vec<DaySample>) = days
        .into_iter()
        .partition(|day| day.model_version.as_deref() == Some(version));
    let lines = match estimate_of(&own) {
        Some((estimate, recall)) => estimate_lines(&estimate, &recall),
        None => Vec::new(),
    };
    Ok((lines, others.len()))
}

fn percent(share: f64) -> String {
    format!("{:.3} %", 100.0 * share)
}

/// The estimate in sentences an audit lead can quote.
fn estimate_lines(estimate: &Estimate, recall: &Recall) -> Vec<String> {
    let (missed, missed_low, missed_high) = estimate.missed();
    let days = match estimate.days {
        1 => estimate.first_day.clone(),
        n => format!(
            "{n} days from {} to {}",
            estimate.first_day, estimate.last_day
        ),
    };
    let mut lines = vec![
        format!(
            "On {days}, {} payments were scored as normal. {} of their draws have a final verdict, {} confirmed fraud.",
            group_digits(estimate.population),
            group_digits(estimate.decided),
            group_digits(estimate.confirmed),
        ),
        format!(
            "So about {} of the payments the detector passed are fraud (95 % interval {} to {}): about {missed:.0} payments ({missed_low:.0} to {missed_high:.0}).",
            percent(estimate.share),
            percent(estimate.low),
            percent(estimate.high),
        ),
        if recall.recall.is_nan() {
            "No alert of those days is confirmed fraud yet, so the detector's recall cannot be estimated from them.".to_string()
        } else {
            format!(
                "With the {} alerts of those days confirmed fraud, the detector's recall is about {:.2} (interval {:.2} to {:.2}).",
                group_digits(recall.alerts_confirmed),
                recall.recall,
                recall.low,
                recall.high,
            )
        },
    ];
    if recall.alerts_open > 0 {
        lines.push(format!(
            "{} alerts of those days have no final verdict yet: the recall reads low until they are reviewed.",
            group_digits(recall.alerts_open)
        ));
    }
    lines
}

fn page(
    session: &Session,
    data: ControlData,
    problem: Option<String>,
    notice: Option<String>,
    form: Option<DrawForm>,
) -> ControlPage {
    let form = form.unwrap_or_else(|| DrawForm {
        day: data.summary.suggested_day.clone().unwrap_or_default(),
        size: DEFAULT_SIZE.to_string(),
        unit: String::new(),
    });
    ControlPage {
        layout: Layout::new(session, "Control sample", "control"),
        problem,
        notice,
        estimate: data
            .summary
            .estimate
            .as_ref()
            .map(|(estimate, recall)| estimate_lines(estimate, recall))
            .unwrap_or_default(),
        form_day: form.day,
        form_size: form.size,
        per_thousand: form.unit == "per_thousand",
        max_size: control::MAX_SIZE,
        models: data
            .summary
            .models
            .iter()
            .map(|(version, days, estimate)| ModelEstimateView {
                version: version.clone(),
                days: group_digits(*days as i64),
                decided: estimate
                    .as_ref()
                    .map_or("0".into(), |(e, _)| group_digits(e.decided)),
                confirmed: estimate
                    .as_ref()
                    .map_or("0".into(), |(e, _)| group_digits(e.confirmed)),
                share: estimate.as_ref().map_or("—".into(), |(e, _)| {
                    format!(
                        "{} ({} to {})",
                        percent(e.share),
                        percent(e.low),
                        percent(e.high)
                    )
                }),
                recall: estimate.as_ref().map_or("—".into(), |(_, r)| {
                    if r.recall.is_nan() {
                        "— (no alert confirmed yet)".into()
                    } else {
                        format!("{:.2} ({:.2} to {:.2})", r.recall, r.low, r.high)
                    }
                }),
            })
            .collect(),
        earlier_days: data.summary.days.len().saturating_sub(DAYS_SHOWN),
        days: data
            .summary
            .days
            .iter()
            .rev()
            .take(DAYS_SHOWN)
            .map(|day| ControlDayView {
                day: day.day.clone(),
                population: group_digits(day.population),
                drawn: group_digits(day.drawn),
                decided: group_digits(day.decided),
                confirmed: group_digits(day.confirmed),
                drawn_by: day.drawn_by.clone(),
                drawn_at: format_millis(day.drawn_at),
            })
            .collect(),
        pending: data
            .pending
            .into_iter()
            .map(|(day, verdict, row)| {
                let state = match verdict.as_deref() {
                    Some("needs_field_check") => "field check",
                    _ => "not reviewed",
                };
                (day, state, row)
            })
            .collect(),
        pending_total: group_digits(data.summary.pending.len() as i64),
    }
}

/// `GET /control`.
pub async fn control_page(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Query(params): Query<ControlParams>,
) -> AppResult<Response> {
    let data = state.read_snapshot(read).await?;
    let notice = data
        .summary
        .days
        .iter()
        .find(|day| day.day == params.drawn)
        .map(|day| {
            format!(
                "Drew {} of the {} payments of {} the detector scored as normal. Review them below like alerts.",
                day.drawn,
                group_digits(day.population),
                day.day
            )
        });
    Ok(render(&page(&session, data, None, notice, None))?.into_response())
}

/// Draws `day` as `by` at the data's event time ([`control::draw`]) and records it in the
/// audit log; the inner error is a refusal: its kind and what to do.
pub(crate) fn draw_recorded(
    sql: &mut dyn Sql,
    day: EventTime,
    size: Size,
    by: &str,
) -> AppResult<Result<Drawn, (Refusal, String)>> {
    let now = aegis_core::time::now_millis();
    let event_now = control::event_now(sql)?;
    match control::draw(sql, day, size, by, event_now, now) {
        Ok(drawn) => {
            audit::record(
                sql,
                now,
                Some(by),
                "control draw",
                &format!(
                    "drew {} of {} unflagged payments of {}",
                    drawn.drawn.len(),
                    drawn.population,
                    drawn.day
                ),
            )?;
            Ok(Ok(drawn))
        }
        Err(DrawError::Refused(kind, problem)) => Ok(Err((kind, problem))),
        Err(DrawError::Database(error)) => Err(AppError::from(error)),
    }
}

/// `POST /control/draw`: draws a day, then back to the page; a refusal keeps the form and
/// names the problem (400).
pub async fn post_draw(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Form(form): Form<DrawForm>,
) -> AppResult<Response> {
    let parsed = parse_form(&form);
    let outcome = match parsed {
        Ok((day, size)) => {
            let username = session.username.clone();
            state
                .write(move |sql| {
                    Ok(draw_recorded(sql, day, size, &username)?
                        .map(|drawn| drawn.day)
                        .map_err(|(_, problem)| problem))
                })
                .await?
        }
        Err(problem) => Err(problem),
    };
    match outcome {
        Ok(day) => Ok(Redirect::to(&format!("/control?drawn={day}")).into_response()),
        Err(problem) => {
            let data = state.read_snapshot(read).await?;
            let page = page(&session, data, Some(problem), None, Some(form));
            Ok((page_status(true), render(&page)?).into_response())
        }
    }
}

/// A date, `YYYY-MM-DD`, as its IST midnight, or what is wrong with it.
pub(crate) fn parse_day(text: &str) -> Result<EventTime, String> {
    let day = text.trim();
    (day.len() == 10)
        .then(|| parse_timestamp(day).ok())
        .flatten()
        .filter(|&time| format_ist(time).starts_with(day))
        .ok_or_else(|| format!("{day:?} is not a day: give the date as YYYY-MM-DD"))
}

/// The form's day (IST midnight) and size, or what is wrong with them.
fn parse_form(form: &DrawForm) -> Result<(i64, Size), String> {
    let time = parse_day(&form.day)?;
    let per_thousand = match form.unit.as_str() {
        "" | "payments" => false,
        "per_thousand" => true,
        other => {
            return Err(format!(
                "{other:?} is not a unit: choose payments or per thousand"
            ));
        }
    };
    let number = form.size.trim().parse::<usize>().map_err(|_| {
        format!(
            "{:?} is not a number: give a whole number from 1 to {}",
            form.size.trim(),
            if per_thousand {
                1_000
            } else {
                control::MAX_SIZE
            }
        )
    })?;
    let size = if per_thousand {
        Size::PerThousand(number)
    } else {
        Size::Payments(number)
    };
    Ok((time, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(day: &str, size: &str) -> DrawForm {
        DrawForm {
            day: day.into(),
            size: size.into(),
            unit: String::new(),
        }
    }

    /// A date and a size (payments, or per thousand of the day's) are read; anything else is
    /// named with the fix.
    #[test]
    fn the_form_takes_a_date_and_a_whole_size() {
        let (day, size) = parse_form(&form(" 2026-09-03 ", "20")).unwrap();
        assert_eq!(
            (format_ist(day).as_str(), size),
            ("2026-09-03 00:00:00", Size::Payments(20))
        );
        let share = DrawForm {
            unit: "per_thousand".into(),
            ..form("2026-09-03", "15")
        };
        assert_eq!(parse_form(&share).unwrap().1, Size::PerThousand(15));
        let odd = DrawForm {
            unit: "percent".into(),
            ..form("2026-09-03", "15")
        };
        assert!(parse_form(&odd).unwrap_err().contains("not a unit"));
        for (day, size, named) in [
            ("3 Sept", "20", "not a day"),
            ("2026-09-03 10:00:00", "20", "not a day"),
            ("2026-02-30", "20", "not a day"),
            ("2026-09-03", "twenty", "not a number"),
            ("2026-09-03", "-1", "not a number"),
        ] {
            let problem = parse_form(&form(day, size)).unwrap_err();
            assert!(problem.contains(named), "{day} {size}: {problem}");
        }
    }
}
