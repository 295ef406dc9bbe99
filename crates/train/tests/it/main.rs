//! Integration tests of `train`: reproducibility, artifact round trip, feature-set refusal, and
//! training on a bare CSV import.

mod helpers;

use aegis_core::artifacts::{self, CONFIG_FILE};
use aegis_core::features::FeatureState;
use aegis_core::model::{BackendKind, Detector};
use generate::import::ImportMode;
use train::TrainConfig;

use crate::helpers::{labeled_db, train_config};

#[test]
fn the_same_data_and_seed_give_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 15_000);
    let first = train::run(&train_config(&db, &dir.path().join("m1"), 11)).unwrap();
    let second = train::run(&train_config(&db, &dir.path().join("m2"), 11)).unwrap();
    assert_eq!(
        first.config.threshold.to_bits(),
        second.config.threshold.to_bits()
    );
    assert_eq!(first.config.normalization, second.config.normalization);
    assert_eq!(first.config.score_quantiles, second.config.score_quantiles);
    assert_eq!(first.config.calibration, second.config.calibration);
    // Another seed trains another network: its errors, and so their calibration, differ (the
    // threshold itself may not: a calibrated score at the budget's quantile is the surprise of
    // that tail share whatever the network).
    let other = train::run(&train_config(&db, &dir.path().join("m3"), 12)).unwrap();
    let errors = |outcome: &train::TrainOutcome| {
        outcome
            .config
            .calibration
            .as_ref()
            .unwrap()
            .features
            .errors
            .clone()
    };
    assert_ne!(errors(&first), errors(&other));
}

/// The engine is storage, not behaviour: the same generated rows on PostgreSQL train the same
/// model, bit for bit, as on SQLite (same replay order, same labels, same window).
#[test]
fn postgres_and_sqlite_train_the_same_model_from_the_same_data() {
    let Some(server) = aegis_core::pg::test_server() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = labeled_db(dir.path(), 15_000);
    let scratch = aegis_core::pg::ScratchDatabase::create(&server, "train").unwrap();
    let postgres = aegis_core::engine::Target::Postgres(scratch.url().to_string());
    generate::run(generate::RunConfig::synthetic(
        postgres.clone(),
        15_000,
        21,
        120,
        0.02,
    ))
    .unwrap();
    let until = aegis_core::time::parse_timestamp("2025-04-01 00:00:00").unwrap();
    let config = |db: aegis_core::engine::Target, name: &str| TrainConfig {
        until: Some(("2025-04-01".to_string(), until)),
        ..train_config(db, &dir.path().join(name), 5)
    };
    let on_sqlite = train::run(&config(sqlite.into(), "lite")).unwrap();
    let on_postgres = train::run(&config(postgres, "pg")).unwrap();
    assert_eq!(
        on_sqlite.config.threshold.to_bits(),
        on_postgres.config.threshold.to_bits()
    );
    assert_eq!(
        on_sqlite.config.normalization,
        on_postgres.config.normalization
    );
    assert_eq!(on_sqlite.config.calibration, on_postgres.config.calibration);
    assert_eq!(
        on_sqlite.config.training_window,
        on_postgres.config.training_window
    );
    assert!(
        on_sqlite.config.training_window.last_event.as_str() < "2025-04-01",
        "--until cut the window: {:?}",
        on_sqlite.config.training_window
    );
}

#[test]
fn a_saved_model_loads_and_scores_as_it_was_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 15_000);
    let modeling = dir.path().join("modeling");
    let outcome = train::run(&TrainConfig {
        per_row: true,
        ..train_config(&db, &modeling, 3)
    })
    .unwrap();
    let evaluation = outcome.evaluation.expect("generated data carries labels");
    assert!(evaluation.rows > 0 && evaluation.positives > 0);
    let calibration = outcome.config.calibration.as_ref().expect("calibrated");
    assert!(
        calibration.chosen_by.contains("labeled frauds"),
        "{}",
        calibration.chosen_by
    );
    assert_eq!(calibration.detectors.len(), Detector::ALL.len());
    assert!(outcome.config.per_row.is_some());

    // Score the held-out fifth with the model loaded from disk: the same threshold must flag
    // exactly the rows the evaluation counted.
    let model = aegis_model::load(&modeling, BackendKind::Flex).unwrap();
    assert_eq!(model.config, outcome.config);
    let mut rows = Vec::new();
    aegis_core::engine::Target::from(&db)
        .open()
        .unwrap()
        .replay(None, |row| {
            rows.push(row);
            Ok(())
        })
        .unwrap();
    let mut state = FeatureState::new();
    let features: Vec<_> = rows
        .iter()
        .map(|r| state.observe(r.payment.as_ref().unwrap()))
        .collect();
    let test_start = rows.len() * 8 / 10;
    let scores = model.score(&features[test_start..]);
    let flagged = scores
        .scores
        .iter()
        .filter(|s| **s >= model.config.threshold)
        .count();
    let c = evaluation.confusion;
    assert_eq!(flagged, c.true_positives + c.false_positives);
    // And it spends the alert budget there: the most recent fifth, nearest to what the
    // monitor scores next (rounding and tied scores aside).
    let budget = (features.len() - test_start) as f64 * outcome.config.alert_rate;
    assert!(
        (flagged as f64 - budget).abs() <= 2.0,
        "{flagged} alerts for a budget of {budget}"
    );
    // The dashboard reads back exactly what train measured.
    let metrics = artifacts::read_metrics(&modeling).unwrap().unwrap();
    assert_eq!(metrics.model_version, outcome.config.model_version);
    let written = metrics.evaluation.expect("evaluation written");
    assert_eq!(written.confusion, c);
    assert_eq!(written.per_type.len(), evaluation.per_type.len());
}

#[test]
fn retraining_keeps_the_previous_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 8_000);
    let modeling = dir.path().join("modeling");
    let first = train::run(&train_config(&db, &modeling, 1)).unwrap();
    let second = train::run(&train_config(&db, &modeling, 2)).unwrap();
    let previous: artifacts::ModelConfig = serde_json::from_str(
        &std::fs::read_to_string(modeling.join(artifacts::PREVIOUS_CONFIG_FILE)).unwrap(),
    )
    .unwrap();
    assert_eq!(previous.model_version, first.config.model_version);
    assert!(modeling.join(&previous.weights_file).exists());
    assert_eq!(
        artifacts::read_config(&modeling).unwrap().model_version,
        second.config.model_version
    );
    // A third model: the first's weights go, both networks of each (the per-row detector's
    // files used to pile up, one per run).
    let third = train::run(&train_config(&db, &modeling, 3)).unwrap();
    let mut weights: Vec<String> = std::fs::read_dir(&modeling)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".bpk"))
        .collect();
    weights.sort();
    let mut expected: Vec<String> = [&second.config, &third.config]
        .into_iter()
        .flat_map(|config| {
            std::iter::once(config.weights_file.clone())
                .chain(config.per_row.as_ref().map(|p| p.weights_file.clone()))
        })
        .collect();
    expected.sort();
    assert_eq!(weights, expected);
    // Each model's metrics are its own file, kept and pruned with its weights: whatever
    // `metrics.json` (the copy for people) holds, the page shows the current model's, and a
    // rolled-back model's are there too.
    let mut metrics_files: Vec<String> = std::fs::read_dir(&modeling)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("metrics-"))
        .collect();
    metrics_files.sort();
    let mut expected: Vec<String> = [&second.config, &third.config]
        .iter()
        .map(|config| artifacts::metrics_file_name(&config.model_version))
        .collect();
    expected.sort();
    assert_eq!(metrics_files, expected);
    let mut stale = artifacts::read_metrics(&modeling).unwrap().unwrap();
    stale.model_version = first.config.model_version.clone();
    std::fs::write(
        modeling.join("metrics.json"),
        serde_json::to_string(&stale).unwrap(),
    )
    .unwrap();
    let current = artifacts::read_metrics_of(&modeling, &third.config)
        .unwrap()
        .unwrap();
    assert_eq!(current.model_version, third.config.model_version);
    std::fs::rename(
        modeling.join(artifacts::PREVIOUS_CONFIG_FILE),
        modeling.join(CONFIG_FILE),
    )
    .unwrap();
    let rolled_back = artifacts::read_config(&modeling).unwrap();
    assert_eq!(rolled_back.model_version, second.config.model_version);
    assert_eq!(
        artifacts::read_metrics_of(&modeling, &rolled_back)
            .unwrap()
            .unwrap()
            .model_version,
        second.config.model_version
    );
    // Weights a power cut left empty are named, not loaded.
    std::fs::write(modeling.join(&rolled_back.weights_file), b"").unwrap();
    let message = artifacts::check_usable(&modeling).unwrap_err().to_string();
    assert!(message.contains("is empty"), "{message}");
    // A model trained before configs named their metrics reads `metrics.json`, and refuses
    // another model's (a train stopped between the files).
    let older = artifacts::ModelConfig {
        metrics_file: None,
        ..third.config.clone()
    };
    let message = artifacts::read_metrics_of(&modeling, &older)
        .unwrap_err()
        .to_string();
    assert!(message.contains("not the current model"), "{message}");
}

/// A training that diverges (a learning rate far too high) fails, naming the fix, and leaves
/// the current model as it was: a network of NaN used to become the "best" and be published.
#[test]
fn a_diverging_training_is_refused_and_the_current_model_stays() {
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 4_000);
    let modeling = dir.path().join("modeling");
    let first = train::run(&train_config(&db, &modeling, 1)).unwrap();
    let mut wild = train_config(&db, &modeling, 2);
    wild.fit.learning_rate = 1e30;
    let message = format!("{:#}", train::run(&wild).unwrap_err());
    assert!(message.contains("diverged"), "{message}");
    assert!(message.contains("--learning-rate"), "{message}");
    assert_eq!(
        artifacts::check_usable(&modeling).unwrap().model_version,
        first.config.model_version
    );
}

/// A mistyped --db is named as missing, and no empty database is left at that path.
#[test]
fn a_missing_database_is_named_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("transactons.db");
    let message = train::run(&train_config(&typo, &dir.path().join("modeling"), 1))
        .unwrap_err()
        .to_string();
    assert!(message.contains("there is no database at"), "{message}");
    assert!(!typo.exists());
}

/// A modeling directory that cannot be written is named before the training, not after it.
#[test]
fn an_unwritable_modeling_directory_is_named_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 2_000);
    let a_file = dir.path().join("notes.txt");
    std::fs::write(&a_file, "not a directory").unwrap();
    let message = format!(
        "{:#}",
        train::run(&train_config(&db, &a_file.join("modeling"), 1)).unwrap_err()
    );
    assert!(
        message.contains("the model cannot be written to"),
        "{message}"
    );
    assert!(message.contains("notes.txt/modeling"), "{message}");
}

#[test]
fn a_model_of_another_feature_set_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 8_000);
    let modeling = dir.path().join("modeling");
    train::run(&train_config(&db, &modeling, 1)).unwrap();
    let path = modeling.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["feature_set"] = serde_json::json!("r0-00000000");
    std::fs::write(&path, config.to_string()).unwrap();
    let message = aegis_model::load(&modeling, BackendKind::Flex)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("r0-00000000") && message.contains("cargo run -p train"),
        "{message}"
    );

    std::fs::write(&path, "{ not json").unwrap();
    let message = aegis_model::load(&modeling, BackendKind::Flex)
        .unwrap_err()
        .to_string();
    assert!(message.contains("unreadable"), "{message}");
    std::fs::remove_file(&path).unwrap();
    let message = aegis_model::load(&modeling, BackendKind::Flex)
        .unwrap_err()
        .to_string();
    assert!(message.contains("no model"), "{message}");
}

#[test]
fn a_csv_with_only_the_required_columns_trains_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let source = labeled_db(dir.path(), 6_000);
    let csv = dir.path().join("bare.csv");
    {
        let conn = rusqlite::Connection::open(&source).unwrap();
        let mut out = String::from("beneficiary_id,amount,timestamp,scheme\n");
        let mut statement = conn
            .prepare("SELECT beneficiary_id, amount_paise, timestamp, scheme FROM transactions")
            .unwrap();
        let mut rows = statement.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let paise: i64 = row.get(1).unwrap();
            out += &format!(
                "{},{}.{:02},{},{}\n",
                row.get::<_, String>(0).unwrap(),
                paise / 100,
                paise % 100,
                row.get::<_, String>(2).unwrap(),
                row.get::<_, String>(3).unwrap()
            );
        }
        std::fs::write(&csv, out).unwrap();
    }
    let db = dir.path().join("imported.db");
    let mut store = aegis_core::engine::Target::from(&db).open().unwrap();
    generate::import::import_csv(&mut store, &csv, false, ImportMode::Fresh).unwrap();
    drop(store);
    let modeling = dir.path().join("modeling");
    let outcome = train::run(&train_config(&db, &modeling, 5)).unwrap();
    assert!(outcome.evaluation.is_none(), "no labels, no evaluation");
    assert!(outcome.config.threshold.is_finite());
    let calibration = outcome.config.calibration.as_ref().expect("calibrated");
    assert_eq!(calibration.combination, Detector::DEFAULT);
    assert!(calibration.chosen_by.starts_with("default"));
    aegis_model::load(&modeling, BackendKind::Flex).unwrap();

    let mut normal_only = train_config(&db, &modeling, 5);
    normal_only.normal_only = true;
    let message = train::run(&normal_only).unwrap_err().to_string();
    assert!(
        message.contains("--normal-only needs ground-truth labels"),
        "{message}"
    );
}

/// An export that labels only some payments (the cases it investigated) is judged on those:
/// the unlabeled ones are left out of the figures, not counted as ordinary, and the Model page
/// is told how many.
#[test]
fn rows_without_a_label_are_left_out_of_the_evaluation() {
    let dir = tempfile::tempdir().unwrap();
    let full = labeled_db(dir.path(), 6_000);
    let partial = dir.path().join("partial.db");
    std::fs::copy(&full, &partial).unwrap();
    rusqlite::Connection::open(&partial)
        .unwrap()
        .execute_batch(
            "UPDATE transactions SET is_anomaly = NULL, fraud_type = NULL \
             WHERE is_anomaly = 0 AND transaction_id % 2 = 0",
        )
        .unwrap();
    let judged = |db: &std::path::Path, name: &str| {
        train::run(&train_config(db, &dir.path().join(name), 5))
            .unwrap()
            .evaluation
            .expect("labeled")
    };
    let all = judged(&full, "m-full");
    let some = judged(&partial, "m-partial");
    assert_eq!(all.unlabeled, 0);
    assert!(some.unlabeled > 1_000 / 2, "{}", some.unlabeled);
    assert_eq!(some.rows + some.unlabeled, all.rows);
    assert_eq!(some.positives, all.positives, "every fraud kept its label");
    assert_eq!(
        some.confusion.true_positives, all.confusion.true_positives,
        "the same model finds the same frauds"
    );
    assert!(some.confusion.false_positives <= all.confusion.false_positives);

    // Labels on the frauds alone leave --normal-only nothing to learn from: refused, and no
    // untrained model is published.
    let frauds_only = dir.path().join("frauds-only.db");
    std::fs::copy(&full, &frauds_only).unwrap();
    rusqlite::Connection::open(&frauds_only)
        .unwrap()
        .execute_batch("UPDATE transactions SET is_anomaly = NULL WHERE is_anomaly = 0")
        .unwrap();
    let modeling = dir.path().join("m-frauds-only");
    let mut normal_only = train_config(&frauds_only, &modeling, 5);
    normal_only.normal_only = true;
    let message = train::run(&normal_only).unwrap_err().to_string();
    assert!(message.contains("train without --normal-only"), "{message}");
    assert!(!modeling.join("model_config.json").exists());
}

/// On card payments (the Fraud Detection Handbook's world), where frauds are given away by the
/// payment alone, the labels of the held-out rows choose a combination with the per-row
/// detector, and the score is no worse than that detector alone: the case where our behavioural
/// autoencoder, left alone, fills the alert budget with ordinary busy terminals.
#[test]
fn on_card_payments_the_labels_choose_a_combination_no_worse_than_the_per_row_detector() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("card.db");
    let mut config = generate::RunConfig::synthetic(&db, 60_000, 4, 30, 0.01);
    config.generate.profile = generate::Profile::Card;
    generate::run(config).unwrap();
    let outcome = train::run(&TrainConfig {
        per_row: true,
        ..train_config(&db, &dir.path().join("modeling"), 2)
    })
    .unwrap();
    let calibration = outcome.config.calibration.as_ref().unwrap();
    assert!(
        calibration.combination.contains(&Detector::PerRow),
        "{:?}",
        calibration.combination
    );
    let ours = outcome.evaluation.as_ref().unwrap();
    let baseline = outcome
        .baseline
        .as_ref()
        .expect("the per-row detector alone");
    assert!(
        ours.average_precision >= baseline.average_precision - 0.02,
        "AP {} against the per-row detector's {}",
        ours.average_precision,
        baseline.average_precision
    );
    let extreme = ours
        .per_type
        .iter()
        .find(|t| t.fraud_type == generate::card::EXTREME_AMOUNT)
        .expect("extreme amounts in the test period");
    assert!(
        extreme.recall >= 0.9,
        "extreme amounts caught: {}",
        extreme.recall
    );
}

/// `--dump-features`: every row of the window with its label and exactly the values train
/// computes, in model input order, written whole.
#[test]
fn the_feature_dump_holds_every_row_of_the_window_with_its_label_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 3_000);
    let path = dir.path().join("window.csv");
    let config = train_config(&db, &dir.path().join("m"), 1);
    let rows = train::dump::run(&config, &path).unwrap();
    assert_eq!(rows, 3_000);
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header[..4],
        ["transaction_id", "timestamp", "is_anomaly", "fraud_type"]
    );
    assert_eq!(
        header[4..4 + aegis_core::features::FEATURE_COUNT],
        aegis_core::features::FEATURE_NAMES
    );
    assert_eq!(header[header.len() - 2], "per_row_longitude");
    assert_eq!(header.last().unwrap(), "steady_amount_change");
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3_000);
    let frauds = records.iter().filter(|r| &r[2] == "1").count();
    assert!(frauds > 0 && records.iter().filter(|r| !r[3].is_empty()).count() == frauds);
    // The values are train's own, row for row.
    let mut store = aegis_core::engine::Target::from(&db).open().unwrap();
    let data = train::dataset::load(&mut store, None, None).unwrap();
    for (index, record) in records.iter().enumerate().step_by(97) {
        assert_eq!(
            record[0].parse::<i64>().unwrap(),
            data.examples[index].transaction_id
        );
        let values: Vec<f32> = record
            .iter()
            .skip(4)
            .take(aegis_core::features::FEATURE_COUNT)
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(values, data.row(index));
    }
    // Nothing but the dump is left beside it; a missing folder is refused up front.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("window"))
        .collect();
    assert_eq!(names, ["window.csv"]);
    let error = train::dump::run(&config, &dir.path().join("missing/window.csv")).unwrap_err();
    assert!(error.to_string().contains("does not exist"), "{error}");
}

/// Records verdicts straight into a test database: (transaction, verdict, decided at).
fn record_verdicts(db: &std::path::Path, verdicts: &[(i64, &str, i64)]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(
        "INSERT OR IGNORE INTO users (user_id, username, password_hash, role, disabled, created_at) \
         VALUES (1, 'auditor', 'x', 'auditor', 0, 0)",
        [],
    )
    .unwrap();
    for (transaction, verdict, decided_at) in verdicts {
        conn.execute(
            "INSERT INTO verdicts (transaction_id, verdict, user_id, created_at) VALUES (?1, ?2, 1, ?3)",
            rusqlite::params![transaction, verdict, decided_at * 1000],
        )
        .unwrap();
    }
}

/// A short training run on `db` and the feedback stage's report.
fn train_with_verdicts(
    db: &std::path::Path,
    modeling: &std::path::Path,
) -> (train::TrainOutcome, aegis_core::metrics::FeedbackReport) {
    let outcome = train::run(&train_config(db, modeling, 3)).unwrap();
    let report = outcome
        .metrics
        .feedback
        .clone()
        .expect("feedback considered");
    (outcome, report)
}

/// (id, event time, labeled fraud) of every row, in the order train replays them.
fn rows_in_time_order(db: &std::path::Path) -> Vec<(i64, i64, bool)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut statement = conn
        .prepare("SELECT transaction_id, timestamp, is_anomaly FROM transactions ORDER BY timestamp, transaction_id")
        .unwrap();
    statement
        .query_map([], |row| {
            let text: String = row.get(1)?;
            Ok((
                row.get(0)?,
                aegis_core::time::parse_timestamp(&text).unwrap(),
                row.get::<_, i64>(2)? != 0,
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The supervised stage learns only from what was decided before the held-out period (a
/// verdict decided later, even about an earlier payment, is not a label), every held-out row
/// sees only the verdicts decided before it, and with too few verdicts train keeps the
/// unsupervised score.
#[test]
fn only_verdicts_decided_before_the_held_out_period_teach_the_feedback_stage() {
    use aegis_core::time::DAY;
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 8_000);
    let modeling = dir.path().join("modeling");
    let rows = rows_in_time_order(&db);
    let cutoff = rows[rows.len() * 8 / 10].1;

    // Ten confirmations are too few: the unsupervised score stays final.
    let first_frauds: Vec<(i64, &str, i64)> = rows
        .iter()
        .filter(|r| r.2)
        .take(10)
        .map(|r| (r.0, "confirmed_fraud", r.1 + DAY))
        .collect();
    record_verdicts(&db, &first_frauds);
    let (few, report) = train_with_verdicts(&db, &modeling);
    assert!(!report.used && few.config.feedback.is_none());
    assert!(report.note.contains("too few verdicts"), "{}", report.note);
    assert_eq!(report.confirmed, 10);

    // Every fraud confirmed and every 20th ordinary payment dismissed, a day later; then, after
    // the cutoff, more dismissals about earlier payments and a revision of a confirmation.
    let mut verdicts = Vec::new();
    let (mut confirmed, mut dismissed) = (0, 0);
    let (mut all_frauds, mut all_dismissed) = (0, 0);
    for (index, &(id, time, fraud)) in rows.iter().enumerate() {
        let decided = time + DAY;
        let before = decided < cutoff;
        if fraud && !first_frauds.iter().any(|v| v.0 == id) {
            verdicts.push((id, "confirmed_fraud", decided));
        } else if !fraud && index % 20 == 0 {
            verdicts.push((id, "dismissed", decided));
            dismissed += usize::from(before);
            all_dismissed += 1;
        } else if !fraud && index % 20 == 10 && time < cutoff {
            verdicts.push((id, "dismissed", cutoff + DAY));
            all_dismissed += 1;
        }
        confirmed += usize::from(fraud && before);
        all_frauds += usize::from(fraud);
    }
    let revised = rows.iter().find(|r| r.2).unwrap().0;
    verdicts.push((revised, "dismissed", cutoff + 2 * DAY));
    record_verdicts(&db, &verdicts);

    let (outcome, report) = train_with_verdicts(&db, &modeling);
    assert!(report.used, "{}", report.note);
    assert_eq!(
        report.confirmed, confirmed,
        "confirmations decided before the cutoff"
    );
    assert_eq!(
        report.dismissed, dismissed,
        "dismissals decided before the cutoff"
    );
    assert_eq!(report.verdicts, first_frauds.len() + verdicts.len());
    // Once judged, the stage that scores payments is learned again from every verdict: the
    // held-out period's, the later dismissals, and the revision (a confirmation no more).
    let refit = report.refit.expect("learned again from every verdict");
    assert_eq!(refit.confirmed, all_frauds - 1);
    assert_eq!(refit.dismissed, all_dismissed + 1);
    assert!(report.test_rows_with_evidence > 0);
    let stage = outcome
        .config
        .feedback
        .as_ref()
        .expect("stage saved with the model");
    assert!(stage.matches_this_build());
    assert!(report.unsupervised.is_some(), "both stages evaluated");

    // A stage saved by a build that combined score and evidence another way (before the
    // noisy or, a logistic shift with no `combination`) is refused, not misread.
    let path = modeling.join(CONFIG_FILE);
    let saved = std::fs::read_to_string(&path).unwrap();
    let mut older: serde_json::Value = serde_json::from_str(&saved).unwrap();
    older["feedback"]
        .as_object_mut()
        .unwrap()
        .remove("combination");
    std::fs::write(&path, older.to_string()).unwrap();
    let message = aegis_model::load(&modeling, BackendKind::Flex)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("feedback stage was trained by another build")
            && message.contains("cargo run -p train"),
        "{message}"
    );
    std::fs::write(&path, saved).unwrap();

    // `--no-feedback` trains the unsupervised stage alone.
    let without = train::run(&TrainConfig {
        feedback: false,
        ..train_config(&db, &modeling, 3)
    })
    .unwrap();
    assert!(without.config.feedback.is_none() && without.metrics.feedback.is_none());
}

/// The stage a model scores with learns from the newest verdicts too, while the held-out
/// figures stay those of the stage no verdict about the held-out period taught: verdicts on the
/// held-out payments, decided after the window's last payment, change the stage that is saved
/// and not one held-out figure; with `--until` before them, they change nothing.
#[test]
fn the_newest_verdicts_teach_the_saved_stage_but_never_the_held_out_figures() {
    use aegis_core::time::DAY;
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 8_000);
    let rows = rows_in_time_order(&db);
    let held_out_from = rows.len() * 8 / 10;
    let end = rows.last().unwrap().1;
    let verdict = |(index, &(id, _, fraud)): (usize, &(i64, i64, bool)), decided: i64| {
        if fraud {
            Some((id, "confirmed_fraud", decided))
        } else {
            (index % 20 == 0).then_some((id, "dismissed", decided))
        }
    };
    let earlier: Vec<(i64, &str, i64)> = rows[..held_out_from]
        .iter()
        .enumerate()
        .filter_map(|(index, row)| verdict((index, row), row.1 + DAY))
        .collect();
    record_verdicts(&db, &earlier);
    let (before, before_report) = train_with_verdicts(&db, &dir.path().join("before"));
    assert!(before_report.used, "{}", before_report.note);
    let before_refit = before_report.refit.expect("learned again");
    assert_eq!(
        before_refit.confirmed + before_refit.dismissed,
        earlier.len()
    );

    // A week after the last payment, auditors judge the held-out period's payments.
    let newest: Vec<(i64, &str, i64)> = rows[held_out_from..]
        .iter()
        .enumerate()
        .filter_map(|(index, row)| verdict((held_out_from + index, row), end + 7 * DAY))
        .collect();
    let newest_frauds = newest.iter().filter(|v| v.1 == "confirmed_fraud").count();
    assert!(newest_frauds > 10, "the held-out period holds frauds");
    record_verdicts(&db, &newest);
    let (after, after_report) = train_with_verdicts(&db, &dir.path().join("after"));
    let after_refit = after_report.refit.expect("learned again");
    assert_eq!(
        after_refit.confirmed,
        before_refit.confirmed + newest_frauds
    );
    assert_ne!(
        after.config.feedback, before.config.feedback,
        "the saved stage learned from the newest verdicts"
    );
    assert_eq!(after.evaluation, before.evaluation, "held-out figures");
    assert_eq!(after_report.unsupervised, before_report.unsupervised);
    assert_eq!(
        (after_report.confirmed, after_report.dismissed),
        (before_report.confirmed, before_report.dismissed),
        "the judged stage's labels"
    );

    // Trained on the same rows with `--until` just after the last payment, the newest verdicts
    // (decided after it) are not labels either: the model is the one trained before them.
    let until = end + 1;
    let bounded = train::run(&TrainConfig {
        until: Some((aegis_core::time::format_ist(until), until)),
        ..train_config(&db, &dir.path().join("until"), 3)
    })
    .unwrap();
    assert_eq!(bounded.config.feedback, before.config.feedback);
    assert_eq!(
        bounded.metrics.feedback.and_then(|report| report.refit),
        Some(before_refit)
    );
}

/// A feedback stage that lowers the held-out rows' average precision is not used: here the
/// verdicts called every payment at the busiest counters fraud for a while, so the stage
/// learns to raise those counters' ordinary payments above the real frauds elsewhere.
#[test]
fn a_feedback_stage_that_ranks_the_held_out_frauds_worse_is_not_used() {
    use aegis_core::time::DAY;
    let dir = tempfile::tempdir().unwrap();
    let db = labeled_db(dir.path(), 8_000);
    let modeling = dir.path().join("modeling");
    let counters: Vec<(i64, String)> = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut statement = conn
            .prepare("SELECT transaction_id, agent_id FROM transactions")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    let mut busiest: std::collections::HashMap<&str, usize> = Default::default();
    for (_, agent) in &counters {
        *busiest.entry(agent).or_default() += 1;
    }
    let mut busiest: Vec<(&str, usize)> = busiest.into_iter().collect();
    busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let blamed: Vec<&str> = busiest
        .iter()
        .take(busiest.len() / 5)
        .map(|c| c.0)
        .collect();
    let agent_of: std::collections::HashMap<i64, &str> =
        counters.iter().map(|(id, a)| (*id, a.as_str())).collect();
    // The blame stops before the held-out rows, whose labels then say what they were; the
    // confirmations still count as evidence about them for 28 days.
    let rows = rows_in_time_order(&db);
    let blame_until = rows.len() * 6 / 10;
    let verdicts: Vec<(i64, &str, i64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(index, &(id, time, fraud))| {
            if fraud || (index < blame_until && blamed.contains(&agent_of[&id])) {
                Some((id, "confirmed_fraud", time + DAY))
            } else {
                (index % 20 == 0).then_some((id, "dismissed", time + DAY))
            }
        })
        .collect();
    record_verdicts(&db, &verdicts);

    let (outcome, report) = train_with_verdicts(&db, &modeling);
    assert!(!report.used, "{}", report.note);
    assert!(outcome.config.feedback.is_none());
    assert!(
        report.note.contains("lowered the average precision"),
        "{}",
        report.note
    );
}
