//! Shared state of the web application: the database, the model directory and settings.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::{Duration, Instant};

use aegis_core::sql::Sql;
use tokio::sync::watch;

use crate::cache::{QueryCache, data_version};
use crate::config::ServeConfig;
use crate::database::Database;
use crate::error::AppResult;

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
    live_interval: Duration,
    shutdown_sender: watch::Sender<bool>,
    schemes: Mutex<Option<(Instant, Vec<String>)>>,
    summaries: QueryCache<crate::queries::Summary>,
    kpis: QueryCache<crate::queries::Kpis>,
    last_date: QueryCache<Option<chrono::NaiveDate>>,
    decisions: crate::decisions::Decisions,
}

impl AppState {
    /// Opens the database named in `config` and builds the state.
    pub fn open(config: &ServeConfig) -> AppResult<Self> {
        let db = Database::open(&config.db)?;
        let (shutdown_sender, _) = watch::channel(false);
        Ok(AppState {
            inner: Arc::new(Inner {
                db,
                modeling: config.modeling.clone(),
                assets: config.assets.clone(),
                secure_cookies: config.secure_cookies,
                live_interval: config.live_interval,
                shutdown_sender,
                schemes: Mutex::new(None),
                summaries: QueryCache::default(),
                kpis: QueryCache::default(),
                last_date: QueryCache::default(),
                decisions: crate::decisions::Decisions::default(),
            }),
        })
    }

    pub fn db(&self) -> &Database {
        &self.inner.db
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

    /// Runs `work` in one transaction on the write connection, in a blocking task.
    pub async fn write<T, F>(&self, work: F) -> AppResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn Sql) -> AppResult<T> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || state.inner.db.write(work)).await?
    }

    /// The summary aggregates for a filter, computed once per filter and data version.
    /// Blocking.
    pub fn summary(
        &self,
        sql: &mut dyn Sql,
        filters: &crate::filters::Filters,
    ) -> AppResult<crate::queries::Summary> {
        let version = data_version(sql)?;
        self.inner
            .summaries
            .get_or_compute(filters.query_string(), version, || {
                crate::queries::summary(sql, filters)
            })
    }

    /// Applies the default date range to `filters` ([`crate::filters::Filters::apply_default_range`]),
    /// with the newest date read once per data version. Blocking.
    pub fn default_range(
        &self,
        sql: &mut dyn Sql,
        filters: &mut crate::filters::Filters,
    ) -> AppResult<()> {
        filters.apply_default_range(|| {
            let version = data_version(sql)?;
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
        let version = data_version(sql)?;
        self.inner
            .kpis
            .get_or_compute(filters.query_string(), version, || {
                crate::queries::kpis(sql, filters)
            })
    }

    /// The distinct schemes in `transactions` (for the filter form), cached for ten minutes
    /// because there is no index on `scheme`. Blocking.
    pub fn schemes(&self, sql: &mut dyn Sql) -> AppResult<Vec<String>> {
        {
            let cached = self
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
        }
        let schemes = crate::queries::distinct_schemes(sql)?;
        *self
            .inner
            .schemes
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), schemes.clone()));
        Ok(schemes)
    }
}
