// SPDX-License-Identifier: Apache-2.0
//! `make bench`: in one run, measure what this machine's nats-server can do and what jetjobs does
//! on top of it, and report jetjobs as ratios of that baseline (shared machines are noisy, so only
//! ratios within one run are comparable).
//!
//! Environment: `BENCH_TASKS` (backlog size, default 50000), `BENCH_CONCURRENCY` (default 256),
//! `BENCH_ORDER_KEYS` (order keys of the ordered drain, default 64), `BENCH_POOL_JOBS` (jobs of
//! the keyed-pool measurements, default 1000).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::{StreamExt as _, TryStreamExt as _};
use jetjobs::{CancellationToken, Client, ClientOptions, DevServer, Mux, Queue, Task};
use jetjobs_bench::{micros, process_cpu, runtime_named, status_kib, thread_cpu};
use tokio::sync::mpsc;

mod ordered;
mod pool;

// As the README's Production section recommends for worker processes (the bindings use it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Stream writes jetjobs makes per task with full asyncjobs state tracking: the task document at
/// enqueue, the work item, the `active` save and the final save.
const WRITES_PER_TASK: f64 = 4.0;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let tasks = env_usize("BENCH_TASKS", 50_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 256);
    let server = DevServer::start()?;
    println!(
        "jetjobs bench: nats-server file storage on loopback, {tasks} tasks, worker concurrency {concurrency}\n"
    );

    let nats = async_nats::connect(server.url()).await?;
    let (publish_rate, publish_p50) = server_baseline(&nats, tasks).await?;
    let bound = publish_rate / WRITES_PER_TASK;
    println!("(a) server baseline");
    println!("    pipelined publish+ack        {publish_rate:>10.0} msgs/s");
    println!(
        "    sequential publish+ack p50   {:>10.1} µs",
        micros(publish_p50)
    );
    println!(
        "    bound for jetjobs            {bound:>10.0} tasks/s  (publish rate / {WRITES_PER_TASK} writes per task)\n"
    );

    let client = ClientOptions::new()
        .queue(Queue::new("BENCH").max_concurrent(10_000))
        .concurrency(concurrency)
        .connect(server.url())
        .await?;
    let enqueue_rate = enqueue_all(&client, tasks).await?;
    let server_cpu_before = process_cpu(server.pid());
    let drain = drain_backlog(&client, tasks).await?;
    let server_cpu_per_task = micros(process_cpu(server.pid()) - server_cpu_before) / tasks as f64;
    let drain_current_thread = {
        let url = server.url().to_string();
        tokio::task::spawn_blocking(move || drain_on_current_thread(&url, tasks, concurrency))
            .await??
    };
    let mixed = produce_and_consume(&client, tasks / 2).await?;
    let (p50, p99) = unloaded_latency(&client, 500).await?;
    let batch_rate = enqueue_batch(&client, tasks).await?;
    client.default_queue().purge().await?;
    let (sequential_p50, sequential_rate) = sequential_enqueue(&client, 2000).await?;
    client.default_queue().purge().await?;
    let delayed = tasks / 5;
    let delayed_batch_rate = enqueue_delayed_batch(&client, delayed).await?;
    let released_rate = release_delayed(&client, delayed).await?;
    let order_keys = env_usize("BENCH_ORDER_KEYS", 64);
    let ordered_tasks = tasks / 2;
    let ordered_rate =
        ordered::drain_ordered(server.url(), ordered_tasks, order_keys, concurrency).await?;
    let pool_jobs = env_usize("BENCH_POOL_JOBS", 1000);
    let pool = pool::measure(server.url(), pool_jobs).await?;
    let rss = peak_rss_kib();

    println!("(b) jetjobs, no-op Rust handler");
    println!("    enqueue (256 in flight)      {enqueue_rate:>10.0} tasks/s");
    println!("    enqueue_many (one call)      {batch_rate:>10.0} tasks/s");
    println!(
        "    sequential enqueue           {sequential_rate:>10.0} tasks/s  (p50 {:.1} µs)",
        micros(sequential_p50)
    );
    println!(
        "    drain {tasks}-task backlog     {:>10.0} tasks/s",
        drain.rate
    );
    println!(
        "    drain, current-thread runtime {:>9.0} tasks/s",
        drain_current_thread.rate
    );
    println!("    producers + workers together {mixed:>10.0} tasks/s");
    println!(
        "    drain ordered, {order_keys} keys       {ordered_rate:>10.0} tasks/s  ({ordered_tasks} tasks)"
    );
    println!(
        "    enqueue_many, delayed 1 h    {delayed_batch_rate:>10.0} tasks/s  ({delayed} tasks)"
    );
    println!(
        "    delayed: due → complete      {released_rate:>10.0} tasks/s  ({delayed} due at once)"
    );
    println!(
        "    enqueue→handler start p50    {:>10.2} ms",
        p50.as_secs_f64() * 1e3
    );
    println!(
        "    enqueue→handler start p99    {:>10.2} ms",
        p99.as_secs_f64() * 1e3
    );
    println!(
        "    worker CPU per task (drain)  {:>10.1} µs",
        drain.cpu_micros_per_task
    );
    println!(
        "    worker CPU, current-thread   {:>10.1} µs",
        drain_current_thread.cpu_micros_per_task
    );
    println!("    server CPU per task (drain)  {server_cpu_per_task:>10.1} µs");
    println!(
        "    peak RSS                     {:>10.1} MiB\n",
        rss as f64 / 1024.0
    );

    println!(
        "(d) keyed job pool: 3 nodes, {pool_jobs} jobs, worker TTL {:?}",
        pool::WORKER_TTL
    );
    println!(
        "    dispatch→started p50         {:>10.2} ms",
        pool.dispatch_p50.as_secs_f64() * 1e3
    );
    println!(
        "    dispatch→started p99         {:>10.2} ms",
        pool.dispatch_p99.as_secs_f64() * 1e3
    );
    println!(
        "    a 4th node joins: settled in {:>10.0} ms  ({} jobs moved)",
        pool.join_rebalance.as_secs_f64() * 1e3,
        pool.moved_on_join
    );
    println!(
        "    a node dies: settled in      {:>10.0} ms  ({} jobs moved; TTL-bound)",
        pool.death_rebalance.as_secs_f64() * 1e3,
        pool.moved_on_death
    );
    println!(
        "    dispatch p50 / publish p50   {:>10.1}\n",
        pool.dispatch_p50.as_secs_f64() / publish_p50.as_secs_f64()
    );

    println!("(c) ratios to the server bound measured above");
    println!(
        "    drain / bound                {:>10.2}",
        drain.rate / bound
    );
    println!("    together / bound             {:>10.2}", mixed / bound);
    println!(
        "    enqueue / (publish rate / 2) {:>10.2}",
        enqueue_rate / (publish_rate / 2.0)
    );
    println!(
        "    enqueue_many / (publish / 2) {:>10.2}  (target ≥ 0.8)",
        batch_rate / (publish_rate / 2.0)
    );
    println!(
        "    sequential enqueue p50 / publish p50 {:>5.2}  (one round trip ≈ 1)",
        sequential_p50.as_secs_f64() / publish_p50.as_secs_f64()
    );
    println!(
        "    delayed enqueue_many / enqueue_many {:>6.2}",
        delayed_batch_rate / batch_rate
    );
    println!(
        "    delayed due→complete / drain {:>10.2}",
        released_rate / drain.rate
    );
    println!(
        "    ordered drain / drain        {:>10.2}  (target ≥ 0.5)",
        ordered_rate / drain.rate
    );
    println!(
        "    handler-start p50 / publish p50 {:>7.1}",
        p50.as_secs_f64() / publish_p50.as_secs_f64()
    );

    // For the SDK benchmarks `make bench` runs next, which report against this run's Rust figures.
    if let Ok(path) = std::env::var("BENCH_JSON") {
        let figures = serde_json::json!({
            "publish_rate": publish_rate,
            "publish_p50_us": micros(publish_p50),
            "rust_drain_rate": drain.rate,
            "rust_worker_cpu_us": drain.cpu_micros_per_task,
            "rust_drain_rate_current_thread": drain_current_thread.rate,
            "rust_worker_cpu_us_current_thread": drain_current_thread.cpu_micros_per_task,
            "rust_enqueue_many_rate": batch_rate,
            "rust_sequential_enqueue_rate": sequential_rate,
            "rust_start_p50_ms": p50.as_secs_f64() * 1e3,
            "tasks": tasks,
        });
        std::fs::write(path, figures.to_string())?;
    }
    Ok(())
}

/// Pipelined publish-with-ack throughput (256 in flight) and sequential publish-with-ack p50.
async fn server_baseline(nats: &async_nats::Client, n: usize) -> Result<(f64, Duration), BoxError> {
    let js = jetstream::new(nats.clone());
    js.create_stream(jetstream::stream::Config {
        name: "BASELINE".into(),
        subjects: vec!["baseline.>".into()],
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from(vec![b'x'; 64]);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (js, payload) = (js.clone(), payload.clone());
            async move {
                js.publish(format!("baseline.{i}"), payload)
                    .await?
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(256)
        .try_collect::<Vec<_>>()
        .await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(2000);
    for i in 0..2000 {
        let t = Instant::now();
        js.publish(format!("baseline.seq.{i}"), payload.clone())
            .await?
            .await?;
        latencies.push(t.elapsed());
    }
    latencies.sort();
    Ok((rate, latencies[latencies.len() / 2]))
}

async fn enqueue_all(client: &Client, n: usize) -> Result<f64, BoxError> {
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move { client.enqueue(Task::new("noop", &i)?).await.map(|_| ()) }
        })
        .buffer_unordered(256)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `enqueue_many` with every task in one call (the engine pipelines them in windows).
async fn enqueue_batch(client: &Client, n: usize) -> Result<f64, BoxError> {
    let tasks = (0..n)
        .map(|i| Task::new("noop", &i))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    for result in client.enqueue_many(tasks).await {
        result?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// One `enqueue().await` after another, no worker running: the p50 latency and the rate.
async fn sequential_enqueue(client: &Client, n: usize) -> Result<(Duration, f64), BoxError> {
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        client.enqueue(Task::new("noop", &i)?).await?;
        latencies.push(t.elapsed());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    Ok((latencies[n / 2], rate))
}

/// `enqueue_many` of tasks due in an hour: what holding items as server schedules costs a producer.
async fn enqueue_delayed_batch(client: &Client, n: usize) -> Result<f64, BoxError> {
    let tasks = (0..n)
        .map(|i| Ok(Task::new("noop", &i)?.with_delay(Duration::from_secs(3600))))
        .collect::<Result<Vec<_>, BoxError>>()?;
    let started = Instant::now();
    for result in client.enqueue_many(tasks).await {
        result?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `n` tasks all due at one moment, with a worker running: tasks completed per second from the
/// due time (the server releasing the schedules, the move into the queue, the runs).
async fn release_delayed(client: &Client, n: usize) -> Result<f64, BoxError> {
    let due = jetjobs::Timestamp::now().add(Duration::from_secs(5));
    let tasks = (0..n)
        .map(|i| Ok(Task::new("due", &i)?.with_run_at(due)))
        .collect::<Result<Vec<_>, BoxError>>()?;
    for result in client.enqueue_many(tasks).await {
        result?;
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let mut mux = Mux::new();
    mux.handle("due", move |_ctx, _task| {
        let _ = done_tx.send(());
        async { Ok(serde_json::Value::Null) }
    })?;
    let (shutdown, worker) = start_worker(client, mux);
    tokio::time::sleep(due.until()).await;
    let started = Instant::now();
    for _ in 0..n {
        done_rx.recv().await.ok_or("the worker stopped")?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    wait_empty(client).await?;
    shutdown.cancel();
    worker.await??;
    Ok(rate)
}

pub(crate) fn noop_mux() -> Result<Mux, BoxError> {
    let mut mux = Mux::new();
    mux.handle("noop", |_ctx, _task| async { Ok(serde_json::Value::Null) })?;
    Ok(mux)
}

fn start_worker(
    client: &Client,
    mux: Mux,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<jetjobs::Result<()>>,
) {
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn({
        let (client, shutdown) = (client.clone(), shutdown.clone());
        async move { client.run(mux, shutdown).await }
    });
    (shutdown, handle)
}

/// Waits until the queue holds no items: every task's final state is stored and its item acked.
async fn wait_empty(client: &Client) -> Result<(), BoxError> {
    let admin = client.admin();
    while admin.queue_info("BENCH").await?.items > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

struct Drain {
    rate: f64,
    cpu_micros_per_task: f64,
}

async fn drain_backlog(client: &Client, n: usize) -> Result<Drain, BoxError> {
    let cpu_before = process_cpu(None);
    let started = Instant::now();
    let (shutdown, worker) = start_worker(client, noop_mux()?);
    wait_empty(client).await?;
    let elapsed = started.elapsed();
    let cpu = process_cpu(None) - cpu_before;
    shutdown.cancel();
    worker.await??;
    Ok(Drain {
        rate: n as f64 / elapsed.as_secs_f64(),
        cpu_micros_per_task: micros(cpu) / n as f64,
    })
}

/// The drain again with the worker on a current-thread runtime of its own thread, as the README
/// recommends for worker processes: a work-stealing runtime's threads wake each other for nearly
/// every message, which costs the worker a large share of its CPU. Counts this thread's CPU only.
fn drain_on_current_thread(url: &str, n: usize, concurrency: usize) -> Result<Drain, BoxError> {
    let runtime = runtime_named("current_thread")?;
    runtime.block_on(async {
        let client = ClientOptions::new()
            .queue(Queue::new("BENCH").max_concurrent(10_000))
            .concurrency(concurrency)
            .connect(url)
            .await?;
        enqueue_all(&client, n).await?;
        let cpu_before = thread_cpu();
        let started = Instant::now();
        let (shutdown, worker) = start_worker(&client, noop_mux()?);
        wait_empty(&client).await?;
        let elapsed = started.elapsed();
        let cpu = thread_cpu() - cpu_before;
        shutdown.cancel();
        worker.await??;
        client.close().await?;
        Ok(Drain {
            rate: n as f64 / elapsed.as_secs_f64(),
            cpu_micros_per_task: micros(cpu) / n as f64,
        })
    })
}

async fn produce_and_consume(client: &Client, n: usize) -> Result<f64, BoxError> {
    let (shutdown, worker) = start_worker(client, noop_mux()?);
    let started = Instant::now();
    enqueue_all(client, n).await?;
    wait_empty(client).await?;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    shutdown.cancel();
    worker.await??;
    Ok(rate)
}

/// One task at a time: from calling `enqueue` to the handler starting.
async fn unloaded_latency(client: &Client, n: usize) -> Result<(Duration, Duration), BoxError> {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<Instant>();
    let mut mux = Mux::new();
    mux.handle("probe", move |_ctx, _task| {
        let _ = started_tx.send(Instant::now());
        async { Ok(serde_json::Value::Null) }
    })?;
    let (shutdown, worker) = start_worker(client, mux);
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let sent = Instant::now();
        client.enqueue(Task::new("probe", &i)?).await?;
        let handled = tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
            .await?
            .ok_or("worker stopped")?;
        latencies.push(handled - sent);
    }
    wait_empty(client).await?;
    shutdown.cancel();
    worker.await??;
    latencies.sort();
    Ok((latencies[n / 2], latencies[n * 99 / 100]))
}

fn peak_rss_kib() -> u64 {
    status_kib(std::process::id(), "VmHWM:").unwrap_or(0)
}
