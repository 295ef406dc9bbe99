//! HTTP handlers, one module per area; [`crate::server::router`] wires them to paths.

pub mod admin;
pub mod api;
pub mod auth;
pub mod cases;
pub mod control;
pub mod export;
pub mod live;
pub mod pages;
pub mod v1;
pub mod v1_control;

use axum::response::Html;

use crate::error::AppResult;
use crate::views::query_string;

/// The status of a page shown again with a problem named in it (400), or shown plainly (200).
pub fn page_status(has_problem: bool) -> axum::http::StatusCode {
    if has_problem {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    }
}

/// Renders an askama template into an HTML response.
pub fn render(template: &impl askama::Template) -> AppResult<Html<String>> {
    Ok(Html(template.render()?))
}

/// `path?query&extra…` (omitting the `?` when there is nothing to add).
pub fn link(path: &str, query: &str, extra: &[(&'static str, String)]) -> String {
    let extra = query_string(extra.iter().cloned());
    let joined = [query, extra.as_str()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("&");
    if joined.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{joined}")
    }
}
