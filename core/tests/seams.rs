// SPDX-License-Identifier: Apache-2.0
//! The engine's seams against a real server: one client for many queues, a worker consuming
//! several queues under one budget, the admission step and the KV layer.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{NatsServer, init_tracing, observe_concurrency, wait_final, wait_for};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use jetjobs::{
    Admission, Admit, CancellationToken, Client, ClientOptions, ErrorKind, KvBucket, KvOperation,
    Mux, Permit, Queue, RetryPolicy, Task, TaskSigner, TaskState, Timestamp, Worker, WorkerOptions,
};
use serde_json::json;

const FINAL: Duration = Duration::from_secs(30);

async fn connect(server: &NatsServer) -> Client {
    ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("client connects")
}

fn fast() -> WorkerOptions {
    WorkerOptions::new().retry_policy(
        RetryPolicy::exponential(Duration::from_millis(50), Duration::from_millis(200), 0.0)
            .expect("policy"),
    )
}

fn spawn(worker: Worker) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let handle = tokio::spawn(async move { worker.run(token).await.expect("worker runs") });
    (shutdown, handle)
}

async fn stop(worker: (CancellationToken, tokio::task::JoinHandle<()>)) {
    worker.0.cancel();
    worker.1.await.expect("worker stops cleanly");
}

/// A handler that reports its start and end on `track.*` with `label` as the body.
fn tracked(client: &Client, label: &'static str) -> Mux {
    let nats = client.nats().clone();
    let mut mux = Mux::new();
    mux.handle("", move |_ctx, _task: Task| {
        let nats = nats.clone();
        async move {
            nats.publish("track.start", label.into()).await?;
            nats.flush().await?;
            tokio::time::sleep(Duration::from_millis(30)).await;
            nats.publish("track.end", label.into()).await?;
            nats.flush().await?;
            Ok(json!(label))
        }
    })
    .expect("register");
    mux
}

#[tokio::test]
async fn one_client_enqueues_to_any_queue_and_one_worker_consumes_two_under_one_budget() {
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server).await;
    let a = client
        .open_queue(Queue::new("A").max_concurrent(2))
        .await
        .expect("queue A");
    let b = client
        .open_queue(Queue::new("B").max_concurrent(3))
        .await
        .expect("queue B");
    assert_eq!((a.settings().max_concurrent, b.name()), (2, "B"));
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(
            a.enqueue(Task::new("a", &i).expect("task"))
                .await
                .expect("A")
                .id,
        );
        ids.push(
            b.enqueue(Task::new("b", &i).expect("task"))
                .await
                .expect("B")
                .id,
        );
    }
    assert_eq!(a.info().await.expect("info").items, 12);

    let observer = client.nats().subscribe("track.*").await.expect("subscribe");
    client.nats().flush().await.expect("flush");
    let mut worker = Worker::new(&client, fast().concurrency(4));
    worker
        .consume(&a, tracked(&client, "A"))
        .expect("consume A")
        .consume(&b, tracked(&client, "B"))
        .expect("consume B");
    assert_eq!(
        worker.consume(&a, Mux::new()).err().map(|e| e.kind()),
        Some(ErrorKind::InvalidOption)
    );
    let running = spawn(worker);
    let mut observer = observer;
    // Budget 4 although the queues allow 2 + 3; each queue within its own limit.
    let seen = observe_concurrency(&mut observer, ids.len(), 4).await;
    assert!(seen.peak_by_worker["A"] <= 2, "{seen:?}");
    assert!(seen.peak_by_worker["B"] <= 3, "{seen:?}");
    let done = wait_final(&client, &ids, FINAL).await;
    assert!(done.iter().all(|t| t.state == TaskState::Complete));
    let queues: HashMap<String, usize> = done.iter().fold(HashMap::new(), |mut m, t| {
        *m.entry(t.queue.clone()).or_default() += 1;
        m
    });
    assert_eq!((queues["A"], queues["B"]), (12, 12));
    stop(running).await;
}

/// Denies each task's first `denials` asks, counting asks and outstanding permits.
struct DenyFirst {
    denials: usize,
    asks: Mutex<HashMap<String, usize>>,
    held: Arc<AtomicI64>,
    /// Tasks of this type are denied until `open` is set.
    gated_type: &'static str,
    open: AtomicBool,
}

impl Admission for DenyFirst {
    fn admit<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, jetjobs::Result<Admit>> {
        Box::pin(async move {
            if task.task_type == self.gated_type && !self.open.load(Ordering::SeqCst) {
                return Ok(Admit::RetryAfter(Duration::from_millis(50)));
            }
            let asks = {
                let mut asks = self.asks.lock().expect("lock");
                let n = asks.entry(task.id.clone()).or_default();
                *n += 1;
                *n
            };
            if asks <= self.denials {
                return Ok(Admit::RetryAfter(Duration::from_millis(20)));
            }
            self.held.fetch_add(1, Ordering::SeqCst);
            let held = self.held.clone();
            Ok(Admit::Granted(Permit::on_release(move || {
                held.fetch_sub(1, Ordering::SeqCst);
            })))
        })
    }
}

#[tokio::test]
async fn admission_denials_are_not_tries_hold_no_slot_and_permits_are_released() {
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server).await;
    // Queue tries are limited: denials must not use up JetStream deliveries either.
    let queue = client
        .open_queue(Queue::new("ADMIT").max_tries(2))
        .await
        .expect("queue");
    let admission = Arc::new(DenyFirst {
        denials: 3,
        asks: Mutex::new(HashMap::new()),
        held: Arc::new(AtomicI64::new(0)),
        gated_type: "gated",
        open: AtomicBool::new(false),
    });
    let runs = Arc::new(AtomicUsize::new(0));
    let held_while_running = Arc::new(AtomicI64::new(-1));
    let mut mux = Mux::new();
    {
        let (runs, held, seen) = (
            runs.clone(),
            admission.held.clone(),
            held_while_running.clone(),
        );
        mux.handle("", move |_ctx, task: Task| {
            let (runs, held, seen) = (runs.clone(), held.clone(), seen.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                seen.store(held.load(Ordering::SeqCst), Ordering::SeqCst);
                if task.task_type == "boom" {
                    panic!("handler panics while holding a permit");
                }
                Ok(json!("ran"))
            }
        })
        .expect("register");
    }
    // One handler slot: the gated task waits without holding it, so the others still run.
    let options = fast().concurrency(1).admission(admission.clone());
    let gated = queue
        .enqueue(Task::new("gated", &0).expect("task"))
        .await
        .expect("enqueue");
    let plain = queue
        .enqueue(Task::new("plain", &1).expect("task"))
        .await
        .expect("enqueue");
    let mut worker = Worker::new(&client, options);
    worker.consume(&queue, mux).expect("consume");
    let running = spawn(worker);

    let done = &wait_final(&client, std::slice::from_ref(&plain.id), FINAL).await[0];
    assert_eq!(done.state, TaskState::Complete);
    assert_eq!(done.tries, 1, "denials are not tries");
    assert_eq!(held_while_running.load(Ordering::SeqCst), 1);
    assert_eq!(admission.asks.lock().expect("lock")[&plain.id], 4);
    assert_eq!(
        client.load_task(&gated.id).await.expect("load").state,
        TaskState::New,
        "a denied task is not failed"
    );

    admission.open.store(true, Ordering::SeqCst);
    let boom = queue
        .enqueue(Task::new("boom", &2).expect("task").with_max_tries(1))
        .await
        .expect("enqueue");
    let done = wait_final(&client, &[gated.id.clone(), boom.id.clone()], FINAL).await;
    assert_eq!(done[0].state, TaskState::Complete);
    assert_eq!(done[0].tries, 1);
    assert_eq!(done[1].state, TaskState::Expired);
    assert!(
        done[1].last_err.contains("panicked"),
        "{}",
        done[1].last_err
    );
    wait_for("every permit to be released", FINAL, || async {
        (admission.held.load(Ordering::SeqCst) == 0).then_some(())
    })
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    stop(running).await;
}

#[tokio::test]
async fn a_task_denied_past_its_deadline_expires_without_running() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let queue = client.open_queue(Queue::new("LATE")).await.expect("queue");
    let admission = Arc::new(DenyFirst {
        denials: usize::MAX,
        asks: Mutex::new(HashMap::new()),
        held: Arc::new(AtomicI64::new(0)),
        gated_type: "",
        open: AtomicBool::new(true),
    });
    let task = queue
        .enqueue(
            Task::new("never", &0)
                .expect("task")
                .with_deadline(Timestamp::now().add(Duration::from_millis(300))),
        )
        .await
        .expect("enqueue");
    let mut mux = Mux::new();
    mux.handle("", |_ctx, _task| async { Ok(json!("ran")) })
        .expect("register");
    let mut worker = Worker::new(&client, fast().admission(admission));
    worker.consume(&queue, mux).expect("consume");
    let running = spawn(worker);
    let done = &wait_final(&client, std::slice::from_ref(&task.id), FINAL).await[0];
    assert_eq!(done.state, TaskState::Expired);
    assert_eq!(done.tries, 0);
    stop(running).await;
}

#[tokio::test]
async fn kv_creates_compares_and_swaps_watches_and_expires_keys() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let kv = client
        .kv(&KvBucket::new("SEAMS").history(5).per_key_ttl())
        .await
        .expect("bucket");
    let mut watch = kv.watch(">", None).await.expect("watch");

    let first = kv.create("lock", Bytes::from("a")).await.expect("create");
    assert_eq!(
        kv.create("lock", Bytes::from("b"))
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::KeyExists)
    );
    assert_eq!(
        kv.update("lock", Bytes::from("c"), first + 100)
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::RevisionMismatch)
    );
    let second = kv
        .update("lock", Bytes::from("c"), first)
        .await
        .expect("CAS update");
    assert_eq!(
        kv.get("lock")
            .await
            .expect("get")
            .map(|e| (e.value, e.revision)),
        Some((Bytes::from("c"), second))
    );
    assert_eq!(
        kv.delete("lock", Some(first)).await.err().map(|e| e.kind()),
        Some(ErrorKind::RevisionMismatch)
    );
    kv.delete("lock", Some(second)).await.expect("delete");
    assert_eq!(kv.get("lock").await.expect("get"), None);
    kv.create("lock", Bytes::from("again"))
        .await
        .expect("create after delete");

    let seen: Vec<_> = (&mut watch)
        .take(4)
        .map(|e| e.map(|e| (e.operation, e.value)))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<jetjobs::Result<_>>()
        .expect("watch");
    assert_eq!(
        seen,
        vec![
            (KvOperation::Put, Bytes::from("a")),
            (KvOperation::Put, Bytes::from("c")),
            (KvOperation::Delete, Bytes::new()),
            (KvOperation::Put, Bytes::from("again")),
        ]
    );
    let replay: Vec<_> = kv
        .watch("lock", Some(second))
        .await
        .expect("watch from revision")
        .take(1)
        .collect()
        .await;
    assert!(matches!(&replay[..], [Ok(e)] if e.revision == second));

    kv.create_with_ttl("lease", Bytes::from("x"), Duration::from_secs(1))
        .await
        .expect("create with ttl");
    wait_for("the key's TTL to remove it", FINAL, || async {
        kv.get("lease").await.expect("get").is_none().then_some(())
    })
    .await;
    kv.purge("lock", None).await.expect("purge");
    assert!(kv.keys().await.expect("keys").is_empty());
}

#[tokio::test]
async fn outages_are_storage_errors_and_missing_queues_are_not_found() {
    let mut server = NatsServer::start();
    let client = connect(&server).await;
    let admin = client.admin();
    assert_eq!(
        admin.purge_queue("NOPE").await.err().map(|e| e.kind()),
        Some(ErrorKind::QueueNotFound)
    );
    client.open_queue(Queue::new("HERE")).await.expect("queue");
    server.stop();
    let err = admin.purge_queue("HERE").await.expect_err("server is down");
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
}

#[tokio::test]
async fn a_closed_client_says_so() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let queue = client
        .open_queue(Queue::new("CLOSING"))
        .await
        .expect("queue");
    queue
        .enqueue(Task::new("t", &1).expect("task"))
        .await
        .expect("enqueue");
    client.close().await.expect("close");
    client.close().await.expect("closing twice is fine");
    assert_eq!(
        queue
            .enqueue(Task::new("t", &2).expect("task"))
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::Closed)
    );
    assert_eq!(
        client
            .open_queue(Queue::new("X"))
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::Closed)
    );
}

#[tokio::test]
async fn bad_tasks_are_refused_up_front_with_typed_errors() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let queue = client
        .open_queue(Queue::new("CHECKS"))
        .await
        .expect("queue");
    let selfish = Task::new("t", &1)
        .expect("task")
        .with_id("me")
        .expect("id")
        .depends_on(["me"]);
    assert_eq!(
        queue.enqueue(selfish).await.err().map(|e| e.kind()),
        Some(ErrorKind::InvalidDependencies)
    );
    // Larger than the server's max payload once base64-encoded in the document.
    let max = client.nats().server_info().max_payload;
    let big =
        Task::with_raw_payload("t", Some(Bytes::from(vec![b'x'; max * 4 / 5]))).expect("task");
    let err = queue.enqueue(big).await.expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    assert!(err.to_string().contains("3/4"), "{err}");
    // The connection survives all of the above.
    queue
        .enqueue(Task::new("t", &()).expect("task"))
        .await
        .expect("enqueue after errors");
    assert_eq!(queue.info().await.expect("info").items, 1);
}

#[tokio::test]
async fn dependency_results_are_only_handed_over_from_verified_parents() {
    let server = NatsServer::start();
    let signer = TaskSigner::from_bytes(&[7; 32]).expect("key");
    let verifier = signer.verifier();
    // The parent is unsigned and completed by a worker that does not verify.
    let plain = connect(&server).await;
    let other = plain.open_queue(Queue::new("PLAIN")).await.expect("queue");
    let parent = other
        .enqueue(Task::new("parent", &1).expect("task"))
        .await
        .expect("enqueue");
    let mut mux = Mux::new();
    mux.handle("", |_ctx, _task| async { Ok(json!({"secret": 1})) })
        .expect("register");
    let mut worker = Worker::new(&plain, fast());
    worker.consume(&other, mux).expect("consume");
    let plain_worker = spawn(worker);
    wait_final(&plain, std::slice::from_ref(&parent.id), FINAL).await;

    let signing = ClientOptions::new()
        .signing_key(signer)
        .connect(&server.url)
        .await
        .expect("connect");
    let strict = signing
        .open_queue(Queue::new("STRICT"))
        .await
        .expect("queue");
    let child = strict
        .enqueue(
            Task::new("child", &2)
                .expect("task")
                .depends_on([parent.id.clone()])
                .with_dependency_results(),
        )
        .await
        .expect("enqueue");
    let ran = Arc::new(AtomicBool::new(false));
    let mut mux = Mux::new();
    let flag = ran.clone();
    mux.handle("", move |_ctx, _task| {
        flag.store(true, Ordering::SeqCst);
        async { Ok(json!("ran")) }
    })
    .expect("register");
    let mut worker = Worker::new(&signing, fast().verification_key(verifier));
    worker.consume(&strict, mux).expect("consume");
    let strict_worker = spawn(worker);
    let done = &wait_final(&signing, std::slice::from_ref(&child.id), FINAL).await[0];
    assert_eq!(done.state, TaskState::Unreachable);
    assert!(
        done.last_err.contains("failed verification"),
        "{}",
        done.last_err
    );
    assert!(
        done.tried.is_some(),
        "asyncjobs sets tried on unreachable tasks"
    );
    assert!(!ran.load(Ordering::SeqCst));
    stop(strict_worker).await;
    stop(plain_worker).await;
}

#[tokio::test]
async fn a_hard_stop_cuts_the_shutdown_grace_short_and_releases_running_tasks() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let queue = client.open_queue(Queue::new("HARD")).await.expect("queue");
    let mut mux = Mux::new();
    mux.handle("", |_ctx, _task| async {
        futures::future::pending::<()>().await;
        Ok(json!("never"))
    })
    .expect("register");
    let mut worker = Worker::new(&client, fast().shutdown_grace(Duration::from_secs(600)));
    worker.consume(&queue, mux).expect("consume");
    let (shutdown, hard_stop) = (CancellationToken::new(), CancellationToken::new());
    let running = tokio::spawn(worker.run_with_hard_stop(shutdown.clone(), hard_stop.clone()));
    let task = queue
        .enqueue(Task::new("stuck", &0).expect("task"))
        .await
        .expect("enqueue");
    wait_for("the task to run", FINAL, || async {
        let t = client.load_task(&task.id).await.ok()?;
        (t.state == TaskState::Active).then_some(())
    })
    .await;
    shutdown.cancel();
    hard_stop.cancel();
    // Well inside the 10-minute grace.
    tokio::time::timeout(FINAL, running)
        .await
        .expect("the worker stops at the hard stop")
        .expect("joins")
        .expect("runs");
    let released = client.load_task(&task.id).await.expect("load");
    assert_eq!((released.state, released.tries), (TaskState::Retry, 0));
}

#[tokio::test]
async fn enqueue_many_pipelines_with_enqueues_guarantees_per_task() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let queue = client.open_queue(Queue::new("BATCH")).await.expect("queue");
    let existing = queue
        .enqueue(Task::new("t", &"first").expect("task"))
        .await
        .expect("enqueue");
    let mut tasks: Vec<Task> = (0..2500)
        .map(|i| Task::new("t", &i).expect("task"))
        .collect();
    // A repeat of a stored task is fine; another task with its id is not; a final one never is.
    tasks[10] = existing.clone();
    tasks[1500] = Task::new("t", &"other")
        .expect("task")
        .with_id(existing.id.clone())
        .expect("id");
    tasks[2000].state = TaskState::Complete;
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();

    let results = queue.enqueue_many(tasks).await;
    assert_eq!(results.len(), 2500);
    for (i, result) in results.iter().enumerate() {
        match i {
            1500 => assert_eq!(
                result.as_ref().err().map(|e| e.kind()),
                Some(ErrorKind::TaskAlreadyExists)
            ),
            2000 => assert_eq!(
                result.as_ref().err().map(|e| e.kind()),
                Some(ErrorKind::TaskCannotEnqueue)
            ),
            _ => assert_eq!(
                result.as_ref().map(|t| t.id.as_str()).ok(),
                Some(ids[i].as_str()),
                "task {i}"
            ),
        }
    }
    // One item per stored task, in the right queue.
    assert_eq!(queue.info().await.expect("info").items, 2500 - 2);

    // A full queue refuses items: those tasks are recorded as queue_error, the others stored.
    let small = client
        .open_queue(Queue::new("SMALL").max_entries(3))
        .await
        .expect("queue");
    let results = small
        .enqueue_many((0..5).map(|i| Task::new("t", &i).expect("task")))
        .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    for failed in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(failed.kind(), ErrorKind::Storage, "{failed}");
    }
    assert!(small.enqueue_many(Vec::new()).await.is_empty());
}

#[tokio::test]
async fn an_id_reused_after_its_task_was_discarded_runs_again() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let queue = client.open_queue(Queue::new("REUSE")).await.expect("queue");
    let runs = Arc::new(AtomicUsize::new(0));
    let mut mux = Mux::new();
    let counter = runs.clone();
    mux.handle("", move |_ctx, _task| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(json!("done")) }
    })
    .expect("register");
    let mut worker = Worker::new(&client, fast().discard_states([TaskState::Complete]));
    worker.consume(&queue, mux).expect("consume");
    let running = spawn(worker);
    for round in 1..=2 {
        // Within JetStream's 2-minute dedupe window of the first item.
        let task = Task::new("job", &round)
            .expect("task")
            .with_id("nightly-report")
            .expect("id");
        queue.enqueue(task).await.expect("enqueue");
        wait_for("the task to run and be discarded", FINAL, || async {
            let gone =
                client.load_task("nightly-report").await.err()?.kind() == ErrorKind::TaskNotFound;
            (gone && runs.load(Ordering::SeqCst) == round).then_some(())
        })
        .await;
    }
    stop(running).await;
}
