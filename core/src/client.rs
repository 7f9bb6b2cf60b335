// SPDX-License-Identifier: Apache-2.0
//! The client: connection options, enqueue, load, retry, the worker entry point and storage admin.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::events::{EVENTS_SUBJECT_WILDCARD, Event};
use crate::mux::Mux;
use crate::processor::Processor;
use crate::queue::Queue;
use crate::retry::RetryPolicy;
use crate::signing::{TaskSigner, TaskVerifier};
use crate::storage::{QueueInfo, Storage, StorageSettings, TasksInfo};
use crate::task::{Task, TaskState};

/// asyncjobs' default client concurrency.
pub const DEFAULT_CONCURRENCY: usize = 10;

/// How to reach NATS and how this client stores and processes tasks.
///
/// # Examples
/// ```no_run
/// # async fn demo() -> jetjobs::Result<()> {
/// let client = jetjobs::ClientOptions::new()
///     .queue(jetjobs::Queue::new("EMAIL").max_concurrent(20))
///     .retry_policy(jetjobs::RetryPolicy::named("1m")?)
///     .concurrency(50)
///     .connect("nats://127.0.0.1:4222")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    connection_name: String,
    credentials_file: Option<PathBuf>,
    user_password: Option<(String, String)>,
    token: Option<String>,
    tls_ca: Option<PathBuf>,
    tls_client: Option<(PathBuf, PathBuf)>,
    queue: Option<Queue>,
    memory: bool,
    replicas: usize,
    task_retention: Duration,
    retry_policy: RetryPolicy,
    concurrency: usize,
    signer: Option<TaskSigner>,
    verifier: Option<TaskVerifier>,
    signatures_optional: bool,
    discard: Vec<TaskState>,
    shutdown_grace: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connection_name: "jetjobs".into(),
            credentials_file: None,
            user_password: None,
            token: None,
            tls_ca: None,
            tls_client: None,
            queue: None,
            memory: false,
            replicas: 1,
            task_retention: Duration::ZERO,
            retry_policy: RetryPolicy::default(),
            concurrency: DEFAULT_CONCURRENCY,
            signer: None,
            verifier: None,
            signatures_optional: false,
            discard: Vec::new(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl ClientOptions {
    /// asyncjobs' defaults: the `DEFAULT` queue, file storage, 1 replica, concurrency 10, the
    /// 10-minute retry policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// The NATS connection name.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// A NATS `.creds` file.
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.credentials_file = Some(path.into());
        self
    }

    /// User and password authentication.
    pub fn user_and_password(
        mut self,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.user_password = Some((user.into(), password.into()));
        self
    }

    /// Token authentication.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A CA certificate to trust; enables TLS.
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(path.into());
        self
    }

    /// A client certificate and key; enables TLS.
    pub fn tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls_client = Some((cert.into(), key.into()));
        self
    }

    /// The queue to enqueue to and work on (created unless [`Queue::bind`] was used).
    pub fn queue(mut self, queue: Queue) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Keep streams jetjobs creates in memory.
    pub fn memory_storage(mut self) -> Self {
        self.memory = true;
        self
    }

    /// Replicas of streams jetjobs creates, 1 to 5.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// How long task documents are kept (the tasks stream's max age); zero keeps them forever.
    pub fn task_retention(mut self, retention: Duration) -> Self {
        self.task_retention = retention;
        self
    }

    /// The backoff between tries.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// Handlers this client runs at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Signs every enqueued task.
    pub fn signing_key(mut self, signer: TaskSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Verifies every loaded task; failures are terminated by the processor.
    pub fn verification_key(mut self, verifier: TaskVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Accept unsigned tasks even with a verification key (signed ones must still verify).
    pub fn signatures_optional(mut self) -> Self {
        self.signatures_optional = true;
        self
    }

    /// Delete tasks instead of storing these final states (`complete`, `expired`, `terminated`).
    pub fn discard_states(mut self, states: impl IntoIterator<Item = TaskState>) -> Self {
        self.discard.extend(states);
        self
    }

    /// How long `run` waits for in-flight handlers after shutdown before releasing their tasks.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Connects to a comma-separated list of server URLs and prepares storage.
    pub async fn connect(self, servers: impl AsRef<str>) -> Result<Client> {
        let addrs = servers
            .as_ref()
            .split(',')
            .map(|s| s.trim().parse::<async_nats::ServerAddr>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::with_source(ErrorKind::InvalidOption, "invalid server URL", e))?;
        let mut options = async_nats::ConnectOptions::new().name(&self.connection_name);
        if let Some(path) = &self.credentials_file {
            options = options.credentials_file(path).await.map_err(|e| {
                Error::with_source(ErrorKind::Io, format!("reading {}", path.display()), e)
            })?;
        }
        if let Some((user, password)) = &self.user_password {
            options = options.user_and_password(user.clone(), password.clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let Some((cert, key)) = &self.tls_client {
            options = options
                .add_client_certificate(cert.clone(), key.clone())
                .require_tls(true);
        }
        let nats = options
            .connect(addrs)
            .await
            .map_err(|e| Error::with_source(ErrorKind::Connection, "connecting to NATS", e))?;
        self.connect_with(nats).await
    }

    /// Uses an existing connection and prepares storage.
    pub async fn connect_with(self, nats: async_nats::Client) -> Result<Client> {
        self.validate()?;
        let storage = Storage::prepare(
            nats,
            StorageSettings {
                memory: self.memory,
                replicas: self.replicas,
                task_retention: self.task_retention,
            },
        )
        .await?;
        let wanted = self.queue.clone().unwrap_or_else(Queue::default_queue);
        let (queue, consumer) = storage.prepare_queue(&wanted).await?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                storage,
                queue,
                consumer,
                options: self,
            }),
        })
    }

    fn validate(&self) -> Result<()> {
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "replicas must be between 1 and 5",
            ));
        }
        if self.concurrency == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "concurrency must be at least 1",
            ));
        }
        if let Some(bad) = self.discard.iter().find(|s| {
            !matches!(
                s,
                TaskState::Complete | TaskState::Expired | TaskState::Terminated
            )
        }) {
            return Err(Error::new(
                ErrorKind::UnknownDiscardPolicy,
                format!(
                    "only states completed, expired or terminated can be discarded, not {bad:?}"
                ),
            ));
        }
        Ok(())
    }
}

/// Connects with default options; see [`ClientOptions`].
pub async fn connect(servers: impl AsRef<str>) -> Result<Client> {
    ClientOptions::new().connect(servers).await
}

/// A connected jetjobs client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    storage: Storage,
    queue: Queue,
    consumer: PullConsumer,
    options: ClientOptions,
}

impl Client {
    /// The queue's settings as the server holds them.
    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    /// The underlying NATS connection.
    pub fn nats(&self) -> &async_nats::Client {
        &self.inner.storage.nats
    }

    /// Stores the task and its work item; returns the stored task (queue set, signed if configured).
    /// If the item cannot be stored the task is saved as `queue_error` and the error returned.
    pub async fn enqueue(&self, mut task: Task) -> Result<Task> {
        task.validate()?;
        task.queue = self.inner.queue.name.clone();
        if let Some(signer) = &self.inner.options.signer {
            signer.sign(&mut task)?;
        }
        self.store_and_publish(task).await
    }

    async fn store_and_publish(&self, mut task: Task) -> Result<Task> {
        if !matches!(
            task.state,
            TaskState::New | TaskState::Retry | TaskState::Blocked
        ) {
            return Err(Error::new(
                ErrorKind::TaskCannotEnqueue,
                format!("cannot enqueue a task in state {:?}", task.state.as_str()),
            ));
        }
        let storage = &self.inner.storage;
        storage.save_task(&mut task).await?;
        if let Err(e) = storage.publish_item(&self.inner.queue, &task).await {
            task.state = TaskState::QueueError;
            task.last_err = e.to_string();
            if let Err(save) = storage.save_task(&mut task).await {
                tracing::error!(task = %task.id, error = %save, "recording queue_error failed");
            }
            return Err(e);
        }
        Ok(task)
    }

    /// Loads a task, verifying its signature when a verification key is configured.
    pub async fn load_task(&self, id: &str) -> Result<Task> {
        let task = self.inner.storage.load_task(id).await?;
        if let Some(verifier) = &self.inner.options.verifier {
            verifier.verify(&task, self.inner.options.signatures_optional)?;
        }
        Ok(task)
    }

    /// Enqueues a stored task again on this client's queue, in state `retry` with its tries reset
    /// and its result cleared; any older work item for it is replaced.
    pub async fn retry_task(&self, id: &str) -> Result<Task> {
        let mut task = self.inner.storage.load_task(id).await?;
        task.state = TaskState::Retry;
        task.result = None;
        task.tries = 0;
        task.queue = self.inner.queue.name.clone();
        self.store_and_publish(task).await
    }

    /// Processes tasks with `mux` until `shutdown` is cancelled, then shuts down gracefully.
    pub async fn run(&self, mux: Mux, shutdown: CancellationToken) -> Result<()> {
        let options = &self.inner.options;
        Processor {
            storage: self.inner.storage.clone(),
            queue: self.inner.queue.clone(),
            consumer: self.inner.consumer.clone(),
            mux,
            concurrency: options.concurrency,
            retry_policy: options.retry_policy.clone(),
            verifier: options.verifier.clone(),
            signatures_optional: options.signatures_optional,
            discard: options.discard.iter().copied().collect::<HashSet<_>>(),
            shutdown_grace: options.shutdown_grace,
        }
        .run(shutdown)
        .await
    }

    /// Lifecycle events as they are published (not persisted: only events after subscribing).
    pub async fn events(&self) -> Result<BoxStream<'static, Result<Event>>> {
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

    /// Storage administration: queues and tasks.
    pub fn admin(&self) -> StorageAdmin {
        StorageAdmin {
            storage: self.inner.storage.clone(),
        }
    }
}

/// Lists, inspects and removes queues and tasks.
#[derive(Clone)]
pub struct StorageAdmin {
    storage: Storage,
}

impl StorageAdmin {
    /// Names of all queues.
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        self.storage.queue_names().await
    }

    /// A queue's settings and item counts.
    pub async fn queue_info(&self, name: &str) -> Result<QueueInfo> {
        self.storage.queue_info(name).await
    }

    /// Creates a queue (or loads it if it exists) and returns the server's settings.
    pub async fn create_queue(&self, queue: &Queue) -> Result<Queue> {
        self.storage.prepare_queue(queue).await.map(|(q, _)| q)
    }

    /// Removes every item from a queue.
    pub async fn purge_queue(&self, name: &str) -> Result<()> {
        self.storage.purge_queue(name).await
    }

    /// Deletes a queue.
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.storage.delete_queue(name).await
    }

    /// Up to `limit` tasks.
    pub async fn tasks(&self, limit: usize) -> Result<Vec<Task>> {
        self.storage.tasks(limit).await
    }

    /// Size of the tasks store.
    pub async fn tasks_info(&self) -> Result<TasksInfo> {
        self.storage.tasks_info().await
    }

    /// Deletes a task document (its work item, if any, is terminated when delivered).
    pub async fn delete_task(&self, id: &str) -> Result<()> {
        let task = self.storage.load_task(id).await?;
        self.storage.delete_task(&task).await
    }
}
