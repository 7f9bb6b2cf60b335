// SPDX-License-Identifier: Apache-2.0
//! Anyone with access to the streams can publish anything: a raw NATS client (not the jetjobs
//! API) injects garbage into a queue's work stream and into `CHORIA_AJ_TASKS` while good tasks
//! are enqueued in between. The worker, in its own process so that a crash or an abort shows,
//! stays up, completes every good task, removes every bad item from the queue, and counts and
//! logs each one.
//!
//! `GARBAGE_SEED` picks the random burst (printed on failure); `GARBAGE_ROUNDS` repeats the
//! whole run with consecutive seeds (`make fuzz`).

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use common::{ChildProcess, NatsServer, wait_final, wait_for};
use futures::StreamExt as _;
use jetjobs::{CancellationToken, Client, ClientOptions, Mux, Queue, Task, TaskState};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

const QUEUE: &str = "GARBAGE";
const METRICS_SUBJECT: &str = "garbage.metrics";
/// Items of unknown tasks are looked at again for a few seconds before they are discarded, and
/// hundreds arrive at once: generous, and still far below "stuck".
const SETTLE_WITHIN: Duration = Duration::from_secs(90);

/// Not a test: the worker process the test below starts (it returns at once when run without
/// `GARBAGE_CHILD_URL`). Logs go to stderr, where the test reads them.
#[test]
#[ignore = "worker process started by the other test in this file"]
fn garbage_child_worker() {
    let Ok(url) = std::env::var("GARBAGE_CHILD_URL") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("jetjobs=warn"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let client = ClientOptions::new()
            .queue(Queue::bind(QUEUE))
            .concurrency(8)
            .connect(&url)
            .await
            .expect("child connects");
        let handled = Arc::new(AtomicU64::new(0));
        let mut mux = Mux::new();
        let counter = handled.clone();
        mux.handle("good", move |_ctx, task: Task| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { Ok(json!(task.id)) }
        })
        .expect("register");
        // The engine's counters live in this process: it answers the test's questions about them.
        let nats = client.nats().clone();
        let mut questions = nats.subscribe(METRICS_SUBJECT).await.expect("subscribe");
        tokio::spawn(async move {
            while let Some(question) = questions.next().await {
                if let Some(reply) = question.reply {
                    let answer = format!(
                        "{}garbage_handled {}\n",
                        jetjobs::render_metrics(),
                        handled.load(Ordering::SeqCst)
                    );
                    let _ = nats.publish(reply, answer.into()).await;
                }
            }
        });
        client
            .run(mux, CancellationToken::new())
            .await
            .expect("child runs");
    });
}

/// The worker process, with what it logged so far.
struct Worker {
    process: ChildProcess,
    log: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn start(url: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "garbage_child_worker",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("GARBAGE_CHILD_URL", url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("worker process starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().expect("lock").push(line);
            }
        });
        Self {
            process: ChildProcess(child),
            log,
        }
    }

    /// Neither exited nor panicked: a panic in one of its tasks leaves the process up, with an
    /// item that is never settled.
    fn assert_alive(&mut self) {
        let panicked = {
            let log = self.log.lock().expect("lock");
            log.iter()
                .position(|l| l.contains("panicked at"))
                .map(|at| log[at..(at + 5).min(log.len())].join("\n"))
        };
        if let Some(lines) = panicked {
            panic!("the worker panicked:\n{lines}");
        }
        if let Ok(Some(status)) = self.process.0.try_wait() {
            panic!(
                "the worker process exited ({status}); its last log lines:\n{}",
                self.tail()
            );
        }
    }

    fn tail(&self) -> String {
        let log = self.log.lock().expect("lock");
        log[log.len().saturating_sub(40)..].join("\n")
    }

    fn warnings(&self, containing: &str) -> usize {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .filter(|l| l.contains("WARN") && l.contains(containing))
            .count()
    }

    /// A counter of the worker process for this queue, or its handled-task count.
    async fn metric(&self, nats: &async_nats::Client, name: &str) -> Option<u64> {
        let answer = nats
            .request(METRICS_SUBJECT, Bytes::new())
            .await
            .ok()?
            .payload;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let label = format!("queue=\"{QUEUE}\"");
        let value = text
            .lines()
            .filter(|l| l.starts_with(name) && (name == "garbage_handled" || l.contains(&label)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(value as u64)
    }
}

/// What was injected, and what the worker must make of it.
#[derive(Default)]
struct Injected {
    /// Items whose body is not a work item: terminated and counted as corrupt.
    corrupt_items: u64,
    /// Items naming a task that cannot be loaded (no document, an invalid id, or a document that
    /// is not a task): terminated and counted as not found.
    unloadable: u64,
    /// Items of odd but valid task documents that the `good` handler runs.
    runnable: Vec<String>,
    /// Items of odd but valid documents that must end final without running.
    not_run: Vec<String>,
    /// Tasks enqueued through jetjobs in between.
    good: Vec<String>,
}

/// Publishes garbage with plain JetStream publishes.
struct Injector {
    js: jetstream::Context,
    max_payload: usize,
    next: u64,
}

impl Injector {
    async fn connect(url: &str) -> Self {
        let nats = async_nats::connect(url).await.expect("raw client connects");
        let max_payload = nats.server_info().max_payload;
        Self {
            js: jetstream::new(nats),
            max_payload,
            next: 0,
        }
    }

    /// A fresh subject suffix, so that no item replaces another (one item per subject); some
    /// several tokens deep, which the queue's `>` wildcard also takes.
    fn token(&mut self) -> String {
        self.next += 1;
        if self.next.is_multiple_of(5) {
            format!("deep.bad-{}.x", self.next)
        } else {
            format!("bad-{}", self.next)
        }
    }

    async fn publish(&self, subject: String, headers: Option<HeaderMap>, body: Vec<u8>) {
        let sent = match headers {
            Some(headers) => {
                self.js
                    .publish_with_headers(subject.clone(), headers, body.into())
                    .await
            }
            None => self.js.publish(subject.clone(), body.into()).await,
        };
        sent.expect("publish sent")
            .await
            .unwrap_or_else(|e| panic!("the server stores what is published on {subject}: {e}"));
    }

    async fn item(&mut self, headers: Option<HeaderMap>, body: Vec<u8>) {
        let subject = format!("CHORIA_AJ.Q.{QUEUE}.{}", self.token());
        self.publish(subject, headers, body).await;
    }

    /// A document for `id` in the tasks stream, then a work item naming it.
    async fn task(&mut self, id: &str, document: Vec<u8>, headers: Option<HeaderMap>) {
        self.publish(format!("CHORIA_AJ.T.{id}"), None, document)
            .await;
        self.item(headers, item(id)).await;
    }
}

fn item(job: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"kind": 0, "job": job})).expect("encodes")
}

fn odd_headers(rng: &mut StdRng) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let values = [
        "garbage".to_string(),
        String::new(),
        "00-00000000000000000000000000000000-0000000000000000-00".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7".into(),
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra".into(),
        "ünïcødé ✓".into(),
        "x".repeat(4000),
        "@at yesterday".into(),
        "-1".into(),
    ];
    let names = [
        "traceparent",
        "tracestate",
        "AJ-Terminate",
        "AJ-Error",
        "AJ-Handler-Deadline",
        "AJ-Content-Type",
        "X-Garbage",
    ];
    for _ in 0..rng.random_range(1..5) {
        let name = names[rng.random_range(0..names.len())];
        let value = &values[rng.random_range(0..values.len())];
        headers.append(name, value.as_str());
    }
    headers
}

/// A task document as jetjobs writes it, with `changes` applied on top.
fn document(id: &str, changes: serde_json::Value) -> Vec<u8> {
    let mut doc = json!({
        "id": id,
        "type": "good",
        "queue": QUEUE,
        "payload": null,
        "max_tries": 0,
        "state": "new",
        "created": "2024-05-01T10:00:00Z",
        "tries": 0,
    });
    for (k, v) in changes.as_object().expect("an object") {
        doc[k] = v.clone();
    }
    serde_json::to_vec(&doc).expect("encodes")
}

async fn enqueue_good(client: &Client, injected: &mut Injected) {
    let task = client
        .enqueue(Task::new("good", &injected.good.len()).expect("task"))
        .await
        .expect("enqueue");
    injected.good.push(task.id);
}

/// Makes a document for the task id it is given.
type MakeDocument = dyn Fn(&str) -> Vec<u8>;

/// The fixed cases: one of each kind of garbage, each followed by a good task.
async fn inject_cases(
    client: &Client,
    injector: &mut Injector,
    rng: &mut StdRng,
    injected: &mut Injected,
) {
    // Near the limit, leaving room for odd headers of up to 4 × 4000 bytes.
    let huge = injector.max_payload - 20_000;
    let corrupt_items: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\x00\xff\xfe garbage".to_vec(),
        (0..huge).map(|i| (i % 251) as u8).collect(),
        b"{".repeat(huge),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"\"job\"".to_vec(),
        br#"{"kind":"zero","job":"x"}"#.to_vec(),
        br#"{"kind":0,"job":12345}"#.to_vec(),
        br#"{"kind":0,"job":null}"#.to_vec(),
        br#"{"kind":0,"job":""}"#.to_vec(),
        br#"{"kind":0}"#.to_vec(),
        br#"{"kind":1e999,"job":"x"}"#.to_vec(),
        br#"{"kind":0,"job":"\ud800"}"#.to_vec(),
        br#"{"kind":0,"job":"x""#.to_vec(),
    ];
    for body in corrupt_items {
        let headers = rng.random_bool(0.5).then(|| odd_headers(rng));
        injector.item(headers, body).await;
        injected.corrupt_items += 1;
        enqueue_good(client, injected).await;
    }

    let long_id = "a".repeat(huge - 64);
    let unknown_ids = [
        jetjobs::new_id(),
        "../../etc/passwd".to_string(),
        "CHORIA_AJ.T.>".into(),
        "*".into(),
        ">".into(),
        "a b".into(),
        "ünïcødé-✓".into(),
        "x".repeat(300),
        long_id,
        "\u{0}".into(),
    ];
    for id in unknown_ids {
        let headers = rng.random_bool(0.5).then(|| odd_headers(rng));
        injector.item(headers, item(&id)).await;
        injected.unloadable += 1;
        enqueue_good(client, injected).await;
    }
    // Extra fields and odd kinds do not matter; the task still does not exist.
    injector
        .item(
            None,
            serde_json::to_vec(
                &json!({"kind": -7, "job": jetjobs::new_id(), "extra": {"deep": [1, 2]}}),
            )
            .expect("encodes"),
        )
        .await;
    injected.unloadable += 1;

    // Documents that are not tasks, each with an item naming it.
    let corrupt_documents: Vec<Box<MakeDocument>> = vec![
        Box::new(|_| Vec::new()),
        Box::new(|_| b"\x00\x01\x02 not json".to_vec()),
        Box::new(|_| b"null".to_vec()),
        Box::new(|id| document(id, json!({"state": "exploded"}))),
        Box::new(|id| document(id, json!({"state": 7}))),
        Box::new(|id| document(id, json!({"tries": 1e300}))),
        Box::new(|id| document(id, json!({"max_tries": "5"}))),
        Box::new(|id| document(id, json!({"tries": 18_446_744_073_709_551_615u64}))),
        Box::new(|id| document(id, json!({"payload": 12}))),
        Box::new(|id| document(id, json!({"payload": "!!! not base64"}))),
        Box::new(|id| document(id, json!({"created": "yesterday"}))),
        Box::new(|id| document(id, json!({"created": 0}))),
        Box::new(|id| document(id, json!({"deadline": "99999-01-01T00:00:00Z"}))),
        Box::new(|id| document(id, json!({"dependencies": "parent"}))),
        Box::new(|id| document(id, json!({"result": 5}))),
        Box::new(|id| document(id, json!({"type": null}))),
        Box::new(|id| document(id, json!({"id": ["nested"]}))),
        Box::new(|id| document(id, json!({}))[..40].to_vec()),
        Box::new(move |_| b" ".repeat(huge)),
    ];
    for make in corrupt_documents {
        let id = jetjobs::new_id();
        let headers = rng.random_bool(0.5).then(|| odd_headers(rng));
        injector.task(&id, make(&id), headers).await;
        injected.unloadable += 1;
        enqueue_good(client, injected).await;
    }

    // Odd documents that are still tasks: the worker runs them like any other.
    let runnable = [
        json!({"tries": -5, "max_tries": -1}),
        json!({"max_tries": i64::MAX}),
        json!({"tries": i64::MIN}),
        json!({"tries": i64::MAX}),
        json!({"deadline": "9999-12-31T23:59:59.999999999+23:59"}),
        json!({"state": "active", "tried": "2000-01-01T00:00:00Z"}),
        json!({"state": "retry", "last_err": "e".repeat(10_000)}),
        json!({"state": ""}),
        json!({"created": "0001-01-01T00:00:00Z"}),
        json!({"created": "9999-12-31T23:59:59Z"}),
        json!({"payload": "AAEC/w==", "unknown": {"field": [1, 2, 3]}}),
    ];
    for changes in runnable {
        let id = jetjobs::new_id();
        let headers = rng.random_bool(0.5).then(|| odd_headers(rng));
        injector.task(&id, document(&id, changes), headers).await;
        injected.runnable.push(id);
        enqueue_good(client, injected).await;
    }

    // Odd documents that are final already, or must expire without running.
    let not_run = [
        json!({"state": "complete"}),
        json!({"state": "terminated"}),
        json!({"state": "expired"}),
        json!({"deadline": "2000-01-01T00:00:00Z"}),
        json!({"deadline": "0001-01-01T00:00:00-23:59"}),
        json!({"tries": 5, "max_tries": 5}),
        json!({"tries": i64::MAX, "max_tries": 1}),
    ];
    for changes in not_run {
        let id = jetjobs::new_id();
        injector.task(&id, document(&id, changes), None).await;
        injected.not_run.push(id);
        enqueue_good(client, injected).await;
    }
}

/// `count` random items from `rng`: the body is either certainly not a work item, or a work item
/// naming a task that certainly does not exist.
async fn inject_burst(
    client: &Client,
    injector: &mut Injector,
    rng: &mut StdRng,
    injected: &mut Injected,
    count: usize,
) {
    const ALPHABET: &[char] = &[
        'a', 'Z', '0', '9', '_', ':', '-', '.', '*', '>', ' ', '/', '\\', '"', 'ü', '✓', '\u{1}',
    ];
    let random_text = |rng: &mut StdRng, max: usize| -> String {
        (0..rng.random_range(1..max))
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect()
    };
    for n in 0..count {
        let headers = rng.random_bool(0.3).then(|| odd_headers(rng));
        let body = match rng.random_range(0..6) {
            // Random bytes after a byte no JSON document starts with.
            0 => {
                let mut body = vec![b'#'; rng.random_range(1..2048)];
                rng.fill(&mut body[1..]);
                injected.corrupt_items += 1;
                body
            }
            // A work item with its `job` of a wrong type.
            1 => {
                let job = match rng.random_range(0..5) {
                    0 => json!(rng.random::<i64>()),
                    1 => json!(rng.random::<bool>()),
                    2 => json!([random_text(rng, 8)]),
                    3 => json!({"id": random_text(rng, 8)}),
                    _ => json!(rng.random::<f64>()),
                };
                injected.corrupt_items += 1;
                serde_json::to_vec(&json!({"kind": 0, "job": job})).expect("encodes")
            }
            // A valid work item, cut short.
            2 => {
                let whole = item(&jetjobs::new_id());
                injected.corrupt_items += 1;
                whole[..rng.random_range(0..whole.len())].to_vec()
            }
            // Not an object at all. (Not a two-element array: serde reads `[kind, job]` as an
            // item, where asyncjobs would not.)
            3 => {
                injected.corrupt_items += 1;
                let value = match rng.random_range(0..4) {
                    0 => json!(random_text(rng, 16)),
                    1 => json!(rng.random::<i64>()),
                    2 => json!([random_text(rng, 16)]),
                    _ => json!(null),
                };
                serde_json::to_vec(&value).expect("encodes")
            }
            // A work item naming a task that does not exist, maybe not even a valid id.
            _ => {
                injected.unloadable += 1;
                serde_json::to_vec(&json!({
                    "kind": rng.random::<i64>(),
                    "job": random_text(rng, 64),
                }))
                .expect("encodes")
            }
        };
        injector.item(headers, body).await;
        if n % 10 == 0 {
            enqueue_good(client, injected).await;
        }
    }
}

/// Waits for every task of `ids` to be final, failing with those that are not, while the
/// worker stays alive.
async fn all_final(client: &Client, worker: &mut Worker, ids: &[String], what: &str) -> Vec<Task> {
    let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
    loop {
        worker.assert_alive();
        let mut tasks = Vec::new();
        let mut pending = Vec::new();
        for id in ids {
            match client.load_task(id).await {
                Ok(task) if task.state.is_final() => tasks.push(task),
                Ok(task) => pending.push(format!("{id}: {} tries {}", task.state, task.tries)),
                Err(e) => pending.push(format!("{id}: {e}")),
            }
        }
        if pending.is_empty() {
            return tasks;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} {what} tasks are not final: {pending:#?}\nthe worker's last log lines:\n{}",
            pending.len(),
            worker.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_round(seed: u64) {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .queue(Queue::new(QUEUE))
        .connect(&server.url)
        .await
        .expect("producer connects");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut injector = Injector::connect(&server.url).await;
    let mut injected = Injected::default();

    // Real tasks whose documents are then overwritten with garbage, before any worker runs, so
    // that their items can only meet the garbage.
    for garbage in [
        b"\xde\xad\xbe\xef".to_vec(),
        br#"{"id":5,"type":[],"created":false}"#.to_vec(),
        Vec::new(),
    ] {
        let victim = client
            .enqueue(Task::new("good", &"victim").expect("task"))
            .await
            .expect("enqueue");
        injector
            .publish(format!("CHORIA_AJ.T.{}", victim.id), None, garbage)
            .await;
        injected.unloadable += 1;
    }

    let mut worker = Worker::start(&server.url);
    let nats = client.nats().clone();
    // The worker is up once it answers: what was injected before counts from its first pull.
    wait_for(
        "the worker process to start",
        Duration::from_secs(30),
        || {
            let (worker, nats) = (&worker, &nats);
            async move { worker.metric(nats, "garbage_handled").await }
        },
    )
    .await;

    inject_cases(&client, &mut injector, &mut rng, &mut injected).await;
    worker.assert_alive();
    inject_burst(&client, &mut injector, &mut rng, &mut injected, 200).await;
    worker.assert_alive();

    let good = all_final(&client, &mut worker, &injected.good, "good").await;
    for task in &good {
        assert_eq!(task.state, TaskState::Complete, "good task {}", task.id);
    }
    let runnable = all_final(&client, &mut worker, &injected.runnable, "runnable").await;
    for task in &runnable {
        assert_eq!(task.state, TaskState::Complete, "odd task {}", task.id);
    }
    let not_run = all_final(&client, &mut worker, &injected.not_run, "not run").await;
    for task in &not_run {
        assert!(task.result.is_none(), "task {} ran", task.id);
    }

    let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
    loop {
        worker.assert_alive();
        let info = client.default_queue().info().await.expect("queue info");
        if info.items == 0 && info.in_flight == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bad items stayed in the queue: {info:?} (seed {seed})\nthe worker's last log lines:\n{}",
            worker.tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each bad item was terminated once, counted once and logged.
    let corrupt = "choria_asyncjobs_queue_item_corrupt_error_count";
    let not_found = "choria_asyncjobs_queue_task_not_found_error_count";
    let counted = wait_for("the worker's counters", Duration::from_secs(10), || {
        let (worker, nats) = (&worker, &nats);
        async move {
            let counts = (
                worker.metric(nats, corrupt).await?,
                worker.metric(nats, not_found).await?,
                worker.metric(nats, "garbage_handled").await?,
            );
            Some(counts)
        }
    })
    .await;
    let handled = (injected.good.len() + injected.runnable.len()) as u64;
    assert_eq!(
        counted,
        (injected.corrupt_items, injected.unloadable, handled),
        "corrupt items, unloadable items, handled tasks (seed {seed})"
    );
    assert_eq!(
        worker.warnings("corrupt work item") as u64,
        injected.corrupt_items,
        "one warning per corrupt item"
    );
    assert!(
        worker.warnings("terminating work item of") as u64 >= injected.unloadable,
        "one warning per item of a task that cannot be loaded"
    );

    // Not stalled: handler slots and pulls all came back, so a last batch runs at once.
    let mut last = Vec::new();
    for n in 0..20 {
        last.push(
            client
                .enqueue(Task::new("good", &n).expect("task"))
                .await
                .expect("enqueue")
                .id,
        );
    }
    let last = wait_final(&client, &last, Duration::from_secs(30)).await;
    assert!(last.iter().all(|t| t.state == TaskState::Complete));
    worker.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_queue_and_tasks_streams_never_stops_a_worker() {
    let seed = std::env::var("GARBAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6a65_746a_6f62);
    let rounds: u64 = std::env::var("GARBAGE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for round in 0..rounds {
        eprintln!("garbage round {round}: GARBAGE_SEED={}", seed + round);
        run_round(seed + round).await;
    }
}
