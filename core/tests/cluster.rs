// SPDX-License-Identifier: Apache-2.0
//! Replicated streams (`replicas(3)`) on a real 3-node nats-server cluster: the leader of the
//! streams crashes mid-run and comes back, or a worker's node goes away for good, and every
//! acknowledged task still completes; with two nodes down, enqueueing fails with a typed error.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{NatsCluster, RunningWorker, wait_final, wait_for};
use jetjobs::{
    CancellationToken, Client, ClientOptions, ErrorKind, Mux, Queue, RetryPolicy, Task, TaskState,
    WorkerOptions,
};
use serde_json::json;

/// Each test starts three nats-servers: on a small machine two clusters at once would measure
/// CPU starvation rather than failover.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Handler runs per task id.
type Runs = Arc<Mutex<HashMap<String, u32>>>;

fn options(queue: &str) -> ClientOptions {
    ClientOptions::new()
        .replicas(3)
        // A lost ack comes back after the run time; short, so the test waits seconds, not an hour.
        .queue(Queue::new(queue).max_run_time(Duration::from_secs(5)))
}

fn worker_options() -> WorkerOptions {
    WorkerOptions::new().concurrency(16).retry_policy(
        RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(1), 0.0)
            .expect("policy"),
    )
}

/// A mux whose `count` handler records each run of a task and returns its payload doubled.
fn counting_mux(runs: &Runs) -> Mux {
    let runs = runs.clone();
    let mut mux = Mux::new();
    mux.handle("count", move |_ctx, task: Task| {
        let runs = runs.clone();
        async move {
            let n: i64 = task.payload_json()?;
            *runs
                .lock()
                .map_err(|e| jetjobs::HandlerError::retry(e.to_string()))?
                .entry(task.id)
                .or_default() += 1;
            // Long enough that some tasks are in flight whenever a node goes away.
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(json!(n * 2))
        }
    })
    .expect("register");
    mux
}

fn task(n: i64) -> Task {
    Task::new("count", &n).expect("task")
}

fn handled(runs: &Runs) -> usize {
    runs.lock().expect("lock").len()
}

/// Which server a client's connection is on.
fn server_of(client: &Client) -> String {
    client.nats().server_info().server_name
}

/// Waits until every acknowledged task ran and is stored `complete` with its own result (none
/// left `active` or in another state), and every work item is settled; returns the duplicate runs.
async fn assert_all_complete(
    client: &Client,
    queue: &str,
    runs: &Runs,
    acked: &[(String, i64)],
    timeout: Duration,
) -> u32 {
    wait_for("every acknowledged task to run", timeout, || async {
        let runs = runs.lock().ok()?;
        acked
            .iter()
            .all(|(id, _)| runs.contains_key(id))
            .then_some(())
    })
    .await;
    let ids: Vec<String> = acked.iter().map(|(id, _)| id.clone()).collect();
    let done = wait_final(client, &ids, Duration::from_secs(30)).await;
    for (task, (id, n)) in done.iter().zip(acked) {
        assert_eq!(
            task.state,
            TaskState::Complete,
            "task {id}: {}",
            task.last_err
        );
        assert_eq!(
            task.result.as_ref().map(|r| r.payload.clone()),
            Some(json!(n * 2)),
            "task {id}"
        );
    }
    // An ack in flight when a node died can be lost; the item then comes back after the run time
    // and is acked on sight, as its task is already final.
    wait_for("every work item to be settled", timeout, || async {
        let info = client.admin().queue_info(queue).await.ok()?;
        (info.items == 0).then_some(())
    })
    .await;
    runs.lock()
        .expect("lock")
        .values()
        .map(|n| n.saturating_sub(1))
        .sum()
}

/// What a producer got: acknowledged tasks (id, payload), its errors by kind, and when each
/// batch started and ended with how many of its tasks failed.
#[derive(Default)]
struct Produced {
    acked: Vec<(String, i64)>,
    errors: HashMap<ErrorKind, usize>,
    last_error: Option<String>,
    /// The batch being enqueued: when it started, and whether one by one.
    in_flight: Option<(Instant, bool)>,
    batches: Vec<(Instant, Instant, usize)>,
}

impl Produced {
    /// How long after `since` the last failed enqueue returned, if one failed after it.
    fn failing_until(&self, since: Instant) -> Option<Duration> {
        self.batches
            .iter()
            .filter(|&&(_, end, failed)| failed > 0 && end > since)
            .map(|&(_, end, _)| end.duration_since(since))
            .max()
    }

    /// The longest a batch took.
    fn slowest_batch(&self) -> Duration {
        self.batches
            .iter()
            .map(|&(start, end, _)| end.duration_since(start))
            .max()
            .unwrap_or_default()
    }
}

/// Enqueues batches of 20 tasks, about one batch per 100 ms, alternating `enqueue_many` and
/// one-by-one `enqueue`, until `stop` is cancelled.
async fn produce(client: Client, stop: CancellationToken, produced: Arc<Mutex<Produced>>) {
    const BATCH: i64 = 20;
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for start in (0..).step_by(BATCH as usize) {
        tokio::select! {
            _ = pace.tick() => {}
            _ = stop.cancelled() => return,
        }
        let numbers: Vec<i64> = (start..start + BATCH).collect();
        let began = Instant::now();
        let one_by_one = (start / BATCH) % 2 == 1;
        produced.lock().expect("lock").in_flight = Some((began, one_by_one));
        let results = if !one_by_one {
            client.enqueue_many(numbers.iter().map(|&n| task(n))).await
        } else {
            let mut results = Vec::new();
            for &n in &numbers {
                results.push(client.enqueue(task(n)).await);
            }
            results
        };
        let mut out = produced.lock().expect("lock");
        let mut failed = 0;
        for (n, result) in numbers.into_iter().zip(results) {
            match result {
                Ok(stored) => out.acked.push((stored.id, n)),
                Err(e) => {
                    failed += 1;
                    *out.errors.entry(e.kind()).or_default() += 1;
                    out.last_error = Some(e.to_string());
                }
            }
        }
        out.batches.push((began, Instant::now(), failed));
        out.in_flight = None;
    }
}

fn acked(produced: &Mutex<Produced>) -> usize {
    produced.lock().expect("lock").acked.len()
}

/// The producer's client, connected once its queue's new R3 groups have leaders. Until each
/// group has elected one, a client preparing the queue on another node, or a write, waits for an
/// answer (on a loaded machine past its request timeout).
async fn connect_producer(cluster: &jetjobs::DevCluster, queue: &str) -> Client {
    let producer = options(queue)
        .connect(cluster.connect_string())
        .await
        .expect("producer connects");
    let work_stream = format!("CHORIA_AJ_Q_{queue}");
    wait_for(
        "the new groups to elect leaders",
        Duration::from_secs(60),
        || leaders(cluster, &work_stream),
    )
    .await;
    producer
}

/// The nodes leading the tasks stream, `work_stream` and its `WORKERS` consumer, once all three
/// have a leader.
async fn leaders(cluster: &jetjobs::DevCluster, work_stream: &str) -> Option<[usize; 3]> {
    Some([
        cluster
            .stream_leader(jetjobs::wire::names::TASKS_STREAM)
            .await
            .ok()?,
        cluster.stream_leader(work_stream).await.ok()?,
        cluster.consumer_leader(work_stream, "WORKERS").await.ok()?,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_task_completes_when_the_stream_leader_crashes() {
    common::init_tracing();
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(NatsCluster::start);
    const QUEUE: &str = "FAILOVER";

    let producer = connect_producer(&cluster, QUEUE).await;
    let work_stream = format!("CHORIA_AJ_Q_{QUEUE}");
    let runs = Runs::default();
    let mut workers = Vec::new();
    for i in 0..cluster.node_count() {
        let client = options(QUEUE)
            .connect(cluster.url(i))
            .await
            .expect("worker connects");
        assert_eq!(server_of(&client), cluster.server_name(i));
        workers.push((
            RunningWorker::start(&client, worker_options(), counting_mux(&runs)),
            client,
        ));
    }

    let produced = Arc::new(Mutex::new(Produced::default()));
    let stop = CancellationToken::new();
    let producing = tokio::spawn(produce(producer.clone(), stop.clone(), produced.clone()));
    wait_for("workers to be busy", Duration::from_secs(30), || async {
        (handled(&runs) >= 200).then_some(())
    })
    .await;

    // Crash the node that leads most of what a task's life touches: the tasks stream, the queue's
    // stream and its WORKERS consumer; with three different leaders, the tasks stream's.
    let before = leaders(&cluster, &work_stream)
        .await
        .expect("every group has a leader");
    let victim = if before[1] == before[2] {
        before[1]
    } else {
        before[0]
    };
    let handled_at_kill = handled(&runs);
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(victim));

    let after = wait_for(
        "the crashed node's groups to elect new leaders",
        Duration::from_secs(30),
        || async {
            leaders(&cluster, &work_stream)
                .await
                .filter(|l| !l.contains(&victim))
        },
    )
    .await;
    let elected_after = killed.elapsed();
    // The worker given only the crashed node's URL moves to a node the server told it of.
    let stranded = &workers[victim].1;
    let moved_to = wait_for(
        "the crashed node's worker to reconnect elsewhere",
        Duration::from_secs(30),
        || async {
            let now = server_of(stranded);
            (stranded.nats().connection_state() == async_nats::connection::State::Connected
                && now != cluster.server_name(victim))
            .then_some(now)
        },
    )
    .await;
    // Writes work again: a whole batch started after the kill was acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        {
            let produced = produced.lock().expect("lock");
            if produced
                .batches
                .iter()
                .any(|&(start, _, failed)| start > killed && failed == 0)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no batch enqueued after the kill was fully acknowledged {:?} on, new leaders \
                 elected after \
                 {elected_after:?}: {:?}, last {:?}, batch in flight since (relative to the \
                 kill, one by one) {:?}, producer on {}",
                killed.elapsed(),
                produced.errors,
                produced.last_error,
                produced
                    .in_flight
                    .map(|(start, one)| (start.checked_duration_since(killed), one)),
                server_of(&producer),
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let restarting = Instant::now();
    tokio::task::block_in_place(|| cluster.restart(victim)).expect("node restarts");
    let rejoined_after = restarting.elapsed();
    tokio::task::block_in_place(|| cluster.wait_current(Duration::from_secs(30)))
        .expect("restarted node catches up");
    let caught_up_after = restarting.elapsed();
    let acked_at_restart = acked(&produced);
    wait_for(
        "enqueueing to go on after the restart",
        Duration::from_secs(30),
        || async { (acked(&produced) >= acked_at_restart + 200).then_some(()) },
    )
    .await;
    stop.cancel();
    producing.await.expect("producer runs");

    let produced = std::mem::take(&mut *produced.lock().expect("lock"));
    for kind in produced.errors.keys() {
        // Never `QueueNotFound`: the queue exists all along, its stream is only electing a leader.
        assert!(
            matches!(
                kind,
                ErrorKind::Storage | ErrorKind::Timeout | ErrorKind::Connection
            ),
            "a node crash surfaces as an outage error, not {kind:?}"
        );
    }
    assert!(
        handled_at_kill < produced.acked.len(),
        "the crash happened mid-run"
    );
    let duplicates = assert_all_complete(
        &producer,
        QUEUE,
        &runs,
        &produced.acked,
        Duration::from_secs(60),
    )
    .await;
    let name = |i: usize| cluster.server_name(i);
    println!(
        "leader crash: killed {} (leader of tasks stream / work stream / WORKERS: {}/{}/{}); \
         led by {}/{}/{} after {elapsed:?}; its worker moved to {moved_to}; \
         enqueue failures until {failing:?} after the kill, \
         slowest batch of 20 {slowest:?}; node back in {rejoined_after:?}, caught up in \
         {caught_up_after:?}; {acked} acknowledged ({errors:?} failed), all complete; \
         {duplicates} duplicate runs; {total:?} in all",
        name(victim),
        name(before[0]),
        name(before[1]),
        name(before[2]),
        name(after[0]),
        name(after[1]),
        name(after[2]),
        elapsed = elected_after,
        failing = produced.failing_until(killed),
        slowest = produced.slowest_batch(),
        acked = produced.acked.len(),
        errors = produced.errors,
        total = started.elapsed(),
    );
    for (worker, _client) in workers {
        worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_node_is_lost_reconnects_and_writes_stop_only_without_a_quorum() {
    common::init_tracing();
    let _one = ONE_CLUSTER_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut cluster = tokio::task::block_in_place(NatsCluster::start);
    const QUEUE: &str = "RECONNECT";

    let producer = connect_producer(&cluster, QUEUE).await;
    let worker_client = options(QUEUE)
        .connect(cluster.connect_string())
        .await
        .expect("worker connects");
    let runs = Runs::default();
    let worker = RunningWorker::start(&worker_client, worker_options(), counting_mux(&runs));
    let mut acked = Vec::new();
    for stored in producer.enqueue_many((0..400).map(task)).await {
        acked.push(stored.expect("enqueue"));
    }
    let mut acked: Vec<(String, i64)> =
        acked.into_iter().zip(0..).map(|(t, n)| (t.id, n)).collect();
    wait_for("the worker to be busy", Duration::from_secs(30), || async {
        (handled(&runs) >= 50).then_some(())
    })
    .await;

    let lost = cluster
        .node_named(&server_of(&worker_client))
        .expect("the worker's node");
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.kill(lost));
    let moved_to = wait_for(
        "the worker to reconnect to another node",
        Duration::from_secs(30),
        || async {
            let now = server_of(&worker_client);
            (worker_client.nats().connection_state() == async_nats::connection::State::Connected
                && now != cluster.server_name(lost))
            .then_some(now)
        },
    )
    .await;
    let reconnected_after = killed.elapsed();

    // Work enqueued after the loss runs too: two of three nodes are a quorum.
    let more = wait_for(
        "enqueueing to work with two nodes",
        Duration::from_secs(30),
        || async { producer.enqueue(task(400)).await.ok() },
    )
    .await;
    acked.push((more.id, 400));
    let duplicates =
        assert_all_complete(&producer, QUEUE, &runs, &acked, Duration::from_secs(60)).await;
    println!(
        "node loss: the worker on {} reconnected to {moved_to} after {reconnected_after:?}; {} \
         tasks complete with the node still down; {duplicates} duplicate runs",
        cluster.server_name(lost),
        acked.len(),
    );

    // A second node lost is the quorum lost: enqueueing fails with a typed error rather than
    // hanging or pretending, and works again once a node is back.
    let producer_on = server_of(&producer);
    let second = (0..cluster.node_count())
        .find(|&i| i != lost && cluster.server_name(i) != producer_on)
        .expect("a second node");
    tokio::task::block_in_place(|| cluster.kill(second));
    let refusing = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(60), producer.enqueue(task(401)))
        .await
        .expect("enqueue without a quorum returns")
        .expect_err("enqueue without a quorum fails");
    let refused_after = refusing.elapsed();
    assert!(
        matches!(refused.kind(), ErrorKind::Storage | ErrorKind::Timeout),
        "{refused}"
    );
    let restarting = Instant::now();
    tokio::task::block_in_place(|| cluster.restart(lost)).expect("node restarts");
    let more = wait_for(
        "enqueueing to work with the quorum back",
        Duration::from_secs(30),
        || async { producer.enqueue(task(402)).await.ok() },
    )
    .await;
    let writable_after = restarting.elapsed();
    acked.push((more.id, 402));
    assert_all_complete(&producer, QUEUE, &runs, &acked, Duration::from_secs(60)).await;
    println!(
        "quorum loss: with {} and {} down, enqueue failed after {refused_after:?} ({:?}: \
         {refused}); {} restarted, enqueue acknowledged again after {writable_after:?}; \
         {:?} in all",
        cluster.server_name(lost),
        cluster.server_name(second),
        refused.kind(),
        cluster.server_name(lost),
        started.elapsed(),
    );
    worker.stop().await;
}
