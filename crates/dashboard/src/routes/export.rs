//! `GET /export.csv?filters`: the filtered rows as CSV, streamed.
//!
//! A blocking task walks the query and sends 64 KiB chunks through a bounded channel to the
//! response body, so a million rows never sit in memory and a slow client slows the query
//! instead of filling RAM. A client that goes away stops the query.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::audit;
use crate::error::{ApiError, AppError};
use crate::filters::{Filters, ListParams, Sort};
use crate::queries::{self, ExportRow};
use crate::session::ApiSession;
use crate::state::AppState;

/// The export's columns, in order.
pub const CSV_HEADER: &str = "transaction_id,transaction_ref,beneficiary_id,account_id,agent_id,scheme,amount,timestamp,\
latitude,longitude,district,status,anomaly_score,category,model_version,reason,verdict,incident_id";

/// Bytes gathered before a chunk is sent.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight between the query and the socket.
const CHANNEL_CHUNKS: usize = 4;

/// Exports running at once, at most. Each holds one of the dashboard's read connections (of
/// eight) for as long as its client downloads: unbounded, a few stalled downloads took them
/// all, and every page and login waited out its 30 s for a connection.
pub const EXPORTS_AT_ONCE: usize = 2;

/// How long an export waits for its client to take the next chunk before it gives up and
/// lets its connection go.
const CLIENT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Hands `chunk` to the response, waiting up to `limit` for room; false when the client went
/// away or took nothing for `limit`.
fn send_within(
    sender: &mpsc::Sender<Result<Bytes, io::Error>>,
    chunk: Bytes,
    limit: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + limit;
    let mut chunk = Ok(chunk);
    loop {
        match sender.try_send(chunk) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(back)) => {
                if std::time::Instant::now() >= deadline {
                    tracing::info!("CSV export abandoned: its client took nothing for 30 s");
                    return false;
                }
                chunk = back;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// Appends one CSV field: quoted when it holds a comma, quote or line break. Text that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`.
fn push_text(line: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        return;
    };
    let guarded;
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{value}");
        guarded.as_str()
    } else {
        value
    };
    if value.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&value.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(value);
    }
}

/// Paise as rupees with two decimals (`2000.00`, `-0.50`).
pub fn rupees_2dp(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let paise = paise.unsigned_abs();
    format!("{sign}{}.{:02}", paise / 100, paise % 100)
}

/// One CSV line (with its newline) for `export`.
pub fn csv_line(export: &ExportRow) -> String {
    let row = &export.transaction;
    let mut line = String::with_capacity(240);
    line.push_str(&row.transaction_id.to_string());
    line.push(',');
    push_text(&mut line, row.transaction_ref.as_deref());
    line.push(',');
    push_text(&mut line, Some(&row.beneficiary_id));
    line.push(',');
    push_text(&mut line, row.account_id.as_deref());
    line.push(',');
    push_text(&mut line, row.agent_id.as_deref());
    line.push(',');
    push_text(&mut line, Some(&row.scheme));
    line.push(',');
    if let Some(paise) = row.amount_paise {
        line.push_str(&rupees_2dp(paise));
    }
    line.push(',');
    push_text(&mut line, row.timestamp.as_deref());
    line.push(',');
    if let Some(latitude) = row.latitude {
        line.push_str(&latitude.to_string());
    }
    line.push(',');
    if let Some(longitude) = row.longitude {
        line.push_str(&longitude.to_string());
    }
    line.push(',');
    push_text(&mut line, row.district.as_deref());
    line.push(',');
    push_text(&mut line, row.status.as_deref());
    line.push(',');
    if let Some(score) = row.anomaly_score {
        line.push_str(&score.to_string());
    }
    line.push(',');
    push_text(&mut line, row.category.as_deref());
    line.push(',');
    push_text(&mut line, row.model_version.as_deref());
    line.push(',');
    push_text(&mut line, export.reason.as_deref());
    line.push(',');
    push_text(&mut line, export.verdict.as_deref());
    line.push(',');
    if let Some(incident) = export.incident_id {
        line.push_str(&incident.to_string());
    }
    line.push_str("\r\n");
    line
}

/// `GET /export.csv`: exactly the rows `/api/transactions` pages through for the same query,
/// in the same order.
pub async fn export_csv(
    State(state): State<AppState>,
    ApiSession(session): ApiSession,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let mut filters = Filters::parse(&params)?;
    let sort = Sort::parse(&params.sort, &params.dir);
    let Ok(turn) = state.exports().try_acquire_owned() else {
        return Err(AppError::Overloaded(format!(
            "{EXPORTS_AT_ONCE} exports are running: try again when one has finished."
        ))
        .into());
    };
    let cache = state.clone();
    let filters = state
        .read(move |conn| {
            cache.default_range(conn, &mut filters)?;
            Ok(filters)
        })
        .await?;
    let now = aegis_core::time::now_millis();
    let detail = format!("CSV export: {}", filters.describe());
    let username = session.username.clone();
    state
        .write(move |conn| audit::record(conn, now, Some(&username), "export", &detail))
        .await?;

    let name = match (filters.from, filters.to) {
        (Some(from), Some(to)) => format!(
            "aegis-transactions-{}-to-{}.csv",
            from.format("%Y-%m-%d"),
            to.format("%Y-%m-%d")
        ),
        _ => "aegis-transactions.csv".to_string(),
    };

    let (sender, receiver) = mpsc::channel::<Result<Bytes, io::Error>>(CHANNEL_CHUNKS);
    // Set once every row was handed over. A body that ends without it ends in an error, so the
    // client sees a broken download, never a short file that looks whole (chunks end at line
    // breaks): an export that failed part-way, or gave up on a client that stalled.
    let finished = Arc::new(AtomicBool::new(false));
    let worker = state.clone();
    let done = Arc::clone(&finished);
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let result = worker.db().read(|conn| {
            let mut buffer = String::with_capacity(CHUNK_BYTES + 1024);
            buffer.push_str(CSV_HEADER);
            buffer.push_str("\r\n");
            let mut client_gone = false;
            queries::for_each_transaction(conn, &filters, sort, |row| {
                buffer.push_str(&csv_line(row));
                if buffer.len() >= CHUNK_BYTES {
                    let chunk = Bytes::from(std::mem::replace(
                        &mut buffer,
                        String::with_capacity(CHUNK_BYTES + 1024),
                    ));
                    client_gone = !send_within(&sender, chunk, CLIENT_WAIT);
                }
                !client_gone
            })?;
            if !client_gone
                && (buffer.is_empty() || send_within(&sender, Bytes::from(buffer), CLIENT_WAIT))
            {
                done.store(true, Ordering::SeqCst);
            }
            Ok(())
        });
        if let Err(error) = result {
            let error: AppError = error;
            tracing::error!(%error, "CSV export failed part-way");
        }
    });

    let stream = futures_util::stream::unfold(
        (receiver, finished, false),
        |(mut receiver, finished, ended)| async move {
            if ended {
                return None;
            }
            match receiver.recv().await {
                Some(chunk) => Some((chunk, (receiver, finished, false))),
                None if finished.load(Ordering::SeqCst) => None,
                None => Some((
                    Err(io::Error::other("export did not finish")),
                    (receiver, finished, true),
                )),
            }
        },
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that takes nothing lets the export go after the wait, as does one that left.
    #[test]
    fn an_export_gives_up_on_a_client_that_takes_nothing() {
        let (sender, receiver) = mpsc::channel(1);
        let wait = std::time::Duration::from_millis(50);
        assert!(send_within(&sender, Bytes::from_static(b"a"), wait));
        let started = std::time::Instant::now();
        assert!(!send_within(&sender, Bytes::from_static(b"b"), wait));
        assert!(started.elapsed() >= wait);
        drop(receiver);
        assert!(!send_within(&sender, Bytes::from_static(b"c"), wait));
    }

    fn row() -> ExportRow {
        ExportRow {
            reason: Some("₹50,000 is 25.0× the usual".into()),
            verdict: Some("needs_field_check".into()),
            incident_id: Some(3),
            transaction: crate::queries::TxRow {
                transaction_id: 7,
                transaction_ref: Some("ref,with \"quotes\"".into()),
                beneficiary_id: "B1".into(),
                account_id: None,
                agent_id: Some("=cmd()".into()),
                scheme: "PM-KISAN".into(),
                amount_paise: Some(200_050),
                timestamp: Some("2025-01-02 10:00:00".into()),
                latitude: Some(12.5),
                longitude: None,
                district: Some("Line\nbreak".into()),
                status: Some("ANOMALY".into()),
                anomaly_score: Some(0.25),
                category: Some("amount".into()),
                model_version: None,
            },
        }
    }

    #[test]
    fn csv_fields_are_quoted_and_amounts_have_two_decimals() {
        let line = csv_line(&row());
        assert_eq!(
            line,
            "7,\"ref,with \"\"quotes\"\"\",B1,,'=cmd(),PM-KISAN,2000.50,2025-01-02 10:00:00,12.5,,\"Line\nbreak\",ANOMALY,0.25,amount,,\"₹50,000 is 25.0× the usual\",needs_field_check,3\r\n"
        );
        assert_eq!(CSV_HEADER.split(',').count(), 18);
    }

    #[test]
    fn negative_and_small_amounts_format_as_rupees() {
        assert_eq!(rupees_2dp(5), "0.05");
        assert_eq!(rupees_2dp(-150), "-1.50");
    }
}
