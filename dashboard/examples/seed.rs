// SPDX-License-Identifier: Apache-2.0
//! Fills a server with tasks in several states for trying the dashboard (and for its browser
//! test), then prints their ids by state as one JSON object:
//!
//! ```text
//! cargo run -p jetjobs-dashboard --example seed -- --server nats://127.0.0.1:4222
//! ```
//!
//! Queue `EMAIL`: 3 `email:send` complete, 2 `email:bounce` terminated, 1 `email:flaky`
//! expired (one try allowed), 2 `email:later` in retry (their next try is an hour away). Queue
//! `REPORTS`: 4 `report:build` new (no worker consumes it), one of them depending on a complete
//! task. A worker runs only until those states are reached.

use std::collections::BTreeMap;
use std::time::Duration;

use jetjobs::{
    CancellationToken, ClientOptions, HandlerError, Mux, Queue, RetryPolicy, Task, TaskState,
};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--server", Some(url)) => server = url,
            _ => return Err("usage: seed [--server URL]".into()),
        }
    }
    let client = ClientOptions::new()
        .queue(Queue::new("EMAIL"))
        .retry_policy(RetryPolicy::fixed(Duration::from_secs(3600)))
        .connect(&server)
        .await?;
    let reports = client.open_queue(Queue::new("REPORTS")).await?;

    let mut expected: Vec<(String, TaskState)> = Vec::new();
    let mut complete = Vec::new();
    for n in 1..=3 {
        let task = Task::new(
            "email:send",
            &json!({"to": format!("user{n}@example.net"), "subject": "Welcome", "n": n}),
        )?;
        let task = client.enqueue(task).await?;
        complete.push(task.id.clone());
        expected.push((task.id, TaskState::Complete));
    }
    for n in 1..=2 {
        let task = Task::new(
            "email:bounce",
            &json!({"to": format!("nobody{n}@example.invalid")}),
        )?;
        expected.push((client.enqueue(task).await?.id, TaskState::Terminated));
    }
    let flaky = Task::new("email:flaky", &json!({"to": "ops@example.net"}))?.with_max_tries(1);
    expected.push((client.enqueue(flaky).await?.id, TaskState::Expired));
    for n in 1..=2 {
        let task = Task::new(
            "email:later",
            &json!({"to": format!("later{n}@example.net")}),
        )?;
        expected.push((client.enqueue(task).await?.id, TaskState::Retry));
    }

    let mut mux = Mux::new();
    mux.handle("email:send", |_ctx, task: Task| async move {
        let body: serde_json::Value = task.payload_json()?;
        Ok::<_, HandlerError>(json!({"sent_to": body["to"], "message_id": "m-1"}))
    })?;
    mux.handle("email:bounce", |_ctx, _task| async {
        Err(HandlerError::terminate("mailbox does not exist"))
    })?;
    mux.handle("email:flaky", |_ctx, _task| async {
        Err(HandlerError::retry("smtp timeout"))
    })?;
    mux.handle("email:later", |_ctx, _task| async {
        Err(HandlerError::retry("greylisted, try later"))
    })?;
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let (client, shutdown) = (client.clone(), shutdown.clone());
        async move { client.run(mux, shutdown).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut reached = true;
        for (id, state) in &expected {
            let task = client.load_task(id).await?;
            reached &= task.state == *state && (*state != TaskState::Retry || task.tries == 1);
        }
        if reached {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the seeded tasks did not reach their states within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    worker.await??;

    for n in 1..=4 {
        let mut task = Task::new(
            "report:build",
            &json!({"report": format!("weekly-{n}"), "format": "pdf"}),
        )?;
        if n == 4 {
            task = task.depends_on([complete[0].clone()]);
        }
        let task = reports.enqueue(task).await?;
        expected.push((task.id, task.state));
    }

    let mut by_state: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (id, _) in &expected {
        let task = client.load_task(id).await?;
        by_state
            .entry(task.state.as_str())
            .or_default()
            .push(task.id);
    }
    println!("{}", serde_json::to_string(&by_state)?);
    client.close().await?;
    Ok(())
}
