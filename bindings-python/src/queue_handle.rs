// SPDX-License-Identifier: Apache-2.0
//! `QueueHandle`: one open queue of a client, converted.

use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::client::{PyQueueInfo, wait_timeout};
use crate::error::IntoPyResult as _;
use crate::queue::PyQueue;
use crate::runtime;
use crate::task::PyTask;

/// One open queue of a `Client`: enqueue to it, load and retry its tasks, read its counts, purge
/// it. Cheap to share between tasks and threads.
#[pyclass(module = "jetjobs._native", name = "QueueHandle", frozen)]
pub(crate) struct PyQueueHandle {
    pub(crate) inner: jetjobs::QueueHandle,
    /// The process that connected it; a forked child must connect again.
    pid: u32,
}

impl PyQueueHandle {
    pub(crate) fn new(inner: jetjobs::QueueHandle, pid: u32) -> Self {
        Self { inner, pid }
    }

    /// The handle, unless this is a forked child of the process that connected it.
    pub(crate) fn live(&self) -> PyResult<&jetjobs::QueueHandle> {
        runtime::same_process(self.pid).map(|()| &self.inner)
    }
}

#[pymethods]
impl PyQueueHandle {
    /// The queue's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The queue's settings as the server holds them.
    #[getter]
    fn settings(&self) -> PyQueue {
        PyQueue {
            inner: self.inner.settings().clone(),
        }
    }

    /// Stores the task and its work item on this queue; returns the stored task (queue set, signed
    /// if configured).
    fn enqueue<'py>(&self, py: Python<'py>, task: &PyTask) -> PyResult<Bound<'py, PyAny>> {
        let (queue, task) = (self.live()?.clone(), task.inner.clone());
        runtime::future_into_py(py, async move {
            queue.enqueue(task).await.py().map(PyTask::new)
        })
    }

    /// `enqueue` for synchronous code: blocks (without the GIL) until stored.
    fn enqueue_sync(&self, py: Python<'_>, task: &PyTask) -> PyResult<PyTask> {
        let (queue, task) = (self.live()?.clone(), task.inner.clone());
        runtime::block_on(py, async move { queue.enqueue(task).await })
            .py()
            .map(PyTask::new)
    }

    /// Stores many tasks with pipelined writes; one entry per task, in order: the stored task, or
    /// the exception its enqueue failed with (as `asyncio.gather(..., return_exceptions=True)`).
    fn enqueue_many<'py>(
        &self,
        py: Python<'py>,
        tasks: Vec<PyRef<'py, PyTask>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let queue = self.live()?.clone();
        let tasks = core_tasks(&tasks);
        runtime::future_into_py(
            py,
            async move { Ok(Outcomes(queue.enqueue_many(tasks).await)) },
        )
    }

    /// `enqueue_many` for synchronous code: blocks (without the GIL) until every task is settled.
    fn enqueue_many_sync(
        &self,
        py: Python<'_>,
        tasks: Vec<PyRef<'_, PyTask>>,
    ) -> PyResult<Outcomes> {
        let queue = self.live()?.clone();
        let tasks = core_tasks(&tasks);
        Ok(Outcomes(runtime::block_on(py, async move {
            queue.enqueue_many(tasks).await
        })))
    }

    /// Enqueues the task, then waits until it is final, as `Client.wait_for`.
    #[pyo3(signature = (task, timeout=None))]
    fn enqueue_and_wait<'py>(
        &self,
        py: Python<'py>,
        task: &PyTask,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (queue, task) = (self.live()?.clone(), task.inner.clone());
        let timeout = wait_timeout(timeout)?;
        runtime::future_into_py(py, async move {
            queue
                .enqueue_and_wait(task, timeout)
                .await
                .py()
                .map(PyTask::new)
        })
    }

    /// Enqueues the tasks as a chain: each after the previous one completed, with its result in
    /// `dependency_results`. Returns the stored tasks; raises the first error.
    fn enqueue_chain<'py>(
        &self,
        py: Python<'py>,
        tasks: Vec<PyRef<'py, PyTask>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let queue = self.live()?.clone();
        let tasks = core_tasks(&tasks);
        runtime::future_into_py(py, async move {
            let stored = queue.enqueue_chain(tasks).await.py()?;
            Ok(stored.into_iter().map(PyTask::new).collect::<Vec<_>>())
        })
    }

    /// Enqueues `group` to run in parallel and `callback` after all of them completed, with
    /// their results in `dependency_results`. Returns `(group, callback)` as stored.
    fn enqueue_chord<'py>(
        &self,
        py: Python<'py>,
        group: Vec<PyRef<'py, PyTask>>,
        callback: &PyTask,
    ) -> PyResult<Bound<'py, PyAny>> {
        let queue = self.live()?.clone();
        let group = core_tasks(&group);
        let callback = callback.inner.clone();
        runtime::future_into_py(py, async move {
            let (group, callback) = queue.enqueue_chord(group, callback).await.py()?;
            Ok((
                group.into_iter().map(PyTask::new).collect::<Vec<_>>(),
                PyTask::new(callback),
            ))
        })
    }

    /// Loads a task by id (verifying its signature when a verification key is set).
    fn load_task<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let queue = self.live()?.clone();
        runtime::future_into_py(py, async move {
            queue.load_task(&id).await.py().map(PyTask::new)
        })
    }

    /// Enqueues a stored task again on this queue, in state `retry` with its tries reset.
    fn retry_task<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyAny>> {
        let queue = self.live()?.clone();
        runtime::future_into_py(py, async move {
            queue.retry_task(&id).await.py().map(PyTask::new)
        })
    }

    /// The queue's settings and item counts, read now.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let queue = self.live()?.clone();
        runtime::future_into_py(py, async move {
            queue.info().await.py().map(|inner| PyQueueInfo { inner })
        })
    }

    /// Removes every work item of the queue (the task documents stay).
    fn purge<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let queue = self.live()?.clone();
        runtime::future_into_py(py, async move { queue.purge().await.py() })
    }

    fn __repr__(&self) -> String {
        format!("QueueHandle(name={:?})", self.inner.name())
    }
}

/// Stored tasks and the exceptions of those that failed, in order. Made into Python objects where
/// they are handed to Python (on the event loop, for an awaitable), never on an engine thread,
/// which would wait there for the GIL.
pub(crate) struct Outcomes(pub(crate) Vec<jetjobs::Result<jetjobs::Task>>);

impl<'py> IntoPyObject<'py> for Outcomes {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .0
            .into_iter()
            .map(|result| match result {
                Ok(task) => Ok(Bound::new(py, PyTask::new(task))?.into_any()),
                Err(e) => Ok(crate::error::to_py(e)
                    .into_value(py)
                    .into_bound(py)
                    .into_any()),
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

/// The core tasks behind a list of Python ones.
fn core_tasks(tasks: &[PyRef<'_, PyTask>]) -> Vec<jetjobs::Task> {
    tasks.iter().map(|t| t.inner.clone()).collect()
}
