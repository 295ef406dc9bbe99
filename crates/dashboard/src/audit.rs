//! The audit log: who did what and when (logins, lockouts, verdicts, exports, user changes).

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::error::AppResult;
use crate::views::format_millis;

/// Longest detail kept; longer text (a pasted note, an odd user name) is cut.
const MAX_DETAIL_CHARS: usize = 500;

/// Appends one row to `audit_log`.
pub fn record(
    conn: &Connection,
    at_millis: i64,
    username: Option<&str>,
    action: &str,
    detail: &str,
) -> AppResult<()> {
    let username: Option<String> = username.map(|name| name.chars().take(64).collect());
    let detail: String = detail.chars().take(MAX_DETAIL_CHARS).collect();
    conn.prepare_cached(
        "INSERT INTO audit_log (at, username, action, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![at_millis, username, action, detail])?;
    Ok(())
}

/// One audit row, ready to show.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub username: String,
    pub action: String,
    pub detail: String,
}

/// The newest entries first.
pub fn recent(conn: &Connection, limit: i64, offset: i64) -> AppResult<Vec<AuditEntry>> {
    let mut statement = conn.prepare_cached(
        "SELECT at, username, action, detail FROM audit_log ORDER BY audit_id DESC LIMIT ?1 OFFSET ?2",
    )?;
    let rows = statement.query_map(params![limit, offset], |row| {
        Ok(AuditEntry {
            at: format_millis(row.get(0)?),
            username: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            action: row.get(2)?,
            detail: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Number of audit rows.
pub fn count(conn: &Connection) -> AppResult<i64> {
    Ok(conn.query_row("SELECT count(*) FROM audit_log", [], |row| row.get(0))?)
}
