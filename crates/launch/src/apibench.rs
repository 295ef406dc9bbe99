//! The payments API under load: ingest throughput in batches, and decision latency of single
//! payments sent with `?wait=` at a fixed rate, against a live monitor and dashboard.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Who the benchmark pays: registered beneficiaries with their own account, counter and home.
#[derive(Debug, Clone)]
pub struct Payee {
    beneficiary: String,
    account: Option<String>,
    agent: Option<String>,
    district: Option<String>,
    home: Option<(f64, f64)>,
}

/// Up to `limit` payees from the registry, and the day after the newest payment.
pub fn payees(db: &Path, limit: i64) -> anyhow::Result<(Vec<Payee>, String)> {
    let conn = rusqlite::Connection::open(db)?;
    let mut statement = conn.prepare(
        "SELECT beneficiary_id, account_id, agent_id, district, home_latitude, home_longitude \
         FROM beneficiaries LIMIT ?1",
    )?;
    let payees = statement
        .query_map([limit], |row| {
            let lat: Option<f64> = row.get(4)?;
            let lon: Option<f64> = row.get(5)?;
            Ok(Payee {
                beneficiary: row.get(0)?,
                account: row.get(1)?,
                agent: row.get(2)?,
                district: row.get(3)?,
                home: lat.zip(lon),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    anyhow::ensure!(!payees.is_empty(), "{} has no beneficiaries", db.display());
    let newest: String =
        conn.query_row("SELECT max(timestamp) FROM transactions", [], |r| r.get(0))?;
    let time = aegis_core::time::parse_timestamp(&newest)?;
    let day = aegis_core::time::format_ist(aegis_core::time::ist_day_start(time) + 86_400);
    Ok((payees, day[..10].to_string()))
}

/// One pension payment of ₹1,000 to `payee` at `second` seconds into `day`.
fn payment(payee: &Payee, reference: String, day: &str, second: u64) -> Value {
    let second = second % 86_400;
    let mut item = json!({
        "transaction_ref": reference,
        "beneficiary_id": payee.beneficiary,
        "account_id": payee.account,
        "agent_id": payee.agent,
        "district": payee.district,
        "scheme": "PENSION",
        "amount": "1000.00",
        "timestamp": format!("{day}T{:02}:{:02}:{:02}+05:30", second / 3600, second / 60 % 60, second % 60),
    });
    if let Some((lat, lon)) = payee.home {
        item["latitude"] = json!(lat);
        item["longitude"] = json!(lon);
    }
    item
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
}

/// What an ingest run achieved.
pub struct Ingest {
    pub payments: u64,
    pub seconds: f64,
    pub errors: u64,
}

/// `clients` threads posting batches of `batch` payments for `window`.
pub fn ingest(
    base: &str,
    key: &str,
    payees: &[Payee],
    day: &str,
    clients: usize,
    batch: usize,
    window: Duration,
) -> Ingest {
    let stored = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..clients {
            let (stored, errors) = (Arc::clone(&stored), Arc::clone(&errors));
            scope.spawn(move || {
                let agent = agent();
                let url = format!("{base}/api/v1/payments");
                let mut sent = 0u64;
                while started.elapsed() < window {
                    let items: Vec<Value> = (0..batch)
                        .map(|_| {
                            sent += 1;
                            let n = sent as usize * clients + client;
                            payment(
                                &payees[n % payees.len()],
                                format!("BENCH-INGEST-{client}-{sent}"),
                                day,
                                n as u64,
                            )
                        })
                        .collect();
                    match agent
                        .post(&url)
                        .set("Authorization", &format!("Bearer {key}"))
                        .send_json(json!({ "payments": items }))
                    {
                        Ok(response) => {
                            let answer: Value = response.into_json().unwrap_or(Value::Null);
                            stored.fetch_add(
                                answer["accepted"].as_u64().unwrap_or(0),
                                Ordering::Relaxed,
                            );
                        }
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    Ingest {
        payments: stored.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        errors: errors.load(Ordering::Relaxed),
    }
}

/// Latencies of single payments with `?wait=`.
pub struct DecisionRun {
    /// Milliseconds from send to answer, sorted, of the payments that got a decision.
    pub decided_ms: Vec<f64>,
    pub pending: u64,
    pub errors: u64,
    pub seconds: f64,
}

/// Single payments sent at `rate` a second (open loop: each on its own schedule, by as many
/// threads as the rate needs) for `window`, each waiting up to 2 s for its decision.
pub fn decisions(
    base: &str,
    key: &str,
    payees: &[Payee],
    day: &str,
    rate: u32,
    window: Duration,
) -> anyhow::Result<DecisionRun> {
    let threads = (rate as usize / 20).clamp(4, 64);
    let total = (f64::from(rate) * window.as_secs_f64()) as usize;
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let results: Vec<(Vec<f64>, u64, u64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                let stop = &stop;
                scope.spawn(move || {
                    let agent = agent();
                    let url = format!("{base}/api/v1/payments?wait=2s");
                    let (mut decided, mut pending, mut errors) = (Vec::new(), 0u64, 0u64);
                    for n in (thread..total).step_by(threads) {
                        let due = started + Duration::from_secs_f64(n as f64 / f64::from(rate));
                        if let Some(pause) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(pause);
                        }
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let item = payment(
                            &payees[n % payees.len()],
                            format!("BENCH-DECIDE-{rate}-{n}"),
                            day,
                            43_200 + n as u64,
                        );
                        let sent = Instant::now();
                        match agent
                            .post(&url)
                            .set("Authorization", &format!("Bearer {key}"))
                            .send_json(item)
                        {
                            Ok(response) => {
                                let answer: Value = response.into_json().unwrap_or(Value::Null);
                                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                                match answer["results"][0]["decision"]["status"].as_str() {
                                    Some("PENDING") | None => pending += 1,
                                    Some(_) => decided.push(ms),
                                }
                            }
                            Err(_) => errors += 1,
                        }
                    }
                    (decided, pending, errors)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap_or_default())
            .collect()
    });
    stop.store(true, Ordering::Relaxed);
    let mut run = DecisionRun {
        decided_ms: Vec::new(),
        pending: 0,
        errors: 0,
        seconds: started.elapsed().as_secs_f64(),
    };
    for (decided, pending, errors) in results {
        run.decided_ms.extend(decided);
        run.pending += pending;
        run.errors += errors;
    }
    run.decided_ms.sort_by(f64::total_cmp);
    anyhow::ensure!(
        !run.decided_ms.is_empty(),
        "no payment got a decision: is the monitor running? (see the bench log)"
    );
    Ok(run)
}
