// SPDX-License-Identifier: Apache-2.0
//! Connection options: servers, authentication, TLS, how streams are stored, signing, and the
//! default queue and worker settings of [`Client::run`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::client::results::ResultWaiters;
use crate::client::{Client, QueueHandle, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::queue::Queue;
use crate::retry::RetryPolicy;
use crate::signing::{TaskSigner, TaskVerifier};
use crate::store::{Storage, StorageSettings};
use crate::task::TaskState;
use crate::worker::options::WorkerOptions;

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
    signer: Option<TaskSigner>,
    verifier: Option<TaskVerifier>,
    signatures_optional: bool,
    worker: WorkerOptions,
    prometheus_port: Option<u16>,
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
            signer: None,
            verifier: None,
            signatures_optional: false,
            worker: WorkerOptions::default(),
            prometheus_port: None,
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

    /// The client's default queue, opened when connecting (created unless [`Queue::bind`] was
    /// used): [`Client::enqueue`] and [`Client::run`] use it. Without it, asyncjobs' `DEFAULT`
    /// queue. Other queues are opened with [`Client::open_queue`].
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

    /// [`Client::run`]'s backoff between tries; see [`WorkerOptions::retry_policy`].
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.worker = self.worker.retry_policy(policy);
        self
    }

    /// [`Client::run`]'s handlers at once; see [`WorkerOptions::concurrency`].
    pub fn concurrency(mut self, n: usize) -> Self {
        self.worker = self.worker.concurrency(n);
        self
    }

    /// The options [`Client::run`] and [`Client::worker`] use, replacing the ones set so far.
    pub fn worker_options(mut self, options: WorkerOptions) -> Self {
        self.worker = options;
        self
    }

    /// Signs every enqueued task.
    pub fn signing_key(mut self, signer: TaskSigner) -> Self {
        self.signer = Some(signer);
        self
    }

    /// Verifies every loaded task, and every task the client's workers run (failures are
    /// terminated).
    pub fn verification_key(mut self, verifier: TaskVerifier) -> Self {
        self.worker = self.worker.verification_key(verifier.clone());
        self.verifier = Some(verifier);
        self
    }

    /// Serve Prometheus metrics on `http://0.0.0.0:<port>/metrics` while a worker or task
    /// scheduler of this client runs (asyncjobs' `PrometheusListenPort`).
    pub fn prometheus_port(mut self, port: u16) -> Self {
        self.prometheus_port = Some(port);
        self
    }

    /// Accept unsigned tasks even with a verification key (signed ones must still verify).
    pub fn signatures_optional(mut self) -> Self {
        self.worker = self.worker.signatures_optional();
        self.signatures_optional = true;
        self
    }

    /// [`Client::run`] deletes tasks instead of storing these final states; see
    /// [`WorkerOptions::discard_states`].
    pub fn discard_states(mut self, states: impl IntoIterator<Item = TaskState>) -> Self {
        self.worker = self.worker.discard_states(states);
        self
    }

    /// [`Client::run`]'s shutdown grace; see [`WorkerOptions::shutdown_grace`].
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.worker = self.worker.shutdown_grace(grace);
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
        let shared = Arc::new(Shared {
            signer: self.signer.clone(),
            verifier: self.verifier.clone(),
            prometheus_port: self.prometheus_port,
            signatures_optional: self.signatures_optional,
            waiters: ResultWaiters::new(storage.nats.clone()),
            unique_keys: tokio::sync::OnceCell::new(),
        });
        let default_queue = QueueHandle::open(&storage, &shared, &wanted).await?;
        Ok(Client::new(storage, shared, default_queue, self.worker))
    }

    fn validate(&self) -> Result<()> {
        if !(1..=5).contains(&self.replicas) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "replicas must be between 1 and 5",
            ));
        }
        self.worker.validate()
    }
}
