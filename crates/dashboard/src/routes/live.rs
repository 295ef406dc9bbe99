//! `GET /events`: the overview's live feed (server-sent events). Every couple of seconds it
//! pushes `{kpis, new_anomalies}`: the KPIs of the page's filters and the anomalies the monitor
//! has flagged since the last push (at most 20 at a time).
//!
//! The KPIs keep the date range the stream opened with, the one the page's table, charts and
//! export show: with the default range taken again at every push, the first payment of a new
//! day moved the tiles to another 30 days than the rest of the page. The new anomalies follow
//! the default range as the data grows (with the range fixed, the list would go quiet at the
//! first midnight).

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
    /// The filters as asked; the default date range is re-applied at every push so that the
    /// new anomalies follow new data.
    filters: Arc<Filters>,
    /// The filters with the date range of the stream's opening: the KPIs'.
    kpi_filters: Arc<Filters>,
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
    let filters = Filters::parse(&params)?;
    let cache = state.clone();
    let mut opening = filters.clone();
    let (after, kpi_filters) = state
        .read(move |conn| {
            cache.default_range(conn, &mut opening)?;
            Ok((queries::live_upper_bound(conn)?, opening))
        })
        .await?;
    let filters = Arc::new(filters);
    let kpi_filters = Arc::new(kpi_filters);
    let mut interval = tokio::time::interval(state.live_interval());
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let feed = Feed {
        shutdown: state.shutdown_signal(),
        state,
        filters,
        kpi_filters,
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
        let kpi_filters = Arc::clone(&feed.kpi_filters);
        let token_hash = feed.token_hash.clone();
        let after = feed.after;
        let now = aegis_core::time::now_millis();
        let cache = feed.state.clone();
        let update = feed
            .state
            .read_snapshot(move |conn| {
                // A logged-out or disabled user's stream ends at the next push.
                if find_session_by_hash(conn, &token_hash, now)?.is_none() {
                    return Ok(None);
                }
                let mut filters = (*filters).clone();
                cache.default_range(conn, &mut filters)?;
                let kpis = cache.kpis(conn, &kpi_filters)?;
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
