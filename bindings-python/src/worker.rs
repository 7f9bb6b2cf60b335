// SPDX-License-Identifier: Apache-2.0
//! `Worker`: the core worker and its options, converted. Python handlers of every consumed queue
//! run on the event loop `run` is awaited on (sync ones as the `Mux` was told), all under the
//! worker's one concurrency budget, which the core enforces.

use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use crate::client::{PyCancellationToken, PyClient};
use crate::convert;
use crate::error::{IntoPyResult as _, to_py};
use crate::handler::{Dispatcher, Uninstall};
use crate::mux::PyMux;
use crate::priority::PyPriority;
use crate::queue_handle::PyQueueHandle;
use crate::retry::PyRetryPolicy;
use crate::runtime;
use crate::signing::PyTaskVerifier;
use crate::task;

/// A worker before it runs: the core worker and the muxes whose handlers it will call.
struct Pending {
    inner: jetjobs::Worker,
    muxes: Vec<Py<PyMux>>,
}

/// Runs handlers for tasks of one or more queues, each under its own `max_concurrent`, all under
/// one concurrency budget. Runs once.
#[pyclass(module = "jetjobs._native", name = "Worker", frozen)]
pub(crate) struct PyWorker {
    pending: Mutex<Option<Pending>>,
    /// The process that connected its client; a forked child must connect again.
    pid: u32,
}

fn already_ran() -> PyErr {
    to_py(jetjobs::Error::new(
        jetjobs::ErrorKind::AlreadyRunning,
        "this worker is running or has run; a Worker runs once",
    ))
}

#[pymethods]
impl PyWorker {
    /// A worker of `client` consuming no queue yet; every option left out keeps the engine's
    /// default (concurrency 10, the 10-minute retry policy, nothing discarded, 30 s grace, no
    /// priority between queues). `task_scheduler` names a `TaskScheduler` to run alongside.
    #[new]
    #[pyo3(signature = (
        client, *, concurrency=None, retry_policy=None, discard_states=None, shutdown_grace=None,
        verification_key=None, signatures_optional=false, priority=None, task_scheduler=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        client: &PyClient,
        concurrency: Option<usize>,
        retry_policy: Option<&Bound<'_, PyAny>>,
        discard_states: Option<Vec<String>>,
        shutdown_grace: Option<&Bound<'_, PyAny>>,
        verification_key: Option<PyRef<'_, PyTaskVerifier>>,
        signatures_optional: bool,
        priority: Option<PyRef<'_, PyPriority>>,
        task_scheduler: Option<String>,
    ) -> PyResult<Self> {
        let mut o = jetjobs::WorkerOptions::new();
        if let Some(n) = concurrency {
            o = o.concurrency(n);
        }
        if let Some(p) = retry_policy {
            o = o.retry_policy(PyRetryPolicy::extract_any(p)?);
        }
        if let Some(states) = discard_states {
            o = o.discard_states(task::states_from_strs(&states)?);
        }
        if let Some(d) = shutdown_grace {
            o = o.shutdown_grace(convert::duration(d)?);
        }
        if let Some(v) = verification_key {
            o = o.verification_key(v.inner.clone());
        }
        if signatures_optional {
            o = o.signatures_optional();
        }
        if let Some(p) = priority {
            o = o.priority(p.inner.clone());
        }
        if let Some(name) = task_scheduler {
            o = o.task_scheduler(name);
        }
        Ok(Self {
            pending: Mutex::new(Some(Pending {
                inner: jetjobs::Worker::new(client.live()?, o),
                muxes: Vec::new(),
            })),
            pid: client.pid,
        })
    }

    /// Consume `queue`, routing its tasks with `mux` (its routes as registered now). Raises
    /// `InvalidOption` if the worker already consumes that queue.
    fn consume(&self, queue: &PyQueueHandle, mux: Py<PyMux>) -> PyResult<()> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let pending = pending.as_mut().ok_or_else(already_ran)?;
        pending
            .inner
            .consume(queue.live()?, mux.get().snapshot())
            .py()?;
        if !pending.muxes.iter().any(|m| m.as_ptr() == mux.as_ptr()) {
            pending.muxes.push(mux);
        }
        Ok(())
    }

    /// Runs until `shutdown` is cancelled, then lets running handlers finish within the shutdown
    /// grace; cancelling `hard_stop` ends the grace at once and hands unfinished tasks back
    /// without counting a try. Async handlers run on the event loop this is awaited on, in the
    /// caller's contextvars. Raises `AlreadyRunning` on a second call.
    #[pyo3(signature = (shutdown, hard_stop=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        shutdown: &PyCancellationToken,
        hard_stop: Option<&PyCancellationToken>,
    ) -> PyResult<Bound<'py, PyAny>> {
        runtime::same_process(self.pid)?;
        let _ = crate::log::sync_level(py);
        let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(already_ran)?;
        let installed = match install(py, &locals, &pending.muxes) {
            Ok(installed) => installed,
            Err(e) => {
                // Not run: it can still be run once its muxes are free.
                *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(pending);
                return Err(e);
            }
        };
        let (worker, shutdown) = (pending.inner, shutdown.inner.clone());
        let hard_stop = hard_stop.map(|t| t.inner.clone()).unwrap_or_default();
        runtime::future_into_py_with_locals(py, locals, async move {
            let result = worker.run_with_hard_stop(shutdown, hard_stop).await.py();
            drop(installed);
            result
        })
    }

    fn __repr__(&self) -> String {
        let ran = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none();
        format!("Worker(ran={ran})")
    }
}

/// Points every mux's handlers at this event loop for the run; undone when the guards drop.
fn install(py: Python<'_>, locals: &TaskLocals, muxes: &[Py<PyMux>]) -> PyResult<Vec<Uninstall>> {
    let dispatcher = Dispatcher::new(py, locals)?;
    let mut installed = Vec::with_capacity(muxes.len());
    for mux in muxes {
        let slot = &mux.get().slot;
        slot.install(dispatcher.clone())?;
        installed.push(Uninstall(slot.clone()));
    }
    Ok(installed)
}
