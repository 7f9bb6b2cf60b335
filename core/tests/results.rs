// SPDX-License-Identifier: Apache-2.0
//! Waiting for results against a real server: the result or the task's final error, timeouts,
//! and 10,000 concurrent waiters on one subscription (no polling per task).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{NatsServer, RunningWorker, client_for, init_tracing};
use jetjobs::{Client, ErrorKind, HandlerError, Mux, RetryPolicy, Task, TaskState, WorkerOptions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn connect(server: &NatsServer) -> Client {
    client_for(server, "RESULTS").await
}

fn worker(client: &Client) -> RunningWorker {
    let mut mux = Mux::new();
    mux.handle("double", |_ctx, task: Task| async move {
        let n: i64 = task.payload_json()?;
        Ok(json!(n * 2))
    })
    .expect("register")
    .handle("refuse", |_ctx, _task| async {
        Err(HandlerError::terminate("not today"))
    })
    .expect("register");
    let options = WorkerOptions::new().concurrency(100).retry_policy(
        RetryPolicy::exponential(Duration::from_millis(50), Duration::from_millis(100), 0.0)
            .expect("policy"),
    );
    RunningWorker::start(client, options, mux)
}

#[tokio::test]
async fn a_waiter_gets_the_result_or_the_final_error_or_times_out() {
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server).await;

    // Nobody works the queue yet: the wait runs out of time.
    let pending = client
        .enqueue(Task::new("double", &21).expect("task"))
        .await
        .expect("enqueue");
    let err = client
        .wait_for(&pending.id, Duration::from_millis(300))
        .await
        .expect_err("not final yet");
    assert_eq!(err.kind(), ErrorKind::Timeout);

    let running = worker(&client);
    let done = client.wait_for(&pending.id, WAIT).await.expect("completes");
    assert_eq!(done.result.map(|r| r.payload), Some(json!(42)));

    let done = client
        .enqueue_and_wait(Task::new("double", &5).expect("task"), WAIT)
        .await
        .expect("completes");
    assert_eq!(done.state, TaskState::Complete);
    assert_eq!(done.result.map(|r| r.payload), Some(json!(10)));

    let err = client
        .enqueue_and_wait(Task::new("refuse", &0).expect("task"), WAIT)
        .await
        .expect_err("terminated");
    assert_eq!(err.kind(), ErrorKind::TaskFailed);
    assert!(err.to_string().contains("terminated: not today"), "{err}");

    // Already final when the wait starts.
    let again = client.wait_for(&pending.id, WAIT).await.expect("final");
    assert_eq!(again.id, pending.id);
    assert_eq!(
        client
            .wait_for("no-such-task", WAIT)
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::TaskNotFound)
    );
    running.stop().await;
}

#[tokio::test]
async fn ten_thousand_waiters_share_one_subscription() {
    const N: usize = 10_000;
    let server = NatsServer::start();
    let producer = connect(&server).await;
    // Waiters on their own connection, so what they send can be counted.
    let waiting = connect(&server).await;
    let tasks = (0..N as i64).map(|i| Task::new("double", &i).expect("task"));
    let ids: Vec<String> = producer
        .enqueue_many(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("enqueued").id)
        .collect();

    let sent_before = waiting
        .nats()
        .statistics()
        .out_messages
        .load(Ordering::Relaxed);
    let waits = futures::future::join_all(ids.iter().map(|id| waiting.wait_for(id, WAIT)));
    let running = worker(&producer);
    let done = waits.await;
    running.stop().await;

    for (i, result) in done.into_iter().enumerate() {
        let task = result.expect("completes");
        assert_eq!(task.result.map(|r| r.payload), Some(json!(i as i64 * 2)));
    }
    // One load before waiting and at most one after each wake-up; polling would send far more.
    let sent = waiting
        .nats()
        .statistics()
        .out_messages
        .load(Ordering::Relaxed)
        - sent_before;
    assert!(sent <= 3 * N as u64, "{sent} messages for {N} waiters");
}
