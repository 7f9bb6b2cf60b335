// SPDX-License-Identifier: Apache-2.0
//! Delayed tasks against a real server: 1,000 tasks due at spread times start within a stated
//! tolerance of their due time and never early, across a worker restart; until due, a task is
//! `new` and its queue holds no item (so no worker, Go or jetjobs, can take it); a cancelled
//! delayed task never runs.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{NatsServer, RunningWorker, client_for, wait_final, wait_for};
use jetjobs::{ErrorKind, Mux, Task, TaskState, Timestamp, WorkerOptions};
use serde_json::json;

/// How late a delayed task may start (server schedule timer, the move into the queue, a pull and
/// a worker restart on a loaded machine); README "Delayed tasks" states the same figure.
const TOLERANCE: Duration = Duration::from_secs(2);
const TASKS: usize = 1000;

type Starts = Arc<Mutex<HashMap<String, DateTime<Utc>>>>;

fn recording_mux(starts: &Starts) -> Mux {
    let starts = starts.clone();
    let mut mux = Mux::new();
    mux.handle("later", move |_ctx, task: Task| {
        let starts = starts.clone();
        async move {
            starts
                .lock()
                .expect("lock")
                .entry(task.id.clone())
                .or_insert_with(Utc::now);
            Ok(json!(null))
        }
    })
    .expect("register");
    mux
}

#[tokio::test]
async fn delayed_tasks_start_on_time_and_never_early_across_a_worker_restart() {
    let server = NatsServer::start();
    let client = client_for(&server, "DELAYED").await;
    let queue = client.default_queue();
    let base = Timestamp::now().add(Duration::from_secs(2));
    let tasks = (0..TASKS).map(|i| {
        let due = base.add(Duration::from_millis(6 * i as u64));
        Task::new("later", &i).expect("task").with_run_at(due)
    });
    let stored: Vec<Task> = queue
        .enqueue_many(tasks)
        .await
        .into_iter()
        .collect::<jetjobs::Result<_>>()
        .expect("enqueued");
    let ids: Vec<String> = stored.iter().map(|t| t.id.clone()).collect();
    let first = client.load_task(&ids[0]).await.expect("load");
    assert_eq!(first.state, TaskState::New);
    assert_eq!(first.run_at, stored[0].run_at, "run_at is stored");
    assert_eq!(
        queue.info().await.expect("info").items,
        0,
        "no item is in the queue before it is due"
    );

    let starts = Starts::default();
    let options = || WorkerOptions::new().concurrency(50);
    let worker = RunningWorker::start(&client, options(), recording_mux(&starts));
    wait_for(
        "a third of the tasks to start",
        Duration::from_secs(60),
        || async { (starts.lock().expect("lock").len() >= TASKS / 3).then_some(()) },
    )
    .await;
    worker.stop().await;
    let worker = RunningWorker::start(&client, options(), recording_mux(&starts));
    let done = wait_final(&client, &ids, Duration::from_secs(60)).await;
    worker.stop().await;

    let starts = starts.lock().expect("lock");
    let mut lateness = Vec::with_capacity(TASKS);
    for task in &done {
        assert_eq!(task.state, TaskState::Complete, "{}", task.id);
        let due = task.run_at.expect("run_at").to_utc();
        let started = starts[&task.id];
        assert!(
            started >= due,
            "task {} started {} early",
            task.id,
            due - started
        );
        lateness.push((started - due).to_std().expect("not early"));
    }
    lateness.sort();
    let (p50, p99, max) = (
        lateness[TASKS / 2],
        lateness[TASKS * 99 / 100],
        lateness[TASKS - 1],
    );
    println!("delayed task lateness: p50 {p50:?}, p99 {p99:?}, max {max:?}");
    assert!(max <= TOLERANCE, "a task started {max:?} late");
}

#[tokio::test]
async fn cancelled_delayed_task_never_runs_and_a_deadline_before_it_is_due_is_refused() {
    let server = NatsServer::start();
    let client = client_for(&server, "DELAYED_CANCEL").await;
    let queue = client.default_queue();
    let starts = Starts::default();
    let worker = RunningWorker::start(&client, WorkerOptions::new(), recording_mux(&starts));

    let due = Timestamp::now().add(Duration::from_secs(1));
    let cancelled = queue
        .enqueue(Task::new("later", &1).expect("task").with_run_at(due))
        .await
        .expect("enqueued");
    let control = queue
        .enqueue(Task::new("later", &2).expect("task").with_run_at(due))
        .await
        .expect("enqueued");
    client
        .cancel(&cancelled.id, "not needed")
        .await
        .expect("cancel");
    let done = wait_final(
        &client,
        &[cancelled.id.clone(), control.id.clone()],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done[0].state, TaskState::Terminated);
    assert_eq!(done[1].state, TaskState::Complete);
    assert!(!starts.lock().expect("lock").contains_key(&cancelled.id));

    let late = Task::new("later", &3)
        .expect("task")
        .with_deadline(Timestamp::now().add(Duration::from_secs(5)))
        .with_delay(Duration::from_secs(60));
    let refused = queue.enqueue(late).await.expect_err("refused");
    assert_eq!(refused.kind(), ErrorKind::InvalidOption);
    worker.stop().await;
}
