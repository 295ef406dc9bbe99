//! `/api/v1/control…`: the control sample for machine clients, as the Control page shows it
//! ([`crate::routes::control`]): the estimate, the drawn days, the draws still to review; a
//! day's draw and its verdicts; and drawing a day. Verdicts on drawn payments go through
//! `POST /api/v1/verdicts` like any other.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use aegis_core::control::{self, DaySample, Draw, Estimate, Recall, Refusal, Size};
use aegis_core::sql::Sql;

use crate::apikeys::{self, ApiClient, Scope};
use crate::error::{ApiError, AppError, AppResult};
use crate::routes::control::{Judged, draw_recorded, parse_day, summary};
use crate::routes::v1::{body_within_limit, only_params, parse_json, rfc3339_millis};
use crate::state::AppState;

/// A figure with its 95 % interval.
#[derive(Debug, Serialize)]
struct Interval {
    estimate: f64,
    low: f64,
    high: f64,
}

/// What the verdicts on a set of drawn days say ([`control::estimate`], [`control::recall`]).
#[derive(Debug, Serialize)]
struct EstimateJson {
    days: usize,
    first_day: String,
    last_day: String,
    /// The days' payments the detector scored as normal.
    unflagged_payments: i64,
    /// Draws with a final verdict, and how many of them were confirmed fraud.
    decided: i64,
    confirmed: i64,
    /// The share of the unflagged payments that is fraud.
    fraud_share: Interval,
    /// The frauds among them: the payments the detector missed.
    missed_frauds: Interval,
    recall: Interval,
    /// The days' alerts confirmed fraud, and those without a final verdict yet (while there
    /// are any, the recall reads low).
    alerts_confirmed: i64,
    alerts_open: i64,
}

impl EstimateJson {
    fn of((estimate, recall): &Judged) -> EstimateJson {
        let Estimate {
            days,
            first_day,
            last_day,
            population,
            decided,
            confirmed,
            share,
            low,
            high,
        } = estimate.clone();
        let (missed, missed_low, missed_high) = estimate.missed();
        let Recall {
            alerts_confirmed,
            alerts_open,
            recall,
            low: recall_low,
            high: recall_high,
        } = *recall;
        EstimateJson {
            days,
            first_day,
            last_day,
            unflagged_payments: population,
            decided,
            confirmed,
            fraud_share: Interval {
                estimate: share,
                low,
                high,
            },
            missed_frauds: Interval {
                estimate: missed,
                low: missed_low,
                high: missed_high,
            },
            recall: Interval {
                estimate: recall,
                low: recall_low,
                high: recall_high,
            },
            alerts_confirmed,
            alerts_open,
        }
    }
}

/// A drawn day.
#[derive(Debug, Serialize)]
struct DayJson {
    day: String,
    unflagged_payments: i64,
    /// The size asked for, and the payments drawn (fewer when the day had fewer).
    size: i64,
    drawn: i64,
    decided: i64,
    confirmed: i64,
    drawn_by: String,
    /// RFC 3339, UTC.
    drawn_at: Option<String>,
    /// The model that scored all of the day's draws (`null`: several did).
    model_version: Option<String>,
    alerts_confirmed: i64,
    alerts_open: i64,
}

impl From<&DaySample> for DayJson {
    fn from(day: &DaySample) -> DayJson {
        DayJson {
            day: day.day.clone(),
            unflagged_payments: day.population,
            size: day.size,
            drawn: day.drawn,
            decided: day.decided,
            confirmed: day.confirmed,
            drawn_by: day.drawn_by.clone(),
            drawn_at: rfc3339_millis(day.drawn_at),
            model_version: day.model_version.clone(),
            alerts_confirmed: day.alerts_confirmed,
            alerts_open: day.alerts_open,
        }
    }
}

/// A drawn payment and its latest verdict (`null`: not reviewed yet).
#[derive(Debug, Serialize)]
struct DrawJson {
    transaction_id: i64,
    transaction_ref: Option<String>,
    day: String,
    verdict: Option<String>,
}

impl From<Draw> for DrawJson {
    fn from(draw: Draw) -> DrawJson {
        DrawJson {
            transaction_id: draw.transaction_id,
            transaction_ref: draw.transaction_ref,
            day: draw.day,
            verdict: draw.verdict,
        }
    }
}

fn draws_json(draws: Vec<Draw>) -> Vec<DrawJson> {
    draws.into_iter().map(DrawJson::from).collect()
}

/// `GET /api/v1/control`: the estimate (overall and per model), every drawn day, the drawn
/// payments still without a final verdict, and the day to draw next.
pub async fn control_summary(
    State(state): State<AppState>,
    client: ApiClient,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    client.require(Scope::Read)?;
    only_params(&params, &[])?;
    let body = state
        .read_snapshot(move |sql| {
            let summary = summary(sql)?;
            Ok(json!({
                "estimate": summary.estimate.as_ref().map(EstimateJson::of),
                "models": summary.models.iter().map(|(version, days, estimate)| json!({
                    "model_version": version,
                    "days": days,
                    "estimate": estimate.as_ref().map(EstimateJson::of),
                })).collect::<Vec<_>>(),
                "days": summary.days.iter().map(DayJson::from).collect::<Vec<_>>(),
                "to_review": draws_json(summary.pending),
                "suggested_day": summary.suggested_day,
            }))
        })
        .await?;
    count_use(&state, &client).await?;
    Ok(Json(body))
}

/// Counts a read against the key, as every `/api/v1` request is.
async fn count_use(state: &AppState, client: &ApiClient) -> AppResult<()> {
    let key_id = client.key_id;
    state
        .write(move |sql| apikeys::count_use(sql, key_id, aegis_core::time::now_millis()))
        .await
}

/// A day's draw: the day and its draws in the sample's order, with their verdicts (`None`:
/// the day was not drawn).
fn day_draw(sql: &mut dyn Sql, date: &str) -> AppResult<Option<serde_json::Value>> {
    let Some(day) = control::days(sql)?.into_iter().find(|day| day.day == date) else {
        return Ok(None);
    };
    let draws = draws_json(control::draws_of(sql, date)?);
    Ok(Some(json!({ "day": DayJson::from(&day), "draws": draws })))
}

/// The date of a path or body as `YYYY-MM-DD` with its IST midnight, or a 400 naming the fix.
fn date_of(text: &str) -> AppResult<(String, i64)> {
    let time = parse_day(text).map_err(AppError::BadRequest)?;
    Ok((control::date_text(time), time))
}

/// `GET /api/v1/control/draws/{day}`: a drawn day and its draws with their latest verdicts;
/// 404 when the day was not drawn.
pub async fn control_day(
    State(state): State<AppState>,
    client: ApiClient,
    Path(day): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    client.require(Scope::Read)?;
    let (date, _) = date_of(&day)?;
    let body = state.read_snapshot(move |sql| day_draw(sql, &date)).await?;
    count_use(&state, &client).await?;
    Ok(Json(body.ok_or(AppError::NotFound)?))
}

/// Body of `POST /api/v1/control/draws`: the day and exactly one of its sizes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrawBody {
    day: String,
    payments: Option<usize>,
    per_thousand: Option<usize>,
}

/// The status of a refused draw: 422 for a size to change, 409 for the day's state (retry
/// `not_over` and `unscored` later; fetch an `already_drawn` day).
fn refusal_status(kind: Refusal) -> StatusCode {
    match kind {
        Refusal::Size => StatusCode::UNPROCESSABLE_ENTITY,
        Refusal::AlreadyDrawn | Refusal::NotOver | Refusal::Unscored | Refusal::NothingToDraw => {
            StatusCode::CONFLICT
        }
    }
}

/// `POST /api/v1/control/draws`: draws a finished, fully scored day once, as the key's user,
/// with the Control page's rules and audit entry. 201 with the draw and its `Location`; a
/// refusal is `{"error": …, "refusal": kind}`.
pub async fn post_control_draw(
    State(state): State<AppState>,
    client: ApiClient,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    client.require(Scope::Verdicts)?;
    let body: DrawBody = serde_json::from_value(parse_json(&body_within_limit(body)?)?)
        .map_err(|error| AppError::Unprocessable(format!("{error}")))?;
    let size = match (body.payments, body.per_thousand) {
        (Some(n), None) => Size::Payments(n),
        (None, Some(r)) => Size::PerThousand(r),
        _ => {
            return Err(AppError::Unprocessable(
                "give the size as exactly one of payments (a number) and per_thousand (of the day's unflagged payments)".into(),
            )
            .into());
        }
    };
    let (date, day) = date_of(&body.day)?;
    let actor = client.actor();
    let key_id = client.key_id;
    let outcome = state
        .write(move |sql| {
            // Before the draw: its audit entry takes pg::AUDIT_LOCK until commit, and
            // `apikey revoke` updates this key's row before writing its own entry.
            apikeys::count_use(sql, key_id, aegis_core::time::now_millis())?;
            let outcome = match draw_recorded(sql, day, size, &actor)? {
                Ok(_) => Ok(day_draw(sql, &date)?.ok_or_else(|| {
                    AppError::internal(format!("{date} was drawn but cannot be read back"))
                })?),
                Err(refusal) => Err(refusal),
            };
            Ok((date, outcome))
        })
        .await?;
    Ok(match outcome {
        (date, Ok(body)) => (
            StatusCode::CREATED,
            [(header::LOCATION, format!("/api/v1/control/draws/{date}"))],
            Json(body),
        )
            .into_response(),
        (_, Err((kind, problem))) => (
            refusal_status(kind),
            Json(json!({ "error": problem, "refusal": kind.as_str() })),
        )
            .into_response(),
    })
}
