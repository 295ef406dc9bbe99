//! The server-rendered pages: Overview, Alerts, one alert, Model.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use aegis_core::features::Category;

use crate::alerts::{self, Verdict};
use crate::drift;
use crate::error::{AppError, AppResult};
use crate::filters::{
    Filters, ListParams, Sort, SortColumn, StatusFilter, parse_page, rupees_param,
};
use crate::model_info::{self, ModelState, NO_MODEL_MESSAGE};
use crate::routes::{link, page_status, render};
use crate::session::{PageSession, Session};
use crate::state::AppState;
use crate::templates::{
    AlertPage, FilterForm, KeptInput, Layout, ModelPage, OverviewPage, Pager, SelectOption,
    SortHeader, TxView, legend, scheme_options,
};
use crate::views::group_digits;

/// A pager whose links are `path?query&page=n`.
pub fn pager(path: &str, query: &str, page: i64, pages: i64, total: i64) -> Pager {
    let page_link = |n: i64| link(path, query, &[("page", n.to_string())]);
    Pager {
        page,
        pages,
        total: group_digits(total),
        prev_href: (page > 1).then(|| page_link(page - 1)),
        next_href: (page < pages).then(|| page_link(page + 1)),
    }
}

fn column_label(column: SortColumn) -> (&'static str, bool) {
    match column {
        SortColumn::Id => ("ID", false),
        SortColumn::Time => ("Time (IST)", false),
        SortColumn::Scheme => ("Scheme", false),
        SortColumn::Beneficiary => ("Beneficiary", false),
        SortColumn::Amount => ("Amount", true),
        SortColumn::District => ("District", false),
        SortColumn::Status => ("Status", false),
        SortColumn::Score => ("Score", true),
    }
}

/// The table's column headers: each links to the same filters sorted by it (flipping the
/// direction of the current sort column).
fn sort_headers(filter_query: &str, sort: Sort) -> Vec<SortHeader> {
    SortColumn::ALL
        .into_iter()
        .map(|column| {
            let (label, numeric) = column_label(column);
            let current = sort.column == column;
            let next = if current {
                Sort {
                    column,
                    descending: !sort.descending,
                }
            } else {
                Sort::parse(column.param(), "")
            };
            SortHeader {
                label,
                numeric,
                href: link(
                    "/",
                    filter_query,
                    &[
                        ("sort", column.param().to_string()),
                        ("dir", next.dir_param().to_string()),
                    ],
                ),
                indicator: match (current, sort.descending) {
                    (false, _) => "",
                    (true, true) => "▼",
                    (true, false) => "▲",
                },
            }
        })
        .collect()
}

/// The filter form as the user left it, with the schemes in the data to choose from.
fn filter_form(filters: &Filters, schemes: &[String]) -> FilterForm {
    let schemes = scheme_options(schemes, filters.scheme.as_deref());
    FilterForm {
        from: filters
            .from
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        to: filters
            .to
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default(),
        schemes,
        statuses: StatusFilter::ALL
            .into_iter()
            .map(|status| {
                SelectOption::new(
                    status.param(),
                    status.param(),
                    filters.status == Some(status),
                )
            })
            .collect(),
        categories: Category::ALL
            .into_iter()
            .map(|category| {
                SelectOption::new(
                    category.code(),
                    category.label(),
                    filters.category == Some(category),
                )
            })
            .collect(),
        min_amount: filters.min_paise.map(rupees_param).unwrap_or_default(),
        max_amount: filters.max_paise.map(rupees_param).unwrap_or_default(),
        q: filters.q.clone().unwrap_or_default(),
    }
}

/// `GET /`: KPIs, filters, charts (drawn by the page script) and the transaction table.
pub async fn overview(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Query(params): Query<ListParams>,
) -> AppResult<Response> {
    // A filter the user mistyped ("2k" in Min ₹) keeps the page: the default view, the form as
    // they left it, and the problem named above it, with status 400.
    let (mut filters, problem) = match Filters::parse(&params) {
        Ok(filters) => (filters, None),
        Err(AppError::BadRequest(problem)) => {
            (Filters::parse(&ListParams::default())?, Some(problem))
        }
        Err(error) => return Err(error),
    };
    let live_query = filters.query_string();
    let sort = Sort::parse(&params.sort, &params.dir);
    let page = parse_page(&params.page);
    let cache = state.clone();
    // One snapshot: on PostgreSQL the KPIs' several statements, and the table, see one state of
    // the data (a batch committed between them skewed the rate, and was cached so).
    let (filters, kpis, table, schemes) = state
        .read_snapshot(move |conn| {
            cache.default_range(conn, &mut filters)?;
            let kpis = cache.kpis(conn, &filters)?;
            let table = cache.transactions_page(conn, &filters, sort, page, kpis.transactions)?;
            let schemes = cache.schemes(conn)?;
            Ok((filters, kpis, table, schemes))
        })
        .await?;

    let filter_query = filters.query_string();
    let sort_pairs = [
        ("sort", sort.column.param().to_string()),
        ("dir", sort.dir_param().to_string()),
    ];
    let sorted_query = link("", &filter_query, &sort_pairs)
        .trim_start_matches('?')
        .to_string();
    let headers = sort_headers(&filter_query, sort);
    let mut form = filter_form(&filters, &schemes);
    if problem.is_some() {
        form.keep_typed(&params);
    }
    let status = page_status(problem.is_some());
    let page = OverviewPage {
        problem,
        layout: Layout::new(&session, "Overview", "overview").with_charts(),
        form,
        range_text: filters.range_text(),
        kpis,
        headers,
        rows: table.rows.iter().map(TxView::from).collect(),
        pager: pager("/", &sorted_query, table.page, table.pages, table.total),
        csv_href: link("/export.csv", &sorted_query, &[]),
        api_query: filter_query,
        live_query,
        legend: legend(),
    };
    Ok((status, render(&page)?).into_response())
}

/// Query of a paged list (the audit log).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PageParams {
    pub page: String,
}

/// `GET /alerts/{id}`: everything about one transaction, and the verdict form.
pub async fn alert(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Path(id): Path<i64>,
) -> AppResult<Html<String>> {
    render(&alert_page(&state, &session, id).await?)
}

/// The investigation page of transaction `id` as `session` may see it.
async fn alert_page(state: &AppState, session: &Session, id: i64) -> AppResult<AlertPage> {
    let detail = state
        .read(move |conn| alerts::alert_detail(conn, id))
        .await?
        .ok_or(AppError::NotFound)?;
    let current = model_info::current(state.modeling());
    let mut page = AlertPage::new(
        Layout::new(session, &format!("Transaction {id}"), "alerts"),
        &detail,
        current.as_ref(),
    );
    // The label would lead an auditor's verdict (a real deployment has none): admins only.
    if !session.is_admin() {
        page.label = None;
    }
    Ok(page)
}

/// The verdict form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct VerdictForm {
    pub verdict: String,
    pub note: String,
    /// Why a final verdict changes (required then).
    pub reason: String,
}

/// `POST /alerts/{id}/verdict`: records the verdict, then back to the alert. A verdict that
/// cannot be recorded (none chosen, a revision without a reason, perhaps because another
/// auditor decided meanwhile) shows the page again with the problem and what was typed.
pub async fn post_verdict(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<VerdictForm>,
) -> AppResult<Response> {
    let verdict = match Verdict::parse(&form.verdict) {
        Ok(verdict) => verdict,
        Err(AppError::BadRequest(problem)) => {
            return refused_verdict(&state, &session, id, problem, form).await;
        }
        Err(error) => return Err(error),
    };
    let now = aegis_core::time::now_millis();
    let auditor = session.auditor();
    let (note, reason) = (form.note.clone(), form.reason.clone());
    let recorded = state
        .write(move |conn| alerts::record_verdict(conn, id, verdict, &note, &reason, &auditor, now))
        .await;
    match recorded {
        Ok(_) => Ok(Redirect::to(&format!("/alerts/{id}")).into_response()),
        Err(AppError::BadRequest(problem)) => {
            refused_verdict(&state, &session, id, problem, form).await
        }
        Err(error) => Err(error),
    }
}

/// The alert page again (400) with `problem` and what `form` sent.
async fn refused_verdict(
    state: &AppState,
    session: &Session,
    id: i64,
    problem: String,
    form: VerdictForm,
) -> AppResult<Response> {
    let page = alert_page(state, session, id).await?.refused(
        problem,
        &form.verdict,
        KeptInput {
            note: form.note,
            reason: form.reason,
        },
    );
    Ok((page_status(true), render(&page)?).into_response())
}

/// `GET /model`: the current model and its evaluation.
pub async fn model(
    State(state): State<AppState>,
    PageSession(session): PageSession,
) -> AppResult<Html<String>> {
    let modeling = state.modeling().to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || model_info::load(&modeling)).await?;
    let (message, mut model) = match loaded {
        ModelState::Missing => (Some(NO_MODEL_MESSAGE.to_string()), None),
        ModelState::Broken(message) => (Some(message), None),
        ModelState::Ready(view) => (None, Some(*view)),
    };
    let drift = match &model {
        Some(view) => {
            let (version, cuts): (String, Vec<f32>) = (
                view.model_version.clone(),
                drift::tail(&view.score_quantiles)
                    .map(|&(_, score)| score)
                    .collect(),
            );
            let (days, features) = state
                .read(move |conn| {
                    let days = drift::day_scores(conn, &version, &cuts)?;
                    let features = match days.first() {
                        Some(first) => aegis_core::drift::read_days(conn, &version, &first.date)?,
                        None => Vec::new(),
                    };
                    Ok((days, features))
                })
                .await?;
            let mut drift = drift::view(&days, &view.score_quantiles, view.budget);
            drift::add_features(&mut drift, &features, &view.feature_bins);
            Some(drift)
        }
        None => None,
    };
    // What the auditors' verdicts on this model's own payments say of its evidence steps.
    if let Some(view) = model.as_mut()
        && let Some(feedback) = view.feedback.as_mut().filter(|f| f.used)
    {
        let version = view.model_version.clone();
        let reviewed = state
            .read(move |conn| Ok(aegis_core::evidence_check::reviewed(conn, &version)?))
            .await?;
        feedback.check_against(&reviewed);
    }
    let (control, control_other_days) = match &model {
        Some(view) => {
            let version = view.model_version.clone();
            state
                .read(move |sql| crate::routes::control::model_estimate(sql, &version))
                .await?
        }
        None => (Vec::new(), 0),
    };
    let mut layout = Layout::new(&session, "Model", "model");
    if model.is_some() {
        layout = layout.with_charts();
    }
    render(&ModelPage {
        layout,
        message,
        model,
        drift,
        control,
        control_other_days,
    })
}
