// SPDX-License-Identifier: Apache-2.0
//! The worker: consumes one or more queues, each under its own `max_concurrent`, all under one
//! process-wide concurrency budget, and takes every delivery through the decision table
//! ([`decide`]), the admission step ([`admission`]), the handler and the final save.

pub(crate) mod admission;
pub(crate) mod cancel;
mod decide;
mod delivery;
mod due;
pub(crate) mod options;
mod ordered;
mod outage;
mod prefetch;
pub(crate) mod priority;
mod process;
mod pull;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, QueueHandle};
use crate::error::{Error, ErrorKind, Result};
use crate::mux::Mux;
use crate::worker::options::WorkerOptions;

/// Runs handlers for tasks of one or more queues.
///
/// # Examples
/// ```no_run
/// # async fn demo() -> jetjobs::Result<()> {
/// use jetjobs::{CancellationToken, Mux, Queue, Worker, WorkerOptions};
///
/// let client = jetjobs::connect("nats://127.0.0.1:4222").await?;
/// let email = client.open_queue(Queue::new("EMAIL").max_concurrent(20)).await?;
/// let reports = client.open_queue(Queue::new("REPORTS").max_concurrent(2)).await?;
///
/// let mut email_mux = Mux::new();
/// email_mux.handle("email:", |_ctx, _task| async { Ok(serde_json::json!("sent")) })?;
/// let mut report_mux = Mux::new();
/// report_mux.handle("", |_ctx, _task| async { Ok(serde_json::json!("built")) })?;
///
/// let mut worker = Worker::new(&client, WorkerOptions::new().concurrency(10));
/// worker.consume(&email, email_mux)?.consume(&reports, report_mux)?;
/// worker.run(CancellationToken::new()).await
/// # }
/// ```
pub struct Worker {
    client: Client,
    options: WorkerOptions,
    queues: Vec<(QueueHandle, Mux)>,
}

impl Worker {
    /// A worker of `client` with no queues yet.
    pub fn new(client: &Client, options: WorkerOptions) -> Self {
        Self {
            client: client.clone(),
            options,
            queues: Vec::new(),
        }
    }

    /// Consume `queue`, routing its tasks with `mux`. Its `max_concurrent` caps this worker's
    /// handlers of that queue, within the worker's concurrency budget.
    pub fn consume(&mut self, queue: &QueueHandle, mux: Mux) -> Result<&mut Self> {
        let name = &queue.settings().name;
        if self.queues.iter().any(|(q, _)| &q.settings().name == name) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("the worker already consumes queue {name}"),
            ));
        }
        self.queues.push((queue.clone(), mux));
        Ok(self)
    }

    /// Runs until `shutdown` is cancelled, then lets running handlers finish within the shutdown
    /// grace and hands the rest back to their queues.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        self.run_with_hard_stop(shutdown, CancellationToken::new())
            .await
    }

    /// Like [`Worker::run`]; cancelling `hard_stop` during the shutdown grace ends it at once:
    /// running handlers are cancelled and their tasks handed back without counting a try (a
    /// second Ctrl-C).
    pub async fn run_with_hard_stop(
        self,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
    ) -> Result<()> {
        self.options.validate()?;
        if self.queues.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "the worker consumes no queue",
            ));
        }
        let names: Vec<&str> = self.queues.iter().map(|(q, _)| q.name()).collect();
        let arbiter = match &self.options.priority {
            Some(priority) => Some(priority::Arbiter::new(
                self.options.concurrency,
                priority.policy(&names)?,
                names.len(),
            )),
            None => None,
        };
        self.client.serve_metrics().await?;
        let budget = Arc::new(Semaphore::new(self.options.concurrency));
        let options = Arc::new(self.options);
        // Stops every queue's loop when one fails, without cancelling the caller's token.
        let stop = shutdown.child_token();
        let cancels = Arc::new(cancel::Cancels::default());
        let listening = stop.child_token();
        let _stop_listening = listening.clone().drop_guard();
        cancels
            .clone()
            .listen(self.client.storage().nats.clone(), listening)
            .await?;
        let pull_loops = self.queues.len()
            + self
                .queues
                .iter()
                .filter(|(q, _)| q.ordered().is_some())
                .count();
        let mut loops = JoinSet::new();
        if let Some(name) = &options.task_scheduler {
            let scheduler = crate::TaskScheduler::new(&self.client, name)?;
            let stop = stop.clone();
            loops.spawn(async move { scheduler.run(stop).await });
        }
        for (index, (queue, mux)) in self.queues.into_iter().enumerate() {
            let local = queue.settings().max_concurrent.max(1) as usize;
            let size = local.min(options.concurrency);
            let slots = Slots {
                budget: match &arbiter {
                    Some(arbiter) => Budget::Arbitrated(arbiter.clone(), index),
                    None => Budget::Shared(budget.clone()),
                },
                queue: (local < options.concurrency).then(|| Arc::new(Semaphore::new(local))),
                // With a priority, or with several loops sharing the budget, a pull holds no
                // handler slots: an idle loop's long poll would keep them from the busy ones.
                // Each loop pulls one more than it can run, so that its next item is already
                // waiting when a slot frees while its pull for the one after is on its way.
                prefetch: (arbiter.is_some() || pull_loops > 1)
                    .then(|| Arc::new(Semaphore::new(size + 1))),
                size,
            };
            loops.spawn(
                due::DueMover {
                    storage: self.client.storage().clone(),
                    queue: queue.settings().clone(),
                }
                .run(stop.clone()),
            );
            let consumer = pull::QueueConsumer {
                storage: self.client.storage().clone(),
                queue: queue.settings().clone(),
                consumer: queue.consumer().clone(),
                mux,
                options: options.clone(),
                slots,
                cancels: cancels.clone(),
                order: None,
            };
            if let Some(items) = queue.ordered() {
                let holds = match items.per_key {
                    1 => None,
                    _ => Some(self.client.storage().order_holds(queue.name()).await?),
                };
                let keyed = pull::QueueConsumer {
                    consumer: items.consumer.clone(),
                    // Its own pull credits: the other loop's long poll must not hold them.
                    slots: Slots {
                        prefetch: Some(Arc::new(Semaphore::new(consumer.slots.size + 1))),
                        ..consumer.slots.clone()
                    },
                    order: Some(Arc::new(ordered::OrderGate::new(items.clone(), holds))),
                    ..consumer.clone()
                };
                loops.spawn(keyed.run(stop.clone(), hard_stop.child_token()));
            }
            loops.spawn(consumer.run(stop.clone(), hard_stop.child_token()));
        }
        let mut first_error = None;
        loop {
            let done = tokio::select! {
                done = loops.join_next() => match done {
                    Some(done) => done,
                    None => break,
                },
                // A hard stop also stops pulling, if shutdown had not been asked for yet.
                _ = hard_stop.cancelled(), if !stop.is_cancelled() => {
                    stop.cancel();
                    continue;
                }
            };
            let result = done
                .map_err(|e| Error::with_source(ErrorKind::Storage, "a queue consumer crashed", e));
            if let Err(e) | Ok(Err(e)) = result {
                // One consumer failing ends the worker's work cleanly rather than half-running it.
                stop.cancel();
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Handler slots of one queue: its own limit and the worker's shared budget.
#[derive(Clone)]
pub(crate) struct Slots {
    budget: Budget,
    /// The queue's own limit; none when it is at least the budget (one semaphore per task less).
    queue: Option<Arc<Semaphore>>,
    /// With a priority, the items pulled ahead to wait for a slot.
    prefetch: Option<Arc<Semaphore>>,
    size: usize,
}

/// Where a queue's handler slots come from.
#[derive(Clone)]
enum Budget {
    /// The worker's budget, first come first served.
    Shared(Arc<Semaphore>),
    /// The worker's budget handed out by priority; the queue's index.
    Arbitrated(Arc<priority::Arbiter>, usize),
}

/// One held handler slot.
pub(crate) struct Slot {
    _queue: Option<OwnedSemaphorePermit>,
    _budget: BudgetPermit,
}

enum BudgetPermit {
    Shared { _permit: OwnedSemaphorePermit },
    Arbitrated { _grant: priority::Grant },
}

/// What a pull loop holds for each item it asks for: a handler slot, or with a priority a place
/// to wait for one ([`Slots::redeem`]).
pub(crate) enum Credit {
    Slot(Slot),
    Waiting(OwnedSemaphorePermit),
}

impl Slots {
    /// Waits for a slot; `None` once the semaphores are closed.
    pub(crate) async fn acquire(&self) -> Option<Slot> {
        // Queue first: a loop waiting on the shared budget then holds only its own queue's slots.
        let queue = match &self.queue {
            Some(queue) => Some(queue.clone().acquire_owned().await.ok()?),
            None => None,
        };
        let budget = match &self.budget {
            Budget::Shared(budget) => BudgetPermit::Shared {
                _permit: budget.clone().acquire_owned().await.ok()?,
            },
            Budget::Arbitrated(arbiter, index) => BudgetPermit::Arbitrated {
                _grant: arbiter.acquire(*index).await,
            },
        };
        Some(Slot {
            _queue: queue,
            _budget: budget,
        })
    }

    /// A slot if one is free now.
    pub(crate) fn try_acquire(&self) -> Option<Slot> {
        let queue = match &self.queue {
            Some(queue) => Some(queue.clone().try_acquire_owned().ok()?),
            None => None,
        };
        let budget = match &self.budget {
            Budget::Shared(budget) => BudgetPermit::Shared {
                _permit: budget.clone().try_acquire_owned().ok()?,
            },
            Budget::Arbitrated(arbiter, _) => BudgetPermit::Arbitrated {
                _grant: arbiter.try_acquire()?,
            },
        };
        Some(Slot {
            _queue: queue,
            _budget: budget,
        })
    }

    /// Waits until the loop may ask for one more item; `None` once closed.
    pub(crate) async fn credit(&self) -> Option<Credit> {
        match &self.prefetch {
            Some(prefetch) => Some(Credit::Waiting(
                prefetch.clone().acquire_owned().await.ok()?,
            )),
            None => Some(Credit::Slot(self.acquire().await?)),
        }
    }

    /// A credit if one is free now.
    pub(crate) fn try_credit(&self) -> Option<Credit> {
        match &self.prefetch {
            Some(prefetch) => Some(Credit::Waiting(prefetch.clone().try_acquire_owned().ok()?)),
            None => Some(Credit::Slot(self.try_acquire()?)),
        }
    }

    /// Most slots this queue can use at once.
    pub(crate) fn size(&self) -> usize {
        self.size
    }
}
