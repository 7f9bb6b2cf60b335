// SPDX-License-Identifier: Apache-2.0
//! Behaviour across processes and failures: a queue-wide concurrency limit shared by two worker
//! processes, a worker killed with SIGKILL mid-task, and a nats-server restarted mid-run.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{NatsServer, observe_concurrency, wait_final, wait_for};
use futures::StreamExt as _;
use jetjobs::{CancellationToken, Client, ClientOptions, Mux, Queue, Task, TaskState};
use serde_json::json;

/// Not a test: the body of the worker processes the tests below start (it returns at once when
/// run without `JETJOBS_CHILD_URL`).
#[test]
#[ignore = "worker process started by the other tests in this file"]
fn child_worker() {
    let Ok(url) = std::env::var("JETJOBS_CHILD_URL") else {
        return;
    };
    let queue = std::env::var("JETJOBS_CHILD_QUEUE").expect("queue");
    let concurrency: usize = std::env::var("JETJOBS_CHILD_CONCURRENCY")
        .expect("concurrency")
        .parse()
        .expect("number");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let client = ClientOptions::new()
            .queue(Queue::bind(queue))
            .concurrency(concurrency)
            .connect(&url)
            .await
            .expect("child connects");
        let nats = client.nats().clone();
        let pid = std::process::id().to_string();
        let mut mux = Mux::new();
        let (n1, p1) = (nats.clone(), pid.clone());
        mux.handle("track", move |_ctx, task: Task| {
            let (nats, pid) = (n1.clone(), p1.clone());
            async move {
                // Same connection as the processor's ack, so "end" reaches the observer first.
                nats.publish("track.start", pid.clone().into()).await?;
                tokio::time::sleep(Duration::from_millis(30)).await;
                nats.publish("track.end", pid.into()).await?;
                Ok(json!(task.id))
            }
        })
        .expect("register");
        mux.handle("hang", move |_ctx, _task| {
            let (nats, pid) = (nats.clone(), pid.clone());
            async move {
                nats.publish("hang.started", pid.into()).await?;
                nats.flush().await?;
                std::future::pending::<()>().await;
                Ok(json!("never"))
            }
        })
        .expect("register");
        client
            .run(mux, CancellationToken::new())
            .await
            .expect("child runs");
    });
}

/// A worker process, SIGKILLed on drop.
struct WorkerProcess(Child);

impl WorkerProcess {
    fn start(url: &str, queue: &str, concurrency: usize) -> Self {
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "child_worker",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("JETJOBS_CHILD_URL", url)
            .env("JETJOBS_CHILD_QUEUE", queue)
            .env("JETJOBS_CHILD_CONCURRENCY", concurrency.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("worker process starts");
        Self(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn producer(server: &NatsServer, queue: Queue) -> Client {
    ClientOptions::new()
        .queue(queue)
        .connect(&server.url)
        .await
        .expect("producer connects")
}

#[tokio::test]
async fn queue_concurrency_holds_across_two_worker_processes() {
    let server = NatsServer::start();
    let client = producer(&server, Queue::new("LIMITED").max_concurrent(3)).await;
    let mut observed = client.nats().subscribe("track.*").await.expect("subscribe");
    client.nats().flush().await.expect("flush");
    // Each process may run 2 at once, so reaching 3 needs both; the queue caps the sum at 3.
    let _workers = [
        WorkerProcess::start(&server.url, "LIMITED", 2),
        WorkerProcess::start(&server.url, "LIMITED", 2),
    ];
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(
            client
                .enqueue(Task::new("track", &i).expect("task"))
                .await
                .expect("enqueue")
                .id,
        );
    }

    let seen = observe_concurrency(&mut observed, ids.len(), 3).await;
    assert_eq!(seen.peak, 3, "both processes worked at the same time");
    assert_eq!(seen.peak_by_worker.len(), 2);
    assert!(
        seen.peak_by_worker.values().all(|p| *p <= 2),
        "{:?}",
        seen.peak_by_worker
    );
    let done = wait_final(&client, &ids, Duration::from_secs(30)).await;
    assert!(done.iter().all(|t| t.state == TaskState::Complete));
}

#[tokio::test]
async fn task_of_a_killed_worker_is_redelivered_and_completed() {
    let server = NatsServer::start();
    let client = producer(
        &server,
        Queue::new("CRASH").max_run_time(Duration::from_secs(2)),
    )
    .await;
    let mut started = client
        .nats()
        .subscribe("hang.started")
        .await
        .expect("subscribe");
    client.nats().flush().await.expect("flush");
    let mut doomed = WorkerProcess::start(&server.url, "CRASH", 4);
    let id = client
        .enqueue(Task::new("hang", &"work").expect("task"))
        .await
        .expect("enqueue")
        .id;
    tokio::time::timeout(Duration::from_secs(30), started.next())
        .await
        .expect("handler started")
        .expect("message");
    assert_eq!(
        client.load_task(&id).await.expect("load").state,
        TaskState::Active
    );
    doomed.kill();

    let runs = Arc::new(Mutex::new(0));
    let mut mux = Mux::new();
    let counter = runs.clone();
    mux.handle("hang", move |_ctx, _task| {
        *counter.lock().expect("lock") += 1;
        async { Ok(json!("recovered")) }
    })
    .expect("register");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let (client, shutdown) = (client.clone(), shutdown.clone());
        async move { client.run(mux, shutdown).await }
    });

    let task = &wait_final(&client, &[id], Duration::from_secs(30)).await[0];
    assert_eq!(task.state, TaskState::Complete);
    assert_eq!(
        task.result.as_ref().map(|r| &r.payload),
        Some(&json!("recovered"))
    );
    assert_eq!(*runs.lock().expect("lock"), 1);
    shutdown.cancel();
    worker.await.expect("join").expect("worker stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_completes_once_across_a_server_restart() {
    every_task_completes_across(NatsServer::stop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_task_completes_across_a_server_crash() {
    every_task_completes_across(NatsServer::kill).await;
}

/// Enqueues 200 tasks, brings the server down with `outage` while a worker is busy with them,
/// starts it again on the same store, and checks that every task completed with its own result.
async fn every_task_completes_across(outage: fn(&mut NatsServer)) {
    common::init_tracing();
    let mut server = NatsServer::start();
    let client = ClientOptions::new()
        .queue(Queue::new("RESTART").max_run_time(Duration::from_secs(3)))
        .retry_policy(
            jetjobs::RetryPolicy::exponential(
                Duration::from_millis(100),
                Duration::from_secs(1),
                0.0,
            )
            .expect("policy"),
        )
        .concurrency(8)
        .connect(&server.url)
        .await
        .expect("connect");
    let mut ids = Vec::new();
    for i in 0..200i64 {
        ids.push(
            client
                .enqueue(Task::new("double", &i).expect("task"))
                .await
                .expect("enqueue")
                .id,
        );
    }
    let handled = Arc::new(Mutex::new(HashSet::new()));
    let mut mux = Mux::new();
    let seen = handled.clone();
    mux.handle("double", move |_ctx, task: Task| {
        let seen = seen.clone();
        async move {
            let n: i64 = task.payload_json()?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            seen.lock()
                .map_err(|e| jetjobs::HandlerError::retry(e.to_string()))?
                .insert(task.id);
            Ok(json!(n * 2))
        }
    })
    .expect("register");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let (client, shutdown) = (client.clone(), shutdown.clone());
        async move { client.run(mux, shutdown).await }
    });

    wait_for(
        "some tasks to be handled",
        Duration::from_secs(30),
        || async { (handled.lock().ok()?.len() >= 40).then_some(()) },
    )
    .await;
    tokio::task::block_in_place(|| outage(&mut server));
    let handled_before_restart = handled.lock().expect("lock").len();
    assert!(
        handled_before_restart < ids.len(),
        "the restart happened mid-run"
    );
    tokio::task::block_in_place(|| server.restart());

    let done = wait_final(&client, &ids, Duration::from_secs(120)).await;
    for (i, task) in done.iter().enumerate() {
        assert_eq!(
            task.state,
            TaskState::Complete,
            "task {i}: {}",
            task.last_err
        );
        assert_eq!(
            task.result.as_ref().map(|r| r.payload.clone()),
            Some(json!(i as i64 * 2))
        );
    }
    // An ack in flight when the server stopped can be lost; JetStream then redelivers that item
    // after the ack wait, and the worker acks it on sight because its task is already final.
    wait_for(
        "every work item to be settled",
        Duration::from_secs(30),
        || async {
            let info = client.admin().queue_info("RESTART").await.ok()?;
            (info.items == 0).then_some(())
        },
    )
    .await;
    shutdown.cancel();
    worker.await.expect("join").expect("worker stops");
}
