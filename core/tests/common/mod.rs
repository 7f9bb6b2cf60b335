// SPDX-License-Identifier: Apache-2.0
//! Test harness: every test gets its own real nats-server ([`jetjobs::DevServer`]: free loopback
//! port, temp store, stopped on drop) and waits on conditions with deadlines, never on sleeps.
#![allow(dead_code, unreachable_pub)]

pub mod go;

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

    pub fn kill(&mut self) {
        self.inner.kill();
    }

    pub fn restart(&mut self) {
        self.inner.restart().expect("nats-server restarts");
    }
}

/// This test binary run again as a child process that executes the ignored test `name` (which
/// reads its settings from `env`); killed on drop.
pub struct ChildProcess(pub std::process::Child);

impl ChildProcess {
    pub fn start(name: &str, env: &[(&str, &str)]) -> Self {
        let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
        command
            .args([
                name,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdout(std::process::Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        Self(command.spawn().expect("child process starts"))
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// Waits for the child to exit by itself.
    pub async fn exited(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
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

/// What handlers reported on `track.start` / `track.end` (body: the worker's name).
#[derive(Debug, Default)]
pub struct Concurrency {
    /// Most handlers running at once, over all workers.
    pub peak: i64,
    /// Most handlers running at once in each worker.
    pub peak_by_worker: std::collections::HashMap<String, i64>,
}

/// Follows start/end messages until `runs` handlers ended, failing as soon as more than `limit`
/// run at once. Handlers publish "end" on the connection that later acks, so it arrives first.
pub async fn observe_concurrency(
    messages: &mut async_nats::Subscriber,
    runs: usize,
    limit: i64,
) -> Concurrency {
    use futures::StreamExt as _;
    let mut seen = Concurrency::default();
    let (mut running, mut ended) = (0i64, 0usize);
    let mut running_by_worker = std::collections::HashMap::<String, i64>::new();
    while ended < runs {
        let message = tokio::time::timeout(Duration::from_secs(60), messages.next())
            .await
            .expect("handlers keep running")
            .expect("subscription open");
        let worker = String::from_utf8_lossy(&message.payload).to_string();
        let here = running_by_worker.entry(worker.clone()).or_default();
        if message.subject.as_str() == "track.start" {
            running += 1;
            *here += 1;
            let peak = seen.peak_by_worker.entry(worker).or_default();
            *peak = (*peak).max(*here);
            seen.peak = seen.peak.max(running);
        } else {
            running -= 1;
            *here -= 1;
            ended += 1;
        }
        assert!(
            running <= limit,
            "{running} handlers ran at once with a limit of {limit}"
        );
    }
    seen
}

/// A client of `server` whose default queue is `queue` (created with asyncjobs' defaults).
pub async fn client_for(server: &NatsServer, queue: &str) -> jetjobs::Client {
    jetjobs::ClientOptions::new()
        .queue(jetjobs::Queue::new(queue))
        .connect(&server.url)
        .await
        .expect("client connects")
}

/// A worker running in the background on the client's default queue.
pub struct RunningWorker {
    shutdown: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningWorker {
    pub fn start(
        client: &jetjobs::Client,
        options: jetjobs::WorkerOptions,
        mux: jetjobs::Mux,
    ) -> Self {
        let mut worker = jetjobs::Worker::new(client, options);
        worker
            .consume(client.default_queue(), mux)
            .expect("consume");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move { worker.run(token).await.expect("worker runs") });
        Self { shutdown, handle }
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.expect("worker stops cleanly");
    }
}

/// Tasks of `task_type`, counted by the whole second they were created in (a scheduler fires
/// on whole seconds, so two in one second are a duplicate firing).
pub async fn tasks_per_second(
    client: &jetjobs::Client,
    task_type: &str,
) -> std::collections::HashMap<i64, usize> {
    let mut seconds = std::collections::HashMap::new();
    for task in client.admin().tasks(100_000).await.expect("tasks") {
        if task.task_type == task_type {
            let at = task.created.to_utc();
            let second = at.timestamp() + i64::from(at.timestamp_subsec_millis() >= 500);
            *seconds.entry(second).or_default() += 1;
        }
    }
    seconds
}

/// A 3-node nats-server cluster ([`jetjobs::DevCluster`]), stopped and removed on drop.
pub struct NatsCluster(pub jetjobs::DevCluster);

impl NatsCluster {
    pub fn start() -> Self {
        Self(jetjobs::DevCluster::start().expect("nats-server cluster starts (run `make setup`)"))
    }
}

impl std::ops::Deref for NatsCluster {
    type Target = jetjobs::DevCluster;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for NatsCluster {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}
