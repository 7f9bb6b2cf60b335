// SPDX-License-Identifier: Apache-2.0
//! Task lifecycle against a real nats-server: outcomes, retries, expiry, dependencies, signatures,
//! discard states, retry by id and corrupt items.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{NatsServer, init_tracing, wait_final, wait_for};
use futures::StreamExt as _;
use jetjobs::{
    CancellationToken, Client, ClientOptions, ErrorKind, Event, HandlerError, Mux, Queue,
    RetryPolicy, Task, TaskSigner, TaskState, Timestamp,
};
use serde_json::json;

const FINAL: Duration = Duration::from_secs(30);

fn fast_retries() -> ClientOptions {
    ClientOptions::new()
        .retry_policy(
            RetryPolicy::exponential(Duration::from_millis(50), Duration::from_millis(200), 0.0)
                .expect("policy"),
        )
        .concurrency(20)
}

async fn connect(server: &NatsServer, options: ClientOptions) -> Client {
    options
        .queue(Queue::new("TEST").max_run_time(Duration::from_secs(5)))
        .connect(&server.url)
        .await
        .expect("client connects")
}

/// Runs `mux` on `client` until the returned token is cancelled.
fn spawn_worker(client: &Client, mux: Mux) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let (client, token) = (client.clone(), shutdown.clone());
    let handle = tokio::spawn(async move { client.run(mux, token).await.expect("worker runs") });
    (shutdown, handle)
}

async fn stop(worker: (CancellationToken, tokio::task::JoinHandle<()>)) {
    worker.0.cancel();
    worker.1.await.expect("worker stops cleanly");
}

async fn enqueue(client: &Client, task: Task) -> String {
    client.enqueue(task).await.expect("enqueue").id
}

#[tokio::test]
async fn task_completes_with_result_and_events() {
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let mut events = client.events().await.expect("events");
    let mut mux = Mux::new();
    mux.handle("email:new", |_ctx, task: Task| async move {
        let body: serde_json::Value = task.payload_json()?;
        Ok(json!({"sent_to": body["to"]}))
    })
    .expect("register");
    let id = enqueue(
        &client,
        Task::new("email:new", &json!({"to": "a@example.net"})).expect("task"),
    )
    .await;
    let worker = spawn_worker(&client, mux);

    let task = &wait_final(&client, std::slice::from_ref(&id), FINAL).await[0];
    assert_eq!(task.state, TaskState::Complete);
    assert_eq!(task.tries, 1);
    assert_eq!(task.queue, "TEST");
    assert!(task.last_err.is_empty());
    assert_eq!(
        task.result.as_ref().map(|r| &r.payload),
        Some(&json!({"sent_to": "a@example.net"}))
    );

    let mut states = Vec::new();
    while states.last() != Some(&TaskState::Complete) {
        let event = tokio::time::timeout(FINAL, events.next())
            .await
            .expect("event arrives");
        if let Some(Ok(Event::TaskState(e))) = event {
            assert_eq!(
                (e.task_id.as_str(), e.queue.as_str(), e.task_type.as_str()),
                (id.as_str(), "TEST", "email:new")
            );
            states.push(e.state);
        }
    }
    assert_eq!(
        states,
        [TaskState::New, TaskState::Active, TaskState::Complete]
    );
    stop(worker).await;
}

#[tokio::test]
async fn failed_tries_are_retried_after_the_policy_delay() {
    let server = NatsServer::start();
    let policy = RetryPolicy::exponential(Duration::from_millis(150), Duration::from_secs(2), 0.0)
        .expect("policy");
    let client = connect(&server, ClientOptions::new().retry_policy(policy.clone())).await;
    let calls = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let mut mux = Mux::new();
    let seen = calls.clone();
    mux.handle("flaky", move |_ctx, _task| {
        let seen = seen.clone();
        async move {
            let n = {
                let mut seen = seen.lock().expect("lock");
                seen.push(Instant::now());
                seen.len()
            };
            if n < 3 {
                Err(HandlerError::retry(format!("failure {n}")))
            } else {
                Ok(json!("finally"))
            }
        }
    })
    .expect("register");
    let id = enqueue(&client, Task::new("flaky", &1).expect("task")).await;
    let worker = spawn_worker(&client, mux);

    let task = &wait_final(&client, &[id], FINAL).await[0];
    assert_eq!(task.state, TaskState::Complete);
    assert_eq!(task.tries, 3);
    assert!(task.last_err.is_empty(), "a success clears last_err");
    let calls = calls.lock().expect("lock").clone();
    // Delivery n failed, so the next try waits policy.delay(n): 300ms after the first, 600ms after the second.
    assert!(
        calls[1] - calls[0] >= policy.delay(1),
        "{:?}",
        calls[1] - calls[0]
    );
    assert!(
        calls[2] - calls[1] >= policy.delay(2),
        "{:?}",
        calls[2] - calls[1]
    );
    stop(worker).await;
}

#[tokio::test]
async fn terminate_stops_further_tries() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut mux = Mux::new();
    let counter = calls.clone();
    mux.handle("bad", move |_ctx, _task| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Err(HandlerError::terminate("bad input")) }
    })
    .expect("register");
    let id = enqueue(&client, Task::new("bad", &1).expect("task")).await;
    let worker = spawn_worker(&client, mux);

    let task = &wait_final(&client, &[id], FINAL).await[0];
    assert_eq!(task.state, TaskState::Terminated);
    assert_eq!(task.last_err, "bad input: terminate task");
    assert_eq!(task.tries, 1);
    // The work item is gone, so nothing can run it again.
    let admin = client.admin();
    wait_for("the item to be removed", FINAL, || async {
        (admin.queue_info("TEST").await.ok()?.items == 0).then_some(())
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    stop(worker).await;
}

#[tokio::test]
async fn exhausted_tries_expire_the_task() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let mut mux = Mux::new();
    mux.handle("doomed", |_ctx, _task| async {
        Err(HandlerError::retry("still broken"))
    })
    .expect("register");
    let id = enqueue(
        &client,
        Task::new("doomed", &1).expect("task").with_max_tries(2),
    )
    .await;
    let worker = spawn_worker(&client, mux);

    let task = &wait_final(&client, &[id], FINAL).await[0];
    assert_eq!(task.state, TaskState::Expired);
    assert_eq!(task.tries, 2);
    assert_eq!(task.last_err, "still broken");
    stop(worker).await;
}

#[tokio::test]
async fn past_deadline_expires_without_running() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut mux = Mux::new();
    let counter = calls.clone();
    mux.handle("late", move |_ctx, _task| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(json!(null)) }
    })
    .expect("register");
    let deadline = Timestamp::now().add(Duration::from_millis(200));
    let id = enqueue(
        &client,
        Task::new("late", &1).expect("task").with_deadline(deadline),
    )
    .await;
    wait_for("the deadline to pass", FINAL, || async {
        deadline.until().is_zero().then_some(())
    })
    .await;
    let worker = spawn_worker(&client, mux);

    let task = &wait_final(&client, &[id], FINAL).await[0];
    assert_eq!(task.state, TaskState::Expired);
    assert_eq!(task.tries, 0);
    // As asyncjobs: only the state changes, so tools do not show an error or a try that never was.
    assert_eq!(task.last_err, "");
    assert_eq!(task.tried, None);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    stop(worker).await;
}

#[tokio::test]
async fn handler_panic_is_a_failed_try_not_a_dead_worker() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut mux = Mux::new();
    let counter = calls.clone();
    mux.handle("panicky", move |_ctx, _task| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                panic!("boom");
            }
            Ok(json!("recovered"))
        }
    })
    .expect("register");
    let id = enqueue(&client, Task::new("panicky", &1).expect("task")).await;
    let worker = spawn_worker(&client, mux);

    let task = &wait_final(&client, &[id], FINAL).await[0];
    assert_eq!(task.state, TaskState::Complete);
    assert_eq!(task.tries, 2);
    stop(worker).await;
}

#[tokio::test]
async fn handler_past_its_run_time_is_cancelled_and_retried() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .retry_policy(
            RetryPolicy::exponential(Duration::from_millis(50), Duration::from_millis(50), 0.0)
                .expect("policy"),
        )
        .queue(Queue::new("SHORT").max_run_time(Duration::from_secs(1)))
        .connect(&server.url)
        .await
        .expect("connect");
    let calls = Arc::new(AtomicUsize::new(0));
    let mut mux = Mux::new();
    let counter = calls.clone();
    mux.handle("slow", move |ctx: jetjobs::TaskContext, _task| {
        let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            assert!(ctx.remaining() <= Duration::from_secs(1));
            if first {
                ctx.cancelled().await;
                return Err(HandlerError::retry(
                    "unreachable: the processor drops this future",
                ));
            }
            // Asking for more time keeps a long handler alive past the queue's run time.
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                ctx.mark_in_progress().await?;
            }
            Ok(json!("done after 1.2s"))
        }
    })
    .expect("register");
    let id = enqueue(&client, Task::new("slow", &1).expect("task")).await;
    let worker = spawn_worker(&client, mux);

    let task = &wait_final(&client, &[id], FINAL).await[0];
    assert_eq!(task.state, TaskState::Complete);
    assert_eq!(
        task.tries, 2,
        "first try timed out, second extended its deadline"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    stop(worker).await;
}

#[tokio::test]
async fn dependencies_gate_children_and_failures_propagate() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let mut mux = Mux::new();
    mux.handle("step", |_ctx, task: Task| async move {
        let n: i64 = task.payload_json()?;
        let parents: HashMap<String, serde_json::Value> = task
            .dependency_results
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_ref().map(|r| r.payload.clone()).unwrap_or_default(),
                )
            })
            .collect();
        Ok(json!({"n": n, "parents": parents}))
    })
    .expect("register")
    .handle("fail", |_ctx, _task| async {
        Err(HandlerError::terminate("parent failed"))
    })
    .expect("register");

    // A chain a -> b -> c where b and c load their parents' results; enqueued child first.
    let a = Task::new("step", &1).expect("task");
    let b = Task::new("step", &2)
        .expect("task")
        .depends_on([a.id.clone()])
        .with_dependency_results();
    let c = Task::new("step", &3)
        .expect("task")
        .depends_on([b.id.clone()])
        .with_dependency_results();
    // A failing parent, its child and grandchild, and a child of a task that does not exist.
    let bad = Task::new("fail", &0).expect("task");
    let orphan_child = Task::new("step", &4)
        .expect("task")
        .depends_on([bad.id.clone()]);
    let orphan_grandchild = Task::new("step", &5)
        .expect("task")
        .depends_on([orphan_child.id.clone()]);
    let missing_parent = Task::new("step", &6)
        .expect("task")
        .depends_on(["2Xq0000000000000000000000nope"]);
    let ids: Vec<String> = [
        &c,
        &b,
        &a,
        &orphan_grandchild,
        &orphan_child,
        &bad,
        &missing_parent,
    ]
    .iter()
    .map(|t| t.id.clone())
    .collect();
    for task in [
        c.clone(),
        b.clone(),
        a.clone(),
        orphan_grandchild,
        orphan_child,
        bad,
        missing_parent,
    ] {
        enqueue(&client, task).await;
    }
    assert_eq!(
        client.load_task(&c.id).await.expect("load").state,
        TaskState::Blocked
    );
    let worker = spawn_worker(&client, mux);

    let done = wait_final(&client, &ids, Duration::from_secs(60)).await;
    let by_id: HashMap<&str, &Task> = done.iter().map(|t| (t.id.as_str(), t)).collect();
    for id in [&a.id, &b.id, &c.id] {
        assert_eq!(
            by_id[id.as_str()].state,
            TaskState::Complete,
            "chain task {id}"
        );
    }
    let c_result = &by_id[c.id.as_str()]
        .result
        .as_ref()
        .expect("result")
        .payload;
    assert_eq!(c_result["parents"][&b.id]["n"], 2);
    assert_eq!(c_result["parents"][&b.id]["parents"][&a.id]["n"], 1);
    for t in &done[3..5] {
        assert_eq!(t.state, TaskState::Unreachable, "{}", t.last_err);
        assert_eq!(t.tries, 0);
        assert!(
            t.last_err.starts_with("task dependencies failed: "),
            "{}",
            t.last_err
        );
    }
    assert_eq!(done[5].state, TaskState::Terminated);
    assert_eq!(done[6].state, TaskState::Unreachable);
    assert!(
        done[6]
            .last_err
            .contains("task not found: 2Xq0000000000000000000000nope"),
        "{}",
        done[6].last_err
    );
    stop(worker).await;
}

#[tokio::test]
async fn signatures_are_required_verified_and_tampering_is_terminated() {
    let server = NatsServer::start();
    let signer = TaskSigner::from_bytes(&[42; 32]).expect("key");
    let signed_producer = connect(&server, ClientOptions::new().signing_key(signer.clone())).await;
    let unsigned_producer = connect(&server, ClientOptions::new()).await;
    let worker_client = connect(&server, fast_retries().verification_key(signer.verifier())).await;
    let mut mux = Mux::new();
    mux.handle("secure", |_ctx, _task| async { Ok(json!("ran")) })
        .expect("register");

    let good = enqueue(&signed_producer, Task::new("secure", &"ok").expect("task")).await;
    let unsigned = enqueue(
        &unsigned_producer,
        Task::new("secure", &"no signature").expect("task"),
    )
    .await;
    let tampered = signed_producer
        .enqueue(Task::new("secure", &"original").expect("task"))
        .await
        .expect("enqueue");
    assert_eq!(tampered.signature.len(), 128);
    // Rewrite the stored document with another payload, keeping the signature.
    let mut forged = tampered.clone();
    forged.payload = Some(bytes::Bytes::from_static(b"\"forged\""));
    let js = async_nats::jetstream::new(signed_producer.nats().clone());
    js.publish(
        format!("CHORIA_AJ.T.{}", forged.id),
        forged.to_json().expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");

    let worker = spawn_worker(&worker_client, mux);
    let done = wait_final(
        &unsigned_producer,
        &[good, unsigned, tampered.id.clone()],
        FINAL,
    )
    .await;
    assert_eq!(done[0].state, TaskState::Complete);
    assert_eq!(
        (done[1].state, done[1].last_err.as_str()),
        (TaskState::Terminated, "task is not signed")
    );
    assert_eq!(
        (done[2].state, done[2].last_err.as_str()),
        (TaskState::Terminated, "invalid task signature")
    );
    assert_eq!(
        worker_client
            .load_task(&tampered.id)
            .await
            .err()
            .map(|e| e.kind()),
        Some(ErrorKind::SignatureInvalid)
    );
    stop(worker).await;

    // Optional mode accepts unsigned tasks but still checks signed ones.
    let lenient = connect(
        &server,
        fast_retries()
            .verification_key(signer.verifier())
            .signatures_optional(),
    )
    .await;
    let unsigned = enqueue(
        &unsigned_producer,
        Task::new("secure", &"fine").expect("task"),
    )
    .await;
    let mut mux = Mux::new();
    mux.handle("secure", |_ctx, _task| async { Ok(json!("ran")) })
        .expect("register");
    let worker = spawn_worker(&lenient, mux);
    assert_eq!(
        wait_final(&lenient, &[unsigned], FINAL).await[0].state,
        TaskState::Complete
    );
    stop(worker).await;
}

#[tokio::test]
async fn discarded_states_are_deleted_after_their_event() {
    let server = NatsServer::start();
    let client = connect(
        &server,
        fast_retries().discard_states([TaskState::Complete]),
    )
    .await;
    let mut events = client.events().await.expect("events");
    let mut mux = Mux::new();
    mux.handle("ok", |_ctx, _task| async { Ok(json!(1)) })
        .expect("register")
        .handle("no", |_ctx, _task| async {
            Err(HandlerError::terminate("kept"))
        })
        .expect("register");
    let kept = enqueue(&client, Task::new("no", &1).expect("task")).await;
    let gone = enqueue(&client, Task::new("ok", &1).expect("task")).await;
    let worker = spawn_worker(&client, mux);

    loop {
        let event = tokio::time::timeout(FINAL, events.next())
            .await
            .expect("event");
        if let Some(Ok(Event::TaskState(e))) = event
            && e.task_id == gone
            && e.state == TaskState::Complete
        {
            break;
        }
    }
    wait_for("the completed task to be deleted", FINAL, || async {
        (client.load_task(&gone).await.err()?.kind() == ErrorKind::TaskNotFound).then_some(())
    })
    .await;
    assert_eq!(
        wait_final(&client, &[kept], FINAL).await[0].state,
        TaskState::Terminated
    );
    assert!(
        ClientOptions::new()
            .discard_states([TaskState::Retry])
            .connect(&server.url)
            .await
            .err()
            .map(|e| e.kind())
            == Some(ErrorKind::UnknownDiscardPolicy)
    );
    stop(worker).await;
}

#[tokio::test]
async fn retry_by_id_runs_a_finished_task_again() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut mux = Mux::new();
    let should_fail = fail.clone();
    mux.handle("again", move |_ctx, _task| {
        let should_fail = should_fail.load(Ordering::SeqCst);
        async move {
            if should_fail {
                Err(HandlerError::terminate("not yet"))
            } else {
                Ok(json!("second time"))
            }
        }
    })
    .expect("register");
    let id = enqueue(
        &client,
        Task::new("again", &1).expect("task").with_max_tries(1),
    )
    .await;
    let worker = spawn_worker(&client, mux);
    assert_eq!(
        wait_final(&client, std::slice::from_ref(&id), FINAL).await[0].state,
        TaskState::Terminated
    );

    fail.store(false, Ordering::SeqCst);
    let retried = client.retry_task(&id).await.expect("retry");
    assert_eq!((retried.state, retried.tries), (TaskState::Retry, 0));
    let task = &wait_final(&client, &[id], FINAL).await[0];
    assert_eq!(task.state, TaskState::Complete, "{}", task.last_err);
    assert_eq!(
        task.tries, 1,
        "tries were reset, so max_tries 1 allows the new run"
    );
    assert_eq!(
        client.retry_task("missing").await.err().map(|e| e.kind()),
        Some(ErrorKind::TaskNotFound)
    );
    stop(worker).await;
}

#[tokio::test]
async fn corrupt_items_are_terminated_and_the_worker_keeps_going() {
    init_tracing();
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let mut mux = Mux::new();
    mux.handle("fine", |_ctx, _task| async { Ok(json!("fine")) })
        .expect("register");
    let worker = spawn_worker(&client, mux);
    let js = async_nats::jetstream::new(client.nats().clone());
    for (subject, body) in [
        ("CHORIA_AJ.Q.TEST.notjson", &b"not json"[..]),
        ("CHORIA_AJ.Q.TEST.empty", &b""[..]),
        (
            "CHORIA_AJ.Q.TEST.unknown",
            &br#"{"kind":0,"job":"2Xq0000000000000000000unknown"}"#[..],
        ),
        ("CHORIA_AJ.Q.TEST.nojob", &br#"{"kind":0}"#[..]),
        // An item whose task document is garbage.
        (
            "CHORIA_AJ.T.2Xq00000000000000000000garbage",
            &b"\x00not a task"[..],
        ),
        (
            "CHORIA_AJ.Q.TEST.garbage",
            &br#"{"kind":0,"job":"2Xq00000000000000000000garbage"}"#[..],
        ),
    ] {
        js.publish(subject, bytes::Bytes::copy_from_slice(body))
            .await
            .expect("publish")
            .await
            .expect("stored");
    }
    let admin = client.admin();
    wait_for("corrupt items to be terminated", FINAL, || async {
        (admin.queue_info("TEST").await.ok()?.items == 0).then_some(())
    })
    .await;

    let id = enqueue(&client, Task::new("fine", &1).expect("task")).await;
    assert_eq!(
        wait_final(&client, &[id], FINAL).await[0].state,
        TaskState::Complete
    );
    stop(worker).await;
}

/// A task's document and item are written together, so an item can be readable a moment before
/// its document (longer on a cluster): the worker looks again instead of discarding the task.
#[tokio::test]
async fn an_item_stored_before_its_task_document_runs_once_the_document_is_readable() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let mut mux = Mux::new();
    mux.handle("late", |_ctx, _task| async { Ok(json!("ran")) })
        .expect("register");
    let worker = spawn_worker(&client, mux);
    let mut task = Task::new("late", &1).expect("task");
    task.queue = "TEST".into();
    let js = async_nats::jetstream::new(client.nats().clone());
    js.publish(
        format!("CHORIA_AJ.Q.TEST.{}", task.id),
        format!(r#"{{"kind":0,"job":"{}"}}"#, task.id).into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    // Paces the fault: the worker gets the item (and misses the task) before the document lands.
    tokio::time::sleep(Duration::from_millis(300)).await;
    js.publish(
        format!("CHORIA_AJ.T.{}", task.id),
        task.to_json().expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let done = wait_final(&client, std::slice::from_ref(&task.id), FINAL).await;
    assert_eq!(done[0].state, TaskState::Complete);
    assert_eq!(
        done[0].result.as_ref().map(|r| &r.payload),
        Some(&json!("ran"))
    );
    stop(worker).await;
}

#[tokio::test]
async fn enqueue_errors_are_typed_and_recorded() {
    let server = NatsServer::start();
    let client = connect(&server, fast_retries()).await;
    let task = Task::new("dup", &1).expect("task");
    enqueue(&client, task.clone()).await;
    // Enqueueing the same task again (a retry after a timeout) is idempotent: one item.
    let again = client.enqueue(task.clone()).await.expect("repeat enqueue");
    assert_eq!(again.id, task.id);
    assert_eq!(client.default_queue().info().await.expect("info").items, 1);
    // A different task with the same id says the id is taken.
    let other = Task::new("dup", &2)
        .expect("task")
        .with_id(task.id.clone())
        .expect("id");
    assert_eq!(
        client.enqueue(other).await.err().map(|e| e.kind()),
        Some(ErrorKind::TaskAlreadyExists)
    );
    // A document stored without an item (by another producer, say): the refused enqueue takes
    // back the item it sent together with its document, so nothing else becomes runnable.
    let foreign = Task::new("dup", &3).expect("task");
    let js = async_nats::jetstream::new(client.nats().clone());
    js.publish(
        format!("CHORIA_AJ.T.{}", foreign.id),
        foreign.to_json().expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let clash = Task::new("dup", &4)
        .expect("task")
        .with_id(foreign.id.clone())
        .expect("id");
    assert_eq!(
        client.enqueue(clash).await.err().map(|e| e.kind()),
        Some(ErrorKind::TaskAlreadyExists)
    );
    assert_eq!(client.default_queue().info().await.expect("info").items, 1);
    let mut done = Task::new("x", &1).expect("task");
    done.state = TaskState::Complete;
    assert_eq!(
        client.enqueue(done).await.err().map(|e| e.kind()),
        Some(ErrorKind::TaskCannotEnqueue)
    );
    assert_eq!(
        client.load_task("nope").await.err().map(|e| e.kind()),
        Some(ErrorKind::TaskNotFound)
    );
    let bound = ClientOptions::new()
        .queue(Queue::bind("MISSING"))
        .connect(&server.url)
        .await;
    assert_eq!(
        bound.err().map(|e| e.kind()),
        Some(ErrorKind::QueueNotFound)
    );
}

#[tokio::test]
async fn server_settings_are_authoritative_and_admin_lists_storage() {
    let server = NatsServer::start();
    let first = connect(&server, ClientOptions::new()).await;
    // A second client asking for other limits gets the queue as the server holds it.
    let second = ClientOptions::new()
        .queue(Queue::new("TEST").max_concurrent(7).max_tries(3))
        .connect(&server.url)
        .await
        .expect("connect");
    assert_eq!(second.queue(), first.queue());
    assert_eq!(
        (second.queue().max_concurrent, second.queue().max_tries),
        (100, -1)
    );
    let default = jetjobs::connect(&server.url).await.expect("connect");
    assert_eq!(default.queue().name, "DEFAULT");
    assert_eq!(
        (default.queue().max_tries, default.queue().max_run_time),
        (100, Duration::from_secs(60))
    );

    let admin = first.admin();
    assert_eq!(
        admin.queue_names().await.expect("names"),
        ["DEFAULT", "TEST"]
    );
    let id = enqueue(&first, Task::new("x", &1).expect("task")).await;
    assert_eq!(admin.queue_info("TEST").await.expect("info").items, 1);
    let tasks = admin.tasks(10).await.expect("tasks");
    assert_eq!(
        tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert_eq!(admin.tasks_info().await.expect("info").tasks, 1);
    admin.purge_queue("TEST").await.expect("purge");
    assert_eq!(admin.queue_info("TEST").await.expect("info").items, 0);
    admin.delete_task(&id).await.expect("delete");
    assert_eq!(
        first.load_task(&id).await.err().map(|e| e.kind()),
        Some(ErrorKind::TaskNotFound)
    );
    admin.delete_queue("TEST").await.expect("delete queue");
    assert_eq!(
        admin.queue_info("TEST").await.err().map(|e| e.kind()),
        Some(ErrorKind::QueueNotFound)
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_work_and_releases_the_rest() {
    let server = NatsServer::start();
    // A long max run time: a released task must come back at once, not after this.
    let options = || {
        fast_retries()
            .shutdown_grace(Duration::from_millis(500))
            .queue(Queue::new("GRACE").max_run_time(Duration::from_secs(120)))
    };
    let client = options().connect(&server.url).await.expect("connect");
    let started = Arc::new(AtomicUsize::new(0));
    let mut mux = Mux::new();
    let (s1, s2) = (started.clone(), started.clone());
    mux.handle("quick", move |_ctx, _task| {
        s1.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(json!("finished during the grace period"))
        }
    })
    .expect("register")
    .handle("stuck", move |_ctx, _task| {
        s2.fetch_add(1, Ordering::SeqCst);
        async { std::future::pending().await }
    })
    .expect("register");
    let quick = enqueue(&client, Task::new("quick", &1).expect("task")).await;
    let stuck = enqueue(&client, Task::new("stuck", &1).expect("task")).await;
    let worker = spawn_worker(&client, mux);
    wait_for("both handlers to start", FINAL, || async {
        (started.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    stop(worker).await;

    assert_eq!(
        client.load_task(&quick).await.expect("load").state,
        TaskState::Complete
    );
    let released = client.load_task(&stuck).await.expect("load");
    assert_eq!(
        (released.state, released.tries),
        (TaskState::Retry, 0),
        "{}",
        released.last_err
    );
    assert_eq!(
        released.last_err,
        "worker shut down before the handler finished"
    );

    let next = options().connect(&server.url).await.expect("connect");
    let mut mux = Mux::new();
    mux.handle("stuck", |_ctx, _task| async {
        Ok(json!("picked up again"))
    })
    .expect("register");
    let worker = spawn_worker(&next, mux);
    let done = &wait_final(&next, &[stuck], Duration::from_secs(20)).await[0];
    assert_eq!((done.state, done.tries), (TaskState::Complete, 1));
    stop(worker).await;
}
