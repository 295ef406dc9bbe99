//! `GET/POST /login` and `POST /logout`.
//!
//! The login form has no session to hang a CSRF token on, so it uses a double-submit cookie:
//! `GET /login` sets a random `aegis_login_csrf` cookie (HttpOnly, SameSite=Strict) and puts the
//! same value in the form; `POST /login` requires both to match.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::audit;
use crate::error::{AppError, AppResult};
use crate::routes::render;
use crate::session::{
    LOGIN_CSRF_COOKIE, PageSession, SESSION_COOKIE, SESSION_MILLIS, clear_cookie, constant_time_eq,
    cookie, create_session, delete_session, find_session, random_token, set_cookie, sha256_hex,
};
use crate::state::AppState;
use crate::templates::{LoginPage, login_layout};
use crate::users::{self, LOGIN_FAILED_MESSAGE};

/// What the login page (and the server log) says while there are no users.
pub const SETUP_HINT: &str =
    "No users yet: run `cargo run -p dashboard -- user add NAME --role admin`";

/// Lifetime of the login form's CSRF cookie.
const LOGIN_CSRF_SECONDS: i64 = 3600;

fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn login_page(
    state: &AppState,
    status: StatusCode,
    csrf: String,
    username: String,
    error: Option<String>,
) -> AppResult<Response> {
    let users = state.read(users::user_count).await?;
    let page = LoginPage {
        layout: login_layout(),
        csrf: csrf.clone(),
        username,
        error,
        setup_hint: (users == 0).then(|| SETUP_HINT.to_string()),
    };
    let cookie = set_cookie(
        LOGIN_CSRF_COOKIE,
        &csrf,
        LOGIN_CSRF_SECONDS,
        state.secure_cookies(),
    );
    Ok((status, [(header::SET_COOKIE, cookie)], render(&page)?).into_response())
}

/// `GET /login`: the form (or home, when already logged in).
pub async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    if let Some(token) = cookie(&headers, SESSION_COOKIE).filter(|t| is_token(t)) {
        let now = aegis_core::time::now_millis();
        if state
            .read(move |conn| find_session(conn, &token, now))
            .await?
            .is_some()
        {
            return Ok(Redirect::to("/").into_response());
        }
    }
    let csrf = cookie(&headers, LOGIN_CSRF_COOKIE)
        .filter(|t| is_token(t))
        .unwrap_or_else(random_token);
    login_page(&state, StatusCode::OK, csrf, String::new(), None).await
}

/// The login form's fields.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginForm {
    pub csrf: String,
    pub username: String,
    pub password: String,
}

/// How long a login waits for a password check's turn before it is told to retry. Checks run
/// one per core at a time ([`AppState::password_checks`]): each is an argon2id hash of 19 MiB
/// and two passes, on a blocking thread, and without a bound a burst of login attempts (no
/// login needed to send them) ran hundreds at once, gigabytes of memory on both cores, and
/// every page waited.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A turn to check a password from `checks`, or 503 after `wait`. Owned: it goes with the
/// check onto its blocking thread, and is given back when the check ends, even if the client
/// has gone meanwhile.
async fn password_turn(
    checks: std::sync::Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
) -> AppResult<tokio::sync::OwnedSemaphorePermit> {
    match tokio::time::timeout(wait, checks.acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AppError::Overloaded(
            "Too many sign-ins at once: try again in a few seconds.".into(),
        )),
    }
}

/// `POST /login`: checks the password (with lockout), starts a session, goes home.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> AppResult<Response> {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if !is_token(&expected) || !constant_time_eq(&expected, &form.csrf) {
        return Err(AppError::Forbidden(
            "The login form has expired or did not come from this site: reload it and try again."
                .into(),
        ));
    }
    let username = form.username.trim().to_string();
    let previous = cookie(&headers, SESSION_COOKIE).filter(|t| is_token(t));
    let now = aegis_core::time::now_millis();
    let idle_millis = state.idle_millis();
    let worker = state.clone();
    let name = username.clone();
    let turn = password_turn(state.password_checks(), PASSWORD_CHECK_WAIT).await?;
    let token = tokio::task::spawn_blocking(move || -> AppResult<Option<String>> {
        let checked = users::authenticate(worker.db(), &name, &form.password, now);
        drop(turn);
        let Some(user) = checked? else {
            return Ok(None);
        };
        worker.db().write(|conn| {
            // A fresh token on every login: a session cookie planted before login is worthless.
            if let Some(previous) = &previous {
                delete_session(conn, &sha256_hex(previous))?;
            }
            let token = create_session(conn, user.user_id, now, idle_millis)?;
            audit::record(
                conn,
                now,
                Some(&user.username),
                "login",
                &format!("role {}", user.role),
            )?;
            Ok(Some(token))
        })
    })
    .await??;
    match token {
        Some(token) => {
            let secure = state.secure_cookies();
            let mut response = Redirect::to("/").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, &token, SESSION_MILLIS / 1000, secure),
            );
            headers.append(header::SET_COOKIE, clear_cookie(LOGIN_CSRF_COOKIE, secure));
            Ok(response)
        }
        None => {
            login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                expected,
                username,
                Some(LOGIN_FAILED_MESSAGE.to_string()),
            )
            .await
        }
    }
}

/// `POST /logout`: ends the session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    PageSession(session): PageSession,
) -> AppResult<Response> {
    let now = aegis_core::time::now_millis();
    state
        .write(move |conn| {
            delete_session(conn, &session.token_hash)?;
            audit::record(conn, now, Some(&session.username), "logout", "")
        })
        .await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(SESSION_COOKIE, state.secure_cookies()),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A login that finds every password check taken waits its turn, then is told to retry
    /// (503) instead of starting one more.
    #[tokio::test]
    async fn a_login_past_the_password_checks_bound_is_told_to_retry() {
        let checks = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        let held = password_turn(checks.clone(), std::time::Duration::from_millis(10))
            .await
            .unwrap();
        let refused = password_turn(checks.clone(), std::time::Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(matches!(refused, AppError::Overloaded(_)), "{refused:?}");
        drop(held);
        password_turn(checks, std::time::Duration::from_millis(10))
            .await
            .unwrap();
    }
}
