// SPDX-License-Identifier: Apache-2.0
//! Scheduled tasks against the real Go asyncjobs v0.3.0: a schedule added with `ajc task cron add`
//! fires from a jetjobs scheduler; a jetjobs schedule shows in `ajc task cron ls` and fires from
//! Go's `TaskScheduler`; a Go and a jetjobs scheduler share one election (one task per firing),
//! and when the leader dies (SIGKILL for Go) the other takes over.

mod common;

use std::time::Duration;

use common::go::{GoProcess, ajc, go_tools};
use common::{NatsServer, tasks_per_second, wait_for};
use jetjobs::{CancellationToken, Client, ClientOptions, ScheduledTask, Task, TaskScheduler};
use serde_json::json;

/// Splay (< 5 s) + a win announced one interval (7.5 s) later, plus a dead leader's 10 s TTL.
const TAKEOVER: Duration = Duration::from_secs(45);

async fn connect(server: &NatsServer) -> Client {
    ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("client connects")
}

fn start_scheduler(client: &Client, name: &str) -> (TaskScheduler, CancellationToken) {
    let scheduler = TaskScheduler::new(client, name).expect("scheduler");
    let shutdown = CancellationToken::new();
    let (running, token) = (scheduler.clone(), shutdown.clone());
    tokio::spawn(async move { running.run(token).await.expect("scheduler runs") });
    (scheduler, shutdown)
}

async fn fired(client: &Client, task_type: &str, at_least: usize) -> Vec<jetjobs::Task> {
    wait_for(
        &format!("{at_least} {task_type} tasks"),
        TAKEOVER,
        || async {
            let tasks: Vec<_> = client
                .admin()
                .tasks(100_000)
                .await
                .ok()?
                .into_iter()
                .filter(|t| t.task_type == task_type)
                .collect();
            (tasks.len() >= at_least).then_some(tasks)
        },
    )
    .await
}

#[tokio::test]
async fn a_schedule_added_with_ajc_fires_in_jetjobs_and_ajc_lists_jetjobs_schedules() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let client = connect(&server).await;
    ajc(
        go,
        &server.url,
        &[
            "task",
            "cron",
            "add",
            "from-go",
            "every 1s", // ajc reads `@…` arguments as files; it prepends the `@` itself
            "go:tick",
            "--payload",
            r#"{"from":"go"}"#,
            "--queue",
            "CRON_GO",
        ],
    );
    let stored = client
        .load_schedule("from-go")
        .await
        .expect("jetjobs reads ajc's schedule");
    assert_eq!(
        (
            stored.schedule.as_str(),
            stored.queue.as_str(),
            stored.task_type.as_str()
        ),
        ("@every 1s", "CRON_GO", "go:tick")
    );
    let ours = ScheduledTask::new(
        "from-rust",
        "0 3 * * *",
        "CRON_RS",
        &Task::new("rust:tick", &1).expect("task"),
    )
    .expect("schedule");
    client.create_schedule(&ours).await.expect("created");
    let names = ajc(go, &server.url, &["task", "cron", "ls", "--names"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["from-go", "from-rust"]);

    let (_scheduler, shutdown) = start_scheduler(&client, "jetjobs-1");
    let tasks = fired(&client, "go:tick", 2).await;
    assert!(tasks.iter().all(|t| t.queue == "CRON_GO"));
    // ajc stores its payload argument as a JSON string; tasks carry the stored bytes as they are.
    assert_eq!(tasks[0].payload, stored.payload);
    assert_eq!(
        tasks[0]
            .payload_json::<serde_json::Value>()
            .expect("JSON payload"),
        json!(r#"{"from":"go"}"#)
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_jetjobs_schedule_fires_from_the_go_scheduler() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let client = connect(&server).await;
    let task = Task::new("rust:tick", &"hi").expect("task");
    let schedule =
        ScheduledTask::new("from-rust", "@every 1s", "CRON_RS", &task).expect("schedule");
    client.create_schedule(&schedule).await.expect("created");
    // Go's scheduler enqueues without creating the queue.
    let queue = client
        .open_queue(jetjobs::Queue::new("CRON_RS"))
        .await
        .expect("queue");
    let _go = GoProcess::spawn(go, &["scheduler", "-url", &server.url, "-name", "go-1"]);
    let tasks = fired(&client, "rust:tick", 2).await;
    assert!(
        tasks
            .iter()
            .all(|t| t.queue == "CRON_RS" && t.state == jetjobs::TaskState::New)
    );
    assert!(
        queue.info().await.expect("info").items >= 2,
        "their work items are queued"
    );
}

#[tokio::test]
async fn go_and_jetjobs_schedulers_share_one_election_and_take_over_from_a_dead_leader() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let client = connect(&server).await;
    let tick = Task::new("tick", &1).expect("task");
    client
        .create_schedule(&ScheduledTask::new("tick", "@every 1s", "CRON", &tick).expect("schedule"))
        .await
        .expect("created");
    // Go's scheduler enqueues without creating the queue.
    client
        .open_queue(jetjobs::Queue::new("CRON"))
        .await
        .expect("queue");
    let mut go_scheduler =
        GoProcess::spawn(go, &["scheduler", "-url", &server.url, "-name", "go-1"]);
    let jetjobs_client = connect(&server).await;
    let (ours, shutdown) = start_scheduler(&jetjobs_client, "jetjobs-1");

    let before = fired(&client, "tick", 5).await.len();
    let seconds = tasks_per_second(&client, "tick").await;
    assert!(
        seconds.values().all(|&n| n == 1),
        "one task per firing: {seconds:?}"
    );

    // Kill whichever leads; the other must take over.
    let jetjobs_led = ours.is_leader();
    if jetjobs_led {
        shutdown.cancel();
    } else {
        go_scheduler.kill();
    }
    if !jetjobs_led {
        wait_for("jetjobs to take over", TAKEOVER, || async {
            ours.is_leader().then_some(())
        })
        .await;
    }
    fired(&client, "tick", before + 3).await;
    let seconds = tasks_per_second(&client, "tick").await;
    assert!(
        seconds.values().all(|&n| n == 1),
        "one task per firing: {seconds:?}"
    );
    shutdown.cancel();
}
