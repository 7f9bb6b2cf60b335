// SPDX-License-Identifier: Apache-2.0
//! Lifecycle events: the core's event stream as a Python async iterator, and its event types.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDelta};

use crate::convert;
use crate::error::IntoPyResult as _;
use crate::runtime;

type Events = BoxStream<'static, jetjobs::Result<jetjobs::Event>>;

/// Events published after subscribing, as an async iterator; `close()` unsubscribes.
#[pyclass(module = "jetjobs._native", name = "EventStream", frozen)]
pub(crate) struct PyEventStream {
    stream: Arc<tokio::sync::Mutex<Option<Events>>>,
    closed: jetjobs::CancellationToken,
}

impl PyEventStream {
    pub(crate) fn new(stream: Events) -> Self {
        Self {
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
            closed: jetjobs::CancellationToken::new(),
        }
    }
}

#[derive(IntoPyObject)]
enum PyEvent {
    TaskState(PyTaskStateChangeEvent),
    LeaderElected(PyLeaderElectedEvent),
}

#[pymethods]
impl PyEventStream {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next event. A malformed or unknown event is skipped with a warning on the `jetjobs`
    /// logger (as `ajc tasks watch` does), so one bad message never ends the iteration.
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (stream, closed) = (self.stream.clone(), self.closed.clone());
        runtime::future_into_py(py, async move {
            let mut guard = stream.lock().await;
            loop {
                let next = match guard.as_mut() {
                    None => None,
                    Some(events) => tokio::select! {
                        next = events.next() => next,
                        _ = closed.cancelled() => None,
                    },
                };
                return match next {
                    Some(Err(e)) => {
                        warn_skipped(&e);
                        continue;
                    }
                    Some(Ok(jetjobs::Event::TaskState(inner))) => {
                        Ok(PyEvent::TaskState(PyTaskStateChangeEvent { inner }))
                    }
                    Some(Ok(jetjobs::Event::LeaderElected(inner))) => {
                        Ok(PyEvent::LeaderElected(PyLeaderElectedEvent { inner }))
                    }
                    None => {
                        *guard = None;
                        Err(PyStopAsyncIteration::new_err(()))
                    }
                };
            }
        })
    }

    /// Unsubscribes; iteration ends.
    fn close(&self) {
        self.closed.cancel();
        if let Ok(mut guard) = self.stream.try_lock() {
            *guard = None;
        }
    }
}

/// Logs an event the stream could not read on Python's `jetjobs` logger.
fn warn_skipped(err: &jetjobs::Error) {
    let message = format!("skipped a lifecycle event that could not be read: {err}");
    runtime::attach(|py| {
        let logged = py
            .import(pyo3::intern!(py, "logging"))
            .and_then(|logging| logging.call_method1(pyo3::intern!(py, "getLogger"), ("jetjobs",)))
            .and_then(|logger| logger.call_method1(pyo3::intern!(py, "warning"), (message,)));
        if let Err(e) = logged {
            e.write_unraisable(py, None);
        }
    });
}

/// Published after every stored state change of a task.
#[pyclass(module = "jetjobs._native", name = "TaskStateChangeEvent", frozen)]
pub(crate) struct PyTaskStateChangeEvent {
    inner: jetjobs::TaskStateChangeEvent,
}

#[pymethods]
impl PyTaskStateChangeEvent {
    /// KSUID of the event.
    #[getter]
    fn event_id(&self) -> &str {
        &self.inner.event_id
    }

    /// `io.choria.asyncjobs.v1.task_state`.
    #[getter(r#type)]
    fn event_type(&self) -> &str {
        &self.inner.event_type
    }

    /// When the event was made (second precision).
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::datetime(py, &self.inner.timestamp)
    }

    /// The task's id.
    #[getter]
    fn task_id(&self) -> &str {
        &self.inner.task_id
    }

    /// The state it moved to.
    #[getter]
    fn state(&self) -> &'static str {
        self.inner.state.as_str()
    }

    /// Its tries so far.
    #[getter]
    fn tries(&self) -> i64 {
        self.inner.tries
    }

    /// Its queue.
    #[getter]
    fn queue(&self) -> &str {
        &self.inner.queue
    }

    /// Its type.
    #[getter]
    fn task_type(&self) -> &str {
        &self.inner.task_type
    }

    /// Its last error.
    #[getter]
    fn last_error(&self) -> &str {
        &self.inner.last_error
    }

    /// Time since the task was created.
    #[getter]
    fn task_age<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        let nanos = u64::try_from(self.inner.task_age).unwrap_or(0);
        convert::timedelta(py, std::time::Duration::from_nanos(nanos))
    }

    /// The event's JSON exactly as published.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let event = jetjobs::Event::TaskState(self.inner.clone());
        Ok(PyBytes::new(py, &event.to_json().py()?))
    }

    fn __repr__(&self) -> String {
        format!(
            "TaskStateChangeEvent(task_id={:?}, state={:?}, tries={})",
            self.inner.task_id,
            self.inner.state.as_str(),
            self.inner.tries
        )
    }
}

/// Published when a scheduler becomes leader.
#[pyclass(module = "jetjobs._native", name = "LeaderElectedEvent", frozen)]
pub(crate) struct PyLeaderElectedEvent {
    inner: jetjobs::LeaderElectedEvent,
}

#[pymethods]
impl PyLeaderElectedEvent {
    /// KSUID of the event.
    #[getter]
    fn event_id(&self) -> &str {
        &self.inner.event_id
    }

    /// `io.choria.asyncjobs.v1.leader_elected`.
    #[getter(r#type)]
    fn event_type(&self) -> &str {
        &self.inner.event_type
    }

    /// When the event was made (second precision).
    #[getter]
    fn timestamp<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        convert::datetime(py, &self.inner.timestamp)
    }

    /// The new leader's name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// The elected component.
    #[getter]
    fn component(&self) -> &str {
        &self.inner.component
    }

    /// The event's JSON exactly as published.
    fn to_json<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let event = jetjobs::Event::LeaderElected(self.inner.clone());
        Ok(PyBytes::new(py, &event.to_json().py()?))
    }

    fn __repr__(&self) -> String {
        format!(
            "LeaderElectedEvent(name={:?}, component={:?})",
            self.inner.name, self.inner.component
        )
    }
}
