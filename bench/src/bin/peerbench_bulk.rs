// SPDX-License-Identifier: Apache-2.0
//! `bench/peerbench/jetjobs_rust_bulk.sh`'s driver: the shape of `../shared/peerbench`'s
//! `jetjobs_rust` (one worker process, one producer process, completion counted by the worker's
//! handler and marked in a file at each phase boundary), with the producer using `enqueue_many`
//! in calls of 1,000 tasks, as BullMQ's headline uses `addBulk` ×1000.
//!
//! ```text
//! peerbench_bulk worker     one client, a no-op "noop" handler, concurrency
//!                           PEERBENCH_JETJOBS_CONCURRENCY (default 100)
//! peerbench_bulk producer   warm-up, then PEERBENCH_N tasks with enqueue_many ×1000 (headline),
//!                           then PEERBENCH_N with one `enqueue().await` after another (details)
//! ```
//!
//! Both processes run on the tokio runtime `PEERBENCH_JETJOBS_RUNTIME` names: `current_thread`
//! (the default, as the README's Production section recommends for worker processes) or
//! `multi_thread` (what `#[tokio::main]` gives, as the harness's own `jetjobs_rust` uses).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jetjobs::{CancellationToken, Client, ClientOptions, Mux, Queue, Task};
use jetjobs_bench::runtime_named;

// As the README's Production section recommends for worker processes (the bindings use it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const QUEUE: &str = "PEERBENCH";
const TASK_TYPE: &str = "noop";
const MAX_CONCURRENT: i64 = 10_000;
/// Tasks per `enqueue_many` call, as BullMQ's `addBulk` headline.
const BULK: u64 = 1000;

struct Config {
    url: String,
    n: u64,
    warmup: u64,
    timeout: Duration,
    concurrency: u64,
    mark_dir: PathBuf,
}

fn env_u64(name: &str, default: u64) -> Result<u64, BoxError> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v.parse()?),
        _ => Ok(default),
    }
}

impl Config {
    fn load() -> Result<Self, BoxError> {
        Ok(Config {
            url: std::env::var("PB_NATS_URL").map_err(|_| "PB_NATS_URL must be set")?,
            n: env_u64("PEERBENCH_N", 20_000)?.max(1),
            warmup: env_u64("PEERBENCH_WARMUP", 500)?.max(1),
            timeout: Duration::from_secs(env_u64("PEERBENCH_TIMEOUT", 240)?),
            concurrency: env_u64("PEERBENCH_JETJOBS_CONCURRENCY", 100)?.max(1),
            mark_dir: std::env::var("PB_MARK_DIR")
                .map_err(|_| "PB_MARK_DIR must be set")?
                .into(),
        })
    }

    async fn client(&self, concurrency: u64) -> Result<Client, BoxError> {
        Ok(ClientOptions::new()
            .queue(Queue::new(QUEUE).max_concurrent(MAX_CONCURRENT))
            .concurrency(concurrency as usize)
            .connect(&self.url)
            .await?)
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn write_mark(dir: &Path, count: u64) {
    let tmp = dir.join(format!(".{count}.tmp"));
    let written = std::fs::write(&tmp, format!("{:.6}", now()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(count.to_string())));
    if let Err(e) = written {
        eprintln!("writing mark {count}: {e}");
    }
}

async fn worker(cfg: Config) -> Result<(), BoxError> {
    let client = cfg.client(cfg.concurrency).await?;
    let marks = Arc::new([cfg.warmup, cfg.warmup + cfg.n, cfg.warmup + 2 * cfg.n]);
    let done = Arc::new(AtomicU64::new(0));
    let dir = Arc::new(cfg.mark_dir.clone());
    let mut mux = Mux::new();
    mux.handle(TASK_TYPE, move |_ctx, _task| {
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        if marks.contains(&n) {
            write_mark(&dir, n);
        }
        async { Ok(serde_json::Value::Null) }
    })?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                shutdown.cancel();
            }
        }
    });
    eprintln!(
        "[jetjobs_rust_bulk] worker running, concurrency {}",
        cfg.concurrency
    );
    client.run(mux, shutdown).await?;
    Ok(())
}

async fn enqueue_bulk(client: &Client, from: u64, n: u64) -> Result<(), BoxError> {
    let mut next = from;
    while next < from + n {
        let end = (next + BULK).min(from + n);
        let tasks = (next..end)
            .map(|i| Task::new(TASK_TYPE, &i))
            .collect::<Result<Vec<_>, _>>()?;
        for stored in client.enqueue_many(tasks).await {
            stored?;
        }
        next = end;
    }
    Ok(())
}

async fn enqueue_seq(client: &Client, n: u64) -> Result<(), BoxError> {
    for i in 0..n {
        client.enqueue(Task::new(TASK_TYPE, &i)?).await?;
    }
    Ok(())
}

async fn wait_mark(dir: &Path, target: u64, deadline: Instant) -> Result<f64, BoxError> {
    let path = dir.join(target.to_string());
    loop {
        if let Ok(s) = std::fs::read_to_string(&path) {
            return Ok(s.trim().parse()?);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {target} completions").into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn wait_empty(client: &Client, deadline: Instant) -> Result<(), BoxError> {
    let admin = client.admin();
    while admin.queue_info(QUEUE).await?.items > 0 {
        if Instant::now() > deadline {
            return Err("the queue did not empty".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Start, end of enqueueing and last completion of one phase.
async fn phase<Fut>(
    cfg: &Config,
    client: &Client,
    target: u64,
    enqueue: Fut,
) -> Result<(f64, f64, f64), BoxError>
where
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let deadline = Instant::now() + cfg.timeout;
    let t0 = now();
    tokio::time::timeout(cfg.timeout, enqueue)
        .await
        .map_err(|_| "enqueue did not finish in time")??;
    let t1 = now();
    let t2 = wait_mark(&cfg.mark_dir, target, deadline).await?;
    wait_empty(client, deadline).await?;
    Ok((t0, t1, t2))
}

async fn producer(cfg: Config) -> Result<(), BoxError> {
    let client = cfg.client(1).await?;
    let (n, w) = (cfg.n, cfg.warmup);
    phase(&cfg, &client, w, enqueue_bulk(&client, 0, w)).await?;
    let (b0, b1, b2) = phase(&cfg, &client, w + n, enqueue_bulk(&client, w, n)).await?;
    let (s0, s1, s2) = phase(&cfg, &client, w + 2 * n, enqueue_seq(&client, n)).await?;
    let nf = n as f64;
    let server = client.nats().server_info().version;
    println!(
        "jetjobs_rust_bulk: {n} tasks in {:.3} s = {:.0} tasks/s (end-to-end, enqueue_many ×{BULK}; \
         enqueue {:.0} tasks/s; last task done {:.3} s after last enqueue; \
         sequential enqueue loop: end-to-end {:.0} tasks/s, enqueue {:.0} tasks/s; \
         worker: 1 process, concurrency {}; tokio runtime {}; nats-server {server})",
        b2 - b0,
        nf / (b2 - b0),
        nf / (b1 - b0),
        (b2 - b1).max(0.0),
        nf / (s2 - s0),
        nf / (s1 - s0),
        cfg.concurrency,
        runtime_flavor(),
    );
    Ok(())
}

fn runtime_flavor() -> String {
    std::env::var("PEERBENCH_JETJOBS_RUNTIME").unwrap_or_else(|_| "current_thread".into())
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let runtime = runtime_named(&runtime_flavor());
    let result = match (Config::load(), runtime) {
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(format!("PEERBENCH_JETJOBS_RUNTIME: {e}").into()),
        (Ok(cfg), Ok(runtime)) => runtime.block_on(async {
            match mode.as_str() {
                "worker" => worker(cfg).await,
                "producer" => producer(cfg).await,
                _ => Err("usage: peerbench_bulk worker|producer".into()),
            }
        }),
    };
    if let Err(e) = result {
        eprintln!("jetjobs_rust_bulk: FAILED: {e}");
        std::process::exit(1);
    }
}
