// SPDX-License-Identifier: Apache-2.0
//! The keyed job pool: dispatch latency (dispatch to "started"), and how long 1,000 jobs take to
//! settle on their new workers after a node joins and after one dies (its connection drops and
//! its worker key expires on the server).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use jetjobs::{ClientOptions, JobHandler, PoolJob, PoolNode, PoolOptions};

use crate::BoxError;

/// Worker TTL of the death measurement: recovery is bounded below by it.
pub(crate) const WORKER_TTL: Duration = Duration::from_secs(2);

pub(crate) struct PoolFigures {
    pub(crate) dispatch_p50: Duration,
    pub(crate) dispatch_p99: Duration,
    pub(crate) join_rebalance: Duration,
    pub(crate) moved_on_join: usize,
    pub(crate) death_rebalance: Duration,
    pub(crate) moved_on_death: usize,
}

/// Counts the jobs each node runs.
#[derive(Clone, Default)]
struct Running(Arc<Mutex<HashSet<String>>>);

impl JobHandler for Running {
    fn start(&self, job: PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.0.lock().expect("running").insert(job.key);
        Box::pin(async { Ok(()) })
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.0.lock().expect("running").remove(&key);
        Box::pin(async { Ok(()) })
    }
}

fn options() -> PoolOptions {
    PoolOptions::new()
        .worker_ttl(WORKER_TTL)
        .grace(Duration::ZERO)
        .dispatch_timeout(Duration::from_secs(60))
}

/// 3 nodes (each its own connection), `jobs` dispatched one at a time, then a 4th node joins,
/// then one of the first three dies.
pub(crate) async fn measure(url: &str, jobs: usize) -> Result<PoolFigures, BoxError> {
    let mut nodes = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..3 {
        let client = ClientOptions::new().connect(url).await?;
        let node = PoolNode::join(&client, "bench", options()).await?;
        let running = Running::default();
        node.add_worker(running.clone()).await?;
        nodes.push((node, running));
        clients.push(client);
    }
    let dispatcher = nodes[0].0.clone();
    while dispatcher.pool_workers().len() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let sent = Instant::now();
        dispatcher
            .dispatch_job(&format!("job-{i}"), Bytes::new())
            .await?;
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    let total = |nodes: &[(PoolNode, Running)]| -> (usize, usize) {
        let sets: Vec<HashSet<String>> = nodes
            .iter()
            .map(|(_, r)| r.0.lock().expect("running").clone())
            .collect();
        let sum = sets.iter().map(HashSet::len).sum();
        let distinct = sets.iter().flatten().collect::<HashSet<_>>().len();
        (sum, distinct)
    };

    // A 4th node joins.
    let client = ClientOptions::new().connect(url).await?;
    let joined = Instant::now();
    let node = PoolNode::join(&client, "bench", options()).await?;
    let running = Running::default();
    node.add_worker(running.clone()).await?;
    let expected = (0..jobs)
        .filter(|i| jetjobs::pool_worker_index(&format!("job-{i}"), 4) == 3)
        .count();
    nodes.push((node, running.clone()));
    clients.push(client);
    settle(|| {
        running.0.lock().expect("running").len() == expected && total(&nodes) == (jobs, jobs)
    })
    .await?;
    let join_rebalance = joined.elapsed();

    // Node 2 dies: its connection drops, its key expires, the others claim its jobs.
    let (dead, dead_jobs) = nodes.remove(1);
    let moved_on_death = dead_jobs.0.lock().expect("running").len();
    let died = Instant::now();
    clients.remove(1).close().await?;
    drop(dead);
    settle(|| total(&nodes) == (jobs, jobs)).await?;
    let death_rebalance = died.elapsed();
    dispatcher.shutdown().await?;
    Ok(PoolFigures {
        dispatch_p50: latencies[jobs / 2],
        dispatch_p99: latencies[jobs * 99 / 100],
        join_rebalance,
        moved_on_join: expected,
        death_rebalance,
        moved_on_death,
    })
}

async fn settle(done: impl Fn() -> bool) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            return Err("the pool did not settle within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}
