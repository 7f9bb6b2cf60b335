// SPDX-License-Identifier: Apache-2.0
//! A handle on one open queue: enqueue to it, load and retry its tasks, read its counts, purge it.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;

use crate::client::Shared;
use crate::error::{Error, ErrorKind, Result};
use crate::queue::Queue;
use crate::store::{OrderedItems, QueueInfo, Storage};
use crate::task::{Task, TaskState};

/// One open queue of a [`Client`](crate::Client); cheap to clone.
#[derive(Clone)]
pub struct QueueHandle {
    inner: Arc<QueueInner>,
}

struct QueueInner {
    storage: Storage,
    shared: Arc<Shared>,
    settings: Queue,
    consumer: PullConsumer,
    ordered: Option<OrderedItems>,
}

impl QueueHandle {
    pub(crate) async fn open(
        storage: &Storage,
        shared: &Arc<Shared>,
        wanted: &Queue,
    ) -> Result<Self> {
        let open = storage.open_queue(wanted).await?;
        Ok(Self {
            inner: Arc::new(QueueInner {
                storage: storage.clone(),
                shared: shared.clone(),
                settings: open.settings,
                consumer: open.consumer,
                ordered: open.ordered,
            }),
        })
    }

    /// The queue's settings as the server holds them.
    pub fn settings(&self) -> &Queue {
        &self.inner.settings
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.settings.name
    }

    pub(crate) fn consumer(&self) -> &PullConsumer {
        &self.inner.consumer
    }

    /// The keyed items of an ordered queue.
    pub(crate) fn ordered(&self) -> Option<&OrderedItems> {
        self.inner.ordered.as_ref()
    }

    /// Stores the task and its work item; returns the stored task (queue set, signed if
    /// configured). If the item cannot be stored the task is saved as `queue_error` and the error
    /// returned.
    ///
    /// Enqueueing the same task again (say, after a timeout) finishes the first attempt and
    /// stores one item. A different task with an id already stored fails with
    /// `TaskAlreadyExists`.
    pub async fn enqueue(&self, task: Task) -> Result<Task> {
        #[cfg(feature = "opentelemetry")]
        {
            use tracing::Instrument as _;
            let span = crate::trace::otel::enqueue_span(self.name(), 1);
            return self.enqueue_now(task).instrument(span).await;
        }
        #[cfg(not(feature = "opentelemetry"))]
        self.enqueue_now(task).await
    }

    async fn enqueue_now(&self, task: Task) -> Result<Task> {
        let mut task = self.prepare(task)?;
        match task.unique.take() {
            Some(unique) => self.enqueue_unique(task, unique).await,
            None if self.writes_together(&task) => self.store_together(task).await,
            None => self.store_and_publish(task, true).await,
        }
    }

    /// Checks a task for enqueueing here: valid, in an enqueueable state, queue set, signed if
    /// configured.
    pub(super) fn prepare(&self, mut task: Task) -> Result<Task> {
        task.validate()?;
        #[cfg(feature = "opentelemetry")]
        crate::trace::otel::propagate(&mut task);
        check_enqueueable(&task)?;
        if task.order_key.is_some() && !self.inner.settings.is_ordered() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "task {} has an order key but queue {} has no ordering: create the queue with \
                     ordering on",
                    task.id, self.inner.settings.name
                ),
            ));
        }
        task.queue = self.inner.settings.name.clone();
        if let Some(signer) = &self.inner.shared.signer
            && task.signature.is_empty()
        {
            signer.sign(&mut task)?;
        }
        Ok(task)
    }

    pub(super) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Loads a task, verifying its signature when a verification key is configured.
    pub async fn load_task(&self, id: &str) -> Result<Task> {
        let task = self.inner.storage.load_task(id).await?;
        self.inner.shared.verify(&task)?;
        Ok(task)
    }

    /// Enqueues a stored task again on this queue, in state `retry` with its tries reset and its
    /// result cleared; any older work item for it is replaced. This also recovers a task left
    /// `new` without a work item.
    pub async fn retry_task(&self, id: &str) -> Result<Task> {
        let mut task = self.inner.storage.load_task(id).await?;
        task.state = TaskState::Retry;
        task.result = None;
        task.tries = 0;
        task.queue = self.inner.settings.name.clone();
        self.store_and_publish(task, false).await
    }

    /// Enqueues the task and waits for it to be final; see [`Client::wait_for`](crate::Client::wait_for).
    pub async fn enqueue_and_wait(&self, task: Task, timeout: Duration) -> Result<Task> {
        let task = self.enqueue(task).await?;
        self.inner
            .shared
            .wait_for(&self.inner.storage, &task.id, timeout)
            .await
    }

    /// The queue's settings and item counts, read now.
    pub async fn info(&self) -> Result<QueueInfo> {
        self.inner.storage.queue_info(self.name()).await
    }

    /// Removes every work item of the queue (the task documents stay).
    pub async fn purge(&self) -> Result<()> {
        self.inner.storage.purge_queue(self.name()).await
    }

    pub(super) async fn store_and_publish(
        &self,
        mut task: Task,
        first_enqueue: bool,
    ) -> Result<Task> {
        check_enqueueable(&task)?;
        let storage = &self.inner.storage;
        match storage.save_task(&mut task).await {
            Ok(()) => {}
            Err(e) if first_enqueue && e.kind() == ErrorKind::TaskUpdateFailed => {
                task = self.resume_enqueue(task).await?;
            }
            Err(e) => return Err(e),
        }
        let published = storage
            .publish_item(&self.inner.settings, &task, first_enqueue)
            .await;
        self.settle_item(task, published).await
    }

    /// The outcome of publishing `task`'s item. A duplicate means an item for this id was
    /// published within JetStream's dedupe window: a repeated enqueue, whose item is there, or an
    /// id reused after its task was deleted, whose item may be consumed already and is
    /// published again. Any other failure is recorded as `queue_error`.
    pub(super) async fn settle_item(&self, task: Task, published: Result<()>) -> Result<Task> {
        let e = match published {
            Ok(()) => return Ok(task),
            Err(e) if e.kind() == ErrorKind::QueueNotFound => self.confirm_missing(e).await,
            Err(e) => e,
        };
        // An ordered item shares its key's subject, so it cannot be looked up by task id; the
        // duplicate is the item of this very task, stored in the dedupe window.
        if e.kind() == ErrorKind::DuplicateItem && task.order_key.is_some() {
            return Ok(task);
        }
        if e.kind() == ErrorKind::DuplicateItem {
            let storage = &self.inner.storage;
            let republished = match storage.item_exists(&self.inner.settings, &task.id).await {
                Ok(true) => Ok(()),
                Ok(false) => {
                    storage
                        .publish_item(&self.inner.settings, &task, false)
                        .await
                }
                Err(e) => Err(e),
            };
            return match republished {
                Ok(()) => Ok(task),
                Err(e) => Err(self.record_queue_error(task, e).await),
            };
        }
        Err(self.record_queue_error(task, e).await)
    }

    /// A publish with no stream to answer it reads as "queue not found", but a queue's stream
    /// that is electing a leader does not answer either: `QueueNotFound` only if the server says
    /// the stream is gone, `Storage` otherwise.
    async fn confirm_missing(&self, not_answered: Error) -> Error {
        // Bounded: while the cluster elects leaders this question may not be answered either.
        let asked = tokio::time::timeout(
            Duration::from_secs(2),
            self.inner.storage.queue_info(self.name()),
        )
        .await
        .unwrap_or_else(|_| Err(Error::new(ErrorKind::Timeout, "reading queue info")));
        match asked {
            Ok(_) => Error::with_source(
                ErrorKind::Storage,
                format!(
                    "publishing work item: the stream of queue {} did not answer (no leader?)",
                    self.name()
                ),
                not_answered,
            ),
            Err(e) if e.kind() == ErrorKind::QueueNotFound => not_answered,
            Err(e) => e,
        }
    }

    /// Saves a task whose item could not be stored as `queue_error`, returning the item's error.
    pub(super) async fn record_queue_error(&self, mut task: Task, error: Error) -> Error {
        task.state = TaskState::QueueError;
        task.last_err = error.to_string();
        if let Err(save) = self.inner.storage.save_task(&mut task).await {
            tracing::error!(task = %task.id, error = %save, "recording queue_error failed");
        }
        error
    }

    /// A first save found a document with this id: if it is this very task, stored by an enqueue
    /// whose reply was lost, carry on with its work item; otherwise the id is taken.
    pub(super) async fn resume_enqueue(&self, task: Task) -> Result<Task> {
        let stored = self.inner.storage.load_task(&task.id).await?;
        let same = stored.task_type == task.task_type
            && stored.created == task.created
            && stored.payload == task.payload
            && stored.queue == task.queue
            && matches!(stored.state, TaskState::New | TaskState::Blocked);
        if same {
            return Ok(stored);
        }
        Err(Error::new(
            ErrorKind::TaskAlreadyExists,
            format!(
                "a task with id {} already exists (state {:?}, queue {:?}); retry_task enqueues a \
                 stored task again",
                task.id,
                stored.state.as_str(),
                stored.queue
            ),
        ))
    }
}

fn check_enqueueable(task: &Task) -> Result<()> {
    if matches!(
        task.state,
        TaskState::New | TaskState::Retry | TaskState::Blocked
    ) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::TaskCannotEnqueue,
        format!("cannot enqueue a task in state {:?}", task.state.as_str()),
    ))
}
