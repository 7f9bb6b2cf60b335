// SPDX-License-Identifier: Apache-2.0
//! Unique tasks against a real server: concurrent producers with one key make exactly one task;
//! the key frees when the task is final (or a window after); a holder that was deleted is
//! replaced.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{NatsServer, RunningWorker, client_for, wait_final};
use jetjobs::{Client, Mux, Task, TaskState, WorkerOptions};
use serde_json::json;

async fn connect(server: &NatsServer) -> Client {
    client_for(server, "UNIQUE").await
}

async fn run_until_final(client: &Client, ids: &[String]) -> Vec<Task> {
    let mut mux = Mux::new();
    mux.handle("", |_ctx, _task| async { Ok(json!("done")) })
        .expect("register");
    let worker = RunningWorker::start(client, WorkerOptions::new(), mux);
    let done = wait_final(client, ids, Duration::from_secs(30)).await;
    worker.stop().await;
    done
}

#[tokio::test]
async fn concurrent_producers_with_one_key_make_exactly_one_task() {
    let server = NatsServer::start();
    // Producers on their own connections, as separate processes would be.
    let mut producers = Vec::new();
    for _ in 0..8 {
        producers.push(connect(&server).await);
    }
    let before = producers[0].admin().tasks_info().await.expect("info").tasks;
    let attempts = producers.iter().flat_map(|p| {
        (0..5).map(move |i| {
            let task = Task::new("report", &i)
                .expect("task")
                .with_unique_key("report:2026-12", Duration::ZERO);
            p.enqueue(task)
        })
    });
    let stored = futures::future::join_all(attempts).await;
    let ids: HashSet<String> = stored.into_iter().map(|r| r.expect("enqueue").id).collect();
    assert_eq!(ids.len(), 1, "every producer got the same task");
    let client = &producers[0];
    assert_eq!(client.default_queue().info().await.expect("info").items, 1);
    assert_eq!(
        client.admin().tasks_info().await.expect("info").tasks - before,
        1,
        "the losers' documents were withdrawn"
    );

    // Final, and no window: the key is free for the next task.
    let first: Vec<String> = ids.into_iter().collect();
    assert_eq!(
        run_until_final(client, &first).await[0].state,
        TaskState::Complete
    );
    let next = client
        .enqueue(
            Task::new("report", &99)
                .expect("task")
                .with_unique_key("report:2026-12", Duration::ZERO),
        )
        .await
        .expect("enqueue");
    assert_ne!(next.id, first[0]);
    assert_eq!(next.state, TaskState::New);
}

#[tokio::test]
async fn a_window_keeps_the_key_after_the_task_is_final_and_a_deleted_holder_is_replaced() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let unique = |n: i32| {
        Task::new("sync", &n)
            .expect("task")
            .with_unique_key("sync-user-7", Duration::from_secs(3600))
    };
    let first = client.enqueue(unique(1)).await.expect("enqueue");
    run_until_final(&client, std::slice::from_ref(&first.id)).await;
    let again = client.enqueue(unique(2)).await.expect("enqueue");
    assert_eq!(
        again.id, first.id,
        "within the window the finished task is returned"
    );
    assert_eq!(again.state, TaskState::Complete);

    client
        .admin()
        .delete_task(&first.id)
        .await
        .expect("delete the holder");
    let replaced = client.enqueue(unique(3)).await.expect("enqueue");
    assert_ne!(replaced.id, first.id);
    let batch = client
        .enqueue_many([unique(4), Task::new("plain", &5).expect("task")])
        .await;
    assert_eq!(
        batch[0].as_ref().map(|t| t.id.clone()).ok(),
        Some(replaced.id.clone())
    );
    assert!(batch[1].is_ok());
}
