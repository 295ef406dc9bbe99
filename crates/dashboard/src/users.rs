//! Dashboard users: creation, listing, disabling, and the login check with lockout.

use std::fmt;

use aegis_core::sql::{Row, Sql};
use aegis_core::values;
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
    sql: &mut dyn Sql,
    name: &str,
    password: &str,
    role: Role,
    now_millis: i64,
) -> AppResult<i64> {
    validate_username(name)?;
    validate_new_password(password)?;
    if user_id_of(sql, name)?.is_some() {
        return Err(AppError::BadRequest(format!(
            "user {name:?} already exists"
        )));
    }
    let hash = hash_password(password)?;
    let user_id = sql
        .query_int(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4) \
             RETURNING user_id",
            values![name, hash, role.as_str(), now_millis],
        )?
        .unwrap_or_default();
    audit::record(
        sql,
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
pub fn list_users(sql: &mut dyn Sql, now_millis: i64) -> AppResult<Vec<UserSummary>> {
    Ok(sql.rows(
        "SELECT username, role, disabled, failed_logins, locked_until, created_at FROM users ORDER BY username",
        &[],
        |row| {
            let locked_until: Option<i64> = row.at(4)?;
            Ok(UserSummary {
                username: row.at(0)?,
                role: row.at(1)?,
                disabled: row.at(2)?,
                failed_logins: row.at(3)?,
                locked_until: locked_until
                    .filter(|&until| until > now_millis)
                    .map(format_millis),
                created_at: format_millis(row.at(5)?),
            })
        },
    )?)
}

/// Number of users (zero means the dashboard still needs its first admin).
pub fn user_count(sql: &mut dyn Sql) -> AppResult<i64> {
    Ok(sql
        .query_int("SELECT count(*) FROM users", &[])?
        .unwrap_or(0))
}

/// The id of the user named `name`, if there is one.
fn user_id_of(sql: &mut dyn Sql, name: &str) -> AppResult<Option<i64>> {
    Ok(sql.query_int(
        "SELECT user_id FROM users WHERE username = ?1",
        values![name],
    )?)
}

/// Disables a user, ends their sessions and returns their open cases (incidents with work
/// left) to the unassigned queue, in the caller's transaction; `actor` is who asked (for the
/// audit log). Left assigned, those cases would vanish from every queue: nobody can pick them
/// up, and the assignee filter no longer offers the user.
pub fn disable_user(sql: &mut dyn Sql, name: &str, actor: &str, now_millis: i64) -> AppResult<()> {
    let Some(user_id) = user_id_of(sql, name)? else {
        return Err(AppError::BadRequest(format!("no user named {name:?}")));
    };
    sql.execute(
        "UPDATE users SET disabled = 1 WHERE user_id = ?1",
        values![user_id],
    )?;
    let sessions = sql.execute("DELETE FROM sessions WHERE user_id = ?1", values![user_id])?;
    let cases = sql.execute(
        "UPDATE incidents SET assignee_id = NULL, assigned_at = NULL \
         WHERE assignee_id = ?1 AND unreviewed + field_checks > 0",
        values![user_id],
    )?;
    audit::record(
        sql,
        now_millis,
        Some(actor),
        "user_disabled",
        &format!(
            "disabled {name}; ended {sessions} session(s); {cases} open case(s) back to the unassigned queue"
        ),
    )?;
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
/// the outcome is written. The write checks the lock again, so a burst of attempts read before
/// a lockout took effect is refused once it has (at most five wrong passwords counted per lock,
/// however many arrive at once), and a right password cannot lift a lock it did not see.
/// Blocking.
pub fn authenticate(
    db: &Database,
    username: &str,
    password: &str,
    now_millis: i64,
) -> AppResult<Option<AuthenticatedUser>> {
    let stored = db.read(|reader| {
        Ok(reader.row(
            "SELECT user_id, password_hash, role, disabled, locked_until FROM users WHERE username = ?1",
            values![username],
            |row| {
                Ok(StoredUser {
                    user_id: row.at(0)?,
                    password_hash: row.at(1)?,
                    role: row.at(2)?,
                    disabled: row.at(3)?,
                    locked_until: row.at(4)?,
                })
            },
        )?)
    })?;
    let writer = |work: &dyn Fn(&mut dyn Sql) -> AppResult<()>| db.write(|sql| work(sql));
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
    // Whether the lock or the disabled flag changed since the read; then the attempt is
    // refused as locked, whatever the password.
    let refused_meanwhile = std::cell::Cell::new(false);
    let record_refusal = |conn: &mut dyn Sql| {
        refused_meanwhile.set(true);
        audit::record(
            conn,
            now_millis,
            Some(username),
            "login_locked",
            "account locked or disabled while the password was checked",
        )
    };
    if !password_ok {
        writer(&|conn| {
            let Some(failures) = conn.query_int(
                "UPDATE users SET failed_logins = failed_logins + 1 \
                 WHERE user_id = ?1 AND (locked_until IS NULL OR locked_until <= ?2) \
                 RETURNING failed_logins",
                values![user_id, now_millis],
            )?
            else {
                return record_refusal(conn);
            };
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
                    values![until, user_id],
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
        let cleared = conn.execute(
            "UPDATE users SET failed_logins = 0, locked_until = NULL \
             WHERE user_id = ?1 AND disabled = 0 AND (locked_until IS NULL OR locked_until <= ?2)",
            values![user_id, now_millis],
        )?;
        if cleared == 0 {
            record_refusal(conn)?;
        }
        Ok(())
    })?;
    if refused_meanwhile.get() {
        return Ok(None);
    }
    Ok(Some(AuthenticatedUser {
        user_id,
        username: username.to_string(),
        role,
    }))
}

/// The id of system user `username` (one that records verdicts made by an import or an API
/// key, never a person), created on first use: disabled, with a random password nobody knows,
/// so it can never log in.
pub fn system_user(sql: &mut dyn Sql, username: &str, now_millis: i64) -> AppResult<i64> {
    if let Some(id) = user_id_of(sql, username)? {
        return Ok(id);
    }
    let hash = crate::password::hash_password(&crate::session::random_token())?;
    Ok(sql
        .query_int(
            "INSERT INTO users (username, password_hash, role, disabled, created_at) \
             VALUES (?1, ?2, 'auditor', 1, ?3) RETURNING user_id",
            values![username, hash, now_millis],
        )?
        .unwrap_or_default())
}
