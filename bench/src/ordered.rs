// SPDX-License-Identifier: Apache-2.0
//! Ordered queues: the drain rate of a backlog whose tasks carry order keys, to set against the
//! unordered drain of the same run.

use std::time::{Duration, Instant};

use jetjobs::{CancellationToken, ClientOptions, Queue, Task, Worker, WorkerOptions};

use crate::{BoxError, noop_mux};

/// Enqueues `n` no-op tasks over `keys` order keys (interleaved, as independent producers
/// would) and drains them with one worker; tasks per second.
pub(crate) async fn drain_ordered(
    url: &str,
    n: usize,
    keys: usize,
    concurrency: usize,
) -> Result<f64, BoxError> {
    let client = ClientOptions::new().connect(url).await?;
    let queue = client
        .open_queue(Queue::new("BENCH_ORDERED").ordered().max_concurrent(10_000))
        .await?;
    let tasks = (0..n).map(|i| {
        Task::new("noop", &())
            .map(|t| t.with_order_key(format!("key-{}", i % keys)))
            .expect("a no-op task is valid")
    });
    for stored in queue.enqueue_many(tasks).await {
        stored?;
    }
    let mut worker = Worker::new(&client, WorkerOptions::new().concurrency(concurrency));
    worker.consume(&queue, noop_mux()?)?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    while queue.info().await?.items > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    running.await??;
    Ok(rate)
}
