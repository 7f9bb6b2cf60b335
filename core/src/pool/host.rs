// SPDX-License-Identifier: Apache-2.0
//! What a node does in the background, as one supervised group: watch the bucket into the
//! [`View`], refresh its keys (and fence itself when it cannot), answer notifications, and
//! reconcile: start the jobs that name a local worker, hand over the jobs the ring routes
//! elsewhere, claim the jobs of dead workers, and stop and forget the jobs asked to stop.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;

use crate::error::{Error, ErrorKind, Result};
use crate::pool::node::{Inner, job_not_found};
use crate::pool::records::{
    self, JobRecord, JobState, Notification, Outcome, WorkerRecord, job_kv_key,
};
use crate::pool::{JobHandler, PoolJob};
use crate::supervisor::{Worker, run_all_workers};
use crate::wire::Timestamp;

/// A worker stops its jobs once its key has gone unrefreshed for this share of the TTL, well
/// before the server expires the key and another worker may claim them.
const FENCE_AFTER: f64 = 0.7;
/// How often reconciliation runs without a change (claims wait out a grace).
const RECONCILE_TICK: Duration = Duration::from_millis(200);
/// A start the handler refused is tried again after this (for jobs handed over or claimed).
const START_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct LocalWorker {
    pub(crate) handler: Arc<dyn JobHandler>,
    pub(crate) record: WorkerRecord,
    pub(crate) revision: u64,
    /// When the last successful refresh of its key was sent.
    pub(crate) refreshed: Instant,
    /// Its jobs were stopped because its key could not be refreshed.
    pub(crate) fenced: bool,
}

/// A job this node runs.
struct Running {
    worker: String,
}

#[derive(Default)]
pub(crate) struct Local {
    pub(crate) workers: HashMap<String, LocalWorker>,
    running: HashMap<String, Running>,
    /// Keys with a start, stop or handover in flight.
    busy: HashSet<String>,
    /// When each job without a live owner was first seen so.
    orphaned: HashMap<String, Instant>,
    /// Refused starts, tried again later.
    retry_at: HashMap<String, Instant>,
    /// Set while leaving: reconciliation leaves local jobs alone.
    leaving: bool,
}

impl Local {
    fn active_worker(&self, id: &str) -> Option<&LocalWorker> {
        self.workers
            .get(id)
            .filter(|w| !w.fenced && !w.record.leaving)
    }
}

enum Action {
    Start(JobRecord, u64),
    Handover(JobRecord, u64, String),
    Claim(JobRecord, u64, String),
    Finish(JobRecord, u64),
    StopHere(String),
}

/// Sets up the watch and the notification subscription, and returns the loops to run.
pub(crate) async fn run_loops(
    inner: Arc<Inner>,
) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
    let watch = inner.kv.watch(">", None).await?;
    let watch = std::sync::Mutex::new(Some(watch));
    let subject = records::notify_subject(&inner.pool, &inner.id);
    let notifications = inner
        .storage
        .nats
        .subscribe(subject)
        .await
        .map_err(|e| Error::storage("subscribing to pool notifications", e))?;
    let notifications = std::sync::Mutex::new(Some(notifications));
    let workers = {
        let i = inner.clone();
        let watcher = Worker::new(move |stop| {
            let i = i.clone();
            let w = watch.lock().unwrap_or_else(|e| e.into_inner()).take();
            async move { watch_loop(i, w, stop).await }
        });
        let i = inner.clone();
        let reconciler = Worker::new(move |stop| reconcile_loop(i.clone(), stop));
        let i = inner.clone();
        let keeper = Worker::new(move |stop| keepalive_loop(i.clone(), stop));
        let i = inner.clone();
        let listener = Worker::new(move |stop| {
            let i = i.clone();
            let s = notifications
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            async move { notification_loop(i, s, stop).await }
        });
        vec![watcher, reconciler, keeper, listener]
    };
    Ok(async move {
        let result = run_all_workers(&inner.stop, workers).await;
        if let Err(e) = &result {
            tracing::error!(error = %e, pool = %inner.pool, "a pool node's loops stopped");
            stop_all_here(&inner).await;
        }
        result
    })
}

async fn watch_loop(
    inner: Arc<Inner>,
    watch: Option<futures::stream::BoxStream<'static, Result<crate::store::KvEntry>>>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let Some(mut watch) = watch else {
        return Err(Error::new(ErrorKind::Closed, "the pool watch ran twice"));
    };
    loop {
        let entry = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            entry = watch.next() => entry,
        };
        match entry {
            Some(Ok(entry)) => {
                let shutdown = {
                    let mut view = inner.view();
                    view.apply(&entry);
                    view.shutdown
                };
                inner.changed.notify_waiters();
                if shutdown && !inner.shutdown_seen.swap(true, Ordering::SeqCst) {
                    let i = inner.clone();
                    tokio::spawn(async move { shut_down_here(&i).await });
                }
            }
            Some(Err(e)) if stop.is_cancelled() || inner.shutdown_seen.load(Ordering::SeqCst) => {
                tracing::debug!(error = %e, "pool watch ended");
                return Ok(());
            }
            Some(Err(e)) => return Err(e),
            None if stop.is_cancelled() || inner.shutdown_seen.load(Ordering::SeqCst) => {
                return Ok(());
            }
            None => return Err(Error::new(ErrorKind::Closed, "the pool watch ended")),
        }
    }
}

async fn reconcile_loop(
    inner: Arc<Inner>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<()> {
    loop {
        let notified = inner.changed.notified();
        for action in plan(&inner) {
            let i = inner.clone();
            tokio::spawn(async move {
                let key = action_key(&action).to_string();
                if let Err(e) = act(&i, action).await {
                    tracing::warn!(error = %e, key, pool = %i.pool, "pool job action failed");
                }
                i.local().busy.remove(&key);
                i.changed.notify_waiters();
            });
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = notified => {}
            _ = tokio::time::sleep(RECONCILE_TICK) => {}
        }
    }
}

fn action_key(action: &Action) -> &str {
    match action {
        Action::Start(r, _) | Action::Handover(r, _, _) | Action::Claim(r, _, _) => &r.key,
        Action::Finish(r, _) => &r.key,
        Action::StopHere(key) => key,
    }
}

/// Decides what this node should do now; marks each chosen key busy.
fn plan(inner: &Inner) -> Vec<Action> {
    if inner.shutdown_seen.load(Ordering::SeqCst) {
        return Vec::new();
    }
    let view = inner.view();
    let mut local = inner.local();
    if local.leaving || local.workers.is_empty() {
        return Vec::new();
    }
    let now = Instant::now();
    // Fencing runs here, on the reconciliation tick, so that a hung refresh cannot delay it.
    let limit = inner.options.worker_ttl.mul_f64(FENCE_AFTER);
    for w in local.workers.values_mut() {
        if !w.fenced && w.refreshed.elapsed() > limit {
            tracing::warn!(worker = w.record.id, pool = %inner.pool, "a pool worker lost its lease; stopping its jobs");
            w.fenced = true;
        }
    }
    let mut actions = Vec::new();
    let mut stray = Vec::new();
    for (key, running) in &local.running {
        let still_ours = view
            .jobs
            .get(key)
            .is_some_and(|(r, _)| r.owner == running.worker)
            && local
                .workers
                .get(&running.worker)
                .is_some_and(|w| !w.fenced);
        if !still_ours && !local.busy.contains(key) {
            stray.push(key.clone());
        }
    }
    actions.extend(stray.into_iter().map(Action::StopHere));
    for (key, (record, revision)) in &view.jobs {
        if local.busy.contains(key) {
            continue;
        }
        let owner_here =
            view.is_live(&record.owner) && local.active_worker(&record.owner).is_some();
        let owner_dead = record.owner.is_empty() || !view.is_live(&record.owner);
        if !owner_dead {
            local.orphaned.remove(key);
        }
        if record.state == JobState::Stopping {
            if owner_here || owner_dead || local.workers.contains_key(&record.owner) {
                actions.push(Action::Finish(record.clone(), *revision));
            }
            continue;
        }
        if owner_here {
            if !local.running.contains_key(key) {
                if local.retry_at.get(key).is_none_or(|at| *at <= now) {
                    actions.push(Action::Start(record.clone(), *revision));
                }
            } else if let Some(to) = view.desired_owner(key)
                && to != record.owner
            {
                actions.push(Action::Handover(record.clone(), *revision, to.to_string()));
            }
        } else if owner_dead
            && let Some(to) = view.desired_owner(key)
            && local.active_worker(to).is_some()
        {
            let since = *local.orphaned.entry(key.clone()).or_insert(now);
            if record.owner.is_empty() || now.duration_since(since) >= inner.options.grace {
                actions.push(Action::Claim(record.clone(), *revision, to.to_string()));
            }
        }
    }
    for action in &actions {
        local.busy.insert(action_key(action).to_string());
    }
    actions
}

async fn act(inner: &Arc<Inner>, action: Action) -> Result<()> {
    match action {
        Action::Start(record, revision) => start(inner, record, revision).await,
        Action::Handover(record, revision, to) => {
            stop_here(inner, &record.key).await;
            let handed = JobRecord {
                owner: to,
                generation: record.generation + 1,
                state: JobState::Assigned,
                reply: String::new(),
                ..record
            };
            write_job(inner, &handed, revision).await
        }
        Action::Claim(record, revision, to) => {
            let claimed = JobRecord {
                owner: to,
                generation: record.generation + 1,
                state: JobState::Assigned,
                ..record
            };
            inner.local().orphaned.remove(&claimed.key);
            write_job(inner, &claimed, revision).await
        }
        Action::Finish(record, revision) => {
            stop_here(inner, &record.key).await;
            match inner
                .kv
                .delete(&job_kv_key(&record.key), Some(revision))
                .await
            {
                Err(e) if e.kind() == ErrorKind::RevisionMismatch => return Ok(()),
                other => other?,
            }
            reply(inner, &record.reply, None).await;
            Ok(())
        }
        Action::StopHere(key) => {
            stop_here(inner, &key).await;
            Ok(())
        }
    }
}

/// Compare-and-swap of a job record; losing the race is not an error (the next reconciliation
/// sees what won).
async fn write_job(inner: &Inner, record: &JobRecord, revision: u64) -> Result<()> {
    match inner
        .kv
        .update(&job_kv_key(&record.key), records::encode(record)?, revision)
        .await
    {
        Ok(revision) => {
            inner.view().note_job(record.clone(), revision);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::RevisionMismatch => Ok(()),
        Err(e) => Err(e),
    }
}

async fn start(inner: &Arc<Inner>, record: JobRecord, revision: u64) -> Result<()> {
    let Some(handler) = inner
        .local()
        .active_worker(&record.owner)
        .map(|w| w.handler.clone())
    else {
        return Ok(());
    };
    let job = PoolJob {
        key: record.key.clone(),
        payload: record.payload.clone().unwrap_or_default(),
        generation: record.generation,
        worker: record.owner.clone(),
        node: record.node.clone(),
        created_at: Timestamp::from(chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(
            record.created_ns,
        )),
    };
    match handler.start(job).await {
        Ok(()) => {
            {
                let mut local = inner.local();
                local.retry_at.remove(&record.key);
                local.running.insert(
                    record.key.clone(),
                    Running {
                        worker: record.owner.clone(),
                    },
                );
            }
            let started = JobRecord {
                state: JobState::Running,
                reply: String::new(),
                ..record.clone()
            };
            // Losing this race (a stop or a claim came first) is fine: reconciliation stops the
            // job here if the record no longer names this worker.
            write_job(inner, &started, revision).await?;
            reply(inner, &record.reply, None).await;
            Ok(())
        }
        Err(e) if record.generation == 1 && !record.reply.is_empty() => {
            // A fresh dispatch the handler refused: nothing is kept, the dispatcher hears why.
            match inner
                .kv
                .delete(&job_kv_key(&record.key), Some(revision))
                .await
            {
                Err(e) if e.kind() == ErrorKind::RevisionMismatch => {}
                other => other?,
            }
            reply(inner, &record.reply, Some(&e)).await;
            Ok(())
        }
        Err(e) => {
            inner
                .local()
                .retry_at
                .insert(record.key.clone(), Instant::now() + START_RETRY);
            Err(e)
        }
    }
}

/// Stops `key` here if it runs here.
async fn stop_here(inner: &Inner, key: &str) {
    let handler = {
        let mut local = inner.local();
        let Some(running) = local.running.remove(key) else {
            return;
        };
        local
            .workers
            .get(&running.worker)
            .map(|w| w.handler.clone())
    };
    if let Some(handler) = handler
        && let Err(e) = handler.stop(key.to_string()).await
    {
        tracing::warn!(error = %e, key, pool = %inner.pool, "a pool job's stop handler failed");
    }
}

async fn stop_all_here(inner: &Inner) {
    let keys: Vec<String> = inner.local().running.keys().cloned().collect();
    for key in keys {
        stop_here(inner, &key).await;
    }
}

async fn reply(inner: &Inner, subject: &str, error: Option<&Error>) {
    if subject.is_empty() {
        return;
    }
    let outcome = Outcome {
        error: error.map(ToString::to_string).unwrap_or_default(),
    };
    if let Ok(body) = records::encode(&outcome)
        && let Err(e) = inner.storage.nats.publish(subject.to_string(), body).await
    {
        tracing::debug!(error = %e, "answering a pool dispatch");
    }
}

/// Refreshes the node's and the workers' keys every quarter TTL (reconciliation fences a worker
/// whose key went unrefreshed for [`FENCE_AFTER`] of the TTL).
async fn keepalive_loop(
    inner: Arc<Inner>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let ttl = inner.options.worker_ttl;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(ttl / 4) => {}
        }
        let node_key = format!("{}{}", records::NODES, inner.id);
        let revision = *inner
            .node_revision
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match refresh(
            &inner,
            &node_key,
            records::encode(&inner.node_record)?,
            revision,
        )
        .await
        {
            Ok(revision) => {
                *inner
                    .node_revision
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = revision;
            }
            Err(e) => tracing::warn!(error = %e, pool = %inner.pool, "refreshing the pool node"),
        }
        let workers: Vec<(String, WorkerRecord, u64)> = inner
            .local()
            .workers
            .values()
            .map(|w| (w.record.id.clone(), w.record.clone(), w.revision))
            .collect();
        for (id, record, revision) in workers {
            let key = format!("{}{id}", records::WORKERS);
            let sent = Instant::now();
            let refreshed = refresh(&inner, &key, records::encode(&record)?, revision).await;
            let mut local = inner.local();
            let Some(worker) = local.workers.get_mut(&id) else {
                continue;
            };
            match refreshed {
                Ok(revision) => {
                    worker.revision = revision;
                    worker.refreshed = sent;
                    worker.fenced = false;
                }
                Err(e) => tracing::warn!(error = %e, worker = id, "refreshing a pool worker"),
            }
        }
    }
}

/// Extends a key's TTL; recreates it if it expired meanwhile.
async fn refresh(inner: &Inner, key: &str, value: Bytes, revision: u64) -> Result<u64> {
    // A refresh that takes longer than this is as good as lost; the next one comes soon.
    write_lease(inner, key, value, revision, inner.options.worker_ttl / 4).await
}

/// Writes a key with the worker TTL, by compare-and-swap or, if it expired, anew.
async fn write_lease(
    inner: &Inner,
    key: &str,
    value: Bytes,
    revision: u64,
    bound: Duration,
) -> Result<u64> {
    let ttl = inner.options.worker_ttl;
    let timed_out = || Error::new(ErrorKind::Timeout, format!("writing {key} timed out"));
    let updated = tokio::time::timeout(
        bound,
        inner.kv.update_with_ttl(key, value.clone(), revision, ttl),
    )
    .await
    .map_err(|_| timed_out())?;
    match updated {
        Err(e) if e.kind() == ErrorKind::RevisionMismatch => {
            tokio::time::timeout(bound, inner.kv.create_with_ttl(key, value, ttl))
                .await
                .map_err(|_| timed_out())?
        }
        other => other,
    }
}

/// [`write_lease`] for this node's last word on one of its own keys: when the keepalive loop
/// refreshed the key meanwhile, only its revision moved (the create finds the key), so the write
/// is repeated over the revision now stored. The keepalive loop itself never does this: its
/// record may be older than the one it would overwrite.
async fn overwrite_lease(
    inner: &Inner,
    key: &str,
    value: Bytes,
    revision: u64,
    bound: Duration,
) -> Result<u64> {
    match write_lease(inner, key, value.clone(), revision, bound).await {
        Err(e) if e.kind() == ErrorKind::KeyExists => {
            let stored = tokio::time::timeout(bound, inner.kv.get(key))
                .await
                .map_err(|_| {
                    Error::new(ErrorKind::Timeout, format!("reading {key} timed out"))
                })??;
            // Gone again (expired): revision 0 makes the write a create.
            let revision = stored.map_or(0, |entry| entry.revision);
            write_lease(inner, key, value, revision, bound).await
        }
        other => other,
    }
}

async fn notification_loop(
    inner: Arc<Inner>,
    subscription: Option<async_nats::Subscriber>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<()> {
    let Some(mut subscription) = subscription else {
        return Err(Error::new(ErrorKind::Closed, "the pool listener ran twice"));
    };
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            msg = subscription.next() => msg,
        };
        let Some(msg) = msg else {
            return match stop.is_cancelled() {
                true => Ok(()),
                false => Err(Error::new(ErrorKind::Closed, "the pool listener ended")),
            };
        };
        let i = inner.clone();
        tokio::spawn(async move {
            let result = deliver(&i, &msg.payload).await;
            if let Some(reply_to) = msg.reply {
                reply(&i, reply_to.as_str(), result.err().as_ref()).await;
            }
        });
    }
}

async fn deliver(inner: &Inner, body: &[u8]) -> Result<()> {
    let note: Notification = records::decode("notification", body)?;
    let handler = {
        let local = inner.local();
        local
            .running
            .get(&note.key)
            .and_then(|r| local.workers.get(&r.worker))
            .map(|w| w.handler.clone())
    };
    match handler {
        Some(handler) => {
            handler
                .notify(note.key, note.payload.unwrap_or_default())
                .await
        }
        None => Err(Error::new(ErrorKind::JobNotFound, NOT_RUNNING_HERE)),
    }
}

const NOT_RUNNING_HERE: &str = "the job does not run on this node";

/// Sends a notification to the node running `key`, following the job through handovers.
pub(crate) async fn notify(inner: &Inner, key: &str, payload: Bytes) -> Result<()> {
    let body = records::encode(&Notification {
        key: key.to_string(),
        payload: Some(payload),
    })?;
    let deadline = Instant::now() + inner.options.dispatch_timeout;
    loop {
        let node = {
            let view = inner.view();
            let Some((record, _)) = view.jobs.get(key) else {
                return Err(job_not_found(key, &inner.pool));
            };
            view.workers.get(&record.owner).map(|w| w.node.clone())
        };
        if let Some(node) = node {
            let subject = records::notify_subject(&inner.pool, &node);
            let answer = tokio::time::timeout(
                Duration::from_secs(5),
                inner.storage.nats.request(subject, body.clone()),
            )
            .await;
            if let Ok(Ok(msg)) = answer {
                let outcome: Outcome = records::decode("outcome", &msg.payload)?;
                if outcome.error.is_empty() {
                    return Ok(());
                }
                if !outcome.error.contains(NOT_RUNNING_HERE) {
                    return Err(Error::new(ErrorKind::JobStartFailed, outcome.error));
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::new(
                ErrorKind::Timeout,
                format!("no worker took the notification for {key} in time"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Hands the jobs of local workers `ids` to the rest of the pool, then removes the workers.
pub(crate) async fn leave(inner: &Arc<Inner>, ids: &[String]) -> Result<()> {
    // First off the ring everywhere, so that nobody routes or hands jobs back to them.
    let marked: Vec<(String, WorkerRecord, u64)> = {
        let mut local = inner.local();
        local.leaving = true;
        ids.iter()
            .filter_map(|id| local.workers.get(id))
            .map(|w| {
                let mut record = w.record.clone();
                record.leaving = true;
                (w.record.id.clone(), record, w.revision)
            })
            .collect()
    };
    let mut last = 0;
    for (id, record, revision) in &marked {
        let key = format!("{}{id}", records::WORKERS);
        let revision = overwrite_lease(
            inner,
            &key,
            records::encode(record)?,
            *revision,
            inner.options.dispatch_timeout,
        )
        .await?;
        last = last.max(revision);
        if let Some(w) = inner.local().workers.get_mut(id) {
            w.record.leaving = true;
            w.revision = revision;
        }
    }
    inner
        .wait_for_revision(last, inner.options.shutdown_timeout)
        .await?;
    wait_idle(inner).await;
    // Each job: stopped here first, then handed over (never two owners).
    let owned: Vec<(JobRecord, u64)> = inner
        .view()
        .jobs
        .values()
        .filter(|(r, _)| ids.contains(&r.owner))
        .cloned()
        .collect();
    for (record, revision) in owned {
        stop_here(inner, &record.key).await;
        if record.state == JobState::Stopping {
            let _ = inner
                .kv
                .delete(&job_kv_key(&record.key), Some(revision))
                .await;
            reply(inner, &record.reply, None).await;
            continue;
        }
        let to = inner
            .view()
            .desired_owner_without(&record.key, |w| ids.iter().any(|id| id == w))
            .unwrap_or_default()
            .to_string();
        let handed = JobRecord {
            owner: to,
            generation: record.generation + 1,
            state: JobState::Assigned,
            ..record
        };
        if let Err(e) = write_job(inner, &handed, revision).await {
            tracing::warn!(error = %e, key = handed.key, "handing over a pool job");
        }
    }
    for id in ids {
        let removed = inner.local().workers.remove(id);
        if removed.is_some() {
            let key = format!("{}{id}", records::WORKERS);
            if let Err(e) = inner.kv.delete(&key, None).await {
                tracing::warn!(error = %e, worker = id, "removing a pool worker's key");
            }
        }
    }
    inner.local().leaving = false;
    inner.changed.notify_waiters();
    Ok(())
}

/// Waits until no start, stop or handover is in flight here.
async fn wait_idle(inner: &Inner) {
    let deadline = Instant::now() + inner.options.shutdown_timeout;
    while !inner.local().busy.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The pool shuts down: stop every job here (nothing is handed over) and leave.
async fn shut_down_here(inner: &Arc<Inner>) {
    inner.local().leaving = true;
    wait_idle(inner).await;
    stop_all_here(inner).await;
    let ids: Vec<String> = inner.local().workers.drain().map(|(id, _)| id).collect();
    for id in ids {
        let key = format!("{}{id}", records::WORKERS);
        if let Err(e) = inner.kv.delete(&key, None).await {
            tracing::debug!(error = %e, worker = id, "removing a pool worker's key");
        }
    }
    let node_key = format!("{}{}", records::NODES, inner.id);
    if let Err(e) = inner.kv.delete(&node_key, None).await {
        tracing::debug!(error = %e, "removing the pool node's key");
    }
    inner.shut_down.store(true, Ordering::SeqCst);
    inner.changed.notify_waiters();
    // The node that asked keeps watching until every other node has left.
    if !inner.shutting_down.load(Ordering::SeqCst) {
        inner.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{PoolNode, PoolOptions};

    #[tokio::test]
    async fn a_leaving_node_writes_over_a_refresh_that_moved_its_key() {
        let server = crate::DevServer::start().expect("nats-server (make setup)");
        let client = crate::ClientOptions::new()
            .connect(server.url())
            .await
            .expect("connect");
        let node = PoolNode::join(&client, "leases", PoolOptions::new())
            .await
            .expect("joins");
        let inner = &node.inner;
        let bound = Duration::from_secs(5);
        let key = format!("{}w1", records::WORKERS);
        let first = write_lease(inner, &key, Bytes::from_static(b"1"), 0, bound)
            .await
            .expect("created");
        // The keepalive loop's refresh lands first: the revision read before it is stale.
        let refreshed = write_lease(inner, &key, Bytes::from_static(b"2"), first, bound)
            .await
            .expect("refreshed");

        let stale = write_lease(inner, &key, Bytes::from_static(b"3"), first, bound).await;
        assert_eq!(stale.map_err(|e| e.kind()), Err(ErrorKind::KeyExists));
        let left = overwrite_lease(inner, &key, Bytes::from_static(b"leaving"), first, bound)
            .await
            .expect("written over the refresh");
        assert!(left > refreshed);
        let stored = inner.kv.get(&key).await.expect("read").expect("present");
        assert_eq!(
            (stored.revision, &stored.value[..]),
            (left, &b"leaving"[..])
        );
        node.close().await.expect("closes");
    }
}
