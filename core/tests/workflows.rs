// SPDX-License-Identifier: Apache-2.0
//! Workflows against a real server: a chain of 5 passes each result on, a group of 100 with a
//! chord callback collects every result, and a failing member makes its dependants unreachable.

mod common;

use std::time::Duration;

use common::{NatsServer, RunningWorker, client_for, wait_final};
use jetjobs::{Client, HandlerError, Mux, Task, TaskState, WorkerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// The sum of a task's payload and its parents' results.
fn sum(task: &Task) -> Result<i64, HandlerError> {
    let own: i64 = task.payload_json()?;
    let parents: i64 = task
        .dependency_results
        .values()
        .filter_map(|r| r.as_ref().and_then(|r| r.payload.as_i64()))
        .sum();
    Ok(own + parents)
}

fn start(client: &Client) -> RunningWorker {
    let mut mux = Mux::new();
    mux.handle(
        "add",
        |_ctx, task: Task| async move { Ok(json!(sum(&task)?)) },
    )
    .expect("register")
    .handle("fail", |_ctx, _task| async {
        Err(HandlerError::terminate("broken step"))
    })
    .expect("register");
    RunningWorker::start(client, WorkerOptions::new().concurrency(50), mux)
}

fn result(task: &Task) -> Option<Value> {
    task.result.as_ref().map(|r| r.payload.clone())
}

#[tokio::test]
async fn chains_and_chords_pass_results_on_and_failures_make_dependants_unreachable() {
    let server = NatsServer::start();
    let client = client_for(&server, "FLOWS").await;
    let queue = client.default_queue();
    let worker = start(&client);

    let chain = queue
        .enqueue_chain((1..=5).map(|n| Task::new("add", &n).expect("task")))
        .await
        .expect("chain");
    let done = wait_final(&client, std::slice::from_ref(&chain[4].id), WAIT).await;
    assert_eq!(result(&done[0]), Some(json!(15)), "1 + 2 + 3 + 4 + 5");

    let (group, callback) = queue
        .enqueue_chord(
            (1..=100).map(|n| Task::new("add", &n).expect("task")),
            Task::new("add", &0).expect("task"),
        )
        .await
        .expect("chord");
    assert_eq!(group.len(), 100);
    let done = wait_final(&client, std::slice::from_ref(&callback.id), WAIT).await;
    assert_eq!(result(&done[0]), Some(json!(5050)));

    let broken = queue
        .enqueue_chain([
            Task::new("add", &1).expect("task"),
            Task::new("fail", &2).expect("task"),
            Task::new("add", &3).expect("task"),
            Task::new("add", &4).expect("task"),
        ])
        .await
        .expect("chain");
    let ids: Vec<String> = broken.iter().map(|t| t.id.clone()).collect();
    let states: Vec<TaskState> = wait_final(&client, &ids, WAIT)
        .await
        .iter()
        .map(|t| t.state)
        .collect();
    assert_eq!(
        states,
        [
            TaskState::Complete,
            TaskState::Terminated,
            TaskState::Unreachable,
            TaskState::Unreachable
        ]
    );
    worker.stop().await;
}
