// SPDX-License-Identifier: Apache-2.0
//! Test harness: every test gets its own real nats-server ([`jetjobs::DevServer`]: free loopback
//! port, temp store, stopped on drop) and waits on conditions with deadlines, never on sleeps.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

pub struct NatsServer {
    inner: jetjobs::DevServer,
    pub url: String,
}

impl NatsServer {
    pub fn start() -> Self {
        let inner = jetjobs::DevServer::start().expect("nats-server starts (run `make setup`)");
        Self {
            url: inner.url().to_string(),
            inner,
        }
    }

    pub fn stop(&mut self) {
        self.inner.stop();
    }

    pub fn restart(&mut self) {
        self.inner.restart().expect("nats-server restarts");
    }
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until every task reaches a final state and returns them in `ids` order.
pub async fn wait_final(
    client: &jetjobs::Client,
    ids: &[String],
    timeout: Duration,
) -> Vec<jetjobs::Task> {
    wait_for("tasks to reach a final state", timeout, || async {
        let mut out = Vec::new();
        for id in ids {
            let task = client.load_task(id).await.ok()?;
            if !task.state.is_final() {
                return None;
            }
            out.push(task);
        }
        Some(out)
    })
    .await
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
