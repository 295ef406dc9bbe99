//! Sessions and CSRF: random tokens, the `aegis_session` cookie, and the extractors that turn a
//! request into a logged-in user (or refuse it).
//!
//! The cookie holds 32 random bytes in hex; the database holds only their SHA-256, so a leaked
//! database does not leak live sessions. Each session has its own CSRF token, rendered into
//! every form and checked on every POST. The login form, which has no session yet, uses a
//! double-submit cookie instead.

use aegis_core::sql::{Row, Sql};
use aegis_core::values;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::users::Role;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "aegis_session";
/// Name of the pre-session CSRF cookie of the login form.
pub const LOGIN_CSRF_COOKIE: &str = "aegis_login_csrf";
/// How long a session lasts.
pub const SESSION_MILLIS: i64 = 8 * 3600 * 1000;
/// How long a session lasts without use, unless `dashboard --idle-minutes` says otherwise.
pub const DEFAULT_IDLE: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// The longest [`keep_alive_step`].
const KEEP_ALIVE_EVERY_MILLIS: i64 = 60_000;

/// How far a use must move the end of idleness before it is written: a minute, or half the
/// idle time, so a session in use never ends early by more than that.
pub fn keep_alive_step(idle_millis: i64) -> i64 {
    KEEP_ALIVE_EVERY_MILLIS.min(idle_millis / 2).max(1)
}

/// 32 random bytes from the thread-local CSPRNG (ChaCha, seeded from the OS), as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// SHA-256 of `text`, as hex: what `sessions.token_hash` stores.
pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in user's session.
#[derive(Debug, Clone)]
pub struct Session {
    pub token_hash: String,
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub csrf_token: String,
    /// When it expires, in Unix milliseconds.
    pub expires_at: i64,
    /// When it ends unless used before (Unix milliseconds); see [`keep_alive`].
    pub idle_until: i64,
}

impl Session {
    /// The user as the data layer records them.
    pub fn auditor(&self) -> crate::alerts::Auditor {
        crate::alerts::Auditor {
            user_id: self.user_id,
            username: self.username.clone(),
            via: String::new(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Refuses (403) a state-changing request whose CSRF token is missing or wrong.
    pub fn check_csrf(&self, provided: Option<&str>) -> AppResult<()> {
        match provided {
            Some(token) if constant_time_eq(token, &self.csrf_token) => Ok(()),
            _ => Err(AppError::Forbidden(
                "The form has expired or did not come from this site: reload the page and try again.".into(),
            )),
        }
    }
}

/// Creates a session for `user_id` that ends after [`SESSION_MILLIS`], or `idle_millis`
/// without use; returns the cookie token (only its hash is stored).
pub fn create_session(
    sql: &mut dyn Sql,
    user_id: i64,
    now_millis: i64,
    idle_millis: i64,
) -> AppResult<String> {
    let token = random_token();
    // Ended sessions are swept here, at the only time rows are added.
    sql.execute(
        "DELETE FROM sessions WHERE expires_at <= ?1 OR idle_until <= ?1",
        values![now_millis],
    )?;
    let expires_at = now_millis + SESSION_MILLIS;
    sql.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at, idle_until) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        values![
            sha256_hex(&token),
            user_id,
            random_token(),
            now_millis,
            expires_at,
            (now_millis + idle_millis).min(expires_at)
        ],
    )?;
    Ok(token)
}

/// Moves the end of idleness of session `token_hash` to `idle_until` (never past its expiry)
/// unless it is there already, within `step`, or the session is over at `now_millis`: a
/// session already over stays over.
pub fn keep_alive(
    sql: &mut dyn Sql,
    token_hash: &str,
    idle_until: i64,
    step: i64,
    now_millis: i64,
) -> AppResult<()> {
    // As stored now, not as this server remembers it: another server may have moved it.
    sql.execute(
        "UPDATE sessions SET idle_until = CASE WHEN expires_at < ?2 THEN expires_at ELSE ?2 END \
         WHERE token_hash = ?1 AND idle_until > ?3 AND idle_until <= ?4",
        values![token_hash, idle_until, now_millis, idle_until - step],
    )?;
    Ok(())
}

/// The live session of a cookie token, if any (unexpired, user not disabled).
pub fn find_session(sql: &mut dyn Sql, token: &str, now_millis: i64) -> AppResult<Option<Session>> {
    find_session_by_hash(sql, &sha256_hex(token), now_millis)
}

/// [`find_session`] by the stored hash (the live stream re-checks its session with it).
pub fn find_session_by_hash(
    sql: &mut dyn Sql,
    token_hash: &str,
    now_millis: i64,
) -> AppResult<Option<Session>> {
    let row = sql.row(
        "SELECT s.user_id, u.username, u.role, s.csrf_token, s.expires_at, s.idle_until \
         FROM sessions s JOIN users u USING (user_id) \
         WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.idle_until > ?2 AND u.disabled = 0",
        values![token_hash, now_millis],
        |row| {
            Ok((
                row.at::<i64>(0)?,
                row.at::<String>(1)?,
                row.at::<String>(2)?,
                row.at::<String>(3)?,
                row.at::<i64>(4)?,
                row.at::<i64>(5)?,
            ))
        },
    )?;
    Ok(row.and_then(
        |(user_id, username, role, csrf_token, expires_at, idle_until)| {
            Some(Session {
                token_hash: token_hash.to_string(),
                user_id,
                username,
                role: Role::parse(&role)?,
                csrf_token,
                expires_at,
                idle_until,
            })
        },
    ))
}

/// Ends a session.
pub fn delete_session(sql: &mut dyn Sql, token_hash: &str) -> AppResult<()> {
    sql.execute(
        "DELETE FROM sessions WHERE token_hash = ?1",
        values![token_hash],
    )?;
    Ok(())
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when asked.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_seconds}{secure}"
    );
    HeaderValue::from_str(&text).expect("cookie values are hex tokens")
}

/// A `Set-Cookie` value that deletes cookie `name`.
pub fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", 0, secure)
}

/// The request's live session; a use (every page, form, chart's data and export) moves its
/// idle end forward ([`AppState::keep_alive`], in the background). The live stream
/// ([`StreamSession`]) is not a use, so a dashboard left open on an unattended desk ends
/// after the idle time like any other.
async fn session_of(parts: &Parts, state: &AppState, used: bool) -> AppResult<Option<Session>> {
    let now = aegis_core::time::now_millis();
    let Some(session) = find_session_of(parts, state, now).await? else {
        return Ok(None);
    };
    if used {
        state.keep_alive(&session, now);
    }
    Ok(Some(session))
}

async fn find_session_of(parts: &Parts, state: &AppState, now: i64) -> AppResult<Option<Session>> {
    // A write's session was already found (and its CSRF token checked) by `csrf::require_token`.
    if let Some(session) = parts.extensions.get::<Session>() {
        return Ok(Some(session.clone()));
    }
    let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    // A well-formed token is 64 hex digits; anything else cannot match and needs no query.
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let token_hash = sha256_hex(&token);
    if let Some(session) = state.remembered_session(&token_hash, now) {
        return Ok(Some(session));
    }
    let found = state.clone();
    state
        .read(move |conn| found.find_session(conn, &token_hash, now))
        .await
}

/// Why a request was refused before reaching its handler.
#[derive(Debug)]
pub enum AuthRejection {
    /// A page asked for by an anonymous browser: off to the login form.
    Login,
    /// An API call, export or stream without a session.
    Unauthorized,
    /// Logged in, but not an admin.
    NotAdmin,
    Failed(AppError),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            AuthRejection::Login => Redirect::to("/login").into_response(),
            AuthRejection::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({ "error": "login required" })),
            )
                .into_response(),
            AuthRejection::NotAdmin => {
                AppError::Forbidden("This page is for administrators.".into()).into_response()
            }
            AuthRejection::Failed(error) => error.into_response(),
        }
    }
}

/// The session of an HTML page request; anonymous requests are redirected (303) to `/login`.
#[derive(Debug, Clone)]
pub struct PageSession(pub Session);

impl FromRequestParts<AppState> for PageSession {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match session_of(parts, state, true).await {
            Ok(Some(session)) => Ok(PageSession(session)),
            Ok(None) => Err(AuthRejection::Login),
            Err(error) => Err(AuthRejection::Failed(error)),
        }
    }
}

/// The session of an API, export or stream request; anonymous requests get 401.
#[derive(Debug, Clone)]
pub struct ApiSession(pub Session);

impl FromRequestParts<AppState> for ApiSession {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        signed_in(parts, state, true).await.map(ApiSession)
    }
}

/// The session of a request that is not a page: none is 401.
async fn signed_in(parts: &Parts, state: &AppState, used: bool) -> Result<Session, AuthRejection> {
    match session_of(parts, state, used).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(AuthRejection::Unauthorized),
        Err(error) => Err(AuthRejection::Failed(error)),
    }
}

/// The session of the live stream (`/events`), anonymous requests get 401. Unlike
/// [`ApiSession`], opening the stream is not a use: a browser reopens it by itself after a
/// dropped connection or a proxy's time limit, and an unattended overview must still end.
#[derive(Debug, Clone)]
pub struct StreamSession(pub Session);

impl FromRequestParts<AppState> for StreamSession {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        signed_in(parts, state, false).await.map(StreamSession)
    }
}

/// An admin's page session: anonymous → `/login`, auditors → 403.
#[derive(Debug, Clone)]
pub struct AdminSession(pub Session);

impl FromRequestParts<AppState> for AdminSession {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let PageSession(session) = PageSession::from_request_parts(parts, state).await?;
        if session.is_admin() {
            Ok(AdminSession(session))
        } else {
            Err(AuthRejection::NotAdmin)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session in use never ends early by more than the step: a minute, or half a short
    /// idle time (with `--idle-minutes 1` a step of a minute would end it mid-use).
    #[test]
    fn the_keep_alive_step_is_a_minute_or_half_the_idle_time() {
        assert_eq!(keep_alive_step(30 * 60_000), 60_000);
        assert_eq!(keep_alive_step(60_000), 30_000);
        assert_eq!(keep_alive_step(0), 1);
    }

    #[test]
    fn tokens_are_64_hex_digits_and_differ() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn sha256_matches_the_known_digest_of_abc() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; aegis_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn constant_time_comparison_is_still_a_comparison() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}
