// SPDX-License-Identifier: Apache-2.0
//! `Mux`: the core router, with Python callables as handlers.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::client::PyClient;
use crate::error::IntoPyResult as _;
use crate::governor::PyGovernor;
use crate::handler::{LoopSlot, PyHandler};

/// `handler` as a core handler running on the event loop `slot` is given (sync ones in a worker
/// thread); `TypeError` if it is not callable.
pub(crate) fn py_handler(
    py: Python<'_>,
    task_type: &str,
    handler: Py<PyAny>,
    is_async: Option<bool>,
    slot: Arc<LoopSlot>,
) -> PyResult<PyHandler> {
    if !handler.bind(py).is_callable() {
        return Err(PyTypeError::new_err(format!(
            "the handler for {task_type:?} is not callable"
        )));
    }
    let is_async = match is_async {
        Some(a) => a,
        None => py
            .import(pyo3::intern!(py, "inspect"))?
            .call_method1(pyo3::intern!(py, "iscoroutinefunction"), (&handler,))?
            .is_truthy()?,
    };
    Ok(PyHandler::new(handler, is_async, slot))
}

/// Routes task types to handlers: exact type, else the longest registered prefix (`""` matches
/// every type), else a failed try "no handler for task type".
#[pyclass(module = "jetjobs._native", name = "Mux", frozen)]
pub(crate) struct PyMux {
    inner: Mutex<jetjobs::Mux>,
    pub(crate) slot: Arc<LoopSlot>,
}

impl PyMux {
    /// The routes as registered so far.
    pub(crate) fn snapshot(&self) -> jetjobs::Mux {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[pymethods]
impl PyMux {
    #[new]
    fn py_new() -> Self {
        Self {
            inner: Mutex::new(jetjobs::Mux::new()),
            slot: Arc::default(),
        }
    }

    /// Registers `handler(task)` for `task_type` (a type or a prefix). An async handler (`is_async`,
    /// detected when not given) runs on the worker's event loop; a sync one in a worker thread.
    /// Raises `TypeError` if `handler` is not callable and `DuplicateHandler` if the type already
    /// has one.
    #[pyo3(signature = (task_type, handler, *, is_async=None))]
    fn handle(
        &self,
        py: Python<'_>,
        task_type: String,
        handler: Py<PyAny>,
        is_async: Option<bool>,
    ) -> PyResult<()> {
        let handler = Arc::new(py_handler(
            py,
            &task_type,
            handler,
            is_async,
            self.slot.clone(),
        )?);
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .handle_with(task_type, handler, Vec::new())
            .py()?;
        Ok(())
    }

    /// Routes `task_type` to remote responders over NATS request-reply on `client`'s connection
    /// (asyncjobs' `Mux.RequestReply`): each try is a request to `CHORIA_AJ.H.T.<task_type>`.
    fn request_reply(&self, task_type: String, client: &PyClient) -> PyResult<()> {
        let client = client.live()?;
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .request_reply(task_type, client)
            .py()?;
        Ok(())
    }

    /// Routes `task_type` to an external command (asyncjobs' `Mux.ExternalProcess`).
    fn external_process(&self, task_type: String, command: std::path::PathBuf) -> PyResult<()> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .external_process(task_type, command)
            .py()?;
        Ok(())
    }

    /// Runs route `task_type` (registered already) only while holding a slot of `governor`:
    /// each task campaigns as its id, waiting without a try and without a handler slot, and
    /// gives the slot back when its handler ends. Raises `InvalidOption` if there is no route.
    fn governed(&self, task_type: &str, governor: &PyGovernor) -> PyResult<()> {
        let governor = governor.live()?;
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .governed(task_type, governor)
            .py()?;
        Ok(())
    }

    /// Runs route `task_type` (registered already) only while holding a slot of the per-key
    /// governor `name` for the task's key, read from its JSON payload at `pointer` (RFC 6901,
    /// e.g. `"/tenant"`; a string as it is, a number as its text). A task without a usable key
    /// is terminated with the reason. Raises `InvalidOption` for a bad name or pointer, or no
    /// such route.
    fn governed_per_key_field(
        &self,
        task_type: &str,
        client: &PyClient,
        name: &str,
        pointer: &str,
    ) -> PyResult<()> {
        let client = client.live()?;
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .governed_per_key_field(task_type, client, name, pointer)
            .py()?;
        Ok(())
    }

    /// The registered type that `task_type` routes to, if any.
    fn route_for(&self, task_type: &str) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .route_for(task_type)
            .map(str::to_owned)
    }
}
