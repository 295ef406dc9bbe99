//! `dashboard verdicts import FILE.csv`: loads an existing investigation record, all or nothing.
//!
//! Columns (header row, any order, case-insensitive): required `transaction_ref` and `verdict`
//! (`confirmed_fraud`, `dismissed` or `needs_field_check`); optional `decided_at` (IST
//! `YYYY-MM-DD HH:MM:SS` or RFC 3339; the import time when empty), `note` and `auditor` (a
//! dashboard user; verdicts without one are recorded for the disabled system user
//! [`IMPORT_USER`]) and `reason`. A bad row is reported with its line number and nothing is
//! imported.
//!
//! The revision rule holds as in the dashboard: a verdict that overturns a final one (confirmed
//! fraud, dismissed) decided before it, stored or earlier in the file, needs a `reason`, and is
//! recorded as revising it; the old verdict stays in the history.

use std::collections::HashMap;
use std::path::Path;

use aegis_core::sql::{Row, Sql};
use aegis_core::values;

use aegis_core::tabular;

use crate::alerts::{MAX_NOTE_CHARS, Verdict};
use crate::audit;
use crate::database::Database;
use crate::error::{AppError, AppResult};

/// The user past verdicts without an `auditor` are recorded for. It is created disabled, with a
/// random password nobody knows, so it can never log in.
pub const IMPORT_USER: &str = "imported-record";

const REQUIRED: [&str; 2] = ["transaction_ref", "verdict"];
const OPTIONAL: [&str; 4] = ["decided_at", "note", "auditor", "reason"];

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// What an import did (or, with `bad_rows`, why it did nothing).
#[derive(Debug, Default)]
pub struct VerdictImport {
    pub imported: usize,
    pub bad_rows: Vec<BadRow>,
    pub unknown_columns: Vec<String>,
}

struct Parsed {
    line: u64,
    transaction_id: i64,
    verdict: Verdict,
    decided_at_millis: i64,
    note: String,
    reason: String,
    /// None: [`IMPORT_USER`].
    user_id: Option<i64>,
}

/// Imports `path` in one transaction; any bad row leaves the database untouched and is listed
/// in the result. `now_millis` dates verdicts without `decided_at`.
pub fn import_verdicts(db: &Database, path: &Path, now_millis: i64) -> AppResult<VerdictImport> {
    let file = std::fs::File::open(path).map_err(|error| {
        AppError::BadRequest(format!("cannot open {}: {error}", path.display()))
    })?;
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let headers = reader
        .headers()
        .map_err(|error| {
            AppError::BadRequest(format!(
                "{}: unreadable header row: {error}",
                path.display()
            ))
        })?
        .clone();
    let header = tabular::match_header(headers.iter(), &REQUIRED, &OPTIONAL);
    let mut report = VerdictImport {
        unknown_columns: header.unknown,
        ..VerdictImport::default()
    };
    if !header.missing.is_empty() {
        return Err(AppError::BadRequest(format!(
            "{} lacks required column(s) {}: the header must name transaction_ref and verdict{}",
            path.display(),
            header.missing.join(", "),
            tabular::separator_hint(headers.iter())
        )));
    }
    let columns = header.columns;
    // The whole file is read before the write lock is taken: a file on a slow disk or share
    // holds up no verdict, login or monitor commit while it is read. A record of verdicts is
    // small (a year of 100 reviews a day is 36,500 rows).
    let mut records: Vec<(u64, csv::StringRecord)> = Vec::new();
    loop {
        let line = reader.position().line();
        let mut record = csv::StringRecord::new();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let next_line = reader.position().line();
                match tabular::check_record(record.iter(), headers.len(), line, next_line) {
                    Ok(()) => records.push((line, record)),
                    Err(tabular::RecordProblem::TooManyFields(reason)) => {
                        report.bad_rows.push(BadRow { line, reason });
                    }
                    Err(tabular::RecordProblem::UnclosedQuote(problem)) => {
                        return Err(AppError::BadRequest(format!(
                            "{}: {problem}; nothing was imported",
                            path.display()
                        )));
                    }
                }
            }
            Err(error) => report.bad_rows.push(BadRow {
                line,
                reason: format!("unreadable CSV: {error}"),
            }),
        }
    }

    // One write transaction: the checks below stay true until the verdicts are in.
    db.write(|sql| {
    aegis_core::pg::lock_verdicts(sql)?;
    let mut users: HashMap<String, Option<i64>> = HashMap::new();
    let mut parsed = Vec::new();
    for (line, record) in &records {
        let line = *line;
        let field = |name: &str| columns.get(name, |position| record.get(position));
        match parse_row(sql, &field, &mut users, now_millis) {
            Ok(row) => parsed.push(Parsed { line, ..row }),
            Err(reason) => report.bad_rows.push(BadRow { line, reason }),
        }
    }
    if !report.bad_rows.is_empty() {
        // Nothing was written. Unreadable lines were found first, the rest in order.
        report.bad_rows.sort_by_key(|bad| bad.line);
        return Ok(report);
    }
    // Each payment's verdicts in decision order, so that each finds the one it follows.
    parsed.sort_by_key(|row| (row.transaction_id, row.decided_at_millis, row.line));
    let revised = revisions(sql, &parsed, &mut report.bad_rows)?;
    if !report.bad_rows.is_empty() {
        report.bad_rows.sort_by_key(|bad| bad.line);
        return Ok(report);
    }
    let import_user = import_user(sql, now_millis)?;
    // The ids of the rows written, to point a later row of the file at the one it revises.
    let mut written: Vec<i64> = Vec::with_capacity(parsed.len());
    for (row, revises) in parsed.iter().zip(&revised) {
        let user_id = row.user_id.unwrap_or(import_user);
        let revises = revises.map(|follows| match follows {
            Follows::Stored(id) => id,
            Follows::InFile(index) => written[index],
        });
        let id = sql
            .query_int(
                "INSERT INTO verdicts (transaction_id, verdict, note, user_id, created_at, revises, reason, via) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'import') RETURNING verdict_id",
                values![
                    row.transaction_id,
                    row.verdict.as_str(),
                    row.note.as_str(),
                    user_id,
                    row.decided_at_millis,
                    revises,
                    row.reason.as_str()
                ],
            )?
            .unwrap_or_default();
        written.push(id);
    }
    audit::record(
        sql,
        now_millis,
        Some("cli"),
        "verdicts import",
        &format!("{} verdicts from {}", parsed.len(), path.display()),
    )?;
    report.imported = parsed.len();
    Ok(report)
    })
}

/// The verdict a row follows: stored already, or the row at this index of the sorted rows.
#[derive(Debug, Clone, Copy)]
enum Follows {
    Stored(i64),
    InFile(usize),
}

/// For each row of `rows` (sorted by payment, then decision time), the final verdict it
/// overturns, if it does: the payment's latest verdict decided before it, stored or earlier in
/// the file, when that one is final and says otherwise. Such a row without a reason is a bad
/// row, as a revision without one is refused in the dashboard.
fn revisions(
    sql: &mut dyn Sql,
    rows: &[Parsed],
    bad_rows: &mut Vec<BadRow>,
) -> AppResult<Vec<Option<Follows>>> {
    let mut revised = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let stored = crate::cases::latest_verdict(sql, row.transaction_id, row.decided_at_millis)?
            .map(|latest| (latest.verdict_id, latest.verdict, latest.created_at));
        // The file's previous row for this payment is decided at or after the stored one
        // when it is decided no earlier (and, written later, it comes after it).
        let in_file = index
            .checked_sub(1)
            .filter(|&previous| rows[previous].transaction_id == row.transaction_id);
        let latest = match (stored, in_file) {
            (Some((id, verdict, at)), Some(previous)) if at > rows[previous].decided_at_millis => {
                Some((Follows::Stored(id), verdict))
            }
            (_, Some(previous)) => Some((
                Follows::InFile(previous),
                rows[previous].verdict.as_str().to_string(),
            )),
            (Some((id, verdict, _)), None) => Some((Follows::Stored(id), verdict)),
            (None, None) => None,
        };
        let revises = latest.filter(|(_, verdict)| {
            crate::cases::is_final(verdict) && verdict != row.verdict.as_str()
        });
        if let Some((_, verdict)) = &revises
            && row.reason.trim().is_empty()
        {
            bad_rows.push(BadRow {
                line: row.line,
                reason: format!(
                    "{} overturns the final verdict {verdict} decided before it: give the reason \
                     column (why it was revised); the old verdict stays in the history",
                    row.verdict.as_str()
                ),
            });
        }
        revised.push(revises.map(|(follows, _)| follows));
    }
    Ok(revised)
}

/// One row, or why it cannot be imported.
fn parse_row<'f>(
    sql: &mut dyn Sql,
    field: &impl Fn(&str) -> Option<&'f str>,
    users: &mut HashMap<String, Option<i64>>,
    now_millis: i64,
) -> Result<Parsed, String> {
    let reference = field("transaction_ref").ok_or("transaction_ref is missing")?;
    let matches: Vec<(i64, Option<String>)> = sql
        .rows(
            "SELECT transaction_id, timestamp FROM transactions WHERE transaction_ref = ?1 LIMIT 2",
            values![reference],
            |row| Ok((row.at(0)?, crate::queries::text_at(row, 1))),
        )
        .map_err(|e| e.to_string())?;
    let (transaction_id, paid_at) = match matches.as_slice() {
        [(id, paid_at)] => (*id, paid_at.clone()),
        [] => {
            return Err(format!(
                "transaction_ref {reference:?} is not in the database"
            ));
        }
        _ => {
            return Err(format!(
                "transaction_ref {reference:?} names more than one transaction"
            ));
        }
    };
    let verdict_text = field("verdict").ok_or("verdict is missing")?;
    let verdict = Verdict::parse(verdict_text).map_err(|_| {
        format!(
            "verdict {verdict_text:?} is not one of confirmed_fraud, dismissed, needs_field_check"
        )
    })?;
    let decided_at_millis = match field("decided_at") {
        Some(text) => aegis_core::time::parse_timestamp(text)
            .map_err(|_| {
                format!("decided_at {text:?} is not 'YYYY-MM-DD HH:MM:SS' (IST) or RFC 3339")
            })?
            .saturating_mul(1000),
        None => now_millis,
    };
    if decided_at_millis > now_millis {
        return Err("decided_at is in the future".to_string());
    }
    // A verdict decided before its payment was made would be evidence about that payment
    // itself (the feedback stage counts verdicts decided before a payment's time), so the
    // row's own label would teach the model. A date-only decided_at reads as midnight.
    if let Some(paid_at) = paid_at.as_deref()
        && let Ok(paid) = aegis_core::time::parse_timestamp(paid_at)
        && decided_at_millis < paid.saturating_mul(1000)
    {
        return Err(format!(
            "decided_at is before the payment itself ({paid_at} IST): a verdict is decided after the payment; give the time it was decided"
        ));
    }
    let note = field("note").unwrap_or_default().to_string();
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("note is longer than {MAX_NOTE_CHARS} characters"));
    }
    let user_id = match field("auditor") {
        None => None,
        Some(name) => Some({
            if !users.contains_key(name) {
                let id = sql
                    .query_int(
                        "SELECT user_id FROM users WHERE username = ?1",
                        values![name],
                    )
                    .map_err(|e| e.to_string())?;
                users.insert(name.to_string(), id);
            }
            users[name].ok_or_else(|| {
                format!(
                    "auditor {name:?} is not a dashboard user: add them with `dashboard user add {name} --role auditor`, or leave the column empty"
                )
            })?
        }),
    };
    let reason = field("reason").unwrap_or_default().to_string();
    if reason.chars().count() > MAX_NOTE_CHARS {
        return Err(format!("reason is longer than {MAX_NOTE_CHARS} characters"));
    }
    Ok(Parsed {
        line: 0,
        transaction_id,
        verdict,
        decided_at_millis,
        note,
        reason,
        user_id,
    })
}

/// The id of [`IMPORT_USER`], created (disabled, unguessable password) on first use.
fn import_user(sql: &mut dyn Sql, now_millis: i64) -> AppResult<i64> {
    crate::users::system_user(sql, IMPORT_USER, now_millis)
}
