//! The audit log: who did what and when (logins, lockouts, verdicts, exports, user changes).

use aegis_core::sql::{Row, Sql};
use aegis_core::values;
use serde::Serialize;

use crate::error::AppResult;
use crate::views::format_millis;

/// Longest detail kept; longer text (a pasted note, an odd user name) is cut.
const MAX_DETAIL_CHARS: usize = 500;

/// Appends one row to `audit_log`.
pub fn record(
    sql: &mut dyn Sql,
    at_millis: i64,
    username: Option<&str>,
    action: &str,
    detail: &str,
) -> AppResult<()> {
    let username: Option<String> = username.map(|name| name.chars().take(64).collect());
    // A cut entry says so.
    let detail: String = if detail.chars().count() > MAX_DETAIL_CHARS {
        detail
            .chars()
            .take(MAX_DETAIL_CHARS - 1)
            .chain(std::iter::once('…'))
            .collect()
    } else {
        detail.to_string()
    };
    sql.execute(
        "INSERT INTO audit_log (at, username, action, detail) VALUES (?1, ?2, ?3, ?4)",
        values![at_millis, username, action, detail],
    )?;
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

/// The newest entries up to `upto` (an `audit_id`) first. Pages are anchored at the newest
/// entry when the first page was read: with `OFFSET` alone, every login or verdict recorded
/// while an admin pages through the log pushes a row from one page onto the next, shown twice.
pub fn recent(sql: &mut dyn Sql, upto: i64, limit: i64, offset: i64) -> AppResult<Vec<AuditEntry>> {
    Ok(sql.rows(
        "SELECT at, username, action, detail FROM audit_log WHERE audit_id <= ?1 \
         ORDER BY audit_id DESC LIMIT ?2 OFFSET ?3",
        values![upto, limit, offset],
        |row| {
            Ok(AuditEntry {
                at: format_millis(row.at(0)?),
                username: row.at::<Option<String>>(1)?.unwrap_or_default(),
                action: row.at(2)?,
                detail: row.at(3)?,
            })
        },
    )?)
}

/// The newest entry's id (0 when the log is empty).
pub fn newest(sql: &mut dyn Sql) -> AppResult<i64> {
    Ok(sql
        .query_int("SELECT coalesce(max(audit_id), 0) FROM audit_log", &[])?
        .unwrap_or(0))
}

/// Number of audit rows up to `upto`.
pub fn count(sql: &mut dyn Sql, upto: i64) -> AppResult<i64> {
    Ok(sql
        .query_int(
            "SELECT count(*) FROM audit_log WHERE audit_id <= ?1",
            values![upto],
        )?
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry longer than the limit is cut, and says so.
    #[test]
    fn a_cut_entry_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let conn = aegis_core::db::open(&dir.path().join("t.db")).unwrap();
        let sql: &mut dyn Sql = &mut aegis_core::sql::Sqlite(&conn);
        let long = format!(
            "confirmed_fraud — 300 alerts of incident {}",
            "1234567, ".repeat(100)
        );
        record(sql, 1, Some("alice"), "verdict", &long).unwrap();
        record(
            sql,
            2,
            Some("alice"),
            "verdict",
            "dismissed — transaction 7",
        )
        .unwrap();
        let details: Vec<String> = sql
            .column("SELECT detail FROM audit_log ORDER BY audit_id", &[])
            .unwrap();
        assert_eq!(details[0].chars().count(), MAX_DETAIL_CHARS);
        assert!(details[0].starts_with("confirmed_fraud — 300 alerts"));
        assert!(details[0].ends_with('…'));
        assert_eq!(details[1], "dismissed — transaction 7");
    }
}
