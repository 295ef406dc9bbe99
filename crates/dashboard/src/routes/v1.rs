//! `/api/v1/…`: the machine API. Payments in (with decisions), alerts out, verdicts back.
//!
//! Clients authenticate with an API key as a bearer token ([`crate::apikeys`]), never with a
//! session cookie. Every payment is validated by [`aegis_core::ingest`], the CSV import's own
//! code, and identified by its `transaction_ref`: a retry returns the original result and
//! stores nothing twice (the unique `payment_refs` of migration 0006, checked and written under
//! one write lock). The shapes are in `openapi.json`, served at `/api/v1/openapi.json`.

use std::collections::HashMap;

use aegis_core::sql::{Row, Sql};
use aegis_core::values;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use aegis_core::domain::NewTransaction;
use aegis_core::ingest::{self, FieldError};
use aegis_core::store::PaymentIdentity;

use crate::alerts::{self, Auditor, Verdict};
use crate::apikeys::{self, ApiClient, Scope};
use crate::decisions::{Decision, Decisions, parse_wait};
use crate::error::{ApiError, AppError, AppResult};
use crate::state::AppState;

/// Largest request body `POST /api/v1/payments` reads.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Most payments in one request.
pub const MAX_BATCH: usize = 5_000;
/// Most alerts in one page of the feed.
pub const MAX_PAGE: i64 = 1_000;
const DEFAULT_PAGE: i64 = 100;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /api/v1/openapi.json`: the API's description (public: it holds no data).
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Refuses query parameters the endpoint does not know (a typo must not pass silently).
pub(crate) fn only_params(params: &HashMap<String, String>, known: &[&str]) -> AppResult<()> {
    match params.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(AppError::BadRequest(format!(
            "unknown parameter {unknown:?}: this endpoint takes {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

fn parse_flag(params: &HashMap<String, String>, name: &str) -> AppResult<bool> {
    match params.get(name).map(String::as_str) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(AppError::BadRequest(format!(
            "{name}={other:?}: use {name}=true or {name}=false"
        ))),
    }
}

/// The body, or 413 naming the limit.
pub(crate) fn body_within_limit(body: Result<Bytes, BytesRejection>) -> AppResult<Bytes> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge(format!(
                "the request body is larger than {} MiB: send at most {MAX_BATCH} payments per request",
                MAX_BODY_BYTES / (1024 * 1024)
            ))
        } else {
            AppError::BadRequest(format!("the request body could not be read: {rejection}"))
        }
    })
}

pub(crate) fn parse_json(body: &[u8]) -> AppResult<Value> {
    serde_json::from_slice(body).map_err(|error| {
        AppError::BadRequest(format!(
            "the body is not valid JSON (line {}, column {}): {error}",
            error.line(),
            error.column()
        ))
    })
}

/// What became of one payment of a request.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// Its position in the request (0 for a single payment).
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_ref: Option<String>,
    /// `accepted` (stored now), `duplicate` (stored before: the original transaction) or
    /// `rejected` (not stored: see `error`).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    /// With `?wait=`: the monitor's decision, or `PENDING` at the deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ItemError {
    pub field: String,
    pub reason: String,
}

impl From<FieldError> for ItemError {
    fn from(error: FieldError) -> Self {
        ItemError {
            field: error.field,
            reason: error.reason,
        }
    }
}

impl ItemResult {
    fn rejected(index: usize, reference: Option<String>, error: ItemError) -> ItemResult {
        ItemResult {
            index,
            transaction_ref: reference,
            result: "rejected",
            transaction_id: None,
            error: Some(error),
            decision: None,
        }
    }
}

/// The payments of a body: a JSON array, `{"payments": [...]}`, or one payment object.
fn items_of(body: Value) -> AppResult<Vec<Value>> {
    let items = match body {
        Value::Array(items) => items,
        Value::Object(object) if object.contains_key("payments") && object.len() > 1 => {
            let others: Vec<&String> = object.keys().filter(|k| *k != "payments").collect();
            return Err(AppError::Unprocessable(format!(
                "a {{\"payments\": [...]}} body holds nothing else (found {}): options such as atomic go in the query string (?atomic=true)",
                others
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Value::Object(mut object) if object.len() == 1 && object.contains_key("payments") => {
            match object.remove("payments") {
                Some(Value::Array(items)) => items,
                _ => {
                    return Err(AppError::Unprocessable(
                        "\"payments\" must be a list of payment objects".into(),
                    ));
                }
            }
        }
        single @ Value::Object(_) => vec![single],
        _ => {
            return Err(AppError::Unprocessable(
                "send one payment object, a list of them, or {\"payments\": [...]}".into(),
            ));
        }
    };
    if items.is_empty() {
        return Err(AppError::Unprocessable("the batch holds no payment".into()));
    }
    if items.len() > MAX_BATCH {
        return Err(AppError::Unprocessable(format!(
            "the batch holds {} payments: at most {MAX_BATCH} per request; split it",
            items.len()
        )));
    }
    Ok(items)
}

/// Validates every item; a ref repeated within the batch is refused after its first use.
fn validate_items(items: &[Value]) -> Vec<Result<NewTransaction, ItemResult>> {
    let mut first_use: HashMap<String, usize> = HashMap::new();
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let reference = item
                .get("transaction_ref")
                .and_then(Value::as_str)
                .map(str::to_string);
            let payment = ingest::validate_json(item)
                .map_err(|error| ItemResult::rejected(index, reference.clone(), error.into()))?;
            let reference = payment.transaction_ref.clone().unwrap_or_default();
            if let Some(first) = first_use.get(&reference) {
                return Err(ItemResult::rejected(
                    index,
                    Some(reference),
                    ItemError {
                        field: "transaction_ref".into(),
                        reason: format!(
                            "transaction_ref repeats item {first} of this batch: a ref names one payment"
                        ),
                    },
                ));
            }
            first_use.insert(reference, index);
            Ok(payment)
        })
        .collect()
}

/// What a stored payment looks like, to tell a retry from a reused ref. The stored payment is
/// described only to a key that may read payments (`may_read`): to an ingest-only key, a
/// guessed ref would otherwise answer with someone's beneficiary, amount and time.
fn same_payment(
    sql: &mut dyn Sql,
    id: i64,
    payment: &NewTransaction,
    may_read: bool,
) -> AppResult<Option<String>> {
    let stored = aegis_core::store::payment_of_id(sql, id)?.ok_or_else(|| {
        AppError::internal(format!(
            "payment_refs names transaction {id}, which is not stored"
        ))
    })?;
    if stored == PaymentIdentity::of(payment) {
        return Ok(None);
    }
    Ok(Some(if may_read {
        format!(
            "transaction_ref is already stored as transaction {id} for a different payment ({}): send a new ref for a new payment",
            stored.describe()
        )
    } else {
        "transaction_ref is already stored for a different payment: send a new ref for a new payment"
            .to_string()
    }))
}

/// Stores the valid payments in the caller's write transaction; fills in each one's result.
/// Every ref is checked before anything is inserted, so an `atomic` batch with a refused item
/// writes nothing.
fn store(
    sql: &mut dyn Sql,
    results: &mut [Option<ItemResult>],
    valid: &[(usize, NewTransaction)],
    atomic: bool,
    client: (i64, bool),
    now: i64,
) -> AppResult<bool> {
    let (key_id, may_read) = client;
    // The refs are checked, then inserted: no other writer's payment may come in between.
    // SQLite's write transaction holds the database; on PostgreSQL, the lock every insert of
    // payments takes, taken before the checks (another dashboard, an import, a replay).
    aegis_core::pg::lock_appends(sql)?;
    let mut refused = false;
    let mut new = Vec::new();
    for (index, payment) in valid {
        let reference = payment.transaction_ref.clone().unwrap_or_default();
        let result = match aegis_core::store::registered_ref(sql, &reference)? {
            Some(id) => match same_payment(sql, id, payment, may_read)? {
                None => ItemResult {
                    index: *index,
                    transaction_ref: Some(reference),
                    result: "duplicate",
                    transaction_id: Some(id),
                    error: None,
                    decision: None,
                },
                Some(reason) => {
                    refused = true;
                    ItemResult::rejected(
                        *index,
                        Some(reference),
                        ItemError {
                            field: "transaction_ref".into(),
                            reason,
                        },
                    )
                }
            },
            None => {
                new.push((*index, payment));
                continue;
            }
        };
        results[*index] = Some(result);
    }
    if atomic && refused {
        return Ok(false);
    }
    for (index, payment) in new {
        results[index] = Some(ItemResult {
            index,
            transaction_ref: payment.transaction_ref.clone(),
            result: "accepted",
            transaction_id: Some(aegis_core::store::insert_payment(sql, payment)?),
            error: None,
            decision: None,
        });
    }
    apikeys::count_use(sql, key_id, now)?;
    Ok(true)
}

/// `POST /api/v1/payments[?wait=250ms][&atomic=true]`: stores one payment or a batch; each
/// item gets its own result. 200 when anything was stored or found stored, 422 when nothing
/// was (every item refused, or `atomic=true` and one was).
pub async fn post_payments(
    State(state): State<AppState>,
    client: ApiClient,
    Query(params): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    client.require(Scope::Ingest)?;
    only_params(&params, &["wait", "atomic"])?;
    let wait = params
        .get("wait")
        .map(|text| parse_wait(text))
        .transpose()?;
    let atomic = parse_flag(&params, "atomic")?;
    let deadline = wait.map(|wait| tokio::time::Instant::now() + wait);
    let items = items_of(parse_json(&body_within_limit(body)?)?)?;

    let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
    let mut valid = Vec::with_capacity(items.len());
    for (index, item) in validate_items(&items).into_iter().enumerate() {
        match item {
            Ok(payment) => valid.push((index, payment)),
            Err(rejected) => results[index] = Some(rejected),
        }
    }
    drop(items);
    // Each valid payment's ref, to name it if the batch ends up not stored.
    let mut refs: Vec<Option<String>> = vec![None; results.len()];
    for (index, payment) in &valid {
        refs[*index] = payment.transaction_ref.clone();
    }
    let invalid = valid.len() < results.len();
    let stored = if valid.is_empty() || (atomic && invalid) {
        false
    } else {
        let now = aegis_core::time::now_millis();
        let key = (client.key_id, client.scopes.contains(&Scope::Read));
        let (stored, filled) = state
            .write(move |conn| {
                let stored = store(conn, &mut results, &valid, atomic, key, now)?;
                Ok((stored, results))
            })
            .await?;
        results = filled;
        stored
    };
    // A valid payment without a result was not stored: the batch was all-or-nothing and
    // something failed.
    let not_stored = |index: usize, transaction_ref: Option<String>| {
        ItemResult::rejected(
            index,
            transaction_ref,
            ItemError {
                field: String::new(),
                reason: "not stored: atomic=true and another payment of the batch was refused"
                    .into(),
            },
        )
    };
    let mut results: Vec<ItemResult> = results
        .into_iter()
        .zip(refs)
        .enumerate()
        .map(|(index, (result, transaction_ref))| {
            result.unwrap_or_else(|| not_stored(index, transaction_ref))
        })
        .collect();
    // Stored means a payment of this request is in the database, now or from before.
    let stored = stored && results.iter().any(|r| r.result != "rejected");
    if !stored {
        for result in &mut results {
            if result.result != "rejected" {
                *result = not_stored(result.index, result.transaction_ref.clone());
            }
        }
    }
    if let (Some(deadline), true) = (deadline, stored) {
        let ids: Vec<i64> = results.iter().filter_map(|r| r.transaction_id).collect();
        let mut decisions = Decisions::wait(&state, ids, deadline).await?;
        for result in &mut results {
            if let Some(id) = result.transaction_id {
                result.decision = Some(decisions.remove(&id).unwrap_or_else(Decision::pending));
            }
        }
    }
    let count = |kind: &str| results.iter().filter(|r| r.result == kind).count();
    let summary = json!({
        "stored": stored,
        "accepted": count("accepted"),
        "duplicates": count("duplicate"),
        "rejected": count("rejected"),
        "results": results,
    });
    let status = if stored {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(summary)).into_response())
}

/// An opaque position in the alert feed.
fn encode_cursor(id: i64) -> String {
    format!("a1.{id:x}")
}

fn decode_cursor(text: &str) -> AppResult<i64> {
    text.strip_prefix("a1.")
        .and_then(|hex| i64::from_str_radix(hex, 16).ok())
        .filter(|id| *id >= 0)
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "after={text:?} is not a cursor this server issued: start without after= and follow next_cursor"
            ))
        })
}

/// Unix milliseconds as RFC 3339, UTC, to the millisecond (`None`: out of range).
pub(crate) fn rfc3339_millis(millis: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// One alert of the feed.
#[derive(Debug, Serialize)]
pub struct FeedAlert {
    pub transaction_id: i64,
    pub transaction_ref: Option<String>,
    pub beneficiary_id: String,
    pub account_id: Option<String>,
    pub agent_id: Option<String>,
    pub scheme: String,
    /// Rupees, as the import takes them.
    pub amount: Option<String>,
    /// RFC 3339, IST.
    pub timestamp: Option<String>,
    pub district: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub model_version: Option<String>,
    /// When the monitor scored it, RFC 3339 UTC.
    pub scored_at: Option<String>,
    pub reasons: Option<Value>,
    /// The incident it was grouped into (its verdict settles all of the incident's alerts).
    pub incident_id: Option<i64>,
}

struct FeedPage {
    alerts: Vec<FeedAlert>,
    last_id: Option<i64>,
}

/// The alerts after `after` in scoring order, in one snapshot: only rows at or below the
/// monitor's committed mark, so a row scored later can never appear behind the cursor.
fn feed_page(sql: &mut dyn Sql, after: i64, limit: i64) -> AppResult<FeedPage> {
    let mark = aegis_core::store::monitor_mark(sql)?.unwrap_or(0);
    let alerts = sql.rows(
        "SELECT transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme, amount_paise, \
         timestamp, district, latitude, longitude, anomaly_score, model_version, scored_at, reasons, \
         (SELECT ia.incident_id FROM incident_alerts ia WHERE ia.transaction_id = transactions.transaction_id) \
         FROM transactions WHERE transaction_id > ?1 AND transaction_id <= ?2 AND status = 'ANOMALY' \
         ORDER BY transaction_id LIMIT ?3",
        values![after, mark, limit],
        |row| {
        let timestamp: Option<String> = row.at(7)?;
        let scored_at: Option<i64> = row.at(13)?;
        let reasons: Option<String> = row.at(14)?;
        Ok(FeedAlert {
            transaction_id: row.at(0)?,
            transaction_ref: row.at(1)?,
            beneficiary_id: row.at(2)?,
            account_id: row.at(3)?,
            agent_id: row.at(4)?,
            scheme: row.at(5)?,
            amount: row.at::<Option<i64>>(6)?.map(ingest::rupees_text),
            timestamp: timestamp.map(|text| match aegis_core::time::parse_timestamp(&text) {
                Ok(time) => ingest::rfc3339_ist(time),
                Err(_) => text,
            }),
            district: row.at(8)?,
            latitude: row.at(9)?,
            longitude: row.at(10)?,
            score: row.at(11)?,
            threshold: None,
            model_version: row.at(12)?,
            scored_at: scored_at.and_then(rfc3339_millis),
            reasons: reasons.and_then(|text| serde_json::from_str(&text).ok()),
            incident_id: row.at(15)?,
        })
        },
    )?;
    Ok(FeedPage {
        last_id: alerts.last().map(|alert| alert.transaction_id),
        alerts,
    })
}

/// `GET /api/v1/alerts[?after=CURSOR][&limit=N]`: alerts in scoring order, a page at a time.
/// Follow `next_cursor` to get each alert exactly once; an empty page keeps the cursor.
pub async fn alerts(
    State(state): State<AppState>,
    client: ApiClient,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    client.require(Scope::Read)?;
    only_params(&params, &["after", "limit"])?;
    let after = match params.get("after").filter(|text| !text.is_empty()) {
        Some(text) => decode_cursor(text)?,
        None => 0,
    };
    let limit = match params.get("limit") {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                AppError::BadRequest(format!(
                    "limit={text:?}: use a number of alerts from 1 to {MAX_PAGE}"
                ))
            })?,
    };
    let page = state
        .read(move |conn| feed_page(conn, after, limit))
        .await?;
    let now = aegis_core::time::now_millis();
    let key_id = client.key_id;
    state
        .write(move |conn| apikeys::count_use(conn, key_id, now))
        .await?;
    let mut alerts = page.alerts;
    for alert in &mut alerts {
        alert.threshold = state
            .decisions()
            .threshold(&state, alert.model_version.as_deref());
    }
    let has_more = alerts.len() as i64 == limit;
    Ok(Json(json!({
        "alerts": alerts,
        "next_cursor": encode_cursor(page.last_id.unwrap_or(after)),
        "has_more": has_more,
    })))
}

/// Body of `POST /api/v1/verdicts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictBody {
    transaction_id: Option<i64>,
    transaction_ref: Option<String>,
    verdict: String,
    #[serde(default)]
    note: String,
    /// Why a final verdict changes (required then, as in the dashboard's form).
    #[serde(default)]
    reason: String,
    /// A dashboard user the verdict is recorded for; the key's own user otherwise.
    auditor: Option<String>,
}

fn resolve_transaction(sql: &mut dyn Sql, body: &VerdictBody) -> AppResult<i64> {
    match (body.transaction_id, body.transaction_ref.as_deref()) {
        (Some(id), None) => Ok(id),
        (None, Some(reference)) => {
            let ids: Vec<i64> = sql.column(
                "SELECT transaction_id FROM transactions WHERE transaction_ref = ?1 LIMIT 2",
                values![reference],
            )?;
            match ids.as_slice() {
                [id] => Ok(*id),
                [] => Err(AppError::Missing(format!(
                    "transaction_ref {reference:?} is not stored: check the reference, or send the payment first"
                ))),
                _ => Err(AppError::Unprocessable(format!(
                    "transaction_ref {reference:?} names more than one transaction: send transaction_id"
                ))),
            }
        }
        _ => Err(AppError::Unprocessable(
            "name the payment with exactly one of transaction_id and transaction_ref".into(),
        )),
    }
}

/// `POST /api/v1/verdicts`: records a verdict from a case system, with the dashboard form's
/// rules and audit entry. 201 with its id.
pub async fn post_verdict(
    State(state): State<AppState>,
    client: ApiClient,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    client.require(Scope::Verdicts)?;
    let body: VerdictBody = serde_json::from_value(parse_json(&body_within_limit(body)?)?)
        .map_err(|error| AppError::Unprocessable(format!("{error}")))?;
    let verdict = Verdict::parse(&body.verdict).map_err(|_| {
        AppError::Unprocessable(format!(
            "verdict {:?} is not one of confirmed_fraud, dismissed, needs_field_check",
            body.verdict
        ))
    })?;
    let now = aegis_core::time::now_millis();
    let (id, verdict_id, repeat) = state
        .write(move |conn| {
            // The retry check reads the latest verdict: no other writer's in between.
            aegis_core::pg::lock_verdicts(conn)?;
            let id = resolve_transaction(conn, &body)?;
            let auditor = match &body.auditor {
                // The key's own user, `api:NAME`, says it already.
                None => Auditor {
                    user_id: client.user_id,
                    username: client.actor(),
                    via: String::new(),
                },
                Some(name) => {
                    let user_id = conn.query_int(
                        "SELECT user_id FROM users WHERE username = ?1 AND disabled = 0",
                        values![name],
                    )?;
                    Auditor {
                        user_id: user_id.ok_or_else(|| {
                            AppError::Unprocessable(format!(
                                "auditor {name:?} is not an active dashboard user: leave it out to record the verdict for {}",
                                client.actor()
                            ))
                        })?,
                        username: format!("{name} via {}", client.actor()),
                        via: client.actor(),
                    }
                }
            };
            // A retry of a request whose answer was lost: the payment's latest verdict is this
            // one, word for word, by the same auditor. Answered with it, not recorded twice.
            if let Some(latest) = crate::cases::latest_verdict(conn, id, i64::MAX)?.filter(|latest| {
                latest.verdict == verdict.as_str()
                    && latest.note == body.note
                    && latest.reason == body.reason
                    && latest.user_id == auditor.user_id
                    && latest.via == auditor.via
            }) {
                apikeys::count_use(conn, client.key_id, now)?;
                return Ok((id, latest.verdict_id, true));
            }
            // Before the verdict: its audit entry takes pg::AUDIT_LOCK until commit, and
            // `apikey revoke` updates this key's row before writing its own entry.
            apikeys::count_use(conn, client.key_id, now)?;
            let verdict_id = alerts::record_verdict(
                conn,
                id,
                verdict,
                &body.note,
                &body.reason,
                &auditor,
                now,
            )
            .map_err(|error| match error {
                AppError::NotFound => {
                    AppError::Missing(format!("transaction {id} is not stored"))
                }
                other => other,
            })?;
            Ok((id, verdict_id, false))
        })
        .await?;
    Ok((
        if repeat {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(json!({
            "verdict_id": verdict_id,
            "transaction_id": id,
            "verdict": verdict.as_str(),
            "repeat": repeat,
        })),
    ))
}
