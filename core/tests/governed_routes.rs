// SPDX-License-Identifier: Apache-2.0
//! Governors as route options against a real server: a route limited to 2 across three workers
//! never runs more than 2 at once while another route runs freely, and waiting costs no try; a
//! per-period governor is a fleet-wide rate limit; a per-key governor limits each tenant alone, its
//! key from a closure or from the payload at a JSON pointer (a task without a key is terminated).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{NatsServer, RunningWorker, wait_final};
use jetjobs::{
    Client, ClientOptions, Governor, GovernorManager, Mux, Queue, Task, TaskState, WorkerOptions,
};
use serde_json::json;

async fn connect(server: &NatsServer, queue: &str) -> Client {
    ClientOptions::new()
        .queue(Queue::new(queue))
        .connect(&server.url)
        .await
        .expect("client connects")
}

/// Per label: handlers running now and the most at once.
#[derive(Default)]
struct Running(Mutex<HashMap<String, (usize, usize)>>);

impl Running {
    fn enter(&self, label: &str) {
        let mut all = self.0.lock().expect("lock");
        let (now, peak) = all.entry(label.to_string()).or_default();
        *now += 1;
        *peak = (*peak).max(*now);
    }

    fn leave(&self, label: &str) {
        if let Some((now, _)) = self.0.lock().expect("lock").get_mut(label) {
            *now -= 1;
        }
    }

    fn peak(&self, label: &str) -> usize {
        self.0
            .lock()
            .expect("lock")
            .get(label)
            .map_or(0, |(_, peak)| *peak)
    }
}

/// A handler that holds for `hold`, counted under the label `label(task)` and under `*`.
fn holding(
    running: &Arc<Running>,
    hold: Duration,
    label: fn(&Task) -> String,
) -> impl Fn(jetjobs::TaskContext, Task) -> futures::future::BoxFuture<'static, jetjobs::HandlerResult>
+ Send
+ Sync
+ 'static {
    let running = running.clone();
    move |_ctx, task| {
        let running = running.clone();
        Box::pin(async move {
            let label = label(&task);
            running.enter(&label);
            running.enter("*");
            tokio::time::sleep(hold).await;
            running.leave("*");
            running.leave(&label);
            Ok(json!(null))
        })
    }
}

#[tokio::test]
async fn a_governed_route_runs_at_most_its_limit_across_workers_without_using_tries() {
    let server = NatsServer::start();
    let producer = connect(&server, "GOVERNED").await;
    GovernorManager::create(&producer, "DB", 2, Duration::from_secs(60), 1, None)
        .await
        .expect("governor");
    let running = Arc::new(Running::default());
    let mut workers = Vec::new();
    for _ in 0..3 {
        let client = connect(&server, "GOVERNED").await;
        let mut mux = Mux::new();
        mux.handle(
            "db",
            holding(&running, Duration::from_millis(100), |_| "db".into()),
        )
        .expect("register")
        .handle(
            "free",
            holding(&running, Duration::from_millis(100), |_| "free".into()),
        )
        .expect("register")
        .governed(
            "db",
            Governor::new(&client, "DB")
                .expect("governor")
                .interval(Duration::from_millis(50)),
        )
        .expect("governed");
        workers.push(RunningWorker::start(
            &client,
            WorkerOptions::new().concurrency(10),
            mux,
        ));
    }
    let mut ids = Vec::new();
    for i in 0..20 {
        for task_type in ["db", "free"] {
            ids.push(
                producer
                    .enqueue(Task::new(task_type, &i).expect("task"))
                    .await
                    .expect("enqueued")
                    .id,
            );
        }
    }
    let done = wait_final(&producer, &ids, Duration::from_secs(60)).await;
    for worker in workers {
        worker.stop().await;
    }
    assert!(
        done.iter()
            .all(|t| t.state == TaskState::Complete && t.tries == 1),
        "waiting is not a try"
    );
    assert!(
        running.peak("db") <= 2,
        "db ran {} at once",
        running.peak("db")
    );
    assert_eq!(running.peak("db"), 2, "the limit is used");
    assert!(
        running.peak("free") > 2,
        "other routes run freely: {}",
        running.peak("free")
    );
}

#[tokio::test]
async fn a_per_period_governor_is_a_fleet_wide_rate_limit() {
    let server = NatsServer::start();
    let client = connect(&server, "RATED").await;
    let period = Duration::from_secs(1);
    GovernorManager::create(&client, "RATE", 2, period, 1, None)
        .await
        .expect("governor");
    let starts = Arc::new(Mutex::new(Vec::new()));
    let recorded = starts.clone();
    let mut mux = Mux::new();
    mux.handle("report", move |_ctx, _task| {
        recorded.lock().expect("lock").push(Instant::now());
        async { Ok(json!(null)) }
    })
    .expect("register")
    .governed(
        "report",
        Governor::new(&client, "RATE")
            .expect("governor")
            .interval(Duration::from_millis(50))
            .without_leaving(),
    )
    .expect("governed");
    let worker = RunningWorker::start(&client, WorkerOptions::new(), mux);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            client
                .enqueue(Task::new("report", &i).expect("task"))
                .await
                .expect("enqueued")
                .id,
        );
    }
    wait_final(&client, &ids, Duration::from_secs(60)).await;
    worker.stop().await;
    let starts = starts.lock().expect("lock").clone();
    assert_eq!(starts.len(), 6);
    // Any three starts span at least a period: never more than 2 per period.
    for window in starts.windows(3) {
        let span = window[2] - window[0];
        assert!(
            span >= period - Duration::from_millis(50),
            "3 starts within {span:?}"
        );
    }
}

#[tokio::test]
async fn a_per_key_governor_limits_each_tenant_on_its_own() {
    let server = NatsServer::start();
    let client = connect(&server, "TENANTS").await;
    GovernorManager::create_per_key(&client, "TENANT", 1, Duration::from_secs(60), 1)
        .await
        .expect("governor");
    let running = Arc::new(Running::default());
    let mut mux = Mux::new();
    fn tenant(task: &Task) -> String {
        task.payload_json::<String>().unwrap_or_default()
    }
    mux.handle(
        "sync",
        holding(&running, Duration::from_millis(100), tenant),
    )
    .expect("register")
    .governed_per_key("sync", &client, "TENANT", tenant)
    .expect("governed");
    let worker = RunningWorker::start(&client, WorkerOptions::new().concurrency(10), mux);
    let mut ids = Vec::new();
    for _ in 0..5 {
        for tenant in ["acme", "globex"] {
            ids.push(
                client
                    .enqueue(Task::new("sync", &tenant).expect("task"))
                    .await
                    .expect("enqueued")
                    .id,
            );
        }
    }
    let done = wait_final(&client, &ids, Duration::from_secs(60)).await;
    worker.stop().await;
    assert!(
        done.iter()
            .all(|t| t.state == TaskState::Complete && t.tries == 1)
    );
    assert_eq!(
        (running.peak("acme"), running.peak("globex")),
        (1, 1),
        "one at a time per tenant"
    );
}

#[tokio::test]
async fn a_route_governed_per_key_field_reads_the_key_from_the_payload() {
    let server = NatsServer::start();
    let client = connect(&server, "TENANTFIELD").await;
    GovernorManager::create_per_key(&client, "TENANTF", 1, Duration::from_secs(60), 1)
        .await
        .expect("governor");
    let running = Arc::new(Running::default());
    let mut mux = Mux::new();
    fn tenant(task: &Task) -> String {
        let payload: serde_json::Value = task.payload_json().unwrap_or_default();
        match &payload["tenant"] {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    mux.handle(
        "sync",
        holding(&running, Duration::from_millis(100), tenant),
    )
    .expect("register");
    let refused = mux
        .governed_per_key_field("sync", &client, "TENANTF", "tenant")
        .err()
        .map(|e| e.kind());
    assert_eq!(
        refused,
        Some(jetjobs::ErrorKind::InvalidOption),
        "not a JSON pointer"
    );
    mux.governed_per_key_field("sync", &client, "TENANTF", "/tenant")
        .expect("governed");
    let worker = RunningWorker::start(&client, WorkerOptions::new().concurrency(10), mux);
    let mut ids = Vec::new();
    for _ in 0..4 {
        for tenant in [json!("a"), json!(7)] {
            ids.push(
                client
                    .enqueue(Task::new("sync", &json!({"tenant": tenant})).expect("task"))
                    .await
                    .expect("enqueued")
                    .id,
            );
        }
    }
    let mut bad = Vec::new();
    for payload in [
        json!({"other": 1}),
        json!({"tenant": "a.b"}),
        json!({"tenant": true}),
    ] {
        bad.push(
            client
                .enqueue(Task::new("sync", &payload).expect("task"))
                .await
                .expect("enqueued")
                .id,
        );
    }
    let done = wait_final(&client, &ids, Duration::from_secs(60)).await;
    let refused = wait_final(&client, &bad, Duration::from_secs(60)).await;
    worker.stop().await;
    assert!(
        done.iter()
            .all(|t| t.state == TaskState::Complete && t.tries == 1)
    );
    assert_eq!(
        (running.peak("a"), running.peak("7"), running.peak("*")),
        (1, 1, 2),
        "one at a time per tenant, the tenants side by side"
    );
    let errors: Vec<(TaskState, &str)> = refused
        .iter()
        .map(|t| (t.state, t.last_err.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (
                TaskState::Terminated,
                "governor TENANTF: the payload has no key at \"/tenant\": terminate task"
            ),
            (
                TaskState::Terminated,
                "governor TENANTF: the key \"a.b\" at \"/tenant\" is not a subject token \
                 (non-empty, no '.', '*', '>' or whitespace): terminate task"
            ),
            (
                TaskState::Terminated,
                "governor TENANTF: the key at \"/tenant\" in the payload is not a string or a number: terminate task"
            ),
        ]
    );
}
