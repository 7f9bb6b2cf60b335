// SPDX-License-Identifier: Apache-2.0
//! The keyed job pool against a real server. The fleet test runs each node as its own process:
//! 300 jobs on 3 nodes, a 4th joins, one is SIGKILLed, one closes, then the pool shuts down;
//! every start and stop is recorded with the job's generation, and no key ever has two owners.
//! The smaller tests cover the API's answers and errors, notifications, tickers and schedules.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{ChildProcess, NatsServer, wait_for};
use futures::StreamExt as _;
use futures::future::BoxFuture;
use jetjobs::{
    ClientOptions, ErrorKind, JobHandler, JobPlan, JobProducer, PoolJob, PoolNode, PoolOptions,
};
use serde::{Deserialize, Serialize};

const TTL: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_millis(500);
const TICK: Duration = Duration::from_millis(500);

fn options() -> PoolOptions {
    PoolOptions::new()
        .worker_ttl(TTL)
        .grace(GRACE)
        .dispatch_timeout(Duration::from_secs(20))
        .shutdown_timeout(Duration::from_secs(20))
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// What a node process reports, one message per event.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Event {
    /// `ready`, `start`, `stop`, `tick`, `closed` or `shut`.
    what: String,
    node: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    generation: u64,
    #[serde(default)]
    worker: String,
    at_ns: i64,
}

/// Reports starts and stops, flushed before returning so a SIGKILL loses none it acknowledged.
struct Recorder {
    nats: async_nats::Client,
    node: String,
}

impl Recorder {
    fn report(
        &self,
        what: &str,
        key: &str,
        generation: u64,
        worker: &str,
    ) -> BoxFuture<'static, jetjobs::Result<()>> {
        let nats = self.nats.clone();
        let event = Event {
            what: what.into(),
            node: self.node.clone(),
            key: key.into(),
            generation,
            worker: worker.into(),
            at_ns: now_ns(),
        };
        Box::pin(async move {
            let body = serde_json::to_vec(&event).unwrap_or_default();
            let _ = nats.publish("pool.events", body.into()).await;
            let _ = nats.flush().await;
            Ok(())
        })
    }
}

impl JobHandler for Recorder {
    fn start(&self, job: PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.report("start", &job.key, job.generation, &job.worker)
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.report("stop", &key, 0, "")
    }
}

/// One pool node process: one worker, a share of the ticker `beat`; closes on request and exits
/// once the pool shuts down.
#[test]
#[ignore = "run by fleet_moves_jobs_without_two_owners as a child process"]
fn child_pool_node() {
    let (Ok(url), Ok(name)) = (
        std::env::var("JETJOBS_CHILD_URL"),
        std::env::var("JETJOBS_CHILD_NAME"),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async move {
        let client = ClientOptions::new()
            .connect(&url)
            .await
            .expect("child connects");
        let nats = client.nats().clone();
        let mut control = nats
            .subscribe(format!("pool.control.{name}"))
            .await
            .expect("control subscription");
        let node = PoolNode::join(&client, "fleet", options())
            .await
            .expect("joins");
        node.add_worker(Recorder {
            nats: nats.clone(),
            node: name.clone(),
        })
        .await
        .expect("worker added");
        let ticker = node.new_ticker("beat", TICK).await.expect("ticker");
        let report = |what: &str| {
            let body = serde_json::to_vec(&Event {
                what: what.into(),
                node: name.clone(),
                key: String::new(),
                generation: 0,
                worker: String::new(),
                at_ns: now_ns(),
            })
            .unwrap_or_default();
            let nats = nats.clone();
            async move {
                let _ = nats.publish("pool.events", body.into()).await;
                let _ = nats.flush().await;
            }
        };
        report("ready").await;
        loop {
            tokio::select! {
                tick = ticker.next() => match tick {
                    Some(_) => report("tick").await,
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                _ = control.next() => {
                    node.close().await.expect("close");
                    report("closed").await;
                    return;
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if node.is_shutdown() {
                report("shut").await;
                return;
            }
        }
    });
}

/// One ownership of a key: from a start to its stop (or its process's death).
#[derive(Debug, Clone)]
struct Tenure {
    node: String,
    generation: u64,
    from: i64,
    until: Option<i64>,
}

#[derive(Default)]
struct Ledger {
    tenures: BTreeMap<String, Vec<Tenure>>,
    ticks: Vec<i64>,
    ready: HashSet<String>,
    closed: HashSet<String>,
    shut: HashSet<String>,
    dead: HashMap<String, i64>,
}

impl Ledger {
    fn record(&mut self, event: Event) {
        match event.what.as_str() {
            "start" => {
                // A start reported just before its process was killed ended with it.
                let until = self.dead.get(&event.node).copied();
                self.tenures.entry(event.key).or_default().push(Tenure {
                    node: event.node,
                    generation: event.generation,
                    from: event.at_ns,
                    until,
                });
            }
            "stop" => {
                if let Some(t) = self.tenures.get_mut(&event.key).and_then(|ts| {
                    ts.iter_mut()
                        .rev()
                        .find(|t| t.node == event.node && t.until.is_none())
                }) {
                    t.until = Some(event.at_ns);
                }
            }
            "tick" => self.ticks.push(event.at_ns),
            "ready" => {
                self.ready.insert(event.node);
            }
            "closed" => {
                self.closed.insert(event.node);
            }
            "shut" => {
                self.shut.insert(event.node);
            }
            _ => {}
        }
    }

    /// A killed node's open tenures end at its death.
    fn killed(&mut self, node: &str, at: i64) {
        self.dead.insert(node.to_string(), at);
        for t in self.tenures.values_mut().flatten() {
            if t.node == node && t.until.is_none() {
                t.until = Some(at);
            }
        }
    }

    /// The key's owners in start order never overlap, and generations only grow.
    fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (key, tenures) in &self.tenures {
            let mut sorted = tenures.clone();
            sorted.sort_by_key(|t| t.from);
            for pair in sorted.windows(2) {
                let (a, b) = (&pair[0], &pair[1]);
                if a.until.is_none_or(|until| until > b.from) {
                    out.push(format!(
                        "{key}: {} (gen {}) still ran when {} (gen {}) started",
                        a.node, a.generation, b.node, b.generation
                    ));
                }
                if b.generation <= a.generation {
                    out.push(format!(
                        "{key}: generation {} after {}",
                        b.generation, a.generation
                    ));
                }
            }
        }
        out
    }

    fn owner_now(&self, key: &str) -> Option<&Tenure> {
        self.tenures.get(key)?.iter().find(|t| t.until.is_none())
    }

    fn all_running(&self, keys: &[String]) -> bool {
        keys.iter().all(|k| self.owner_now(k).is_some())
    }
}

/// Records every event as it arrives.
fn listen(mut events: async_nats::Subscriber, ledger: Arc<Mutex<Ledger>>) {
    tokio::spawn(async move {
        while let Some(msg) = events.next().await {
            if let Ok(event) = serde_json::from_slice::<Event>(&msg.payload) {
                ledger.lock().expect("ledger").record(event);
            }
        }
    });
}

fn control(nats: &async_nats::Client, name: &str) -> BoxFuture<'static, ()> {
    let nats = nats.clone();
    let subject = format!("pool.control.{name}");
    Box::pin(async move {
        let _ = nats.publish(subject, "close".into()).await;
        let _ = nats.flush().await;
    })
}

#[tokio::test]
async fn fleet_moves_jobs_without_two_owners() {
    const JOBS: usize = 300;
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connects");
    let nats = client.nats().clone();
    let events = nats.subscribe("pool.events").await.expect("events");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    listen(events, ledger.clone());
    let spawn = |name: &str| {
        ChildProcess::start(
            "child_pool_node",
            &[
                ("JETJOBS_CHILD_URL", server.url.as_str()),
                ("JETJOBS_CHILD_NAME", name),
            ],
        )
    };
    let mut nodes: HashMap<String, ChildProcess> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| (n.to_string(), spawn(n)))
        .collect();
    wait_for("3 nodes ready", Duration::from_secs(60), || {
        let ledger = &ledger;
        async move { (ledger.lock().expect("ledger").ready.len() == 3).then_some(()) }
    })
    .await;

    let dispatcher = PoolNode::join(&client, "fleet", options().client_only())
        .await
        .expect("dispatcher joins");
    wait_for("3 workers seen", Duration::from_secs(10), || {
        let n = dispatcher.pool_workers().len();
        async move { (n == 3).then_some(()) }
    })
    .await;
    let keys: Vec<String> = (0..JOBS).map(|i| format!("tenant-{i}")).collect();
    for key in &keys {
        dispatcher
            .dispatch_job(key, Bytes::from(key.clone()))
            .await
            .expect("dispatched and started");
    }
    // Every job started exactly once.
    wait_for("300 starts", Duration::from_secs(20), || {
        let ledger = &ledger;
        let keys = &keys;
        async move {
            ledger
                .lock()
                .expect("ledger")
                .all_running(keys)
                .then_some(())
        }
    })
    .await;
    let before: HashMap<String, String> = {
        let l = ledger.lock().expect("ledger");
        keys.iter()
            .map(|k| {
                (
                    k.clone(),
                    l.owner_now(k).map(|t| t.node.clone()).unwrap_or_default(),
                )
            })
            .collect()
    };
    assert!(
        before.values().collect::<HashSet<_>>().len() == 3,
        "jobs spread over 3 nodes"
    );

    // A 4th node joins: about a quarter of the jobs move to it, and only to it.
    nodes.insert("n4".into(), spawn("n4"));
    let moved = wait_for("rebalance onto n4", Duration::from_secs(30), || {
        let ledger = &ledger;
        let keys = &keys;
        let dispatcher = &dispatcher;
        async move {
            let l = ledger.lock().expect("ledger");
            let owners = dispatcher.job_owners();
            let on_n4 = keys
                .iter()
                .filter(|k| l.owner_now(k).is_some_and(|t| t.node == "n4"))
                .count();
            let settled = dispatcher.pool_workers().len() == 4
                && l.all_running(keys)
                && owners.len() == JOBS
                && on_n4 > 0
                && keys.iter().all(|k| {
                    let ring: Vec<String> = dispatcher
                        .pool_workers()
                        .into_iter()
                        .map(|w| w.id)
                        .collect();
                    owners
                        .get(k)
                        .is_some_and(|o| ring[jetjobs::pool_worker_index(k, ring.len())] == *o)
                });
            settled.then_some(on_n4)
        }
    })
    .await;
    assert!(
        (40..=110).contains(&moved),
        "{moved} of {JOBS} jobs moved to the 4th node (expected about 75)"
    );
    {
        let l = ledger.lock().expect("ledger");
        let elsewhere = keys
            .iter()
            .filter(|k| {
                l.owner_now(k)
                    .is_some_and(|t| t.node != "n4" && t.node != before[*k])
            })
            .count();
        assert_eq!(elsewhere, 0, "jobs move only to the new node");
    }

    // SIGKILL n2: its jobs start elsewhere within the TTL and the grace.
    let victims: Vec<String> = {
        let l = ledger.lock().expect("ledger");
        keys.iter()
            .filter(|k| l.owner_now(k).is_some_and(|t| t.node == "n2"))
            .cloned()
            .collect()
    };
    assert!(!victims.is_empty());
    if let Some(mut n2) = nodes.remove("n2") {
        n2.kill();
    }
    let killed_at = now_ns();
    ledger.lock().expect("ledger").killed("n2", killed_at);
    let recovered_at = wait_for("n2's jobs restart", Duration::from_secs(30), || {
        let ledger = &ledger;
        let victims = &victims;
        async move {
            let l = ledger.lock().expect("ledger");
            victims
                .iter()
                .map(|k| l.owner_now(k).map(|t| t.from))
                .collect::<Option<Vec<i64>>>()
                .and_then(|starts| starts.into_iter().max())
        }
    })
    .await;
    let took = Duration::from_nanos((recovered_at - killed_at).max(0) as u64);
    // TTL + grace, plus the server's expiry sweep and the watch.
    assert!(
        took <= TTL + GRACE + Duration::from_millis(1500),
        "n2's jobs restarted after {took:?}"
    );
    println!("restart after SIGKILL: {took:?} for {} jobs", victims.len());

    // Graceful close of n1: each job restarts elsewhere right after it stopped.
    let leaving: Vec<String> = {
        let l = ledger.lock().expect("ledger");
        keys.iter()
            .filter(|k| l.owner_now(k).is_some_and(|t| t.node == "n1"))
            .cloned()
            .collect()
    };
    control(&nats, "n1").await;
    wait_for(
        "n1 closed and its jobs moved",
        Duration::from_secs(30),
        || {
            let ledger = &ledger;
            let keys = &keys;
            async move {
                let l = ledger.lock().expect("ledger");
                (l.closed.contains("n1") && l.all_running(keys)).then_some(())
            }
        },
    )
    .await;
    let worst_gap = {
        let l = ledger.lock().expect("ledger");
        leaving
            .iter()
            .filter_map(|k| {
                let ts = l.tenures.get(k)?;
                let old = ts.iter().rev().find(|t| t.node == "n1")?;
                let new = ts
                    .iter()
                    .find(|t| t.from >= old.until.unwrap_or(i64::MAX))?;
                Some(new.from - old.until.unwrap_or(0))
            })
            .max()
            .unwrap_or(0)
    };
    let worst_gap = Duration::from_nanos(worst_gap.max(0) as u64);
    assert!(
        worst_gap <= GRACE,
        "a job of the closed node was down for {worst_gap:?}"
    );
    println!(
        "close: {} jobs moved, longest gap {worst_gap:?}",
        leaving.len()
    );

    // Ticks: one per period, while nodes joined, died and left.
    {
        let l = ledger.lock().expect("ledger");
        let mut ticks = l.ticks.clone();
        ticks.sort_unstable();
        assert!(ticks.len() >= 4, "ticks: {}", ticks.len());
        let span = (ticks[ticks.len() - 1] - ticks[0]) as f64 / TICK.as_nanos() as f64;
        let expected = span.round() as i64 + 1;
        let got = ticks.len() as i64;
        assert!(
            (got - expected).abs() <= 1,
            "{got} ticks where {expected} periods passed"
        );
        let closest = ticks
            .windows(2)
            .map(|w| w[1] - w[0])
            .min()
            .unwrap_or(i64::MAX);
        assert!(
            closest as u128 > TICK.as_nanos() / 2,
            "two ticks {closest} ns apart"
        );
    }

    // Shutdown stops every job on every node.
    dispatcher.shutdown().await.expect("shutdown");
    wait_for(
        "every job stopped and the nodes gone",
        Duration::from_secs(30),
        || {
            let ledger = &ledger;
            let keys = &keys;
            async move {
                let l = ledger.lock().expect("ledger");
                let open: Vec<&String> = keys.iter().filter(|k| l.owner_now(k).is_some()).collect();
                if !open.is_empty() || l.shut.len() != 2 {
                    eprintln!(
                        "still open: {:?}; shut: {:?}",
                        open.iter()
                            .take(3)
                            .map(|k| (k, l.tenures.get(*k)))
                            .collect::<Vec<_>>(),
                        l.shut
                    );
                }
                (open.is_empty() && l.shut.len() == 2).then_some(())
            }
        },
    )
    .await;
    for (name, node) in nodes.iter_mut() {
        assert!(
            node.exited(Duration::from_secs(10)).await,
            "{name} exits after the shutdown"
        );
    }
    let violations = ledger.lock().expect("ledger").violations();
    if !violations.is_empty() {
        let l = ledger.lock().expect("ledger");
        let bad = violations[0].split(':').next().unwrap_or_default();
        println!("{bad}: {:?}", l.tenures.get(bad));
    }
    assert!(violations.is_empty(), "two owners: {violations:#?}");
    let js = async_nats::jetstream::new(nats.clone());
    assert!(
        js.get_key_value("JETJOBS_POOL_fleet").await.is_err(),
        "the shutdown removed the pool's bucket"
    );
}

/// An in-process handler: records what runs, refuses keys starting with `bad`.
#[derive(Clone, Default)]
struct Jobs {
    running: Arc<Mutex<BTreeMap<String, u64>>>,
    notes: Arc<Mutex<Vec<(String, Bytes)>>>,
}

impl Jobs {
    fn running(&self) -> Vec<String> {
        self.running.lock().expect("jobs").keys().cloned().collect()
    }
}

impl JobHandler for Jobs {
    fn start(&self, job: PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        let running = self.running.clone();
        Box::pin(async move {
            if job.key.starts_with("bad") {
                return Err(jetjobs::Error::new(ErrorKind::InvalidPayload, "refused"));
            }
            running
                .lock()
                .expect("jobs")
                .insert(job.key, job.generation);
            Ok(())
        })
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.running.lock().expect("jobs").remove(&key);
        Box::pin(async { Ok(()) })
    }

    fn notify(&self, key: String, payload: Bytes) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.notes.lock().expect("notes").push((key, payload));
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn dispatch_stop_notify_and_their_errors() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connects");
    let a = PoolNode::join(&client, "api", options())
        .await
        .expect("a joins");
    let b = PoolNode::join(&client, "api", options())
        .await
        .expect("b joins");

    let err = a
        .dispatch_job("k", Bytes::new())
        .await
        .expect_err("no workers");
    assert_eq!(err.kind(), ErrorKind::NoWorkers);

    let (ja, jb) = (Jobs::default(), Jobs::default());
    a.add_worker(ja.clone()).await.expect("worker a");
    b.add_worker(jb.clone()).await.expect("worker b");
    wait_for("both workers seen", Duration::from_secs(10), || {
        let n = a.pool_workers().len();
        async move { (n == 2).then_some(()) }
    })
    .await;
    assert_eq!(a.nodes().len(), 2);
    assert_eq!(a.workers().len(), 1);

    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    for key in &keys {
        a.dispatch_job(key, Bytes::from(format!("payload {key}")))
            .await
            .expect("dispatched");
    }
    // Each ran on the worker its key hashes to.
    let ring: Vec<String> = a.pool_workers().into_iter().map(|w| w.id).collect();
    let owners = a.job_owners();
    for key in &keys {
        let expected = &ring[jetjobs::pool_worker_index(key, ring.len())];
        assert_eq!(owners.get(key), Some(expected), "{key}");
    }
    let mut all: Vec<String> = ja.running().into_iter().chain(jb.running()).collect();
    all.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(all, sorted, "every job runs once");
    assert_eq!(a.job_keys(), sorted);

    let err = b
        .dispatch_job("k3", Bytes::new())
        .await
        .expect_err("exists");
    assert_eq!(err.kind(), ErrorKind::JobExists);
    let err = a
        .dispatch_job("bad-1", Bytes::new())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::JobStartFailed);
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(
        a.job_payload("bad-1").await.expect("payload"),
        None,
        "nothing kept"
    );
    assert_eq!(
        a.job_payload("k3").await.expect("payload"),
        Some(Bytes::from("payload k3"))
    );

    b.notify_worker("k5", Bytes::from_static(b"hello"))
        .await
        .expect("notified");
    let notes: Vec<(String, Bytes)> = ja
        .notes
        .lock()
        .expect("notes")
        .iter()
        .chain(jb.notes.lock().expect("notes").iter())
        .cloned()
        .collect();
    assert_eq!(
        notes,
        vec![("k5".to_string(), Bytes::from_static(b"hello"))]
    );
    let err = a
        .notify_worker("nope", Bytes::new())
        .await
        .expect_err("unknown");
    assert_eq!(err.kind(), ErrorKind::JobNotFound);

    b.stop_job("k7").await.expect("stopped");
    assert!(!ja.running().contains(&"k7".to_string()) && !jb.running().contains(&"k7".to_string()));
    assert_eq!(a.job_payload("k7").await.expect("payload"), None);
    let err = a.stop_job("k7").await.expect_err("gone");
    assert_eq!(err.kind(), ErrorKind::JobNotFound);
    a.dispatch_job("k7", Bytes::new())
        .await
        .expect("a stopped key can start again");

    let client_only = PoolNode::join(&client, "api", options().client_only())
        .await
        .expect("client joins");
    let err = client_only
        .add_worker(Jobs::default())
        .await
        .expect_err("client only");
    assert_eq!(err.kind(), ErrorKind::InvalidOption);
    client_only
        .dispatch_job("k99", Bytes::new())
        .await
        .expect("clients dispatch");

    // Closing b moves its jobs to a.
    b.close().await.expect("close");
    assert!(b.is_closed());
    wait_for("b's jobs on a", Duration::from_secs(10), || {
        let n = ja.running().len();
        async move { (n == 21).then_some(()) }
    })
    .await;
    assert!(jb.running().is_empty());
    let err = b.dispatch_job("x", Bytes::new()).await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);

    for bad in ["", "a.b", "x y"] {
        let err = PoolNode::join(&client, bad, options()).await.err();
        assert_eq!(
            err.map(|e| e.kind()),
            Some(ErrorKind::InvalidOption),
            "{bad:?}"
        );
    }
    let err = PoolNode::join(
        &client,
        "api",
        options().worker_ttl(Duration::from_millis(1500)),
    )
    .await
    .err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidOption));

    client_only.shutdown().await.expect("shutdown");
    assert!(ja.running().is_empty(), "shutdown stops every job");
    wait_for("a sees the shutdown", Duration::from_secs(10), || {
        let shut = a.is_shutdown();
        async move { shut.then_some(()) }
    })
    .await;
}

/// A plan that follows a script, one step per call, as pulse's scheduler test does.
struct Script(Arc<Mutex<Vec<Option<JobPlan>>>>);

impl JobProducer for Script {
    fn plan(&self) -> BoxFuture<'static, jetjobs::Result<Option<JobPlan>>> {
        let step = {
            let mut steps = self.0.lock().expect("script");
            if steps.is_empty() {
                None
            } else {
                steps.remove(0)
            }
        };
        Box::pin(async move { Ok(step) })
    }
}

fn plan(start: &[&str], stop: &[&str], stop_all: bool) -> Option<JobPlan> {
    Some(JobPlan {
        start: start
            .iter()
            .map(|k| (k.to_string(), Bytes::new()))
            .collect(),
        stop: stop.iter().map(|k| k.to_string()).collect(),
        stop_all,
    })
}

#[tokio::test]
async fn schedules_reconcile_the_plan_and_end_everywhere() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connects");
    let a = PoolNode::join(&client, "sched", options())
        .await
        .expect("a joins");
    let jobs = Jobs::default();
    a.add_worker(jobs.clone()).await.expect("worker");
    let steps = vec![
        plan(&["one"], &[], false),
        plan(&[], &["one"], false),
        plan(&["two", "three"], &[], false),
        plan(&["three"], &[], true),
        plan(&["one", "three"], &[], false),
        plan(&["four"], &[], true),
        None,
    ];
    let expected: Vec<Vec<&str>> = vec![
        vec!["one"],
        vec![],
        vec!["three", "two"],
        vec!["three"],
        vec!["one", "three"],
        vec!["four"],
    ];
    let script = Arc::new(Mutex::new(steps));
    let ticker_span = Duration::from_millis(400);
    a.schedule("plan", ticker_span, Script(script.clone()))
        .await
        .expect("scheduled");
    for (i, want) in expected.iter().enumerate() {
        let left = 7 - i;
        wait_for(&format!("step {i}"), Duration::from_secs(10), || {
            let running = jobs.running();
            let remaining = script.lock().expect("script").len();
            async move { (remaining < left && running == *want).then_some(()) }
        })
        .await;
    }
    wait_for("the schedule ended", Duration::from_secs(10), || {
        let ended = script.lock().expect("script").is_empty();
        async move { ended.then_some(()) }
    })
    .await;
    // The ticker is gone from the bucket: nobody plans again.
    let kv = client
        .kv(&jetjobs::KvBucket::new("JETJOBS_POOL_sched"))
        .await
        .expect("bucket");
    wait_for(
        "ticker and schedule removed",
        Duration::from_secs(5),
        || {
            let kv = kv.clone();
            async move {
                let keys = kv.keys().await.ok()?;
                (!keys
                    .iter()
                    .any(|k| k.starts_with("tickers.") || k.starts_with("schedules.")))
                .then_some(())
            }
        },
    )
    .await;
    assert_eq!(jobs.running(), vec!["four"]);
}

#[tokio::test]
async fn a_ticker_ticks_on_one_node_per_period_and_stops_everywhere() {
    let server = NatsServer::start();
    let client = ClientOptions::new()
        .connect(&server.url)
        .await
        .expect("connects");
    let a = PoolNode::join(&client, "tick", options()).await.expect("a");
    let b = PoolNode::join(&client, "tick", options()).await.expect("b");
    let period = Duration::from_millis(300);
    let ta = Arc::new(a.new_ticker("t", period).await.expect("ticker a"));
    let tb = Arc::new(b.new_ticker("t", period).await.expect("ticker b"));
    let ticks = Arc::new(Mutex::new(Vec::new()));
    for (name, t) in [("a", ta.clone()), ("b", tb.clone())] {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            while t.next().await.is_some() {
                ticks.lock().expect("ticks").push((name, now_ns()));
            }
            ticks.lock().expect("ticks").push((name, -1));
        });
    }
    wait_for("8 ticks", Duration::from_secs(10), || {
        let n = ticks.lock().expect("ticks").len();
        async move { (n >= 8).then_some(()) }
    })
    .await;
    ta.stop().await.expect("stop everywhere");
    wait_for("both tickers ended", Duration::from_secs(10), || {
        let ended = ticks
            .lock()
            .expect("ticks")
            .iter()
            .filter(|(_, t)| *t < 0)
            .count();
        async move { (ended == 2).then_some(()) }
    })
    .await;
    let mut times: Vec<i64> = ticks
        .lock()
        .expect("ticks")
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| *t > 0)
        .collect();
    times.sort_unstable();
    let closest = times
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(i64::MAX);
    assert!(
        closest as u128 > period.as_nanos() / 2,
        "two ticks {closest} ns apart"
    );
    let err = a.new_ticker("bad name", period).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidOption));
}
