// SPDX-License-Identifier: Apache-2.0
//! `info`, `queue …` and `task add|list|view|retry|delete|purge` run as the built binary against
//! a real server: each command's `--json` output, and its effect read back through the core API.

mod common;

use std::time::Duration;

use common::{Server, names};
use jetjobs::{ErrorKind, Queue, Task, TaskState};

#[tokio::test]
async fn queue_commands_create_show_configure_purge_and_delete() {
    let server = Server::start();
    let client = server.client().await;
    let admin = client.admin();

    let created = server
        .json(&[
            "queue",
            "new",
            "EMAIL",
            "--tries",
            "5",
            "--concurrent",
            "7",
            "--run-time",
            "90s",
        ])
        .await;
    assert_eq!(created["name"], "EMAIL");
    assert_eq!(created["max_tries"], 5);
    assert_eq!(created["max_concurrent"], 7);
    assert_eq!(created["max_run_time_seconds"], 90.0);
    let stored = admin.queue_info("EMAIL").await.expect("created").queue;
    assert_eq!(
        (stored.max_tries, stored.max_concurrent, stored.max_run_time),
        (5, 7, Duration::from_secs(90))
    );
    server
        .run(&["queue", "new", "EMAIL"])
        .await
        .fails(1, "queue EMAIL already exists");

    let list = server.json(&["queue", "list"]).await;
    assert_eq!(names(&list, "name"), ["DEFAULT", "EMAIL"]);
    let human = server.run(&["queue", "ls"]).await.ok().stdout;
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("EMAIL ") && l.contains(" 7 ")),
        "{human}"
    );

    let configured = server
        .json(&[
            "queue",
            "configure",
            "EMAIL",
            "--concurrent",
            "3",
            "--age",
            "1h",
            "--tries",
            "-1",
        ])
        .await;
    assert_eq!(configured["max_concurrent"], 3);
    assert_eq!(configured["max_tries"], -1);
    assert_eq!(configured["max_age_seconds"], 3600.0);
    assert_eq!(configured["max_run_time_seconds"], 90.0, "unchanged");
    let stored = admin.queue_info("EMAIL").await.expect("info").queue;
    assert_eq!(
        (stored.max_concurrent, stored.max_tries, stored.max_age),
        (3, -1, Duration::from_secs(3600))
    );
    server
        .run(&["queue", "configure", "EMAIL", "--age", "1m"])
        .await
        .fails(1, "shortest max age is 2 minutes (InvalidOption)");

    let email = client.open_queue(Queue::bind("EMAIL")).await.expect("bind");
    for n in 0..3 {
        email
            .enqueue(Task::new("email:send", &n).expect("task"))
            .await
            .expect("enqueue");
    }
    let info = server.json(&["queue", "info", "EMAIL"]).await;
    assert_eq!(info["items"], 3);

    server
        .run(&["queue", "purge", "EMAIL"])
        .await
        .fails(2, "pass --force");
    assert_eq!(
        admin.queue_info("EMAIL").await.expect("info").items,
        3,
        "nothing purged"
    );
    let purged = server.json(&["queue", "purge", "EMAIL", "--force"]).await;
    assert_eq!(purged, serde_json::json!({"queue": "EMAIL", "purged": 3}));
    assert_eq!(admin.queue_info("EMAIL").await.expect("info").items, 0);

    server
        .run(&["queue", "delete", "EMAIL"])
        .await
        .fails(2, "pass --force");
    let deleted = server.json(&["queue", "rm", "EMAIL", "-f"]).await;
    assert_eq!(deleted["deleted"], true);
    let gone = admin.queue_info("EMAIL").await.expect_err("deleted");
    assert_eq!(gone.kind(), ErrorKind::QueueNotFound);
    server
        .run(&["queue", "info", "EMAIL"])
        .await
        .fails(3, "queue not found: EMAIL (QueueNotFound)");

    // `queue new` binds before creating, so even DEFAULT can be created on an empty account.
    let other = Server::start();
    let default = other
        .json(&["queue", "new", "DEFAULT", "--tries", "3"])
        .await;
    assert_eq!(default["max_tries"], 3);
}

#[tokio::test]
async fn task_commands_add_list_view_and_delete() {
    let server = Server::start();
    let client = server.client().await;
    server.run(&["queue", "new", "BILLING"]).await.ok();

    let added = server
        .json(&[
            "task",
            "add",
            "bill:send",
            r#"{"amount":5}"#,
            "-q",
            "BILLING",
            "--tries",
            "3",
            "--deadline",
            "1h",
        ])
        .await;
    let id = added["id"].as_str().expect("id").to_string();
    assert_eq!(added["type"], "bill:send");
    assert_eq!(added["queue"], "BILLING");
    assert_eq!(added["state"], "new");
    assert_eq!(added["payload"]["amount"], 5);
    assert_eq!(added["payload_encoding"], "json");
    let stored = client.load_task(&id).await.expect("stored");
    assert_eq!(stored.max_tries, 3);
    assert_eq!(
        stored.payload_json::<serde_json::Value>().expect("json")["amount"],
        5
    );
    assert!(stored.deadline.is_some());
    // Text that is not JSON is stored as a JSON string, as ajc does.
    let text = server
        .json(&[
            "task",
            "add",
            "bill:note",
            "hello there",
            "-q",
            "BILLING",
            "--id",
            "note-1",
        ])
        .await;
    assert_eq!(
        (text["id"].as_str(), text["payload"].as_str()),
        (Some("note-1"), Some("hello there"))
    );
    assert_eq!(
        client
            .load_task("note-1")
            .await
            .expect("stored")
            .payload_json::<String>()
            .expect("string"),
        "hello there"
    );
    let other = client
        .enqueue(Task::new("other:kind", &1).expect("task"))
        .await
        .expect("enqueue");

    let all = server.json(&["task", "list"]).await;
    assert_eq!(all.as_array().map(Vec::len), Some(3));
    let billing = server.json(&["task", "list", "--queue", "BILLING"]).await;
    assert_eq!(names(&billing, "id"), {
        let mut ids = vec![id.clone(), "note-1".to_string()];
        ids.sort();
        ids
    });
    let typed = server
        .json(&["task", "ls", "--type", "other:kind", "--state", "new,retry"])
        .await;
    assert_eq!(names(&typed, "id"), [other.id.as_str()]);
    assert_eq!(
        server.json(&["task", "list", "--state", "complete"]).await,
        serde_json::json!([])
    );
    assert_eq!(
        server
            .json(&["task", "list", "--limit", "1"])
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        server.json(&["task", "list", "--older-than", "1h"]).await,
        serde_json::json!([])
    );
    let human = server.run(&["task", "list"]).await.ok().stdout;
    assert!(
        human
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("bill:send")),
        "{human}"
    );

    let view = server.json(&["task", "view", &id]).await;
    assert_eq!(
        (view["id"].as_str(), view["max_tries"].as_i64()),
        (Some(id.as_str()), Some(3))
    );
    let human = server.run(&["task", "view", &id]).await.ok().stdout;
    assert!(
        human.contains(&format!("Task {id} created at")) && human.contains("Status: new"),
        "{human}"
    );

    server
        .run(&["task", "delete", &id])
        .await
        .fails(2, "pass --force");
    let deleted = server.json(&["task", "rm", &id, "note-1", "--force"]).await;
    assert_eq!(deleted["deleted"], serde_json::json!([id, "note-1"]));
    assert_eq!(
        client.load_task(&id).await.expect_err("gone").kind(),
        ErrorKind::TaskNotFound
    );
    server
        .run(&["task", "view", &id])
        .await
        .fails(3, &format!("task not found: {id} (TaskNotFound)"));
    server
        .run(&["task", "add", "x", "-q", "NOPE"])
        .await
        .fails(3, "queue not found: NOPE (QueueNotFound)");
}

#[tokio::test]
async fn task_retry_and_purge_by_id_and_by_filter() {
    let server = Server::start();
    let client = server.client().await;
    let work = client.open_queue(Queue::new("WORK")).await.expect("queue");
    let mut ids = Vec::new();
    for n in 0..4 {
        ids.push(
            work.enqueue(Task::new("job:a", &n).expect("task"))
                .await
                .expect("enqueue")
                .id,
        );
    }
    let b = client
        .enqueue(Task::new("job:b", &0).expect("task"))
        .await
        .expect("enqueue")
        .id;

    // By id, on the task's own queue.
    let retried = server.json(&["task", "retry", &ids[0]]).await;
    assert_eq!(retried[0]["state"], "retry");
    assert_eq!(retried[0]["queue"], "WORK");
    assert_eq!(
        client.load_task(&ids[0]).await.expect("task").state,
        TaskState::Retry
    );
    // By id onto another queue, as `ajc task retry --queue`.
    let moved = server.json(&["task", "retry", &b, "--queue", "WORK"]).await;
    assert_eq!(moved[0]["queue"], "WORK");
    // By filter: every new job:a task.
    let by_filter = server
        .json(&["task", "retry", "--state", "new", "--type", "job:a"])
        .await;
    assert_eq!(names(&by_filter, "id"), {
        let mut rest = ids[1..].to_vec();
        rest.sort();
        rest
    });
    for id in &ids {
        assert_eq!(
            client.load_task(id).await.expect("task").state,
            TaskState::Retry
        );
    }
    server
        .run(&["task", "retry"])
        .await
        .fails(2, "give task ids or at least one filter");
    server
        .run(&["task", "retry", "missing-id"])
        .await
        .fails(3, "retrying missing-id: task not found");

    // Purge by filter deletes only what it selects.
    server
        .run(&["task", "purge", "--type", "job:b"])
        .await
        .fails(2, "pass --force");
    let purged = server
        .json(&["task", "purge", "--type", "job:b", "--force"])
        .await;
    assert_eq!(purged["purged"], 1);
    assert_eq!(
        client.load_task(&b).await.expect_err("purged").kind(),
        ErrorKind::TaskNotFound
    );
    assert_eq!(client.admin().tasks_info().await.expect("info").tasks, 4);
    // Purge without filters empties the store, as `ajc task purge`.
    let purged = server.json(&["task", "purge", "--force"]).await;
    assert_eq!(purged["purged"], 4);
    assert_eq!(client.admin().tasks_info().await.expect("info").tasks, 0);
}

#[tokio::test]
async fn info_reports_the_store_schedules_and_queues() {
    let server = Server::start();
    let client = server.client().await;
    client
        .enqueue(Task::new("a", &1).expect("task"))
        .await
        .expect("enqueue");
    client.open_queue(Queue::new("EXTRA")).await.expect("queue");
    let info = server.json(&["info"]).await;
    assert_eq!(info["tasks"]["stored"], 1);
    assert_eq!(info["tasks"]["memory"], false);
    assert_eq!(info["scheduler_leader"], serde_json::Value::Null);
    assert_eq!(info["schedules"], 0);
    assert_eq!(names(&info["queues"], "name"), ["DEFAULT", "EXTRA"]);
    let human = server.run(&["info"]).await.ok().stdout;
    assert!(
        human.contains("Leader: none") && human.contains("EXTRA Work Queue"),
        "{human}"
    );
}
