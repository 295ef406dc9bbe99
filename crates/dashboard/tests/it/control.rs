//! The Control page: drawing a day's control sample, reviewing it, and the estimate.

use axum::http::{StatusCode, header};

use dashboard::apikeys::Scope;
use serde_json::{Value, json};

use crate::helpers::{Login, PASSWORD, Payment, TestApp, engines};

fn payment(id: i64, timestamp: &'static str, status: &'static str, fraud: bool) -> Payment {
    Payment::simple(
        id,
        timestamp,
        Some(status),
        Some(fraud),
        "compromised_counter",
    )
}

async fn verdict(app: &TestApp, login: &Login, id: i64, verdict: &str) {
    let response = app
        .post_form(
            &format!("/alerts/{id}/verdict"),
            Some(&login.cookie),
            &[("csrf", &login.csrf), ("verdict", verdict)],
        )
        .await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.body);
}

async fn draw(app: &TestApp, login: &Login, day: &str, size: &str) -> crate::helpers::TestResponse {
    app.post_form(
        "/control/draw",
        Some(&login.cookie),
        &[("csrf", &login.csrf), ("day", day), ("size", size)],
    )
    .await
}

/// 3 March 2025: two alerts (1, a fraud; 2) and ten payments scored normal (3–12); 4 March:
/// one more (13), so 3 March is over and 4 March is not. Auditor alice can sign in.
fn two_days(engine: aegis_core::sql::Engine) -> TestApp {
    let app = TestApp::empty_on(engine);
    app.write(|sql| {
        crate::helpers::insert_on(sql, &payment(1, "2025-03-03 09:00:00", "ANOMALY", true));
        crate::helpers::insert_on(sql, &payment(2, "2025-03-03 09:30:00", "ANOMALY", false));
        for id in 3..=12 {
            crate::helpers::insert_on(sql, &payment(id, "2025-03-03 10:00:00", "NORMAL", false));
        }
        crate::helpers::insert_on(sql, &payment(13, "2025-03-04 10:00:00", "NORMAL", false));
        aegis_core::incidents::link_backlog(sql, 6)?;
        dashboard::users::add_user(sql, "alice", PASSWORD, dashboard::users::Role::Auditor, 0)?;
        Ok(())
    });
    app
}

/// An auditor draws a finished day once; its draws are listed to review (and say so on their
/// own page) until they have a verdict; the verdicts become the estimate of the fraud passing
/// unflagged and of the recall; a second draw of the day and a malformed form are refused
/// with the fix, keeping what was typed; the audit log records the draw.
#[tokio::test]
async fn an_auditor_draws_a_day_once_and_its_verdicts_estimate_what_the_detector_misses() {
    for engine in engines() {
        let app = two_days(engine);
        let login = app.login("alice").await;

        let empty = app.get("/control", Some(&login)).await;
        assert_eq!(empty.status, StatusCode::OK);
        assert!(
            empty
                .body
                .contains("No drawn payment has a final verdict yet")
        );
        assert!(
            empty.body.contains("value=\"2025-03-03\""),
            "{engine:?}: the newest finished day is suggested"
        );

        let open = draw(&app, &login, "2025-03-04", "4").await;
        assert_eq!(open.status, StatusCode::BAD_REQUEST);
        assert!(
            open.body.contains("2025-03-04 is not over yet"),
            "{}",
            open.body
        );
        let typo = draw(&app, &login, "3/3/2025", "4").await;
        assert_eq!(typo.status, StatusCode::BAD_REQUEST);
        assert!(typo.body.contains("give the date as YYYY-MM-DD"));
        assert!(
            typo.body.contains("value=\"3/3/2025\""),
            "what was typed is kept"
        );

        let drawn = draw(&app, &login, "2025-03-03", "4").await;
        assert_eq!(drawn.status, StatusCode::SEE_OTHER, "{}", drawn.body);
        assert_eq!(
            drawn.header(header::LOCATION),
            Some("/control?drawn=2025-03-03")
        );
        let ids: Vec<i64> = (3..=12)
            .filter(|id| {
                app.count(&format!(
                    "SELECT count(*) FROM control_draws WHERE transaction_id = {id}"
                )) == 1
            })
            .collect();
        assert_eq!(ids.len(), 4, "{engine:?}");
        let page = app.get("/control?drawn=2025-03-03", Some(&login)).await;
        assert!(
            page.body
                .contains("Drew 4 of the 10 payments of 2025-03-03")
        );
        assert!(page.body.contains("To review (4)"));
        for id in &ids {
            assert!(
                page.body.contains(&format!("href=\"/alerts/{id}\"")),
                "{id} listed"
            );
        }
        let own = app.get(&format!("/alerts/{}", ids[0]), Some(&login)).await;
        assert!(
            own.body.contains("control sample</a> of 2025-03-03"),
            "{engine:?}"
        );
        let not_drawn = app.get("/alerts/1", Some(&login)).await;
        assert!(!not_drawn.body.contains("id=\"control-draw\""));

        let again = draw(&app, &login, "2025-03-03", "10").await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert!(
            again
                .body
                .contains("2025-03-03 was already drawn (4 payments, by alice)")
        );

        // One draw confirmed, two dismissed, one sent for a field check; the fraud alert
        // confirmed, the other alert not reviewed.
        verdict(&app, &login, ids[0], "confirmed_fraud").await;
        verdict(&app, &login, ids[1], "dismissed").await;
        verdict(&app, &login, ids[2], "dismissed").await;
        verdict(&app, &login, ids[3], "needs_field_check").await;
        verdict(&app, &login, 1, "confirmed_fraud").await;
        let page = app.get("/control", Some(&login)).await;
        let body = page.body;
        assert!(
            body.contains("3 of their draws have a final verdict, 1 confirmed fraud"),
            "{body}"
        );
        // 1 in 3 of 10 unflagged payments: about 3 missed, recall 1 / (1 + 3.33).
        assert!(
            body.contains("about 33.333 % of the payments the detector passed"),
            "{body}"
        );
        assert!(body.contains("recall is about 0.23"), "{body}");
        assert!(
            body.contains("1 alerts of those days have no final verdict yet"),
            "{body}"
        );
        assert!(body.contains("To review (1)"));
        assert!(body.contains("field check"));
        // The Model page shows the same estimate beside the held-out figures.
        crate::write_model(&app);
        let model = app.get("/model", Some(&login)).await;
        assert!(
            model
                .body
                .contains("recall in use, from the control sample")
        );
        assert!(model.body.contains("recall is about 0.23"), "{engine:?}");
        // Draws another model scored are not this model's recall.
        app.exec("UPDATE control_draws SET model_version = 'm-old'");
        let model = app.get("/model", Some(&login)).await;
        assert!(!model.body.contains("recall is about"), "{engine:?}");
        assert!(
            model
                .body
                .contains("No drawn payment this model scored has a final verdict yet (drawn days other models scored: 1;"),
            "{engine:?}"
        );
        assert_eq!(
            app.text("SELECT detail FROM audit_log WHERE action = 'control draw'")
                .as_deref(),
            Some("drew 4 of 10 unflagged payments of 2025-03-03"),
            "{engine:?}"
        );

        // A share of the day: 500 per thousand of 4 March's one payment, rounded up, once 5
        // March has begun.
        app.insert(&payment(14, "2025-03-05 10:00:00", "NORMAL", false));
        let share = app
            .post_form(
                "/control/draw",
                Some(&login.cookie),
                &[
                    ("csrf", &login.csrf),
                    ("day", "2025-03-04"),
                    ("size", "500"),
                    ("unit", "per_thousand"),
                ],
            )
            .await;
        assert_eq!(share.status, StatusCode::SEE_OTHER, "{}", share.body);
        let page = app.get("/control", Some(&login)).await;
        assert!(
            page.body.contains("value=\"2025-03-02\""),
            "{engine:?}: the newest finished day not drawn yet is suggested"
        );
        assert_eq!(
            app.count("SELECT count(*) FROM control_draws WHERE day = '2025-03-04'"),
            1
        );
    }
}

/// A case system draws and follows the control sample through the API with the page's rules:
/// a refusal names its kind and the fix and writes nothing, a day is drawn once (as the key's
/// user, in the audit log), its draws are listed with their verdicts, and the verdicts
/// recorded through the API become the estimate the Control page shows.
#[tokio::test]
async fn a_case_system_draws_and_follows_the_control_sample_through_the_api() {
    for engine in engines() {
        let app = two_days(engine);
        let reader = app.api_key("reader", &[Scope::Read]);
        let cases = app.api_key("cases", &[Scope::Read, Scope::Verdicts]);
        let get = |uri: &'static str| {
            let app = &app;
            let reader = reader.clone();
            async move { app.api("GET", uri, Some(&reader), "").await }
        };
        let post = |key: &str, body: Value| {
            let app = &app;
            let key = key.to_string();
            async move {
                app.api(
                    "POST",
                    "/api/v1/control/draws",
                    Some(&key),
                    &body.to_string(),
                )
                .await
            }
        };

        let empty = get("/api/v1/control").await;
        assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
        let empty = empty.json();
        assert_eq!(empty["estimate"], Value::Null);
        assert_eq!(empty["days"], json!([]));
        assert_eq!(empty["to_review"], json!([]));
        assert_eq!(empty["suggested_day"], "2025-03-03", "{engine:?}");

        let denied = post(&reader, json!({"day": "2025-03-03", "payments": 4})).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        for (body, status, refusal, named) in [
            (
                json!({"day": "2025-03-04", "payments": 4}),
                StatusCode::CONFLICT,
                Some("not_over"),
                "2025-03-04 is not over yet",
            ),
            (
                json!({"day": "2025-03-03", "payments": 0}),
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("size"),
                "out of range",
            ),
            (
                json!({"day": "2025-03-03"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                "exactly one of payments",
            ),
            (
                json!({"day": "2025-03-03", "payments": 4, "per_thousand": 5}),
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                "exactly one of payments",
            ),
            (
                json!({"day": "3/3/2025", "payments": 4}),
                StatusCode::BAD_REQUEST,
                None,
                "give the date as YYYY-MM-DD",
            ),
            (
                json!({"day": "2025-03-03", "payments": 4, "colour": 1}),
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                "unknown field",
            ),
        ] {
            let response = post(&cases, body.clone()).await;
            assert_eq!(response.status, status, "{body}: {}", response.body);
            let answer = response.json();
            assert_eq!(answer["refusal"].as_str(), refusal, "{body}");
            assert!(
                answer["error"].as_str().unwrap().contains(named),
                "{body}: {answer}"
            );
        }
        assert_eq!(app.count("SELECT count(*) FROM control_days"), 0);

        let drawn = post(&cases, json!({"day": "2025-03-03", "payments": 4})).await;
        assert_eq!(drawn.status, StatusCode::CREATED, "{}", drawn.body);
        assert_eq!(
            drawn.header(header::LOCATION),
            Some("/api/v1/control/draws/2025-03-03")
        );
        let drawn = drawn.json();
        assert_eq!(drawn["day"]["day"], "2025-03-03");
        assert_eq!(drawn["day"]["unflagged_payments"], 10);
        assert_eq!(drawn["day"]["drawn"], 4);
        assert_eq!(drawn["day"]["drawn_by"], "api:cases");
        let ids: Vec<i64> = drawn["draws"]
            .as_array()
            .unwrap()
            .iter()
            .map(|draw| draw["transaction_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.iter().all(|id| (3..=12).contains(id)), "{ids:?}");
        assert!(
            drawn["draws"]
                .as_array()
                .unwrap()
                .iter()
                .all(|d| d["verdict"].is_null())
        );
        let again = post(&cases, json!({"day": "2025-03-03", "per_thousand": 500})).await;
        assert_eq!(again.status, StatusCode::CONFLICT);
        assert_eq!(again.json()["refusal"], "already_drawn");
        assert!(
            again
                .body
                .contains("already drawn (4 payments, by api:cases)")
        );
        assert_eq!(
            app.text(
                "SELECT username || ': ' || detail FROM audit_log WHERE action = 'control draw'"
            )
            .as_deref(),
            Some("api:cases: drew 4 of 10 unflagged payments of 2025-03-03"),
            "{engine:?}"
        );

        // Verdicts through the API: one draw confirmed, two dismissed, one sent for a field
        // check; the fraud alert confirmed, the other alert open.
        for (id, verdict) in [
            (ids[0], "confirmed_fraud"),
            (ids[1], "dismissed"),
            (ids[2], "dismissed"),
            (ids[3], "needs_field_check"),
            (1, "confirmed_fraud"),
        ] {
            let response = app
                .api(
                    "POST",
                    "/api/v1/verdicts",
                    Some(&cases),
                    &json!({"transaction_id": id, "verdict": verdict}).to_string(),
                )
                .await;
            assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
        }
        let day = get("/api/v1/control/draws/2025-03-03").await;
        assert_eq!(day.status, StatusCode::OK);
        let day = day.json();
        let listed: Vec<(i64, Value)> = day["draws"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["transaction_id"].as_i64().unwrap(), d["verdict"].clone()))
            .collect();
        assert_eq!(
            listed,
            [
                (ids[0], json!("confirmed_fraud")),
                (ids[1], json!("dismissed")),
                (ids[2], json!("dismissed")),
                (ids[3], json!("needs_field_check")),
            ],
            "in the sample's order"
        );
        assert_eq!(day["day"]["decided"], 3);
        assert_eq!(
            get("/api/v1/control/draws/2025-03-04").await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/api/v1/control/draws/2025-13-01").await.status,
            StatusCode::BAD_REQUEST
        );

        let summary = get("/api/v1/control").await.json();
        let estimate = &summary["estimate"];
        assert_eq!(
            (
                estimate["days"].as_i64(),
                estimate["unflagged_payments"].as_i64(),
                estimate["decided"].as_i64(),
                estimate["confirmed"].as_i64()
            ),
            (Some(1), Some(10), Some(3), Some(1)),
            "{summary}"
        );
        // 1 in 3 of 10 unflagged payments: 3.33 missed; recall 1 / (1 + 3.33), as the page.
        let close =
            |value: &Value, expected: f64| (value.as_f64().unwrap() - expected).abs() < 1e-9;
        assert!(
            close(&estimate["fraud_share"]["estimate"], 1.0 / 3.0),
            "{estimate}"
        );
        assert!(
            close(&estimate["missed_frauds"]["estimate"], 10.0 / 3.0),
            "{estimate}"
        );
        assert!(
            close(&estimate["recall"]["estimate"], 1.0 / (1.0 + 10.0 / 3.0)),
            "{estimate}"
        );
        let recall = &estimate["recall"];
        assert!(recall["low"].as_f64() <= recall["estimate"].as_f64());
        assert!(recall["estimate"].as_f64() <= recall["high"].as_f64());
        assert_eq!(
            (
                estimate["alerts_confirmed"].as_i64(),
                estimate["alerts_open"].as_i64()
            ),
            (Some(1), Some(1))
        );
        assert_eq!(
            summary["to_review"],
            json!([{"transaction_id": ids[3], "transaction_ref": format!("REF-{}", ids[3]), "day": "2025-03-03", "verdict": "needs_field_check"}])
        );
        assert_eq!(summary["suggested_day"], "2025-03-02");
        let page = app.get("/control", Some(&app.login("alice").await)).await;
        assert!(page.body.contains("recall is about 0.23"), "{engine:?}");
    }
}
