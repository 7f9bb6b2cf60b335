// SPDX-License-Identifier: Apache-2.0
//! One delivery, start to end: load and verify, the decision table, dependencies, admission, the
//! CAS save of `active`, the handler, the final save and the acknowledgement.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use chrono::Utc;
use futures::{FutureExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, Result};
use crate::handler::{HandlerError, HandlerResult, ProgressTarget, TaskContext};
use crate::metrics;
use crate::store::ProcessItem;
use crate::task::{Task, TaskResult, TaskState};
use crate::wire::Timestamp;
use crate::worker::Slot;
use crate::worker::admission::{Admit, Both, Permit};
use crate::worker::decide::{
    self, AfterFailure, BLOCKED_NAK_DELAY, Decision, Dependencies, Parent,
};
use crate::worker::delivery::Delivery;
use crate::worker::outage::{OutageRetry, through_outage};
use crate::worker::pull::QueueConsumer;

/// How long a failing admission check waits before it is asked again.
const ADMISSION_ERROR_RETRY: Duration = Duration::from_secs(1);

enum Outcome {
    Done(HandlerResult),
    Released,
}

impl QueueConsumer {
    pub(crate) async fn process(
        &self,
        message: async_nats::jetstream::Message,
        preloaded: Option<Task>,
        slot: Slot,
        hard_stop: CancellationToken,
    ) {
        let mut delivery = Delivery::new(&self.storage.nats, &message);
        self.process_delivery(&message, &mut delivery, preloaded, slot, hard_stop)
            .await
    }

    /// [`QueueConsumer::process`] with the delivery made by the caller, which can then tell
    /// whether the item was settled, and maybe the task document loaded while the item waited.
    pub(crate) async fn process_delivery(
        &self,
        message: &async_nats::jetstream::Message,
        delivery: &mut Delivery,
        preloaded: Option<Task>,
        slot: Slot,
        hard_stop: CancellationToken,
    ) {
        let Some(item) = ProcessItem::parse(&message.payload) else {
            tracing::warn!(subject = %message.subject, "terminating corrupt work item");
            metrics::inc(&metrics::CORRUPT_ITEMS, &[&self.queue.name]);
            return delivery.term().await;
        };
        let loaded = match preloaded.filter(|task| task.id == item.job) {
            Some(task) => Ok(task),
            None => through_outage!(
                OutageRetry::new("loading task", Some(&hard_stop)),
                self.storage.load_task(&item.job).await
            ),
        };
        let looking_again = match &loaded {
            Err(e) if e.kind() == ErrorKind::TaskNotFound => {
                decide::missing_task_delay(delivery.delivered, self.queue.max_tries)
            }
            _ => None,
        };
        if loaded.is_err() && looking_again.is_none() {
            metrics::inc(&metrics::TASK_NOT_FOUND, &[&self.queue.name]);
        }
        let mut task = match loaded {
            Ok(task) => task,
            Err(e) if e.kind() == ErrorKind::TaskNotFound => {
                if let Some(delay) = looking_again {
                    tracing::debug!(task = %item.job, delivered = delivery.delivered, "task not found yet; looking again");
                    return delivery.nak(delay).await;
                }
                tracing::warn!(task = %item.job, "terminating work item of a task that does not exist");
                return delivery.term().await;
            }
            Err(e) if e.kind() == ErrorKind::InvalidDocument => {
                tracing::warn!(task = %item.job, error = %e, "terminating work item of a corrupt task document");
                return delivery.term().await;
            }
            Err(e) => {
                tracing::warn!(task = %item.job, error = %e, "loading task failed; retrying later");
                return delivery.nak(BLOCKED_NAK_DELAY).await;
            }
        };
        if self.order.is_some() {
            // Waits were deliveries too; the task document counts the tries.
            delivery.delivered = task.tries.saturating_add(1);
        }
        let verification = self.verify(&task).err().map(|e| e.to_string());
        let mut decision = decide::decide(&task, verification.as_deref(), &self.queue, Utc::now());
        if decision == Decision::CheckDependencies {
            decision = match self.check_dependencies(&task).await {
                Dependencies::Ready(results) => {
                    task.dependency_results.extend(results);
                    Decision::Start
                }
                Dependencies::Waiting => Decision::Defer(BLOCKED_NAK_DELAY),
                Dependencies::Failed(reason) => {
                    metrics::inc(&metrics::DEPENDENCIES_FAILED, &[]);
                    let last_err = format!("task dependencies failed: {reason}");
                    return self
                        .finish(&mut task, TaskState::Unreachable, last_err, delivery)
                        .await;
                }
            };
        }
        match decision {
            Decision::Start => {}
            Decision::Terminate(error) => {
                tracing::warn!(task = %task.id, %error, "terminating task that failed verification");
                return self
                    .finish(&mut task, TaskState::Terminated, error, delivery)
                    .await;
            }
            Decision::Settle => return delivery.ack().await,
            Decision::Defer(delay) => return delivery.nak(delay).await,
            Decision::Expire(why) => {
                tracing::info!(task = %task.id, "expiring task: {why}");
                let counter = if why == decide::PAST_DEADLINE {
                    &metrics::PAST_DEADLINE
                } else {
                    &metrics::PAST_MAX_TRIES
                };
                metrics::inc(counter, &[&self.queue.name]);
                return self.expire(&mut task, delivery).await;
            }
            Decision::CheckDependencies => return delivery.nak(BLOCKED_NAK_DELAY).await,
        }
        let Some((permit, _slot)) = self.admit(&mut task, slot, delivery, &hard_stop).await else {
            return;
        };
        task.state = TaskState::Active;
        task.tried = Some(Timestamp::now());
        task.last_err.clear();
        task.waiting_for = None;
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
                // Someone saved first: another worker, which owns this try and settles the item,
                // or a cancellation that made the task final, which settles it here.
                tracing::debug!(task = %task.id, error = %e, "task changed before it started");
                match self.storage.load_task(&task.id).await {
                    Ok(current) if current.state.is_final() => delivery.ack().await,
                    // An ordered item is this worker's alone: its document changed while it
                    // waited (it was loaded early), so it goes round again.
                    _ if self.order.is_some() => delivery.nak(Duration::ZERO).await,
                    _ => {}
                }
            } else {
                tracing::warn!(task = %task.id, error = %e, "marking task active failed; retrying later");
                delivery.nak(BLOCKED_NAK_DELAY).await;
            }
            return;
        }
        task.tries = task.tries.saturating_add(1);
        metrics::add(&metrics::HANDLERS_BUSY, &[], 1.0);
        let started = std::time::Instant::now();
        let outcome = self.run_handler(&task, delivery, &hard_stop).await;
        metrics::add(&metrics::HANDLERS_BUSY, &[], -1.0);
        if let Outcome::Done(result) = &outcome {
            let labels = [self.queue.name.as_str(), task.task_type.as_str()];
            let took = started.elapsed();
            metrics::observe(&metrics::HANDLER_RUNTIME, &labels, took);
            metrics::observe(&metrics::HANDLER_DURATION, &labels, took);
            if result.is_err() {
                metrics::inc(&metrics::HANDLER_ERRORS, &labels);
            }
        }
        drop(permit);
        self.record_outcome(task, outcome, delivery).await;
    }

    fn verify(&self, task: &Task) -> Result<()> {
        match &self.options.verifier {
            Some(verifier) => verifier.verify(task, self.options.signatures_optional),
            None => Ok(()),
        }
    }

    /// Asks the admission step until it grants a permit; while it says "later" the task holds
    /// no handler slot and its item stays with this worker (kept alive with in-progress acks), so
    /// waiting never counts as a try. `None` if the delivery was settled here (deadline passed,
    /// shutdown).
    async fn admit(
        &self,
        task: &mut Task,
        slot: Slot,
        delivery: &Delivery,
        hard_stop: &CancellationToken,
    ) -> Option<(Permit, Slot)> {
        let route = self.mux.admission_for(&task.task_type);
        let admission = match (self.options.admission.clone(), route) {
            (None, None) => return Some((Permit::unit(), slot)),
            (Some(one), None) | (None, Some(one)) => one,
            (Some(worker), Some(route)) => std::sync::Arc::new(Both(worker, route)),
        };
        let mut slot = Some(slot);
        loop {
            let wait = match admission.admit(task).await {
                Ok(Admit::Granted(permit)) => {
                    let slot = match slot.take() {
                        Some(slot) => slot,
                        None => tokio::select! {
                            slot = self.slots.acquire() => slot?,
                            _ = hard_stop.cancelled() => {
                                delivery.nak(Duration::ZERO).await;
                                return None;
                            }
                        },
                    };
                    return Some((permit, slot));
                }
                Ok(Admit::RetryAfter(wait)) => {
                    metrics::inc(
                        &metrics::ADMISSION_WAITS,
                        &[&self.queue.name, &task.task_type],
                    );
                    wait
                }
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "admission check failed; asking again");
                    ADMISSION_ERROR_RETRY
                }
            };
            slot = None;
            let until_deadline = task.deadline.map(|d| d.until());
            let wait = until_deadline.map_or(wait, |left| wait.min(left));
            if !self.wait_admission(wait, delivery, hard_stop).await {
                delivery.nak(Duration::ZERO).await;
                return None;
            }
            if task.deadline.is_some_and(|d| d.until().is_zero()) {
                self.expire(task, delivery).await;
                return None;
            }
        }
    }

    /// Sleeps `wait` while keeping the item; false if the worker is stopping.
    async fn wait_admission(
        &self,
        wait: Duration,
        delivery: &Delivery,
        hard_stop: &CancellationToken,
    ) -> bool {
        let keep_alive = (self.queue.max_run_time / 2).max(Duration::from_millis(500));
        let until = tokio::time::Instant::now() + wait;
        loop {
            let next = until.min(tokio::time::Instant::now() + keep_alive);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = hard_stop.cancelled() => return false,
            }
            if next >= until {
                return true;
            }
            delivery.in_progress().await;
        }
    }

    /// Loads each parent (verified as asyncjobs' `LoadTaskByID` does) and applies the rules.
    async fn check_dependencies(&self, task: &Task) -> Dependencies {
        let parents = futures::stream::iter(task.dependencies.clone())
            .then(|id| async move {
                let parent = match self.storage.load_task(&id).await {
                    Ok(parent) => match self.verify(&parent) {
                        Ok(()) => Parent::Loaded {
                            state: parent.state,
                            result: parent.result,
                        },
                        Err(e) => Parent::Unverified(e.to_string()),
                    },
                    Err(e) if e.kind() == ErrorKind::TaskNotFound => Parent::NotFound,
                    Err(e) => {
                        tracing::warn!(parent = %id, error = %e, "loading dependency failed");
                        Parent::Unavailable
                    }
                };
                (id, parent)
            })
            .collect::<Vec<_>>()
            .await;
        decide::decide_dependencies(parents, task.load_dependencies)
    }

    /// Past its deadline or out of tries: asyncjobs stores only the new state.
    async fn expire(&self, task: &mut Task, delivery: &Delivery) {
        task.state = TaskState::Expired;
        if self.store_final(task).await {
            self.release_order(delivery).await;
            delivery.term().await;
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
        let ctx = TaskContext::new(
            delivery.received,
            self.queue.max_run_time,
            progress,
            delivery.trace_context.clone(),
        );
        let running_here = self.cancels.register(&task.id);
        let handler = self.mux.handler_for(&task.task_type);
        let call =
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(ctx.clone(), task.clone())));
        #[cfg(feature = "opentelemetry")]
        let call = call.map(|future| {
            use tracing::Instrument as _;
            let span = crate::trace::otel::handle_span(task, delivery.trace_context.as_ref());
            future.instrument(span).boxed()
        });
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
                _ = running_here.cancel.cancelled() => {
                    ctx.cancel();
                    let reason = running_here.cancel.reason();
                    return Outcome::Done(Err(HandlerError::terminate(format!("cancelled: {reason}"))));
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
                    self.release_order(delivery).await;
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
                if decide::after_failure(&task, &self.queue, delivery.delivered)
                    == AfterFailure::Expire
                {
                    metrics::inc(&metrics::PAST_MAX_TRIES, &[&self.queue.name]);
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
                if let Some(order) = &self.order {
                    order.hold(delivery).await;
                }
                let n = u32::try_from(delivery.delivered).unwrap_or(20);
                delivery.nak(self.options.retry_policy.delay(n)).await;
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
        task.tried = Some(Timestamp::now());
        if self.store_final(task).await {
            self.release_order(delivery).await;
            delivery.term().await;
        }
    }

    /// A final task no longer holds back its order key.
    async fn release_order(&self, delivery: &Delivery) {
        if let Some(order) = &self.order {
            order.release(delivery).await;
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
        if self.options.discard.contains(&task.state) {
            self.storage.publish_event(task).await?;
            self.storage.delete_task(task).await
        } else {
            self.storage.save_task(task).await
        }
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> HandlerError {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    HandlerError::retry(format!("handler panicked: {text}"))
}
