// SPDX-License-Identifier: Apache-2.0
//! A worker other languages' tests run against: `NATS_URL=… cargo run --example worker`.
//!
//! Queue `$JETJOBS_QUEUE` (default `INTEROP`), created if missing. Handlers:
//! - `interop:echo` returns the payload unchanged,
//! - `interop:fail-once` fails its first try, then returns the payload,
//! - `interop:terminate` terminates with `refused: terminate task`.
//!
//! Prints `ready` once it is pulling work; stops gracefully on SIGINT or SIGTERM.

use std::time::Duration;

use jetjobs::{CancellationToken, ClientOptions, HandlerError, Mux, Queue, RetryPolicy, Task};

// A worker process is I/O-bound: on a current-thread runtime the engine spends about 40 % less
// CPU per task than on a work-stealing one (README, "Production"). Handlers that compute for long
// belong in `tokio::task::spawn_blocking` then.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let queue = std::env::var("JETJOBS_QUEUE").unwrap_or_else(|_| "INTEROP".into());
    let client = ClientOptions::new()
        .queue(Queue::new(queue))
        .retry_policy(RetryPolicy::exponential(
            Duration::from_millis(100),
            Duration::from_secs(1),
            0.0,
        )?)
        .connect(&url)
        .await?;

    let mut mux = Mux::new();
    mux.handle("interop:echo", |_ctx, task: Task| async move {
        Ok(task.payload_json::<serde_json::Value>()?)
    })?;
    mux.handle("interop:fail-once", |_ctx, task: Task| async move {
        if task.tries <= 1 {
            return Err(HandlerError::retry("first try fails"));
        }
        Ok(task.payload_json::<serde_json::Value>()?)
    })?;
    mux.handle("interop:terminate", |_ctx, _task| async {
        Err(HandlerError::terminate("refused"))
    })?;

    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let sigterm = async {
                match term.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = sigterm => {} }
            shutdown.cancel();
        }
    });
    println!("ready");
    client.run(mux, shutdown).await?;
    Ok(())
}
