//! The case queue: incidents, filters and sorts, one verdict per incident, revisions with a
//! reason, assignment and "my cases", bulk actions and "save and next".

use axum::http::{StatusCode, header};

use aegis_core::sql::Engine;

use crate::helpers::{Login, Payment, TestApp, engines, insert_on, reasons};

/// The fixture (incident 1: alerts 2 and 3, sharing account A1) plus incident 2: two alerts of
/// beneficiary B7 two days apart, lower in score, larger in amount, later in time; on `engine`.
fn two_incidents_on(engine: Engine) -> TestApp {
    let app = TestApp::new_on(engine);
    app.write(|sql| {
        for (id, timestamp, score) in [
            (7, "2025-03-20 09:00:00", 0.8),
            (8, "2025-03-22 09:00:00", 0.6),
        ] {
            insert_on(
                sql,
                &Payment {
                    id,
                    beneficiary: "B7",
                    account: "A7",
                    agent: "G7",
                    scheme: "PENSION",
                    paise: 5_000_000,
                    timestamp,
                    status: Some("ANOMALY"),
                    score: Some(score),
                    reasons: Some(reasons(
                        "amount",
                        "₹50,000 is 50.0× the usual PENSION payment",
                    )),
                    label: None,
                },
            );
        }
        aegis_core::incidents::link_backlog(sql, 8)?;
        Ok(())
    });
    app
}

/// Incident numbers in the order the queue page lists them.
fn listed(body: &str) -> Vec<i64> {
    body.match_indices("name=\"incident\" value=\"")
        .map(|(at, marker)| {
            let rest = &body[at + marker.len()..];
            rest[..rest.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

async fn queue(app: &TestApp, query: &str, login: &Login) -> Vec<i64> {
    let page = app.get(&format!("/alerts?{query}"), Some(login)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    listed(&page.body)
}

async fn incident_verdict(
    app: &TestApp,
    login: &Login,
    incident: i64,
    fields: &[(&str, &str)],
) -> crate::helpers::TestResponse {
    let mut form = vec![("csrf", login.csrf.as_str())];
    form.extend_from_slice(fields);
    app.post_form(
        &format!("/incidents/{incident}/verdict"),
        Some(&login.cookie),
        &form,
    )
    .await
}

#[tokio::test]
async fn alerts_are_grouped_into_incidents_that_filter_and_sort() {
    for engine in engines() {
        let app = two_incidents_on(engine);
        let login = app.login("alice").await;
        let page = app.get("/alerts", Some(&login)).await.body;
        assert_eq!(listed(&page), [1, 2], "highest score first");
        assert!(page.contains("2 / 2"), "two open alerts of two");
        assert!(page.contains("2 beneficiaries · 1 account · 1 agent"));
        assert!(
            page.contains("href=\"/alerts/2\""),
            "the lead alert is the highest-scoring one"
        );

        assert_eq!(queue(&app, "sort=amount", &login).await, [2, 1]);
        assert_eq!(queue(&app, "sort=time", &login).await, [2, 1]);
        assert_eq!(queue(&app, "sort=time&dir=asc", &login).await, [1, 2]);
        // An incident is listed when any of its alerts matches.
        assert_eq!(queue(&app, "scheme=MGNREGA", &login).await, [1]);
        assert_eq!(queue(&app, "scheme=PENSION", &login).await, [2]);
        assert_eq!(queue(&app, "district=Patna", &login).await, [1, 2]);
        assert_eq!(
            queue(&app, "district=Gaya", &login).await,
            Vec::<i64>::new()
        );
        assert_eq!(queue(&app, "category=shared_account", &login).await, [1]);
        assert_eq!(queue(&app, "min_amount=40000", &login).await, [1, 2]);
        assert_eq!(queue(&app, "max_amount=1000", &login).await, [1]);
        assert_eq!(queue(&app, "from=2025-03-21", &login).await, [2]);
        assert_eq!(queue(&app, "q=B2", &login).await, [1]);

        let bad = app
            .get("/alerts?min_amount=2k&district=Gaya", Some(&login))
            .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert!(bad.body.contains("min_amount:"), "the problem is named");
        assert!(bad.body.contains("value=\"2k\""), "the typed input is kept");
        assert_eq!(
            listed(&bad.body),
            [1, 2],
            "the open queue is shown meanwhile"
        );

        let incident = app.get("/incidents/1", Some(&login)).await;
        assert_eq!(incident.status, StatusCode::OK);
        for alert in ["href=\"/alerts/2\"", "href=\"/alerts/3\""] {
            assert!(incident.body.contains(alert));
        }
        assert!(!incident.body.contains("href=\"/alerts/7\""));
        assert!(
            app.get("/alerts/3", Some(&login))
                .await
                .body
                .contains("href=\"/incidents/1\""),
            "an alert links to its incident"
        );
        assert_eq!(
            app.get("/incidents/99", Some(&login)).await.status,
            StatusCode::NOT_FOUND
        );
        let export = app.get("/export.csv?q=B2", Some(&login)).await.body;
        let line = export.lines().find(|line| line.starts_with("3,")).unwrap();
        assert!(
            line.ends_with(",1"),
            "the export names the incident: {line}"
        );
    }
}

#[tokio::test]
async fn one_verdict_settles_an_incident_and_a_revision_needs_a_reason() {
    for engine in engines() {
        let app = two_incidents_on(engine);
        let login = app.login("alice").await;
        let response = incident_verdict(&app, &login, 1, &[("verdict", "dismissed")]).await;
        assert_eq!(response.status, StatusCode::SEE_OTHER);
        assert_eq!(queue(&app, "", &login).await, [2]);
        assert_eq!(queue(&app, "state=dismissed", &login).await, [1]);
        for alert in ["/alerts/2", "/alerts/3"] {
            assert!(
                app.get(alert, Some(&login))
                    .await
                    .body
                    .contains("Dismissed (false alarm)"),
                "{alert} got the incident's verdict"
            );
        }

        // Changing a final verdict without a reason is refused, inside the page, input kept.
        let refused = incident_verdict(
            &app,
            &login,
            1,
            &[("verdict", "confirmed_fraud"), ("note", "bank confirmed")],
        )
        .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(
            refused
                .body
                .contains("reason: this changes a final verdict")
        );
        assert!(refused.body.contains(">bank confirmed</textarea>"));
        assert!(refused.body.contains("Incident #1"));

        let revised = incident_verdict(
            &app,
            &login,
            1,
            &[
                ("verdict", "confirmed_fraud"),
                ("note", "bank confirmed"),
                ("reason", "the account holder denied receiving the money"),
            ],
        )
        .await;
        assert_eq!(revised.status, StatusCode::SEE_OTHER);
        let history = app.get("/incidents/1", Some(&login)).await.body;
        assert!(history.contains("the account holder denied receiving the money"));
        assert!(history.contains("revised"));
        assert_eq!(
            history.matches("Dismissed (false alarm)").count(),
            2 + 1,
            "both old verdicts stay in the history (plus the select option)"
        );
        assert_eq!(queue(&app, "state=confirmed", &login).await, [1]);
        let audited = app.count(
        "SELECT count(*) FROM audit_log WHERE action = 'verdict revised' AND detail LIKE '%denied receiving%'",
    );
        assert_eq!(audited, 1);
        // The single-alert form follows the same rule, and shows the alert again with the
        // problem, the choice and the note kept, and the reason field to fill in.
        let alert = app
            .post_form(
                "/alerts/3/verdict",
                Some(&login.cookie),
                &[
                    ("csrf", &login.csrf),
                    ("verdict", "needs_field_check"),
                    ("note", "the muster roll lists him twice"),
                ],
            )
            .await;
        assert_eq!(alert.status, StatusCode::BAD_REQUEST);
        assert!(
            alert
                .body
                .contains("id=\"verdict-problem\">Not recorded: reason:")
        );
        assert!(
            alert
                .body
                .contains(">the muster roll lists him twice</textarea>")
        );
        assert!(alert.body.contains("value=\"needs_field_check\" selected"));
        assert!(alert.body.contains("name=\"reason\""));
        assert!(
            alert.body.contains("Beneficiary"),
            "the whole alert page, not an error page"
        );
    }
}

#[tokio::test]
async fn assignment_my_cases_bulk_actions_and_save_and_next() {
    for engine in engines() {
        let app = two_incidents_on(engine);
        let alice = app.login("alice").await;
        let admin = app.login("admin").await;
        let assigned = app
            .post_form(
                "/incidents/1/assign",
                Some(&alice.cookie),
                &[("csrf", &alice.csrf), ("assignee", "me")],
            )
            .await;
        assert_eq!(assigned.status, StatusCode::SEE_OTHER);
        assert_eq!(queue(&app, "assignee=me", &alice).await, [1]);
        assert_eq!(queue(&app, "assignee=me", &admin).await, Vec::<i64>::new());
        assert_eq!(queue(&app, "assignee=none", &alice).await, [2]);
        assert_eq!(queue(&app, "assignee=alice", &admin).await, [1]);
        let nobody = app
            .post_form(
                "/incidents/1/assign",
                Some(&alice.cookie),
                &[("csrf", &alice.csrf), ("assignee", "mallory")],
            )
            .await;
        assert_eq!(nobody.status, StatusCode::BAD_REQUEST);
        assert!(
            nobody.body.contains("mallory&quot; is not an active user"),
            "{}",
            nobody.body
        );
        let unassigned = app.get("/incidents/2", Some(&alice)).await.body;
        assert!(
            unassigned.contains("<option value=\"\" selected>Choose…</option>"),
            "an unassigned incident prompts for a choice"
        );
        let no_choice = app
            .post_form(
                "/incidents/2/assign",
                Some(&alice.cookie),
                &[("csrf", &alice.csrf), ("assignee", "")],
            )
            .await;
        assert_eq!(no_choice.status, StatusCode::BAD_REQUEST);
        assert!(
            no_choice
                .body
                .contains("assignee: choose a user, me, or nobody")
        );

        // Bulk: assign both to admin.
        let bulk = app
            .post_form(
                "/incidents/bulk",
                Some(&alice.cookie),
                &[
                    ("csrf", &alice.csrf),
                    ("back", "sort=amount"),
                    ("incident", "1"),
                    ("incident", "2"),
                    ("action", "assign"),
                    ("assignee", "admin"),
                ],
            )
            .await;
        assert_eq!(bulk.status, StatusCode::SEE_OTHER);
        let location = bulk.header(header::LOCATION).unwrap().to_string();
        assert_eq!(location, "/alerts?sort=amount&done=assign-2");
        assert!(
            app.get(&location, Some(&alice))
                .await
                .body
                .contains("2 incidents assigned.")
        );
        assert_eq!(queue(&app, "assignee=me", &admin).await, [1, 2]);

        // A bulk verdict without a verdict is refused; the selection and note are kept.
        let refused = app
            .post_form(
                "/incidents/bulk",
                Some(&alice.cookie),
                &[
                    ("csrf", &alice.csrf),
                    ("incident", "2"),
                    ("action", "verdict"),
                    ("note", "checked the muster roll"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(refused.body.contains("verdict: one of"));
        assert!(
            refused
                .body
                .contains("value=\"2\" aria-label=\"select incident 2\" checked")
        );
        assert!(refused.body.contains("value=\"checked the muster roll\""));

        // Save and next: the next incident of the queue the auditor came from, then the queue.
        let next = incident_verdict(
            &app,
            &admin,
            1,
            &[
                ("verdict", "needs_field_check"),
                ("then", "next"),
                ("back", "assignee=me"),
            ],
        )
        .await;
        assert_eq!(next.status, StatusCode::SEE_OTHER);
        assert_eq!(
            next.header(header::LOCATION),
            Some("/incidents/2?assignee=me")
        );
        let last = incident_verdict(
            &app,
            &admin,
            2,
            &[
                ("verdict", "confirmed_fraud"),
                ("then", "next"),
                ("back", "assignee=me"),
            ],
        )
        .await;
        assert_eq!(
            last.header(header::LOCATION),
            Some("/incidents/1?assignee=me"),
            "incident 1 is still open (a field check is pending): the queue wraps to it"
        );
        assert_eq!(queue(&app, "state=field_checks", &admin).await, [1]);
        let bulk_verdict = app
            .post_form(
                "/incidents/bulk",
                Some(&admin.cookie),
                &[
                    ("csrf", &admin.csrf),
                    ("incident", "1"),
                    ("action", "verdict"),
                    ("verdict", "dismissed"),
                ],
            )
            .await;
        assert_eq!(bulk_verdict.status, StatusCode::SEE_OTHER);
        assert_eq!(queue(&app, "", &admin).await, Vec::<i64>::new());
        assert_eq!(queue(&app, "state=all", &admin).await, [1, 2]);
    }
}

#[tokio::test]
async fn an_incident_verdict_can_leave_out_alerts_that_are_not_part_of_the_case() {
    for engine in engines() {
        let app = two_incidents_on(engine);
        let login = app.login("alice").await;
        let page = app.get("/incidents/1", Some(&login)).await.body;
        assert!(page.contains("name=\"scoped\" value=\"1\""));
        assert_eq!(
            page.matches("name=\"alert\"").count(),
            2,
            "a tick box per alert"
        );
        let only_three = incident_verdict(
            &app,
            &login,
            1,
            &[
                ("verdict", "confirmed_fraud"),
                ("scoped", "1"),
                ("alert", "3"),
            ],
        )
        .await;
        assert_eq!(only_three.status, StatusCode::SEE_OTHER);
        let latest = |id: i64| -> Option<String> {
            app.text(&format!(
                "SELECT verdict FROM incident_alerts WHERE transaction_id = {id}"
            ))
        };
        assert_eq!(latest(3).as_deref(), Some("confirmed_fraud"));
        assert_eq!(latest(2), None, "the unticked alert keeps no verdict");
        assert_eq!(
            queue(&app, "", &login).await,
            [1, 2],
            "incident 1 still has work"
        );

        let foreign = incident_verdict(
            &app,
            &login,
            1,
            &[("verdict", "dismissed"), ("scoped", "1"), ("alert", "7")],
        )
        .await;
        assert_eq!(foreign.status, StatusCode::BAD_REQUEST);
        assert!(foreign.body.contains("alert 7 is not part of incident 1"));
        let none = incident_verdict(
            &app,
            &login,
            1,
            &[("verdict", "dismissed"), ("scoped", "1")],
        )
        .await;
        assert_eq!(none.status, StatusCode::BAD_REQUEST);
        assert!(none.body.contains("tick at least one alert"));
        assert_eq!(latest(7), None);
    }
}

/// An incident's page lists its beneficiaries, accounts and agents and its verdicts alike
/// whether all of its alerts fit on the page (the lists are read off them) or not (asked for).
#[tokio::test]
async fn an_incident_lists_its_people_and_verdicts_whether_or_not_its_alerts_fit_the_page() {
    let alerts = dashboard::cases::INCIDENT_ALERT_LIMIT + 5;
    for engine in engines() {
        let app = TestApp::new_on(engine);
        app.write(|sql| {
            for n in 0..alerts {
                let minutes = n * 10;
                let timestamp = format!(
                    "2025-04-{:02} {:02}:{:02}:00",
                    1 + minutes / 1440,
                    minutes % 1440 / 60,
                    minutes % 60
                );
                let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
                insert_on(
                    sql,
                    &Payment {
                        id: 100 + n,
                        beneficiary: "B9",
                        // One in three has no account: it is not listed as ''.
                        account: ["A91", "A92", ""][(n % 3) as usize],
                        agent: leak(format!("G9{}", n % 4)),
                        scheme: "PENSION",
                        paise: 5_000_000,
                        timestamp: leak(timestamp),
                        status: Some("ANOMALY"),
                        score: Some(0.5 + n as f64 / 10_000.0),
                        reasons: Some(reasons("amount", "₹50,000 is 50.0× the usual")),
                        label: None,
                    },
                );
            }
            aegis_core::incidents::link_backlog(sql, 100 + alerts)?;
            Ok(())
        });
        let login = app.login("alice").await;
        let small = app.get("/incidents/1", Some(&login)).await.body;
        assert!(small.contains("<dd>B1, B2</dd>"), "{small}");
        assert!(small.contains("<dd>A1</dd>") && small.contains("<dd>G1</dd>"));
        let big = app.get("/incidents/2", Some(&login)).await;
        assert_eq!(big.status, StatusCode::OK, "{}", big.body);
        assert_eq!(
            app.count("SELECT alerts FROM incidents WHERE incident_id = 2"),
            alerts,
            "one incident with more alerts than its page lists"
        );
        assert!(big.body.contains("<dd>B9</dd>"), "{}", big.body);
        assert!(big.body.contains("<dd>A91, A92</dd>"));
        assert!(big.body.contains("<dd>G90, G91, G92, G93</dd>"));

        for (incident, alert) in [(1, 3), (2, 100 + alerts - 1)] {
            let note = format!("checked alert {alert} at the branch");
            let response = app
                .post_form(
                    &format!("/alerts/{alert}/verdict"),
                    Some(&login.cookie),
                    &[
                        ("csrf", &login.csrf),
                        ("verdict", "dismissed"),
                        ("note", &note),
                    ],
                )
                .await;
            assert_eq!(response.status, StatusCode::SEE_OTHER, "{}", response.body);
            let page = app
                .get(&format!("/incidents/{incident}"), Some(&login))
                .await
                .body;
            assert!(
                page.contains(&note),
                "incident {incident} shows its verdict"
            );
        }
    }
}

/// What the page showed of incident `id` (the `seen` field its forms send back).
fn seen_on(body: &str, id: i64) -> String {
    let marker = "name=\"seen\" value=\"";
    let value = format!("{marker}{id}:");
    let at = body.find(&value).expect("the page sends what it showed") + marker.len();
    let rest = &body[at..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// An action on a whole incident acts on what the auditor saw: a verdict is refused when the
/// monitor linked another alert since the page was loaded (it would settle an alert nobody
/// looked at), an assignment when someone else took the case meanwhile.
#[tokio::test]
async fn a_whole_incident_action_is_refused_when_the_incident_changed_since_the_page() {
    for engine in engines() {
        let app = two_incidents_on(engine);
        let alice = app.login("alice").await;
        let admin = app.login("admin").await;
        let page = app.get("/alerts", Some(&alice)).await.body;
        let seen = seen_on(&page, 2);
        assert_eq!(seen, "2:2:");
        // A third alert of B7 arrives and joins incident 2.
        app.write(|sql| {
            insert_on(
                sql,
                &Payment {
                    id: 9,
                    beneficiary: "B7",
                    account: "A7",
                    agent: "G7",
                    scheme: "PENSION",
                    paise: 5_000_000,
                    timestamp: "2025-03-23 09:00:00",
                    status: Some("ANOMALY"),
                    score: Some(0.7),
                    reasons: Some(reasons("amount", "₹50,000 is 50.0× the usual payment")),
                    label: None,
                },
            );
            aegis_core::incidents::link_backlog(sql, 9)?;
            Ok(())
        });
        let bulk = |login: &Login, seen: String, action: &'static str| {
            let login = login.clone();
            let app = &app;
            async move {
                app.post_form(
                    "/incidents/bulk",
                    Some(&login.cookie),
                    &[
                        ("csrf", login.csrf.as_str()),
                        ("incident", "2"),
                        ("seen", seen.as_str()),
                        ("action", action),
                        ("verdict", "dismissed"),
                        ("assignee", "me"),
                    ],
                )
                .await
            }
        };
        let refused = bulk(&alice, seen.clone(), "verdict").await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST);
        assert!(
            refused.body.contains(
                "incident 2 has 3 alerts now, 2 when the page was loaded: no verdict was recorded"
            ),
            "{}",
            refused.body
        );
        assert_eq!(app.count("SELECT count(*) FROM verdicts"), 0);
        // The incident page's verdict for the whole incident is held to the same.
        let from_page = incident_verdict(
            &app,
            &alice,
            2,
            &[("verdict", "dismissed"), ("seen", seen.as_str())],
        )
        .await;
        assert_eq!(from_page.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.count("SELECT count(*) FROM verdicts"), 0);

        // Admin takes the case while alice's page still shows it unassigned.
        let fresh = seen_on(&app.get("/alerts", Some(&alice)).await.body, 2);
        assert_eq!(fresh, "2:3:");
        assert_eq!(
            bulk(&admin, fresh.clone(), "assign").await.status,
            StatusCode::SEE_OTHER
        );
        let taken = bulk(&alice, fresh.clone(), "assign").await;
        assert_eq!(taken.status, StatusCode::BAD_REQUEST);
        assert!(
            taken
                .body
                .contains("incident 2 was assigned to admin meanwhile: nothing was assigned"),
            "{}",
            taken.body
        );
        assert_eq!(
            app.count(
                "SELECT count(*) FROM incidents i JOIN users u ON u.user_id = i.assignee_id \
                 WHERE i.incident_id = 2 AND u.username = 'admin'"
            ),
            1
        );
        // With the page as it is now, both go through; the verdict settles all three.
        let current = seen_on(&app.get("/alerts", Some(&alice)).await.body, 2);
        assert_eq!(current, "2:3:admin");
        assert_eq!(
            bulk(&alice, current, "verdict").await.status,
            StatusCode::SEE_OTHER
        );
        assert_eq!(app.count("SELECT count(*) FROM verdicts"), 3);
    }
}
