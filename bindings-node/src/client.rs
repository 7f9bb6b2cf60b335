// SPDX-License-Identifier: Apache-2.0
//! `ClientOptions`, `Client` and `StorageAdmin`: the core's client, method for method.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::error::{check, duration_ms, invalid_option, positive_count, promise};
use crate::events::EventStream;
use crate::kv::{Kv, KvBucketOptions};
use crate::queue::{QueueInfo, QueueOptions, QueueSettings, TasksInfo};
use crate::queue_handle::{EnqueueOutcome, QueueHandle};
use crate::retry::RetryPolicy;
use crate::scheduler::{ScheduleWatch, ScheduledTask};
use crate::signing::{TaskSigner, TaskVerifier};
use crate::task::{Task, TaskSpec};

/// Connections `ClientOptions.connect` opened in this process (a diagnostic: tests check that
/// racing first calls share one connection).
static CONNECTIONS_OPENED: AtomicU32 = AtomicU32::new(0);

/// How many connections `ClientOptions.connect` opened in this process so far.
#[napi]
pub fn connections_opened() -> u32 {
    CONNECTIONS_OPENED.load(Ordering::Relaxed)
}

/// `jetjobs::ClientOptions`, filled in one setter at a time, then `connect`ed.
#[napi]
#[derive(Default)]
pub struct ClientOptions {
    inner: jetjobs::ClientOptions,
}

impl ClientOptions {
    fn update(&mut self, f: impl FnOnce(jetjobs::ClientOptions) -> jetjobs::ClientOptions) {
        self.inner = f(std::mem::take(&mut self.inner));
    }
}

#[napi]
impl ClientOptions {
    /// asyncjobs' defaults: the `DEFAULT` queue, file storage, 1 replica, concurrency 10, the
    /// 10-minute retry policy.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    #[napi]
    pub fn connection_name(&mut self, name: String) {
        self.update(|o| o.connection_name(name));
    }

    #[napi]
    pub fn credentials_file(&mut self, path: String) {
        self.update(|o| o.credentials_file(path));
    }

    #[napi]
    pub fn user_and_password(&mut self, user: String, password: String) {
        self.update(|o| o.user_and_password(user, password));
    }

    #[napi]
    pub fn token(&mut self, token: String) {
        self.update(|o| o.token(token));
    }

    #[napi]
    pub fn tls_ca(&mut self, path: String) {
        self.update(|o| o.tls_ca(path));
    }

    #[napi]
    pub fn tls_client_cert(&mut self, cert: String, key: String) {
        self.update(|o| o.tls_client_cert(cert, key));
    }

    #[napi]
    pub fn queue(&mut self, env: &Env, queue: QueueOptions) -> napi::Result<()> {
        let queue = check(env, queue.into_queue())?;
        self.update(|o| o.queue(queue));
        Ok(())
    }

    #[napi]
    pub fn memory_storage(&mut self) {
        self.update(|o| o.memory_storage());
    }

    #[napi]
    pub fn replicas(&mut self, replicas: u32) {
        self.update(|o| o.replicas(replicas as usize));
    }

    #[napi]
    pub fn task_retention_ms(&mut self, env: &Env, ms: f64) -> napi::Result<()> {
        let d = check(env, duration_ms("taskRetentionMs", ms))?;
        self.update(|o| o.task_retention(d));
        Ok(())
    }

    #[napi]
    pub fn retry_policy(&mut self, policy: &RetryPolicy) {
        let policy = policy.inner.clone();
        self.update(|o| o.retry_policy(policy));
    }

    /// A whole number of at least 1; anything else is `InvalidOption`.
    #[napi]
    pub fn concurrency(&mut self, env: &Env, n: f64) -> napi::Result<()> {
        let n = check(env, positive_count("concurrency", n))?;
        self.update(|o| o.concurrency(n));
        Ok(())
    }

    #[napi]
    pub fn signing_key(&mut self, signer: &TaskSigner) {
        let signer = signer.inner.clone();
        self.update(|o| o.signing_key(signer));
    }

    #[napi]
    pub fn verification_key(&mut self, verifier: &TaskVerifier) {
        let verifier = verifier.inner.clone();
        self.update(|o| o.verification_key(verifier));
    }

    #[napi]
    pub fn signatures_optional(&mut self) {
        self.update(|o| o.signatures_optional());
    }

    /// States to delete instead of store: `complete`, `expired`, `terminated`.
    #[napi]
    pub fn discard_states(&mut self, env: &Env, states: Vec<String>) -> napi::Result<()> {
        let states = states
            .iter()
            .map(|s| jetjobs::TaskState::parse_discard(s))
            .collect::<jetjobs::Result<Vec<_>>>();
        let states = check(env, states)?;
        self.update(|o| o.discard_states(states));
        Ok(())
    }

    #[napi]
    pub fn shutdown_grace_ms(&mut self, env: &Env, ms: f64) -> napi::Result<()> {
        let d = check(env, duration_ms("shutdownGraceMs", ms))?;
        self.update(|o| o.shutdown_grace(d));
        Ok(())
    }

    /// Workers and schedulers of this client serve Prometheus metrics on
    /// `http://0.0.0.0:<port>/metrics`; a port above 65535 is `InvalidOption`.
    #[napi]
    pub fn prometheus_port(&mut self, env: &Env, port: u32) -> napi::Result<()> {
        let port = u16::try_from(port)
            .map_err(|_| invalid_option(format!("prometheusPort must be 0 to 65535, got {port}")));
        let port = check(env, port)?;
        self.update(|o| o.prometheus_port(port));
        Ok(())
    }

    /// Connects to a comma-separated list of server URLs and prepares storage.
    #[napi(ts_return_type = "Promise<Client>")]
    pub fn connect<'env>(
        &self,
        env: &'env Env,
        servers: String,
    ) -> napi::Result<PromiseRaw<'env, Client>> {
        let options = self.inner.clone();
        let connect = async move {
            let client = options.connect(servers).await?;
            CONNECTIONS_OPENED.fetch_add(1, Ordering::Relaxed);
            Ok(client)
        };
        promise(env, connect, Client::from)
    }
}

/// A connected client; `close()` lets go of the connection.
#[napi]
pub struct Client {
    inner: Mutex<Option<jetjobs::Client>>,
}

impl From<jetjobs::Client> for Client {
    fn from(client: jetjobs::Client) -> Self {
        Self {
            inner: Mutex::new(Some(client)),
        }
    }
}

impl Client {
    pub(crate) fn client(&self, env: &Env) -> napi::Result<jetjobs::Client> {
        let guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let client = guard
            .clone()
            .ok_or_else(|| jetjobs::Error::new(jetjobs::ErrorKind::Connection, "client is closed"));
        check(env, client)
    }
}

#[napi]
impl Client {
    /// The queue's settings as the server holds them.
    #[napi(getter)]
    pub fn queue(&self, env: &Env) -> napi::Result<QueueSettings> {
        Ok(QueueSettings::from(self.client(env)?.queue()))
    }

    /// Stores the task and its work item; resolves to the stored task.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn enqueue<'env>(
        &self,
        env: &'env Env,
        spec: TaskSpec,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let client = self.client(env)?;
        let task = check(env, spec.into_task())?;
        promise(env, async move { client.enqueue(task).await }, Task::from)
    }

    /// Loads a task, verifying its signature when a verification key is configured.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn load_task<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let client = self.client(env)?;
        promise(env, async move { client.load_task(&id).await }, Task::from)
    }

    /// Waits until the task is final: the task if it completed; `ERR_TASK_FAILED` if it expired,
    /// was terminated or is unreachable; `ERR_TIMEOUT` after `timeoutMs` (absent: for as long as
    /// it takes). Every waiter shares one subscription; none polls.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn wait_for<'env>(
        &self,
        env: &'env Env,
        id: String,
        timeout_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let client = self.client(env)?;
        let timeout = check(env, wait_timeout(timeout_ms))?;
        promise(
            env,
            async move { client.wait_for(&id, timeout).await },
            Task::from,
        )
    }

    /// Cancels the task and resolves to it as stored afterwards: a pending one is stored as
    /// `terminated` and never runs; a running one's handler is aborted wherever it runs and its
    /// task stored as `terminated` with the reason; a final one is returned as it is.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn cancel<'env>(
        &self,
        env: &'env Env,
        id: String,
        reason: String,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let client = self.client(env)?;
        promise(
            env,
            async move { client.cancel(&id, &reason).await },
            Task::from,
        )
    }

    /// Enqueues dead letters again, each on its own queue (state `retry`, tries reset); one
    /// outcome per id, in order.
    #[napi(ts_return_type = "Promise<Array<EnqueueOutcome>>")]
    pub fn replay<'env>(
        &self,
        env: &'env Env,
        ids: Vec<String>,
    ) -> napi::Result<PromiseRaw<'env, Vec<EnqueueOutcome>>> {
        let client = self.client(env)?;
        promise(
            env,
            async move { Ok(client.replay(&ids, |_, _, _| {}).await) },
            |results| results.into_iter().map(EnqueueOutcome::from).collect(),
        )
    }

    /// Enqueues a stored task again, in state `retry` with its tries reset.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn retry_task<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let client = self.client(env)?;
        promise(env, async move { client.retry_task(&id).await }, Task::from)
    }

    /// Creates `queue` unless it exists (or binds to it) and resolves to a handle with the
    /// settings the server holds.
    #[napi(ts_return_type = "Promise<QueueHandle>")]
    pub fn open_queue<'env>(
        &self,
        env: &'env Env,
        queue: QueueOptions,
    ) -> napi::Result<PromiseRaw<'env, QueueHandle>> {
        let client = self.client(env)?;
        let queue = check(env, queue.into_queue())?;
        promise(
            env,
            async move { client.open_queue(queue).await },
            QueueHandle::from,
        )
    }

    /// The default queue, opened when connecting.
    #[napi(getter)]
    pub fn default_queue(&self, env: &Env) -> napi::Result<QueueHandle> {
        Ok(QueueHandle::from(self.client(env)?.default_queue().clone()))
    }

    /// A key-value bucket, created as `bucket` says unless it exists.
    #[napi(ts_return_type = "Promise<Kv>")]
    pub fn kv<'env>(
        &self,
        env: &'env Env,
        bucket: KvBucketOptions,
    ) -> napi::Result<PromiseRaw<'env, Kv>> {
        let client = self.client(env)?;
        let bucket = check(env, bucket.into_bucket())?;
        promise(env, async move { client.kv(&bucket).await }, Kv::from)
    }

    /// Subscribes to lifecycle events; only events published after this resolves are seen.
    #[napi(ts_return_type = "Promise<EventStream>")]
    pub fn events<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, EventStream>> {
        let client = self.client(env)?;
        promise(env, async move { client.events().await }, EventStream::from)
    }

    /// Stores `schedule`; `ScheduleExists` if one of that name exists. The elected scheduler
    /// starts firing it without a restart.
    #[napi(ts_return_type = "Promise<ScheduledTask>")]
    pub fn create_schedule<'env>(
        &self,
        env: &'env Env,
        schedule: &ScheduledTask,
    ) -> napi::Result<PromiseRaw<'env, ScheduledTask>> {
        let (client, schedule) = (self.client(env)?, schedule.inner.clone());
        promise(
            env,
            async move { client.create_schedule(&schedule).await },
            ScheduledTask::from,
        )
    }

    /// The schedule named `name`; `ScheduleNotFound` if there is none.
    #[napi(ts_return_type = "Promise<ScheduledTask>")]
    pub fn load_schedule<'env>(
        &self,
        env: &'env Env,
        name: String,
    ) -> napi::Result<PromiseRaw<'env, ScheduledTask>> {
        let client = self.client(env)?;
        promise(
            env,
            async move { client.load_schedule(&name).await },
            ScheduledTask::from,
        )
    }

    /// Every schedule, by name.
    #[napi(ts_return_type = "Promise<Array<ScheduledTask>>")]
    pub fn schedules<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Vec<ScheduledTask>>> {
        let client = self.client(env)?;
        promise(env, async move { client.schedules().await }, |all| {
            all.into_iter().map(ScheduledTask::from).collect()
        })
    }

    /// Removes the schedule named `name`; `ScheduleNotFound` if there is none.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn remove_schedule<'env>(
        &self,
        env: &'env Env,
        name: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let client = self.client(env)?;
        promise(
            env,
            async move { client.remove_schedule(&name).await },
            |()| (),
        )
    }

    /// Every schedule as it is now, then each change; resolves once watching.
    #[napi(ts_return_type = "Promise<ScheduleWatch>")]
    pub fn watch_schedules<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, ScheduleWatch>> {
        let client = self.client(env)?;
        promise(
            env,
            async move { client.watch_schedules().await },
            ScheduleWatch::from,
        )
    }

    /// Storage administration: queues and tasks.
    #[napi]
    pub fn admin(&self, env: &Env) -> napi::Result<StorageAdmin> {
        Ok(StorageAdmin {
            inner: self.client(env)?.admin(),
        })
    }

    /// Flushes what was published and closes the connection, for every handle, worker and
    /// stream made from this client (stop workers first). Later calls fail with `ERR_CONNECTION`;
    /// closing again does nothing.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let taken = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        promise(
            env,
            async move {
                match taken {
                    Some(client) => client.close().await,
                    None => Ok(()),
                }
            },
            |()| (),
        )
    }
}

/// Lists, inspects and removes queues and tasks.
#[napi]
pub struct StorageAdmin {
    inner: jetjobs::StorageAdmin,
}

#[napi]
impl StorageAdmin {
    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn queue_names<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let admin = self.inner.clone();
        promise(env, async move { admin.queue_names().await }, |v| v)
    }

    #[napi(ts_return_type = "Promise<QueueInfo>")]
    pub fn queue_info<'env>(
        &self,
        env: &'env Env,
        name: String,
    ) -> napi::Result<PromiseRaw<'env, QueueInfo>> {
        let admin = self.inner.clone();
        promise(
            env,
            async move { admin.queue_info(&name).await },
            QueueInfo::from,
        )
    }

    /// Creates a queue (or loads it if it exists) and resolves to the server's settings.
    #[napi(ts_return_type = "Promise<QueueSettings>")]
    pub fn create_queue<'env>(
        &self,
        env: &'env Env,
        queue: QueueOptions,
    ) -> napi::Result<PromiseRaw<'env, QueueSettings>> {
        let admin = self.inner.clone();
        let queue = check(env, queue.into_queue())?;
        promise(env, async move { admin.create_queue(&queue).await }, |q| {
            QueueSettings::from(&q)
        })
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn purge_queue<'env>(
        &self,
        env: &'env Env,
        name: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let admin = self.inner.clone();
        promise(env, async move { admin.purge_queue(&name).await }, |()| ())
    }

    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete_queue<'env>(
        &self,
        env: &'env Env,
        name: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let admin = self.inner.clone();
        promise(env, async move { admin.delete_queue(&name).await }, |()| ())
    }

    /// Up to `limit` tasks.
    #[napi(ts_return_type = "Promise<Array<Task>>")]
    pub fn tasks<'env>(
        &self,
        env: &'env Env,
        limit: u32,
    ) -> napi::Result<PromiseRaw<'env, Vec<Task>>> {
        let admin = self.inner.clone();
        promise(
            env,
            async move { admin.tasks(limit as usize).await },
            |tasks| tasks.into_iter().map(Task::from).collect(),
        )
    }

    /// Terminated, expired and unreachable tasks matching every filter given.
    #[napi(ts_return_type = "Promise<Array<Task>>")]
    pub fn dead_letters<'env>(
        &self,
        env: &'env Env,
        filter: DeadLetterFilter,
    ) -> napi::Result<PromiseRaw<'env, Vec<Task>>> {
        let admin = self.inner.clone();
        let (filter, limit) = check(env, filter.into_core())?;
        promise(
            env,
            async move { admin.dead_letters(&filter, limit).await },
            |tasks| tasks.into_iter().map(Task::from).collect(),
        )
    }

    /// Deletes the dead letters matching every filter given; resolves to how many.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn purge_dead_letters<'env>(
        &self,
        env: &'env Env,
        filter: DeadLetterFilter,
    ) -> napi::Result<PromiseRaw<'env, u32>> {
        let admin = self.inner.clone();
        let (filter, limit) = check(env, filter.into_core())?;
        promise(
            env,
            async move { admin.purge_dead_letters(&filter, limit).await },
            |n| u32::try_from(n).unwrap_or(u32::MAX),
        )
    }

    #[napi(ts_return_type = "Promise<TasksInfo>")]
    pub fn tasks_info<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, TasksInfo>> {
        let admin = self.inner.clone();
        promise(
            env,
            async move { admin.tasks_info().await },
            TasksInfo::from,
        )
    }

    /// Deletes a task document (its work item, if any, is terminated when delivered).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete_task<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let admin = self.inner.clone();
        promise(env, async move { admin.delete_task(&id).await }, |()| ())
    }
}

/// How long a wait may take, from JS milliseconds; absent for as long as it takes.
pub(crate) fn wait_timeout(timeout_ms: Option<f64>) -> jetjobs::Result<std::time::Duration> {
    timeout_ms.map_or(Ok(std::time::Duration::MAX), |ms| {
        duration_ms("timeoutMs", ms)
    })
}

/// Which dead letters to list or purge; every filter given must match.
#[napi(object, object_to_js = false)]
pub struct DeadLetterFilter {
    pub queue: Option<String>,
    pub task_type: Option<String>,
    /// Text the task's last error contains.
    pub error_contains: Option<String>,
    /// Only tasks that ended at least this long ago.
    pub older_than_ms: Option<f64>,
    /// Only these states (`terminated`, `expired`, `unreachable`).
    pub states: Option<Vec<String>>,
    /// Stored tasks scanned (default 1000).
    pub limit: Option<u32>,
}

impl DeadLetterFilter {
    fn into_core(self) -> jetjobs::Result<(jetjobs::DeadLetterFilter, usize)> {
        let mut filter = jetjobs::DeadLetterFilter::new();
        if let Some(queue) = self.queue {
            filter = filter.queue(queue);
        }
        if let Some(task_type) = self.task_type {
            filter = filter.task_type(task_type);
        }
        if let Some(text) = self.error_contains {
            filter = filter.error_contains(text);
        }
        if let Some(ms) = self.older_than_ms {
            filter = filter.older_than(duration_ms("olderThanMs", ms)?);
        }
        if let Some(states) = self.states {
            let states = states
                .iter()
                .map(|s| s.parse::<jetjobs::TaskState>())
                .collect::<jetjobs::Result<Vec<_>>>()?;
            filter = filter.states(states);
        }
        Ok((filter, self.limit.unwrap_or(1000) as usize))
    }
}
