//! Test fixtures: a router on a temporary database with a few scored payments, users made with
//! the crate's own functions, and small request helpers driving the router without a socket.

use std::path::PathBuf;
use std::time::Duration;

use aegis_core::engine::Target;
use aegis_core::pg::ScratchDatabase;
use aegis_core::sql::{Engine, Sql};
use aegis_core::values;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use rusqlite::Connection;
use tempfile::TempDir;
use tower::ServiceExt;

use dashboard::database::off_runtime;
use dashboard::users::{self, Role};
use dashboard::{AppState, ServeConfig, router};

pub const PASSWORD: &str = "correct horse battery";

/// The reasons JSON of an anomaly, as the monitor writes it.
pub fn reasons(category: &str, text: &str) -> String {
    serde_json::json!({
        "category": category,
        "reasons": [{"feature": "amount_vs_scheme_log", "category": category, "share": 0.8, "text": text}],
    })
    .to_string()
}

/// A payment row to insert.
pub struct Payment {
    pub id: i64,
    pub beneficiary: &'static str,
    pub account: &'static str,
    pub agent: &'static str,
    pub scheme: &'static str,
    pub paise: i64,
    pub timestamp: &'static str,
    pub status: Option<&'static str>,
    pub score: Option<f64>,
    pub reasons: Option<String>,
    pub label: Option<(bool, &'static str)>,
}

impl Payment {
    /// A ₹2,000 PM-KISAN payment of beneficiary B1 (account A1, counter G1) at `timestamp`:
    /// scored `status` (an anomaly scores 9 with an amount reason, a normal row 0.1), labeled
    /// fraud of type `fraud_type` or not (`None`: no label).
    pub fn simple(
        id: i64,
        timestamp: &'static str,
        status: Option<&'static str>,
        label: Option<bool>,
        fraud_type: &'static str,
    ) -> Payment {
        let anomaly = status == Some("ANOMALY");
        Payment {
            id,
            beneficiary: "B1",
            account: "A1",
            agent: "G1",
            scheme: "PM-KISAN",
            paise: 200_000,
            timestamp,
            status,
            score: status.map(|_| if anomaly { 9.0 } else { 0.1 }),
            reasons: anomaly.then(|| reasons("amount", "unusual")),
            label: label.map(|fraud| (fraud, if fraud { fraud_type } else { "" })),
        }
    }
}

/// Six payments: two anomalies in March 2025 sharing account A1, normal and unscored rows, and
/// one old payment (December 2024) outside the default 30-day window.
pub fn fixture_payments() -> Vec<Payment> {
    let normal = |id, beneficiary, scheme, paise, timestamp| Payment {
        id,
        beneficiary,
        account: "A9",
        agent: "G2",
        scheme,
        paise,
        timestamp,
        status: Some("NORMAL"),
        score: Some(0.01),
        reasons: None,
        label: Some((false, "")),
    };
    vec![
        Payment {
            account: "A1",
            agent: "G1",
            ..normal(1, "B1", "PM-KISAN", 200_000, "2025-03-01 10:00:00")
        },
        Payment {
            id: 2,
            beneficiary: "B1",
            account: "A1",
            agent: "G1",
            scheme: "PM-KISAN",
            paise: 5_000_000,
            timestamp: "2025-03-02 11:00:00",
            status: Some("ANOMALY"),
            score: Some(0.9),
            reasons: Some(reasons(
                "amount",
                "₹50,000 is 25.0× the usual PM-KISAN payment of ₹2,000",
            )),
            label: Some((true, "inflated_amount")),
        },
        Payment {
            id: 3,
            beneficiary: "B2",
            account: "A1",
            agent: "G1",
            scheme: "MGNREGA",
            paise: 30_000,
            timestamp: "2025-03-03 02:00:00",
            status: Some("ANOMALY"),
            score: Some(0.7),
            reasons: Some(reasons(
                "shared_account",
                "account A1 received payments for 2 beneficiaries",
            )),
            label: None,
        },
        normal(4, "B3", "PENSION", 100_000, "2025-03-05 09:00:00"),
        Payment {
            status: None,
            score: None,
            label: None,
            ..normal(5, "B4", "PENSION", 100_000, "2025-03-10 15:30:00")
        },
        normal(6, "B5", "PM-KISAN", 200_000, "2024-12-01 10:00:00"),
    ]
}

/// SQLite, and PostgreSQL when a test server is configured (it must be in CI).
pub use aegis_core::pg::test_engines as engines;

/// Inserts `payment` with its id and, if it has one, its score, as the monitor would have
/// written it: into `transactions` on SQLite, into the payments and their scores on
/// PostgreSQL.
pub fn insert_on(sql: &mut dyn Sql, payment: &Payment) {
    let engine = sql.engine();
    if engine == Engine::Postgres {
        let time = aegis_core::time::parse_timestamp(payment.timestamp).unwrap();
        aegis_core::pg::ensure_months(sql, time, time).unwrap();
    }
    let payment_values = values![
        payment.id,
        format!("REF-{}", payment.id),
        payment.beneficiary,
        payment.account,
        payment.agent,
        payment.scheme,
        payment.paise,
        payment.timestamp,
        payment.label.map(|(fraud, _)| fraud),
        payment
            .label
            .and_then(|(fraud, kind)| fraud.then_some(kind)),
    ];
    let score_values = values![
        payment.status,
        payment.score,
        payment.reasons.as_deref(),
        payment.status.map(|_| "m-test"),
    ];
    match engine {
        Engine::Sqlite => {
            let mut all = payment_values.to_vec();
            all.extend_from_slice(score_values);
            sql.execute(
                "INSERT INTO transactions (transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme, \
                 amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type, status, anomaly_score, reasons, model_version) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 25.6, 85.1, 'Patna', ?9, ?10, ?11, ?12, ?13, ?14)",
                &all,
            )
            .unwrap();
        }
        Engine::Postgres => {
            sql.execute(
                "INSERT INTO transaction_events (transaction_id, transaction_ref, beneficiary_id, account_id, agent_id, scheme, \
                 amount_paise, timestamp, latitude, longitude, district, is_anomaly, fraud_type) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 25.6, 85.1, 'Patna', ?9, ?10)",
                payment_values,
            )
            .unwrap();
            if payment.status.is_some() {
                let mut all = vec![payment.id.into()];
                all.extend_from_slice(score_values);
                all.push(payment.timestamp.into());
                sql.execute(
                    "INSERT INTO transaction_scores (transaction_id, status, anomaly_score, reasons, model_version, timestamp) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    &all,
                )
                .unwrap();
            }
            // Ids given here bypass the identity: later inserts must continue after them.
            sql.execute(
                "SELECT setval(pg_get_serial_sequence('transaction_events', 'transaction_id'), \
                 (SELECT max(transaction_id) FROM transaction_events))",
                &[],
            )
            .unwrap();
        }
    }
}

/// A response, read whole.
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The value of cookie `name` set by this response.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies().iter().find_map(|cookie| {
            let (pair, _) = cookie.split_once(';').unwrap_or((cookie, ""));
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| value.to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The value of the first hidden `csrf` field in the page.
    pub fn csrf_field(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("page has a csrf field") + marker.len();
        self.body[start..start + 64].to_string()
    }
}

/// A logged-in browser.
#[derive(Clone)]
pub struct Login {
    /// `aegis_session=…`, ready for a `Cookie` header.
    pub cookie: String,
    pub csrf: String,
}

/// A dashboard on a temporary database.
pub struct TestApp {
    pub dir: TempDir,
    /// The SQLite file (on PostgreSQL: a path in `dir` that nothing uses).
    pub db_path: PathBuf,
    pub target: Target,
    pub app: Router,
    pub state: AppState,
    /// The PostgreSQL database, dropped with the app (declared last: dropped after the pool).
    scratch: Option<ScratchDatabase>,
}

impl TestApp {
    /// The fixture payments and two users: `admin` (admin) and `alice` (auditor), on SQLite.
    pub fn new() -> TestApp {
        TestApp::new_on(Engine::Sqlite)
    }

    /// [`new`](Self::new) on `engine`.
    pub fn new_on(engine: Engine) -> TestApp {
        let app = TestApp::empty_on(engine);
        app.write(|sql| {
            for payment in fixture_payments() {
                insert_on(sql, &payment);
            }
            // As the monitor does when it scores them: the anomalies get their incidents.
            aegis_core::incidents::link_backlog(sql, 6)?;
            users::add_user(sql, "admin", PASSWORD, Role::Admin, 0)?;
            users::add_user(sql, "alice", PASSWORD, Role::Auditor, 0)?;
            Ok(())
        });
        app
    }

    /// No payments, no users, on SQLite.
    pub fn empty() -> TestApp {
        TestApp::empty_on(Engine::Sqlite)
    }

    /// No payments, no users, on `engine`.
    pub fn empty_on(engine: Engine) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("transactions.db");
        match engine {
            Engine::Sqlite => {
                drop(aegis_core::db::open(&db_path).unwrap());
                TestApp::on(dir, db_path)
            }
            Engine::Postgres => {
                let server = aegis_core::pg::test_server().expect("a PostgreSQL test server");
                let scratch =
                    off_runtime(|| ScratchDatabase::create(&server, "dashboard").unwrap());
                let target = Target::Postgres(scratch.url().to_string());
                let mut app = TestApp::serving(dir, db_path, target);
                app.scratch = Some(scratch);
                app
            }
        }
    }

    /// A second dashboard server on this one's database, as behind a load balancer (drop it
    /// before this one: the PostgreSQL database goes with this one).
    pub fn second_server(&self) -> TestApp {
        TestApp::serving(
            tempfile::tempdir().unwrap(),
            self.db_path.clone(),
            self.target.clone(),
        )
    }

    /// A dashboard on the database at `db_path` (in `dir`, whose `modeling/` it reads).
    pub fn on(dir: TempDir, db_path: PathBuf) -> TestApp {
        let target = Target::Sqlite(db_path.clone());
        TestApp::serving(dir, db_path, target)
    }

    fn serving(dir: TempDir, db_path: PathBuf, target: Target) -> TestApp {
        let mut config = ServeConfig::new(target.clone(), dir.path().join("modeling"));
        config.live_interval = Duration::from_millis(50);
        let state = AppState::open(&config).unwrap();
        TestApp {
            app: router(state.clone()),
            state,
            db_path,
            target,
            dir,
            scratch: None,
        }
    }

    /// A separate read-write connection (the tests' own view of an SQLite database).
    pub fn conn(&self) -> Connection {
        assert!(
            matches!(self.target, Target::Sqlite(_)),
            "conn() is SQLite's: use write() or count() in tests on both engines"
        );
        aegis_core::db::open(&self.db_path).unwrap()
    }

    /// Runs `work` in one transaction on the dashboard's own write connection, either engine.
    pub fn write<T: Send>(
        &self,
        work: impl FnOnce(&mut dyn Sql) -> dashboard::error::AppResult<T> + Send,
    ) -> T {
        off_runtime(|| self.state.db().write(work).unwrap())
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        TestResponse {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&self, uri: &str, login: Option<&Login>) -> TestResponse {
        let mut request = Request::get(uri);
        if let Some(login) = login {
            request = request.header(header::COOKIE, &login.cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// POSTs a form; `cookie` is a whole `Cookie` header value.
    pub async fn post_form(
        &self,
        uri: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
    ) -> TestResponse {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{k}={}", dashboard::views::url_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request =
            Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    /// Submits the login form as a browser would (GET for the CSRF cookie, then POST).
    pub async fn try_login(&self, username: &str, password: &str) -> TestResponse {
        let form = self.get("/login", None).await;
        let token = form
            .cookie("aegis_login_csrf")
            .expect("login page sets its CSRF cookie");
        assert_eq!(form.csrf_field(), token);
        let cookie = format!("aegis_login_csrf={token}");
        self.post_form(
            "/login",
            Some(&cookie),
            &[
                ("csrf", &token),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Logs in and reads the session's CSRF token from a page.
    pub async fn login(&self, username: &str) -> Login {
        let response = self.try_login(username, PASSWORD).await;
        assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.body);
        let token = response.cookie("aegis_session").expect("session cookie");
        let mut login = Login {
            cookie: format!("aegis_session={token}"),
            csrf: String::new(),
        };
        let page = self.get("/alerts", Some(&login)).await;
        assert_eq!(page.status, StatusCode::OK);
        login.csrf = page.csrf_field();
        login
    }

    /// Ids of a `/api/transactions` answer.
    pub async fn api_ids(&self, query: &str, login: &Login) -> Vec<i64> {
        let response = self
            .get(&format!("/api/transactions?{query}"), Some(login))
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        response.json()["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["transaction_id"].as_i64().unwrap())
            .collect()
    }

    /// Ids of an `/export.csv` answer (first column after the header).
    pub async fn export_ids(&self, query: &str, login: &Login) -> Vec<i64> {
        let response = self.get(&format!("/export.csv?{query}"), Some(login)).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let mut lines = response.body.lines();
        assert_eq!(lines.next(), Some(dashboard::routes::export::CSV_HEADER));
        lines
            .map(|line| line.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    /// Creates an API key with the crate's own function.
    pub fn api_key(&self, name: &str, scopes: &[dashboard::apikeys::Scope]) -> String {
        self.write(|sql| dashboard::apikeys::create(sql, name, scopes, 1))
    }

    /// A machine client's request: JSON body, the key as a bearer token.
    pub async fn api(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: &str,
    ) -> TestResponse {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        self.send(request.body(Body::from(body.to_string())).unwrap())
            .await
    }

    /// Stores `payment` (and its score), either engine.
    pub fn insert(&self, payment: &Payment) {
        self.write(|sql| {
            insert_on(sql, payment);
            Ok(())
        });
    }

    /// Runs one statement, either engine.
    pub fn exec(&self, statement: &str) {
        self.write(|sql| Ok(sql.execute(statement, &[])?));
    }

    /// The first column of the first row of `statement`, as text (`None`: no row, or NULL).
    pub fn text(&self, statement: &str) -> Option<String> {
        self.write(|sql| Ok(sql.value::<Option<String>>(statement, &[])?))
            .flatten()
    }

    /// The integer `sql` answers (a count), either engine.
    pub fn count(&self, sql: &str) -> i64 {
        off_runtime(|| self.state.db().read(|db| Ok(db.query_int(sql, &[])?)))
            .unwrap()
            .unwrap_or_default()
    }
}

impl Drop for TestApp {
    /// Drops the PostgreSQL database where its blocking client may run.
    fn drop(&mut self) {
        let scratch = self.scratch.take();
        off_runtime(move || drop(scratch));
    }
}
