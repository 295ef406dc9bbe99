//! One monitor per database: an exclusive OS lock on `<db>.monitor.lock`. The OS drops it when
//! the process dies, even by `kill -9`, so a restart never waits for a stale lease.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Held for as long as the monitor runs.
#[derive(Debug)]
pub struct MonitorLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file next to a database.
pub use aegis_core::engine::monitor_lock_path as lock_path;

impl MonitorLock {
    /// Takes the lock or explains who holds it.
    pub fn acquire(db: &Path) -> anyhow::Result<MonitorLock> {
        let path = lock_path(db);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the monitor lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                bail!(
                    "another monitor (pid {}) is already scoring {}: stop it first — two monitors would score rows twice",
                    holder.trim(),
                    db.display()
                );
            }
            Err(TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(MonitorLock { _file: file, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_monitor_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let first = MonitorLock::acquire(&db).unwrap();
        let message = MonitorLock::acquire(&db).unwrap_err().to_string();
        assert!(message.contains("another monitor"), "{message}");
        assert!(
            message.contains(&std::process::id().to_string()),
            "{message}"
        );
        drop(first);
        MonitorLock::acquire(&db).unwrap();
    }

    /// Two names of one file are one database, and one lock.
    #[test]
    fn a_monitor_started_through_a_link_is_refused_too() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        std::fs::write(&db, b"").unwrap();
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&db, &link).unwrap();
        let _first = MonitorLock::acquire(&db).unwrap();
        let message = MonitorLock::acquire(&link).unwrap_err().to_string();
        assert!(message.contains("another monitor"), "{message}");
    }
}
