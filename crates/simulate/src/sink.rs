//! Where the feed's payments go: straight into `transactions.db`, or through the dashboard's
//! payments API (`--via-api URL --key KEY`), so the whole path a real payment system takes is
//! exercised: key, validation, idempotent storage, then the monitor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aegis_core::engine::Store;
use anyhow::{Context, bail};
use serde_json::{Value, json};

use aegis_core::domain::NewTransaction;

use crate::commit_batch;

/// Most payments per API request (the API takes up to 5,000).
const API_BATCH: usize = 2_000;
/// How long a failing API is retried before the feed gives up: longer than an import of a
/// million rows holds the database (each refused request waits the 30 s busy timeout first).
const API_PATIENCE: Duration = Duration::from_secs(600);

/// The dashboard's payments API and the key to use.
#[derive(Debug, Clone)]
pub struct ApiTarget {
    /// The dashboard's base URL, such as `http://127.0.0.1:8080`.
    pub url: String,
    pub key: String,
}

/// Where payments are written.
pub enum Sink {
    Database,
    Api {
        agent: ureq::Agent,
        endpoint: String,
        authorization: String,
        /// Prefix of the refs given to payments that have none: unique per run.
        run: String,
        next: u64,
    },
}

impl Sink {
    pub fn new(api: Option<&ApiTarget>, seed: u64) -> Sink {
        match api {
            None => Sink::Database,
            Some(target) => Sink::Api {
                agent: ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build(),
                endpoint: format!("{}/api/v1/payments", target.url.trim_end_matches('/')),
                authorization: format!("Bearer {}", target.key),
                run: format!("SIM-{seed}-{:x}", aegis_core::time::now_millis()),
                next: 0,
            },
        }
    }

    /// Whether payments go through the payments API.
    pub fn is_api(&self) -> bool {
        matches!(self, Sink::Api { .. })
    }

    /// Stores `rows`, all of them or (with an error) none of the failed request's. Returns
    /// false when `stop` came while waiting for a busy database or API: what was not stored
    /// yet is dropped, so a stop is not kept waiting.
    pub fn send(
        &mut self,
        store: &mut Store,
        rows: &[NewTransaction],
        stop: &AtomicBool,
    ) -> anyhow::Result<bool> {
        let Sink::Api {
            agent,
            endpoint,
            authorization,
            run,
            next,
        } = self
        else {
            return commit_batch(store, rows, stop);
        };
        for chunk in rows.chunks(API_BATCH) {
            // A ref makes the request safe to retry: the API stores each payment once.
            let payments: Vec<Value> = chunk
                .iter()
                .map(|row| {
                    let mut row = row.clone();
                    if row.transaction_ref.is_none() {
                        *next += 1;
                        row.transaction_ref = Some(format!("{run}-{next}"));
                    }
                    aegis_core::ingest::to_json(&row)
                })
                .collect();
            let body = json!({ "payments": payments });
            if !post_with_retries(agent, endpoint, authorization, &body, stop)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn post_with_retries(
    agent: &ureq::Agent,
    endpoint: &str,
    authorization: &str,
    body: &Value,
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let failure = match agent
            .post(endpoint)
            .set("Authorization", authorization)
            .send_json(body)
        {
            Ok(response) => {
                let answer: Value = response.into_json().context("reading the API's answer")?;
                let rejected = answer["rejected"].as_u64().unwrap_or(0);
                if rejected > 0 {
                    let first = answer["results"]
                        .as_array()
                        .and_then(|results| results.iter().find(|r| r["result"] == "rejected"))
                        .map(|r| r["error"].to_string())
                        .unwrap_or_default();
                    bail!("the payments API refused {rejected} payment(s), first: {first}");
                }
                return Ok(true);
            }
            Err(ureq::Error::Status(status, response)) if status < 500 => {
                let text = response.into_string().unwrap_or_default();
                bail!(
                    "the payments API at {endpoint} answered {status}: {text}{}",
                    if status == 401 {
                        " (is --key a live key with --scope ingest? `dashboard apikey list`)"
                    } else {
                        ""
                    }
                );
            }
            Err(error) => error.to_string(),
        };
        if started.elapsed() > API_PATIENCE {
            bail!(
                "the payments API at {endpoint} kept failing for {}s: {failure}",
                API_PATIENCE.as_secs()
            );
        }
        if stop.load(Ordering::Relaxed) {
            tracing::warn!(%failure, "stopped while the payments API was unavailable: the last batch was not sent");
            return Ok(false);
        }
        tracing::warn!(%failure, "payments API unavailable; retrying the batch");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
