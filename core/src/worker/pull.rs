// SPDX-License-Identifier: Apache-2.0
//! The pull loop of one queue: pulls work items in batches sized to the free handler slots and
//! hands each to [`process`](super::process), until shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::{FutureExt as _, StreamExt as _};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::metrics;
use crate::mux::Mux;
use crate::queue::Queue;
use crate::store::Storage;
use crate::worker::delivery::Delivery;
use crate::worker::options::WorkerOptions;
use crate::worker::outage::storage_retry;
use crate::worker::prefetch::Prefetch;
use crate::worker::{Credit, Slot, Slots};

/// How long one pull request waits for items before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How often a waiting pull looks for a reconnect, which would have lost its request.
const RECONNECT_CHECK: Duration = Duration::from_millis(250);
/// How long freed handler slots are gathered before pulling for them while handlers are busy.
const PULL_GATHER: Duration = Duration::from_millis(2);
/// Most items asked for in one pull.
const MAX_PULL_BATCH: usize = 256;

/// Everything one queue's loop needs, fixed for the duration of one run.
#[derive(Clone)]
pub(crate) struct QueueConsumer {
    pub(crate) storage: Storage,
    pub(crate) queue: Queue,
    pub(crate) consumer: PullConsumer,
    pub(crate) mux: Mux,
    pub(crate) options: Arc<WorkerOptions>,
    pub(crate) slots: Slots,
    pub(crate) cancels: Arc<crate::worker::cancel::Cancels>,
    /// Set for the loop of an ordered queue's keyed items.
    pub(crate) order: Option<Arc<crate::worker::ordered::OrderGate>>,
}

impl QueueConsumer {
    /// Runs until `shutdown` fires, then lets in-flight handlers finish within the grace period
    /// (cut short by `hard_stop`) and hands the rest back to the queue.
    pub(crate) async fn run(
        self,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
    ) -> Result<()> {
        let this = Arc::new(self);
        let slots = this.slots.clone();
        let mut in_flight = JoinSet::new();
        let mut pull_failures = 0u32;

        'pulling: while !shutdown.is_cancelled() {
            if this.storage.ensure_open().is_err() {
                tracing::info!(queue = %this.queue.name, "client closed; the worker stops");
                break;
            }
            let first = tokio::select! {
                credit = slots.credit() => match credit { Some(c) => c, None => break },
                _ = shutdown.cancelled() => break,
            };
            let mut permits = vec![first];
            // Under load, slots free up one handler at a time; gathering them for a moment turns
            // one pull request per task into one per batch.
            let gather_until = tokio::time::Instant::now() + PULL_GATHER;
            while permits.len() < MAX_PULL_BATCH.min(slots.size()) {
                match slots.try_credit() {
                    Some(p) => permits.push(p),
                    None if in_flight.is_empty() || permits.len() >= slots.size() / 2 => break,
                    None => match tokio::time::timeout_at(gather_until, slots.credit()).await {
                        Ok(Some(p)) => permits.push(p),
                        _ => break,
                    },
                }
            }
            let connection = this.connection_count();
            metrics::inc(&metrics::POLLS, &[&this.queue.name]);
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
                            // The rest of this pull's items usually arrived with the first: their
                            // documents are then loaded in one request.
                            let mut arrived = vec![message];
                            let mut ended = false;
                            while arrived.len() < permits.len() {
                                match batch.next().now_or_never() {
                                    Some(Some(Ok(message))) => arrived.push(message),
                                    Some(Some(Err(e))) => {
                                        pull_error = Some(e);
                                        break;
                                    }
                                    Some(None) => {
                                        ended = true;
                                        break;
                                    }
                                    None => break,
                                }
                            }
                            // Ordered items wait for their key's turn, by which time a document
                            // loaded now could be stale.
                            let prefetch = this
                                .order
                                .is_none()
                                .then(|| Prefetch::for_items(&this.storage, &arrived))
                                .flatten();
                            for (position, message) in arrived.into_iter().enumerate() {
                                let Some(credit) = permits.pop() else {
                                    ended = true;
                                    break;
                                };
                                let prefetched = prefetch.clone().map(|p| (p, position));
                                this.start(&mut in_flight, message, credit, prefetched, &shutdown, &hard_stop);
                            }
                            if pull_error.is_some() || ended {
                                break;
                            }
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
                                Delivery::new(&this.storage.nats, &message).nak(Duration::ZERO).await;
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

        let drained = tokio::time::timeout(this.options.shutdown_grace, async {
            tokio::select! {
                _ = async { while in_flight.join_next().await.is_some() {} } => true,
                _ = hard_stop.cancelled() => false,
            }
        })
        .await;
        if drained != Ok(true) {
            tracing::info!(queue = %this.queue.name, "grace period over; releasing unfinished tasks");
            hard_stop.cancel();
            while in_flight.join_next().await.is_some() {}
        }
        let _ = this.storage.nats.flush().await;
        Ok(())
    }

    /// Runs one pulled item in its own task: waits for its handler slot, then processes it.
    fn start(
        self: &Arc<Self>,
        in_flight: &mut JoinSet<()>,
        message: async_nats::jetstream::Message,
        credit: Credit,
        prefetched: Option<(Arc<Prefetch>, usize)>,
        shutdown: &CancellationToken,
        hard_stop: &CancellationToken,
    ) {
        let lined_up = self
            .order
            .as_ref()
            .map(|gate| gate.line_up_message(&message));
        // A document loaded before a wait for a priority turn could be stale by then.
        let prefetched = prefetched.filter(|_| matches!(credit, Credit::Slot(_)));
        let this = self.clone();
        let (shutdown, hard_stop) = (shutdown.clone(), hard_stop.clone());
        // Boxed here so the ~10 KB future is moved into place once, not copied along tokio's
        // spawn path.
        in_flight.spawn(Box::pin(async move {
            let Some(slot) = this.redeem(credit, &message, &shutdown).await else {
                if let Some(gate) = &this.order {
                    gate.forget(&message);
                }
                return;
            };
            match (&this.order, lined_up) {
                (Some(gate), Some(lined_up)) => {
                    this.process_in_order(gate, message, lined_up, slot, &shutdown, hard_stop)
                        .await
                }
                _ => {
                    let preloaded = match &prefetched {
                        Some((prefetch, position)) => prefetch.take(*position).await,
                        None => None,
                    };
                    this.process(message, preloaded, slot, hard_stop).await
                }
            }
        }));
    }

    /// The handler slot for an item pulled with `credit`. With a priority the item waits here
    /// for its turn, kept alive with in-progress acks; `None` (the item handed back) if the worker
    /// stops first, since no new task starts during shutdown.
    async fn redeem(
        &self,
        credit: Credit,
        message: &async_nats::jetstream::Message,
        shutdown: &CancellationToken,
    ) -> Option<Slot> {
        let waiting = match credit {
            Credit::Slot(slot) => return Some(slot),
            Credit::Waiting(waiting) => waiting,
        };
        let delivery = Delivery::new(&self.storage.nats, message);
        let keep_alive = (self.queue.max_run_time / 2).max(Duration::from_millis(500));
        let acquire = self.slots.acquire();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                slot = &mut acquire => {
                    drop(waiting);
                    return slot;
                }
                _ = tokio::time::sleep(keep_alive) => delivery.in_progress().await,
                _ = shutdown.cancelled() => {
                    delivery.nak(Duration::ZERO).await;
                    return None;
                }
            }
        }
    }

    /// Backs off after a failed pull: a server that answers every pull with an error (JetStream
    /// unavailable, a leader election under way) would otherwise be asked again in a tight loop.
    async fn pause_pulling(
        &self,
        failures: u32,
        error: &(impl std::fmt::Display + Sync),
        shutdown: &CancellationToken,
    ) {
        metrics::inc(&metrics::POLL_ERRORS, &[&self.queue.name]);
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
}
