//! SQLite access for the dashboard: one write connection and a small pool of read-only ones.
//!
//! Both are used only from blocking tasks (see [`crate::state::AppState::read`]); the mutexes
//! are `std` ones and are never held across an `.await`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::Connection;

use crate::error::AppResult;

/// Idle read-only connections kept for reuse; more are opened under load and dropped after.
const MAX_IDLE_READERS: usize = 4;

/// The database behind the dashboard.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in another request must not take the dashboard down: the connection is still valid.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Database {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub fn open(path: &Path) -> AppResult<Self> {
        let mut writer = aegis_core::db::open(path)?;
        // Anomalies scored before incidents existed get theirs now (a no-op once linked).
        let linked = aegis_core::incidents::link_pending(&mut writer)?;
        if linked > 0 {
            tracing::info!(linked, "linked earlier alerts into incidents");
        }
        Ok(Database {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a read-only connection. Blocking: call from a blocking task.
    pub fn read<T>(&self, work: impl FnOnce(&Connection) -> AppResult<T>) -> AppResult<T> {
        let idle = lock(&self.readers).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => aegis_core::db::open_read_only(&self.path)?,
        };
        let result = work(&connection);
        let mut readers = lock(&self.readers);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(connection);
        }
        result
    }

    /// Runs `work` on the write connection. Blocking: call from a blocking task.
    pub fn write<T>(&self, work: impl FnOnce(&mut Connection) -> AppResult<T>) -> AppResult<T> {
        let mut connection = lock(&self.writer);
        work(&mut connection)
    }
}
