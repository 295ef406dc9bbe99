//! The case queue (`/alerts`), incidents (`/incidents/{id}`), and their verdict, assignment and
//! bulk forms. A form that fails comes back inside its page with the problem named and what the
//! user typed kept (status 400).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use aegis_core::features::Category;

use crate::alerts::Verdict;
use crate::cases::{
    self, Assignee, IncidentDetail, QueueFilters, QueueParams, QueueSort, Target, VerdictState,
    Watch,
};
use crate::error::{AppError, AppResult};
use crate::filters::{parse_page, rupees_param};
use crate::routes::pages::pager;
use crate::routes::{link, page_status, render};
use crate::session::{PageSession, Session};
use crate::state::AppState;
use crate::templates::{
    IncidentPage, IncidentRowView, KeptInput, QueueForm, QueuePage, SelectOption, Tab,
    assign_options, scheme_options, verdict_options,
};

/// The queue's views, as (label, state, assignee).
const TABS: [(&str, VerdictState, &str); 6] = [
    ("Open", VerdictState::Open, ""),
    ("My cases", VerdictState::Open, "me"),
    ("Unassigned", VerdictState::Open, "none"),
    ("Pending field checks", VerdictState::FieldChecks, ""),
    ("Confirmed fraud", VerdictState::Confirmed, ""),
    ("All", VerdictState::All, ""),
];

fn heading(filters: &QueueFilters) -> &'static str {
    match (&filters.state, &filters.assignee) {
        (VerdictState::Open, Assignee::Me) => "My cases",
        (VerdictState::Open, Assignee::Unassigned) => "Unassigned open incidents",
        (VerdictState::Open, _) => "Open incidents",
        (VerdictState::FieldChecks, _) => "Pending field checks",
        (VerdictState::Confirmed, _) => "Incidents with confirmed fraud",
        (VerdictState::Dismissed, _) => "Incidents with dismissed alerts",
        (VerdictState::Unreviewed, _) => "Incidents with alerts not yet reviewed",
        (VerdictState::All, _) => "All incidents",
    }
}

fn tabs(filters: &QueueFilters) -> Vec<Tab> {
    TABS.into_iter()
        .map(|(label, state, assignee)| {
            let tab = QueueFilters {
                state,
                assignee: match assignee {
                    "me" => Assignee::Me,
                    "none" => Assignee::Unassigned,
                    _ => Assignee::Anyone,
                },
                ..QueueFilters::default()
            };
            Tab {
                label,
                href: link("/alerts", &tab.query_string(), &[]),
                active: tab.state == filters.state && tab.assignee == filters.assignee,
            }
        })
        .collect()
}

fn queue_form(
    filters: &QueueFilters,
    schemes: &[String],
    users: &[String],
    typed: Option<&QueueParams>,
) -> QueueForm {
    let alerts = &filters.alerts;
    let date = |d: Option<chrono::NaiveDate>| {
        d.map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let assignee = match &filters.assignee {
        Assignee::Anyone => "",
        Assignee::Me => "me",
        Assignee::Unassigned => "none",
        Assignee::User(name) => name.as_str(),
    };
    let mut assignees = vec![
        SelectOption::new("", "Anyone", assignee.is_empty()),
        SelectOption::new("me", "Me", assignee == "me"),
        SelectOption::new("none", "Nobody", assignee == "none"),
    ];
    assignees.extend(
        users
            .iter()
            .map(|name| SelectOption::new(name, name, assignee == name)),
    );
    let mut form = QueueForm {
        from: date(alerts.from),
        to: date(alerts.to),
        schemes: scheme_options(schemes, alerts.scheme.as_deref()),
        district: filters.district.clone().unwrap_or_default(),
        categories: Category::ALL
            .into_iter()
            .map(|c| SelectOption::new(c.code(), c.label(), alerts.category == Some(c)))
            .collect(),
        min_amount: alerts.min_paise.map(rupees_param).unwrap_or_default(),
        max_amount: alerts.max_paise.map(rupees_param).unwrap_or_default(),
        q: alerts.q.clone().unwrap_or_default(),
        states: VerdictState::ALL
            .into_iter()
            .map(|s| SelectOption::new(s.param(), s.label(), filters.state == s))
            .collect(),
        assignees,
        sorts: QueueSort::ALL
            .into_iter()
            .map(|s| SelectOption::new(s.param(), s.label(), filters.sort == s))
            .collect(),
        ascending: !filters.descending,
    };
    // A mistyped filter is shown as typed, next to the problem it caused.
    if let Some(typed) = typed {
        form.from = typed.from.clone();
        form.to = typed.to.clone();
        form.district = typed.district.clone();
        form.min_amount = typed.min_amount.clone();
        form.max_amount = typed.max_amount.clone();
        form.q = typed.q.clone();
    }
    form
}

/// What a failed bulk form carried, to show it again.
#[derive(Default)]
struct BulkKept {
    problem: Option<String>,
    selected: Vec<i64>,
    input: KeptInput,
    verdict: Option<String>,
}

/// Renders the queue for `params`; a bad filter shows the default queue with the problem.
async fn queue_page(
    state: &AppState,
    session: &Session,
    params: QueueParams,
    kept: BulkKept,
) -> AppResult<Response> {
    let (filters, filter_problem) = match QueueFilters::parse(&params) {
        Ok(filters) => (filters, None),
        Err(AppError::BadRequest(problem)) => (
            QueueFilters::default(),
            Some(format!(
                "{problem}. Showing the open queue until the filter is corrected."
            )),
        ),
        Err(error) => return Err(error),
    };
    let page = parse_page(&params.page);
    let me = session.user_id;
    let cache = state.clone();
    let query_filters = filters.clone();
    let (incidents, schemes, users) = state
        .read_snapshot(move |conn| {
            Ok((
                cache.incident_queue(conn, &query_filters, me, page)?,
                cache.schemes(conn)?,
                cache.assignable_users(conn)?,
            ))
        })
        .await?;
    let back = filters.query_string();
    let notice = notice(&params.done);
    let problem = kept.problem.or(filter_problem.clone());
    let status = page_status(problem.is_some());
    let typed = filter_problem.is_some().then_some(&params);
    let page = QueuePage {
        layout: crate::templates::Layout::new(session, "Case queue", "alerts"),
        heading: heading(&filters),
        problem,
        notice,
        tabs: tabs(&filters),
        form: queue_form(&filters, &schemes, &users, typed),
        rows: incidents
            .rows
            .iter()
            .map(|summary| {
                IncidentRowView::new(summary, &back, kept.selected.contains(&summary.incident_id))
            })
            .collect(),
        pager: pager(
            "/alerts",
            &back,
            incidents.page,
            incidents.pages,
            incidents.total,
        ),
        back,
        verdict_options: verdict_options(kept.verdict.as_deref()),
        assign_options: {
            let mut options = vec![SelectOption::new("", "Choose…", true)];
            options.push(SelectOption::new("me", "Me", false));
            options.extend(assign_options(&users, Some("")));
            options
        },
        kept: kept.input,
    };
    Ok((status, render(&page)?).into_response())
}

/// The line shown after a bulk action (`done=verdict-3`): built from numbers only, so a link
/// cannot put words on the page.
fn notice(done: &str) -> Option<String> {
    let (action, count) = done.split_once('-')?;
    let count: u32 = count.parse().ok()?;
    let incidents = if count == 1 { "incident" } else { "incidents" };
    match action {
        "verdict" => Some(format!("Verdict recorded on {count} {incidents}.")),
        "assign" => Some(format!("{count} {incidents} assigned.")),
        _ => None,
    }
}

/// The ids a form lists under `key`, each once, in the order sent; at most `most` (what one
/// page can show): a form sent by hand could otherwise list one id twice (a verdict recorded
/// twice, each revising the same earlier one) or thousands (one write holding the database).
fn listed_ids(
    pairs: &[(String, String)],
    key: &str,
    what: &str,
    most: usize,
) -> Result<Vec<i64>, String> {
    let mut ids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, value) in pairs.iter().filter(|(name, _)| name == key) {
        let id = value
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{key}: {value:?} is not {what}"))?;
        if seen.insert(id) {
            ids.push(id);
        }
        if ids.len() > most {
            return Err(format!(
                "more than {most} {key}s chosen at once, more than one page shows: choose fewer"
            ));
        }
    }
    Ok(ids)
}

/// `GET /alerts`: the case queue.
pub async fn queue(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Query(params): Query<QueueParams>,
) -> AppResult<Response> {
    queue_page(&state, &session, params, BulkKept::default()).await
}

/// The queue filters carried in a form's `back` field (bad ones fall back to the open queue).
fn back_filters(back: &str) -> QueueFilters {
    QueueFilters::parse(&back_params(back)).unwrap_or_default()
}

/// The queue's query string carried in a form's `back` field, as parameters.
fn back_params(back: &str) -> QueueParams {
    let uri: Option<Uri> = format!("/alerts?{back}").parse().ok();
    uri.and_then(|uri| Query::<QueueParams>::try_from_uri(&uri).ok())
        .map(|Query(params)| params)
        .unwrap_or_default()
}

async fn incident_page(
    state: &AppState,
    session: &Session,
    id: i64,
    back: &str,
    problem: Option<String>,
    kept: KeptInput,
) -> AppResult<Response> {
    let cache = state.clone();
    let (detail, users): (IncidentDetail, Vec<String>) = state
        .read_snapshot(move |conn| {
            let detail = cache.incident_detail(conn, id)?.ok_or(AppError::NotFound)?;
            Ok((detail, cache.assignable_users(conn)?))
        })
        .await?;
    let layout = crate::templates::Layout::new(session, &format!("Incident {id}"), "alerts");
    let mut page = IncidentPage::new(layout, &detail, &users, back);
    let status = page_status(problem.is_some());
    page.problem = problem;
    page.kept = kept;
    Ok((status, render(&page)?).into_response())
}

/// `GET /incidents/{id}`: the incident, its alerts, verdict and assignment forms. The query
/// string is the queue it was opened from (kept for "save and next").
pub async fn incident(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Path(id): Path<i64>,
    Query(params): Query<QueueParams>,
) -> AppResult<Response> {
    let back = QueueFilters::parse(&params)
        .unwrap_or_default()
        .query_string();
    incident_page(&state, &session, id, &back, None, KeptInput::default()).await
}

/// `POST /incidents/{id}/verdict`: one verdict for the incident's alerts (the ticked ones when
/// the page listed them all), then the same incident or ("save and next", `then=next`) the next
/// one in the queue it came from. Read as pairs because `alert` repeats.
pub async fn post_verdict(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Path(id): Path<i64>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let field = |name: &str| field_of(&pairs, name);
    let filters = back_filters(&field("back"));
    let back = filters.query_string();
    let kept = KeptInput {
        note: field("note"),
        reason: field("reason"),
    };
    let chosen = match listed_ids(
        &pairs,
        "alert",
        "a transaction number",
        crate::cases::INCIDENT_ALERT_LIMIT as usize,
    ) {
        Ok(chosen) => chosen,
        Err(problem) => {
            return incident_page(&state, &session, id, &back, Some(problem), kept).await;
        }
    };
    // `scoped` says the page offered a tick box per alert: then only the ticked ones count.
    let scoped = field("scoped") == "1";
    let verdict = match Verdict::parse(&field("verdict")) {
        Ok(verdict) => verdict,
        Err(AppError::BadRequest(problem)) => {
            return incident_page(&state, &session, id, &back, Some(problem), kept).await;
        }
        Err(error) => return Err(error),
    };
    let now = aegis_core::time::now_millis();
    let auditor = session.auditor();
    let (note, reason) = (kept.note.clone(), kept.reason.clone());
    // A verdict on the whole incident (the page listed only some of its alerts) settles only
    // the alerts it had when the page was loaded.
    let shown = if scoped {
        Vec::new()
    } else {
        shown_of(std::iter::once(field("seen").as_str()), &[id])
    };
    let recorded = state
        .write(move |conn| {
            cases::unchanged(conn, &shown, Watch::Alerts)?;
            let target = if scoped {
                Target::IncidentAlerts {
                    incident: id,
                    alerts: &chosen,
                }
            } else {
                Target::Incidents(&[id])
            };
            cases::record_verdicts(conn, target, verdict, &note, &reason, &auditor, now)
        })
        .await;
    match recorded {
        Ok(_) => {}
        Err(AppError::BadRequest(problem)) => {
            return incident_page(&state, &session, id, &back, Some(problem), kept).await;
        }
        Err(error) => return Err(error),
    }
    if field("then") == "next" {
        let me = session.user_id;
        let next = state
            .read(move |conn| cases::next_incident(conn, &filters, me, id))
            .await?;
        let target = match next {
            Some(next) => link(&format!("/incidents/{next}"), &back, &[]),
            None => link("/alerts", &back, &[("done", "verdict-1".into())]),
        };
        return Ok(Redirect::to(&target).into_response());
    }
    Ok(Redirect::to(&link(&format!("/incidents/{id}"), &back, &[])).into_response())
}

/// The first value of form field `name` (empty if absent).
fn field_of(pairs: &[(String, String)], name: &str) -> String {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}

/// The assignment form.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AssignForm {
    /// A username, `me`, or `none` to unassign.
    pub assignee: String,
    pub back: String,
    /// What the page showed of the incident ([`cases::Shown`]); absent from older pages and
    /// scripts, which are then not checked.
    #[serde(default)]
    pub seen: String,
}

/// The [`cases::Shown`] values among `fields` for the incidents in `ids` (the ones a write acts
/// on); values that do not parse, and incidents without one, are not checked.
fn shown_of<'a>(fields: impl Iterator<Item = &'a str>, ids: &[i64]) -> Vec<cases::Shown> {
    fields
        .filter_map(cases::Shown::parse)
        .filter(|shown| ids.contains(&shown.incident))
        .collect()
}

fn assignee_name(session: &Session, text: &str) -> AppResult<Option<String>> {
    match text.trim() {
        "" => Err(AppError::BadRequest(
            "assignee: choose a user, me, or nobody".into(),
        )),
        "none" => Ok(None),
        "me" => Ok(Some(session.username.clone())),
        name => Ok(Some(name.to_string())),
    }
}

/// `POST /incidents/{id}/assign`: assigns (or unassigns) the incident.
pub async fn post_assign(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Path(id): Path<i64>,
    Form(form): Form<AssignForm>,
) -> AppResult<Response> {
    let back = back_filters(&form.back).query_string();
    let assignee = match assignee_name(&session, &form.assignee) {
        Ok(assignee) => assignee,
        Err(AppError::BadRequest(problem)) => {
            return incident_page(
                &state,
                &session,
                id,
                &back,
                Some(problem),
                KeptInput::default(),
            )
            .await;
        }
        Err(error) => return Err(error),
    };
    let auditor = session.auditor();
    let now = aegis_core::time::now_millis();
    let shown = shown_of(std::iter::once(form.seen.as_str()), &[id]);
    let done = state
        .write(move |conn| {
            cases::unchanged(conn, &shown, Watch::Assignee)?;
            cases::assign(conn, &[id], assignee.as_deref(), &auditor, now)
        })
        .await;
    match done {
        Ok(_) => Ok(Redirect::to(&link(&format!("/incidents/{id}"), &back, &[])).into_response()),
        Err(AppError::BadRequest(problem)) => {
            incident_page(
                &state,
                &session,
                id,
                &back,
                Some(problem),
                KeptInput::default(),
            )
            .await
        }
        Err(error) => Err(error),
    }
}

/// `POST /incidents/bulk`: a verdict or an assignment for every selected incident. The body is
/// read as pairs because `incident` repeats.
pub async fn post_bulk(
    State(state): State<AppState>,
    PageSession(session): PageSession,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let field = |name: &str| field_of(&pairs, name);
    let back = field("back");
    let params = back_params(&back);
    let back = QueueFilters::parse(&params)
        .unwrap_or_default()
        .query_string();
    let mut kept = BulkKept {
        input: KeptInput {
            note: field("note"),
            reason: field("reason"),
        },
        verdict: Some(field("verdict")).filter(|v| !v.is_empty()),
        ..BulkKept::default()
    };
    let ids = match listed_ids(
        &pairs,
        "incident",
        "an incident number",
        crate::filters::PAGE_SIZE as usize,
    ) {
        Ok(ids) => ids,
        Err(problem) => {
            kept.problem = Some(problem);
            return queue_page(&state, &session, params, kept).await;
        }
    };
    kept.selected = ids.clone();
    let shown = shown_of(
        pairs
            .iter()
            .filter(|(key, _)| key == "seen")
            .map(|(_, value)| value.as_str()),
        &ids,
    );
    let auditor = session.auditor();
    let now = aegis_core::time::now_millis();
    let count = ids.len();
    let action = field("action");
    let outcome = match action.as_str() {
        "verdict" => match Verdict::parse(&field("verdict")) {
            Ok(verdict) => {
                let (note, reason) = (kept.input.note.clone(), kept.input.reason.clone());
                state
                    .write(move |conn| {
                        cases::unchanged(conn, &shown, Watch::Alerts)?;
                        cases::record_verdicts(
                            conn,
                            Target::Incidents(&ids),
                            verdict,
                            &note,
                            &reason,
                            &auditor,
                            now,
                        )
                        .map(|_| ())
                    })
                    .await
            }
            Err(error) => Err(error),
        },
        "assign" => match assignee_name(&session, &field("assignee")) {
            Ok(assignee) => {
                state
                    .write(move |conn| {
                        cases::unchanged(conn, &shown, Watch::Assignee)?;
                        cases::assign(conn, &ids, assignee.as_deref(), &auditor, now).map(|_| ())
                    })
                    .await
            }
            Err(error) => Err(error),
        },
        _ => Err(AppError::BadRequest(
            "action: record a verdict or assign".into(),
        )),
    };
    match outcome {
        Ok(()) => Ok(Redirect::to(&link(
            "/alerts",
            &back,
            &[("done", format!("{action}-{count}"))],
        ))
        .into_response()),
        Err(AppError::BadRequest(problem)) => {
            kept.problem = Some(problem);
            queue_page(&state, &session, params, kept).await
        }
        Err(AppError::NotFound) => {
            kept.problem = Some("one of the selected incidents no longer exists".into());
            queue_page(&state, &session, params, kept).await
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod listed_ids_tests {
    use super::*;

    fn pairs(values: &[&str]) -> Vec<(String, String)> {
        values
            .iter()
            .map(|value| ("incident".to_string(), (*value).to_string()))
            .collect()
    }

    /// A hand-made form's repeats count once, and more than a page is refused by name.
    #[test]
    fn listed_ids_are_each_once_and_at_most_a_page() {
        assert_eq!(
            listed_ids(
                &pairs(&["5", " 7", "5"]),
                "incident",
                "an incident number",
                2
            ),
            Ok(vec![5, 7])
        );
        let problem = listed_ids(
            &pairs(&["1", "2", "3"]),
            "incident",
            "an incident number",
            2,
        )
        .unwrap_err();
        assert!(problem.contains("more than 2 incidents"), "{problem}");
        let problem = listed_ids(&pairs(&["x"]), "incident", "an incident number", 2).unwrap_err();
        assert_eq!(problem, "incident: \"x\" is not an incident number");
    }
}
