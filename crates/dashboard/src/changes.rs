//! What changed in the database, as PostgreSQL tells it: a listening connection of its own
//! turns the server's notices (`aegis_payments`, `aegis_changes`: see
//! `migrations/postgres/0010_notices_and_anomalies.sql`) into two counters, one for the data the
//! cached aggregates count and one for users and sessions. A request that finds a counter
//! where it left an answer reuses the answer without a round trip to the server.
//!
//! The counters are only trusted while the connection listens. Before it does, after it is
//! lost, and on SQLite (which has no notices between processes), [`Changes::data`] and
//! [`Changes::accounts`] answer `None` and callers ask the database as before. Each
//! (re)connection moves both counters, so nothing cached before it is reused after.
//!
//! A notice arrives a moment after its commit: a request in that moment may be answered from
//! before the change, as if it had come a moment earlier.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use aegis_core::pg;

/// How often the listener checks that the dashboard still runs, and how long it waits before
/// connecting again after losing the server.
const TICK: Duration = Duration::from_secs(1);

/// The two counters, and whether they can be trusted.
#[derive(Debug, Default)]
pub struct Changes {
    listening: AtomicBool,
    data: AtomicU64,
    accounts: AtomicU64,
}

impl Changes {
    /// Starts listening to the PostgreSQL database at `url` on a thread of its own, which ends
    /// soon after the returned value is dropped.
    pub fn listen(url: &str) -> Arc<Changes> {
        let changes = Arc::new(Changes::default());
        let watched = Arc::downgrade(&changes);
        let url = url.to_string();
        let spawned = std::thread::Builder::new()
            .name("pg-notices".into())
            .spawn(move || listen(&url, &watched));
        if let Err(error) = spawned {
            tracing::warn!(%error, "could not start listening for changes; asking the database at each request");
        }
        changes
    }

    /// The data's counter: it moves when payments are added, the monitor's mark moves, a
    /// verdict is written or an incident changes. `None` when not listening.
    pub fn data(&self) -> Option<u64> {
        self.counter(&self.data)
    }

    /// The counter of users and sessions. `None` when not listening.
    pub fn accounts(&self) -> Option<u64> {
        self.counter(&self.accounts)
    }

    fn counter(&self, counter: &AtomicU64) -> Option<u64> {
        // Read the counter first: if listening stops in between, the answer is refused.
        let value = counter.load(Ordering::SeqCst);
        self.listening.load(Ordering::SeqCst).then_some(value)
    }

    /// Moves both counters: whatever was cached may be out of date.
    pub fn everything_changed(&self) {
        self.data.fetch_add(1, Ordering::SeqCst);
        self.accounts.fetch_add(1, Ordering::SeqCst);
    }

    fn notice(&self, channel: &str, payload: &str) {
        if channel == pg::PAYMENTS_CHANNEL || payload == pg::CHANGED_DATA {
            self.data.fetch_add(1, Ordering::SeqCst);
        } else if payload == pg::CHANGED_ACCOUNTS {
            self.accounts.fetch_add(1, Ordering::SeqCst);
        } else {
            self.everything_changed();
        }
    }
}

/// The listener's loop: connect, LISTEN, count notices; on a lost connection stop trusting the
/// counters and connect again. Returns once the dashboard has dropped its [`Changes`].
fn listen(url: &str, watched: &Weak<Changes>) {
    let mut reported = false;
    loop {
        let Some(changes) = watched.upgrade() else {
            return;
        };
        let error = match connect_and_listen(url) {
            Ok(mut client) => {
                // Anything may have changed while nobody listened.
                changes.everything_changed();
                changes.listening.store(true, Ordering::SeqCst);
                if reported {
                    tracing::info!("listening for changes again");
                    reported = false;
                }
                drop(changes);
                let error = follow(&mut client, watched);
                if let Some(changes) = watched.upgrade() {
                    changes.listening.store(false, Ordering::SeqCst);
                    changes.everything_changed();
                }
                match error {
                    Some(error) => error,
                    None => return,
                }
            }
            Err(error) => error,
        };
        if !reported {
            tracing::warn!(%error, "not listening for changes; asking the database at each request until the connection is back");
            reported = true;
        }
        std::thread::sleep(TICK);
    }
}

/// A connection listening on both channels, or why there is none.
fn connect_and_listen(url: &str) -> Result<postgres::Client, String> {
    let mut client = pg::connect(url).map_err(|error| error.to_string())?;
    client
        .batch_execute(&format!(
            "LISTEN {}; LISTEN {}",
            pg::PAYMENTS_CHANNEL,
            pg::CHANGES_CHANNEL
        ))
        .map_err(|error| error.to_string())?;
    Ok(client)
}

/// Counts notices until the connection fails (the error) or the dashboard is gone (`None`).
fn follow(client: &mut postgres::Client, watched: &Weak<Changes>) -> Option<String> {
    use postgres::fallible_iterator::FallibleIterator;
    loop {
        {
            let mut notices = client.notifications();
            let mut waiting = notices.timeout_iter(TICK);
            loop {
                match waiting.next() {
                    Ok(Some(notice)) => match watched.upgrade() {
                        Some(changes) => changes.notice(notice.channel(), notice.payload()),
                        None => return None,
                    },
                    Ok(None) => break,
                    Err(error) => return Some(error.to_string()),
                }
            }
        }
        if watched.strong_count() == 0 {
            return None;
        }
        if client.is_closed() {
            return Some("the server closed the connection".to_string());
        }
    }
}
