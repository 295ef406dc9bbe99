//! Decisions for `POST /api/v1/payments?wait=…`: the monitor's verdict on payments the API just
//! stored, as soon as it has scored them.
//!
//! The dashboard never scores (one feature implementation, in the monitor, exactly once). It
//! watches the monitor's high-water mark instead: the monitor commits a batch's scores together
//! with the mark, so every payment at or below the mark has its decision. One task polls the
//! mark every [`POLL`] while some request waits and publishes it on a `watch` channel; each
//! waiting request reads its own rows once, when the mark passes them or its deadline comes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aegis_core::sql::{Row, Sql};
use aegis_core::values;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// How often the mark is read while a request waits.
const POLL: Duration = Duration::from_millis(2);
/// How often the idle watcher looks for waiting requests if no wake-up came (a request wakes
/// it at once: an idle sleep in its way was 20 ms of every decision's latency).
const IDLE: Duration = Duration::from_millis(500);
/// The longest `?wait=` accepted.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// The monitor's decision on one payment, or `PENDING` when the wait ended first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// `NORMAL`, `ANOMALY`, `ERROR` (the row could not be scored: see `reasons`) or `PENDING`.
    pub status: String,
    pub score: Option<f64>,
    /// The alert threshold of the model that scored it.
    pub threshold: Option<f64>,
    pub model_version: Option<String>,
    /// The monitor's reasons (the same JSON the dashboard shows), for alerts and errors.
    pub reasons: Option<Value>,
}

impl Decision {
    pub fn pending() -> Decision {
        Decision {
            status: "PENDING".into(),
            score: None,
            threshold: None,
            model_version: None,
            reasons: None,
        }
    }
}

/// Parses `?wait=`: `250ms`, `2s`, `1.5s`; at most [`MAX_WAIT`].
pub fn parse_wait(text: &str) -> AppResult<Duration> {
    let text = text.trim();
    let parsed = if let Some(millis) = text.strip_suffix("ms") {
        millis.parse::<u64>().ok().map(Duration::from_millis)
    } else if let Some(seconds) = text.strip_suffix('s') {
        seconds
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
    } else {
        None
    };
    let wait = parsed.ok_or_else(|| {
        AppError::BadRequest(format!(
            "wait={text:?} is not a duration: use milliseconds or seconds, such as wait=250ms or wait=2s"
        ))
    })?;
    if wait > MAX_WAIT {
        return Err(AppError::BadRequest(format!(
            "wait={text} is too long: at most {}s",
            MAX_WAIT.as_secs()
        )));
    }
    Ok(wait)
}

/// The mark watcher and a cache of the current model's threshold.
#[derive(Debug)]
pub struct Decisions {
    mark: watch::Sender<i64>,
    started: AtomicBool,
    /// Wakes the idle watcher when a request starts waiting.
    waiting: Notify,
    /// (model_version, threshold) of the newest config read.
    threshold: Mutex<Option<(String, f64)>>,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions {
            mark: watch::channel(0).0,
            started: AtomicBool::new(false),
            waiting: Notify::new(),
            threshold: Mutex::new(None),
        }
    }
}

impl Decisions {
    /// Waits until the monitor has scored every id in `ids` or `deadline` passes, and returns
    /// the decisions known by then (missing ids are still pending).
    pub async fn wait(
        state: &AppState,
        ids: Vec<i64>,
        deadline: Instant,
    ) -> AppResult<HashMap<i64, Decision>> {
        let Some(&highest) = ids.iter().max() else {
            return Ok(HashMap::new());
        };
        let decisions = state.decisions();
        let mut mark = decisions.mark.subscribe();
        decisions.start(state);
        decisions.waiting.notify_one();
        loop {
            if *mark.borrow_and_update() >= highest {
                break;
            }
            match tokio::time::timeout_at(deadline, mark.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let mut found = state.read(move |conn| read_decisions(conn, &ids)).await?;
        for decision in found.values_mut() {
            decision.threshold = decisions.threshold(state, decision.model_version.as_deref());
        }
        Ok(found)
    }

    fn start(&self, state: &AppState) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let state = state.clone();
        tokio::spawn(async move {
            let mut shutdown = state.shutdown_signal();
            loop {
                let decisions = state.decisions();
                if decisions.mark.receiver_count() == 0 {
                    // Idle: until a request waits (or, as a safety net, IDLE passes).
                    tokio::select! {
                        () = decisions.waiting.notified() => {}
                        () = tokio::time::sleep(IDLE) => {}
                        _ = shutdown.changed() => return,
                    }
                    continue;
                }
                match state.read(read_mark).await {
                    Ok(mark) => {
                        decisions.mark.send_if_modified(|current| {
                            let advanced = mark > *current;
                            if advanced {
                                *current = mark;
                            }
                            advanced
                        });
                    }
                    Err(error) => tracing::warn!(%error, "reading the monitor's mark"),
                }
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
    }

    /// The threshold of model `version`, when it is the model in `modeling/` now.
    pub(crate) fn threshold(&self, state: &AppState, version: Option<&str>) -> Option<f64> {
        let version = version?;
        let mut cached = self
            .threshold
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((cached_version, threshold)) = cached.as_ref()
            && cached_version == version
        {
            return Some(*threshold);
        }
        let config = aegis_core::artifacts::read_config(state.modeling()).ok()?;
        let threshold = f64::from(config.threshold);
        *cached = Some((config.model_version.clone(), threshold));
        (config.model_version == version).then_some(threshold)
    }
}

fn read_mark(sql: &mut dyn Sql) -> AppResult<i64> {
    Ok(aegis_core::store::monitor_mark(sql)?.unwrap_or(0))
}

/// The decisions of the scored rows among `ids`.
fn read_decisions(sql: &mut dyn Sql, ids: &[i64]) -> AppResult<HashMap<i64, Decision>> {
    let mut found = HashMap::with_capacity(ids.len());
    for &id in ids {
        let decision = sql.row(
            "SELECT status, anomaly_score, model_version, reasons FROM transactions \
             WHERE transaction_id = ?1 AND status IS NOT NULL",
            values![id],
            |row| {
                let reasons: Option<String> = row.at(3)?;
                Ok(Decision {
                    status: row.at(0)?,
                    score: row.at(1)?,
                    threshold: None,
                    model_version: row.at(2)?,
                    reasons: reasons.and_then(|text| serde_json::from_str(&text).ok()),
                })
            },
        )?;
        if let Some(decision) = decision {
            found.insert(id, decision);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_are_short_durations_in_ms_or_s() {
        assert_eq!(parse_wait("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_wait("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_wait("5s").unwrap(), MAX_WAIT);
        for bad in ["10s", "5001ms", "soon", "250", "-1s", ""] {
            assert!(parse_wait(bad).is_err(), "{bad}");
        }
    }
}
