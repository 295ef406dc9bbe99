//! The overview's filters (dates, scheme, status, category, amount, search) and table sorting,
//! parsed from the query string and turned into a parameterised SQL `WHERE` clause.
//!
//! **User input never becomes SQL text**: values are bound as parameters, and the only
//! user-chosen identifiers (sort column and direction) are looked up in a fixed whitelist.

use aegis_core::sql::{Engine, Sql, Value};
use chrono::{Days, NaiveDate};
use serde::Deserialize;

use aegis_core::features::Category;

use crate::error::{AppError, AppResult};
use crate::views::query_string;

/// Rows per page of every table.
pub const PAGE_SIZE: i64 = 50;
/// Days shown when no date range (and no search) is given: the most recent month of data.
pub const DEFAULT_DAYS: u64 = 30;
/// Pages beyond this are refused: an OFFSET that deep is slow and nobody reads that far.
const MAX_PAGE: i64 = 100_000;

/// The raw query string of the overview, the API and the export. Every field is text so that a
/// bad value gets a clear message rather than a generic rejection.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ListParams {
    pub from: String,
    pub to: String,
    pub scheme: String,
    pub status: String,
    pub category: String,
    pub min_amount: String,
    pub max_amount: String,
    pub q: String,
    pub page: String,
    pub sort: String,
    pub dir: String,
}

/// A `status` filter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Normal,
    Anomaly,
    Error,
    /// Not scored yet (`status IS NULL`).
    Unscored,
}

impl StatusFilter {
    pub const ALL: [StatusFilter; 4] = [
        StatusFilter::Anomaly,
        StatusFilter::Normal,
        StatusFilter::Error,
        StatusFilter::Unscored,
    ];

    /// The value in the query string.
    pub fn param(self) -> &'static str {
        match self {
            StatusFilter::Normal => "NORMAL",
            StatusFilter::Anomaly => "ANOMALY",
            StatusFilter::Error => "ERROR",
            StatusFilter::Unscored => "UNSCORED",
        }
    }

    fn parse(text: &str) -> Option<StatusFilter> {
        StatusFilter::ALL
            .into_iter()
            .find(|status| status.param().eq_ignore_ascii_case(text))
    }
}

/// Validated filters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    /// First day included.
    pub from: Option<NaiveDate>,
    /// Last day included.
    pub to: Option<NaiveDate>,
    /// The range was chosen by [`Filters::apply_default_range`], not by the user.
    pub default_range: bool,
    pub scheme: Option<String>,
    pub status: Option<StatusFilter>,
    pub category: Option<Category>,
    pub min_paise: Option<i64>,
    pub max_paise: Option<i64>,
    /// Exact transaction id, beneficiary, account or agent id.
    pub q: Option<String>,
}

/// The newest date in the data (ignoring text that is not a timestamp).
pub fn last_date(sql: &mut dyn Sql) -> AppResult<Option<NaiveDate>> {
    // From the payments themselves (see cache::data_version).
    let last = aegis_core::store::newest_timestamp(sql)?;
    Ok(last.and_then(|text| NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()))
}

fn non_empty(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    (!trimmed.is_empty()).then_some(trimmed)
}

fn parse_date(name: &str, text: &str) -> AppResult<Option<NaiveDate>> {
    non_empty(text)
        .map(|text| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                AppError::BadRequest(format!("{name}: expected a date like 2025-03-01"))
            })
        })
        .transpose()
}

/// Rupees as typed (`2000`, `2,000.50`, `.50`) to paise, by the import's parser; empty is no
/// filter.
pub fn parse_rupees(name: &str, text: &str) -> AppResult<Option<i64>> {
    let Some(text) = non_empty(text) else {
        return Ok(None);
    };
    aegis_core::domain::parse_rupees(text)
        .map(Some)
        .map_err(|problem| {
            AppError::BadRequest(format!(
                "{name}: {problem}; expected an amount in rupees like 2000 or 1999.50"
            ))
        })
}

/// Paise as a plain rupee amount for a form field: `2000`, `1999.5`.
pub fn rupees_param(paise: i64) -> String {
    if paise % 100 == 0 {
        (paise / 100).to_string()
    } else {
        format!("{}.{:02}", paise / 100, paise % 100)
    }
}

impl Filters {
    /// Validates the filter part of `params`.
    pub fn parse(params: &ListParams) -> AppResult<Filters> {
        let from = parse_date("from", &params.from)?;
        let to = parse_date("to", &params.to)?;
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(AppError::BadRequest(
                "the 'from' date is after the 'to' date".into(),
            ));
        }
        let scheme = non_empty(&params.scheme).map(str::to_string);
        if scheme.as_ref().is_some_and(|s| s.len() > 64) {
            return Err(AppError::BadRequest("scheme: at most 64 characters".into()));
        }
        let status = non_empty(&params.status)
            .map(|text| {
                StatusFilter::parse(text).ok_or_else(|| {
                    AppError::BadRequest("status: one of ANOMALY, NORMAL, ERROR, UNSCORED".into())
                })
            })
            .transpose()?;
        let category = non_empty(&params.category)
            .map(|text| {
                Category::from_code(text).ok_or_else(|| {
                    let codes: Vec<&str> = Category::ALL.iter().map(|c| c.code()).collect();
                    AppError::BadRequest(format!("category: one of {}", codes.join(", ")))
                })
            })
            .transpose()?;
        let min_paise = parse_rupees("min_amount", &params.min_amount)?;
        let max_paise = parse_rupees("max_amount", &params.max_amount)?;
        let q = non_empty(&params.q).map(str::to_string);
        if q.as_ref().is_some_and(|q| q.len() > 128) {
            return Err(AppError::BadRequest(
                "search: at most 128 characters".into(),
            ));
        }
        Ok(Filters {
            from,
            to,
            default_range: false,
            scheme,
            status,
            category,
            min_paise,
            max_paise,
            q,
        })
    }

    /// With no dates and no search, limits the view to the last [`DEFAULT_DAYS`] days of data
    /// (ending at the newest timestamp), so the default page stays fast on a year of data.
    /// The newest date comes from `newest`, asked only when the range is needed (the state
    /// caches it: [`crate::state::AppState::default_range`]).
    pub fn apply_default_range(
        &mut self,
        newest: impl FnOnce() -> AppResult<Option<NaiveDate>>,
    ) -> AppResult<()> {
        if self.from.is_some() || self.to.is_some() || self.q.is_some() {
            return Ok(());
        }
        if let Some(last) = newest()? {
            self.to = Some(last);
            self.from = last.checked_sub_days(Days::new(DEFAULT_DAYS - 1));
            self.default_range = true;
        }
        Ok(())
    }

    /// ` WHERE …` (or nothing) over `transactions`, with its parameters in order.
    pub fn where_clause(&self, engine: Engine) -> (String, Vec<Value>) {
        let (conditions, params) = self.conditions(engine);
        if conditions.is_empty() {
            (String::new(), params)
        } else {
            (format!(" WHERE {}", conditions.join(" AND ")), params)
        }
    }

    /// The conditions over `transactions` (unqualified column names), with their parameters in
    /// order.
    pub fn conditions(&self, engine: Engine) -> (Vec<String>, Vec<Value>) {
        self.conditions_with(format!("{} = ?", engine.json_text("reasons", "$.category")))
    }

    /// The same conditions over `incident_alerts`, which has the same column names but keeps
    /// the category in a column of its own.
    pub fn alert_conditions(&self) -> (Vec<String>, Vec<Value>) {
        self.conditions_with("category = ?".to_string())
    }

    fn conditions_with(&self, category_condition: String) -> (Vec<String>, Vec<Value>) {
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        // Plain dates compare correctly against 'YYYY-MM-DD HH:MM:SS' text, and these two
        // conditions use the timestamp index.
        if let Some(from) = self.from {
            conditions.push("timestamp >= ?".to_string());
            params.push(Value::Text(from.format("%Y-%m-%d").to_string()));
        }
        if let Some(to) = self.to {
            conditions.push("timestamp < ?".to_string());
            let next = to.checked_add_days(Days::new(1)).unwrap_or(to);
            params.push(Value::Text(next.format("%Y-%m-%d").to_string()));
        }
        if let Some(scheme) = &self.scheme {
            conditions.push("scheme = ?".to_string());
            params.push(Value::Text(scheme.clone()));
        }
        // Status values come from a fixed enum, so they are written as literals: that lets
        // SQLite use the partial index on anomalies (`WHERE status = 'ANOMALY'`).
        match self.status {
            None => {}
            Some(StatusFilter::Unscored) => conditions.push("status IS NULL".to_string()),
            Some(StatusFilter::Normal) => conditions.push("status = 'NORMAL'".to_string()),
            Some(StatusFilter::Anomaly) => conditions.push("status = 'ANOMALY'".to_string()),
            Some(StatusFilter::Error) => conditions.push("status = 'ERROR'".to_string()),
        }
        if let Some(category) = self.category {
            conditions.push(category_condition);
            params.push(Value::Text(category.code().to_string()));
        }
        if let Some(min) = self.min_paise {
            conditions.push("amount_paise >= ?".to_string());
            params.push(Value::Int(min));
        }
        if let Some(max) = self.max_paise {
            conditions.push("amount_paise <= ?".to_string());
            params.push(Value::Int(max));
        }
        if let Some(q) = &self.q {
            // Each alternative has its own index, so SQLite answers this with index lookups.
            conditions.push(
                "(transaction_id = ? OR beneficiary_id = ? OR account_id = ? OR agent_id = ?)"
                    .to_string(),
            );
            params.push(q.parse::<i64>().map_or(Value::Null, Value::Int));
            for _ in 0..3 {
                params.push(Value::Text(q.clone()));
            }
        }
        (conditions, params)
    }

    /// The filters as query-string pairs (dates as applied, so a link reproduces the view).
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let date = |d: Option<NaiveDate>| {
            d.map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default()
        };
        vec![
            ("from", date(self.from)),
            ("to", date(self.to)),
            ("scheme", self.scheme.clone().unwrap_or_default()),
            (
                "status",
                self.status
                    .map(|s| s.param().to_string())
                    .unwrap_or_default(),
            ),
            (
                "category",
                self.category
                    .map(Category::code)
                    .unwrap_or_default()
                    .to_string(),
            ),
            (
                "min_amount",
                self.min_paise.map(rupees_param).unwrap_or_default(),
            ),
            (
                "max_amount",
                self.max_paise.map(rupees_param).unwrap_or_default(),
            ),
            ("q", self.q.clone().unwrap_or_default()),
        ]
    }

    /// [`pairs`](Self::pairs) as `from=…&to=…`.
    pub fn query_string(&self) -> String {
        query_string(self.pairs())
    }

    /// The applied date range in words.
    pub fn range_text(&self) -> String {
        let date = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
        let range = match (self.from, self.to) {
            (Some(from), Some(to)) => format!("{} to {}", date(from), date(to)),
            (Some(from), None) => format!("from {}", date(from)),
            (None, Some(to)) => format!("up to {}", date(to)),
            (None, None) => "all dates".to_string(),
        };
        if self.default_range {
            format!("{range} (default: the last {DEFAULT_DAYS} days of data)")
        } else {
            range
        }
    }

    /// All filters in words, for the audit log.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.range_text()];
        for (key, value) in self.pairs().into_iter().skip(2) {
            if !value.is_empty() {
                parts.push(format!("{key}={value}"));
            }
        }
        parts.join(", ")
    }
}

/// Sortable columns of the transaction table: the whitelist that maps names to SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    Id,
    Time,
    Scheme,
    Beneficiary,
    Amount,
    District,
    Status,
    Score,
}

impl SortColumn {
    pub const ALL: [SortColumn; 8] = [
        SortColumn::Id,
        SortColumn::Time,
        SortColumn::Scheme,
        SortColumn::Beneficiary,
        SortColumn::Amount,
        SortColumn::District,
        SortColumn::Status,
        SortColumn::Score,
    ];

    /// The name in the query string.
    pub fn param(self) -> &'static str {
        match self {
            SortColumn::Id => "transaction_id",
            SortColumn::Time => "timestamp",
            SortColumn::Scheme => "scheme",
            SortColumn::Beneficiary => "beneficiary_id",
            SortColumn::Amount => "amount",
            SortColumn::District => "district",
            SortColumn::Status => "status",
            SortColumn::Score => "anomaly_score",
        }
    }

    /// Whether the column can hold NULL on `engine` (where the order of NULLs matters, and
    /// spelling it out can cost the index its order). PostgreSQL's `timestamp` is NOT NULL;
    /// SQLite's order needs no words.
    fn may_be_null(self, engine: Engine) -> bool {
        match self {
            SortColumn::Id | SortColumn::Scheme | SortColumn::Beneficiary => false,
            SortColumn::Time => engine == Engine::Sqlite,
            SortColumn::Amount | SortColumn::District | SortColumn::Status | SortColumn::Score => {
                true
            }
        }
    }

    /// The SQL column: a fixed string, never user text.
    fn sql(self) -> &'static str {
        match self {
            SortColumn::Id => "transaction_id",
            SortColumn::Time => "timestamp",
            SortColumn::Scheme => "scheme",
            SortColumn::Beneficiary => "beneficiary_id",
            SortColumn::Amount => "amount_paise",
            SortColumn::District => "district",
            SortColumn::Status => "status",
            SortColumn::Score => "anomaly_score",
        }
    }
}

/// Table order: a whitelisted column and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: SortColumn,
    pub descending: bool,
}

impl Default for Sort {
    /// Newest first.
    fn default() -> Self {
        Sort {
            column: SortColumn::Time,
            descending: true,
        }
    }
}

impl Sort {
    /// Looks the column up in the whitelist; anything else falls back to newest first.
    pub fn parse(column: &str, direction: &str) -> Sort {
        let Some(column) = SortColumn::ALL
            .into_iter()
            .find(|c| c.param() == column.trim())
        else {
            return Sort::default();
        };
        let descending = match direction.trim() {
            "asc" => false,
            "desc" => true,
            _ => !matches!(
                column,
                SortColumn::Scheme | SortColumn::Beneficiary | SortColumn::District
            ),
        };
        Sort { column, descending }
    }

    pub fn dir_param(self) -> &'static str {
        if self.descending { "desc" } else { "asc" }
    }

    /// ` ORDER BY …`, ties broken by id so pages never overlap.
    pub fn order_by(self, engine: Engine) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        match self.column {
            SortColumn::Id => format!(" ORDER BY transaction_id {dir}"),
            column => format!(
                " ORDER BY {} {dir}{}, transaction_id {dir}",
                column.sql(),
                if column.may_be_null(engine) {
                    engine.nulls_as_sqlite(self.descending)
                } else {
                    ""
                }
            ),
        }
    }
}

/// A 1-based page number from the query string (bad or missing: 1).
pub fn parse_page(text: &str) -> i64 {
    text.trim().parse::<i64>().unwrap_or(1).clamp(1, MAX_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> ListParams {
        let mut params = ListParams::default();
        for (key, value) in pairs {
            let value = value.to_string();
            match *key {
                "from" => params.from = value,
                "to" => params.to = value,
                "status" => params.status = value,
                "category" => params.category = value,
                "min_amount" => params.min_amount = value,
                "q" => params.q = value,
                _ => unreachable!(),
            }
        }
        params
    }

    #[test]
    fn rupee_amounts_become_paise() {
        assert_eq!(parse_rupees("x", "2000").unwrap(), Some(200_000));
        assert_eq!(parse_rupees("x", "₹2,000.5").unwrap(), Some(200_050));
        assert_eq!(parse_rupees("x", " ").unwrap(), None);
        assert!(parse_rupees("x", "-5").is_err());
        assert!(parse_rupees("x", "1.234").is_err());
        assert_eq!(
            parse_rupees("x", ".50").unwrap(),
            Some(50),
            "as the CSV import reads it"
        );
        let too_large = parse_rupees("x", "99999999999999999999").unwrap_err();
        assert!(
            too_large.to_string().contains("above the largest payment"),
            "{too_large}"
        );
        assert_eq!(rupees_param(200_050), "2000.50");
    }

    #[test]
    fn user_values_are_bound_never_spliced_into_sql() {
        let filters =
            Filters::parse(&params(&[("q", "' OR 1=1 --"), ("status", "anomaly")])).unwrap();
        let (sql, values) = filters.where_clause(Engine::Sqlite);
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(values.contains(&Value::Text("' OR 1=1 --".into())));
        assert!(sql.contains("status = 'ANOMALY'"));
    }

    #[test]
    fn unknown_sort_columns_fall_back_to_newest_first() {
        assert_eq!(
            Sort::parse("transaction_id; DROP TABLE users", "asc"),
            Sort::default()
        );
        let sort = Sort::parse("amount", "asc");
        assert_eq!(
            sort.order_by(Engine::Sqlite),
            " ORDER BY amount_paise ASC, transaction_id ASC"
        );
        assert_eq!(
            sort.order_by(Engine::Postgres),
            " ORDER BY amount_paise ASC NULLS FIRST, transaction_id ASC",
            "NULLs sort where SQLite puts them"
        );
        assert_eq!(
            Sort::parse("time", "desc").order_by(Engine::Postgres),
            " ORDER BY timestamp DESC, transaction_id DESC",
            "a column that cannot be NULL there keeps an order its index gives"
        );
    }

    #[test]
    fn bad_dates_and_categories_are_explained() {
        let message = Filters::parse(&params(&[("from", "yesterday")]))
            .unwrap_err()
            .to_string();
        assert!(message.contains("2025-03-01"), "{message}");
        assert!(Filters::parse(&params(&[("category", "nope")])).is_err());
        assert!(Filters::parse(&params(&[("from", "2025-02-01"), ("to", "2025-01-01")])).is_err());
    }

    #[test]
    fn links_repeat_the_applied_filters() {
        let filters = Filters::parse(&params(&[
            ("from", "2025-01-01"),
            ("min_amount", "10.5"),
            ("q", "B 1"),
        ]))
        .unwrap();
        assert_eq!(
            filters.query_string(),
            "from=2025-01-01&min_amount=10.50&q=B+1"
        );
    }
}
