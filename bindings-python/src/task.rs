// SPDX-License-Identifier: Apache-2.0
//! `Task`, `TaskResult` and `TaskContext`: the core types, converted.

use std::collections::BTreeMap;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDelta};

use crate::convert;
use crate::error::{IntoPyResult as _, to_py};
use crate::runtime;
use crate::trace::PyTraceContext;

/// A unit of work: type, payload and processing options, as stored by the engine.
#[pyclass(module = "jetjobs._native", name = "Task", frozen)]
pub(crate) struct PyTask {
    pub(crate) inner: jetjobs::Task,
    context: Option<jetjobs::TaskContext>,
    decoder: Option<Py<PyAny>>,
    payload: PyOnceLock<Py<PyAny>>,
}

impl PyTask {
    pub(crate) fn new(inner: jetjobs::Task) -> Self {
        Self {
            inner,
            context: None,
            decoder: None,
            payload: PyOnceLock::new(),
        }
    }

    /// The task as a running handler sees it.
    pub(crate) fn for_handler(inner: jetjobs::Task, context: jetjobs::TaskContext) -> Self {
        Self {
            context: Some(context),
            ..Self::new(inner)
        }
    }
}

fn optional_datetime<'py>(
    py: Python<'py>,
    ts: Option<&jetjobs::Timestamp>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    ts.map(|t| convert::datetime(py, t)).transpose()
}

#[pymethods]
impl PyTask {
    /// A new task. `payload` is stored as given if it is `bytes`, else encoded as JSON.
    /// `deadline` is an aware `datetime`, a `timedelta` from now, or RFC 3339 text. With
    /// `unique_key`, enqueueing returns the pending task holding that key instead of storing this
    /// one (also for `unique_for`, a `timedelta` or seconds, after it is final). The task does not
    /// start before `run_at` (like `deadline`) or `delay` (a `timedelta` or seconds from now);
    /// giving both raises `InvalidOption`. On an ordered queue, tasks sharing an `order_key` run
    /// one at a time in enqueue order (enqueueing one elsewhere, or with `run_at`/`delay`, raises
    /// `InvalidOption`). `trace_context` is sent with the enqueue for the handler's span to
    /// continue the trace.
    #[new]
    #[pyo3(signature = (task_type, payload=None, *, id=None, deadline=None, max_tries=None, depends_on=None, load_dependency_results=false, unique_key=None, unique_for=None, run_at=None, delay=None, order_key=None, trace_context=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        task_type: &str,
        payload: Option<&Bound<'_, PyAny>>,
        id: Option<&str>,
        deadline: Option<&Bound<'_, PyAny>>,
        max_tries: Option<i64>,
        depends_on: Option<Vec<String>>,
        load_dependency_results: bool,
        unique_key: Option<String>,
        unique_for: Option<&Bound<'_, PyAny>>,
        run_at: Option<&Bound<'_, PyAny>>,
        delay: Option<&Bound<'_, PyAny>>,
        order_key: Option<String>,
        trace_context: Option<PyRef<'_, PyTraceContext>>,
    ) -> PyResult<Self> {
        let mut task = match payload {
            Some(p) if p.is_instance_of::<PyBytes>() => {
                let raw = p.cast::<PyBytes>()?.as_bytes().to_vec();
                jetjobs::Task::with_raw_payload(task_type, Some(Bytes::from(raw)))
            }
            Some(p) => jetjobs::Task::new(task_type, &convert::to_json(p)?),
            None => jetjobs::Task::new(task_type, &serde_json::Value::Null),
        }
        .py()?;
        if let Some(id) = id {
            task = task.with_id(id).py()?;
        }
        if let Some(deadline) = deadline {
            task = task.with_deadline(convert::timestamp(deadline)?);
        }
        if let Some(n) = max_tries {
            task = task.with_max_tries(n);
        }
        if let Some(ids) = depends_on {
            task = task.depends_on(ids);
        }
        if load_dependency_results {
            task = task.with_dependency_results();
        }
        match (unique_key, unique_for) {
            (Some(key), window) => {
                let window = window.map_or(Ok(std::time::Duration::ZERO), convert::duration)?;
                task = task.with_unique_key(key, window);
            }
            (None, Some(_)) => {
                return Err(pyo3::exceptions::PyValueError::new_err(
                    "unique_for needs a unique_key",
                ));
            }
            (None, None) => {}
        }
        match (run_at, delay) {
            (Some(_), Some(_)) => {
                return Err(to_py(jetjobs::Error::new(
                    jetjobs::ErrorKind::InvalidOption,
                    "give run_at or delay, not both",
                )));
            }
            (Some(at), None) => task = task.with_run_at(convert::timestamp(at)?),
            (None, Some(delay)) => task = task.with_delay(convert::duration(delay)?),
            (None, None) => {}
        }
        if let Some(key) = order_key {
            task = task.with_order_key(key);
        }
        if let Some(context) = trace_context {
            task = task.with_trace_context(context.inner.clone());
        }
        Ok(Self::new(task))
    }

    /// Not started before this time (`None`: as soon as a worker takes it).
    #[getter]
    fn run_at<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        optional_datetime(py, self.inner.run_at.as_ref())
    }

    /// `run_at` as the exact stored RFC 3339 text (nanoseconds), or `None`.
    #[getter]
    fn run_at_str(&self) -> Option<String> {
        self.inner.run_at.map(|t| t.to_string())
    }

    /// The trace context this object sends with its enqueue (`trace_context=` or
    /// `with_trace_context`). It is not stored in the task document: a loaded task has `None`;
    /// a handler reads it from `task.context.trace_context`.
    #[getter]
    fn trace_context(&self) -> Option<PyTraceContext> {
        self.inner.trace_context().map(|inner| PyTraceContext {
            inner: inner.clone(),
        })
    }

    /// A copy that sends `context` with its enqueue.
    fn with_trace_context(&self, py: Python<'_>, context: &PyTraceContext) -> Self {
        Self {
            decoder: self.decoder.as_ref().map(|d| d.clone_ref(py)),
            context: self.context.clone(),
            ..Self::new(self.inner.clone().with_trace_context(context.inner.clone()))
        }
    }

    /// The deduplication key given with `unique_key`, if any (not stored in the document).
    #[getter]
    fn unique_key(&self) -> Option<&str> {
        self.inner.unique_key()
    }

    /// The order key given with `order_key`, if any.
    #[getter]
    fn order_key(&self) -> Option<&str> {
        self.inner.order_key.as_deref()
    }

    /// On an ordered queue, the id of the earlier task of its key this task waits for (its
    /// state stays `new` or `retry`); `None` when it is not waiting.
    #[getter]
    fn waiting_for(&self) -> Option<&str> {
        self.inner.waiting_for.as_deref()
    }

    /// Unique id (a KSUID unless given).
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    /// Routing type.
    #[getter(r#type)]
    fn task_type(&self) -> &str {
        &self.inner.task_type
    }

    /// The queue it was enqueued to (empty before enqueue).
    #[getter]
    fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// The payload, decoded from JSON (or by the decoder given to `with_decoder`); `None` for a
    /// task without payload bytes.
    #[getter]
    fn payload(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.payload
            .get_or_try_init(py, || {
                let Some(bytes) = &self.inner.payload else {
                    return Ok(py.None());
                };
                match &self.decoder {
                    Some(decode) => decode
                        .bind(py)
                        .call1((PyBytes::new(py, bytes),))
                        .map(Bound::unbind),
                    None => {
                        let value: serde_json::Value = self.inner.payload_json().py()?;
                        convert::from_json(py, &value).map(Bound::unbind)
                    }
                }
            })
            .map(|p| p.clone_ref(py))
    }

    /// The payload bytes exactly as stored, or `None`.
    #[getter]
    fn payload_bytes<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.payload.as_ref().map(|b| PyBytes::new(py, b))
    }

    /// Ids of tasks that must complete first.
    #[getter]
    fn dependencies(&self) -> Vec<String> {
        self.inner.dependencies.clone()
    }

    /// Results of the dependencies by task id, when `load_dependency_results` was set.
    #[getter]
    fn dependency_results(&self) -> BTreeMap<String, Option<PyTaskResult>> {
        self.inner
            .dependency_results
            .iter()
            .map(|(id, r)| (id.clone(), r.clone().map(PyTaskResult::new)))
            .collect()
    }

    /// Whether dependency results are handed to the handler.
    #[getter]
    fn load_dependencies(&self) -> bool {
        self.inner.load_dependencies
    }

    /// The task is not started after this time.
    #[getter]
    fn deadline<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        optional_datetime(py, self.inner.deadline.as_ref())
    }

    /// `deadline` as the exact stored RFC 3339 text (nanoseconds), or `None`.
    #[getter]
    fn deadline_str(&self) -> Option<String> {
        self.inner.deadline.map(|t| t.to_string())
    }

    /// Tries allowed before the task expires; 0 or less is unlimited.
    #[getter]
    fn max_tries(&self) -> i64 {
        self.inner.max_tries
    }

    /// The handler's result once the task is complete.
    #[getter]
    fn result(&self) -> Option<PyTaskResult> {
        self.inner.result.clone().map(PyTaskResult::new)
    }

    /// Lifecycle state: `new`, `active`, `retry`, `expired`, `terminated`, `complete`,
    /// `queue_error`, `blocked` or `unreachable`.
    #[getter]
    fn state(&self) -> &'static str {
        self.inner.state.as_str()
    }

    /// Creation time.
    #[getter]
    fn created<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::datetime(py, &self.inner.created)
    }

    /// `created` as the exact stored RFC 3339 text (nanoseconds).
    #[getter]
    fn created_str(&self) -> String {
        self.inner.created.to_string()
    }

    /// When a handler last took the task.
    #[getter]
    fn tried<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        optional_datetime(py, self.inner.tried.as_ref())
    }

    /// `tried` as the exact stored RFC 3339 text, or `None`.
    #[getter]
    fn tried_str(&self) -> Option<String> {
        self.inner.tried.map(|t| t.to_string())
    }

    /// Handler invocations so far (including the running one).
    #[getter]
    fn tries(&self) -> i64 {
        self.inner.tries
    }

    /// The last handler error, `""` if none.
    #[getter]
    fn last_err(&self) -> &str {
        &self.inner.last_err
    }

    /// Hex ed25519 signature, `""` if unsigned.
    #[getter]
    fn signature(&self) -> &str {
        &self.inner.signature
    }

    /// The running try's context inside a handler, else `None`.
    #[getter]
    fn context(&self) -> Option<PyTaskContext> {
        self.context.clone().map(|inner| PyTaskContext { inner })
    }

    /// A copy whose `payload` is `decoder(payload_bytes)` instead of JSON.
    fn with_decoder(&self, decoder: Py<PyAny>) -> Self {
        Self {
            decoder: Some(decoder),
            context: self.context.clone(),
            ..Self::new(self.inner.clone())
        }
    }

    /// The task's JSON document exactly as the engine stores it.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.to_json().py()?))
    }

    /// Parses a stored task document.
    #[staticmethod]
    fn from_json(data: &[u8]) -> PyResult<Self> {
        jetjobs::Task::from_json(data).py().map(Self::new)
    }

    /// The text asyncjobs signs: `id:queue:type:max_tries:created_ns:deadline_ns:base64(payload)`.
    fn signature_message(&self) -> PyResult<String> {
        self.inner.signature_message().py()
    }

    fn __repr__(&self) -> String {
        format!(
            "Task(id={:?}, type={:?}, state={:?}, tries={})",
            self.inner.id,
            self.inner.task_type,
            self.inner.state.as_str(),
            self.inner.tries
        )
    }
}

/// The outcome a successful handler stored on its task.
#[pyclass(module = "jetjobs._native", name = "TaskResult", frozen)]
pub(crate) struct PyTaskResult {
    inner: jetjobs::TaskResult,
}

impl PyTaskResult {
    fn new(inner: jetjobs::TaskResult) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl PyTaskResult {
    /// What the handler returned, as a JSON value.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::from_json(py, &self.inner.payload)
    }

    /// When the handler finished.
    #[getter]
    fn completed<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::datetime(py, &self.inner.completed)
    }

    /// `completed` as the exact stored RFC 3339 text.
    #[getter]
    fn completed_str(&self) -> String {
        self.inner.completed.to_string()
    }

    fn __repr__(&self) -> String {
        format!(
            "TaskResult(payload={}, completed={:?})",
            self.inner.payload,
            self.inner.completed.to_string()
        )
    }
}

/// A running try's deadline, cancellation and progress signal.
#[pyclass(module = "jetjobs._native", name = "TaskContext", frozen)]
pub(crate) struct PyTaskContext {
    inner: jetjobs::TaskContext,
}

#[pymethods]
impl PyTaskContext {
    /// Time left before the try's deadline.
    #[getter]
    fn remaining<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.inner.remaining())
    }

    /// The W3C trace context the producer sent with the task, if any.
    #[getter]
    fn trace_context(&self) -> Option<PyTraceContext> {
        self.inner
            .trace_context()
            .cloned()
            .map(|inner| PyTraceContext { inner })
    }

    /// True once the deadline passed or the worker is shutting down.
    #[getter]
    fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Resolves when the try is cancelled.
    fn cancelled<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ctx = self.inner.clone();
        runtime::future_into_py(py, async move {
            ctx.cancelled().await;
            Ok(())
        })
    }

    /// Tells the server the task is still being worked on and moves the deadline a full max run
    /// time ahead.
    fn mark_in_progress<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let ctx = self.inner.clone();
        runtime::future_into_py(py, async move { ctx.mark_in_progress().await.py() })
    }

    /// `mark_in_progress` for sync handlers: blocks (without the GIL) until the server confirmed.
    fn mark_in_progress_sync(&self, py: Python<'_>) -> PyResult<()> {
        let ctx = self.inner.clone();
        runtime::block_on(py, async move { ctx.mark_in_progress().await }).py()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// A task state from its wire string (`"completed"` is accepted for `complete`).
pub(crate) fn state_from_str(s: &str) -> PyResult<jetjobs::TaskState> {
    s.parse().py()
}

/// Task states from their names (discard states, for example).
pub(crate) fn states_from_strs(states: &[String]) -> PyResult<Vec<jetjobs::TaskState>> {
    states.iter().map(|s| state_from_str(s)).collect()
}
