// SPDX-License-Identifier: Apache-2.0
//! `Client::tasks_page`, against a real server: pages read from a stream sequence on cover the
//! store exactly once, a filter counts matches, and a page after the last sequence seen returns
//! the tasks saved since (a tail of the store).

mod common;

use std::collections::HashSet;

use common::NatsServer;
use jetjobs::{Queue, Task, TaskFilter, TaskState};

#[tokio::test]
async fn pages_cover_the_store_once_and_a_tail_returns_changed_tasks() {
    let server = NatsServer::start();
    let client = common::client_for(&server, "PAGES").await;
    let other = client.open_queue(Queue::new("OTHER")).await.expect("queue");
    let all = TaskFilter::new();

    let (empty, last) = client.tasks_page(0, 10, &all).await.expect("empty store");
    assert!(empty.is_empty());
    assert_eq!(last, 0, "nothing read: the cursor stays");

    let mut ids = Vec::new();
    for n in 0..23 {
        let task = Task::new("page:item", &n).expect("task");
        ids.push(client.enqueue(task).await.expect("enqueue").id);
    }
    let odd = other
        .enqueue(Task::new("page:other", &0).expect("task"))
        .await
        .expect("enqueue")
        .id;

    // Pages of 10 from the start: 10, 10, 4, each in stream order, the sequence rising.
    let mut seen = Vec::new();
    let mut after = 0;
    let mut sizes = Vec::new();
    loop {
        let (page, last) = client.tasks_page(after, 10, &all).await.expect("page");
        sizes.push(page.len());
        for (seq, task) in &page {
            assert!(
                *seq > after && *seq <= last,
                "seq {seq} within ({after}, {last}]"
            );
            seen.push(task.id.clone());
        }
        if page.len() < 10 {
            break;
        }
        after = last;
    }
    assert_eq!(sizes, [10, 10, 4]);
    let mut expected = ids.clone();
    expected.push(odd.clone());
    assert_eq!(seen, expected, "every task once, oldest update first");

    // A filter counts matches: the only OTHER task is the last stored.
    let (found, last) = client
        .tasks_page(0, 1, &TaskFilter::new().queue("OTHER"))
        .await
        .expect("filtered");
    assert_eq!(
        found.iter().map(|(_, t)| t.id.as_str()).collect::<Vec<_>>(),
        [odd.as_str()]
    );
    let (nothing, after_end) = client
        .tasks_page(last, 10, &all)
        .await
        .expect("past the end");
    assert!(nothing.is_empty());
    assert_eq!(after_end, last);

    // A tail: retrying two tasks saves them again, after `last`.
    other.retry_task(&ids[3]).await.expect("retry");
    client.admin().delete_task(&ids[5]).await.expect("delete");
    other.retry_task(&ids[7]).await.expect("retry");
    let (tail, tail_last) = client.tasks_page(last, 100, &all).await.expect("tail");
    let tail_ids: Vec<_> = tail.iter().map(|(_, t)| t.id.clone()).collect();
    assert_eq!(tail_ids, [ids[3].clone(), ids[7].clone()]);
    assert!(
        tail.iter()
            .all(|(_, t)| t.state == TaskState::Retry && t.queue == "OTHER")
    );
    assert!(tail_last > last);

    // A whole read now holds every task but the deleted one, each once.
    let (whole, _) = client.tasks_page(0, 1000, &all).await.expect("whole");
    let whole: HashSet<_> = whole.into_iter().map(|(_, t)| t.id).collect();
    assert_eq!(whole.len(), 23);
    assert!(!whole.contains(&ids[5]));
    let (none, _) = client.tasks_page(0, 0, &all).await.expect("limit 0");
    assert!(none.is_empty());
}
