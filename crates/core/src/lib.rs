//! Aegis core: the SQLite schema, domain types, feature engineering, and the model's artifacts —
//! everything the five programs share. It does not link burn. The programs talk only through
//! `transactions.db` and `modeling/`, and this crate is the one definition of both.
//!
//! # Layout
//! - [`engine`]: which engine `--db` names (an SQLite path or a PostgreSQL URL), and the bulk
//!   loader both engines implement.
//! - [`db`]: SQLite: opening the database, migrations, bulk-load helpers.
//! - [`pg`]: PostgreSQL: connecting, migrations, monthly partitions, binary COPY.
//! - [`sql`]: statements written once for both engines, and the values they pass.
//! - [`time`]: the stored event-time format (IST text) and its arithmetic.
//! - [`domain`]: fraud types, statuses, the transaction record, rupee formatting.
//! - [`geo`]: distances and India's outline.
//! - [`features`]: the one causal feature implementation used by train and monitor.
//! - [`model`]: the model as plain data: shape, normaliser, score, backend name (the burn
//!   network is in the `aegis-model` crate, linked only by train and monitor).
//! - [`artifacts`]: reading, checking and atomically writing `modeling/`.
//! - [`control`]: the control sample: unflagged payments drawn at random for review, and what
//!   their verdicts say the detector misses.
//! - [`metrics`]: `metrics.json`, written by train and read by the dashboard.
//! - [`reasons`]: the `reasons` JSON, written by monitor and read by the dashboard.
//! - [`store`]: reading payments back out of the database.
//! - [`ingest`]: the one validation of an incoming payment (CSV export or API).
//! - [`tabular`]: what every CSV import shares: header matching, bad-row reports.
//! - [`telemetry`]: logging set-up.
//! - [`cli`]: the `--db` and `--modeling` arguments every program shares.

pub mod artifacts;
pub mod cli;
pub mod control;
pub mod db;
pub mod domain;
pub mod drift;
pub mod engine;
pub mod error;
pub mod evidence_check;
pub mod features;
pub mod feedback;
pub mod geo;
pub mod incidents;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod pg;
pub mod reasons;
pub mod sql;
pub mod store;
pub mod tabular;
pub mod telemetry;
pub mod time;

pub use error::{Error, Result};

/// Default database path (`--db`, env `AEGIS_DB`).
pub const DEFAULT_DB: &str = "./transactions.db";
/// Default artifacts directory (`--modeling`, env `AEGIS_MODELING`).
pub const DEFAULT_MODELING: &str = "./modeling";
