// SPDX-License-Identifier: Apache-2.0
//! A task scheduler: `cargo run --example scheduler -- [NATS_URL] [NAME]`.
//!
//! Campaigns in asyncjobs' election (`CHORIA_AJ_ELECTIONS`, key `task_scheduler`) as `NAME`
//! (default `rust-<pid>`; unique per scheduler) against every other scheduler of the server, Go
//! asyncjobs' included; while elected it enqueues the tasks of the schedules stored with
//! `Client::create_schedule` (or `ajc task cron add`). `NATS_URL` defaults to `$NATS_URL`, then
//! `nats://127.0.0.1:4222`.
//!
//! Prints `jetjobs scheduler: NAME at NATS_URL: ready` once running; stops on SIGINT or SIGTERM.

use jetjobs::{CancellationToken, ClientOptions, TaskScheduler};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("NATS_URL").ok())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let name = args
        .next()
        .unwrap_or_else(|| format!("rust-{}", std::process::id()));
    let client = ClientOptions::new()
        .connection_name(format!("jetjobs scheduler {name}"))
        .connect(&url)
        .await?;
    let scheduler = TaskScheduler::new(&client, &name)?;

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
    println!("jetjobs scheduler: {name} at {url}: ready");
    scheduler.run(shutdown).await?;
    client.close().await?;
    Ok(())
}
