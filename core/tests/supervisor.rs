// SPDX-License-Identifier: Apache-2.0
//! The supervisor's distributed repeat against a real server: processes sharing a name run the
//! job at most once per period between them, and bad options are refused up front.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{NatsServer, wait_for};
use jetjobs::supervisor::{Job, REPEAT_BUCKET, distributed_repeat};
use jetjobs::{CancellationToken, ErrorKind, KvBucket};

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[tokio::test]
async fn processes_sharing_a_name_run_each_period_at_most_once() {
    const PERIODS: u64 = 4;
    let server = NatsServer::start();
    // Which period each run started in, over all "processes".
    let runs = Arc::new(Mutex::new(Vec::<u64>::new()));
    let cancel = CancellationToken::new();
    let mut processes = Vec::new();
    for _ in 0..3 {
        let client = jetjobs::connect(&server.url)
            .await
            .expect("client connects");
        let runs = runs.clone();
        let job = Job::new(move |_cancel| {
            runs.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(epoch_secs());
            async { Ok(()) }
        });
        let worker = distributed_repeat(&client, "report", Duration::from_secs(1), job)
            .await
            .expect("worker");
        let cancel = cancel.clone();
        processes.push(tokio::spawn(async move {
            let result = worker.run(cancel).await;
            drop(client);
            result
        }));
    }
    let first = epoch_secs() + 1;
    wait_for(
        "the periods to pass",
        Duration::from_secs(PERIODS + 5),
        || async { (epoch_secs() >= first + PERIODS).then_some(()) },
    )
    .await;
    // Half a period in: the last boundary's run has started.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    for process in processes {
        process.await.expect("joined").expect("ends on cancel");
    }

    let runs = runs.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut per_period = BTreeMap::<u64, usize>::new();
    for period in &runs {
        *per_period.entry(*period).or_default() += 1;
    }
    assert!(
        per_period.values().all(|&n| n == 1),
        "a period ran twice: {per_period:?}"
    );
    assert!(
        runs.len() as u64 >= PERIODS - 1,
        "only {} runs in {PERIODS} periods: {per_period:?}",
        runs.len()
    );

    // The claims are in the bucket, one key per period.
    let client = jetjobs::connect(&server.url)
        .await
        .expect("client connects");
    let kv = client
        .kv(&KvBucket::new(REPEAT_BUCKET))
        .await
        .expect("bucket");
    let keys = kv.keys().await.expect("keys");
    assert!(
        keys.iter().all(|k| k.starts_with("report.")) && !keys.is_empty(),
        "{keys:?}"
    );
}

#[tokio::test]
async fn bad_periods_and_names_are_refused() {
    let server = NatsServer::start();
    let client = jetjobs::connect(&server.url)
        .await
        .expect("client connects");
    let job = Job::new(|_cancel| async { Ok(()) });
    for (name, every) in [
        ("ok", Duration::from_millis(1500)),
        ("ok", Duration::ZERO),
        ("a.b", Duration::from_secs(1)),
        ("", Duration::from_secs(1)),
    ] {
        let err = distributed_repeat(&client, name, every, job.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidOption, "{name:?} {every:?}");
    }
}
