//! Shared state of the web application: the database, the model directory and settings.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::{Duration, Instant};

use aegis_core::sql::Sql;
use tokio::sync::watch;

use crate::cache::{DataVersion, QueryCache};
use crate::changes::Changes;
use crate::config::ServeConfig;
use crate::database::Database;
use crate::error::AppResult;
use crate::session::Session;

/// How long the list of schemes (a full scan) is cached.
const SCHEMES_TTL: Duration = Duration::from_secs(600);

/// Cheap to clone: everything lives behind one `Arc`.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    modeling: PathBuf,
    assets: PathBuf,
    secure_cookies: bool,
    /// How long a session lasts without use.
    idle: Duration,
    live_interval: Duration,
    shutdown_sender: watch::Sender<bool>,
    schemes: Mutex<Option<(Instant, Vec<String>)>>,
    summaries: QueryCache<crate::queries::Summary>,
    kpis: QueryCache<crate::queries::Kpis>,
    last_date: QueryCache<Option<chrono::NaiveDate>>,
    transaction_pages: QueryCache<crate::queries::TxPage>,
    /// Case queue pages: PostgreSQL only, where the notices say when an incident changed.
    queue_pages: QueryCache<crate::cases::IncidentPage>,
    /// Incident pages: PostgreSQL only, likewise.
    incidents: QueryCache<Option<crate::cases::IncidentDetail>>,
    decisions: crate::decisions::Decisions,
    /// Sessions found, by token hash, with the accounts counter they were read at. Only used
    /// while [`Changes`] listens: a logout or a disabled user elsewhere moves the counter.
    sessions: Mutex<std::collections::HashMap<String, (u64, Session)>>,
    /// Each session's idle end as this server last wrote it or is writing it, so that the
    /// requests of one page (the page, its charts' data) write it once.
    kept_alive: Mutex<std::collections::HashMap<String, i64>>,
    /// The users a case can be assigned to, with the accounts counter they were read at.
    assignable: Mutex<Option<(u64, Vec<String>)>>,
    /// Turns to check a password: one per core (see `routes::auth`).
    password_checks: Arc<tokio::sync::Semaphore>,
    /// Turns to run a CSV export (see `routes::export`).
    exports: Arc<tokio::sync::Semaphore>,
}

thread_local! {
    /// The data version of the snapshot read running on this thread ([`AppState::read_snapshot`]).
    static PINNED: std::cell::Cell<Option<DataVersion>> = const { std::cell::Cell::new(None) };
}

/// Holds a data version for the snapshot read on this thread, until dropped.
struct Pinned;

impl Pinned {
    fn set(version: DataVersion) -> Pinned {
        PINNED.set(Some(version));
        Pinned
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        PINNED.set(None);
    }
}

/// Sessions remembered at most; past it the memory starts again.
const SESSIONS_KEPT: usize = 10_000;

impl AppState {
    /// Opens the database named in `config` and builds the state.
    pub fn open(config: &ServeConfig) -> AppResult<Self> {
        let mut db = Database::open(&config.db)?;
        db.listen_for_changes();
        let (shutdown_sender, _) = watch::channel(false);
        Ok(AppState {
            inner: Arc::new(Inner {
                db,
                modeling: config.modeling.clone(),
                assets: config.assets.clone(),
                secure_cookies: config.secure_cookies,
                idle: config.idle,
                live_interval: config.live_interval,
                shutdown_sender,
                schemes: Mutex::new(None),
                summaries: QueryCache::default(),
                kpis: QueryCache::default(),
                last_date: QueryCache::default(),
                transaction_pages: QueryCache::default(),
                queue_pages: QueryCache::default(),
                incidents: QueryCache::default(),
                decisions: crate::decisions::Decisions::default(),
                sessions: Mutex::new(std::collections::HashMap::new()),
                kept_alive: Mutex::new(std::collections::HashMap::new()),
                assignable: Mutex::new(None),
                password_checks: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
                exports: Arc::new(tokio::sync::Semaphore::new(
                    crate::routes::export::EXPORTS_AT_ONCE,
                )),
            }),
        })
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
    }

    /// Turns to check a password, one per core: each check is an argon2id hash of 19 MiB.
    pub fn password_checks(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.inner.password_checks)
    }

    /// Turns to run a CSV export: each holds a read connection while its client downloads.
    pub fn exports(&self) -> Arc<tokio::sync::Semaphore> {
        Arc::clone(&self.inner.exports)
    }

    pub fn modeling(&self) -> &Path {
        &self.inner.modeling
    }

    pub fn assets(&self) -> &Path {
        &self.inner.assets
    }

    /// The watcher behind `?wait=` decisions of the payments API.
    pub fn decisions(&self) -> &crate::decisions::Decisions {
        &self.inner.decisions
    }

    pub fn secure_cookies(&self) -> bool {
        self.inner.secure_cookies
    }

    /// How long a session lasts without use, in milliseconds.
    pub fn idle_millis(&self) -> i64 {
        i64::try_from(self.inner.idle.as_millis()).unwrap_or(i64::MAX / 4)
    }

    /// Moves `session`'s idle end forward for a use at `now_millis`, when it moves by at least
    /// [`crate::session::keep_alive_step`] from what this server knows: once per step and
    /// session, however many requests a page makes. The write runs in the background: a page
    /// does not wait for it, and a writer that is busy (an import) fails no page. It announces
    /// no change, so this server's caches stay (on PostgreSQL the sessions' notice ignores
    /// idle ends too). Sessions this server remembers are read again once past the end they
    /// hold, which only ever moves forward.
    pub fn keep_alive(&self, session: &Session, now_millis: i64) {
        let idle = self.idle_millis();
        let step = crate::session::keep_alive_step(idle);
        let wanted = (now_millis + idle).min(session.expires_at);
        let known = {
            let mut kept = self
                .inner
                .kept_alive
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let known = kept
                .get(&session.token_hash)
                .copied()
                .unwrap_or(0)
                .max(session.idle_until);
            if wanted - known < step {
                return;
            }
            if kept.len() >= SESSIONS_KEPT {
                kept.retain(|_, until| *until > now_millis);
                if kept.len() >= SESSIONS_KEPT {
                    kept.clear();
                }
            }
            kept.insert(session.token_hash.clone(), wanted);
            known
        };
        let state = self.clone();
        let token_hash = session.token_hash.clone();
        tokio::task::spawn_blocking(move || {
            let written = state.inner.db.write_unannounced(|sql| {
                crate::session::keep_alive(sql, &token_hash, wanted, step, now_millis)
            });
            if let Err(error) = written {
                tracing::warn!(%error, "could not move a session's idle end forward: the next use tries again");
                let mut kept = state
                    .inner
                    .kept_alive
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                kept.insert(token_hash, known);
            }
        });
    }

    /// How often the live stream (`/events`) pushes an update.
    pub fn live_interval(&self) -> Duration {
        self.inner.live_interval
    }

    /// Tells long-lived responses (the live stream) to finish, so graceful shutdown completes.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown_sender.send_replace(true);
    }

    /// Resolves when [`begin_shutdown`](Self::begin_shutdown) has been called.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown_sender.subscribe()
    }

    /// Runs `work` in one read-only transaction, in a blocking task.
    pub async fn read<T, F>(&self, work: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> AppResult<T> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.inner.db.read(work)).await?
    }

    /// Runs `work` in one snapshot of the data, in a blocking task: for pages whose figures
    /// come from several statements, which must agree.
    pub async fn read_snapshot<T, F>(&self, work: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> AppResult<T> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            state.inner.db.read_snapshot(|sql| {
                // The data version is taken once, first: before the snapshot's first statement
                // on PostgreSQL (whose notices are counted in memory), so whatever the snapshot
                // holds is at least that version. Read again later, a change committed in
                // between would file answers from the older snapshot under the newer version,
                // stale until the next change.
                let version = state.data_version(sql)?;
                let _pinned = Pinned::set(version);
                work(sql)
            })
        })
        .await?
    }

    /// Runs `work` in one transaction on the write connection, in a blocking task.
    pub async fn write<T, F>(&self, work: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> AppResult<T> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.inner.db.write(work)).await?
    }

    /// The data version: PostgreSQL's notices counted while they are heard (no round trip),
    /// otherwise read from the database. Blocking.
    pub fn data_version(&self, sql: &mut dyn Sql) -> AppResult<DataVersion> {
        if let Some(version) = PINNED.get() {
            return Ok(version);
        }
        match self.inner.db.changes().and_then(Changes::data) {
            Some(notices) => Ok(DataVersion::Notified(notices)),
            None => crate::cache::data_version(sql),
        }
    }

    /// The counter of users and sessions, while PostgreSQL's notices are heard.
    fn accounts_counter(&self) -> Option<u64> {
        self.inner.db.changes().and_then(Changes::accounts)
    }

    /// The session of `token_hash` as last read, if nothing about users or sessions changed
    /// since and it has not expired at `now_millis`.
    pub fn remembered_session(&self, token_hash: &str, now_millis: i64) -> Option<Session> {
        let counter = self.accounts_counter()?;
        let sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (read_at, session) = sessions.get(token_hash)?;
        (*read_at == counter && session.expires_at > now_millis && session.idle_until > now_millis)
            .then(|| session.clone())
    }

    /// Finds the live session of `token_hash` (see [`crate::session::find_session_by_hash`]),
    /// remembered while PostgreSQL's notices are heard. Blocking.
    pub fn find_session(
        &self,
        sql: &mut dyn Sql,
        token_hash: &str,
        now_millis: i64,
    ) -> AppResult<Option<Session>> {
        // The counter before the read: a change during it makes the entry stale at once.
        let counter = self.accounts_counter();
        let found = crate::session::find_session_by_hash(sql, token_hash, now_millis)?;
        if let (Some(counter), Some(session)) = (counter, &found) {
            let mut sessions = self
                .inner
                .sessions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if sessions.len() >= SESSIONS_KEPT {
                sessions.clear();
            }
            sessions.insert(token_hash.to_string(), (counter, session.clone()));
        }
        Ok(found)
    }

    /// The users a case can be assigned to ([`crate::cases::assignable_users`]), remembered
    /// while PostgreSQL's notices are heard. Blocking.
    pub fn assignable_users(&self, sql: &mut dyn Sql) -> AppResult<Vec<String>> {
        let Some(counter) = self.accounts_counter() else {
            return crate::cases::assignable_users(sql);
        };
        if let Some((read_at, users)) = self
            .inner
            .assignable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            && *read_at == counter
        {
            return Ok(users.clone());
        }
        let users = crate::cases::assignable_users(sql)?;
        *self
            .inner
            .assignable
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((counter, users.clone()));
        Ok(users)
    }

    /// The summary aggregates for a filter, computed once per filter and data version.
    /// Blocking.
    pub fn summary(
        &self,
        sql: &mut dyn Sql,
        filters: &crate::filters::Filters,
    ) -> AppResult<crate::queries::Summary> {
        let version = self.data_version(sql)?;
        self.inner
            .summaries
            // The answer says whether its range was the default one: part of the key.
            .get_or_compute(
                format!("{}|{}", filters.query_string(), filters.default_range),
                version,
                || crate::queries::summary(sql, filters),
            )
    }

    /// Applies the default date range to `filters` ([`crate::filters::Filters::apply_default_range`]),
    /// with the newest date read once per data version. Blocking.
    pub fn default_range(
        &self,
        sql: &mut dyn Sql,
        filters: &mut crate::filters::Filters,
    ) -> AppResult<()> {
        filters.apply_default_range(|| {
            let version = self.data_version(sql)?;
            self.inner
                .last_date
                .get_or_compute(String::new(), version, || crate::filters::last_date(sql))
        })
    }

    /// The KPIs for a filter, computed once per filter and data version. Blocking.
    pub fn kpis(
        &self,
        sql: &mut dyn Sql,
        filters: &crate::filters::Filters,
    ) -> AppResult<crate::queries::Kpis> {
        let version = self.data_version(sql)?;
        self.inner
            .kpis
            .get_or_compute(filters.query_string(), version, || {
                crate::queries::kpis(sql, filters)
            })
    }

    /// A page of the transaction table ([`crate::queries::transactions_page`]), computed once
    /// per filter, order, page and data version: the newest payments every auditor's overview
    /// opens with cost one query per change, not one per auditor. Blocking.
    pub fn transactions_page(
        &self,
        sql: &mut dyn Sql,
        filters: &crate::filters::Filters,
        sort: crate::filters::Sort,
        page: i64,
        total: i64,
    ) -> AppResult<crate::queries::TxPage> {
        let version = self.data_version(sql)?;
        let key = format!(
            "{}|{}|{}|{page}",
            filters.query_string(),
            sort.column.param(),
            sort.dir_param()
        );
        self.inner
            .transaction_pages
            .get_or_compute(key, version, || {
                crate::queries::transactions_page(sql, filters, sort, page, Some(total))
            })
    }

    /// A page of the case queue for user `me` ([`crate::cases::incident_queue`]). On
    /// PostgreSQL it is remembered until the notices say the data changed (an incident, a
    /// verdict, the mark); on SQLite, which cannot tell when another process assigned an
    /// incident, it is read each time. Blocking.
    pub fn incident_queue(
        &self,
        sql: &mut dyn Sql,
        filters: &crate::cases::QueueFilters,
        me: i64,
        page: i64,
    ) -> AppResult<crate::cases::IncidentPage> {
        let Some(notices) = self.inner.db.changes().and_then(Changes::data) else {
            return crate::cases::incident_queue(sql, filters, me, page);
        };
        let key = format!("{}|{me}|{page}", filters.query_string());
        self.inner
            .queue_pages
            .get_or_compute(key, DataVersion::Notified(notices), || {
                crate::cases::incident_queue(sql, filters, me, page)
            })
    }

    /// Incident `id` ([`crate::cases::incident_detail`]), remembered on PostgreSQL until the
    /// notices say the data, a user or a session changed (as [`Self::incident_queue`]).
    /// Blocking.
    pub fn incident_detail(
        &self,
        sql: &mut dyn Sql,
        id: i64,
    ) -> AppResult<Option<crate::cases::IncidentDetail>> {
        let changes = self.inner.db.changes();
        let (Some(data), Some(accounts)) = (
            changes.and_then(Changes::data),
            changes.and_then(Changes::accounts),
        ) else {
            return crate::cases::incident_detail(sql, id);
        };
        self.inner.incidents.get_or_compute(
            format!("{id}|{accounts}"),
            DataVersion::Notified(data),
            || crate::cases::incident_detail(sql, id),
        )
    }

    /// The distinct schemes in `transactions` (for the filter form), cached for ten minutes
    /// because reading them scans the payments. Blocking. The lock is held while they are
    /// read: requests arriving meanwhile wait for that answer instead of each scanning (eight
    /// clients opening a freshly started dashboard on PostgreSQL scanned 1.2M payments at
    /// once, 0.87 s each).
    pub fn schemes(&self, sql: &mut dyn Sql) -> AppResult<Vec<String>> {
        let mut cached = self
            .inner
            .schemes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, schemes)) = cached.as_ref()
            && at.elapsed() < SCHEMES_TTL
            && !schemes.is_empty()
        {
            return Ok(schemes.clone());
        }
        let schemes = crate::queries::distinct_schemes(sql)?;
        *cached = Some((Instant::now(), schemes.clone()));
        Ok(schemes)
    }
}
