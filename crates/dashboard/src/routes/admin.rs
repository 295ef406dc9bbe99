//! `GET /admin` (users and the audit log) and `POST /admin/users/disable`.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{Html, Redirect};
use serde::Deserialize;

use crate::audit;
use crate::error::{AppError, AppResult};
use crate::filters::parse_page;
use crate::routes::pages::pager;
use crate::routes::render;
use crate::session::AdminSession;
use crate::state::AppState;
use crate::templates::{AdminPage, Layout};
use crate::users;

/// Audit rows per page.
const AUDIT_PAGE: i64 = 100;

/// `GET /admin`'s query: the audit log's page, and the entry its pages are anchored at.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdminParams {
    pub page: String,
    pub upto: String,
}

/// `GET /admin`.
pub async fn admin(
    State(state): State<AppState>,
    AdminSession(session): AdminSession,
    Query(params): Query<AdminParams>,
) -> AppResult<Html<String>> {
    let requested = parse_page(&params.page);
    let anchored: Option<i64> = params.upto.trim().parse().ok().filter(|&id| id > 0);
    let now = aegis_core::time::now_millis();
    let (users, entries, total, page, upto, newer) = state
        .read(move |conn| {
            let newest = audit::newest(conn)?;
            let upto = anchored.map_or(newest, |id| id.min(newest));
            let total = audit::count(conn, upto)?;
            let pages = ((total + AUDIT_PAGE - 1) / AUDIT_PAGE).max(1);
            let page = requested.min(pages);
            let entries = audit::recent(conn, upto, AUDIT_PAGE, (page - 1) * AUDIT_PAGE)?;
            let newer = if upto < newest {
                audit::count(conn, newest)? - total
            } else {
                0
            };
            Ok((
                users::list_users(conn, now)?,
                entries,
                total,
                page,
                upto,
                newer,
            ))
        })
        .await?;
    let pages = ((total + AUDIT_PAGE - 1) / AUDIT_PAGE).max(1);
    render(&AdminPage {
        layout: Layout::new(&session, "Admin", "admin"),
        me: session.username.clone(),
        users,
        audit: entries,
        newer,
        pager: pager("/admin", &format!("upto={upto}"), page, pages, total),
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
