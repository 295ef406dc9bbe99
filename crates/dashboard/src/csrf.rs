//! CSRF by construction: one layer in front of every route checks the session's token on every
//! state-changing request, so a new POST route is protected without its handler doing anything.
//!
//! The token comes from the `x-csrf-token` header (the JSON API, the page scripts) or from the
//! `csrf` field of a form body. Requests without a session pass through untouched: the route's
//! own session extractor refuses them (a redirect to `/login` or a 401), and with no session
//! there is nothing to forge. The login form, the one write made before there is a session,
//! carries a double-submit cookie that its handler checks ([`PRE_SESSION_FORMS`]).

use axum::body::{Body, Bytes};
use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::AppError;
use crate::session::{SESSION_COOKIE, Session, cookie, find_session};
use crate::state::AppState;

/// Header that carries the session's CSRF token for JSON requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Forms posted (POST) before a session exists; their handlers check a double-submit cookie
/// instead.
pub const PRE_SESSION_FORMS: [&str; 1] = ["/login"];

/// Largest form body the check reads (the dashboard's forms are a few hundred bytes).
const MAX_FORM_BYTES: usize = 64 * 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TokenField {
    csrf: String,
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn refused() -> Response {
    AppError::Forbidden(
        "The form has expired or did not come from this site: reload the page and try again."
            .into(),
    )
    .into_response()
}

/// The layer: refuses (403) a state-changing request of a logged-in user whose token is missing
/// or wrong, before any handler runs.
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let pre_session_form =
        request.method() == Method::POST && PRE_SESSION_FORMS.contains(&request.uri().path());
    if !is_write(request.method()) || pre_session_form {
        return next.run(request).await;
    }
    let Some(token) = cookie(request.headers(), SESSION_COOKIE) else {
        return next.run(request).await;
    };
    let now = aegis_core::time::now_millis();
    let session: Option<Session> = match state
        .read(move |conn| find_session(conn, &token, now))
        .await
    {
        Ok(session) => session,
        Err(error) => return error.into_response(),
    };
    let Some(session) = session else {
        return next.run(request).await;
    };
    // The handler's session extractor takes it from here instead of looking it up again.
    request.extensions_mut().insert(session.clone());
    if let Some(provided) = request.headers().get(CSRF_HEADER) {
        let valid = provided
            .to_str()
            .is_ok_and(|t| session.check_csrf(Some(t)).is_ok());
        return if valid {
            next.run(request).await
        } else {
            refused()
        };
    }
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return refused();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes): Result<Bytes, _> = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return AppError::BadRequest("The form is too large.".into()).into_response();
    };
    let probe = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    let field = Form::<TokenField>::from_request(probe, &())
        .await
        .map(|Form(field)| field)
        .unwrap_or_default();
    if session.check_csrf(Some(&field.csrf)).is_err() {
        return refused();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
