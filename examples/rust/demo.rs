// SPDX-License-Identifier: Apache-2.0
//! `make demo`: enqueue a few tasks, run a worker until they are final, print what happened.
//!
//! Uses `$NATS_URL` if set; otherwise starts a throwaway local nats-server and stops it after.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jetjobs::{
    CancellationToken, ClientOptions, DevServer, HandlerError, Mux, Queue, RetryPolicy, Task,
};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_server, url) = match std::env::var("NATS_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = DevServer::start()?;
            let url = server.url().to_string();
            println!("started nats-server at {url}");
            (Some(server), url)
        }
    };
    let client = ClientOptions::new()
        .queue(Queue::new("DEMO"))
        .retry_policy(RetryPolicy::exponential(
            Duration::from_millis(200),
            Duration::from_secs(2),
            0.1,
        )?)
        .connect(&url)
        .await?;

    let mut mux = Mux::new();
    mux.handle("greet", |_ctx, task: Task| async move {
        let name: String = task.payload_json()?;
        Ok(json!(format!("hello, {name}")))
    })?;
    let attempts = Arc::new(AtomicUsize::new(0));
    mux.handle("flaky", move |_ctx, _task| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if attempt == 1 {
                Err(HandlerError::retry("upstream unavailable, try again"))
            } else {
                Ok(json!({"attempts": attempt}))
            }
        }
    })?;
    mux.handle("reject", |_ctx, _task| async {
        Err(HandlerError::terminate("malformed order"))
    })?;

    let mut ids = Vec::new();
    for (task_type, payload) in [
        ("greet", json!("world")),
        ("flaky", json!({})),
        ("reject", json!({"order": 7})),
    ] {
        let task = client.enqueue(Task::new(task_type, &payload)?).await?;
        println!("enqueued {:<7} {}", task.task_type, task.id);
        ids.push(task.id);
    }

    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let (client, shutdown) = (client.clone(), shutdown.clone());
        async move { client.run(mux, shutdown).await }
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let tasks = loop {
        let mut tasks = Vec::new();
        for id in &ids {
            tasks.push(client.load_task(id).await?);
        }
        if tasks.iter().all(|t| t.state.is_final()) {
            break tasks;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("tasks did not finish within 60s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.cancel();
    worker.await??;

    println!(
        "\n{:<28} {:<7} {:<11} {:>5}  result / last error",
        "task", "type", "state", "tries"
    );
    for t in &tasks {
        let outcome = match &t.result {
            Some(r) => r.payload.to_string(),
            None => t.last_err.clone(),
        };
        println!(
            "{:<28} {:<7} {:<11} {:>5}  {}",
            t.id,
            t.task_type,
            t.state.as_str(),
            t.tries,
            outcome
        );
    }
    Ok(())
}
