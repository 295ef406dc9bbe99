//! Dashboard users: creation, listing, disabling, and the login check with lockout.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::audit;
use crate::database::Database;
use crate::error::{AppError, AppResult};
use crate::password::{
    hash_password, validate_new_password, verify_against_dummy, verify_password,
};
use crate::views::format_millis;

/// Failed logins in a row that lock an account.
pub const MAX_FAILED_LOGINS: i64 = 5;
/// How long a lockout lasts.
pub const LOCKOUT_MILLIS: i64 = 15 * 60 * 1000;
/// The one message every failed login gets, whatever the cause, so that it reveals nothing
/// about which accounts exist or are locked.
pub const LOGIN_FAILED_MESSAGE: &str = "invalid username or password, or account locked";

/// What a user may do. Admins can do everything auditors can, and manage users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Auditor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "auditor" => Some(Role::Auditor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a new user name: 1–64 characters of letters, digits, `.`, `_`, `-`.
pub fn validate_username(name: &str) -> AppResult<()> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || name.len() > 64 || !valid_chars {
        return Err(AppError::BadRequest(format!(
            "invalid user name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(())
}

/// Creates a user; the password is hashed here and never stored in clear.
pub fn add_user(
    conn: &Connection,
    name: &str,
    password: &str,
    role: Role,
    now_millis: i64,
) -> AppResult<i64> {
    validate_username(name)?;
    validate_new_password(password)?;
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE username = ?1)",
        [name],
        |row| row.get(0),
    )?;
    if exists {
        return Err(AppError::BadRequest(format!(
            "user {name:?} already exists"
        )));
    }
    let hash = hash_password(password)?;
    conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, hash, role.as_str(), now_millis],
    )?;
    let user_id = conn.last_insert_rowid();
    audit::record(
        conn,
        now_millis,
        Some(name),
        "user_added",
        &format!("role {role}"),
    )?;
    Ok(user_id)
}

/// A user as listed by `user list` and the admin page.
#[derive(Debug, Clone, Serialize)]
pub struct UserSummary {
    pub username: String,
    pub role: String,
    pub disabled: bool,
    pub failed_logins: i64,
    pub locked_until: Option<String>,
    pub created_at: String,
}

/// Every user, by name. `locked_until` is shown only while the lock holds.
pub fn list_users(conn: &Connection, now_millis: i64) -> AppResult<Vec<UserSummary>> {
    let mut statement = conn.prepare_cached(
        "SELECT username, role, disabled, failed_logins, locked_until, created_at FROM users ORDER BY username",
    )?;
    let rows = statement.query_map([], |row| {
        let locked_until: Option<i64> = row.get(4)?;
        Ok(UserSummary {
            username: row.get(0)?,
            role: row.get(1)?,
            disabled: row.get(2)?,
            failed_logins: row.get(3)?,
            locked_until: locked_until
                .filter(|&until| until > now_millis)
                .map(format_millis),
            created_at: format_millis(row.get(5)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Number of users (zero means the dashboard still needs its first admin).
pub fn user_count(conn: &Connection) -> AppResult<i64> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |row| row.get(0))?)
}

/// Disables a user and ends their sessions; `actor` is who asked (for the audit log).
pub fn disable_user(
    conn: &mut Connection,
    name: &str,
    actor: &str,
    now_millis: i64,
) -> AppResult<()> {
    // Immediate: it reads before it writes, and a deferred transaction whose snapshot another
    // writer (the monitor, the simulator) has moved past fails at once with SQLITE_BUSY.
    let transaction = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let user_id: Option<i64> = transaction
        .query_row(
            "SELECT user_id FROM users WHERE username = ?1",
            [name],
            |row| row.get(0),
        )
        .optional()?;
    let Some(user_id) = user_id else {
        return Err(AppError::BadRequest(format!("no user named {name:?}")));
    };
    transaction.execute(
        "UPDATE users SET disabled = 1 WHERE user_id = ?1",
        [user_id],
    )?;
    let sessions = transaction.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
    audit::record(
        &transaction,
        now_millis,
        Some(actor),
        "user_disabled",
        &format!("disabled {name}; ended {sessions} session(s)"),
    )?;
    transaction.commit()?;
    Ok(())
}

/// A user whose password was just verified.
#[derive(Debug, Clone)]
pub struct AuthenticatedUser {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
}

struct StoredUser {
    user_id: i64,
    password_hash: String,
    role: String,
    disabled: bool,
    locked_until: Option<i64>,
}

/// Checks a login attempt. `None` is a failure of any kind — the caller shows
/// [`LOGIN_FAILED_MESSAGE`] — while the audit log records the real cause. Five wrong passwords
/// in a row lock the account for fifteen minutes; a success resets the count.
///
/// The slow password check runs outside the write lock: the row is read on a reader, and only
/// the outcome is written. Blocking.
pub fn authenticate(
    db: &Database,
    username: &str,
    password: &str,
    now_millis: i64,
) -> AppResult<Option<AuthenticatedUser>> {
    let stored = db.read(|reader| {
        Ok(reader
        .query_row(
            "SELECT user_id, password_hash, role, disabled, locked_until FROM users WHERE username = ?1",
            [username],
            |row| {
                Ok(StoredUser {
                    user_id: row.get(0)?,
                    password_hash: row.get(1)?,
                    role: row.get(2)?,
                    disabled: row.get(3)?,
                    locked_until: row.get(4)?,
                })
            },
        )
        .optional()?)
    })?;
    let writer = |work: &dyn Fn(&Connection) -> AppResult<()>| db.write(|conn| work(conn));
    let Some(user) = stored else {
        verify_against_dummy(password);
        writer(&|conn| {
            audit::record(
                conn,
                now_millis,
                Some(username),
                "login_failed",
                "unknown user",
            )
        })?;
        return Ok(None);
    };
    // Verify even when the answer is already no, so every failure takes the same time.
    let password_ok = verify_password(password, &user.password_hash);
    if user.disabled {
        writer(&|conn| {
            audit::record(
                conn,
                now_millis,
                Some(username),
                "login_failed",
                "account disabled",
            )
        })?;
        return Ok(None);
    }
    if let Some(until) = user.locked_until.filter(|&until| until > now_millis) {
        let detail = format!("account locked until {}", format_millis(until));
        writer(&|conn| audit::record(conn, now_millis, Some(username), "login_locked", &detail))?;
        return Ok(None);
    }
    let user_id = user.user_id;
    if !password_ok {
        writer(&|conn| {
            let failures: i64 = conn.query_row(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE user_id = ?1 RETURNING failed_logins",
                [user_id],
                |row| row.get(0),
            )?;
            audit::record(
                conn,
                now_millis,
                Some(username),
                "login_failed",
                &format!("wrong password ({failures} of {MAX_FAILED_LOGINS})"),
            )?;
            if failures >= MAX_FAILED_LOGINS {
                let until = now_millis + LOCKOUT_MILLIS;
                // The count restarts, so after the lock expires there are five more attempts.
                conn.execute(
                    "UPDATE users SET locked_until = ?1, failed_logins = 0 WHERE user_id = ?2",
                    params![until, user_id],
                )?;
                audit::record(
                    conn,
                    now_millis,
                    Some(username),
                    "lockout",
                    &format!(
                        "{failures} failed logins: locked until {}",
                        format_millis(until)
                    ),
                )?;
            }
            Ok(())
        })?;
        return Ok(None);
    }
    let Some(role) = Role::parse(&user.role) else {
        return Err(AppError::Internal(format!(
            "user {username} has unknown role {:?}",
            user.role
        )));
    };
    writer(&|conn| {
        conn.execute(
            "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE user_id = ?1",
            [user_id],
        )?;
        Ok(())
    })?;
    Ok(Some(AuthenticatedUser {
        user_id,
        username: username.to_string(),
        role,
    }))
}

/// The id of system user `username` (one that records verdicts made by an import or an API
/// key, never a person), created on first use: disabled, with a random password nobody knows,
/// so it can never log in.
pub fn system_user(conn: &Connection, username: &str, now_millis: i64) -> AppResult<i64> {
    if let Some(id) = conn
        .query_row(
            "SELECT user_id FROM users WHERE username = ?1",
            [username],
            |row| row.get(0),
        )
        .optional()?
    {
        return Ok(id);
    }
    let hash = crate::password::hash_password(&crate::session::random_token())?;
    conn.execute(
        "INSERT INTO users (username, password_hash, role, disabled, created_at) VALUES (?1, ?2, 'auditor', 1, ?3)",
        params![username, hash, now_millis],
    )?;
    Ok(conn.last_insert_rowid())
}
