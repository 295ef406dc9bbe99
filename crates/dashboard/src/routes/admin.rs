//! `GET /admin` (users and the audit log) and `POST /admin/users/disable`.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{Html, Redirect};
use serde::Deserialize;

use crate::audit;
use crate::error::{AppError, AppResult};
use crate::filters::parse_page;
use crate::routes::pages::{PageParams, pager};
use crate::routes::render;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::templates::{AdminPage, Layout};
use crate::users;

/// Audit rows per page.
const AUDIT_PAGE: i64 = 100;

/// `GET /admin`.
pub async fn admin(
    State(state): State<AppState>,
    AdminSession(session): AdminSession,
    Query(params): Query<PageParams>,
) -> AppResult<Html<String>> {
    let requested = parse_page(&params.page);
    let now = aegis_core::time::now_millis();
    let (users, entries, total, page) = state
        .read(move |conn| {
            let total = audit::count(conn)?;
            let pages = ((total + AUDIT_PAGE - 1) / AUDIT_PAGE).max(1);
            let page = requested.min(pages);
            let entries = audit::recent(conn, AUDIT_PAGE, (page - 1) * AUDIT_PAGE)?;
            Ok((users::list_users(conn, now)?, entries, total, page))
        })
        .await?;
    let pages = ((total + AUDIT_PAGE - 1) / AUDIT_PAGE).max(1);
    render(&AdminPage {
        layout: Layout::new(&session, "Admin", "admin"),
        me: session.username.clone(),
        users,
        audit: entries,
        pager: pager("/admin", "", page, pages, total),
    })
}

/// The disable-user form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DisableForm {
    pub username: String,
}

/// `POST /admin/users/disable`: disables a user and ends their sessions.
pub async fn disable(
    State(state): State<AppState>,
    AdminSession(session): AdminSession,
    Form(form): Form<DisableForm>,
) -> AppResult<Redirect> {
    if form.username == session.username {
        return Err(AppError::BadRequest(
            "You cannot disable your own account; ask another admin.".into(),
        ));
    }
    let now = aegis_core::time::now_millis();
    state
        .write(move |conn| users::disable_user(conn, &form.username, &session.username, now))
        .await?;
    Ok(Redirect::to("/admin"))
}
