// SPDX-License-Identifier: Apache-2.0
//! The long-running commands as the built binary: `task watch`, `task process`, `scheduler` and
//! `dev-server`, each stopped by Ctrl-C (SIGINT) or by its own `--count`.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use common::{Server, spawn_with, wait_for};
use jetjobs::{Queue, Task, TaskState};

const READY: Duration = Duration::from_secs(15);

#[tokio::test]
async fn task_watch_follows_events_of_all_tasks_or_one() {
    let server = Server::start();
    let client = server.client().await;

    let mut all = server.spawn(&["task", "watch", "--count", "2", "--json"]);
    all.stderr_until("Watching task events", READY).await;
    let mut one = server.spawn(&["task", "watch", "--id", "watched-1", "--count", "1"]);
    one.stderr_until("Watching task events", READY).await;

    let first = client
        .enqueue(Task::new("w:a", &1).expect("task"))
        .await
        .expect("enqueue");
    client
        .enqueue(
            Task::new("w:b", &2)
                .expect("task")
                .with_id("watched-1")
                .expect("id"),
        )
        .await
        .expect("enqueue");

    assert_eq!(all.exit_code(READY).await, 0, "--count ends it");
    let events: Vec<serde_json::Value> = all
        .rest_of_stdout()
        .await
        .iter()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["task_id"], first.id.as_str());
    assert_eq!(events[0]["state"], "new");
    assert_eq!(events[0]["type"], "io.choria.asyncjobs.v1.task_state");
    assert_eq!(events[1]["task_id"], "watched-1");

    assert_eq!(one.exit_code(READY).await, 0);
    let lines = one.rest_of_stdout().await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("watched-1: queue: DEFAULT type: w:b tries: 0 state: new"),
        "{lines:?}"
    );

    // Without --count it runs until Ctrl-C.
    let mut forever = server.spawn(&["task", "watch"]);
    forever.stderr_until("Watching task events", READY).await;
    forever.interrupt();
    assert_eq!(forever.exit_code(READY).await, 0);
}

#[tokio::test]
async fn task_process_runs_the_command_for_each_task() {
    let server = Server::start();
    let client = server.client().await;
    let queue = client.open_queue(Queue::new("JOBS")).await.expect("queue");
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("handler.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ngrep -q '\"type\":\"job:run\"' \"$CHORIA_AJ_TASK\" && echo handled\n",
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let script = script.to_str().expect("utf-8 path");

    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(
                queue
                    .enqueue(Task::new("job:run", &n).expect("task"))
                    .await
                    .expect("enqueue")
                    .id,
            );
        }
        ids
    };
    let mut worker = server.spawn(&[
        "task",
        "process",
        "job:run",
        "JOBS",
        script,
        "--concurrency",
        "2",
    ]);
    worker
        .stderr_until("Processing job:run tasks from queue JOBS", READY)
        .await;
    let done = wait_for("tasks to complete", READY, || async {
        let mut out = Vec::new();
        for id in &ids {
            let task = client.load_task(id).await.ok()?;
            (task.state == TaskState::Complete).then_some(())?;
            out.push(task);
        }
        Some(out)
    })
    .await;
    for task in done {
        assert_eq!(task.result.expect("result").payload, "handled\n");
    }
    worker.interrupt();
    assert_eq!(
        worker.exit_code(Duration::from_secs(40)).await,
        0,
        "Ctrl-C stops it cleanly"
    );

    server
        .run(&["task", "process", "job:run", "JOBS", "/no/such/command"])
        .await
        .fails(2, "command /no/such/command does not exist");
    server
        .run(&["task", "process", "job:run", "NOPE", script])
        .await
        .fails(3, "queue not found: NOPE");
}

#[tokio::test]
async fn scheduler_is_elected_and_enqueues_scheduled_tasks() {
    let server = Server::start();
    let client = server.client().await;
    let added = server
        .json(&[
            "cron",
            "add",
            "every-sec",
            "every 1s",
            "tick:tock",
            r#"{"n":1}"#,
            "--queue",
            "TICKS",
        ])
        .await;
    assert_eq!(added["schedule"], "@every 1s");
    client.open_queue(Queue::new("TICKS")).await.expect("queue");

    let mut scheduler = server.spawn(&["scheduler", "cli-sched-1"]);
    scheduler
        .stderr_until("campaigning for leadership", READY)
        .await;
    // The election is taken after a random splay of up to 5 s, announced one interval later.
    let leader = wait_for("a scheduler leader", Duration::from_secs(20), || async {
        let info = server.json(&["info"]).await;
        info["scheduler_leader"].as_str().map(str::to_string)
    })
    .await;
    assert_eq!(leader, "cli-sched-1");
    let tick = wait_for("a scheduled task", Duration::from_secs(25), || async {
        let tasks = client.admin().tasks(100).await.ok()?;
        tasks.into_iter().find(|t| t.task_type == "tick:tock")
    })
    .await;
    assert_eq!(tick.queue, "TICKS");
    assert_eq!(
        tick.payload_json::<serde_json::Value>().expect("json")["n"],
        1
    );
    scheduler.interrupt();
    assert_eq!(scheduler.exit_code(READY).await, 0);
}

#[tokio::test]
async fn dev_server_serves_until_ctrl_c() {
    let bin = std::env::var("NATS_SERVER_BIN").expect("NATS_SERVER_BIN");
    let mut dev = spawn_with(&[("NATS_SERVER_BIN", &bin)], &["dev-server"]);
    let url = dev.stdout_line(Duration::from_secs(30)).await;
    assert!(url.starts_with("nats://127.0.0.1:"), "{url}");
    let client = jetjobs::connect(&url)
        .await
        .expect("the dev server serves JetStream");
    client
        .enqueue(Task::new("dev:a", &1).expect("task"))
        .await
        .expect("enqueue");
    drop(client);
    dev.interrupt();
    assert_eq!(dev.exit_code(READY).await, 0);
    let refused = jetjobs::connect(&url).await.err().expect("stopped");
    assert_eq!(refused.kind(), jetjobs::ErrorKind::Connection);
}
