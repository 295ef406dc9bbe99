//! The dashboard's database, on either engine: one write connection and a pool of read
//! connections (read-only files on SQLite, sessions on PostgreSQL).
//!
//! Every request runs its statements, written once for both engines ([`aegis_core::sql`]): a
//! write in one transaction (all of its statements or none); a read in one snapshot on SQLite,
//! and statement by statement on PostgreSQL, each seeing the latest commits (see
//! `aegis_core::engine::Store::read`).
//! Both are used only from blocking tasks (see [`crate::state::AppState::read`]); the mutexes
//! are `std` ones and are never held across an `.await`.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aegis_core::engine::{Store, Target};
use aegis_core::sql::{Sql, StatementCache};

use crate::changes::Changes;
use crate::error::{AppError, AppResult};

/// Read connections open at most. They stay open once opened: a request never pays for a
/// new connection after the first few (on PostgreSQL a connection costs a server process, a
/// password exchange and re-preparing every statement; opening one per request under load
/// took more time than the requests' statements). A request that finds all of them busy waits
/// for one.
const MAX_READERS: usize = 8;

/// How long a read waits for a busy pool before it fails (a long export holds a reader).
const READER_WAIT: Duration = Duration::from_secs(30);

/// A connection with its prepared statements (PostgreSQL; SQLite caches its own).
struct Handle {
    store: Store,
    cache: StatementCache,
}

impl Handle {
    fn new(store: Store) -> Handle {
        Handle {
            store,
            cache: StatementCache::default(),
        }
    }

    /// Whether the connection is gone (the server restarted or dropped it): not worth keeping.
    fn is_closed(&self) -> bool {
        match &self.store {
            Store::Sqlite(_) => false,
            Store::Postgres(client) => client.is_closed(),
        }
    }
}

/// The database behind the dashboard.
pub struct Database {
    target: Target,
    /// `None` after the connection was lost; the next write opens a new one.
    writer: Mutex<Option<Handle>>,
    readers: Mutex<Readers>,
    /// Signalled when a reader is returned or closed.
    returned: Condvar,
    /// PostgreSQL's notices of changes, once [`Database::listen_for_changes`] is called.
    changes: Option<Arc<Changes>>,
}

/// The read pool: idle connections, and how many are open (idle or lent).
#[derive(Default)]
struct Readers {
    idle: Vec<Handle>,
    open: usize,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("target", &self.target.to_string())
            .finish_non_exhaustive()
    }
}

/// Runs `work` where a blocking database client may run: on this thread, unless it drives an
/// async runtime, where PostgreSQL's blocking client (which runs a runtime of its own) must
/// not be used; then on a thread of its own, waited for. Server code calls the database from
/// blocking tasks already; this is for opening, dropping and tests.
pub fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| {
        scope
            .spawn(work)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another request must not take the dashboard down: the connection is still valid.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Database {
    /// Opens (creating and migrating if needed) the database `target` names.
    pub fn open(target: &Target) -> AppResult<Self> {
        off_runtime(|| Database::open_here(target))
    }

    fn open_here(target: &Target) -> AppResult<Self> {
        let mut writer = Handle::new(target.open()?);
        // Anomalies scored before incidents existed get theirs now (a no-op once linked).
        let linked = writer.store.transact(&mut writer.cache, true, |sql| {
            aegis_core::incidents::link_pending(sql)
        })?;
        if linked > 0 {
            tracing::info!(linked, "linked earlier alerts into incidents");
        }
        Ok(Database {
            target: target.clone(),
            writer: Mutex::new(Some(writer)),
            readers: Mutex::new(Readers::default()),
            returned: Condvar::new(),
            changes: None,
        })
    }

    /// Starts following PostgreSQL's notices of changes (nothing on SQLite): see
    /// [`crate::changes`]. For a server; a command that runs once has no use for it.
    pub fn listen_for_changes(&mut self) {
        if let Target::Postgres(url) = &self.target {
            self.changes = Some(Changes::listen(url));
        }
    }

    /// The notices of changes, when listening.
    pub fn changes(&self) -> Option<&Changes> {
        self.changes.as_deref()
    }

    /// The database this is (its display form hides a password).
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn open_reader(&self) -> AppResult<Handle> {
        Ok(Handle::new(match &self.target {
            Target::Sqlite(path) => Store::Sqlite(aegis_core::db::open_read_only(path)?),
            Target::Postgres(url) => Store::Postgres(Box::new(aegis_core::pg::connect(url)?)),
        }))
    }

    /// Runs `work`, which only reads, on a read connection (see `Store::read`). Blocking: call
    /// from a blocking task.
    pub fn read<T>(&self, work: impl FnOnce(&mut dyn Sql) -> AppResult<T>) -> AppResult<T> {
        self.lend(|handle| handle.store.transact(&mut handle.cache, false, work))
    }

    /// [`Database::read`] in one snapshot of the data (`Store::read_snapshot`): for pages
    /// whose figures come from several statements.
    pub fn read_snapshot<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> AppResult<T>,
    ) -> AppResult<T> {
        self.lend(|handle| handle.store.read_snapshot(&mut handle.cache, work))
    }

    /// Lends a reader to `work`, given back (or closed) however `work` ends.
    fn lend<T>(&self, work: impl FnOnce(&mut Handle) -> AppResult<T>) -> AppResult<T> {
        let mut lent = Lent {
            handle: Some(self.take_reader()?),
            database: self,
        };
        work(lent.handle.as_mut().expect("lent until dropped"))
    }

    /// An idle reader, a new one while fewer than [`MAX_READERS`] are open, or the first one
    /// returned.
    fn take_reader(&self) -> AppResult<Handle> {
        let mut readers = lock(&self.readers);
        let deadline = std::time::Instant::now() + READER_WAIT;
        loop {
            if let Some(handle) = readers.idle.pop() {
                return Ok(handle);
            }
            if readers.open < MAX_READERS {
                readers.open += 1;
                drop(readers);
                return self.open_reader().inspect_err(|_| {
                    lock(&self.readers).open -= 1;
                    self.returned.notify_one();
                });
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(AppError::Internal(format!(
                    "all {MAX_READERS} read connections stayed busy for {} s",
                    READER_WAIT.as_secs()
                )));
            }
            readers = self
                .returned
                .wait_timeout(readers, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `work` in one transaction on the write connection, committed if it returns `Ok`.
    /// Writes take turns. Blocking: call from a blocking task.
    pub fn write<T>(&self, work: impl FnOnce(&mut dyn Sql) -> AppResult<T>) -> AppResult<T> {
        self.write_announced(work, true)
    }

    /// [`write`](Self::write) for a write no cached answer depends on (a session's idle end):
    /// the caches of this server are kept.
    pub fn write_unannounced<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> AppResult<T>,
    ) -> AppResult<T> {
        self.write_announced(work, false)
    }

    fn write_announced<T>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> AppResult<T>,
        announce: bool,
    ) -> AppResult<T> {
        let mut writer = lock(&self.writer);
        if writer.is_none() {
            let mut store = self.target.open()?;
            // As SQLite's busy timeout: a write queued behind a long import gives up after
            // the same wait, and the client is told to retry (503), instead of every other
            // write of this server (verdicts, logins) queueing behind it without end.
            if let Store::Postgres(client) = &mut store {
                client
                    .batch_execute(&format!(
                        "SET lock_timeout = '{}s'",
                        aegis_core::db::BUSY_TIMEOUT.as_secs()
                    ))
                    .map_err(aegis_core::Error::from)?;
            }
            *writer = Some(Handle::new(store));
        }
        let handle = writer.as_mut().expect("opened above");
        let result = handle.store.transact(&mut handle.cache, true, work);
        if handle.is_closed() {
            *writer = None;
        }
        // What this server wrote counts as changed at once, before its own notice arrives: a
        // user who logs out, or records a verdict, sees the effect on the very next page.
        if let Some(changes) = self.changes.as_ref().filter(|_| announce) {
            changes.everything_changed();
        }
        result
    }
}

/// A reader lent to one request: back to the pool when dropped, or closed if the request
/// panicked (its transaction may still be open) or the server dropped the connection.
struct Lent<'a> {
    handle: Option<Handle>,
    database: &'a Database,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let handle = self.handle.take();
        let mut readers = lock(&self.database.readers);
        match handle {
            Some(handle) if !handle.is_closed() && !std::thread::panicking() => {
                readers.idle.push(handle);
            }
            closed => {
                readers.open -= 1;
                drop(readers);
                off_runtime(move || drop(closed));
            }
        }
        self.database.returned.notify_one();
    }
}

impl Drop for Database {
    /// Closes the connections where a blocking client may (a PostgreSQL client says goodbye
    /// to the server through its own runtime).
    fn drop(&mut self) {
        let writer = lock(&self.writer).take();
        let readers = std::mem::take(&mut lock(&self.readers).idle);
        off_runtime(move || drop((writer, readers)));
    }
}
