//! The machine API (`/api/v1`): keys, payments in, decisions, the alerts feed, verdicts.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::{StatusCode, header};
use serde_json::{Value, json};

use dashboard::apikeys::Scope;

use crate::helpers::{TestApp, engines};

fn payment(reference: &str, rupees: &str) -> Value {
    json!({
        "transaction_ref": reference,
        "beneficiary_id": "B7",
        "account_id": "A7",
        "agent_id": "G7",
        "scheme": "PENSION",
        "amount": rupees,
        "timestamp": "2025-03-11T10:00:00+05:30",
        "latitude": 25.6,
        "longitude": 85.1,
        "district": "Patna"
    })
}

/// How many payments are stored with `reference` (a test's own constant, quoted as is).
fn stored(app: &TestApp, reference: &str) -> i64 {
    app.count(&format!(
        "SELECT count(*) FROM transactions WHERE transaction_ref = '{reference}'"
    ))
}

#[tokio::test]
async fn requests_without_a_live_key_get_401_and_no_detail() {
    for engine in engines() {
        let app = TestApp::new_on(engine);
        let key = app.api_key("switch", &[Scope::Ingest]);
        let body = payment("P1", "1000").to_string();
        for bad in [
            None,
            Some("nonsense".to_string()),
            Some(format!("{}x", &key[..key.len() - 1])),
        ] {
            let response = app
                .api("POST", "/api/v1/payments", bad.as_deref(), &body)
                .await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED);
            assert_eq!(response.json(), json!({"error": "unauthorized"}));
            assert_eq!(response.header(header::WWW_AUTHENTICATE), Some("Bearer"));
        }
        for uri in [
            "/api/v1/alerts",
            "/api/v1/alerts?after=a1.0",
            "/api/v1/control",
            "/api/v1/control/draws/2025-03-03",
        ] {
            let response = app.api("GET", uri, None, "").await;
            assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{uri}");
            assert!(!response.body.contains("B1"));
        }
        let draw = app
            .api(
                "POST",
                "/api/v1/control/draws",
                None,
                r#"{"day": "2025-03-03", "payments": 5}"#,
            )
            .await;
        assert_eq!(draw.status, StatusCode::UNAUTHORIZED);
        assert_eq!(stored(&app, "P1"), 0);

        // The key works, counts its uses, and stops at revocation.
        let response = app.api("POST", "/api/v1/payments", Some(&key), &body).await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        assert_eq!(
            app.count("SELECT uses FROM api_keys WHERE name = 'switch'"),
            1
        );
        // The scheme's name is case-insensitive: a client sending `bearer` is not refused.
        {
            use tower::ServiceExt;
            let request = axum::http::Request::post("/api/v1/payments")
                .header(header::AUTHORIZATION, format!("bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(payment("P1b", "1000").to_string()))
                .unwrap();
            let response = app.app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(stored(&app, "P1b"), 1);
        }
        // Scopes are enforced: an ingest key cannot read alerts or record verdicts.
        let response = app.api("GET", "/api/v1/alerts", Some(&key), "").await;
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert!(
            response.json()["error"]
                .as_str()
                .unwrap()
                .contains("--scope read")
        );
        let response = app
            .api(
                "POST",
                "/api/v1/verdicts",
                Some(&key),
                r#"{"transaction_id":2,"verdict":"dismissed"}"#,
            )
            .await;
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        app.write(|sql| dashboard::apikeys::revoke(sql, "switch", 2));
        let response = app
            .api(
                "POST",
                "/api/v1/payments",
                Some(&key),
                &payment("P2", "1").to_string(),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED);
        assert_eq!(stored(&app, "P2"), 0);
        assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action IN ('apikey_created', 'apikey_revoked')"
        ),
        2
    );
    }
}

#[tokio::test]
async fn a_bad_payment_never_loses_the_good_ones_unless_the_batch_is_atomic() {
    for engine in engines() {
        let app = TestApp::new_on(engine);
        let key = app.api_key("etl", &[Scope::Ingest]);
        let mut no_zone = payment("P3", "10");
        no_zone["timestamp"] = json!("2025-03-11 10:00:00");
        let batch = json!({"payments": [
            payment("P1", "1000.50"),
            payment("P2", "12abc"),
            no_zone,
            payment("P1", "1000.50"),
            payment("P4", "₹1,20,000"),
        ]});
        let response = app
            .api("POST", "/api/v1/payments", Some(&key), &batch.to_string())
            .await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let body = response.json();
        assert_eq!(
            (body["accepted"].as_i64(), body["rejected"].as_i64()),
            (Some(2), Some(3))
        );
        let results = body["results"].as_array().unwrap();
        let field = |index: usize| results[index]["error"]["field"].as_str().unwrap();
        assert_eq!(results[0]["result"], "accepted");
        assert_eq!(
            (field(1), field(2), field(3)),
            ("amount", "timestamp", "transaction_ref")
        );
        assert!(
            results[2]["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("UTC offset")
        );
        assert!(
            results[3]["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("repeats item 0")
        );
        assert_eq!(
            (stored(&app, "P1"), stored(&app, "P2"), stored(&app, "P4")),
            (1, 0, 1)
        );
        let paise = app.count("SELECT amount_paise FROM transactions WHERE transaction_ref = 'P4'");
        assert_eq!(paise, 12_000_000, "the CSV import's rupee rules");

        // All or nothing: one refusal stores none.
        let atomic = json!([payment("P5", "5"), payment("P6", "-5")]);
        let response = app
            .api(
                "POST",
                "/api/v1/payments?atomic=true",
                Some(&key),
                &atomic.to_string(),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(response.json()["stored"], false);
        assert_eq!(response.json()["results"][0]["result"], "rejected");
        assert_eq!(
            response.json()["results"][0]["transaction_ref"],
            "P5",
            "the payment left unstored is named"
        );
        assert_eq!(stored(&app, "P5"), 0);
        // The option sent in the body instead of the query is named, not taken for a field.
        let misplaced = json!({"payments": [payment("P5", "5")], "atomic": true});
        let response = app
            .api(
                "POST",
                "/api/v1/payments",
                Some(&key),
                &misplaced.to_string(),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            response
                .body
                .contains("go in the query string (?atomic=true)"),
            "{}",
            response.body
        );
        assert_eq!(stored(&app, "P5"), 0);
        // Nothing valid at all: 422 too.
        let response = app
            .api(
                "POST",
                "/api/v1/payments",
                Some(&key),
                &json!({"beneficiary_id": "B1"}).to_string(),
            )
            .await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.json()["results"][0]["error"]["field"],
            "transaction_ref"
        );
    }
}

#[tokio::test]
async fn concurrent_retries_store_a_payment_once_and_return_its_original_result() {
    let app = TestApp::new();
    let key = app.api_key("switch", &[Scope::Ingest]);
    let batch = json!([
        payment("R1", "700"),
        payment("R2", "800"),
        payment("R3", "900")
    ])
    .to_string();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (router, key, batch) = (app.app.clone(), key.clone(), batch.clone());
        clients.push(tokio::spawn(async move {
            use tower::ServiceExt;
            let request = axum::http::Request::post("/api/v1/payments")
                .header(header::AUTHORIZATION, format!("Bearer {key}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(axum::body::Body::from(batch))
                .unwrap();
            let response = router.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }));
    }
    let mut answers = Vec::new();
    for client in clients {
        answers.push(client.await.unwrap());
    }
    for reference in ["R1", "R2", "R3"] {
        assert_eq!(stored(&app, reference), 1, "{reference} stored once");
    }
    let accepted: usize = answers
        .iter()
        .map(|a| a["accepted"].as_u64().unwrap() as usize)
        .sum();
    let duplicates: usize = answers
        .iter()
        .map(|a| a["duplicates"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!((accepted, duplicates), (3, 21));
    let ids: BTreeSet<String> = answers
        .iter()
        .map(|a| {
            a["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["transaction_id"].to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "every retry names the same transactions: {ids:?}"
    );

    // The same ref for a different payment is a client error, not a retry.
    let response = app
        .api(
            "POST",
            "/api/v1/payments",
            Some(&key),
            &payment("R1", "701").to_string(),
        )
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    let reason = response.json()["results"][0]["error"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("different payment"), "{reason}");
    // An ingest-only key is not told what the stored payment is (a guessed ref would read
    // someone's payment); a key that may read payments is.
    assert!(
        !reason.contains("₹") && !reason.contains("as transaction"),
        "{reason}"
    );
    let reader = app.api_key("switch-reader", &[Scope::Ingest, Scope::Read]);
    let response = app
        .api(
            "POST",
            "/api/v1/payments",
            Some(&reader),
            &payment("R1", "701").to_string(),
        )
        .await;
    let reason = response.json()["results"][0]["error"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("as transaction"), "{reason}");
    // Refs stored before the API (the fixture's REF-2, from another writer) are known too.
    let mut old = payment("REF-2", "50000");
    old["beneficiary_id"] = json!("B1");
    let response = app
        .api("POST", "/api/v1/payments", Some(&key), &old.to_string())
        .await;
    assert_eq!(response.json()["results"][0]["result"], "rejected");
    // And the database itself refuses a second row with a registered ref, whoever writes it.
    let direct = app.conn().execute(
        "INSERT INTO transactions (transaction_ref, beneficiary_id, scheme) VALUES ('R1', 'B7', 'PENSION')",
        [],
    );
    assert!(
        direct.is_err(),
        "the unique constraint holds for every writer"
    );
}

#[tokio::test]
async fn oversized_malformed_and_odd_bodies_get_precise_errors_and_store_nothing() {
    for engine in engines() {
        let app = TestApp::new_on(engine);
        let key = app.api_key("etl", &[Scope::Ingest]);
        let before = app.count("SELECT count(*) FROM transactions");
        let huge = format!("[\"{}\"]", "x".repeat(10 * 1024 * 1024));
        let response = app.api("POST", "/api/v1/payments", Some(&key), &huge).await;
        assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(response.json()["error"].as_str().unwrap().contains("4 MiB"));
        let many = serde_json::to_string(&vec![json!({}); 100_000]).unwrap();
        let response = app.api("POST", "/api/v1/payments", Some(&key), &many).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            response.json()["error"]
                .as_str()
                .unwrap()
                .contains("at most 5000")
        );
        let response = app
            .api(
                "POST",
                "/api/v1/payments",
                Some(&key),
                "{\"transaction_ref\": ",
            )
            .await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST);
        assert!(
            response.json()["error"]
                .as_str()
                .unwrap()
                .contains("not valid JSON")
        );
        for (query, needle) in [
            ("wait=10s", "at most 5s"),
            ("wait=soon", "not a duration"),
            ("wiat=1s", "unknown parameter"),
        ] {
            let response = app
                .api(
                    "POST",
                    &format!("/api/v1/payments?{query}"),
                    Some(&key),
                    &payment("Q", "1").to_string(),
                )
                .await;
            assert_eq!(response.status, StatusCode::BAD_REQUEST, "{query}");
            assert!(
                response.json()["error"].as_str().unwrap().contains(needle),
                "{query}: {}",
                response.body
            );
        }
        let mut typed = payment("T1", "1");
        typed["latitude"] = json!({"deg": 25});
        let response = app
            .api("POST", "/api/v1/payments", Some(&key), &typed.to_string())
            .await;
        assert_eq!(response.json()["results"][0]["error"]["field"], "latitude");
        assert_eq!(app.count("SELECT count(*) FROM transactions"), before);
        // The server keeps serving.
        let response = app
            .api(
                "POST",
                "/api/v1/payments",
                Some(&key),
                &payment("OK", "1").to_string(),
            )
            .await;
        assert_eq!(response.status, StatusCode::OK);
    }
}

/// Scores every unscored row up to `upto` as the monitor does: scores and mark in one commit.
fn score_upto(conn: &rusqlite::Connection, upto: i64) {
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         UPDATE transactions SET status = CASE WHEN transaction_id % 3 = 0 THEN 'ANOMALY' ELSE 'NORMAL' END,
             anomaly_score = transaction_id / 1000.0, model_version = 'm-test', scored_at = 1,
             reasons = CASE WHEN transaction_id % 3 = 0 THEN '{{\"category\":\"amount\",\"reasons\":[]}}' END
           WHERE status IS NULL AND transaction_id <= {upto};
         INSERT INTO monitor_state (id, high_water_mark, model_version, updated_at) VALUES (1, {upto}, 'm-test', 1)
           ON CONFLICT (id) DO UPDATE SET high_water_mark = excluded.high_water_mark;
         COMMIT;"
    ))
    .unwrap();
}

/// A case system following the feed while payments arrive and the monitor scores them gets
/// every alert once, in scoring order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_alert_feed_misses_and_repeats_nothing_while_the_monitor_writes() {
    let app = TestApp::empty();
    let key = app.api_key("cases", &[Scope::Read]);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, done) = (app.db_path.clone(), done.clone());
        std::thread::spawn(move || {
            let conn = aegis_core::db::open(&db).unwrap();
            for round in 0..60 {
                for _ in 0..20 {
                    conn.execute(
                        "INSERT INTO transactions (beneficiary_id, scheme, amount_paise, timestamp) VALUES ('B', 'PENSION', 100, '2025-03-01 10:00:00')",
                        [],
                    )
                    .unwrap();
                }
                // The monitor trails the writers: it scores up to a few rows behind the newest.
                let newest: i64 = conn
                    .query_row("SELECT max(transaction_id) FROM transactions", [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                score_upto(&conn, newest - 7 * (round % 3));
                std::thread::sleep(Duration::from_millis(2));
            }
            let newest: i64 = conn
                .query_row("SELECT max(transaction_id) FROM transactions", [], |r| {
                    r.get(0)
                })
                .unwrap();
            score_upto(&conn, newest);
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let finished = done.load(Ordering::SeqCst);
        let uri = if cursor.is_empty() {
            "/api/v1/alerts?limit=7".to_string()
        } else {
            format!("/api/v1/alerts?limit=7&after={cursor}")
        };
        let response = app.api("GET", &uri, Some(&key), "").await;
        assert_eq!(response.status, StatusCode::OK, "{}", response.body);
        let page = response.json();
        for alert in page["alerts"].as_array().unwrap() {
            seen.push(alert["transaction_id"].as_i64().unwrap());
            assert_eq!(alert["reasons"]["category"], "amount");
        }
        cursor = page["next_cursor"].as_str().unwrap().to_string();
        if finished && page["has_more"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    writer.join().unwrap();
    let expected: Vec<i64> = (1..=1200).filter(|id| id % 3 == 0).collect();
    assert_eq!(seen, expected, "each alert once, in order");
    let response = app
        .api("GET", "/api/v1/alerts?after=zz", Some(&key), "")
        .await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .contains("next_cursor")
    );
}

#[tokio::test]
async fn a_case_system_records_verdicts_with_the_forms_rules_and_audit() {
    for engine in engines() {
        let app = TestApp::new_on(engine);
        let key = app.api_key("cases", &[Scope::Verdicts]);
        let post = |body: Value| {
            let key = key.clone();
            let app = &app;
            async move {
                app.api("POST", "/api/v1/verdicts", Some(&key), &body.to_string())
                    .await
            }
        };
        let response = post(
        json!({"transaction_ref": "REF-2", "verdict": "confirmed_fraud", "note": "bank confirmed"}),
    )
    .await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        assert_eq!(response.json()["transaction_id"], 2);
        let first = response.json()["verdict_id"].clone();
        // A retry whose answer was lost is answered with the verdict already recorded.
        let retry = post(
            json!({"transaction_ref": "REF-2", "verdict": "confirmed_fraud", "note": "bank confirmed"}),
        )
        .await;
        assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
        assert_eq!(retry.json()["verdict_id"], first);
        assert_eq!(retry.json()["repeat"], true);
        let response =
            post(json!({"transaction_id": 3, "verdict": "dismissed", "auditor": "alice"})).await;
        assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        let audit: Vec<String> = app.write(|sql| {
        Ok(sql.column(
            "SELECT username || ': ' || detail FROM audit_log WHERE action = 'verdict' ORDER BY audit_id",
            &[],
        )?)
    });
        assert_eq!(
            audit,
            [
                "api:cases: transaction 2: confirmed_fraud",
                "alice via api:cases: transaction 3: dismissed"
            ]
        );
        // The verdict history says which key recorded a verdict for alice, not only the log.
        let login = app.login("alice").await;
        let page = app.get("/alerts/3", Some(&login)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body
                .contains("alice <span class=\"via\">via api:cases</span>"),
            "{}",
            page.body
        );
        // Alice's own verdict in the dashboard is hers alone, and not a retry of the key's.
        let recorded = app
            .post_form(
                "/alerts/3/verdict",
                Some(&login.cookie),
                &[("csrf", &login.csrf), ("verdict", "dismissed")],
            )
            .await;
        assert!(recorded.status.is_redirection(), "{}", recorded.body);
        let vias: Vec<String> = app.write(|sql| {
            Ok(sql.column(
                "SELECT via FROM verdicts WHERE transaction_id = 3 ORDER BY verdict_id",
                &[],
            )?)
        });
        assert_eq!(vias, ["api:cases", ""]);
        // The key's own user is named api:cases already.
        assert_eq!(
            app.text("SELECT via FROM verdicts WHERE transaction_id = 2")
                .as_deref(),
            Some("")
        );
        let retry =
            post(json!({"transaction_id": 3, "verdict": "dismissed", "auditor": "alice"})).await;
        assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
        for (body, status, needle) in [
            (
                json!({"transaction_id": 2, "verdict": "maybe"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "not one of",
            ),
            (
                json!({"transaction_id": 2, "verdict": "dismissed", "colour": 1}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown field",
            ),
            (
                json!({"transaction_id": 999, "verdict": "dismissed"}),
                StatusCode::NOT_FOUND,
                "transaction 999 is not stored",
            ),
            (
                json!({"transaction_ref": "REF-404", "verdict": "dismissed"}),
                StatusCode::NOT_FOUND,
                "REF-404\\\" is not stored: check the reference",
            ),
            (
                json!({"verdict": "dismissed"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "exactly one",
            ),
            (
                json!({"transaction_id": 2, "verdict": "dismissed", "auditor": "mallory"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "not an active",
            ),
            (
                json!({"transaction_id": 2, "verdict": "dismissed", "note": "x".repeat(4001)}),
                StatusCode::BAD_REQUEST,
                "at most 4000",
            ),
        ] {
            let response = post(body.clone()).await;
            assert_eq!(response.status, status, "{body}");
            assert!(response.body.contains(needle), "{body}: {}", response.body);
        }
        assert_eq!(app.count("SELECT count(*) FROM verdicts"), 4);
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_v1_route() {
    let app = TestApp::new();
    let response = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(response.status, StatusCode::OK);
    let document = response.json();
    for (path, _) in dashboard::server::routes() {
        if path.starts_with("/api/v1/") && path != "/api/v1/openapi.json" {
            assert!(document["paths"][path].is_object(), "{path} is documented");
        }
    }
}

/// Pre-payment screening end to end: payments posted with `?wait=` come back with the real
/// monitor's decisions (status, score, threshold, reasons) within the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_posted_with_wait_get_the_monitors_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("transactions.db");
    let modeling = dir.path().join("modeling");
    generate::run(generate::RunConfig::synthetic(&db, 6_000, 5, 60, 0.02)).unwrap();
    train::run(&train::TrainConfig {
        db: db.clone().into(),
        modeling: modeling.clone(),
        from: None,
        until: None,
        alert_rate: 0.02,
        normal_only: false,
        per_row: false,
        choose_with_labels: true,
        feedback: true,
        fit: train::fit::FitConfig {
            max_epochs: 3,
            batch_size: 256,
            learning_rate: 2e-3,
            patience: 3,
            seed: 1,
            backend: aegis_core::model::BackendKind::Flex,
            progress: false,
        },
    })
    .unwrap();
    let threshold = aegis_core::artifacts::read_config(&modeling)
        .unwrap()
        .threshold;
    let stop = Arc::new(AtomicBool::new(false));
    let monitor = {
        let config = monitor::MonitorConfig {
            db: (&db).into(),
            modeling: modeling.clone(),
            backend: aegis_core::model::BackendKind::Flex,
            once: false,
            batch_size: 5_000,
            poll_interval: Duration::from_millis(5),
            checkpoints: monitor::CheckpointPolicy::default(),
            checkpoint_dir: None,
        };
        let stop = stop.clone();
        std::thread::spawn(move || monitor::run(&config, stop))
    };
    // A registered PM-KISAN beneficiary, paid the usual instalment and then 40 times it.
    let (beneficiary, account, agent, district, lat, lon, usual, last): (
        String,
        String,
        String,
        String,
        f64,
        f64,
        i64,
        String,
    ) = {
        let conn = aegis_core::db::open(&db).unwrap();
        conn.query_row(
            "SELECT b.beneficiary_id, b.account_id, b.agent_id, b.district, b.home_latitude, b.home_longitude, \
             (SELECT amount_paise FROM transactions WHERE scheme = 'PM-KISAN' AND is_anomaly = 0 LIMIT 1), \
             (SELECT max(timestamp) FROM transactions) \
             FROM beneficiaries b WHERE b.schemes LIKE '%PM-KISAN%' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
        )
        .unwrap()
    };
    let day = &last[..10];
    let item = |reference: &str, paise: i64| {
        json!({
            "transaction_ref": reference, "beneficiary_id": beneficiary, "account_id": account,
            "agent_id": agent, "district": district, "latitude": lat, "longitude": lon,
            "scheme": "PM-KISAN", "amount": aegis_core::ingest::rupees_text(paise),
            "timestamp": format!("{day}T23:50:00+05:30"),
        })
    };
    let app = TestApp::on(dir, db);
    let key = app.api_key("switch", &[Scope::Ingest]);
    let batch = json!([item("SCREEN-1", usual), item("SCREEN-2", usual * 40)]).to_string();
    let started = std::time::Instant::now();
    let response = app
        .api("POST", "/api/v1/payments?wait=5s", Some(&key), &batch)
        .await;
    let waited = started.elapsed();
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    let body = response.json();
    let decision = |index: usize| body["results"][index]["decision"].clone();
    for index in [0, 1] {
        let status = decision(index)["status"].as_str().unwrap().to_string();
        assert!(
            status == "NORMAL" || status == "ANOMALY",
            "decided: {}",
            decision(index)
        );
        // serde_json's default float parser may land one ulp off the printed value.
        let decided = decision(index)["threshold"].as_f64().unwrap();
        assert!(
            (decided - f64::from(threshold)).abs() <= 1e-12 * decided.abs(),
            "{decided} is the model's threshold {threshold}"
        );
    }
    assert!(
        waited < Duration::from_secs(5),
        "answered when scored, not at the deadline"
    );
    let inflated = decision(1);
    assert_eq!(inflated["status"], "ANOMALY", "{inflated}");
    assert!(inflated["score"].as_f64().unwrap() > decision(0)["score"].as_f64().unwrap());
    let sentences = inflated["reasons"]["reasons"].to_string();
    assert!(
        sentences.contains("PM-KISAN"),
        "the reasons name the unusual amount: {sentences}"
    );
    // A retry with wait returns the same transaction and its decision, scored once.
    let again = app
        .api("POST", "/api/v1/payments?wait=1s", Some(&key), &batch)
        .await
        .json();
    assert_eq!(again["duplicates"], 2);
    assert_eq!(again["results"][1]["decision"], inflated);
    stop.store(true, Ordering::SeqCst);
    monitor.join().unwrap().unwrap();
}

/// `apikey revoke` updates the key's row, then writes its audit entry; a verdict through the
/// same key wrote its audit entry (which takes PostgreSQL's audit lock until commit), then
/// counted the key's use on that row: each waited for the other, and PostgreSQL aborted one.
/// The use is counted first now, so the verdict waits for the revoke and goes on.
#[tokio::test]
async fn a_verdict_through_a_key_being_revoked_does_not_deadlock() {
    for engine in engines() {
        let app = TestApp::new_on(engine);
        let aegis_core::engine::Target::Postgres(url) = app.target.clone() else {
            continue;
        };
        let key = app.api_key("cases", &[Scope::Verdicts]);
        // The revoke's first half, held open.
        let (hold, held) = std::sync::mpsc::channel::<()>();
        let (finish, finished) = std::sync::mpsc::channel::<()>();
        let revoke_url = url.clone();
        let revoke = std::thread::spawn(move || {
            let mut client = aegis_core::pg::connect(&revoke_url).unwrap();
            let mut tx = client.transaction().unwrap();
            tx.execute(
                "UPDATE api_keys SET revoked_at = 1 WHERE name = 'cases'",
                &[],
            )
            .unwrap();
            hold.send(()).unwrap();
            finished.recv().unwrap();
            tx.execute(
                "INSERT INTO audit_log (at, username, action, detail) VALUES (1, 'cli', 'apikey revoke', 'cases')",
                &[],
            )
            .map_err(|error| aegis_core::pg::describe(&error))?;
            tx.commit()
                .map_err(|error| aegis_core::pg::describe(&error))
        });
        held.recv().unwrap();
        let body = json!({"transaction_id": 2, "verdict": "dismissed"}).to_string();
        let request = app.api("POST", "/api/v1/verdicts", Some(&key), &body);
        let finisher = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            finish.send(()).unwrap();
        };
        let (response, ()) = tokio::join!(request, finisher);
        let revoked = tokio::task::spawn_blocking(move || revoke.join().unwrap())
            .await
            .unwrap();
        assert_eq!(revoked, Ok(()), "the revoke was aborted");
        assert_ne!(
            response.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{}",
            response.body
        );
    }
}
