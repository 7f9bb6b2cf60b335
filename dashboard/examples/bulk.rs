// SPDX-License-Identifier: Apache-2.0
//! Stores many tasks at once for trying the dashboard at scale (`--count N`, default 100 000,
//! on queue `BULK`; no worker runs them):
//!
//! ```text
//! cargo run --release -p jetjobs-dashboard --example bulk -- --server nats://127.0.0.1:4222 --count 100000
//! ```

use jetjobs::{ClientOptions, Queue, Task};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut server = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let mut count = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--server", Some(url)) => server = url,
            ("--count", Some(n)) => count = n.parse()?,
            _ => return Err("usage: bulk [--server URL] [--count N]".into()),
        }
    }
    let client = ClientOptions::new()
        .queue(Queue::new("BULK"))
        .connect(&server)
        .await?;
    let started = std::time::Instant::now();
    let mut stored = 0;
    while stored < count {
        let batch = (count - stored).min(5000);
        let tasks = (0..batch)
            .map(|n| Task::new(["bulk:a", "bulk:b", "bulk:c"][n % 3], &(stored + n)))
            .collect::<Result<Vec<_>, _>>()?;
        for result in client.enqueue_many(tasks).await {
            result?;
        }
        stored += batch;
    }
    println!("stored {stored} tasks in {:.1?}", started.elapsed());
    client.close().await?;
    Ok(())
}
