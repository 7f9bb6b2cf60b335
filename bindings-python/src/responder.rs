// SPDX-License-Identifier: Apache-2.0
//! `Responder`: the core responder, with a Python callable as its handler, run on the event loop
//! `run` is awaited on (sync callables in a worker thread).

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;

use crate::client::{PyCancellationToken, PyClient};
use crate::error::IntoPyResult as _;
use crate::handler::{Dispatcher, LoopSlot, Uninstall};
use crate::mux::py_handler;
use crate::runtime;

/// Serves one routing type to asyncjobs request-reply workers (Go `Mux.RequestReply` or
/// jetjobs `Mux.request_reply`) on `CHORIA_AJ.H.T.<type>`, in a queue group.
#[pyclass(module = "jetjobs._native", name = "Responder", frozen)]
pub(crate) struct PyResponder {
    inner: jetjobs::Responder,
    slot: Arc<LoopSlot>,
    /// The process that connected its client; a forked child must connect again.
    pid: u32,
}

#[pymethods]
impl PyResponder {
    /// A responder of `client` calling `handler(task)` for each request; `concurrency` handlers at
    /// once (default 10), sharing `queue_group` (default: the subject) with other responders.
    #[new]
    #[pyo3(signature = (client, task_type, handler, *, concurrency=None, queue_group=None, is_async=None))]
    fn py_new(
        py: Python<'_>,
        client: &PyClient,
        task_type: String,
        handler: Py<PyAny>,
        concurrency: Option<usize>,
        queue_group: Option<String>,
        is_async: Option<bool>,
    ) -> PyResult<Self> {
        let slot = Arc::<LoopSlot>::default();
        let handler = py_handler(py, &task_type, handler, is_async, slot.clone())?;
        let mut inner = jetjobs::Responder::new(client.live()?, task_type, handler).py()?;
        if let Some(n) = concurrency {
            inner = inner.concurrency(n);
        }
        if let Some(group) = queue_group {
            inner = inner.queue_group(group);
        }
        Ok(Self {
            inner,
            slot,
            pid: client.pid,
        })
    }

    /// The routing type served.
    #[getter]
    fn task_type(&self) -> &str {
        self.inner.task_type()
    }

    /// The subject served, `CHORIA_AJ.H.T.<type>` (`catchall` for `""`).
    #[getter]
    fn subject(&self) -> &str {
        self.inner.subject()
    }

    /// Subscribes now: requests sent once this returns reach this responder (they wait for
    /// `run`). `run` subscribes by itself; this is for knowing when it is ready.
    fn listen<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        runtime::same_process(self.pid)?;
        let inner = self.inner.clone();
        runtime::future_into_py(py, async move { inner.listen().await.py() })
    }

    /// Answers requests until `shutdown` is cancelled, then waits for the handlers running. Async
    /// handlers run on the event loop this is awaited on. Raises `AlreadyRunning` on a second call.
    fn run<'py>(
        &self,
        py: Python<'py>,
        shutdown: &PyCancellationToken,
    ) -> PyResult<Bound<'py, PyAny>> {
        runtime::same_process(self.pid)?;
        let locals = TaskLocals::with_running_loop(py)?.copy_context(py)?;
        self.slot.install(Dispatcher::new(py, &locals)?)?;
        let uninstall = Uninstall(self.slot.clone());
        let (inner, shutdown) = (self.inner.clone(), shutdown.inner.clone());
        runtime::future_into_py_with_locals(py, locals, async move {
            let result = inner.run(shutdown).await.py();
            drop(uninstall);
            result
        })
    }

    fn __repr__(&self) -> String {
        format!("Responder(subject={:?})", self.inner.subject())
    }
}
