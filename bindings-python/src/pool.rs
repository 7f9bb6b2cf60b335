// SPDX-License-Identifier: Apache-2.0
//! `PoolNode`, `PoolMember`, `PoolJob`, `JobPlan`, `Ticker`: the keyed job pool
//! (`jetjobs::PoolNode`), converted. A Python job handler is any object with `start(job)`,
//! `stop(key)` and optionally `notify(key, payload)`; it and schedule plans are called through
//! `callback.rs`, on the event loop `add_worker`/`schedule` was awaited on. An exception a handler
//! raises reaches the core as a `JobStartFailed` error carrying it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use jetjobs::ErrorKind;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::callback::{self, Callback, LoopRef};
use crate::convert::{self, Time};
use crate::error::IntoPyResult as _;
use crate::runtime;

/// This process's membership of one pool.
#[pyclass(module = "jetjobs._native", name = "PoolNode", frozen)]
pub(crate) struct PyPoolNode {
    inner: jetjobs::PoolNode,
    /// The process that joined; a forked child must join again.
    pid: u32,
}

impl PyPoolNode {
    fn live(&self) -> PyResult<jetjobs::PoolNode> {
        runtime::same_process(self.pid).map(|()| self.inner.clone())
    }
}

#[pymethods]
impl PyPoolNode {
    /// Joins pool `pool` through `app_or_client` (an `App` or a `Client`). Options left out keep
    /// the core's defaults: worker TTL 10 s (whole seconds), grace 2 s, dispatch timeout 40 s,
    /// shutdown timeout 2 min; a `client_only` node dispatches but hosts no workers.
    #[staticmethod]
    #[pyo3(signature = (
        app_or_client, pool, *, worker_ttl=None, grace=None, dispatch_timeout=None,
        shutdown_timeout=None, client_only=false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn join<'py>(
        py: Python<'py>,
        app_or_client: &Bound<'py, PyAny>,
        pool: String,
        worker_ttl: Option<&Bound<'py, PyAny>>,
        grace: Option<&Bound<'py, PyAny>>,
        dispatch_timeout: Option<&Bound<'py, PyAny>>,
        shutdown_timeout: Option<&Bound<'py, PyAny>>,
        client_only: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut options = jetjobs::PoolOptions::new();
        if let Some(d) = worker_ttl {
            options = options.worker_ttl(convert::duration(d)?);
        }
        if let Some(d) = grace {
            options = options.grace(convert::duration(d)?);
        }
        if let Some(d) = dispatch_timeout {
            options = options.dispatch_timeout(convert::duration(d)?);
        }
        if let Some(d) = shutdown_timeout {
            options = options.shutdown_timeout(convert::duration(d)?);
        }
        if client_only {
            options = options.client_only();
        }
        let client = crate::client::client_of(app_or_client)?;
        runtime::future_into_py(py, async move {
            let (client, pid) = client.await?;
            let inner = jetjobs::PoolNode::join(&client, &pool, options)
                .await
                .py()?;
            Ok(PyPoolNode { inner, pid })
        })
    }

    /// The pool's name.
    #[getter]
    fn pool(&self) -> &str {
        self.inner.pool()
    }

    /// This node's id.
    #[getter]
    fn id(&self) -> &str {
        self.inner.id()
    }

    /// Adds a worker running the jobs routed to it with `handler`: `await handler.start(job)`,
    /// `await handler.stop(key)` and, if it has one, `await handler.notify(key, payload)`.
    /// `InvalidOption` on a client-only node.
    fn add_worker<'py>(
        &self,
        py: Python<'py>,
        handler: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        let event_loop = LoopRef::default();
        event_loop.bind(callback::running(py)?);
        let method = |name: &str| -> PyResult<Callback> {
            let what = format!("a job handler's {name}");
            Callback::new(&handler.getattr(name)?, event_loop.clone(), &what)
        };
        let notify = match handler_obj_notify(handler, py)? {
            Some(notify) => Some(Callback::new(
                &notify,
                event_loop.clone(),
                "a job handler's notify",
            )?),
            None => None,
        };
        let handler = PyJobHandler {
            start: method("start")?,
            stop: method("stop")?,
        };
        runtime::future_into_py(py, async move {
            let member = match notify {
                Some(notify) => node.add_worker(Notifying { handler, notify }).await,
                None => node.add_worker(handler).await,
            };
            member.py().map(PyPoolMember::from)
        })
    }

    /// Removes worker `id` of this node; its jobs move to the other workers first.
    fn remove_worker<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        runtime::future_into_py(py, async move {
            convert::none(node.remove_worker(&id).await.py())
        })
    }

    /// Starts job `key` on the worker it hashes to; returns once that worker started it. Raises
    /// `NoWorkers`, `JobExists`, `JobStartFailed` (the start handler raised) or `Timeout`.
    #[pyo3(
        signature = (key, payload=Cow::Borrowed(b"".as_slice())),
        text_signature = "($self, key, payload=b'')"
    )]
    fn dispatch_job<'py>(
        &self,
        py: Python<'py>,
        key: String,
        payload: Cow<'_, [u8]>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        let payload = Bytes::copy_from_slice(&payload);
        runtime::future_into_py(py, async move {
            convert::none(node.dispatch_job(&key, payload).await.py())
        })
    }

    /// Stops job `key` wherever it runs and forgets it; `JobNotFound` if there is none.
    fn stop_job<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        runtime::future_into_py(
            py,
            async move { convert::none(node.stop_job(&key).await.py()) },
        )
    }

    /// Delivers `payload` to the notify handler of the worker running job `key`.
    fn notify_worker<'py>(
        &self,
        py: Python<'py>,
        key: String,
        payload: Cow<'_, [u8]>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        let payload = Bytes::copy_from_slice(&payload);
        runtime::future_into_py(py, async move {
            convert::none(node.notify_worker(&key, payload).await.py())
        })
    }

    /// Keys of the pool's jobs, sorted.
    fn job_keys(&self) -> Vec<String> {
        self.inner.job_keys()
    }

    /// Job `key`'s payload (`b""` if it has none), or `None` if there is no such job.
    fn job_payload<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        runtime::future_into_py(py, async move {
            Ok(node.job_payload(&key).await.py()?.map(|b| b.to_vec()))
        })
    }

    /// This node's workers, oldest first.
    fn workers(&self) -> Vec<PyPoolMember> {
        members(self.inner.workers())
    }

    /// Every live worker of the pool, oldest first (the order keys hash over).
    fn pool_workers(&self) -> Vec<PyPoolMember> {
        members(self.inner.pool_workers())
    }

    /// Every live node of the pool, client-only ones included, oldest first.
    fn nodes(&self) -> Vec<PyPoolMember> {
        members(self.inner.nodes())
    }

    /// The worker id running each job, by key (`""` while a job has none).
    fn job_owners(&self) -> HashMap<String, String> {
        self.inner.job_owners()
    }

    /// Leaves the pool: this node's jobs stop here and move to the other nodes' workers.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        runtime::future_into_py(py, async move { convert::none(node.close().await.py()) })
    }

    /// Stops every job on every node and removes the pool.
    fn shutdown<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let node = self.live()?;
        runtime::future_into_py(py, async move { convert::none(node.shutdown().await.py()) })
    }

    /// True once this node closed (or the pool shut down).
    #[getter]
    fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// True once the pool shut down.
    #[getter]
    fn is_shutdown(&self) -> bool {
        self.inner.is_shutdown()
    }

    /// Opens the pool-wide ticker `name`: each tick reaches one of the nodes that opened it.
    fn new_ticker<'py>(
        &self,
        py: Python<'py>,
        name: String,
        every: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (node, every) = (self.live()?, convert::duration(every)?);
        runtime::future_into_py(py, async move {
            let ticker = node.new_ticker(&name, every).await.py()?;
            Ok(PyTicker {
                inner: Arc::new(ticker),
            })
        })
    }

    /// Runs `plan()` now, then every `every` on one of the nodes that scheduled `name`, starting
    /// the jobs it lists and stopping those it drops; a plan of `None` ends the schedule.
    fn schedule<'py>(
        &self,
        py: Python<'py>,
        name: String,
        every: &Bound<'py, PyAny>,
        plan: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (node, every) = (self.live()?, convert::duration(every)?);
        let event_loop = LoopRef::default();
        event_loop.bind(callback::running(py)?);
        let planner = Planner(Callback::new(plan, event_loop, "a plan")?);
        runtime::future_into_py(py, async move {
            convert::none(node.schedule(&name, every, planner).await.py())
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "PoolNode(pool={:?}, id={:?})",
            self.inner.pool(),
            self.inner.id()
        )
    }
}

/// The optional `notify` method of a handler.
fn handler_obj_notify<'py>(
    handler: &Bound<'py, PyAny>,
    py: Python<'py>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let name = pyo3::intern!(py, "notify");
    if !handler.hasattr(name)? {
        return Ok(None);
    }
    let notify = handler.getattr(name)?;
    Ok((!notify.is_none()).then_some(notify))
}

/// A Python handler without `notify`: the core refuses notifications for its jobs.
struct PyJobHandler {
    start: Callback,
    stop: Callback,
}

/// `context: <exception>` as a `JobStartFailed` error carrying the exception.
fn refused(raised: crate::error::Raised, context: &str) -> jetjobs::Error {
    raised.into_error(ErrorKind::CallbackFailed, context)
}

impl jetjobs::JobHandler for PyJobHandler {
    fn start(&self, job: jetjobs::PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        let start = self.start.clone();
        Box::pin(async move {
            start
                .call(move |py| (PyPoolJob { inner: job },).into_pyobject(py))
                .await
                .map(drop)
                .map_err(|raised| refused(raised, "the start handler raised"))
        })
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        let stop = self.stop.clone();
        Box::pin(async move {
            stop.call(move |py| (key,).into_pyobject(py))
                .await
                .map(drop)
                .map_err(|raised| refused(raised, "the stop handler raised"))
        })
    }
}

/// A Python handler with `notify`.
struct Notifying {
    handler: PyJobHandler,
    notify: Callback,
}

impl jetjobs::JobHandler for Notifying {
    fn start(&self, job: jetjobs::PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.handler.start(job)
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.handler.stop(key)
    }

    fn notify(&self, key: String, payload: Bytes) -> BoxFuture<'static, jetjobs::Result<()>> {
        let notify = self.notify.clone();
        Box::pin(async move {
            notify
                .call(move |py| (key, PyBytes::new(py, &payload)).into_pyobject(py))
                .await
                .map(drop)
                .map_err(|raised| refused(raised, "the notify handler raised"))
        })
    }
}

/// A schedule's plan: a callable returning a `JobPlan` or `None`.
struct Planner(Callback);

impl jetjobs::JobProducer for Planner {
    fn plan(&self) -> BoxFuture<'static, jetjobs::Result<Option<jetjobs::JobPlan>>> {
        let plan = self.0.clone();
        Box::pin(async move {
            let value = plan
                .call(|py| Ok(PyTuple::empty(py)))
                .await
                .map_err(|raised| refused(raised, "the plan raised"))?;
            runtime::attach(|py| {
                let value = value.bind(py);
                if value.is_none() {
                    return Ok(None);
                }
                match value.cast::<PyJobPlan>() {
                    Ok(plan) => Ok(Some(plan.get().inner.clone())),
                    Err(_) => Err(jetjobs::Error::new(
                        ErrorKind::InvalidOption,
                        format!(
                            "a plan returns a JobPlan or None, not {}",
                            value
                                .get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ),
                    )),
                }
            })
            .unwrap_or_else(|| {
                Err(jetjobs::Error::new(
                    ErrorKind::Closed,
                    "the Python interpreter is exiting",
                ))
            })
        })
    }
}

/// A worker or a node as the pool lists it.
#[pyclass(module = "jetjobs._native", name = "PoolMember", frozen)]
pub(crate) struct PyPoolMember {
    inner: jetjobs::PoolMember,
}

impl From<jetjobs::PoolMember> for PyPoolMember {
    fn from(inner: jetjobs::PoolMember) -> Self {
        Self { inner }
    }
}

fn members(all: Vec<jetjobs::PoolMember>) -> Vec<PyPoolMember> {
    all.into_iter().map(PyPoolMember::from).collect()
}

#[pymethods]
impl PyPoolMember {
    /// Its id.
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    /// The node it belongs to (its own id for a node).
    #[getter]
    fn node(&self) -> &str {
        &self.inner.node
    }

    /// When it joined.
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::datetime(py, &self.inner.created_at)
    }

    fn __repr__(&self) -> String {
        format!(
            "PoolMember(id={:?}, node={:?})",
            self.inner.id, self.inner.node
        )
    }
}

/// A job handed to a worker's start handler.
#[pyclass(module = "jetjobs._native", name = "PoolJob", frozen)]
pub(crate) struct PyPoolJob {
    inner: jetjobs::PoolJob,
}

#[pymethods]
impl PyPoolJob {
    /// The job key.
    #[getter]
    fn key(&self) -> &str {
        &self.inner.key
    }

    /// The payload given to `dispatch_job`.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.payload)
    }

    /// Raised on every change of owner: a fencing token.
    #[getter]
    fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The worker starting it.
    #[getter]
    fn worker(&self) -> &str {
        &self.inner.worker
    }

    /// The node that dispatched it.
    #[getter]
    fn node(&self) -> &str {
        &self.inner.node
    }

    /// When it was dispatched.
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::datetime(py, &self.inner.created_at)
    }

    fn __repr__(&self) -> String {
        format!(
            "PoolJob(key={:?}, generation={}, worker={:?})",
            self.inner.key, self.inner.generation, self.inner.worker
        )
    }
}

/// What a schedule's plan wants running: jobs to start (`(key, payload)`), keys to stop, or with
/// `stop_all` every job the schedule started that is not in `start`.
#[pyclass(module = "jetjobs._native", name = "JobPlan", frozen)]
pub(crate) struct PyJobPlan {
    inner: jetjobs::JobPlan,
}

#[pymethods]
impl PyJobPlan {
    #[new]
    #[pyo3(signature = (start=None, stop=None, stop_all=false))]
    fn py_new(
        start: Option<Vec<(String, Vec<u8>)>>,
        stop: Option<Vec<String>>,
        stop_all: bool,
    ) -> Self {
        Self {
            inner: jetjobs::JobPlan {
                start: start
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(key, payload)| (key, Bytes::from(payload)))
                    .collect(),
                stop: stop.unwrap_or_default(),
                stop_all,
            },
        }
    }

    /// Jobs to start, as `(key, payload)`.
    #[getter]
    fn start<'py>(&self, py: Python<'py>) -> Vec<(String, Bound<'py, PyBytes>)> {
        self.inner
            .start
            .iter()
            .map(|(key, payload)| (key.clone(), PyBytes::new(py, payload)))
            .collect()
    }

    /// Keys to stop (ignored with `stop_all`).
    #[getter]
    fn stop(&self) -> Vec<String> {
        self.inner.stop.clone()
    }

    /// Stop every job the schedule started that is not in `start`.
    #[getter]
    fn stop_all(&self) -> bool {
        self.inner.stop_all
    }

    fn __repr__(&self) -> String {
        let start: Vec<&str> = self.inner.start.iter().map(|(k, _)| k.as_str()).collect();
        format!(
            "JobPlan(start={start:?}, stop={:?}, stop_all={})",
            self.inner.stop,
            if self.inner.stop_all { "True" } else { "False" }
        )
    }
}

/// Ticks of a pool-wide ticker delivered to this node, as an async iterator of `datetime`s.
#[pyclass(module = "jetjobs._native", name = "Ticker", frozen)]
pub(crate) struct PyTicker {
    inner: Arc<jetjobs::Ticker>,
}

#[pymethods]
impl PyTicker {
    /// The next tick delivered here; `None` once the ticker stopped (here or everywhere).
    fn next<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ticker = self.inner.clone();
        runtime::future_into_py(py, async move { Ok(ticker.next().await.map(Time)) })
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ticker = self.inner.clone();
        runtime::future_into_py(py, async move {
            match ticker.next().await {
                Some(at) => Ok(Time(at)),
                None => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }

    /// Stops the ticker on every node.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ticker = self.inner.clone();
        runtime::future_into_py(py, async move { convert::none(ticker.stop().await.py()) })
    }

    /// Stops this node's share of the ticker; the other nodes keep ticking.
    fn close(&self) {
        self.inner.close();
    }
}

/// The index of the worker that owns `key` among `workers` live workers (oldest first).
#[pyfunction]
pub(crate) fn pool_worker_index(key: &str, workers: usize) -> usize {
    jetjobs::pool_worker_index(key, workers)
}
