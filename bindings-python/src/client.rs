// SPDX-License-Identifier: Apache-2.0
//! `ClientOptions`, `Client`, `StorageAdmin`, `CancellationToken`: the core client, converted.

use std::path::PathBuf;

use futures::future::BoxFuture;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3_async_runtimes::TaskLocals;

use crate::convert;
use crate::error::IntoPyResult as _;
use crate::events::PyEventStream;
use crate::handler::{Dispatcher, Uninstall};
use crate::kv::{PyKv, PyKvBucket};
use crate::mux::PyMux;
use crate::queue::PyQueue;
use crate::queue_handle::PyQueueHandle;
use crate::retry::PyRetryPolicy;
use crate::runtime;
use crate::scheduler::{PyScheduleWatch, PyScheduledTask};
use crate::signing::{PyTaskSigner, PyTaskVerifier};
use crate::task::{self, PyTask};

/// How to reach NATS and how the client stores and processes tasks.
#[pyclass(module = "jetjobs._native", name = "ClientOptions", frozen)]
pub(crate) struct PyClientOptions {
    inner: jetjobs::ClientOptions,
}

#[pymethods]
impl PyClientOptions {
    /// Every option left out keeps the engine's default (asyncjobs' defaults: the `DEFAULT` queue,
    /// file storage, 1 replica, concurrency 10, the 10-minute retry policy).
    #[new]
    #[pyo3(signature = (
        *, queue=None, retry_policy=None, concurrency=None, connection_name=None,
        credentials_file=None, user=None, password=None, token=None, tls_ca=None, tls_cert=None,
        tls_key=None, memory_storage=false, replicas=None, task_retention=None, signing_key=None,
        verification_key=None, signatures_optional=false, discard_states=None, shutdown_grace=None,
        prometheus_port=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        queue: Option<&Bound<'_, PyAny>>,
        retry_policy: Option<&Bound<'_, PyAny>>,
        concurrency: Option<usize>,
        connection_name: Option<String>,
        credentials_file: Option<PathBuf>,
        user: Option<String>,
        password: Option<String>,
        token: Option<String>,
        tls_ca: Option<PathBuf>,
        tls_cert: Option<PathBuf>,
        tls_key: Option<PathBuf>,
        memory_storage: bool,
        replicas: Option<usize>,
        task_retention: Option<&Bound<'_, PyAny>>,
        signing_key: Option<PyRef<'_, PyTaskSigner>>,
        verification_key: Option<PyRef<'_, PyTaskVerifier>>,
        signatures_optional: bool,
        discard_states: Option<Vec<String>>,
        shutdown_grace: Option<&Bound<'_, PyAny>>,
        prometheus_port: Option<u16>,
    ) -> PyResult<Self> {
        let mut o = jetjobs::ClientOptions::new();
        if let Some(q) = queue {
            o = o.queue(match q.cast::<PyString>() {
                Ok(name) => jetjobs::Queue::new(name.to_cow()?.into_owned()),
                Err(_) => q.extract::<PyRef<'_, PyQueue>>()?.inner.clone(),
            });
        }
        if let Some(p) = retry_policy {
            o = o.retry_policy(PyRetryPolicy::extract_any(p)?);
        }
        if let Some(n) = concurrency {
            o = o.concurrency(n);
        }
        if let Some(name) = connection_name {
            o = o.connection_name(name);
        }
        if let Some(path) = credentials_file {
            o = o.credentials_file(path);
        }
        match (user, password) {
            (Some(u), Some(p)) => o = o.user_and_password(u, p),
            (None, None) => {}
            _ => return Err(PyValueError::new_err("user and password go together")),
        }
        if let Some(t) = token {
            o = o.token(t);
        }
        if let Some(ca) = tls_ca {
            o = o.tls_ca(ca);
        }
        match (tls_cert, tls_key) {
            (Some(c), Some(k)) => o = o.tls_client_cert(c, k),
            (None, None) => {}
            _ => return Err(PyValueError::new_err("tls_cert and tls_key go together")),
        }
        if memory_storage {
            o = o.memory_storage();
        }
        if let Some(n) = replicas {
            o = o.replicas(n);
        }
        if let Some(d) = task_retention {
            o = o.task_retention(convert::duration(d)?);
        }
        if let Some(s) = signing_key {
            o = o.signing_key(s.inner.clone());
        }
        if let Some(v) = verification_key {
            o = o.verification_key(v.inner.clone());
        }
        if signatures_optional {
            o = o.signatures_optional();
        }
        if let Some(states) = discard_states {
            o = o.discard_states(task::states_from_strs(&states)?);
        }
        if let Some(d) = shutdown_grace {
            o = o.shutdown_grace(convert::duration(d)?);
        }
        if let Some(port) = prometheus_port {
            o = o.prometheus_port(port);
        }
        Ok(Self { inner: o })
    }

    /// Connects to a comma-separated list of server URLs and prepares storage.
    fn connect<'py>(&self, py: Python<'py>, url: String) -> PyResult<Bound<'py, PyAny>> {
        let _ = crate::log::sync_level(py);
        let options = self.inner.clone();
        runtime::future_into_py(py, async move {
            options.connect(url).await.py().map(PyClient::new)
        })
    }

    /// `connect` for synchronous code: blocks (without the GIL) until connected.
    fn connect_sync(&self, py: Python<'_>, url: String) -> PyResult<PyClient> {
        let _ = crate::log::sync_level(py);
        let options = self.inner.clone();
        runtime::block_on(py, async move { options.connect(url).await })
            .py()
            .map(PyClient::new)
    }

    fn __repr__(&self) -> &'static str {
        // Not the options themselves: they hold credentials.
        "ClientOptions(..)"
    }
}

/// A connected client; cheap to share between tasks and threads.
#[pyclass(module = "jetjobs._native", name = "Client", frozen)]
pub(crate) struct PyClient {
    inner: jetjobs::Client,
    /// The process that connected it; a forked child must connect again.
    pub(crate) pid: u32,
}

impl PyClient {
    fn new(inner: jetjobs::Client) -> Self {
        Self {
            inner,
            pid: std::process::id(),
        }
    }

    /// The connected client, unless this is a forked child of the process that connected it.
    pub(crate) fn live(&self) -> PyResult<&jetjobs::Client> {
        runtime::same_process(self.pid).map(|()| &self.inner)
    }
}

#[pymethods]
impl PyClient {
    /// The queue's settings as the server holds them.
    #[getter]
    fn queue(&self) -> PyQueue {
        PyQueue {
            inner: self.inner.queue().clone(),
        }
    }

    /// The default queue, opened when connecting.
    #[getter]
    fn default_queue(&self) -> PyQueueHandle {
        PyQueueHandle::new(self.inner.default_queue().clone(), self.pid)
    }

    /// Creates `queue` unless it exists (or binds to it, for `Queue(bind=True)`) and returns a
    /// handle with the settings the server holds.
    fn open_queue<'py>(&self, py: Python<'py>, queue: &PyQueue) -> PyResult<Bound<'py, PyAny>> {
        let (client, queue, pid) = (self.live()?.clone(), queue.inner.clone(), self.pid);
        runtime::future_into_py(py, async move {
            client
                .open_queue(queue)
                .await
                .py()
                .map(|inner| PyQueueHandle::new(inner, pid))
        })
    }

    /// `open_queue` for synchronous code: blocks (without the GIL) until open.
    fn open_queue_sync(&self, py: Python<'_>, queue: &PyQueue) -> PyResult<PyQueueHandle> {
        let (client, queue) = (self.live()?.clone(), queue.inner.clone());
        runtime::block_on(py, async move { client.open_queue(queue).await })
            .py()
            .map(|inner| PyQueueHandle::new(inner, self.pid))
    }

    /// A key-value bucket, created as `bucket` says unless it exists.
    fn kv<'py>(&self, py: Python<'py>, bucket: &PyKvBucket) -> PyResult<Bound<'py, PyAny>> {
        let (client, bucket, pid) = (self.live()?.clone(), bucket.to_core(), self.pid);
        runtime::future_into_py(py, async move {
            client
                .kv(&bucket)
                .await
                .py()
                .map(|inner| PyKv::new(inner, pid))
        })
    }

    /// Flushes what was published and closes the connection, for every holder of this client.
    /// Stop its workers first; calls after this fail.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move { client.close().await.py() })
    }

    /// Stores the task and its work item; returns the stored task (queue set, signed if
    /// configured).
    fn enqueue<'py>(&self, py: Python<'py>, task: &PyTask) -> PyResult<Bound<'py, PyAny>> {
        let (client, task) = (self.live()?.clone(), task.inner.clone());
        runtime::future_into_py(py, async move {
            client.enqueue(task).await.py().map(PyTask::new)
        })
    }

    /// `enqueue` for synchronous code: blocks (without the GIL) until stored.
    fn enqueue_sync(&self, py: Python<'_>, task: &PyTask) -> PyResult<PyTask> {
        let (client, task) = (self.live()?.clone(), task.inner.clone());
        runtime::block_on(py, async move { client.enqueue(task).await })
            .py()
            .map(PyTask::new)
    }

    /// Loads a task by id (verifying its signature when a verification key is set).
    fn load_task<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move {
            client.load_task(&id).await.py().map(PyTask::new)
        })
    }

    /// Waits until the task is final: the task if it completed; `TaskFailed` if it expired, was
    /// terminated or is unreachable; `Timeout` after `timeout` (a `timedelta` or seconds; `None`
    /// waits for as long as it takes). Every waiter shares one subscription; none polls.
    #[pyo3(signature = (id, timeout=None))]
    fn wait_for<'py>(
        &self,
        py: Python<'py>,
        id: String,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        let timeout = wait_timeout(timeout)?;
        runtime::future_into_py(py, async move {
            client.wait_for(&id, timeout).await.py().map(PyTask::new)
        })
    }

    /// Cancels the task and returns it as stored afterwards: a pending one is stored as
    /// `terminated` and never runs; a running one's handler is cancelled wherever it runs and its
    /// task stored as `terminated` with the reason; a final one is returned as it is.
    #[pyo3(signature = (id, reason=None))]
    fn cancel<'py>(
        &self,
        py: Python<'py>,
        id: String,
        reason: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        let reason = reason.unwrap_or_else(|| "cancelled".into());
        runtime::future_into_py(py, async move {
            client.cancel(&id, &reason).await.py().map(PyTask::new)
        })
    }

    /// Enqueues dead letters again, each on its own queue (state `retry`, tries reset); one entry
    /// per id, in order: the task, or the exception its replay failed with.
    fn replay<'py>(&self, py: Python<'py>, ids: Vec<String>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move {
            Ok(crate::queue_handle::Outcomes(
                client.replay(&ids, |_, _, _| {}).await,
            ))
        })
    }

    /// Enqueues a stored task again, in state `retry` with its tries reset.
    fn retry_task<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move {
            client.retry_task(&id).await.py().map(PyTask::new)
        })
    }

    /// Processes tasks with `mux` until `shutdown` is cancelled, then shuts down gracefully.
    /// Async handlers run on the event loop this is awaited on, in the caller's contextvars.
    fn run<'py>(
        &self,
        py: Python<'py>,
        mux: Py<PyMux>,
        shutdown: &PyCancellationToken,
    ) -> PyResult<Bound<'py, PyAny>> {
        let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
        let mux = mux.get();
        mux.slot.install(Dispatcher::new(py, &locals)?)?;
        let uninstall = Uninstall(mux.slot.clone());
        let (client, routes, shutdown) =
            (self.live()?.clone(), mux.snapshot(), shutdown.inner.clone());
        runtime::future_into_py_with_locals(py, locals, async move {
            let result = client.run(routes, shutdown).await.py();
            drop(uninstall);
            result
        })
    }

    /// Lifecycle events published from now on, as an async iterator.
    fn events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move {
            client.events().await.py().map(PyEventStream::new)
        })
    }

    /// Stores `schedule`; raises `ScheduleExists` if one of that name exists. The elected
    /// scheduler starts firing it without a restart.
    fn create_schedule<'py>(
        &self,
        py: Python<'py>,
        schedule: &PyScheduledTask,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (client, schedule) = (self.live()?.clone(), schedule.inner.clone());
        runtime::future_into_py(py, async move {
            client
                .create_schedule(&schedule)
                .await
                .py()
                .map(|inner| PyScheduledTask { inner })
        })
    }

    /// The schedule named `name`; raises `ScheduleNotFound` if there is none.
    fn load_schedule<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move {
            client
                .load_schedule(&name)
                .await
                .py()
                .map(|inner| PyScheduledTask { inner })
        })
    }

    /// Every schedule, by name.
    fn schedules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move {
            client.schedules().await.py().map(|all| {
                all.into_iter()
                    .map(|inner| PyScheduledTask { inner })
                    .collect::<Vec<_>>()
            })
        })
    }

    /// Removes the schedule named `name`; raises `ScheduleNotFound` if there is none.
    fn remove_schedule<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move { client.remove_schedule(&name).await.py() })
    }

    /// Every schedule as it is now, then each change as it happens, as an async iterator of
    /// `ScheduleChange`. Resolves once the watch is established.
    fn watch_schedules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let client = self.live()?.clone();
        runtime::future_into_py(py, async move {
            client
                .watch_schedules()
                .await
                .py()
                .map(PyScheduleWatch::new)
        })
    }

    /// Storage administration: queues and tasks.
    fn admin(&self) -> PyResult<PyStorageAdmin> {
        Ok(PyStorageAdmin {
            inner: self.live()?.admin(),
            pid: self.pid,
        })
    }

    fn __repr__(&self) -> String {
        format!("Client(queue={:?})", self.inner.queue().name)
    }
}

/// Lists, inspects and removes queues and tasks.
#[pyclass(module = "jetjobs._native", name = "StorageAdmin", frozen)]
pub(crate) struct PyStorageAdmin {
    inner: jetjobs::StorageAdmin,
    /// The process that connected it; a forked child must connect again.
    pid: u32,
}

impl PyStorageAdmin {
    fn live(&self) -> PyResult<&jetjobs::StorageAdmin> {
        runtime::same_process(self.pid).map(|()| &self.inner)
    }
}

#[pymethods]
impl PyStorageAdmin {
    /// Names of all queues.
    fn queue_names<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        runtime::future_into_py(py, async move { admin.queue_names().await.py() })
    }

    /// A queue's settings and item counts.
    fn queue_info<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        runtime::future_into_py(py, async move {
            admin
                .queue_info(&name)
                .await
                .py()
                .map(|inner| PyQueueInfo { inner })
        })
    }

    /// Creates a queue (or loads it if it exists) and returns the server's settings.
    fn create_queue<'py>(&self, py: Python<'py>, queue: &PyQueue) -> PyResult<Bound<'py, PyAny>> {
        let (admin, queue) = (self.live()?.clone(), queue.inner.clone());
        runtime::future_into_py(py, async move {
            admin
                .create_queue(&queue)
                .await
                .py()
                .map(|inner| PyQueue { inner })
        })
    }

    /// Removes every item from a queue.
    fn purge_queue<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        runtime::future_into_py(py, async move { admin.purge_queue(&name).await.py() })
    }

    /// Deletes a queue.
    fn delete_queue<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        runtime::future_into_py(py, async move { admin.delete_queue(&name).await.py() })
    }

    /// Up to `limit` tasks.
    #[pyo3(signature = (limit=1000))]
    fn tasks<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        runtime::future_into_py(py, async move {
            admin
                .tasks(limit)
                .await
                .py()
                .map(|tasks| tasks.into_iter().map(PyTask::new).collect::<Vec<_>>())
        })
    }

    /// Terminated, expired and unreachable tasks matching every filter given, scanning up to
    /// `limit` stored tasks.
    #[pyo3(signature = (*, queue=None, task_type=None, error_contains=None, older_than=None, states=None, limit=1000))]
    #[allow(clippy::too_many_arguments)]
    fn dead_letters<'py>(
        &self,
        py: Python<'py>,
        queue: Option<String>,
        task_type: Option<String>,
        error_contains: Option<String>,
        older_than: Option<&Bound<'py, PyAny>>,
        states: Option<Vec<String>>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        let filter = dead_letters(queue, task_type, error_contains, older_than, states)?;
        runtime::future_into_py(py, async move {
            admin
                .dead_letters(&filter, limit)
                .await
                .py()
                .map(|tasks| tasks.into_iter().map(PyTask::new).collect::<Vec<_>>())
        })
    }

    /// Deletes the dead letters matching every filter given; returns how many.
    #[pyo3(signature = (*, queue=None, task_type=None, error_contains=None, older_than=None, states=None, limit=1000))]
    #[allow(clippy::too_many_arguments)]
    fn purge_dead_letters<'py>(
        &self,
        py: Python<'py>,
        queue: Option<String>,
        task_type: Option<String>,
        error_contains: Option<String>,
        older_than: Option<&Bound<'py, PyAny>>,
        states: Option<Vec<String>>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        let filter = dead_letters(queue, task_type, error_contains, older_than, states)?;
        runtime::future_into_py(py, async move {
            admin.purge_dead_letters(&filter, limit).await.py()
        })
    }

    /// Size of the tasks store.
    fn tasks_info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        runtime::future_into_py(py, async move {
            admin
                .tasks_info()
                .await
                .py()
                .map(|inner| PyTasksInfo { inner })
        })
    }

    /// Deletes a task document (its work item, if any, is terminated when delivered).
    fn delete_task<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let admin = self.live()?.clone();
        runtime::future_into_py(py, async move { admin.delete_task(&id).await.py() })
    }
}

/// A queue's settings as the server holds them, and what is in it.
#[pyclass(module = "jetjobs._native", name = "QueueInfo", frozen)]
pub(crate) struct PyQueueInfo {
    pub(crate) inner: jetjobs::QueueInfo,
}

#[pymethods]
impl PyQueueInfo {
    /// Settings read from the server.
    #[getter]
    fn queue(&self) -> PyQueue {
        PyQueue {
            inner: self.inner.queue.clone(),
        }
    }

    /// Items stored (waiting or in flight).
    #[getter]
    fn items(&self) -> u64 {
        self.inner.items
    }

    /// Items delivered to a worker and not yet acknowledged.
    #[getter]
    fn in_flight(&self) -> u64 {
        self.inner.in_flight
    }

    /// Pull requests waiting for items.
    #[getter]
    fn waiting_pulls(&self) -> u64 {
        self.inner.waiting_pulls
    }

    fn __repr__(&self) -> String {
        format!(
            "QueueInfo(name={:?}, items={}, in_flight={}, waiting_pulls={})",
            self.inner.queue.name, self.inner.items, self.inner.in_flight, self.inner.waiting_pulls
        )
    }
}

/// Size of the tasks store.
#[pyclass(module = "jetjobs._native", name = "TasksInfo", frozen)]
pub(crate) struct PyTasksInfo {
    inner: jetjobs::TasksInfo,
}

#[pymethods]
impl PyTasksInfo {
    /// Stored task documents.
    #[getter]
    fn tasks(&self) -> u64 {
        self.inner.tasks
    }

    /// Bytes used.
    #[getter]
    fn bytes(&self) -> u64 {
        self.inner.bytes
    }

    /// Memory rather than file storage.
    #[getter]
    fn memory(&self) -> bool {
        self.inner.memory
    }

    /// Replicas.
    #[getter]
    fn replicas(&self) -> usize {
        self.inner.replicas
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// Stops a worker gracefully when cancelled; safe to cancel from any thread or signal handler.
#[pyclass(module = "jetjobs._native", name = "CancellationToken", frozen)]
pub(crate) struct PyCancellationToken {
    pub(crate) inner: jetjobs::CancellationToken,
}

#[pymethods]
impl PyCancellationToken {
    #[new]
    fn py_new() -> Self {
        Self {
            inner: jetjobs::CancellationToken::new(),
        }
    }

    /// Cancels the token (idempotent).
    fn cancel(&self) {
        self.inner.cancel();
    }

    /// True once cancelled.
    #[getter]
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Resolves once cancelled.
    fn cancelled<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let token = self.inner.clone();
        runtime::future_into_py(py, async move {
            token.cancelled().await;
            Ok(())
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "CancellationToken(is_cancelled={})",
            self.inner.is_cancelled()
        )
    }
}

/// The core client of a `Client`, or of anything with an async `client()` method such as an
/// `App` (awaited on the running loop). Called on the loop; the future runs anywhere.
pub(crate) fn client_of(
    app_or_client: &Bound<'_, PyAny>,
) -> PyResult<BoxFuture<'static, PyResult<(jetjobs::Client, u32)>>> {
    if let Ok(client) = app_or_client.cast::<PyClient>() {
        let client = client.get();
        let ready = (client.live()?.clone(), client.pid);
        return Ok(Box::pin(async move { Ok(ready) }));
    }
    let py = app_or_client.py();
    let Ok(client) = app_or_client.getattr(pyo3::intern!(py, "client")) else {
        return Err(PyTypeError::new_err(format!(
            "expected a jetjobs.App or jetjobs.Client, not {}",
            app_or_client.get_type().name()?
        )));
    };
    let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
    let connecting = pyo3_async_runtimes::into_future_with_locals(&locals, client.call0()?)?;
    Ok(Box::pin(async move {
        let client = connecting.await?;
        runtime::attach(|py| {
            let client = client.bind(py).cast::<PyClient>()?.get();
            Ok((client.live()?.clone(), client.pid))
        })
        .unwrap_or_else(|| Err(PyRuntimeError::new_err("the Python interpreter is exiting")))
    }))
}

/// How long a wait may take: a `timedelta` or seconds; `None` for as long as it takes.
pub(crate) fn wait_timeout(timeout: Option<&Bound<'_, PyAny>>) -> PyResult<std::time::Duration> {
    timeout.map_or(Ok(std::time::Duration::MAX), convert::duration)
}

/// The core's dead-letter filter from keyword arguments.
fn dead_letters(
    queue: Option<String>,
    task_type: Option<String>,
    error_contains: Option<String>,
    older_than: Option<&Bound<'_, PyAny>>,
    states: Option<Vec<String>>,
) -> PyResult<jetjobs::DeadLetterFilter> {
    let mut filter = jetjobs::DeadLetterFilter::new();
    if let Some(queue) = queue {
        filter = filter.queue(queue);
    }
    if let Some(task_type) = task_type {
        filter = filter.task_type(task_type);
    }
    if let Some(text) = error_contains {
        filter = filter.error_contains(text);
    }
    if let Some(age) = older_than {
        filter = filter.older_than(convert::duration(age)?);
    }
    if let Some(states) = states {
        let states = states
            .iter()
            .map(|s| s.parse::<jetjobs::TaskState>())
            .collect::<jetjobs::Result<Vec<_>>>()
            .py()?;
        filter = filter.states(states);
    }
    Ok(filter)
}
