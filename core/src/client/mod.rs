// SPDX-License-Identifier: Apache-2.0
//! The client: one NATS connection and its storage, serving any number of queues.
//!
//! [`ClientOptions`] connect a [`Client`]; [`Client::open_queue`] gives a [`QueueHandle`] per
//! queue (enqueue, load, retry, info, purge); a [`Worker`](crate::Worker) consumes queues.

mod admin;
mod batch;
mod cancel;
mod dead_letters;
mod enqueue;
mod options;
mod pages;
mod queue;
mod results;
mod schedules;
mod unique;
mod workflow;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::events::Event;
use crate::mux::Mux;
use crate::queue::Queue;
use crate::signing::{TaskSigner, TaskVerifier};
use crate::store::{Kv, KvBucket, Storage};
use crate::task::Task;
use crate::wire::names::EVENTS_SUBJECT_WILDCARD;
use crate::worker::Worker;
use crate::worker::options::WorkerOptions;
use results::ResultWaiters;

pub use admin::{StorageAdmin, TaskFilter};
pub use dead_letters::DeadLetterFilter;
pub use options::ClientOptions;
pub use queue::QueueHandle;
pub use schedules::ScheduleChange;

/// Connects with default options; see [`ClientOptions`].
pub async fn connect(servers: impl AsRef<str>) -> Result<Client> {
    ClientOptions::new().connect(servers).await
}

/// What a client and its queue handles share: signing, verification and result waiters.
pub(crate) struct Shared {
    pub(crate) signer: Option<TaskSigner>,
    pub(crate) verifier: Option<TaskVerifier>,
    pub(crate) signatures_optional: bool,
    /// Where workers and schedulers serve metrics, if anywhere.
    pub(crate) prometheus_port: Option<u16>,
    pub(crate) waiters: ResultWaiters,
    /// The `JETJOBS_UNIQUE` bucket, opened on the first unique enqueue.
    pub(crate) unique_keys: tokio::sync::OnceCell<Kv>,
}

impl Shared {
    pub(crate) fn verify(&self, task: &Task) -> Result<()> {
        match &self.verifier {
            Some(verifier) => verifier.verify(task, self.signatures_optional),
            None => Ok(()),
        }
    }

    /// Waits until task `id` is final; see [`Client::wait_for`].
    pub(crate) async fn wait_for(
        &self,
        storage: &Storage,
        id: &str,
        timeout: Duration,
    ) -> Result<Task> {
        self.wait_final(storage, id, timeout)
            .await
            .and_then(results::settle)
    }

    /// Waits until task `id` is final and returns it, whatever its final state.
    pub(crate) async fn wait_final(
        &self,
        storage: &Storage,
        id: &str,
        timeout: Duration,
    ) -> Result<Task> {
        // `Duration::MAX` (or anything past the clock's range) waits for as long as it takes.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        let registration = self.waiters.register(id).await?;
        loop {
            let task = storage.load_task(id).await?;
            self.verify(&task)?;
            if task.state.is_final() {
                return Ok(task);
            }
            let out_of_time = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = registration.changed() => {}
                _ = out_of_time => return Err(results::timed_out(id, timeout)),
            }
        }
    }
}

/// A connected jetjobs client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    storage: Storage,
    shared: Arc<Shared>,
    default_queue: QueueHandle,
    worker: WorkerOptions,
}

impl Client {
    fn new(
        storage: Storage,
        shared: Arc<Shared>,
        default_queue: QueueHandle,
        worker: WorkerOptions,
    ) -> Self {
        Self {
            inner: Arc::new(ClientInner {
                storage,
                shared,
                default_queue,
                worker,
            }),
        }
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// Starts serving metrics if this client was given a port (once per process and port).
    pub(crate) async fn serve_metrics(&self) -> Result<()> {
        match self.inner.shared.prometheus_port {
            Some(port) => crate::metrics::serve(port).await,
            None => Ok(()),
        }
    }

    /// Creates `queue` unless it exists (or binds to it, for [`Queue::bind`]) and returns a handle
    /// with the settings the server holds.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// let reports = client.open_queue(jetjobs::Queue::new("REPORTS").max_concurrent(2)).await?;
    /// reports.enqueue(jetjobs::Task::new("report:build", &42)?).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_queue(&self, queue: Queue) -> Result<QueueHandle> {
        QueueHandle::open(&self.inner.storage, &self.inner.shared, &queue).await
    }

    /// The default queue, opened when connecting (see [`ClientOptions::queue`]).
    pub fn default_queue(&self) -> &QueueHandle {
        &self.inner.default_queue
    }

    /// The default queue's settings as the server holds them.
    pub fn queue(&self) -> &Queue {
        self.inner.default_queue.settings()
    }

    /// The underlying NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.storage.nats
    }

    /// Enqueues to the default queue; see [`QueueHandle::enqueue`].
    pub async fn enqueue(&self, task: Task) -> Result<Task> {
        self.inner.default_queue.enqueue(task).await
    }

    /// Enqueues many tasks to the default queue; see [`QueueHandle::enqueue_many`].
    pub async fn enqueue_many(&self, tasks: impl IntoIterator<Item = Task>) -> Vec<Result<Task>> {
        self.inner.default_queue.enqueue_many(tasks).await
    }

    /// Loads a task of any queue, verifying its signature when a verification key is configured.
    pub async fn load_task(&self, id: &str) -> Result<Task> {
        let task = self.inner.storage.load_task(id).await?;
        self.inner.shared.verify(&task)?;
        Ok(task)
    }

    /// Waits until task `id` (of any queue) is final: the task if it completed, a `TaskFailed`
    /// error (with its state and last error) if it expired, was terminated or is unreachable, a
    /// `Timeout` error if it is not final within `timeout` (`Duration::MAX` waits for as long as it
    /// takes). Every waiter of a client shares one subscription to task events; none polls.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// use std::time::Duration;
    /// let task = client.enqueue(jetjobs::Task::new("report:build", &42)?).await?;
    /// let done = client.wait_for(&task.id, Duration::from_secs(60)).await?;
    /// println!("{:?}", done.result.map(|r| r.payload));
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(&self, id: &str, timeout: Duration) -> Result<Task> {
        self.inner
            .shared
            .wait_for(&self.inner.storage, id, timeout)
            .await
    }

    pub(crate) async fn wait_final(&self, id: &str, timeout: Duration) -> Result<Task> {
        self.inner
            .shared
            .wait_final(&self.inner.storage, id, timeout)
            .await
    }

    /// Enqueues to the default queue and waits for the task to be final; see
    /// [`Client::wait_for`].
    pub async fn enqueue_and_wait(&self, task: Task, timeout: Duration) -> Result<Task> {
        self.inner
            .default_queue
            .enqueue_and_wait(task, timeout)
            .await
    }

    /// Enqueues a stored task again on the default queue; see [`QueueHandle::retry_task`].
    pub async fn retry_task(&self, id: &str) -> Result<Task> {
        self.inner.default_queue.retry_task(id).await
    }

    /// A worker with the options given to [`ClientOptions`], consuming no queue yet.
    pub fn worker(&self) -> Worker {
        Worker::new(self, self.inner.worker.clone())
    }

    /// Processes tasks of the default queue with `mux` until `shutdown` is cancelled, then shuts
    /// down gracefully. For several queues, use a [`Worker`].
    pub async fn run(&self, mux: Mux, shutdown: CancellationToken) -> Result<()> {
        let mut worker = self.worker();
        worker.consume(&self.inner.default_queue, mux)?;
        worker.run(shutdown).await
    }

    /// Lifecycle events as they are published (not persisted: only events after subscribing).
    pub async fn events(&self) -> Result<BoxStream<'static, Result<Event>>> {
        self.inner.storage.ensure_open()?;
        let nats = &self.inner.storage.nats;
        let subscription = nats
            .subscribe(EVENTS_SUBJECT_WILDCARD)
            .await
            .map_err(|e| Error::storage("subscribing to events", e))?;
        nats.flush()
            .await
            .map_err(|e| Error::storage("subscribing to events", e))?;
        Ok(subscription.map(|m| Event::from_json(&m.payload)).boxed())
    }

    /// A key-value bucket, created as `bucket` says unless it exists.
    pub async fn kv(&self, bucket: &KvBucket) -> Result<Kv> {
        self.inner.storage.open_kv(bucket).await
    }

    /// Storage administration: queues and tasks.
    pub fn admin(&self) -> StorageAdmin {
        StorageAdmin::new(self.inner.storage.clone())
    }

    /// Flushes what was published and closes the connection (every clone of this client and its
    /// queue handles). Workers should be stopped first; later calls fail with `Closed`.
    pub async fn close(&self) -> Result<()> {
        self.inner.storage.close().await
    }
}
