// SPDX-License-Identifier: Apache-2.0
//! Cancellation against a real server: a pending task never runs; a running one's handler gets
//! its cancellation signal in the worker running it (another connection, as another process would
//! be) and the task ends `terminated` with the reason.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{NatsServer, RunningWorker, client_for, wait_for};
use jetjobs::{Client, Mux, Task, TaskContext, TaskState, WorkerOptions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

async fn connect(server: &NatsServer) -> Client {
    client_for(server, "CANCEL").await
}

struct Seen {
    started: AtomicUsize,
    signalled: AtomicBool,
}

fn start_worker(client: &Client, seen: Arc<Seen>) -> RunningWorker {
    let mut mux = Mux::new();
    mux.handle("", move |ctx: TaskContext, _task: Task| {
        let seen = seen.clone();
        async move {
            // What the handler (or work it started) sees of the signal.
            let watcher = (ctx.clone(), seen.clone());
            tokio::spawn(async move {
                watcher.0.cancelled().await;
                watcher.1.signalled.store(true, Ordering::SeqCst);
            });
            seen.started.fetch_add(1, Ordering::SeqCst);
            // Even a handler that ignores the signal is stopped.
            futures::future::pending::<()>().await;
            Ok(json!("never"))
        }
    })
    .expect("register");
    RunningWorker::start(client, WorkerOptions::new(), mux)
}

#[tokio::test]
async fn a_pending_task_never_runs_and_a_running_one_is_stopped_anywhere() {
    let server = NatsServer::start();
    let producer = connect(&server).await;
    let seen = Arc::new(Seen {
        started: AtomicUsize::new(0),
        signalled: AtomicBool::new(false),
    });

    let pending = producer
        .enqueue(Task::new("job", &1).expect("task"))
        .await
        .expect("enqueue");
    let cancelled = producer
        .cancel(&pending.id, "no longer needed")
        .await
        .expect("cancel");
    assert_eq!(cancelled.state, TaskState::Terminated);
    assert_eq!(cancelled.last_err, "cancelled: no longer needed");
    // Its item is gone too: no worker, Go's included, is handed it.
    assert_eq!(
        producer.default_queue().info().await.expect("info").items,
        0
    );

    // The worker runs on its own connection; the cancel comes from the producer's.
    let worker_client = connect(&server).await;
    let worker = start_worker(&worker_client, seen.clone());
    let running = producer
        .enqueue(Task::new("job", &2).expect("task"))
        .await
        .expect("enqueue");
    wait_for("the handler to start", WAIT, || async {
        (seen.started.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let stopped = producer.cancel(&running.id, "stop").await.expect("cancel");
    assert_eq!(stopped.state, TaskState::Terminated);
    assert!(
        stopped.last_err.starts_with("cancelled: stop"),
        "{}",
        stopped.last_err
    );
    assert!(
        seen.signalled.load(Ordering::SeqCst),
        "the handler's signal fired"
    );
    // The pending one's item was settled without running it.
    wait_for("every item to be settled", WAIT, || async {
        let info = producer.default_queue().info().await.ok()?;
        (info.items == 0).then_some(())
    })
    .await;
    assert_eq!(seen.started.load(Ordering::SeqCst), 1);

    // Already final: returned as it is.
    let again = producer.cancel(&running.id, "again").await.expect("cancel");
    assert_eq!(again.last_err, stopped.last_err);
    worker.stop().await;
}
