//! The askama templates (in `templates/`, HTML autoescaped) and the view models they render.

use askama::Template;

use aegis_core::features::Category;

use crate::alerts::{AlertDetail, Verdict};
use crate::audit::AuditEntry;
use crate::cases::{IncidentDetail, IncidentSummary, VerdictEntry};
use crate::model_info::ModelView;
use crate::queries::{Kpis, TxRow};
use crate::session::Session;
use crate::users::UserSummary;
use crate::views::{self, category_class, category_label, rupees, status_class};

/// The shared layout: title, navigation, the logout form's CSRF token and page scripts.
#[derive(Debug, Clone)]
pub struct Layout {
    pub title: String,
    /// Which navigation entry is highlighted.
    pub active: &'static str,
    pub user: Option<NavUser>,
    pub csrf: String,
    /// Scripts under `/assets/` loaded at the end of the page.
    pub scripts: Vec<&'static str>,
}

#[derive(Debug, Clone)]
pub struct NavUser {
    pub username: String,
    pub role: &'static str,
    pub is_admin: bool,
}

/// Script of every page.
const APP_SCRIPT: &str = "/assets/dashboard.js";
/// Charting library, for pages with charts.
const ECHARTS_SCRIPT: &str = "/assets/vendor/echarts/echarts.min.js";

impl Layout {
    /// The layout of a logged-in page.
    pub fn new(session: &Session, title: &str, active: &'static str) -> Layout {
        Layout {
            title: title.to_string(),
            active,
            user: Some(NavUser {
                username: session.username.clone(),
                role: session.role.as_str(),
                is_admin: session.is_admin(),
            }),
            csrf: session.csrf_token.clone(),
            scripts: vec![APP_SCRIPT],
        }
    }

    /// Adds the charting library before the page script.
    pub fn with_charts(mut self) -> Layout {
        self.scripts = vec![ECHARTS_SCRIPT, APP_SCRIPT];
        self
    }
}

/// An `<option>` of a `<select>`.
#[derive(Debug, Clone)]
pub struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// The scheme `<select>` of a filter form: the schemes in the data, plus the chosen one if it
/// is not among them (so a link to a scheme with no rows keeps its filter visible).
pub fn scheme_options(schemes: &[String], chosen: Option<&str>) -> Vec<SelectOption> {
    let mut options: Vec<SelectOption> = schemes
        .iter()
        .map(|scheme| SelectOption::new(scheme, scheme, chosen == Some(scheme.as_str())))
        .collect();
    if let Some(chosen) = chosen
        && !schemes.iter().any(|scheme| scheme == chosen)
    {
        options.push(SelectOption::new(chosen, chosen, true));
    }
    options
}

impl SelectOption {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> SelectOption {
        SelectOption {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// A transaction row as the tables show it.
#[derive(Debug, Clone)]
pub struct TxView {
    pub id: i64,
    pub time: String,
    pub scheme: String,
    pub beneficiary: String,
    pub account: String,
    pub agent: String,
    pub amount: String,
    pub district: String,
    pub status: String,
    pub status_class: &'static str,
    pub score: String,
    pub category: String,
    pub category_class: &'static str,
}

impl From<&TxRow> for TxView {
    fn from(row: &TxRow) -> TxView {
        TxView {
            id: row.transaction_id,
            time: row.timestamp.clone().unwrap_or_else(|| "—".into()),
            scheme: row.scheme.clone(),
            beneficiary: row.beneficiary_id.clone(),
            account: row.account_id.clone().unwrap_or_else(|| "—".into()),
            agent: row.agent_id.clone().unwrap_or_else(|| "—".into()),
            amount: rupees(row.amount_paise),
            district: row.district.clone().unwrap_or_else(|| "—".into()),
            status: row.status.clone().unwrap_or_else(|| "UNSCORED".into()),
            status_class: status_class(row.status.as_deref()),
            score: views::score(row.anomaly_score),
            category: row
                .category
                .as_deref()
                .map(category_label)
                .unwrap_or_default(),
            category_class: category_class(row.category.as_deref()),
        }
    }
}

/// A sortable column header.
#[derive(Debug, Clone)]
pub struct SortHeader {
    pub label: &'static str,
    pub href: String,
    /// `▲`, `▼` or nothing.
    pub indicator: &'static str,
    pub numeric: bool,
}

/// Previous/next links of a paged table.
#[derive(Debug, Clone)]
pub struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: String,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
}

/// A category in the legend.
#[derive(Debug, Clone)]
pub struct CategoryLegend {
    pub label: String,
    pub class: &'static str,
}

/// The filter form's current values.
#[derive(Debug, Clone)]
pub struct FilterForm {
    pub from: String,
    pub to: String,
    pub schemes: Vec<SelectOption>,
    pub statuses: Vec<SelectOption>,
    pub categories: Vec<SelectOption>,
    pub min_amount: String,
    pub max_amount: String,
    pub q: String,
}

impl FilterForm {
    /// Shows what the user typed rather than what was applied (after a filter was refused),
    /// so they can correct it instead of typing it again.
    pub fn keep_typed(&mut self, typed: &crate::filters::ListParams) {
        self.from = typed.from.clone();
        self.to = typed.to.clone();
        self.min_amount = typed.min_amount.clone();
        self.max_amount = typed.max_amount.clone();
        self.q = typed.q.clone();
        for (options, value) in [
            (&mut self.schemes, &typed.scheme),
            (&mut self.statuses, &typed.status),
            (&mut self.categories, &typed.category),
        ] {
            for option in options.iter_mut() {
                option.selected = option.value == value.trim();
            }
        }
    }
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub layout: Layout,
    /// A filter that could not be read, named for the user (the default view is shown).
    pub problem: Option<String>,
    pub form: FilterForm,
    pub range_text: String,
    pub kpis: Kpis,
    pub headers: Vec<SortHeader>,
    pub rows: Vec<TxView>,
    pub pager: Pager,
    pub csv_href: String,
    /// The filters as a query string, the default date range included: the charts' API
    /// calls, which draw what the page shows.
    pub api_query: String,
    /// The filters as asked, without the default range: the live stream, which applies the
    /// default range again at every push, so that it follows the data past midnight.
    pub live_query: String,
    pub legend: Vec<CategoryLegend>,
}

/// A link among the queue's views (open, my cases…).
#[derive(Debug, Clone)]
pub struct Tab {
    pub label: &'static str,
    pub href: String,
    pub active: bool,
}

/// The queue's filter form as the user left it.
#[derive(Debug, Clone, Default)]
pub struct QueueForm {
    pub from: String,
    pub to: String,
    pub schemes: Vec<SelectOption>,
    pub district: String,
    pub categories: Vec<SelectOption>,
    pub min_amount: String,
    pub max_amount: String,
    pub q: String,
    pub states: Vec<SelectOption>,
    pub assignees: Vec<SelectOption>,
    pub sorts: Vec<SelectOption>,
    pub ascending: bool,
}

/// An incident as a queue row.
#[derive(Debug, Clone)]
pub struct IncidentRowView {
    pub id: i64,
    /// Its page, carrying the queue's filters (for "save and next" and the way back).
    pub href: String,
    pub alerts: i64,
    pub open: i64,
    pub status: String,
    pub who: String,
    pub lead: TxView,
    pub headline: String,
    pub total: String,
    pub score: String,
    pub when: String,
    pub assignee: String,
    pub checked: bool,
    /// What the row shows of the incident, sent back with the bulk form ([`crate::cases::Shown`]).
    pub seen: String,
}

impl IncidentRowView {
    pub fn new(summary: &IncidentSummary, queue_query: &str, checked: bool) -> IncidentRowView {
        IncidentRowView {
            id: summary.incident_id,
            href: crate::routes::link(
                &format!("/incidents/{}", summary.incident_id),
                queue_query,
                &[],
            ),
            alerts: summary.counts.alerts,
            open: summary.counts.open(),
            status: summary.counts.describe(),
            who: who(summary),
            lead: TxView::from(&summary.lead),
            headline: summary.headline.clone().unwrap_or_default(),
            total: rupees(Some(summary.total_paise)),
            score: views::score(Some(summary.max_score)),
            when: if summary.first_time == summary.last_time {
                summary.last_time.clone()
            } else {
                format!("{} – {}", summary.first_time, summary.last_time)
            },
            assignee: summary.assignee.clone().unwrap_or_default(),
            checked,
            seen: crate::cases::Shown::of(summary).field(),
        }
    }
}

/// "2 beneficiaries · 1 account · 1 agent".
fn who(summary: &IncidentSummary) -> String {
    let plural = |count: i64, one: &str, many: &str| {
        format!("{count} {}", if count == 1 { one } else { many })
    };
    [
        plural(summary.beneficiaries, "beneficiary", "beneficiaries"),
        plural(summary.accounts, "account", "accounts"),
        plural(summary.agents, "agent", "agents"),
    ]
    .join(" · ")
}

/// What the user typed in a form that failed, shown again with the problem.
#[derive(Debug, Clone, Default)]
pub struct KeptInput {
    pub note: String,
    pub reason: String,
}

#[derive(Template)]
#[template(path = "alerts.html")]
pub struct QueuePage {
    pub layout: Layout,
    pub heading: &'static str,
    /// A filter or bulk action the user must correct, named.
    pub problem: Option<String>,
    /// What the last bulk action did.
    pub notice: Option<String>,
    pub tabs: Vec<Tab>,
    pub form: QueueForm,
    pub rows: Vec<IncidentRowView>,
    pub pager: Pager,
    /// The queue's query string, sent back by the bulk form.
    pub back: String,
    pub verdict_options: Vec<SelectOption>,
    pub assign_options: Vec<SelectOption>,
    pub kept: KeptInput,
}

/// One alert of an incident's page.
#[derive(Debug, Clone)]
pub struct IncidentAlertView {
    pub tx: TxView,
    pub headline: String,
    pub verdict: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
pub struct IncidentPage {
    pub layout: Layout,
    pub problem: Option<String>,
    pub id: i64,
    pub facts: Vec<Fact>,
    pub status: String,
    pub open: i64,
    pub has_final: bool,
    pub alerts: Vec<IncidentAlertView>,
    pub more_alerts: i64,
    pub beneficiaries: Vec<String>,
    pub accounts: Vec<String>,
    pub agents: Vec<String>,
    pub history: Vec<VerdictView>,
    pub verdict_options: Vec<SelectOption>,
    pub assign_options: Vec<SelectOption>,
    /// The queue's query string: the way back and "save and next".
    pub back: String,
    pub back_href: String,
    pub kept: KeptInput,
    /// What the page shows of the incident, sent back with its forms
    /// ([`crate::cases::Shown`]).
    pub seen: String,
}

impl IncidentPage {
    pub fn new(
        layout: Layout,
        detail: &IncidentDetail,
        users: &[String],
        back: &str,
    ) -> IncidentPage {
        let summary = &detail.summary;
        let facts = vec![
            Fact {
                label: "Alerts",
                value: format!("{} ({} open)", summary.counts.alerts, summary.counts.open()),
            },
            Fact {
                label: "First alert (IST)",
                value: summary.first_time.clone(),
            },
            Fact {
                label: "Latest alert (IST)",
                value: summary.last_time.clone(),
            },
            Fact {
                label: "Total amount",
                value: rupees(Some(summary.total_paise)),
            },
            Fact {
                label: "Highest score",
                value: views::score(Some(summary.max_score)),
            },
            Fact {
                label: "Involves",
                value: who(summary),
            },
            Fact {
                label: "Assigned to",
                value: match (&summary.assignee, &summary.assigned_at) {
                    (Some(name), Some(at)) => format!("{name} (since {at})"),
                    (Some(name), None) => name.clone(),
                    _ => "nobody".to_string(),
                },
            },
        ];
        let alerts: Vec<IncidentAlertView> = detail
            .alerts
            .iter()
            .map(|alert| IncidentAlertView {
                tx: TxView::from(&alert.transaction),
                headline: alert.headline.clone().unwrap_or_default(),
                verdict: alert
                    .verdict
                    .as_deref()
                    .map_or_else(|| "no verdict".to_string(), verdict_label),
            })
            .collect();
        IncidentPage {
            layout,
            problem: None,
            id: summary.incident_id,
            facts,
            status: summary.counts.describe(),
            open: summary.counts.open(),
            has_final: summary.counts.confirmed + summary.counts.dismissed > 0,
            // Never below 0: on PostgreSQL the monitor may link an alert between the two reads.
            more_alerts: (summary.counts.alerts - alerts.len() as i64).max(0),
            alerts,
            beneficiaries: detail.beneficiaries.clone(),
            accounts: detail.accounts.clone(),
            agents: detail.agents.clone(),
            history: detail.history.iter().map(VerdictView::from).collect(),
            verdict_options: verdict_options(None),
            assign_options: assign_options(users, summary.assignee.as_deref()),
            back: back.to_string(),
            back_href: crate::routes::link("/alerts", back, &[]),
            kept: KeptInput::default(),
            seen: crate::cases::Shown::of(summary).field(),
        }
    }
}

/// The verdict `<select>`: a "Choose…" prompt, then the three verdicts.
pub fn verdict_options(selected: Option<&str>) -> Vec<SelectOption> {
    let mut options = vec![SelectOption::new("", "Choose…", selected.is_none())];
    options.extend(
        Verdict::ALL
            .into_iter()
            .map(|v| SelectOption::new(v.as_str(), v.label(), selected == Some(v.as_str()))),
    );
    options
}

/// The assignment `<select>`: every active user, then "nobody".
pub fn assign_options(users: &[String], current: Option<&str>) -> Vec<SelectOption> {
    // Unassigned: a prompt, so pressing "Assign" without a choice is named as a problem
    // rather than silently "assigning" to nobody.
    let mut options: Vec<SelectOption> = current
        .is_none()
        .then(|| SelectOption::new("", "Choose…", true))
        .into_iter()
        .collect();
    options.extend(
        users
            .iter()
            .map(|name| SelectOption::new(name, name, current == Some(name.as_str()))),
    );
    options.push(SelectOption::new("none", "Nobody (unassign)", false));
    options
}

fn verdict_label(verdict: &str) -> String {
    Verdict::parse(verdict).map_or_else(|_| verdict.to_string(), |v| v.label().to_string())
}

/// A reason sentence with its category.
#[derive(Debug, Clone)]
pub struct ReasonView {
    pub category: String,
    pub category_class: &'static str,
    pub text: String,
    pub share: String,
}

/// A labelled value of the transaction's fact sheet.
#[derive(Debug, Clone)]
pub struct Fact {
    pub label: &'static str,
    pub value: String,
}

#[derive(Debug, Clone)]
pub struct SharerView {
    pub beneficiary: String,
    pub payments: i64,
    pub last_payment: String,
    pub is_this: bool,
}

/// A verdict in a history table.
#[derive(Debug, Clone)]
pub struct VerdictView {
    pub transaction_id: i64,
    pub verdict: String,
    pub note: String,
    /// Why it replaced a final verdict (empty for a first verdict).
    pub reason: String,
    pub revision: bool,
    pub username: String,
    /// What recorded it for the user ("api:cases", "import"), or empty.
    pub via: String,
    pub at: String,
}

impl From<&VerdictEntry> for VerdictView {
    fn from(entry: &VerdictEntry) -> VerdictView {
        VerdictView {
            transaction_id: entry.transaction_id,
            verdict: verdict_label(&entry.verdict),
            note: entry.note.clone(),
            reason: entry.reason.clone(),
            revision: entry.revises.is_some(),
            username: entry.username.clone(),
            via: entry.via.clone(),
            at: entry.at.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "alert.html")]
pub struct AlertPage {
    pub layout: Layout,
    pub tx: TxView,
    pub facts: Vec<Fact>,
    pub score: String,
    pub threshold: String,
    /// "2.4× the threshold", or why there is no comparison.
    pub score_comparison: String,
    pub above_threshold: bool,
    pub reasons: Vec<ReasonView>,
    pub reasons_raw: Option<String>,
    /// The ground-truth label, when the row has one and the viewer is an admin.
    pub label: Option<String>,
    pub history: Vec<TxView>,
    pub sharers: Vec<SharerView>,
    pub agent: String,
    pub agent_activity: Vec<TxView>,
    pub agent_payments: i64,
    pub agent_beneficiaries: i64,
    pub verdicts: Vec<VerdictView>,
    pub verdict_options: Vec<SelectOption>,
    pub incident_id: Option<i64>,
    /// The day whose control sample drew it, if one did.
    pub control_day: Option<String>,
    /// Its latest verdict is final: a new one is a revision and needs a reason.
    pub has_final: bool,
    /// Why the verdict just sent was not recorded, with what was typed, kept.
    pub problem: Option<String>,
    pub kept: KeptInput,
}

impl AlertPage {
    /// The investigation page of one transaction, compared with the `current` model's
    /// threshold (None without a model) when that model scored it.
    pub fn new(
        layout: Layout,
        detail: &AlertDetail,
        current: Option<&crate::model_info::CurrentModel>,
    ) -> AlertPage {
        let threshold = current.map(|model| model.threshold);
        let row = &detail.transaction;
        let location = match (row.latitude, row.longitude) {
            (Some(lat), Some(lon)) => format!("{lat:.4}, {lon:.4}"),
            _ => "—".to_string(),
        };
        let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "—".into());
        let facts = vec![
            Fact {
                label: "Reference",
                value: or_dash(&row.transaction_ref),
            },
            Fact {
                label: "Time (IST)",
                value: or_dash(&row.timestamp),
            },
            Fact {
                label: "Scheme",
                value: row.scheme.clone(),
            },
            Fact {
                label: "Amount",
                value: views::rupees(row.amount_paise),
            },
            Fact {
                label: "Beneficiary",
                value: row.beneficiary_id.clone(),
            },
            Fact {
                label: "Account",
                value: or_dash(&row.account_id),
            },
            Fact {
                label: "Agent",
                value: or_dash(&row.agent_id),
            },
            Fact {
                label: "District",
                value: or_dash(&row.district),
            },
            Fact {
                label: "Location",
                value: location,
            },
            Fact {
                label: "Model version",
                value: or_dash(&row.model_version),
            },
        ];
        let scored_by_another = current.is_some_and(|model| {
            row.model_version
                .as_deref()
                .is_some_and(|version| version != model.version)
        });
        let (score_comparison, above_threshold) = match (row.anomaly_score, threshold) {
            // An older model's score is not on the current model's scale: its own threshold
            // decided the status.
            (Some(_), Some(_)) if scored_by_another => (
                format!(
                    "scored by model {}, not the current one: the threshold shown is the current model's, and this score's own model judged it {}",
                    row.model_version.as_deref().unwrap_or_default(),
                    row.status.as_deref().unwrap_or("unscored")
                ),
                row.status.as_deref() == Some("ANOMALY"),
            ),
            (Some(score), Some(threshold)) if threshold > 0.0 => {
                let ratio = score / f64::from(threshold);
                let above = score >= f64::from(threshold);
                // One decimal, but never one that reads as the other side of the line: 0.96 of
                // the threshold is not "1.0×".
                let mut shown = format!("{ratio:.1}");
                if shown == "1.0" && !above {
                    shown = format!("{:.2}", ratio.min(0.99));
                }
                (format!("{shown}× the threshold"), above)
            }
            (Some(_), _) => ("no current model to compare with".to_string(), false),
            (None, _) => ("not scored".to_string(), false),
        };
        let label = detail.is_anomaly.map(|fraud| {
            if fraud {
                format!(
                    "fraud ({})",
                    detail.fraud_type.as_deref().unwrap_or("type not given")
                )
            } else {
                "not fraud".to_string()
            }
        });
        let sharers = detail
            .account_sharers
            .iter()
            .map(|sharer| SharerView {
                is_this: sharer.beneficiary_id == row.beneficiary_id,
                beneficiary: sharer.beneficiary_id.clone(),
                payments: sharer.payments,
                last_payment: sharer.last_payment.clone().unwrap_or_default(),
            })
            .collect();
        AlertPage {
            layout,
            tx: TxView::from(row),
            facts,
            score: views::score(row.anomaly_score),
            threshold: threshold.map_or_else(|| "—".to_string(), |t| format!("{t:.4}")),
            score_comparison,
            above_threshold,
            reasons: detail
                .reasons
                .iter()
                .map(|reason| ReasonView {
                    category: reason.category.label().to_string(),
                    category_class: views::class_of(reason.category),
                    text: reason.text.clone(),
                    share: format!("{:.0} % of the score", reason.share * 100.0),
                })
                .collect(),
            reasons_raw: detail.reasons_raw.clone(),
            label,
            history: detail.history.iter().map(TxView::from).collect(),
            sharers,
            agent: or_dash(&row.agent_id),
            agent_activity: detail.agent_activity.iter().map(TxView::from).collect(),
            agent_payments: detail.agent_payments,
            agent_beneficiaries: detail.agent_beneficiaries,
            verdicts: detail.verdicts.iter().map(VerdictView::from).collect(),
            verdict_options: verdict_options(None),
            incident_id: detail.incident_id,
            control_day: detail.control_day.clone(),
            has_final: detail.verdicts.first().is_some_and(|v| {
                v.verdict == Verdict::ConfirmedFraud.as_str()
                    || v.verdict == Verdict::Dismissed.as_str()
            }),
            problem: None,
            kept: KeptInput::default(),
        }
    }

    /// The page again after a verdict that was not recorded: the problem named, the choice
    /// and the text kept, so nothing typed is lost.
    pub fn refused(mut self, problem: String, verdict: &str, kept: KeptInput) -> AlertPage {
        self.verdict_options = verdict_options(Some(verdict).filter(|v| !v.is_empty()));
        self.problem = Some(problem);
        self.kept = kept;
        self
    }
}

#[derive(Template)]
#[template(path = "model.html")]
pub struct ModelPage {
    pub layout: Layout,
    /// Set when there is no usable model.
    pub message: Option<String>,
    pub model: Option<ModelView>,
    /// How the current model's recent days compare with its held-out period.
    pub drift: Option<crate::drift::DriftView>,
    /// What the control sample estimates of this model's recall, from the drawn days it scored
    /// (empty: nothing decided yet).
    pub control: Vec<String>,
    /// Drawn days other models scored (left out of `control`).
    pub control_other_days: usize,
}

#[derive(Template)]
#[template(path = "control.html")]
pub struct ControlPage {
    pub layout: Layout,
    /// What was wrong with the draw form (shown above it, status 400).
    pub problem: Option<String>,
    /// What a draw just did.
    pub notice: Option<String>,
    /// The estimate in sentences (empty until a draw has a final verdict).
    pub estimate: Vec<String>,
    pub form_day: String,
    pub form_size: String,
    /// The size is per thousand of the day's unflagged payments (else a count).
    pub per_thousand: bool,
    pub max_size: usize,
    /// The estimate per model that scored drawn days, oldest first.
    pub models: Vec<ModelEstimateView>,
    /// Drawn days, newest first (the newest 60).
    pub days: Vec<ControlDayView>,
    /// Drawn days older than those listed.
    pub earlier_days: usize,
    /// Drawn payments awaiting a final verdict: day, state, payment.
    pub pending: Vec<(String, &'static str, TxView)>,
    pub pending_total: String,
}

/// What one model's drawn days say, as the Control page's table shows it.
#[derive(Debug, Clone)]
pub struct ModelEstimateView {
    pub version: String,
    pub days: String,
    pub decided: String,
    pub confirmed: String,
    /// The unflagged fraud share with its interval ("—": nothing decided).
    pub share: String,
    pub recall: String,
}

/// A drawn day as the Control page lists it.
#[derive(Debug, Clone)]
pub struct ControlDayView {
    pub day: String,
    pub population: String,
    pub drawn: String,
    pub decided: String,
    pub confirmed: String,
    pub drawn_by: String,
    pub drawn_at: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
pub struct AdminPage {
    pub layout: Layout,
    pub me: String,
    pub users: Vec<UserSummary>,
    pub audit: Vec<AuditEntry>,
    /// Entries recorded since the pages were anchored (not shown on them).
    pub newer: i64,
    pub pager: Pager,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub layout: Layout,
    /// The pre-session CSRF token (also in the `aegis_login_csrf` cookie).
    pub csrf: String,
    pub username: String,
    pub error: Option<String>,
    /// Shown while there are no users.
    pub setup_hint: Option<String>,
}

/// The login page's layout: no navigation, no user.
pub fn login_layout() -> Layout {
    plain_layout("Sign in", "login")
}

/// A layout without navigation or user, for pages shown before (or instead of) a session.
fn plain_layout(title: &str, active: &'static str) -> Layout {
    Layout {
        title: title.into(),
        active,
        user: None,
        csrf: String::new(),
        scripts: Vec::new(),
    }
}

/// An error inside the site's layout: what went wrong, in words, and the ways on.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub layout: Layout,
    pub heading: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(heading: &str, message: &str) -> ErrorPage {
        ErrorPage {
            layout: plain_layout(heading, "error"),
            heading: heading.to_string(),
            message: message.to_string(),
        }
    }
}

/// The legend of reason categories, in the order of [`Category::ALL`].
pub fn legend() -> Vec<CategoryLegend> {
    Category::ALL
        .into_iter()
        .map(|category| CategoryLegend {
            label: category.label().to_string(),
            class: views::class_of(category),
        })
        .collect()
}
