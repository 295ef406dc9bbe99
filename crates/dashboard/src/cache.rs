//! A small cache of aggregate answers, keyed by the filter and valid while the data is
//! unchanged: many auditors looking at the same overview cost one aggregation, not one each.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aegis_core::sql::{Row, Sql};

use crate::error::AppResult;

/// What identifies the state of the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataVersion {
    /// Read from the database ([`Read`]).
    Read(Read),
    /// PostgreSQL's notices of these changes, counted ([`crate::changes::Changes::data`]).
    Notified(u64),
}

/// The state of the data as read from the database: what moves when what the cached answers
/// count changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Read {
    /// The newest payment: payments were added.
    pub newest: i64,
    /// The monitor's mark: payments were scored.
    pub mark: i64,
    /// The newest verdict (the confirmed-fraud amount counts verdicts).
    pub verdict: i64,
    /// Deletions of payments (migration 0015): payments were taken out.
    pub deletions: i64,
}

/// Entries kept at most; past it, the least recently used is dropped (so the default overview
/// every auditor opens stays cached while others explore many filters).
const CAPACITY: usize = 64;

/// The current data version read from the database (four indexed lookups, in one statement).
pub fn data_version(sql: &mut dyn Sql) -> AppResult<DataVersion> {
    // One statement (a round trip to a server counts). The payments themselves, not
    // PostgreSQL's view with the scores: its join keeps the planner from reading the max off
    // the index. Not PostgreSQL's commit counter (the next transaction id): autovacuum's
    // ANALYZE after a load moves it too, and every cached aggregate was thrown away every few
    // seconds (the summary API fell from 667 to 318 req/s).
    let version = sql.row(
        &format!(
            "SELECT (SELECT coalesce(max(transaction_id), 0) FROM {}), \
             (SELECT coalesce(max(high_water_mark), 0) FROM monitor_state), \
             (SELECT coalesce(max(verdict_id), 0) FROM verdicts), \
             (SELECT coalesce(max(deleted), 0) FROM payment_deletions)",
            sql.engine().payments_table()
        ),
        &[],
        |row| {
            Ok(DataVersion::Read(Read {
                newest: row.at(0)?,
                mark: row.at(1)?,
                verdict: row.at(2)?,
                deletions: row.at(3)?,
            }))
        },
    )?;
    Ok(version.unwrap_or(DataVersion::Read(Read::default())))
}

/// Answers by key, each remembered with the data version it was computed at. Requests for an
/// answer being computed at the same version wait for it instead of computing it again: under
/// a live feed the version moves many times a second, and every auditor's refresh would
/// otherwise recompute the same figures at once.
#[derive(Debug)]
pub struct QueryCache<T> {
    state: Mutex<CacheState<T>>,
    /// Signalled when a computation ends.
    computed: std::sync::Condvar,
    clock: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct CacheState<T> {
    entries: HashMap<String, (DataVersion, u64, T)>,
    /// Keys being computed, with the version they are computed at.
    computing: HashMap<String, DataVersion>,
}

impl<T> Default for QueryCache<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(CacheState {
                entries: HashMap::new(),
                computing: HashMap::new(),
            }),
            computed: std::sync::Condvar::new(),
            clock: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// Longest wait for another request's computation before computing it here.
const WAIT_FOR_OTHERS: std::time::Duration = std::time::Duration::from_secs(30);

/// Ends a computation's claim on its key, however the computation ends (an error, a panic).
struct Claim<'a, T> {
    cache: &'a QueryCache<T>,
    key: &'a str,
    version: DataVersion,
}

impl<T> Drop for Claim<'_, T> {
    fn drop(&mut self) {
        let mut state = self
            .cache
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if state.computing.get(self.key) == Some(&self.version) {
            state.computing.remove(self.key);
        }
        drop(state);
        self.cache.computed.notify_all();
    }
}

impl<T: Clone> QueryCache<T> {
    /// The cached answer for `key` at `version`, or `compute`'s, remembered.
    pub fn get_or_compute(
        &self,
        key: String,
        version: DataVersion,
        compute: impl FnOnce() -> AppResult<T>,
    ) -> AppResult<T> {
        let tick = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let deadline = std::time::Instant::now() + WAIT_FOR_OTHERS;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some((cached_version, used, value)) = state.entries.get_mut(&key)
                && *cached_version == version
            {
                *used = tick;
                return Ok(value.clone());
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if state.computing.get(&key) != Some(&version) || left.is_zero() {
                break;
            }
            state = self
                .computed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.computing.insert(key.clone(), version);
        drop(state);
        let claim = Claim {
            cache: self,
            key: &key,
            version,
        };
        let value = compute()?;
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.entries.len() >= CAPACITY
            && !state.entries.contains_key(&key)
            && let Some(oldest) = state
                .entries
                .iter()
                .min_by_key(|(_, (_, used, _))| *used)
                .map(|(k, _)| k.clone())
        {
            state.entries.remove(&oldest);
        }
        state
            .entries
            .insert(key.clone(), (version, tick, value.clone()));
        drop(state);
        drop(claim);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_reused_until_the_data_changes() {
        let cache = QueryCache::default();
        let mut computed = 0;
        let mut ask = |version| {
            cache
                .get_or_compute("q".into(), version, || {
                    computed += 1;
                    Ok(computed)
                })
                .unwrap()
        };
        assert_eq!(ask(read(1, 1, 0, 0)), 1);
        assert_eq!(ask(read(1, 1, 0, 0)), 1);
        assert_eq!(ask(read(2, 1, 0, 0)), 2, "a new row invalidates");
        assert_eq!(ask(read(2, 2, 0, 0)), 3, "newly scored rows invalidate");
        assert_eq!(ask(read(2, 2, 1, 0)), 4, "a new verdict invalidates");
        assert_eq!(ask(read(2, 2, 1, 1)), 5, "deleted payments invalidate");
    }

    fn read(newest: i64, mark: i64, verdict: i64, deletions: i64) -> DataVersion {
        DataVersion::Read(Read {
            newest,
            mark,
            verdict,
            deletions,
        })
    }

    #[test]
    fn requests_for_an_answer_being_computed_wait_for_it_and_an_error_is_not_shared() {
        let cache = QueryCache::default();
        let computed = std::sync::atomic::AtomicU32::new(0);
        let started = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    started.wait();
                    let answer = cache.get_or_compute("q".into(), DataVersion::Notified(1), || {
                        computed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        Ok(42)
                    });
                    assert_eq!(answer.unwrap(), 42);
                });
            }
        });
        assert_eq!(computed.into_inner(), 1, "four requests, one computation");
        let failed = cache.get_or_compute("e".into(), DataVersion::Notified(1), || {
            Err::<i32, _>(crate::error::AppError::Internal("down".into()))
        });
        assert!(failed.is_err());
        let retried = cache.get_or_compute("e".into(), DataVersion::Notified(1), || Ok(7));
        assert_eq!(
            retried.unwrap(),
            7,
            "a failed computation leaves nothing behind"
        );
    }

    #[test]
    fn a_full_cache_drops_the_least_recently_used_answer() {
        let cache = QueryCache::default();
        let computed = std::cell::Cell::new(0);
        let ask = |key: &str| {
            cache
                .get_or_compute(key.into(), read(1, 1, 0, 0), || {
                    computed.set(computed.get() + 1);
                    Ok(())
                })
                .unwrap()
        };
        ask("overview");
        for other in 1..CAPACITY {
            ask(&format!("filter {other}"));
        }
        ask("overview"); // used again: now the most recent
        ask("one filter too many");
        let before = computed.get();
        ask("overview");
        assert_eq!(computed.get(), before, "the overview was kept");
        ask("filter 1");
        assert_eq!(
            computed.get(),
            before + 1,
            "the least recently used filter was dropped"
        );
    }
}
