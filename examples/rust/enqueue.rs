// SPDX-License-Identifier: Apache-2.0
//! A producer other languages' tests run against:
//! `NATS_URL=… cargo run --example enqueue -- <type> '<json payload>' [count]`.
//!
//! Enqueues to `$JETJOBS_QUEUE` (default `INTEROP`) and prints one task id per line.

use jetjobs::{ClientOptions, Queue, Task};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(task_type), Some(payload)) = (args.next(), args.next()) else {
        return Err("usage: enqueue <type> <json payload> [count]".into());
    };
    let count: usize = args.next().map(|c| c.parse()).transpose()?.unwrap_or(1);
    let payload: serde_json::Value = serde_json::from_str(&payload)?;
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let queue = std::env::var("JETJOBS_QUEUE").unwrap_or_else(|_| "INTEROP".into());
    let client = ClientOptions::new()
        .queue(Queue::new(queue))
        .connect(&url)
        .await?;
    for _ in 0..count {
        println!(
            "{}",
            client
                .enqueue(Task::new(task_type.as_str(), &payload)?)
                .await?
                .id
        );
    }
    Ok(())
}
