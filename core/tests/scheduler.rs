// SPDX-License-Identifier: Apache-2.0
//! Scheduled tasks against a real server: the CRUD rules of asyncjobs, and two schedulers
//! (separate clients, as separate processes would be) sharing asyncjobs' election: only the leader
//! fires, one task per firing; when the leader stops the other takes over; a removed schedule
//! stops firing at once.

mod common;

use std::time::Duration;

use common::{NatsServer, tasks_per_second, wait_for};
use jetjobs::{
    CancellationToken, Client, ClientOptions, ErrorKind, ScheduledTask, Task, TaskScheduler,
    Timestamp,
};

async fn connect(server: &NatsServer) -> Client {
    ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("client connects")
}

#[tokio::test]
async fn schedules_are_created_once_loaded_listed_and_removed_with_asyncjobs_errors() {
    let server = NatsServer::start();
    let client = connect(&server).await;
    let task = Task::new("report", &"ops").expect("task");
    let nightly = ScheduledTask::new("nightly", "0 2 * * *", "REPORTS", &task).expect("schedule");
    client.create_schedule(&nightly).await.expect("created");
    let again = client.create_schedule(&nightly).await.expect_err("exists");
    assert_eq!(again.kind(), ErrorKind::ScheduleExists);
    assert_eq!(
        client.load_schedule("nightly").await.expect("load"),
        nightly
    );
    let hourly = ScheduledTask::new("hourly", "@hourly", "REPORTS", &task).expect("schedule");
    client.create_schedule(&hourly).await.expect("created");
    let names: Vec<String> = client
        .schedules()
        .await
        .expect("list")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
    client.remove_schedule("nightly").await.expect("removed");
    for missing in [
        client.load_schedule("nightly").await.expect_err("gone"),
        client.remove_schedule("nightly").await.expect_err("gone"),
    ] {
        assert_eq!(missing.kind(), ErrorKind::ScheduleNotFound);
    }

    let bad = |name: &str, spec: &str, task: &Task| {
        ScheduledTask::new(name, spec, "REPORTS", task)
            .expect_err("invalid")
            .kind()
    };
    assert_eq!(bad("x", "not cron", &task), ErrorKind::InvalidSchedule);
    assert_eq!(bad("x", "", &task), ErrorKind::InvalidSchedule);
    assert_eq!(bad("", "@daily", &task), ErrorKind::InvalidScheduleName);
    assert_eq!(bad("a b", "@daily", &task), ErrorKind::InvalidScheduleName);
    let short = task
        .clone()
        .with_deadline(Timestamp::now().add(Duration::from_secs(10)));
    assert_eq!(
        bad("x", "@daily", &short),
        ErrorKind::ScheduleDeadlineTooShort
    );
    let long = task
        .clone()
        .with_deadline(Timestamp::now().add(Duration::from_secs(120)));
    let with_deadline = ScheduledTask::new("x", "@daily", "REPORTS", &long).expect("valid");
    assert_eq!(with_deadline.deadline, Duration::from_secs(120));
}

struct Running {
    scheduler: TaskScheduler,
    shutdown: CancellationToken,
}

fn start(client: &Client, name: &str) -> Running {
    let scheduler = TaskScheduler::new(client, name).expect("scheduler");
    let shutdown = CancellationToken::new();
    let (running, token) = (scheduler.clone(), shutdown.clone());
    tokio::spawn(async move { running.run(token).await.expect("scheduler runs") });
    Running {
        scheduler,
        shutdown,
    }
}

async fn leader(schedulers: &[&Running], within: Duration) -> usize {
    wait_for("a scheduler to be elected", within, || async {
        schedulers.iter().position(|s| s.scheduler.is_leader())
    })
    .await
}

#[tokio::test]
async fn only_the_elected_scheduler_fires_and_another_takes_over() {
    let server = NatsServer::start();
    let producer = connect(&server).await;
    let tick = Task::new("tick", &1).expect("task");
    let every_second = ScheduledTask::new("tick", "@every 1s", "CRON", &tick).expect("schedule");
    producer
        .create_schedule(&every_second)
        .await
        .expect("created");

    let (a, b) = (connect(&server).await, connect(&server).await);
    let schedulers = [start(&a, "scheduler-a"), start(&b, "scheduler-b")];
    let refs: Vec<&Running> = schedulers.iter().collect();
    // Splay (< 5 s), then the win is announced one campaign interval (7.5 s) after it.
    let first = leader(&refs, Duration::from_secs(30)).await;
    let count = |min: usize| {
        let producer = producer.clone();
        async move {
            let seconds = tasks_per_second(&producer, "tick").await;
            (seconds.values().sum::<usize>() >= min).then_some(seconds)
        }
    };
    let seconds = wait_for("five firings", Duration::from_secs(20), || count(5)).await;
    assert!(
        seconds.values().all(|&n| n == 1),
        "one task per firing: {seconds:?}"
    );

    schedulers[first].shutdown.cancel();
    let fired_before = seconds.values().sum::<usize>();
    let other = &schedulers[1 - first];
    // The stopped leader's key expires (10 s TTL), then the other wins and announces.
    wait_for(
        "the other scheduler to take over",
        Duration::from_secs(45),
        || async { other.scheduler.is_leader().then_some(()) },
    )
    .await;
    let seconds = wait_for(
        "firings under the new leader",
        Duration::from_secs(20),
        || count(fired_before + 3),
    )
    .await;
    assert!(
        seconds.values().all(|&n| n == 1),
        "one task per firing: {seconds:?}"
    );

    // A removed schedule stops firing: once a schedule added after the removal fires, the removal
    // (watched in order) has been applied for a whole second.
    producer.remove_schedule("tick").await.expect("removed");
    let removed_at = Timestamp::now();
    let marker = Task::new("marker", &1).expect("task");
    producer
        .create_schedule(
            &ScheduledTask::new("marker", "@every 1s", "CRON", &marker).expect("schedule"),
        )
        .await
        .expect("created");
    wait_for(
        "the marker schedule to fire",
        Duration::from_secs(20),
        || async { (!tasks_per_second(&producer, "marker").await.is_empty()).then_some(()) },
    )
    .await;
    let after_removal = producer
        .admin()
        .tasks(100_000)
        .await
        .expect("tasks")
        .into_iter()
        // A firing racing the removal's watch event (milliseconds) may still land.
        .filter(|t| {
            t.task_type == "tick"
                && t.created.to_utc() > removed_at.add(Duration::from_millis(500)).to_utc()
        })
        .count();
    assert_eq!(
        after_removal, 0,
        "no tick task after the schedule was removed"
    );
    other.shutdown.cancel();
}

#[tokio::test]
async fn a_worker_can_run_the_scheduler_and_handle_what_it_creates() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .queue(jetjobs::Queue::new("CRON_WORK"))
        .connect(&server.url)
        .await
        .expect("client connects");
    let beat = Task::new("beat", &"payload").expect("task");
    client
        .create_schedule(
            &ScheduledTask::new("beat", "@every 1s", "CRON_WORK", &beat).expect("schedule"),
        )
        .await
        .expect("created");
    let mut mux = jetjobs::Mux::new();
    mux.handle("beat", |_ctx, task: Task| async move {
        Ok(serde_json::json!(task.payload_json::<String>()?))
    })
    .expect("register");
    let worker = common::RunningWorker::start(
        &client,
        jetjobs::WorkerOptions::new().task_scheduler("worker-1"),
        mux,
    );
    let done = wait_for(
        "a scheduled task to complete",
        Duration::from_secs(40),
        || async {
            client
                .admin()
                .tasks(100)
                .await
                .ok()?
                .into_iter()
                .find(|t| t.state == jetjobs::TaskState::Complete)
        },
    )
    .await;
    assert_eq!(done.task_type, "beat");
    assert_eq!(
        done.result.map(|r| r.payload),
        Some(serde_json::json!("payload")),
        "the schedule's payload reaches the handler as given"
    );
    worker.stop().await;
}
