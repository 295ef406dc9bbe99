//! The one error type of the core library: each variant is something a caller can act on.

use std::path::PathBuf;

/// Everything that can go wrong in core, worded so that the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    #[error("PostgreSQL error: {}", crate::pg::describe(.0))]
    Postgres(#[from] postgres::Error),

    /// The database server cannot be reached now (down, restarting, out of connections): the
    /// same call later may succeed. The text names the server and what to check.
    #[error("{0}")]
    Unreachable(String),

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "database {path} has schema version {found}, newer than this build understands ({supported}): \
         upgrade Aegis or point --db at another database"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    #[error(
        "no model in {dir}: run `cargo run -p train` first (it writes model_config.json there)"
    )]
    ModelMissing { dir: PathBuf },

    #[error(
        "model artifacts in {dir} are unreadable ({detail}): run `cargo run -p train` to write a fresh model"
    )]
    ModelCorrupt { dir: PathBuf, detail: String },

    #[error(
        "model in {dir} was trained on feature set {model_features} but this build computes {build_features}: \
         run `cargo run -p train` to retrain"
    )]
    FeatureMismatch {
        dir: PathBuf,
        model_features: String,
        build_features: String,
    },

    #[error("bad timestamp {0:?}: expected 'YYYY-MM-DD HH:MM:SS' (IST) or RFC 3339")]
    BadTimestamp(String),

    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the database server went away or cannot be reached now (restarted, the network
    /// dropped): a new connection later may go on where this one stopped.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Unreachable(_) => true,
            Error::Postgres(error) => crate::pg::connection_lost(error),
            _ => false,
        }
    }

    /// Whether another writer held the database longer than this one would wait (SQLite's
    /// busy timeout, PostgreSQL's `lock_timeout`): nothing was written, and the same write
    /// retried later goes through.
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Sqlite(error) => sqlite_busy(error),
            Error::Postgres(error) => {
                error.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE)
            }
            _ => false,
        }
    }
}

/// Whether SQLite refused for another writer's lock ([`Error::is_busy`]).
pub fn sqlite_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Result alias for core.
pub type Result<T, E = Error> = std::result::Result<T, E>;
