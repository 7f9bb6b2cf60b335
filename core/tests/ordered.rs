// SPDX-License-Identifier: Apache-2.0
//! Ordered queues against a real server: tasks sharing an order key run one at a time in
//! enqueue order across worker processes, a failed task holds back the rest of its key until it
//! succeeds or ends for good, waiting is visible and costs no try, and a SIGKILLed worker breaks
//! none of it.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ChildProcess, NatsServer, wait_final, wait_for};
use futures::StreamExt as _;
use jetjobs::{
    CancellationToken, Client, ClientOptions, ErrorKind, HandlerError, Mux, Queue, RetryPolicy,
    Task, TaskState, Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the handlers of the process test report, one message per event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    key: u32,
    index: u32,
    /// `start`, `ok`, `retry` or `term`.
    what: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Step {
    key: u32,
    index: u32,
}

/// Whether a try fails (retryable) or terminates, decided from the task so every process agrees.
fn outcome_of(step: Step, tries: i64) -> &'static str {
    let roll = (step.key * 7919 + step.index * 104_729) % 100;
    match (roll, tries) {
        (0..=2, _) => "term",
        (3..=9, 1) | (3..=5, 2) => "retry",
        _ => "ok",
    }
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::linear(
        5,
        Duration::from_millis(50),
        Duration::from_millis(250),
        0.0,
    )
}

/// Not a test: the body of the worker processes `fleet_keeps_key_order_through_a_sigkill`
/// starts (it returns at once when run without `JETJOBS_CHILD_URL`).
#[test]
#[ignore = "worker process started by the other tests in this file"]
fn child_ordered_worker() {
    let Ok(url) = std::env::var("JETJOBS_CHILD_URL") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let client = ClientOptions::new()
            .queue(Queue::bind("ORDERED"))
            .concurrency(8)
            .retry_policy(fast_retries())
            .connect(&url)
            .await
            .expect("child connects");
        let nats = client.nats().clone();
        let mut mux = Mux::new();
        mux.handle("step", move |_ctx, task: Task| {
            let nats = nats.clone();
            async move {
                let step: Step = task.payload_json()?;
                let report = |what: &str| {
                    serde_json::to_vec(&Event {
                        key: step.key,
                        index: step.index,
                        what: what.into(),
                    })
                    .expect("encode")
                };
                nats.publish("ordered.events", report("start").into())
                    .await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
                let outcome = outcome_of(step, task.tries);
                // Same connection as the worker's save and ack, so the observer hears the end
                // before any later task of the key can start.
                nats.publish("ordered.events", report(outcome).into())
                    .await?;
                match outcome {
                    "term" => Err(HandlerError::terminate("planned termination")),
                    "retry" => Err(HandlerError::retry("planned failure")),
                    _ => Ok(json!(step.index)),
                }
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
fn worker_process(url: &str) -> ChildProcess {
    ChildProcess::start("child_ordered_worker", &[("JETJOBS_CHILD_URL", url)])
}

/// Per key: what has ended for good, and a check that nothing starts before its predecessors.
#[derive(Default)]
struct KeyLog {
    finished: HashSet<u32>,
    completed: Vec<u32>,
}

#[tokio::test]
async fn fleet_keeps_key_order_through_a_sigkill() {
    const KEYS: u32 = 50;
    const PER_KEY: u32 = 100;
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .queue(
            Queue::new("ORDERED")
                .ordered()
                .max_run_time(Duration::from_secs(3)),
        )
        .connect(&server.url)
        .await
        .expect("producer connects");
    let mut events = client
        .nats()
        .subscribe("ordered.events")
        .await
        .expect("subscribe");
    client.nats().flush().await.expect("flush");

    // Keys interleaved, as independent producers would: each key's tasks in index order.
    let tasks = (0..PER_KEY).flat_map(|index| {
        (0..KEYS).map(move |key| {
            Task::new("step", &Step { key, index })
                .expect("task")
                .with_order_key(format!("customer-{key}"))
        })
    });
    let mut ids = Vec::new();
    for task in client.enqueue_many(tasks).await {
        ids.push(task.expect("enqueued").id);
    }

    let mut workers: Vec<ChildProcess> = (0..3).map(|_| worker_process(&server.url)).collect();
    let mut logs: BTreeMap<u32, KeyLog> = BTreeMap::new();
    let mut violations = Vec::new();
    let mut finished = 0;
    let mut killed = false;
    let total = KEYS * PER_KEY;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while finished < total {
        let message = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap_or_else(|_| panic!("only {finished} of {total} tasks ended in time"))
            .expect("subscription open");
        let event: Event = serde_json::from_slice(&message.payload).expect("event");
        let log = logs.entry(event.key).or_default();
        match event.what.as_str() {
            "start" => {
                if let Some(early) = (0..event.index).find(|i| !log.finished.contains(i)) {
                    violations.push(format!(
                        "key {} task {} started before task {early} ended",
                        event.key, event.index
                    ));
                }
            }
            "ok" | "term" => {
                if log.finished.insert(event.index) {
                    finished += 1;
                }
                if event.what == "ok" {
                    log.completed.push(event.index);
                }
            }
            _ => {}
        }
        if !killed && finished >= total / 3 {
            killed = true;
            workers[0].kill();
        }
    }
    assert!(killed);
    assert!(
        violations.is_empty(),
        "{:?}",
        &violations[..violations.len().min(10)]
    );
    for (key, log) in &logs {
        assert!(
            log.completed.windows(2).all(|w| w[0] <= w[1]),
            "key {key} completed out of order: {:?}",
            log.completed
        );
    }
    // Every task ended in its planned state: none lost, none stuck.
    let stored = wait_final(&client, &ids, Duration::from_secs(60)).await;
    let terminated = stored
        .iter()
        .filter(|t| t.state == TaskState::Terminated)
        .count();
    let completed = stored
        .iter()
        .filter(|t| t.state == TaskState::Complete)
        .count();
    assert_eq!(completed + terminated, ids.len(), "every task ended");
    assert!(terminated > 0 && completed > terminated);
    drop(workers);
}

/// One in-process worker on `queue`; `outcomes` decides each try by payload and try number.
async fn run_worker(
    client: &Client,
    queue: &jetjobs::QueueHandle,
    concurrency: usize,
    handler: impl Fn(Task) -> Result<serde_json::Value, HandlerError> + Send + Sync + 'static,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<jetjobs::Result<()>>,
) {
    let handler = Arc::new(handler);
    let mut mux = Mux::new();
    mux.handle("", move |_ctx, task| {
        let handler = handler.clone();
        async move { handler(task) }
    })
    .expect("register");
    let mut worker = Worker::new(
        client,
        WorkerOptions::new()
            .concurrency(concurrency)
            .retry_policy(fast_retries()),
    );
    worker.consume(queue, mux).expect("consume");
    let shutdown = CancellationToken::new();
    (shutdown.clone(), tokio::spawn(worker.run(shutdown)))
}

#[tokio::test]
async fn a_failing_task_holds_back_its_key_visibly_while_other_keys_run() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connect");
    let queue = client
        .open_queue(Queue::new("HELD").ordered())
        .await
        .expect("queue");
    let failing = Arc::new(Mutex::new(true));
    let ran = Arc::new(Mutex::new(Vec::<String>::new()));
    let (f, r) = (failing.clone(), ran.clone());
    let (shutdown, running) = run_worker(&client, &queue, 4, move |task| {
        let name: String = task.payload_json()?;
        if name == "a1" && *f.lock().expect("lock") {
            return Err(HandlerError::retry("not yet"));
        }
        r.lock().expect("lock").push(name.clone());
        Ok(json!(name))
    })
    .await;
    let enqueue = |name: &str, key: Option<&str>| {
        let task = Task::new("step", name).expect("task");
        let task = match key {
            Some(key) => task.with_order_key(key),
            None => task,
        };
        let queue = queue.clone();
        async move { queue.enqueue(task).await.expect("enqueue") }
    };
    let a1 = enqueue("a1", Some("A")).await;
    let a2 = enqueue("a2", Some("A")).await;
    let b1 = enqueue("b1", Some("B")).await;
    let free = enqueue("free", None).await;

    // B and the unkeyed task run; A waits behind its failing head, visibly and without tries.
    wait_final(
        &client,
        &[b1.id.clone(), free.id.clone()],
        Duration::from_secs(20),
    )
    .await;
    let waiting = wait_for(
        "a2 to show what it waits for",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            let id = a2.id.clone();
            async move {
                let task = client.load_task(&id).await.ok()?;
                task.waiting_for.is_some().then_some(task)
            }
        },
    )
    .await;
    assert_eq!(waiting.waiting_for.as_deref(), Some(a1.id.as_str()));
    assert_eq!(
        waiting.state,
        TaskState::New,
        "Go reads a waiting task as new"
    );
    assert_eq!(waiting.tries, 0, "waiting is not a try");
    wait_for("a1 to be retried", Duration::from_secs(20), || {
        let client = client.clone();
        let id = a1.id.clone();
        async move { (client.load_task(&id).await.ok()?.tries >= 3).then_some(()) }
    })
    .await;
    assert!(!ran.lock().expect("lock").contains(&"a2".to_string()));

    *failing.lock().expect("lock") = false;
    let done = wait_final(
        &client,
        &[a1.id.clone(), a2.id.clone()],
        Duration::from_secs(20),
    )
    .await;
    assert!(done.iter().all(|t| t.state == TaskState::Complete));
    assert_eq!(done[1].tries, 1);
    assert_eq!(done[1].waiting_for, None);
    let ran = ran.lock().expect("lock").clone();
    let position = |name: &str| ran.iter().position(|n| n == name).expect("ran");
    assert!(position("a1") < position("a2"), "{ran:?}");
    shutdown.cancel();
    running.await.expect("joined").expect("worker ran");
}

#[tokio::test]
async fn a_terminated_task_releases_its_key() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connect");
    let queue = client
        .open_queue(Queue::new("TERM").ordered())
        .await
        .expect("queue");
    let (shutdown, running) = run_worker(&client, &queue, 2, |task| {
        let name: String = task.payload_json()?;
        match name.as_str() {
            "first" => Err(HandlerError::terminate("bad input")),
            _ => Ok(json!(name)),
        }
    })
    .await;
    let mut ids = Vec::new();
    for name in ["first", "second"] {
        let task = Task::new("step", name).expect("task").with_order_key("K");
        ids.push(queue.enqueue(task).await.expect("enqueue").id);
    }
    let done = wait_final(&client, &ids, Duration::from_secs(20)).await;
    assert_eq!(done[0].state, TaskState::Terminated);
    assert_eq!(done[1].state, TaskState::Complete);
    shutdown.cancel();
    running.await.expect("joined").expect("worker ran");
}

#[tokio::test]
async fn per_key_concurrency_runs_that_many_of_a_key_at_once() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connect");
    let queue = client
        .open_queue(Queue::new("PAIRS").order_key_concurrency(2))
        .await
        .expect("queue");
    assert_eq!(queue.settings().order_key_concurrency, 2);
    let bound = client.open_queue(Queue::bind("PAIRS")).await.expect("bind");
    assert_eq!(
        bound.settings().order_key_concurrency,
        2,
        "read back from the server"
    );

    let running_now = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let peak = Arc::new(Mutex::new(0usize));
    let mut mux = Mux::new();
    let (now, top) = (running_now.clone(), peak.clone());
    mux.handle("step", move |_ctx, task: Task| {
        let (now, top) = (now.clone(), top.clone());
        async move {
            let key = task.order_key.clone().expect("keyed");
            {
                let mut now = now.lock().expect("lock");
                let n = now.entry(key.clone()).or_default();
                *n += 1;
                let mut top = top.lock().expect("lock");
                *top = (*top).max(*n);
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
            *now.lock().expect("lock").get_mut(&key).expect("counted") -= 1;
            Ok(json!(null))
        }
    })
    .expect("register");
    let mut worker = Worker::new(&client, WorkerOptions::new().concurrency(8));
    worker.consume(&queue, mux).expect("consume");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));
    let tasks = (0..20).map(|i| {
        Task::new("step", &i)
            .expect("task")
            .with_order_key("one-key")
    });
    let ids: Vec<String> = queue
        .enqueue_many(tasks)
        .await
        .into_iter()
        .map(|t| t.expect("enqueued").id)
        .collect();
    wait_final(&client, &ids, Duration::from_secs(30)).await;
    assert_eq!(
        *peak.lock().expect("lock"),
        2,
        "two of the key ran at once, never more"
    );
    shutdown.cancel();
    running.await.expect("joined").expect("worker ran");
}

#[tokio::test]
async fn order_keys_need_an_ordered_queue_and_no_delay() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connect");
    let plain = client.open_queue(Queue::new("PLAIN")).await.expect("queue");
    assert_eq!(plain.settings().order_key_concurrency, 0);
    let keyed = Task::new("step", &1).expect("task").with_order_key("K");
    let error = plain.enqueue(keyed.clone()).await.expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::InvalidOption);
    assert!(
        matches!(client.load_task(&keyed.id).await, Err(e) if e.kind() == ErrorKind::TaskNotFound),
        "nothing stored"
    );
    let ordered = client
        .open_queue(Queue::new("ORD").ordered())
        .await
        .expect("queue");
    let delayed = keyed.with_delay(Duration::from_secs(5));
    let error = ordered.enqueue(delayed).await.expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::InvalidOption);
    let empty = Task::new("step", &1).expect("task").with_order_key("");
    let error = ordered.enqueue(empty).await.expect_err("refused");
    assert_eq!(error.kind(), ErrorKind::InvalidOption);
}
