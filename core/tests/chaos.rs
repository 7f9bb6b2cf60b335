// SPDX-License-Identifier: Apache-2.0
//! Chaos: worker processes SIGKILLed again and again, the server SIGKILLed and restarted, a worker
//! cut off from the server by taking its link down (network namespace + veth pair), a worker behind
//! a lossy, slow link, and a slow fleet under a growing backlog.
//!
//! Every scenario checks what a user relies on: every task whose enqueue was acknowledged ends
//! `complete` (none lost), none stays `active` once the faults stop, and a handler runs twice only
//! for a task that was in flight in a process hit by a fault, at most (that process's
//! concurrency × faults) of them.
//!
//! Handlers log "S <id> <unix ms>" when they start and "E <id>" when they end, one file per worker
//! process: files survive SIGKILL and partitions, which messages over NATS would not. A run with
//! no "E" in a killed process was cut short; its task must have run again elsewhere.
//!
//! `CHAOS_PROFILE=long` (`make chaos`) runs more tasks and more faults. The namespace scenarios
//! need root and iproute2 and fail, never skip, without them. Loss and latency use `tc netem` when
//! the kernel has it, else a fault-injecting TCP proxy on loopback (see [`FaultProxy`]).

mod common;

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{ChildProcess, NatsServer};
use jetjobs::{CancellationToken, Client, ClientOptions, Mux, Queue, RetryPolicy, Task, TaskState};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One scenario at a time: they start processes and time faults, and two cores are not enough to
/// keep timings meaningful with several running at once.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The ack wait: how long an item stays with a worker that went silent before it is redelivered.
const ACK_WAIT: Duration = Duration::from_secs(2);
/// Longest wait for every acknowledged task to complete once the faults stopped.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

fn long_profile() -> bool {
    std::env::var("CHAOS_PROFILE").is_ok_and(|p| p == "long")
}

/// `short` by default, `long` with `CHAOS_PROFILE=long`.
fn pick<T>(short: T, long: T) -> T {
    if long_profile() { long } else { short }
}

fn retry_policy() -> RetryPolicy {
    // The default policy waits minutes between tries; a task must be able to finish in the test.
    RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(1), 0.0)
        .expect("policy")
}

/// Not a test: the body of the worker processes the scenarios start (returns at once when run
/// without `JJ_CHAOS_URL`). The handler sleeps the task's `ms`, logging start and end.
#[test]
#[ignore = "worker process started by the other tests in this file"]
fn chaos_worker() {
    let Ok(url) = std::env::var("JJ_CHAOS_URL") else {
        return;
    };
    let queue = std::env::var("JJ_CHAOS_QUEUE").expect("queue");
    let concurrency: usize = std::env::var("JJ_CHAOS_CONCURRENCY")
        .expect("concurrency")
        .parse()
        .expect("number");
    let log_path = PathBuf::from(std::env::var("JJ_CHAOS_LOG").expect("log"));
    let label = log_path
        .file_stem()
        .expect("log file name")
        .to_string_lossy()
        .to_string();
    let log = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("run log opens"),
    ));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let client = ClientOptions::new()
            .queue(Queue::bind(queue))
            .concurrency(concurrency)
            .retry_policy(retry_policy())
            .connect(&url)
            .await
            .expect("worker connects");
        let mut mux = Mux::new();
        mux.handle("chaos", move |_ctx, task: Task| {
            let (log, label) = (log.clone(), label.clone());
            async move {
                let body: serde_json::Value = task.payload_json()?;
                let ms = body["ms"].as_u64().unwrap_or(20);
                write_line(&log, &format!("S {} {}\n", task.id, unix_ms()));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                write_line(&log, &format!("E {}\n", task.id));
                Ok(json!(label))
            }
        })
        .expect("register");
        client
            .run(mux, CancellationToken::new())
            .await
            .expect("worker runs");
    });
}

fn unix_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_millis()).expect("ms fit")
}

fn write_line(log: &std::sync::Mutex<std::fs::File>, line: &str) {
    use std::io::Write as _;
    // One write(2) per line with O_APPEND: a SIGKILL leaves whole lines only.
    let mut file = log.lock().expect("log lock");
    file.write_all(line.as_bytes()).expect("run log write");
}

/// Where the worker processes of one scenario log their runs, and how to start them.
struct Fleet {
    dir: tempfile::TempDir,
    queue: String,
    concurrency: usize,
    started: usize,
}

impl Fleet {
    fn new(queue: &str, concurrency: usize) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            queue: queue.into(),
            concurrency,
            started: 0,
        }
    }

    /// A worker process connected to `url`, run inside network namespace `netns` if given; its
    /// label (the name of its run log) is returned with it.
    fn start(&mut self, url: &str, netns: Option<&str>) -> (String, ChildProcess) {
        self.started += 1;
        let label = format!("w{}", self.started);
        let exe = std::env::current_exe().expect("test binary");
        let mut command = match netns {
            // `ip netns exec` execs in place, so the child's pid is the worker's and SIGKILL
            // reaches it.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        command
            .args([
                "chaos_worker",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("JJ_CHAOS_URL", url)
            .env("JJ_CHAOS_QUEUE", &self.queue)
            .env("JJ_CHAOS_CONCURRENCY", self.concurrency.to_string())
            .env("JJ_CHAOS_LOG", self.log_path(&label))
            .stdout(Stdio::null());
        let child = command.spawn().expect("worker process starts");
        (label, ChildProcess(child))
    }

    fn log_path(&self, label: &str) -> PathBuf {
        self.dir.path().join(format!("{label}.log"))
    }

    fn runs(&self) -> Runs {
        Runs::read(self.dir.path())
    }
}

/// What the run logs say.
#[derive(Default)]
struct Runs {
    /// Every worker that started a run of the task, once per run.
    by_task: HashMap<String, Vec<String>>,
    /// Per worker: runs started and not ended (in flight when the process died or still running).
    unfinished: HashMap<String, HashSet<String>>,
    /// Every run start: worker and `unix_ms` time.
    starts: Vec<(String, u64)>,
}

impl Runs {
    fn read(dir: &Path) -> Self {
        let mut runs = Self::default();
        for entry in std::fs::read_dir(dir).expect("log dir") {
            let path = entry.expect("log entry").path();
            let label = path
                .file_stem()
                .expect("name")
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&path).expect("run log");
            let open = runs.unfinished.entry(label.clone()).or_default();
            for line in text.lines() {
                match line.split_once(' ') {
                    Some(("S", rest)) => {
                        let (id, at) = rest.split_once(' ').expect("start line has a time");
                        runs.starts
                            .push((label.clone(), at.parse().expect("start time")));
                        runs.by_task
                            .entry(id.to_string())
                            .or_default()
                            .push(label.clone());
                        open.insert(id.to_string());
                    }
                    Some(("E", id)) => {
                        open.remove(id);
                    }
                    _ => panic!("bad run log line {line:?} in {}", path.display()),
                }
            }
        }
        runs
    }

    /// How long after `at` (a `unix_ms` time) the first run started, on `label` or any worker.
    fn first_start_after(&self, label: Option<&str>, at: u64) -> Option<Duration> {
        self.starts
            .iter()
            .filter(|(l, t)| *t >= at && label.is_none_or(|want| want == l))
            .map(|(_, t)| Duration::from_millis(t - at))
            .min()
    }

    fn started_by(&self, label: &str) -> usize {
        self.by_task
            .values()
            .map(|ls| ls.iter().filter(|l| *l == label).count())
            .sum()
    }
}

/// Enqueues `total` tasks in batches, tolerating errors: only tasks whose enqueue returned `Ok`
/// are acknowledged and counted.
struct Producer {
    handle: tokio::task::JoinHandle<Vec<String>>,
    acked: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

impl Producer {
    fn start(client: Client, total: usize, batch: usize, pace: Duration, ms: Range<u64>) -> Self {
        let acked = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (a, f) = (acked.clone(), failed.clone());
        let handle = tokio::spawn(async move {
            let mut ids = Vec::with_capacity(total);
            let deadline = Instant::now() + Duration::from_secs(300);
            for first in (0..total).step_by(batch) {
                assert!(Instant::now() < deadline, "the producer took over 300s");
                let tasks: Vec<Task> = (first..total.min(first + batch))
                    .map(|n| {
                        let body = json!({"n": n, "ms": rand::random_range(ms.clone())});
                        Task::new("chaos", &body).expect("task")
                    })
                    .collect();
                let count = tasks.len();
                match tokio::time::timeout(Duration::from_secs(5), client.enqueue_many(tasks)).await
                {
                    Ok(results) => {
                        for result in results {
                            match result {
                                Ok(task) => {
                                    ids.push(task.id);
                                    a.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(_) => {
                                    f.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    Err(_) => {
                        f.fetch_add(count, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(pace).await;
            }
            ids
        });
        Self {
            handle,
            acked,
            failed,
        }
    }

    async fn wait_acked(&self, n: usize) {
        let acked = self.acked.clone();
        common::wait_for(
            &format!("{n} acknowledged enqueues"),
            Duration::from_secs(60),
            || {
                let acked = acked.clone();
                async move { (acked.load(Ordering::Relaxed) >= n).then_some(()) }
            },
        )
        .await;
    }

    async fn finish(self) -> (Vec<String>, usize) {
        let ids = tokio::time::timeout(Duration::from_secs(320), self.handle)
            .await
            .expect("producer finishes")
            .expect("producer runs");
        (ids, self.failed.load(Ordering::Relaxed))
    }
}

/// A client of the scenario's queue, which it creates with a short ack wait.
async fn producer_client(url: &str, queue: &str) -> Client {
    ClientOptions::new()
        .queue(
            Queue::new(queue)
                .max_run_time(ACK_WAIT)
                .max_concurrent(1000),
        )
        .retry_policy(retry_policy())
        .connect(url)
        .await
        .expect("producer connects")
}

/// How long after `at` (a [`unix_ms`] time) the first run started on `label` (or any worker);
/// waits for it, failing the test after a minute.
async fn resumed(fleet: &Fleet, label: Option<&str>, at: u64, what: &str) -> Duration {
    common::wait_for(what, Duration::from_secs(60), || async {
        fleet.runs().first_start_after(label, at)
    })
    .await
}

/// What a scenario checks at the end.
struct Expect<'a> {
    scenario: &'a str,
    /// Workers hit by a fault: only their tasks may run twice.
    faulted: HashSet<String>,
    /// Most tasks that may run twice.
    duplicate_bound: usize,
    faults: usize,
    /// Per fault: how long after it ended the affected workers ran tasks again.
    recovery: Vec<Duration>,
    started: Instant,
}

/// Waits until every acknowledged task is complete and the queue is empty, then checks runs:
/// none lost, none stuck active, duplicates only where a fault hit. Prints the one-line summary.
async fn settle_and_check(
    client: &Client,
    fleet: &Fleet,
    acked: &[String],
    failed_enqueues: usize,
    expect: Expect<'_>,
) {
    let name = expect.scenario;
    let settling = Instant::now();
    let deadline = settling + SETTLE_TIMEOUT;
    let mut pending: HashSet<&str> = acked.iter().map(String::as_str).collect();
    let mut last: HashMap<String, TaskState> = HashMap::new();
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{name}: {} acknowledged tasks not complete after {SETTLE_TIMEOUT:?}, e.g. {:?}",
            pending.len(),
            pending
                .iter()
                .take(5)
                .map(|id| (id, last.get(*id)))
                .collect::<Vec<_>>()
        );
        if let Ok(Ok(tasks)) = tokio::time::timeout(
            Duration::from_secs(10),
            client.admin().tasks(acked.len() + 100_000),
        )
        .await
        {
            for task in tasks {
                if pending.contains(task.id.as_str()) {
                    assert!(
                        !task.state.is_final() || task.state == TaskState::Complete,
                        "{name}: task {} ended {:?}: {}",
                        task.id,
                        task.state,
                        task.last_err
                    );
                    if task.state == TaskState::Complete {
                        pending.remove(task.id.as_str());
                    }
                }
                last.insert(task.id, task.state);
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain = settling.elapsed();

    // Tasks whose enqueue failed may still be running; none may stay active for good.
    common::wait_for(
        "no task to be active and the queue to be empty",
        Duration::from_secs(60),
        || async {
            let tasks = client.admin().tasks(acked.len() + 100_000).await.ok()?;
            if tasks.iter().any(|t| t.state == TaskState::Active) {
                return None;
            }
            let info = client
                .admin()
                .queue_info(client.queue().name.as_str())
                .await
                .ok()?;
            (info.items == 0).then_some(())
        },
    )
    .await;

    let runs = fleet.runs();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !runs.by_task.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{name}: {} tasks complete without a logged run",
        lost.len()
    );
    let duplicates: Vec<(&String, &Vec<String>)> = runs
        .by_task
        .iter()
        .filter(|(_, workers)| workers.len() > 1)
        .collect();
    for (id, workers) in &duplicates {
        assert!(
            workers.iter().any(|w| expect.faulted.contains(w)),
            "{name}: task {id} ran {} times on {workers:?}, none of them hit by a fault ({:?})",
            workers.len(),
            expect.faulted
        );
    }
    // A run cut short by a kill cannot have completed its task: another run did.
    let mut cut_short = 0;
    for worker in &expect.faulted {
        for id in runs.unfinished.get(worker).into_iter().flatten() {
            cut_short += 1;
            assert!(
                runs.by_task[id].len() > 1,
                "{name}: task {id} was cut short on {worker} and never ran again"
            );
        }
    }
    let recovery: Vec<String> = expect
        .recovery
        .iter()
        .map(|d| format!("{:.2}s", d.as_secs_f64()))
        .collect();
    eprintln!(
        "chaos {name}: acknowledged={} failed_enqueues={failed_enqueues} completed={} lost=0 \
         stuck_active=0 duplicates={} (bound {}) runs_cut_short={cut_short} faults={} \
         recovery=[{}] drain={:.1}s wall={:.1}s",
        acked.len(),
        acked.len(),
        duplicates.len(),
        expect.duplicate_bound,
        expect.faults,
        recovery.join(" "),
        drain.as_secs_f64(),
        expect.started.elapsed().as_secs_f64(),
    );
    assert!(
        duplicates.len() <= expect.duplicate_bound,
        "{name}: {} tasks ran more than once, at most {} were in flight at the faults",
        duplicates.len(),
        expect.duplicate_bound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_worker_sigkill_loses_no_task() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let server = NatsServer::start();
    let client = producer_client(&server.url, "CHAOS_KILL").await;
    let concurrency = 4;
    let mut fleet = Fleet::new("CHAOS_KILL", concurrency);
    let mut workers: Vec<(String, ChildProcess)> =
        (0..3).map(|_| fleet.start(&server.url, None)).collect();
    let rounds = pick(4, 15);
    let total = pick(500, 2500);
    // ~100 tasks/s in, about what 12 handlers of 50-150 ms take: every worker is busy when it
    // is killed, and the producer outlasts the kills.
    let producer = Producer::start(
        client.clone(),
        total,
        10,
        Duration::from_millis(100),
        50..150,
    );
    producer.wait_acked(50).await;

    let mut faulted = HashSet::new();
    let mut replacements = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let victim = round % workers.len();
        let (label, mut child) = workers.remove(victim);
        child.kill();
        let killed_at = unix_ms();
        faulted.insert(label);
        let replacement = fleet.start(&server.url, None);
        replacements.push((replacement.0.clone(), killed_at));
        workers.insert(victim, replacement);
    }
    let (acked, failed) = producer.finish().await;
    assert_eq!(failed, 0, "the server stayed up: every enqueue succeeds");
    let mut recovery = Vec::new();
    for (label, killed_at) in &replacements {
        let what = format!("replacement {label} to run a task");
        recovery.push(resumed(&fleet, Some(label), *killed_at, &what).await);
    }
    settle_and_check(
        &client,
        &fleet,
        &acked,
        failed,
        Expect {
            scenario: "worker-sigkill",
            faulted,
            duplicate_bound: concurrency * rounds,
            faults: rounds,
            recovery,
            started,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sigkill_and_restart_loses_no_acknowledged_task() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut server = NatsServer::start();
    let client = producer_client(&server.url, "CHAOS_CRASH").await;
    let concurrency = 4;
    let mut fleet = Fleet::new("CHAOS_CRASH", concurrency);
    let workers: Vec<(String, ChildProcess)> =
        (0..2).map(|_| fleet.start(&server.url, None)).collect();
    let crashes = pick(1, 4);
    let total = pick(400, 2000);
    let producer = Producer::start(client.clone(), total, 5, Duration::from_millis(50), 20..50);
    producer.wait_acked(50).await;

    let mut recovery = Vec::new();
    for _ in 0..crashes {
        tokio::task::block_in_place(|| server.kill());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        tokio::task::block_in_place(|| server.restart());
        let back = unix_ms();
        let what = "the workers to run tasks after the restart";
        recovery.push(resumed(&fleet, None, back, what).await);
        // Let the fleet work a while before the next crash.
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let (acked, failed) = producer.finish().await;
    let faulted = workers.iter().map(|(l, _)| l.clone()).collect();
    settle_and_check(
        &client,
        &fleet,
        &acked,
        failed,
        Expect {
            scenario: "server-sigkill",
            faulted,
            duplicate_bound: concurrency * workers.len() * crashes,
            faults: crashes,
            recovery,
            started,
        },
    )
    .await;
    drop(workers);
}

/// A network namespace joined to this one by a veth pair with a /30 of its own; removed on drop.
struct Netns {
    name: String,
    host_if: String,
    ns_if: String,
    host_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    fn create() -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        // Interface names are at most 15 bytes.
        let tag = format!("{}x{}", pid % 10_000_000, seq % 10);
        let octet2 = 200 + (pid % 50) as u8;
        let octet3 = ((pid / 50) % 256) as u8;
        let octet4 = ((seq % 64) * 4) as u8;
        let host_ip = Ipv4Addr::new(10, octet2, octet3, octet4 + 1);
        let ns_ip = Ipv4Addr::new(10, octet2, octet3, octet4 + 2);
        let ns = Self {
            name: format!("jjchaos{tag}"),
            host_if: format!("jjh{tag}"),
            ns_if: format!("jjn{tag}"),
            host_ip,
        };
        let (host_cidr, ns_cidr) = (format!("{host_ip}/30"), format!("{ns_ip}/30"));
        let steps: [&[&str]; 8] = [
            &["netns", "add", &ns.name],
            &[
                "link",
                "add",
                &ns.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.ns_if,
            ],
            &["link", "set", &ns.ns_if, "netns", &ns.name],
            &["addr", "add", &host_cidr, "dev", &ns.host_if],
            &["link", "set", &ns.host_if, "up"],
            &["-n", &ns.name, "addr", "add", &ns_cidr, "dev", &ns.ns_if],
            &["-n", &ns.name, "link", "set", &ns.ns_if, "up"],
            &["-n", &ns.name, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = ip(step) {
                panic!(
                    "chaos: cannot set up network namespace {} (these tests need root and \
                     iproute2, and never skip): {e}",
                    ns.name
                );
            }
        }
        ns
    }

    /// Takes the namespace's end of the link down or up: its side is cut off, while the host's
    /// address stays reachable from the host.
    fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.name, "link", "set", &self.ns_if, state]).expect("link state changes");
    }

    /// Whether `tc netem` works here: many minimal kernels lack sch_netem.
    fn netem(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "tc", "qdisc", "add", "dev"])
            .arg(&self.ns_if)
            .args(["root", "netem"])
            .args(args)
            .output()
            .map_err(|e| format!("running tc: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end removes the pair; the namespace goes once its processes are gone.
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A nats-server listening only on `addr` (the host end of a veth pair), killed and its store
/// removed on drop.
struct NetServer {
    _child: ChildProcess,
    url: String,
    _store: tempfile::TempDir,
}

impl NetServer {
    fn start(addr: Ipv4Addr) -> Self {
        let binary = std::env::var_os("NATS_SERVER_BIN")
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/nats-server")
            });
        let port = std::net::TcpListener::bind((addr, 0))
            .and_then(|l| l.local_addr())
            .expect("free port on the veth address")
            .port();
        let store = tempfile::tempdir().expect("store dir");
        let log = store.path().join("server.log");
        let child = Command::new(&binary)
            .args([
                "-js",
                "-a",
                &addr.to_string(),
                "-p",
                &port.to_string(),
                "-sd",
            ])
            .arg(store.path())
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (run `make setup`): {e}", binary.display()));
        let child = ChildProcess(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Server is ready")
        {
            assert!(
                Instant::now() < deadline,
                "nats-server did not become ready"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            _child: child,
            url: format!("nats://{addr}:{port}"),
            _store: store,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_worker_recovers_and_its_tasks_are_redelivered() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let netns = Netns::create();
    let server = NetServer::start(netns.host_ip);
    let client = producer_client(&server.url, "CHAOS_PART").await;
    let concurrency = 4;
    let mut fleet = Fleet::new("CHAOS_PART", concurrency);
    let (outside, _outside_child) = fleet.start(&server.url, None);
    let (isolated, _isolated_child) = fleet.start(&server.url, Some(&netns.name));
    let partitions = pick(1, 3);
    // Longer than the ack wait, so the isolated worker's items are redelivered meanwhile.
    let outage = pick(Duration::from_secs(4), Duration::from_secs(6));
    let total = pick(300, 1200);
    // Handlers of 50-150 ms keep the isolated worker busy when its link goes down.
    let producer = Producer::start(
        client.clone(),
        total,
        3,
        Duration::from_millis(100),
        50..150,
    );

    let mut recovery = Vec::new();
    for _ in 0..partitions {
        // Cut the link just as a handler starts, so the worker has work in flight.
        let what = "the namespaced worker to take tasks";
        resumed(&fleet, Some(&isolated), unix_ms(), what).await;
        netns.set_link(false);
        let cut = unix_ms();
        tokio::time::sleep(outage).await;
        let healed = unix_ms();
        netns.set_link(true);
        // Items already received may start just after the cut; nothing new may arrive.
        let leaked = fleet
            .runs()
            .starts
            .iter()
            .filter(|(l, t)| *l == isolated && *t > cut + 500 && *t < healed)
            .count();
        assert_eq!(leaked, 0, "the partitioned worker received no new work");
        let what = "the namespaced worker to take tasks again after the partition";
        recovery.push(resumed(&fleet, Some(&isolated), healed, what).await);
    }
    let (acked, failed) = producer.finish().await;
    assert_eq!(failed, 0, "the producer's link stayed up");
    let runs = fleet.runs();
    let redelivered = runs
        .by_task
        .values()
        .filter(|ws| ws.contains(&isolated) && ws.contains(&outside))
        .count();
    eprintln!("chaos partition: {redelivered} tasks ran on the isolated worker and the other one");
    assert!(
        redelivered >= 1,
        "the isolated worker's in-flight tasks were redelivered to the other worker"
    );
    settle_and_check(
        &client,
        &fleet,
        &acked,
        failed,
        Expect {
            scenario: "partition",
            faulted: HashSet::from([isolated]),
            duplicate_bound: concurrency * partitions,
            faults: partitions,
            recovery,
            started,
        },
    )
    .await;
    drop(server);
}

/// A TCP proxy on loopback between a worker and the server that adds latency to every chunk,
/// stalls some chunks as a lost packet's retransmission would (loss on TCP shows up as delay),
/// and drops every connection on [`drop_connections`](Self::drop_connections).
struct FaultProxy {
    addr: SocketAddr,
    shutdown: CancellationToken,
    generation: Arc<std::sync::Mutex<CancellationToken>>,
    stalls: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct Faults {
    latency: Range<u64>,
    stall_probability: f64,
    stall: Range<u64>,
}

impl FaultProxy {
    async fn start(upstream: SocketAddr, faults: Faults) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let shutdown = CancellationToken::new();
        let generation = Arc::new(std::sync::Mutex::new(shutdown.child_token()));
        let stalls = Arc::new(AtomicUsize::new(0));
        let (stop, current, stall_count) = (shutdown.clone(), generation.clone(), stalls.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((downstream, _)) = accepted else {
                    continue;
                };
                let cut = current.lock().expect("generation").clone();
                let (faults, stalls) = (faults.clone(), stall_count.clone());
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = downstream.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (dr, dw) = downstream.into_split();
                    let (ur, uw) = upstream.into_split();
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = pump(dr, uw, faults.clone(), stalls.clone()) => {}
                        _ = pump(ur, dw, faults, stalls) => {}
                    }
                });
            }
        });
        Self {
            addr,
            shutdown,
            generation,
            stalls,
        }
    }

    fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    fn drop_connections(&self) {
        let mut current = self.generation.lock().expect("generation");
        current.cancel();
        *current = self.shutdown.child_token();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Copies `from` to `to`, each chunk due `latency` after it was read (plus a stall now and then).
/// Chunks keep their order, so a stall holds back the ones behind it, as TCP's head-of-line
/// blocking after a lost segment does; latency does not cap throughput.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Faults,
    stalls: Arc<AtomicUsize>,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut delay = rand::random_range(faults.latency.clone());
            if rand::random_bool(faults.stall_probability) {
                delay += rand::random_range(faults.stall.clone());
                stalls.fetch_add(1, Ordering::Relaxed);
            }
            let due = tokio::time::Instant::now() + Duration::from_millis(delay);
            if tx.send((due, buf[..n].to_vec())).is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut not_before = tokio::time::Instant::now();
        while let Some((due, chunk)) = rx.recv().await {
            not_before = not_before.max(due);
            tokio::time::sleep_until(not_before).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    // The writer drains what was read before the reader saw the end, then stops.
    let _ = tokio::join!(reader, writer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_behind_a_slow_lossy_link_loses_no_task() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let concurrency = 4;
    let total = pick(300, 800);
    let drops = pick(3, 10);
    let mut fleet = Fleet::new("CHAOS_LOSSY", concurrency);
    // netem shapes the namespace's veth when the kernel has it; otherwise the proxy stands in.
    let netns = Netns::create();
    let netem = netns.netem(&["delay", "30ms", "10ms", "loss", "3%"]);
    let mut _servers = (None, None);
    let (server_url, lossy_url, proxy) = match &netem {
        Ok(()) => {
            let server = NetServer::start(netns.host_ip);
            let url = server.url.clone();
            _servers.0 = Some(server);
            (url.clone(), url, None)
        }
        Err(e) => {
            eprintln!("chaos lossy-link: tc netem unavailable ({e}); using the fault proxy");
            let server = NatsServer::start();
            let upstream: SocketAddr = server
                .url
                .trim_start_matches("nats://")
                .parse()
                .expect("server address");
            let proxy = FaultProxy::start(
                upstream,
                Faults {
                    latency: 5..30,
                    stall_probability: 0.01,
                    stall: 100..400,
                },
            )
            .await;
            let (url, lossy) = (server.url.clone(), proxy.url());
            _servers.1 = Some(server);
            (url, lossy, Some(proxy))
        }
    };
    let client = producer_client(&server_url, "CHAOS_LOSSY").await;
    // Both workers reach the server only through the faulty link.
    let workers: Vec<(String, ChildProcess)> = (0..2)
        .map(|_| match &netem {
            Ok(()) => fleet.start(&lossy_url, Some(&netns.name)),
            Err(_) => fleet.start(&lossy_url, None),
        })
        .collect();
    let producer = Producer::start(client.clone(), total, 5, Duration::from_millis(100), 20..50);
    producer.wait_acked(20).await;

    let mut dropped_at = Vec::new();
    if let Some(proxy) = &proxy {
        for _ in 0..drops {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            proxy.drop_connections();
            dropped_at.push(unix_ms());
        }
    }
    let (acked, failed) = producer.finish().await;
    assert_eq!(failed, 0, "the producer's link is clean");
    let mut recovery = Vec::new();
    for at in &dropped_at {
        let what = "the workers to run tasks after their connections dropped";
        recovery.push(resumed(&fleet, None, *at, what).await);
    }
    let faults = dropped_at.len();
    let runs = fleet.runs();
    let per_worker: Vec<usize> = workers.iter().map(|(l, _)| runs.started_by(l)).collect();
    eprintln!(
        "chaos lossy-link: injected with {}; {} stalled chunks, {faults} dropped connections; \
         runs per worker {per_worker:?}",
        if netem.is_ok() {
            "tc netem (delay 30ms±10ms, loss 3%)"
        } else {
            "the fault proxy (5-30 ms per chunk, 1% of chunks stalled 100-400 ms)"
        },
        proxy
            .as_ref()
            .map_or(0, |p| p.stalls.load(Ordering::Relaxed)),
    );
    assert!(
        per_worker.iter().all(|n| *n > 0),
        "every worker behind the lossy link did work: {per_worker:?}"
    );
    settle_and_check(
        &client,
        &fleet,
        &acked,
        failed,
        Expect {
            scenario: "lossy-link",
            faulted: workers.iter().map(|(l, _)| l.clone()).collect(),
            // A dropped connection can cost each in-flight run; so can the lossy link itself, once,
            // should loss and latency ever push a run past the ack wait.
            duplicate_bound: concurrency * workers.len() * (faults + 1),
            faults,
            recovery,
            started,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_fleet_under_a_growing_backlog_drains_without_duplicates() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let server = NatsServer::start();
    let client = producer_client(&server.url, "CHAOS_SLOW").await;
    let concurrency = 2;
    let mut fleet = Fleet::new("CHAOS_SLOW", concurrency);
    let _workers: Vec<(String, ChildProcess)> =
        (0..3).map(|_| fleet.start(&server.url, None)).collect();
    let total = pick(800, 6000);
    // ~400 tasks/s in, at most 6 / 35 ms ≈ 170/s out: the backlog grows while producing.
    let producer = Producer::start(client.clone(), total, 20, Duration::from_millis(50), 20..50);
    let mut backlog = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !producer.handle.is_finished() {
        assert!(Instant::now() < deadline, "the producer took over 120s");
        if let Ok(info) = client.admin().queue_info("CHAOS_SLOW").await {
            backlog.push(info.items);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (acked, failed) = producer.finish().await;
    assert_eq!(failed, 0);
    eprintln!("chaos slow-fleet: backlog samples {backlog:?}");
    let (first, peak) = (
        backlog.first().copied().unwrap_or(0),
        backlog.iter().copied().max().unwrap_or(0),
    );
    assert!(
        backlog.len() >= 3 && peak > first && peak >= (total / 8) as u64,
        "the backlog grew while producing: {backlog:?}"
    );
    settle_and_check(
        &client,
        &fleet,
        &acked,
        failed,
        Expect {
            scenario: "slow-fleet",
            faulted: HashSet::new(),
            // No fault: waiting in the backlog must not cost a second run.
            duplicate_bound: 0,
            faults: 0,
            recovery: Vec::new(),
            started,
        },
    )
    .await;
}
