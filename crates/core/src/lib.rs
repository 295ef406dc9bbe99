//! Aegis core: the SQLite schema, domain types, feature engineering, and the autoencoder with its
//! artifacts — everything the five programs share. The programs talk only through
//! `transactions.db` and `modeling/`, and this crate is the one definition of both.
//!
//! # Layout
//! - [`db`]: opening the database, migrations, bulk-load helpers.
//! - [`time`]: the stored event-time format (IST text) and its arithmetic.
//! - [`domain`]: fraud types, statuses, the transaction record, rupee formatting.
//! - [`geo`]: distances and India's outline.
//! - [`features`]: the one causal feature implementation used by train and monitor.
//! - [`model`]: the burn autoencoder and the normaliser.
//! - [`artifacts`]: reading and atomically writing `modeling/`.
//! - [`store`]: reading payments back out of the database.
//! - [`telemetry`]: logging set-up.

pub mod artifacts;
pub mod db;
pub mod domain;
pub mod error;
pub mod features;
pub mod geo;
pub mod model;
pub mod store;
pub mod telemetry;
pub mod time;

pub use error::{Error, Result};

/// Default database path (`--db`, env `AEGIS_DB`).
pub const DEFAULT_DB: &str = "./transactions.db";
/// Default artifacts directory (`--modeling`, env `AEGIS_MODELING`).
pub const DEFAULT_MODELING: &str = "./modeling";
