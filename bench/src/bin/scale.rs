// SPDX-License-Identifier: Apache-2.0
//! `make bench-scale`: a 1,000,000-task backlog. A producer process enqueues it with
//! `enqueue_many`; then one worker process drains it. Prints the worker's RSS at 0/25/50/75/100 %
//! of the drain and the producer's peak RSS, and checks that every task ended `complete`. Memory
//! must stay flat: nothing in the engine grows with the backlog.
//!
//! Also prints the worker's and the server's CPU per task over the drain.
//!
//! Environment: `SCALE_TASKS` (default 1000000), `SCALE_CONCURRENCY` (default 256),
//! `SCALE_RUNTIME` (the processes' tokio runtime: `multi_thread`, the default, or
//! `current_thread`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use jetjobs::{CancellationToken, Client, ClientOptions, DevServer, Mux, Queue, Task};
use jetjobs_bench::{micros, process_cpu, runtime_named, status_kib};

// As the README's Production section recommends for worker processes (the bindings use it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const QUEUE: &str = "SCALE";
/// Tasks handed to one `enqueue_many` call.
const CHUNK: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn connect(url: &str) -> Result<Client, BoxError> {
    Ok(ClientOptions::new()
        .queue(Queue::new(QUEUE).max_concurrent(100_000))
        .concurrency(env_usize("SCALE_CONCURRENCY", 256))
        .connect(url)
        .await?)
}

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let flavour = std::env::var("SCALE_RUNTIME").unwrap_or_else(|_| "multi_thread".into());
    let runtime = runtime_named(&flavour).map_err(|e| format!("SCALE_RUNTIME: {e}"))?;
    runtime.block_on(async {
        match args.get(1).map(String::as_str) {
            Some("produce") => produce(&args[2], args[3].parse()?).await,
            Some("work") => work(&args[2]).await,
            _ => orchestrate().await,
        }
    })
}

async fn produce(url: &str, n: usize) -> Result<(), BoxError> {
    let client = connect(url).await?;
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let chunk = CHUNK.min(n - done);
        let tasks = (done..done + chunk)
            .map(|i| Task::new("noop", &i))
            .collect::<Result<Vec<_>, _>>()?;
        for result in client.enqueue_many(tasks).await {
            result?;
        }
        done += chunk;
    }
    let elapsed = started.elapsed();
    client.close().await?;
    println!(
        "producer: {n} tasks in {:.1} s ({:.0} tasks/s), peak RSS {:.1} MiB",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        status_kib(std::process::id(), "VmHWM:").unwrap_or(0) as f64 / 1024.0
    );
    Ok(())
}

async fn work(url: &str) -> Result<(), BoxError> {
    let client = connect(url).await?;
    let mut mux = Mux::new();
    mux.handle("noop", |_ctx, _task| async { Ok(serde_json::Value::Null) })?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        term.recv().await;
        stop.cancel();
    });
    // Spawned, as the bindings run it: on a runtime's worker thread, not in `block_on`.
    tokio::spawn(async move { client.run(mux, shutdown).await }).await??;
    Ok(())
}

async fn orchestrate() -> Result<(), BoxError> {
    let n = env_usize("SCALE_TASKS", 1_000_000);
    let server = DevServer::start()?;
    let url = server.url().to_string();
    let exe = std::env::current_exe()?;
    println!("jetjobs bench-scale: {n} tasks, file storage on loopback\n");

    let produced = Command::new(&exe)
        .args(["produce", &url, &n.to_string()])
        .status()?;
    if !produced.success() {
        return Err("the producer failed".into());
    }

    let client = connect(&url).await?;
    let admin = client.admin();
    let started = Instant::now();
    let mut worker = Command::new(&exe)
        .args(["work", &url])
        .stdout(Stdio::null())
        .spawn()?;
    let mut marks = vec![0, 25, 50, 75, 100].into_iter().peekable();
    let mut rss = Vec::new();
    let mut cpu_at_first = (Duration::ZERO, Duration::ZERO, 0);
    while let Some(&mark) = marks.peek() {
        let remaining = admin.queue_info(QUEUE).await?.items as usize;
        let done = n - remaining.min(n);
        // "0 %" is the first completed task: the worker has connected and is running.
        if done > 0 && done * 100 >= mark * n {
            if mark == 0 {
                cpu_at_first = (
                    process_cpu(Some(worker.id())),
                    process_cpu(server.pid()),
                    done,
                );
            }
            rss.push((mark, done, status_kib(worker.id(), "VmRSS:").unwrap_or(0)));
            marks.next();
            continue;
        }
        if let Some(status) = worker.try_wait()? {
            return Err(format!("the worker exited early: {status}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let measured = (n - cpu_at_first.2) as f64;
    let worker_cpu = micros(process_cpu(Some(worker.id())) - cpu_at_first.0) / measured;
    let server_cpu = micros(process_cpu(server.pid()) - cpu_at_first.1) / measured;
    stop(&mut worker)?;
    for (mark, done, kib) in &rss {
        println!(
            "worker RSS at {mark:>3} % ({done:>7} done): {:>7.1} MiB",
            *kib as f64 / 1024.0
        );
    }
    let (first, last) = (rss[0].2 as f64, rss[rss.len() - 1].2 as f64);
    println!(
        "worker RSS growth 0 → 100 %:     {:>+7.1} MiB",
        (last - first) / 1024.0
    );
    println!(
        "drain: {n} tasks in {:.1} s ({:.0} tasks/s)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );

    println!("worker CPU per task:             {worker_cpu:>7.1} µs");
    println!("server CPU per task:             {server_cpu:>7.1} µs");

    let complete = count_complete(&url, n).await?;
    println!("tasks complete: {complete} of {n}");
    if complete != n {
        return Err(format!("{} tasks did not complete", n - complete).into());
    }
    Ok(())
}

fn stop(worker: &mut Child) -> Result<(), BoxError> {
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()?;
    worker.wait()?;
    Ok(())
}

/// Reads every task document once (an ordered consumer) and counts the `complete` ones.
async fn count_complete(url: &str, n: usize) -> Result<usize, BoxError> {
    #[derive(serde::Deserialize)]
    struct State {
        state: String,
    }
    let nats = async_nats::connect(url).await?;
    let js = jetstream::new(nats);
    let stream = js.get_stream("CHORIA_AJ_TASKS").await?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await?;
    let mut messages = consumer.messages().await?.take(n);
    let mut complete = 0;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(30), messages.next())
        .await?
        .transpose()?
    {
        if serde_json::from_slice::<State>(&message.payload)?.state == "complete" {
            complete += 1;
        }
    }
    Ok(complete)
}
