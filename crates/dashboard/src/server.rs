//! The router (every path, the security headers, static assets) and the server loop.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::ServeConfig;
use crate::csrf;
use crate::error::AppError;
use crate::routes::{admin, api, auth, cases, control, export, live, pages, v1, v1_control};
use crate::state::AppState;
use crate::users;

/// The Content-Security-Policy of every response: only this origin's scripts, styles and
/// images, no inline code, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Every path of the dashboard and its handlers: the one list the router is built from, and
/// the one the CSRF test walks.
pub fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/", get(pages::overview)),
        ("/alerts", get(cases::queue)),
        ("/incidents/bulk", post(cases::post_bulk)),
        ("/incidents/{id}", get(cases::incident)),
        ("/incidents/{id}/verdict", post(cases::post_verdict)),
        ("/incidents/{id}/assign", post(cases::post_assign)),
        ("/alerts/{id}", get(pages::alert)),
        ("/alerts/{id}/verdict", post(pages::post_verdict)),
        ("/control", get(control::control_page)),
        ("/control/draw", post(control::post_draw)),
        ("/model", get(pages::model)),
        ("/admin", get(admin::admin)),
        ("/admin/users/disable", post(admin::disable)),
        ("/login", get(auth::login_form).post(auth::login)),
        ("/logout", post(auth::logout)),
        ("/events", get(live::events)),
        ("/export.csv", get(export::export_csv)),
        ("/api/summary", get(api::summary)),
        ("/api/transactions", get(api::transactions)),
        ("/api/alerts/{id}", get(api::alert)),
        ("/api/alerts/{id}/verdict", post(api::post_verdict)),
        ("/api/model", get(api::model)),
        (
            "/api/v1/payments",
            post(v1::post_payments).layer(DefaultBodyLimit::max(v1::MAX_BODY_BYTES)),
        ),
        ("/api/v1/alerts", get(v1::alerts)),
        ("/api/v1/verdicts", post(v1::post_verdict)),
        ("/api/v1/control", get(v1_control::control_summary)),
        ("/api/v1/control/draws", post(v1_control::post_control_draw)),
        ("/api/v1/control/draws/{day}", get(v1_control::control_day)),
        ("/api/v1/openapi.json", get(v1::openapi)),
    ]
}

/// The dashboard: [`routes`], static assets, and the layers every response goes through
/// (CSRF and same-origin checks on writes, security headers). Tests drive it with
/// `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    let assets = ServiceBuilder::new()
        // Revalidate assets (cheap, Last-Modified) so an upgrade is picked up at once.
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ))
        .service(ServeDir::new(state.assets()));
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        })
        .nest_service("/assets", assets)
        .fallback(|| async { AppError::NotFound })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            csrf::require_token,
        ))
        .layer(middleware::from_fn(same_origin_writes))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

/// Refuses state-changing requests that a browser marks as coming from elsewhere. The CSRF
/// tokens are the real defence; this is a second, cheap one. Modern browsers say where a request
/// comes from in `Sec-Fetch-Site`, which is trusted when present (only `same-origin`, or `none`
/// for a user's own navigation, may write). Otherwise an `Origin` naming another host is refused;
/// `Origin: null` is let through to the token check, because browsers send it for same-origin
/// forms under `Referrer-Policy: no-referrer`.
async fn same_origin_writes(request: Request, next: Next) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let headers = request.headers();
    let text = |name: HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let allowed = match text(HeaderName::from_static("sec-fetch-site")) {
        Some(site) => site == "same-origin" || site == "none",
        None => match (text(header::ORIGIN), text(header::HOST)) {
            (Some(origin), _) if origin == "null" => true,
            (Some(origin), Some(host)) => {
                origin.split_once("://").map(|(_, authority)| authority) == Some(host.as_str())
            }
            (Some(_), None) => false,
            (None, _) => true,
        },
    };
    if !allowed {
        return AppError::Forbidden("Cross-site requests are not accepted.".into()).into_response();
    }
    next.run(request).await
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Serves the dashboard until Ctrl-C or SIGTERM, then finishes open requests and stops.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    use anyhow::Context;

    let state =
        AppState::open(&config).with_context(|| format!("opening the database {}", config.db))?;
    if !config.assets.join("dashboard.js").exists() {
        tracing::warn!(
            assets = %config.assets.display(),
            "assets directory has no dashboard.js: pass --assets (or AEGIS_ASSETS) pointing at the workspace's assets/"
        );
    }
    let users = state
        .read(users::user_count)
        .await
        .context("counting users")?;
    if users == 0 {
        tracing::warn!("{}", auth_hint());
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .with_context(|| {
            format!(
                "binding {}: is another dashboard running? pick another --addr",
                config.addr
            )
        })?;
    tracing::info!(
        url = %format!("http://{}", listener.local_addr()?),
        db = %config.db,
        modeling = %config.modeling.display(),
        "dashboard listening"
    );
    let stopping = state.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing open requests");
            // Live streams never end by themselves; tell them to.
            stopping.begin_shutdown();
        })
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped");
    Ok(())
}

fn auth_hint() -> &'static str {
    crate::routes::auth::SETUP_HINT
}
