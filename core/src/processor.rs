// SPDX-License-Identifier: Apache-2.0
//! The worker loop: pulls work items in batches sized to the free handler slots, and takes each
//! through asyncjobs' decision table (load and verify, state checks, deadline, tries, dependencies,
//! CAS save of `active`, handler, final save, ack).

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use bytes::Bytes;
use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, Result};
use crate::handler::{HandlerError, HandlerResult, ProgressTarget, TaskContext};
use crate::mux::Mux;
use crate::queue::Queue;
use crate::retry::RetryPolicy;
use crate::signing::TaskVerifier;
use crate::storage::{ProcessItem, Storage};
use crate::task::{Task, TaskResult, TaskState};
use crate::wire::Timestamp;

/// asyncjobs' `defaultBlockedNakTime`: how soon a task waiting on dependencies is looked at again.
const BLOCKED_NAK_DELAY: Duration = Duration::from_secs(5);
/// How long one pull request waits for items before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How often a waiting pull looks for a reconnect, which would have lost its request.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);
/// How long freed handler slots are gathered before pulling for them while handlers are busy.
const PULL_GATHER: Duration = Duration::from_millis(2);
/// Most items asked for in one pull.
const MAX_PULL_BATCH: usize = 256;
/// Repeats of a storage call through an outage before giving up on it (about a minute).
const STORAGE_ATTEMPTS: u32 = 12;

/// Everything the worker loop needs, fixed for the duration of one `run`.
pub(crate) struct Processor {
    pub(crate) storage: Storage,
    pub(crate) queue: Queue,
    pub(crate) consumer: PullConsumer,
    pub(crate) mux: Mux,
    pub(crate) concurrency: usize,
    pub(crate) retry_policy: RetryPolicy,
    pub(crate) verifier: Option<TaskVerifier>,
    pub(crate) signatures_optional: bool,
    pub(crate) discard: HashSet<TaskState>,
    pub(crate) shutdown_grace: Duration,
}

/// Fire-and-forget acknowledgement of one delivery, with asyncjobs' exact bodies.
struct Delivery {
    nats: async_nats::Client,
    /// When this worker got the item: JetStream's redelivery timer runs from about then.
    received: tokio::time::Instant,
    ack_subject: Option<String>,
    delivered: i64,
}

impl Delivery {
    async fn reply(&self, body: Bytes) {
        let Some(subject) = &self.ack_subject else {
            return;
        };
        if let Err(e) = self.nats.publish(subject.clone(), body).await {
            tracing::warn!(error = %e, "acknowledging work item failed; it will be redelivered");
        }
    }

    async fn ack(&self) {
        self.reply(Bytes::from_static(b"+ACK")).await
    }

    async fn term(&self) {
        self.reply(Bytes::from_static(b"+TERM")).await
    }

    async fn nak(&self, delay: Duration) {
        self.reply(format!("-NAK {{\"delay\": {}}}", delay.as_nanos()).into())
            .await
    }
}

impl Processor {
    /// Runs until `shutdown` fires, then lets in-flight handlers finish within the grace period and
    /// hands the rest back to the queue.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.concurrency.max(1)));
        let hard_stop = CancellationToken::new();
        let mut in_flight = JoinSet::new();
        let mut pull_failures = 0u32;

        'pulling: while !shutdown.is_cancelled() {
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit { Ok(p) => p, Err(_) => break },
                _ = shutdown.cancelled() => break,
            };
            let mut permits = vec![first];
            // Under load, slots free up one handler at a time; gathering them for a moment turns
            // one pull request per task into one per batch.
            let gather_until = tokio::time::Instant::now() + PULL_GATHER;
            while permits.len() < MAX_PULL_BATCH.min(this.concurrency) {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) if in_flight.is_empty() || permits.len() >= this.concurrency / 2 => {
                        break;
                    }
                    Err(_) => {
                        match tokio::time::timeout_at(gather_until, slots.clone().acquire_owned())
                            .await
                        {
                            Ok(Ok(p)) => permits.push(p),
                            _ => break,
                        }
                    }
                }
            }
            let connection = this.connection_count();
            let batch = this
                .consumer
                .batch()
                .max_messages(permits.len())
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    pull_failures += 1;
                    this.pause_pulling(pull_failures, &e, &shutdown).await;
                    continue;
                }
            };
            let mut pull_error = None;
            let mut reconnect_check = tokio::time::interval(RECONNECT_CHECK);
            loop {
                tokio::select! {
                    next = batch.next() => match next {
                        Some(Ok(message)) => {
                            let Some(permit) = permits.pop() else { break };
                            let this = this.clone();
                            let hard_stop = hard_stop.clone();
                            in_flight.spawn(async move { this.process(message, permit, hard_stop).await });
                        }
                        Some(Err(e)) => {
                            pull_error = Some(e);
                            break;
                        }
                        None => break,
                    },
                    // A pull request dies with the connection it was sent on, and the client would
                    // otherwise wait out its expiry before asking again.
                    _ = reconnect_check.tick() => if this.connection_count() != connection {
                        tracing::debug!(queue = %this.queue.name, "reconnected; pulling again");
                        break;
                    },
                    _ = shutdown.cancelled() => {
                        // Items already on their way to this pull are handed straight back.
                        let drain = async {
                            while let Some(Ok(message)) = batch.next().await {
                                this.delivery(&message).nak(Duration::ZERO).await;
                            }
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                        break 'pulling;
                    }
                }
            }
            while in_flight.try_join_next().is_some() {}
            match pull_error {
                Some(e) => {
                    pull_failures += 1;
                    this.pause_pulling(pull_failures, &e, &shutdown).await;
                }
                None => pull_failures = 0,
            }
        }

        let drained = tokio::time::timeout(this.shutdown_grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!(queue = %this.queue.name, "grace period over; releasing unfinished tasks");
            hard_stop.cancel();
            while in_flight.join_next().await.is_some() {}
        }
        let _ = this.storage.nats.flush().await;
        Ok(())
    }

    /// Backs off after a failed pull: a server that answers every pull with an error (JetStream
    /// unavailable, a leader election under way) would otherwise be asked again in a tight loop.
    async fn pause_pulling(
        &self,
        failures: u32,
        error: &(impl std::fmt::Display + Sync),
        shutdown: &CancellationToken,
    ) {
        let pause = storage_retry().delay(failures);
        tracing::warn!(%error, queue = %self.queue.name, ?pause, "pulling work failed");
        tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = shutdown.cancelled() => {} }
    }

    /// Connections made so far by the client; it changes when the client reconnects.
    fn connection_count(&self) -> u64 {
        self.storage
            .nats
            .statistics()
            .connects
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn delivery(&self, message: &async_nats::jetstream::Message) -> Delivery {
        Delivery {
            nats: self.storage.nats.clone(),
            received: tokio::time::Instant::now(),
            ack_subject: message.reply.as_ref().map(|s| s.to_string()),
            delivered: message.info().map(|i| i.delivered).unwrap_or(1),
        }
    }

    async fn process(
        &self,
        message: async_nats::jetstream::Message,
        _permit: OwnedSemaphorePermit,
        hard_stop: CancellationToken,
    ) {
        let delivery = self.delivery(&message);
        let Some(item) = ProcessItem::parse(&message.payload) else {
            tracing::warn!(subject = %message.subject, "terminating corrupt work item");
            return delivery.term().await;
        };
        let loaded = through_outage!(
            OutageRetry::new("loading task", Some(&hard_stop)),
            self.storage.load_task(&item.job).await
        );
        let mut task = match loaded {
            Ok(task) => task,
            Err(e) if e.kind() == ErrorKind::TaskNotFound => {
                tracing::warn!(task = %item.job, "terminating work item of a task that does not exist");
                return delivery.term().await;
            }
            Err(e) => {
                tracing::warn!(task = %item.job, error = %e, "loading task failed; retrying later");
                return delivery.nak(BLOCKED_NAK_DELAY).await;
            }
        };
        if let Some(verifier) = &self.verifier
            && let Err(e) = verifier.verify(&task, self.signatures_optional)
        {
            tracing::warn!(task = %task.id, error = %e, "terminating task that failed verification");
            return self
                .finish(&mut task, TaskState::Terminated, e.to_string(), &delivery)
                .await;
        }
        if !self.ready_to_start(&mut task, &delivery).await {
            return;
        }
        task.state = TaskState::Active;
        task.tried = Some(Timestamp::now());
        task.last_err.clear();
        let saved = through_outage!(
            OutageRetry::new("marking task active", Some(&hard_stop)),
            self.storage.save_task(&mut task).await
        );
        let saved = match saved {
            Err(e)
                if e.kind() == ErrorKind::TaskUpdateFailed
                    && self.found_own_write(&mut task).await =>
            {
                Ok(())
            }
            other => other,
        };
        if let Err(e) = saved {
            if e.kind() == ErrorKind::TaskUpdateFailed {
                // Another worker saved first: it owns this try and will settle the item.
                tracing::debug!(task = %task.id, error = %e, "task taken by another worker");
            } else {
                tracing::warn!(task = %task.id, error = %e, "marking task active failed; retrying later");
                delivery.nak(BLOCKED_NAK_DELAY).await;
            }
            return;
        }
        task.tries += 1;
        let outcome = self.run_handler(&task, &delivery, &hard_stop).await;
        self.record_outcome(task, outcome, &delivery).await;
    }

    /// Steps 2–5 of the decision table; false if the delivery was settled here.
    async fn ready_to_start(&self, task: &mut Task, delivery: &Delivery) -> bool {
        match task.state {
            TaskState::Active => {
                let age = task.tried.map(|t| t.elapsed()).unwrap_or_default();
                if task.tried.is_none() || age < self.queue.max_run_time {
                    // Still owned by a live worker, or by one that died: look again once it is stale.
                    let stale_in = self.queue.max_run_time.saturating_sub(age);
                    delivery.nak(stale_in + Duration::from_millis(100)).await;
                    return false;
                }
            }
            TaskState::Complete
            | TaskState::Expired
            | TaskState::Terminated
            | TaskState::Unreachable => {
                delivery.ack().await;
                return false;
            }
            _ => {}
        }
        if task.deadline.is_some_and(|d| d.until().is_zero()) {
            self.finish(task, TaskState::Expired, "past deadline".into(), delivery)
                .await;
            return false;
        }
        if task.max_tries > 0 && task.tries >= task.max_tries {
            self.finish(
                task,
                TaskState::Expired,
                "exceeded maximum tries".into(),
                delivery,
            )
            .await;
            return false;
        }
        if task.state == TaskState::Blocked && !task.dependencies.is_empty() {
            match self.check_dependencies(task).await {
                Dependencies::Ready => {}
                Dependencies::Waiting => {
                    delivery.nak(BLOCKED_NAK_DELAY).await;
                    return false;
                }
                Dependencies::Failed(reason) => {
                    let last_err = format!("task dependencies failed: {reason}");
                    self.finish(task, TaskState::Unreachable, last_err, delivery)
                        .await;
                    return false;
                }
            }
        }
        true
    }

    async fn check_dependencies(&self, task: &mut Task) -> Dependencies {
        let mut waiting = false;
        for id in task.dependencies.clone() {
            match self.storage.load_task(&id).await {
                Ok(parent) => match parent.state {
                    TaskState::Complete => {
                        if task.load_dependencies {
                            task.dependency_results.insert(id, parent.result);
                        }
                    }
                    // asyncjobs leaves children of an unreachable parent blocked forever.
                    TaskState::Expired
                    | TaskState::Terminated
                    | TaskState::QueueError
                    | TaskState::Unknown
                    | TaskState::Unreachable => {
                        return Dependencies::Failed(format!(
                            "dependency {id} is {}",
                            parent.state
                        ));
                    }
                    _ => waiting = true,
                },
                Err(e) if e.kind() == ErrorKind::TaskNotFound => {
                    return Dependencies::Failed(format!("task not found: {id}"));
                }
                Err(e) => {
                    tracing::warn!(task = %task.id, parent = %id, error = %e, "loading dependency failed");
                    waiting = true;
                }
            }
        }
        if waiting {
            Dependencies::Waiting
        } else {
            Dependencies::Ready
        }
    }

    async fn run_handler(
        &self,
        task: &Task,
        delivery: &Delivery,
        hard_stop: &CancellationToken,
    ) -> Outcome {
        let progress = delivery
            .ack_subject
            .clone()
            .map(|ack_subject| ProgressTarget {
                nats: self.storage.nats.clone(),
                ack_subject,
            });
        let ctx = TaskContext::new(delivery.received, self.queue.max_run_time, progress);
        let handler = self.mux.handler_for(&task.task_type);
        let call =
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(ctx.clone(), task.clone())));
        let mut running = match call {
            Ok(future) => AssertUnwindSafe(future).catch_unwind().boxed(),
            Err(panic) => return Outcome::Done(Err(panicked(panic))),
        };
        loop {
            let deadline = ctx.deadline_instant();
            tokio::select! {
                result = &mut running => {
                    return Outcome::Done(result.unwrap_or_else(|panic| Err(panicked(panic))));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if ctx.deadline_instant() <= tokio::time::Instant::now() {
                        ctx.cancel();
                        return Outcome::Done(Err(HandlerError::retry("context deadline exceeded")));
                    }
                }
                _ = hard_stop.cancelled() => {
                    ctx.cancel();
                    return Outcome::Released;
                }
            }
        }
    }

    async fn record_outcome(&self, mut task: Task, outcome: Outcome, delivery: &Delivery) {
        match outcome {
            Outcome::Done(Ok(payload)) => {
                let now = Timestamp::now();
                task.result = Some(TaskResult {
                    payload,
                    completed: now,
                });
                task.tried = Some(now);
                task.last_err.clear();
                task.state = TaskState::Complete;
                // Unlike asyncjobs, the item is only acked once `complete` is stored: acking after a
                // failed save would leave the task `active` forever.
                if self.store_final(&mut task).await {
                    delivery.ack().await;
                }
            }
            Outcome::Done(Err(e)) if e.is_terminate() => {
                self.finish(
                    &mut task,
                    TaskState::Terminated,
                    e.message().into(),
                    delivery,
                )
                .await;
            }
            Outcome::Done(Err(e)) => {
                let out_of_tries = (task.max_tries > 0 && task.tries >= task.max_tries)
                    || (self.queue.max_tries > 0 && delivery.delivered >= self.queue.max_tries);
                if out_of_tries {
                    return self
                        .finish(&mut task, TaskState::Expired, e.message().into(), delivery)
                        .await;
                }
                task.state = TaskState::Retry;
                task.tried = Some(Timestamp::now());
                task.last_err = e.message().into();
                // Left `active`, the task would not be tried again before its max run time.
                let saved = through_outage!(
                    OutageRetry::new("saving failed try", None),
                    self.storage.save_task(&mut task).await
                );
                if let Err(e) = saved {
                    tracing::error!(task = %task.id, error = %e, "saving failed try");
                }
                let n = u32::try_from(delivery.delivered).unwrap_or(20);
                delivery.nak(self.retry_policy.delay(n)).await;
            }
            Outcome::Released => {
                // The try did not finish because this worker stopped; it does not count.
                task.state = TaskState::Retry;
                task.tries -= 1;
                task.last_err = "worker shut down before the handler finished".into();
                if let Err(e) = self.storage.save_task(&mut task).await {
                    tracing::error!(task = %task.id, error = %e, "saving released task");
                }
                delivery.nak(Duration::ZERO).await;
            }
        }
    }

    /// Moves the task to a final state, stores (or discards) it and terminates its item.
    async fn finish(
        &self,
        task: &mut Task,
        state: TaskState,
        last_err: String,
        delivery: &Delivery,
    ) {
        task.state = state;
        task.last_err = last_err;
        if state != TaskState::Unreachable {
            task.tried = Some(Timestamp::now());
        }
        if self.store_final(task).await {
            delivery.term().await;
        }
    }

    /// Stores a final state, retrying through a storage outage even while shutting down: the try
    /// is over and worth keeping. False if it could not be stored; the item is then left
    /// unacknowledged so that JetStream redelivers it.
    async fn store_final(&self, task: &mut Task) -> bool {
        let stored = through_outage!(
            OutageRetry::new("storing final state", None),
            self.save_or_discard(task).await
        );
        let Err(e) = stored else { return true };
        // A newer write came first: ours, whose reply was lost in an outage, or another try's after
        // the item was redelivered. If it is final, the task is settled.
        if e.kind() == ErrorKind::TaskUpdateFailed {
            let current = self.storage.load_task(&task.id).await;
            if let Ok(current) = current
                && current.state.is_final()
            {
                tracing::info!(task = %task.id, state = %current.state, "task was already stored as final");
                return true;
            }
        }
        tracing::error!(task = %task.id, state = %task.state, error = %e, "storing final state failed");
        false
    }

    /// Whether the stored document is `task` as this worker last saved it: a save repeated
    /// through an outage meets its own first attempt when only the reply to that was lost.
    async fn found_own_write(&self, task: &mut Task) -> bool {
        match self.storage.load_task(&task.id).await {
            Ok(current) if current.state == task.state && current.tried == task.tried => {
                task.seq = current.seq;
                true
            }
            _ => false,
        }
    }

    async fn save_or_discard(&self, task: &mut Task) -> Result<()> {
        if self.discard.contains(&task.state) {
            self.storage.publish_event(task).await?;
            self.storage.delete_task(task).await
        } else {
            self.storage.save_task(task).await
        }
    }
}

enum Dependencies {
    Ready,
    Waiting,
    Failed(String),
}

enum Outcome {
    Done(HandlerResult),
    Released,
}

/// Paces the repeats of one storage call through a short outage (a server restart, a leader
/// election) until it succeeds, fails for another reason, or `abandon` (if any) fires. Handing the
/// item back at once is no use then: a NAK sent to a server that is going down is lost, and the item
/// would wait out the queue's max run time.
struct OutageRetry<'a> {
    what: &'static str,
    abandon: Option<&'a CancellationToken>,
    attempt: u32,
}

/// Evaluates `$call` (an awaited storage call) until `$retry` says it is not worth repeating, and
/// gives its last result. A macro because the call borrows from the caller's scope (`&mut task`).
macro_rules! through_outage {
    ($retry:expr, $call:expr) => {{
        let mut retry = $retry;
        loop {
            let result = $call;
            if !retry.again(&result).await {
                break result;
            }
        }
    }};
}
use through_outage;

impl<'a> OutageRetry<'a> {
    fn new(what: &'static str, abandon: Option<&'a CancellationToken>) -> Self {
        Self {
            what,
            abandon,
            attempt: 0,
        }
    }

    /// True, after a pause, if `result` is a storage error worth another try.
    async fn again<T>(&mut self, result: &Result<T>) -> bool {
        let Err(e) = result else { return false };
        if e.kind() != ErrorKind::Storage
            || self.attempt >= STORAGE_ATTEMPTS
            || self.abandon.is_some_and(CancellationToken::is_cancelled)
        {
            return false;
        }
        self.attempt += 1;
        tracing::warn!(error = %e, attempt = self.attempt, "{} failed; retrying", self.what);
        let pause = tokio::time::sleep(storage_retry().delay(self.attempt));
        match self.abandon {
            Some(abandon) => tokio::select! { _ = pause => {}, _ = abandon.cancelled() => {} },
            None => pause.await,
        }
        true
    }
}

/// asyncjobs' `retryLinearTenSeconds` (0.5s to 10s), used when storage is unreachable.
fn storage_retry() -> RetryPolicy {
    RetryPolicy::linear(20, Duration::from_millis(500), Duration::from_secs(10), 0.1)
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> HandlerError {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    HandlerError::retry(format!("handler panicked: {text}"))
}
