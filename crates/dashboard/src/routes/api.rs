//! The JSON API behind the charts (and for auditors' own scripts): same session cookie as the
//! pages; state-changing calls need the session's CSRF token in `X-CSRF-Token` (checked by
//! [`crate::csrf`] before any handler runs).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::alerts::{self, Verdict};
use crate::error::{ApiError, AppError};
use crate::filters::{Filters, ListParams, Sort, parse_page};
use crate::model_info;
use crate::queries;
use crate::session::ApiSession;
use crate::state::AppState;

/// `GET /api/summary?filters`: KPIs, daily trend, heatmap and map points.
pub async fn summary(
    State(state): State<AppState>,
    ApiSession(_session): ApiSession,
    Query(params): Query<ListParams>,
) -> Result<Json<queries::Summary>, ApiError> {
    let mut filters = Filters::parse(&params)?;
    let cache = state.clone();
    // One snapshot: the daily trend subtracts counts of separate statements, which a payment
    // scored in between made disagree on PostgreSQL (a normal count below zero).
    let summary = state
        .read_snapshot(move |conn| {
            cache.default_range(conn, &mut filters)?;
            cache.summary(conn, &filters)
        })
        .await?;
    Ok(Json(summary))
}

/// `GET /api/transactions?filters&page&sort&dir`: one page of the table.
pub async fn transactions(
    State(state): State<AppState>,
    ApiSession(_session): ApiSession,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let mut filters = Filters::parse(&params)?;
    let sort = Sort::parse(&params.sort, &params.dir);
    let page = parse_page(&params.page);
    let cache = state.clone();
    // One snapshot: on PostgreSQL the count and the page agree (see `AppState::read_snapshot`).
    let (filters, table) = state
        .read_snapshot(move |conn| {
            cache.default_range(conn, &mut filters)?;
            // The filter's row count is the KPI count, usually already cached.
            let total = cache.kpis(conn, &filters)?.transactions;
            let table = cache.transactions_page(conn, &filters, sort, page, total)?;
            Ok((filters, table))
        })
        .await?;
    Ok(Json(json!({
        "range": filters.range_text(),
        "filters": filters.pairs().into_iter().filter(|(_, v)| !v.is_empty()).collect::<std::collections::BTreeMap<_, _>>(),
        "sort": sort.column.param(),
        "dir": sort.dir_param(),
        "total": table.total,
        "page": table.page,
        "pages": table.pages,
        "per_page": table.per_page,
        "rows": table.rows,
    })))
}

/// `GET /api/alerts/{id}`: the alert's detail and the current threshold.
pub async fn alert(
    State(state): State<AppState>,
    ApiSession(session): ApiSession,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let mut detail = state
        .read(move |conn| alerts::alert_detail(conn, id))
        .await?
        .ok_or(AppError::NotFound)?;
    // As on the alert page: the label would lead an auditor's verdict. Admins only.
    if !session.is_admin() {
        detail.is_anomaly = None;
        detail.fraud_type = None;
    }
    let current = model_info::current(state.modeling());
    // Whether `threshold` (the current model's) is the one this score was judged by.
    let scored_by_current = current.as_ref().is_some_and(|model| {
        detail.transaction.model_version.as_deref() == Some(model.version.as_str())
    });
    let mut value = serde_json::to_value(detail).map_err(AppError::internal)?;
    value["threshold"] = json!(current.map(|model| model.threshold));
    value["scored_by_current_model"] = json!(scored_by_current);
    Ok(Json(value))
}

/// Body of `POST /api/alerts/{id}/verdict`.
#[derive(Debug, Deserialize)]
pub struct VerdictRequest {
    pub verdict: String,
    #[serde(default)]
    pub note: String,
    /// Why a final verdict changes (required then).
    #[serde(default)]
    pub reason: String,
}

/// `POST /api/alerts/{id}/verdict`: records a verdict; 201 with its id.
pub async fn post_verdict(
    State(state): State<AppState>,
    ApiSession(session): ApiSession,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: VerdictRequest = serde_json::from_slice(&body).map_err(|_| {
        AppError::BadRequest(
            "expected JSON like {\"verdict\": \"dismissed\", \"note\": \"…\"}".into(),
        )
    })?;
    let verdict = Verdict::parse(&request.verdict)?;
    let now = aegis_core::time::now_millis();
    let verdict_id = state
        .write(move |conn| {
            alerts::record_verdict(
                conn,
                id,
                verdict,
                &request.note,
                &request.reason,
                &session.auditor(),
                now,
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "verdict_id": verdict_id, "verdict": verdict.as_str() })),
    ))
}

/// `GET /api/model`: the model version, threshold and test-score histogram.
pub async fn model(
    State(state): State<AppState>,
    ApiSession(_session): ApiSession,
) -> Result<Json<Value>, ApiError> {
    let modeling = state.modeling().to_path_buf();
    let value = tokio::task::spawn_blocking(move || {
        // One read of the config: a model published in between must not lend the page
        // another model's histogram.
        let config = aegis_core::artifacts::read_config(&modeling).ok();
        json!({
            "model_version": config.as_ref().map(|c| c.model_version.clone()),
            "threshold": config.as_ref().map(|c| c.threshold),
            "histogram": config.as_ref().and_then(|c| model_info::histogram(&modeling, c)),
        })
    })
    .await
    .map_err(AppError::from)?;
    Ok(Json(value))
}
