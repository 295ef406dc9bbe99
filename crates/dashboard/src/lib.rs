//! Aegis dashboard: the web application auditors use to investigate flagged welfare payments.
//! It reads `transactions.db` and `modeling/`, writes users, sessions, verdicts, the audit log,
//! API keys and the payments machine clients send (`/api/v1`), and never scores a transaction
//! itself.
//!
//! # Layout
//! - [`cli`]: the command line (`serve`, `user add|list|disable`).
//! - [`config`], [`state`], [`database`]: settings, shared state, SQLite connections.
//! - [`server`]: the router, security headers, graceful shutdown.
//! - [`routes`]: handlers — pages, JSON API, CSV export, live stream, login, admin.
//! - [`session`], [`password`], [`users`], [`audit`]: authentication, CSRF, roles, audit log.
//! - [`filters`], [`queries`], [`alerts`], [`model_info`]: what the pages show, in SQL.
//! - [`cache`]: aggregate answers reused while the data is unchanged.
//! - [`apikeys`], [`decisions`]: the machine API's keys and its `?wait=` decisions (handlers
//!   in [`routes::v1`]).
//! - [`verdict_import`]: `dashboard verdicts import`, past verdicts from a CSV record.
//! - [`templates`], [`escape`], [`views`]: askama view models, HTML escaping, formatting.

pub mod alerts;
pub mod apikeys;
pub mod audit;
pub mod cache;
pub mod cases;
pub mod changes;
pub mod cli;
pub mod config;
pub mod csrf;
pub mod database;
pub mod decisions;
pub mod drift;
pub mod error;
pub mod escape;
pub mod filters;
pub mod model_info;
pub mod password;
pub mod queries;
pub mod routes;
pub mod server;
pub mod session;
pub mod simulated_auditors;
pub mod state;
pub mod templates;
pub mod users;
pub mod verdict_import;
pub mod views;

pub use config::ServeConfig;
pub use error::{AppError, AppResult};
pub use server::{router, serve};
pub use state::AppState;
