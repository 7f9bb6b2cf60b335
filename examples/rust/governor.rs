// SPDX-License-Identifier: Apache-2.0
//! choria's governor from Rust, and the Rust side of the cross-language governor test:
//!
//! * `governor campaign <url> <name> <count> <hold-ms> [subject]`: `count` concurrent campaigns on
//!   governor `name` (created with limit 10 unless it exists), each holding its slot `hold-ms`.
//!   Each publishes `rust` on core NATS `gov.enter` once it holds the slot and on `gov.exit`
//!   before releasing it, then one JSON summary line is printed.
//! * `governor observe <url> <runs> <limit>`: counts `gov.enter`/`gov.exit` from every process
//!   until `runs` exits; prints `{"ready":true}` once subscribed and a JSON summary at the end
//!   (the highest concurrency seen, and how often it was above `limit`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jetjobs::{CancellationToken, ClientOptions, Governor, GovernorManager};
use serde_json::json;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["campaign", url, name, count, hold_ms, rest @ ..] => {
            campaign(
                url,
                name,
                count.parse()?,
                hold_ms.parse()?,
                rest.first().copied(),
            )
            .await
        }
        ["observe", url, runs, limit] => observe(url, runs.parse()?, limit.parse()?).await,
        _ => Err(
            "usage: governor campaign <url> <name> <count> <hold-ms> [subject] | \
                  governor observe <url> <runs> <limit>"
                .into(),
        ),
    }
}

async fn campaign(
    url: &str,
    name: &str,
    count: usize,
    hold_ms: u64,
    subject: Option<&str>,
) -> Result<()> {
    let client = ClientOptions::new().connect(url).await?;
    if GovernorManager::load(&client, name).await.is_err() {
        GovernorManager::create(&client, name, 10, Duration::ZERO, 1, subject).await?;
    }
    let mut governor = Governor::new(&client, name)?.interval(Duration::from_millis(10));
    if let Some(subject) = subject {
        governor = governor.subject(subject);
    }
    // Reports go on their own connection, flushed before each release: an observer sees this
    // exit before any enter the freed slot lets happen.
    let reports = async_nats::connect(url).await?;
    let (holding, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let mut campaigns = tokio::task::JoinSet::new();
    for i in 0..count {
        let (governor, reports) = (governor.clone(), reports.clone());
        let (holding, peak) = (holding.clone(), peak.clone());
        campaigns.spawn(async move {
            let lease = governor
                .start(
                    &format!("rust-{i}"),
                    Some(Duration::from_secs(120)),
                    &CancellationToken::new(),
                )
                .await?;
            peak.fetch_max(holding.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            reports.publish("gov.enter", "rust".into()).await?;
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
            holding.fetch_sub(1, Ordering::SeqCst);
            reports.publish("gov.exit", "rust".into()).await?;
            reports.flush().await?;
            lease.release().await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        });
    }
    let (mut done, mut errors) = (0, Vec::new());
    while let Some(result) = campaigns.join_next().await {
        match result? {
            Ok(()) => done += 1,
            Err(e) => errors.push(e.to_string()),
        }
    }
    println!(
        "{}",
        json!({"lang": "rust", "campaigns": count, "done": done, "errors": errors,
               "peak": peak.load(Ordering::SeqCst), "elapsed_ms": started.elapsed().as_millis() as u64})
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} campaigns failed", errors.len()).into())
    }
}

async fn observe(url: &str, runs: usize, limit: i64) -> Result<()> {
    let nats = async_nats::connect(url).await?;
    let mut messages = nats.subscribe("gov.*").await?;
    nats.flush().await?;
    println!("{}", json!({"ready": true}));
    let (mut running, mut peak, mut over, mut exits) = (0i64, 0i64, 0usize, 0usize);
    let mut by_lang = BTreeMap::<String, (usize, usize)>::new();
    while exits < runs {
        let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(60), messages.next()).await
        else {
            return Err(format!("no report for 60 s after {exits} of {runs} exits").into());
        };
        let counts = by_lang
            .entry(String::from_utf8_lossy(&message.payload).into_owned())
            .or_default();
        if message.subject.as_str() == "gov.enter" {
            running += 1;
            counts.0 += 1;
            peak = peak.max(running);
            over += usize::from(running > limit);
        } else {
            running -= 1;
            counts.1 += 1;
            exits += 1;
        }
    }
    let by_lang: BTreeMap<_, _> = by_lang
        .into_iter()
        .map(|(lang, (entered, exited))| (lang, json!({"entered": entered, "exited": exited})))
        .collect();
    println!(
        "{}",
        json!({"peak": peak, "over_limit": over, "exits": exits, "by_lang": by_lang})
    );
    Ok(())
}
