//! `GET /events`: the overview's live feed (server-sent events). Every couple of seconds it
//! pushes `{kpis, new_anomalies}`: the KPIs of the page's filters and the anomalies the monitor
//! has flagged since the last push (at most 20 at a time).

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use crate::error::ApiError;
use crate::filters::{Filters, ListParams};
use crate::queries;
use crate::session::{StreamSession, find_session_by_hash};
use crate::state::AppState;

struct Feed {
    state: AppState,
    /// The filters as asked; the default date range is re-applied at every push so that it
    /// follows new data.
    filters: Arc<Filters>,
    after: i64,
    interval: Interval,
    shutdown: watch::Receiver<bool>,
    token_hash: String,
}

/// `GET /events?filters`.
pub async fn events(
    State(state): State<AppState>,
    StreamSession(session): StreamSession,
    Query(params): Query<ListParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filters = Arc::new(Filters::parse(&params)?);
    let after = state.read(queries::live_upper_bound).await?;
    let mut interval = tokio::time::interval(state.live_interval());
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        shutdown: state.shutdown_signal(),
        state,
        filters,
        after,
        interval,
        token_hash: session.token_hash,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        tokio::select! {
            _ = feed.interval.tick() => {}
            _ = feed.shutdown.wait_for(|stop| *stop) => return None,
        }
        let filters = Arc::clone(&feed.filters);
        let token_hash = feed.token_hash.clone();
        let after = feed.after;
        let now = aegis_core::time::now_millis();
        let cache = feed.state.clone();
        let update = feed
            .state
            .read(move |conn| {
                // A logged-out or disabled user's stream ends at the next push.
                if find_session_by_hash(conn, &token_hash, now)?.is_none() {
                    return Ok(None);
                }
                let mut filters = (*filters).clone();
                cache.default_range(conn, &mut filters)?;
                let kpis = cache.kpis(conn, &filters)?;
                let (anomalies, next) = queries::new_anomalies(conn, &filters, after)?;
                Ok(Some((kpis, anomalies, next)))
            })
            .await;
        let event = match update {
            Ok(Some((kpis, anomalies, next))) => {
                feed.after = next;
                Event::default()
                    .event("update")
                    .json_data(json!({ "kpis": kpis, "new_anomalies": anomalies }))
                    .unwrap_or_else(|_| Event::default().comment("unserialisable update"))
            }
            Ok(None) => return None,
            Err(error) => {
                tracing::warn!(%error, "live update failed");
                Event::default().comment("update failed; retrying")
            }
        };
        Some((Ok(event), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
