//! End-to-end test in a real headless Chromium (Debian `chromium` + `chromium-driver`): log in,
//! see KPIs and rendered charts, filter, open an alert, record a verdict, download the CSV.
//! Also writes the README's screenshots to `target/screenshots/`.

mod webdriver;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use aegis_core::engine::Target;
use aegis_core::pg::ScratchDatabase;
use aegis_core::sql::Engine;

use crate::webdriver::Browser;

struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn chromedriver() -> Option<PathBuf> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

/// A scored database on `engine` with a model (in `dir`): generated, trained and monitored by
/// the real libraries. The scratch database, on PostgreSQL, lives as long as it is kept.
fn scored_database(dir: &Path, engine: Engine) -> (Target, PathBuf, Option<ScratchDatabase>) {
    let (db, scratch) = match engine {
        Engine::Sqlite => (Target::Sqlite(dir.join("t.db")), None),
        Engine::Postgres => {
            let server = aegis_core::pg::test_server().expect("a PostgreSQL test server");
            let scratch = ScratchDatabase::create(&server, "browser").unwrap();
            (Target::Postgres(scratch.url().to_string()), Some(scratch))
        }
    };
    let modeling = dir.join("modeling");
    generate::run(generate::RunConfig::synthetic(
        db.clone(),
        20_000,
        4,
        90,
        0.02,
    ))
    .unwrap();
    train::run(&train::TrainConfig {
        db: db.clone(),
        modeling: modeling.clone(),
        from: None,
        until: None,
        alert_rate: 0.02,
        normal_only: false,
        per_row: true,
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
    monitor::run(
        &monitor::MonitorConfig {
            db: db.clone(),
            modeling: modeling.clone(),
            backend: aegis_core::model::BackendKind::Flex,
            once: true,
            batch_size: 5_000,
            poll_interval: Duration::from_millis(10),
            checkpoints: monitor::CheckpointPolicy::default(),
            checkpoint_dir: None,
        },
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    (db, modeling, scratch)
}

#[test]
fn an_auditor_logs_in_filters_investigates_records_a_verdict_and_exports() {
    let Some(driver_binary) = chromedriver() else {
        if std::env::var_os("AEGIS_SKIP_BROWSER_TESTS").is_some() {
            eprintln!("skipping the browser test: AEGIS_SKIP_BROWSER_TESTS is set");
            return;
        }
        panic!(
            "chromedriver not found: install the browser with `apt-get install chromium chromium-driver` \
             (or set AEGIS_SKIP_BROWSER_TESTS=1 to skip this test)"
        );
    };
    for engine in aegis_core::pg::test_engines() {
        walk_through(engine, &driver_binary);
    }
}

/// The auditor's walk through the dashboard on `engine`; screenshots come from SQLite's.
fn walk_through(engine: Engine, driver_binary: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let (db, modeling, _scratch) = scored_database(dir.path(), engine);
    let db_arg = db.as_arg();
    let shoot = |browser: &Browser, name: &str| {
        if engine == Engine::Sqlite {
            save_screenshot(browser, name);
        }
    };
    let dashboard = env!("CARGO_BIN_EXE_dashboard");
    let password = "correct horse battery";
    let mut add = Command::new(dashboard)
        .args(["--db", &db_arg, "user", "add", "meera", "--role", "auditor"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(add.wait().unwrap().success());

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = Reaper(
        Command::new(dashboard)
            .args(["--db", &db_arg, "--modeling", modeling.to_str().unwrap()])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver_port = free_port();
    let _driver = Reaper(
        Command::new(driver_binary)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver = format!("http://127.0.0.1:{driver_port}");
    for _ in 0..100 {
        if ureq::get(&format!("{driver}/status")).call().is_ok()
            && ureq::get(&format!("{base}/login")).call().is_ok()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let browser = Browser::start(&driver, dir.path()).unwrap();
    let long = Duration::from_secs(20);

    // Log in.
    browser.goto(&format!("{base}/")).unwrap();
    browser.wait_for("input[name=username]", long).unwrap();
    assert!(
        browser.current_url().unwrap().ends_with("/login"),
        "anonymous visitors land on the login page"
    );
    browser.type_into("input[name=username]", "meera").unwrap();
    browser.type_into("input[name=password]", password).unwrap();
    browser.click("button[type=submit]").unwrap();

    // KPIs and the three charts, drawn by ECharts into canvases.
    browser.wait_for("#kpi-transactions", long).unwrap();
    let transactions = browser.text("#kpi-transactions").unwrap();
    assert!(
        !transactions.is_empty() && transactions != "0",
        "KPI shows transactions: {transactions:?}"
    );
    for chart in [
        "#chart-daily canvas",
        "#chart-map canvas",
        "#chart-heatmap canvas",
    ] {
        browser
            .wait_for(chart, long)
            .unwrap_or_else(|e| panic!("{chart} was not drawn: {e}"));
    }
    std::thread::sleep(Duration::from_millis(1500));
    shoot(&browser, "overview.png");

    // Filter to one scheme: the table then shows that scheme only.
    browser
        .script("document.querySelector('select[name=scheme]').value = 'PM-KISAN';")
        .unwrap();
    browser
        .script("document.querySelector('form.filters').submit();")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    browser.wait_for("#kpi-transactions", long).unwrap();
    assert!(browser.current_url().unwrap().contains("scheme=PM-KISAN"));
    let schemes = browser
        .script("return Array.from(document.querySelectorAll('table tbody tr')).map(r => r.innerText).join('\\n');")
        .unwrap();
    let schemes = schemes.as_str().unwrap_or_default();
    assert!(
        schemes.contains("PM-KISAN") && !schemes.contains("MGNREGA"),
        "filtered table: {schemes}"
    );

    // Download the CSV of that filter and compare with the API's count for the same filter.
    let csv = browser
        .script("var x = new XMLHttpRequest(); x.open('GET', '/export.csv' + location.search, false); x.send(); return x.responseText;")
        .unwrap();
    let csv = csv.as_str().unwrap_or_default();
    let total = browser
        .script("var x = new XMLHttpRequest(); x.open('GET', '/api/transactions' + location.search, false); x.send(); return JSON.parse(x.responseText).total;")
        .unwrap();
    assert!(
        csv.starts_with("transaction_id,"),
        "CSV header: {}",
        &csv[..csv.len().min(80)]
    );
    assert_eq!(
        (csv.lines().count() - 1) as u64,
        total.as_u64().unwrap(),
        "the export holds exactly the filtered rows"
    );

    // The case queue: filter it to incidents nobody has reviewed, sorted by amount, with the
    // filter form; open the top incident.
    browser.goto(&format!("{base}/alerts")).unwrap();
    browser.wait_for("td a[href^='/incidents/']", long).unwrap();
    browser
        .script("document.querySelector('select[name=state]').value = 'unreviewed'; document.querySelector('select[name=sort]').value = 'amount';")
        .unwrap();
    browser
        .script("document.querySelector('form.filters').submit();")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    browser.wait_for("td a[href^='/incidents/']", long).unwrap();
    let filtered = browser.current_url().unwrap();
    assert!(
        filtered.contains("state=unreviewed") && filtered.contains("sort=amount"),
        "the form filtered the queue: {filtered}"
    );
    shoot(&browser, "queue.png");
    let first = browser
        .script(
            "return document.querySelector(\"td a[href^='/incidents/']\").getAttribute('href');",
        )
        .unwrap();
    let first = first.as_str().unwrap().to_string();
    let first_id: i64 = first
        .trim_start_matches("/incidents/")
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    browser.click("td a[href^='/incidents/']").unwrap();
    browser.wait_for("form.verdict-form", long).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    shoot(&browser, "incident.png");

    // One verdict for the whole incident, then "Record and next": the next incident of the
    // same (amount-sorted) queue opens.
    browser
        .script("document.querySelector('form[action$=\"/verdict\"] select[name=verdict]').value = 'needs_field_check';")
        .unwrap();
    browser
        .type_into(
            "form[action$='/verdict'] textarea[name=note]",
            "Send the block officer to the village.",
        )
        .unwrap();
    browser.click("button[value=next]").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    browser.wait_for("form.verdict-form", long).unwrap();
    let next = browser.current_url().unwrap();
    assert!(
        next.contains("/incidents/")
            && !next.contains(&format!("/incidents/{first_id}?"))
            && next.contains("state=unreviewed")
            && next.contains("sort=amount"),
        "save and next opened the queue's next incident: {next}"
    );
    let count = |sql: &str| -> i64 {
        db.open()
            .unwrap()
            .read(|s| s.query_int(sql, &[]))
            .unwrap()
            .unwrap_or_default()
    };
    let members = count(&format!(
        "SELECT count(*) FROM incident_alerts WHERE incident_id = {first_id}"
    ));
    let checks = count(&format!(
        "SELECT count(*) FROM incident_alerts WHERE incident_id = {first_id} \
         AND verdict = 'needs_field_check'"
    ));
    assert_eq!(
        members, checks,
        "every alert of the incident got the verdict"
    );

    // The field check is followed up under "Pending field checks".
    browser
        .goto(&format!("{base}/alerts?state=field_checks"))
        .unwrap();
    browser.wait_for("td a[href^='/incidents/']", long).unwrap();
    let listed = browser
        .script("return Array.from(document.querySelectorAll(\"td a[href^='/incidents/']\")).map(a => a.textContent).join(' ');")
        .unwrap();
    assert!(
        listed.as_str().unwrap().contains(&format!("#{first_id}")),
        "pending field checks list the incident: {listed}"
    );

    // One alert on its own page: a verdict with a note.
    browser.click("td a[href^='/alerts/']").unwrap();
    browser.wait_for("form.verdict-form", long).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    shoot(&browser, "alert.png");
    browser
        .script("document.querySelector('select[name=verdict]').value = 'confirmed_fraud';")
        .unwrap();
    browser
        .type_into(
            "textarea[name=note]",
            "Called the branch: second credit of the same instalment.",
        )
        .unwrap();
    browser
        .click("form.verdict-form button[type=submit]")
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    browser.wait_for("form.verdict-form", long).unwrap();
    let page = browser.script("return document.body.innerText;").unwrap();
    let page = page.as_str().unwrap_or_default();
    assert!(
        page.contains("second credit of the same instalment") && page.contains("meera"),
        "verdict recorded: {page}"
    );
    let stored = count("SELECT count(*) FROM verdicts WHERE verdict = 'confirmed_fraud'");
    assert_eq!(stored, 1);
}

fn save_screenshot(browser: &Browser, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = browser.screenshot() {
        let _ = std::fs::write(dir.join(name), png);
    }
}
