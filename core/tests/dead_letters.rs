// SPDX-License-Identifier: Apache-2.0
//! Dead letters against a real server: list terminated, expired and unreachable tasks with
//! filters, replay them with progress, purge them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{NatsServer, RunningWorker, client_for, wait_final};
use jetjobs::{DeadLetterFilter, HandlerError, Mux, Task, TaskState, Timestamp, WorkerOptions};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn dead_letters_are_listed_filtered_replayed_and_purged() {
    let server = NatsServer::start();
    let client = client_for(&server, "DLQ").await;
    let healthy = Arc::new(AtomicBool::new(false));
    let mut mux = Mux::new();
    let flag = healthy.clone();
    mux.handle("", move |_ctx, _task| {
        let healthy = flag.load(Ordering::SeqCst);
        async move {
            if healthy {
                Ok(json!("ok"))
            } else {
                Err(HandlerError::terminate("smtp down"))
            }
        }
    })
    .expect("register");
    let running = RunningWorker::start(&client, WorkerOptions::new(), mux);

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            client
                .enqueue(Task::new("email", &n).expect("task"))
                .await
                .expect("enqueue")
                .id,
        );
    }
    let late = Task::new("report", &0)
        .expect("task")
        .with_deadline(Timestamp::now());
    ids.push(client.enqueue(late).await.expect("enqueue").id);
    let orphan = Task::new("report", &1)
        .expect("task")
        .depends_on(["missing-parent"]);
    ids.push(client.enqueue(orphan).await.expect("enqueue").id);
    wait_final(&client, &ids, WAIT).await;

    let admin = client.admin();
    let all = admin
        .dead_letters(&DeadLetterFilter::new(), 1000)
        .await
        .expect("list");
    assert_eq!(all.len(), 5);
    let states: Vec<TaskState> = all.iter().map(|t| t.state).collect();
    assert!(states.contains(&TaskState::Expired) && states.contains(&TaskState::Unreachable));
    let emails = admin
        .dead_letters(
            &DeadLetterFilter::new()
                .task_type("email")
                .error_contains("smtp"),
            1000,
        )
        .await
        .expect("list");
    assert_eq!(emails.len(), 3);
    assert!(
        admin
            .dead_letters(
                &DeadLetterFilter::new().older_than(Duration::from_secs(3600)),
                1000
            )
            .await
            .expect("list")
            .is_empty()
    );

    // The fault is fixed: replay the emails, with progress.
    healthy.store(true, Ordering::SeqCst);
    let email_ids: Vec<String> = emails.iter().map(|t| t.id.clone()).collect();
    let mut seen = Vec::new();
    let replayed = client
        .replay(&email_ids, |done, total, result| {
            seen.push((done, total, result.is_ok()))
        })
        .await;
    assert!(replayed.iter().all(Result::is_ok));
    assert_eq!(seen, [(1, 3, true), (2, 3, true), (3, 3, true)]);
    let done = wait_final(&client, &email_ids, WAIT).await;
    assert!(done.iter().all(|t| t.state == TaskState::Complete));

    let purged = admin
        .purge_dead_letters(&DeadLetterFilter::new().queue("DLQ"), 1000)
        .await
        .expect("purge");
    assert_eq!(purged, 2);
    assert!(
        admin
            .dead_letters(&DeadLetterFilter::new(), 1000)
            .await
            .expect("list")
            .is_empty()
    );
    running.stop().await;
}
