//! Typed settings of the web server, built from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The top-level `assets/` directory of the workspace this binary was built from.
pub const DEFAULT_ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets");

/// Everything `dashboard serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub db: aegis_core::engine::Target,
    pub modeling: PathBuf,
    pub assets: PathBuf,
    pub addr: SocketAddr,
    /// Mark the session cookie `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// How long a session lasts without use.
    pub idle: Duration,
    /// How often `/events` pushes an update.
    pub live_interval: Duration,
}

impl ServeConfig {
    /// Settings for a database and model directory, with every other value at its default.
    pub fn new(db: impl Into<aegis_core::engine::Target>, modeling: impl Into<PathBuf>) -> Self {
        ServeConfig {
            db: db.into(),
            modeling: modeling.into(),
            assets: PathBuf::from(DEFAULT_ASSETS),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secure_cookies: false,
            idle: crate::session::DEFAULT_IDLE,
            live_interval: Duration::from_secs(2),
        }
    }
}
