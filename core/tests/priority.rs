// SPDX-License-Identifier: Apache-2.0
//! Priority between queues against a real server: with a backlog in two queues, a strict worker
//! starts the high queue's tasks first, and a weighted one in the configured ratio.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{NatsServer, wait_final};
use jetjobs::{
    CancellationToken, Client, ClientOptions, Mux, Priority, Queue, Task, Worker, WorkerOptions,
};
use serde_json::json;

const BACKLOG: usize = 40;

/// Fills HIGH and LOW with a backlog, runs one worker with `priority` and one slot until every
/// task is final, and returns the queue of each task in the order they started.
async fn start_order(priority: Priority) -> Vec<String> {
    let server = NatsServer::start();
    let client: Client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connect");
    let mut ids = Vec::new();
    let mut worker = Worker::new(
        &client,
        WorkerOptions::new().concurrency(1).priority(priority),
    );
    let started = Arc::new(Mutex::new(Vec::new()));
    for name in ["HIGH", "LOW"] {
        let queue = client.open_queue(Queue::new(name)).await.expect("queue");
        let tasks = (0..BACKLOG).map(|i| Task::new("work", &i).expect("task"));
        for task in queue.enqueue_many(tasks).await {
            ids.push(task.expect("enqueued").id);
        }
        let started = started.clone();
        let mut mux = Mux::new();
        mux.handle("work", move |_ctx, _task| {
            let started = started.clone();
            async move {
                started.lock().expect("lock").push(name.to_string());
                Ok(json!(null))
            }
        })
        .expect("register");
        worker.consume(&queue, mux).expect("consume");
    }
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    wait_final(&client, &ids, Duration::from_secs(60)).await;
    shutdown.cancel();
    running.await.expect("joined").expect("worker ran");
    let order = started.lock().expect("lock").clone();
    assert_eq!(order.len(), 2 * BACKLOG, "every task ran once");
    order
}

#[tokio::test]
async fn strict_priority_drains_the_high_queue_first() {
    let order = start_order(Priority::strict(["HIGH", "LOW"])).await;
    // The very first slot goes to whichever queue's item arrives first; after that HIGH waits
    // ahead of LOW until its backlog is gone.
    let low_before_last_high = order
        .iter()
        .take(order.iter().rposition(|q| q == "HIGH").expect("high ran"))
        .filter(|q| *q == "LOW")
        .count();
    assert!(low_before_last_high <= 1, "{order:?}");
}

#[tokio::test]
async fn weighted_priority_starts_tasks_in_the_configured_ratio() {
    let order = start_order(Priority::weighted([("HIGH", 3), ("LOW", 1)])).await;
    // While both have a backlog (the first 40 starts at most 30 HIGH), 3 of every 4 are HIGH.
    let high = order.iter().take(BACKLOG).filter(|q| *q == "HIGH").count();
    assert!(
        (29..=31).contains(&high),
        "{high} of the first {BACKLOG} were HIGH: {order:?}"
    );
}
