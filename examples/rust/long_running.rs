// SPDX-License-Identifier: Apache-2.0
//! Long-running work: a supervised group (a repeated job and a worker that restarts with a
//! backoff), then a keyed job pool (dispatch, notify, stop, shutdown). `make test-examples` runs
//! it and checks what it prints.
//!
//! Uses `$NATS_URL` if set; otherwise starts a throwaway local nats-server and stops it after.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use jetjobs::supervisor::{self, Job, Worker, WorkerGroup};
use jetjobs::{
    CancellationToken, ClientOptions, DevServer, JobHandler, PoolJob, PoolNode, PoolOptions,
    RetryPolicy,
};

/// Starts and stops "streams" for tenants; here it only remembers which run.
#[derive(Clone, Default)]
struct Streams(Arc<Mutex<BTreeSet<String>>>);

impl JobHandler for Streams {
    fn start(&self, job: PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.0.lock().expect("streams").insert(job.key);
        Box::pin(async { Ok(()) })
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.0.lock().expect("streams").remove(&key);
        Box::pin(async { Ok(()) })
    }

    fn notify(&self, key: String, payload: Bytes) -> BoxFuture<'static, jetjobs::Result<()>> {
        println!(
            "pool: {key} notified: {}",
            String::from_utf8_lossy(&payload)
        );
        Box::pin(async { Ok(()) })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = match std::env::var("NATS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = DevServer::start()?;
            let url = server.url().to_string();
            (Some(server), url)
        }
    };

    // A supervised group: a job repeated every 50 ms and a worker that fails once and is
    // restarted; the group ends when cancelled.
    let runs = Arc::new(AtomicUsize::new(0));
    let cancel = CancellationToken::new();
    let counter = runs.clone();
    let stopper = cancel.clone();
    let tick = Job::new(move |_cancel| {
        let runs = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let stopper = stopper.clone();
        async move {
            if runs == 3 {
                stopper.cancel();
            }
            Ok(())
        }
    });
    let failed_once = Arc::new(AtomicUsize::new(0));
    let flaky = Worker::new(move |cancel| {
        let first = failed_once.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                return Err(jetjobs::Error::new(jetjobs::ErrorKind::Io, "flaky start"));
            }
            cancel.cancelled().await;
            Ok(())
        }
    });
    let mut group = WorkerGroup::new();
    group
        .add(
            "tick",
            supervisor::repeat(Duration::from_millis(50), tick, true),
        )
        .add_with_retry(
            "flaky",
            flaky,
            RetryPolicy::fixed(Duration::from_millis(10)),
        );
    group.run(&cancel).await?;
    println!("supervisor: {} runs", runs.load(Ordering::SeqCst));

    // A keyed job pool: each job runs on the one worker its key hashes to.
    let client = ClientOptions::new().connect(&url).await?;
    let node = PoolNode::join(&client, "streams", PoolOptions::new()).await?;
    let streams = Streams::default();
    node.add_worker(streams.clone()).await?;
    for tenant in ["a", "b", "c"] {
        node.dispatch_job(tenant, Bytes::from(format!("tenant {tenant}")))
            .await?;
    }
    println!("pool: {:?}", node.job_keys());
    node.notify_worker("b", Bytes::from_static(b"reload"))
        .await?;
    node.stop_job("a").await?;
    println!("pool: running {:?}", streams.0.lock().expect("streams"));
    node.shutdown().await?;
    println!("pool: shut down");
    Ok(())
}
