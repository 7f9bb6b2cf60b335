// SPDX-License-Identifier: Apache-2.0
//! `ScheduledTask`, `ScheduleChange`, `ScheduleWatch` and `TaskScheduler`: the core's scheduled
//! tasks and its leader-elected scheduler, converted. The `Client` methods that store them are in
//! `client.rs`.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDelta};

use crate::client::{PyCancellationToken, PyClient};
use crate::convert;
use crate::error::IntoPyResult as _;
use crate::runtime;
use crate::task::PyTask;

/// A task created on a cron schedule by the elected scheduler (asyncjobs' `ScheduledTask`).
#[pyclass(module = "jetjobs._native", name = "ScheduledTask", frozen, eq)]
#[derive(PartialEq)]
pub(crate) struct PyScheduledTask {
    pub(crate) inner: jetjobs::ScheduledTask,
}

#[pymethods]
impl PyScheduledTask {
    /// A schedule `name` creating tasks like `task` (its type, payload and max tries; its
    /// deadline, if set, as an offset from each firing, rounded to seconds) on `queue` at each
    /// time `schedule` gives. Raises `InvalidScheduleName`, `InvalidSchedule`, `InvalidQueueName`,
    /// or `ScheduleDeadlineTooShort` for a deadline under 30 s.
    #[new]
    fn py_new(name: &str, schedule: &str, queue: &str, task: &PyTask) -> PyResult<Self> {
        jetjobs::ScheduledTask::new(name, schedule, queue, &task.inner)
            .py()
            .map(|inner| Self { inner })
    }

    /// Parses a stored schedule document (the JSON asyncjobs writes).
    #[staticmethod]
    fn from_json(document: &[u8]) -> PyResult<Self> {
        jetjobs::ScheduledTask::from_json(document)
            .py()
            .map(|inner| Self { inner })
    }

    /// The document exactly as asyncjobs stores it.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.inner.to_json().py()?))
    }

    /// The schedule's name (`^[a-zA-Z0-9_:-]+$`).
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// The cron specification (`0 2 * * *`, `@daily`, `@every 1m`, ...).
    #[getter]
    fn schedule(&self) -> &str {
        &self.inner.schedule
    }

    /// The queue the tasks are enqueued to.
    #[getter]
    fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// The type of the created tasks.
    #[getter]
    fn task_type(&self) -> &str {
        &self.inner.task_type
    }

    /// The created tasks' payload, decoded from JSON; `None` without payload bytes.
    #[getter]
    fn payload<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match &self.inner.payload {
            None => Ok(py.None().into_bound(py)),
            Some(bytes) => {
                let value: serde_json::Value = serde_json::from_slice(bytes)
                    .map_err(|e| {
                        jetjobs::Error::with_source(
                            jetjobs::ErrorKind::InvalidPayload,
                            "the schedule's payload is not JSON",
                            e,
                        )
                    })
                    .py()?;
                convert::from_json(py, &value)
            }
        }
    }

    /// The created tasks' payload bytes exactly as stored, or `None`.
    #[getter]
    fn payload_bytes<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.inner.payload.as_ref().map(|b| PyBytes::new(py, b))
    }

    /// Each created task's deadline, from its creation; `None` for no deadline.
    #[getter]
    fn deadline<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDelta>>> {
        if self.inner.deadline.is_zero() {
            return Ok(None);
        }
        convert::timedelta(py, self.inner.deadline).map(Some)
    }

    /// Each created task's max tries (0: the engine's default).
    #[getter]
    fn max_tries(&self) -> i64 {
        self.inner.max_tries
    }

    /// When the schedule was created.
    #[getter]
    fn created_at<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::datetime(py, &self.inner.created_at)
    }

    fn __repr__(&self) -> String {
        format!(
            "ScheduledTask(name={:?}, schedule={:?}, queue={:?}, task_type={:?})",
            self.inner.name, self.inner.schedule, self.inner.queue, self.inner.task_type
        )
    }
}

/// A change to the schedules: `kind` is `"stored"` (created or replaced; `schedule` is set) or
/// `"removed"` (`schedule` is `None`).
#[pyclass(module = "jetjobs._native", name = "ScheduleChange", frozen)]
pub(crate) struct PyScheduleChange {
    inner: jetjobs::ScheduleChange,
}

#[pymethods]
impl PyScheduleChange {
    /// `"stored"` or `"removed"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner {
            jetjobs::ScheduleChange::Stored(_) => "stored",
            jetjobs::ScheduleChange::Removed(_) => "removed",
        }
    }

    /// The schedule's name.
    #[getter]
    fn name(&self) -> &str {
        match &self.inner {
            jetjobs::ScheduleChange::Stored(s) => &s.name,
            jetjobs::ScheduleChange::Removed(name) => name,
        }
    }

    /// The stored schedule; `None` for a removal.
    #[getter]
    fn schedule(&self) -> Option<PyScheduledTask> {
        match &self.inner {
            jetjobs::ScheduleChange::Stored(s) => Some(PyScheduledTask { inner: s.clone() }),
            jetjobs::ScheduleChange::Removed(_) => None,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "ScheduleChange(kind={:?}, name={:?})",
            self.kind(),
            self.name()
        )
    }
}

type Changes = BoxStream<'static, jetjobs::Result<jetjobs::ScheduleChange>>;

/// Every schedule as it is, then each change, as an async iterator of `ScheduleChange`;
/// `close()` ends it.
#[pyclass(module = "jetjobs._native", name = "ScheduleWatch", frozen)]
pub(crate) struct PyScheduleWatch {
    stream: Arc<tokio::sync::Mutex<Option<Changes>>>,
    closed: jetjobs::CancellationToken,
}

impl PyScheduleWatch {
    pub(crate) fn new(stream: Changes) -> Self {
        Self {
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
            closed: jetjobs::CancellationToken::new(),
        }
    }
}

#[pymethods]
impl PyScheduleWatch {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next change; raises the storage error if the watch fails.
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (stream, closed) = (self.stream.clone(), self.closed.clone());
        runtime::future_into_py(py, async move {
            let mut guard = stream.lock().await;
            let next = match guard.as_mut() {
                None => None,
                Some(changes) => tokio::select! {
                    next = changes.next() => next,
                    _ = closed.cancelled() => None,
                },
            };
            match next {
                Some(change) => change.py().map(|inner| PyScheduleChange { inner }),
                None => {
                    *guard = None;
                    Err(PyStopAsyncIteration::new_err(()))
                }
            }
        })
    }

    /// Ends the watch; iteration stops.
    fn close(&self) {
        self.closed.cancel();
        if let Ok(mut guard) = self.stream.try_lock() {
            *guard = None;
        }
    }
}

/// Creates tasks from the schedules while elected leader of every scheduler sharing the server
/// (Go asyncjobs' `TaskScheduler`s included); the others stand by.
#[pyclass(module = "jetjobs._native", name = "TaskScheduler", frozen)]
pub(crate) struct PyTaskScheduler {
    inner: jetjobs::TaskScheduler,
    name: String,
    /// The process that connected its client; a forked child must connect again.
    pid: u32,
}

#[pymethods]
impl PyTaskScheduler {
    /// A scheduler of `client`'s schedules, campaigning as `name` (unique per instance: the
    /// leader-elected event carries it). Raises `InvalidOption` for an empty name.
    #[new]
    fn py_new(client: &PyClient, name: String) -> PyResult<Self> {
        let inner = jetjobs::TaskScheduler::new(client.live()?, &name).py()?;
        Ok(Self {
            inner,
            name,
            pid: client.pid,
        })
    }

    /// The name it campaigns as.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// True while this instance is the announced leader (the one creating tasks).
    #[getter]
    fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    /// Campaigns and keeps the schedules' timers until `shutdown` is cancelled (or the awaiting
    /// task is cancelled).
    #[pyo3(signature = (shutdown=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        shutdown: Option<&PyCancellationToken>,
    ) -> PyResult<Bound<'py, PyAny>> {
        runtime::same_process(self.pid)?;
        let _ = crate::log::sync_level(py);
        let (scheduler, shutdown) = (
            self.inner.clone(),
            shutdown.map(|t| t.inner.clone()).unwrap_or_default(),
        );
        runtime::future_into_py(py, async move { scheduler.run(shutdown).await.py() })
    }

    fn __repr__(&self) -> String {
        format!(
            "TaskScheduler(name={:?}, is_leader={})",
            self.name,
            self.inner.is_leader()
        )
    }
}
