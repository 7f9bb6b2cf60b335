// SPDX-License-Identifier: Apache-2.0
//! The administration calls operators' tools use (the CLI, the dashboard), against a real
//! server: filtered task listings, purging the tasks store, reconfiguring a queue, and reading
//! the task scheduler's leader.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::NatsServer;
use jetjobs::{ErrorKind, KvBucket, Queue, Task, TaskFilter, TaskScheduler, TaskState};

#[tokio::test]
async fn find_tasks_filters_the_whole_store_and_purge_tasks_empties_it() {
    let server = NatsServer::start();
    let client = common::client_for(&server, "ADMIN").await;
    let other = client.open_queue(Queue::new("OTHER")).await.expect("queue");
    let mut a = Vec::new();
    for n in 0..5 {
        a.push(
            client
                .enqueue(Task::new("kind:a", &n).expect("task"))
                .await
                .expect("enqueue")
                .id,
        );
    }
    let b = other
        .enqueue(Task::new("kind:b", &0).expect("task"))
        .await
        .expect("enqueue")
        .id;
    other.retry_task(&b).await.expect("retry");
    let admin = client.admin();

    let all = admin
        .find_tasks(&TaskFilter::new(), usize::MAX)
        .await
        .expect("all");
    assert_eq!(all.len(), 6);
    let of_a = admin
        .find_tasks(&TaskFilter::new().task_type("kind:a"), usize::MAX)
        .await
        .expect("a");
    assert_eq!(
        of_a.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        a,
        "oldest update first"
    );
    // The limit counts matches, not tasks read: the only retry is the last one stored.
    let retry = TaskFilter::new().states([TaskState::Retry]).queue("OTHER");
    let found = admin.find_tasks(&retry, 1).await.expect("retry");
    assert_eq!(
        found.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        [b.as_str()]
    );
    assert_eq!(
        admin
            .find_tasks(&TaskFilter::new(), 2)
            .await
            .expect("two")
            .len(),
        2
    );
    let old = TaskFilter::new().older_than(Duration::from_secs(3600));
    assert!(
        admin
            .find_tasks(&old, usize::MAX)
            .await
            .expect("old")
            .is_empty()
    );

    assert_eq!(admin.purge_tasks().await.expect("purge"), 6);
    assert_eq!(admin.tasks_info().await.expect("info").tasks, 0);
    assert_eq!(
        client.load_task(&b).await.expect_err("purged").kind(),
        ErrorKind::TaskNotFound
    );
    assert_eq!(
        admin.queue_info("ADMIN").await.expect("info").items,
        5,
        "work items stay"
    );
}

#[tokio::test]
async fn configure_queue_changes_limits_of_an_existing_queue() {
    let server = NatsServer::start();
    let client = common::client_for(&server, "ADMIN").await;
    let admin = client.admin();
    let current = admin.queue_info("ADMIN").await.expect("info").queue;
    let info = admin
        .configure_queue(
            &current
                .clone()
                .max_concurrent(3)
                .max_tries(4)
                .max_run_time(Duration::from_secs(30))
                .max_age(Duration::from_secs(600))
                .max_entries(50)
                .discard_old(true),
        )
        .await
        .expect("configure");
    let q = &info.queue;
    assert_eq!(
        (
            q.max_concurrent,
            q.max_tries,
            q.max_run_time,
            q.max_age,
            q.max_entries,
            q.discard_old
        ),
        (
            3,
            4,
            Duration::from_secs(30),
            Duration::from_secs(600),
            50,
            true
        )
    );
    assert_eq!(
        admin.queue_info("ADMIN").await.expect("info").queue,
        info.queue
    );
    let missing = admin
        .configure_queue(&Queue::new("NOPE"))
        .await
        .expect_err("missing");
    assert_eq!(missing.kind(), ErrorKind::QueueNotFound);
    let short = admin
        .configure_queue(&current.max_age(Duration::from_secs(10)))
        .await
        .expect_err("too short");
    assert_eq!(short.kind(), ErrorKind::InvalidOption);
}

#[tokio::test]
async fn leader_reads_the_scheduler_election() {
    let server = NatsServer::start();
    let client = common::client_for(&server, "ADMIN").await;
    assert_eq!(TaskScheduler::leader(&client).await.expect("none"), None);
    // The key a campaigning scheduler (Go or jetjobs) creates in CHORIA_AJ_ELECTIONS.
    let elections = client
        .kv(&KvBucket::new(jetjobs::wire::names::ELECTIONS_BUCKET))
        .await
        .expect("bucket");
    elections
        .create(
            jetjobs::wire::names::SCHEDULER_ELECTION_KEY,
            Bytes::from_static(b"sched-7"),
        )
        .await
        .expect("create");
    assert_eq!(
        TaskScheduler::leader(&client)
            .await
            .expect("leader")
            .as_deref(),
        Some("sched-7")
    );
}
