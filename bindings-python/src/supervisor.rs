// SPDX-License-Identifier: Apache-2.0
//! `jetjobs._native.supervisor`: supervised workers and jobs (`jetjobs::supervisor`), converted.
//! `jetjobs/supervisor.py` re-exports it.
//!
//! A worker or job argument is a native `Worker`/`Job` or a Python callable taking a
//! `CancellationToken` (see `callback.rs` for how it is called). A Python exception it raises
//! travels through the core as the source of a `WorkerExitedPrematurely` error, the kind the core
//! gives a panicking worker, and comes back out as the same exception object.

use jetjobs::ErrorKind;
use jetjobs::supervisor as sup;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDelta, PyDict, PyTuple};

use crate::callback::{self, Callback, LoopRef};
use crate::client::PyCancellationToken;
use crate::convert;
use crate::error::IntoPyResult as _;
use crate::retry::PyRetryPolicy;
use crate::runtime;

/// A service that runs until its token is cancelled.
#[pyclass(module = "jetjobs._native.supervisor", name = "Worker", frozen)]
pub(crate) struct PyWorker {
    inner: sup::Worker,
    /// Where the Python callables inside it run; bound again by every run.
    loops: Vec<LoopRef>,
}

#[pymethods]
impl PyWorker {
    /// A worker whose every run awaits `f(cancel)`.
    #[new]
    fn py_new(f: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (callback, loops) = wrap(f, "a worker")?;
        let inner = sup::Worker::new(move |cancel| {
            let callback = callback.clone();
            async move { call(&callback, cancel, "the supervised worker raised").await }
        });
        Ok(Self { inner, loops })
    }

    /// Runs the worker once, until it returns.
    fn run<'py>(
        &self,
        py: Python<'py>,
        cancel: &PyCancellationToken,
    ) -> PyResult<Bound<'py, PyAny>> {
        let locals = callback::running(py)?;
        callback::bind_all(&self.loops, &locals);
        let (worker, cancel) = (self.inner.clone(), cancel.inner.clone());
        runtime::future_into_py_with_locals(py, locals, async move {
            convert::none(worker.run(cancel).await.py())
        })
    }

    fn __repr__(&self) -> &'static str {
        "supervisor.Worker(..)"
    }
}

/// Work that runs once and returns.
#[pyclass(module = "jetjobs._native.supervisor", name = "Job", frozen)]
pub(crate) struct PyJob {
    inner: sup::Job,
    loops: Vec<LoopRef>,
}

#[pymethods]
impl PyJob {
    /// A job whose every run awaits `f(cancel)`.
    #[new]
    fn py_new(f: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (callback, loops) = wrap(f, "a job")?;
        let inner = sup::Job::new(move |cancel| {
            let callback = callback.clone();
            async move { call(&callback, cancel, "the supervised job raised").await }
        });
        Ok(Self { inner, loops })
    }

    /// Runs the job once.
    fn run_once<'py>(
        &self,
        py: Python<'py>,
        cancel: &PyCancellationToken,
    ) -> PyResult<Bound<'py, PyAny>> {
        let locals = callback::running(py)?;
        callback::bind_all(&self.loops, &locals);
        let (job, cancel) = (self.inner.clone(), cancel.inner.clone());
        runtime::future_into_py_with_locals(py, locals, async move {
            convert::none(job.run_once(cancel).await.py())
        })
    }

    fn __repr__(&self) -> &'static str {
        "supervisor.Job(..)"
    }
}

fn wrap(f: &Bound<'_, PyAny>, what: &str) -> PyResult<(Callback, Vec<LoopRef>)> {
    let event_loop = LoopRef::here(f.py());
    let callback = Callback::new(f, event_loop.clone(), what)?;
    Ok((callback, vec![event_loop]))
}

async fn call(
    callback: &Callback,
    cancel: jetjobs::CancellationToken,
    context: &str,
) -> jetjobs::Result<()> {
    callback
        .call(move |py| (PyCancellationToken { inner: cancel },).into_pyobject(py))
        .await
        .map(drop)
        .map_err(|raised| raised.into_error(ErrorKind::CallbackFailed, context))
}

/// A `Worker`, or a callable made into one.
fn worker_arg(obj: &Bound<'_, PyAny>) -> PyResult<(sup::Worker, Vec<LoopRef>)> {
    if let Ok(worker) = obj.cast::<PyWorker>() {
        let worker = worker.get();
        return Ok((worker.inner.clone(), worker.loops.clone()));
    }
    if obj.is_instance_of::<PyJob>() {
        return Err(PyTypeError::new_err(
            "a Job runs once, a Worker until cancelled: make it one with repeat()",
        ));
    }
    PyWorker::py_new(obj).map(|w| (w.inner, w.loops))
}

/// A `Job`, or a callable made into one.
fn job_arg(obj: &Bound<'_, PyAny>) -> PyResult<(sup::Job, Vec<LoopRef>)> {
    if let Ok(job) = obj.cast::<PyJob>() {
        let job = job.get();
        return Ok((job.inner.clone(), job.loops.clone()));
    }
    if obj.is_instance_of::<PyWorker>() {
        return Err(PyTypeError::new_err(
            "a Worker runs until cancelled, a Job once: pass a Job or a function",
        ));
    }
    PyJob::py_new(obj).map(|j| (j.inner, j.loops))
}

/// Runs every worker until all have returned; the first to return cancels the others. One error
/// is raised as it is, several as `WorkersFailed` (with `errors`); a worker returning before it
/// was cancelled is `WorkerExitedPrematurely`.
#[pyfunction]
#[pyo3(signature = (*workers, cancel=None))]
fn run_all_workers<'py>(
    py: Python<'py>,
    workers: &Bound<'py, PyTuple>,
    cancel: Option<&PyCancellationToken>,
) -> PyResult<Bound<'py, PyAny>> {
    let locals = callback::running(py)?;
    let mut all = Vec::with_capacity(workers.len());
    for worker in workers.iter() {
        let (worker, loops) = worker_arg(&worker)?;
        callback::bind_all(&loops, &locals);
        all.push(worker);
    }
    let cancel = cancel.map(|c| c.inner.clone()).unwrap_or_default();
    runtime::future_into_py_with_locals(py, locals, async move {
        convert::none(sup::run_all_workers(&cancel, all).await.py())
    })
}

/// Runs every job to its end; errors are raised as in `run_all_workers`.
#[pyfunction]
#[pyo3(signature = (*jobs, cancel=None))]
fn run_all_jobs<'py>(
    py: Python<'py>,
    jobs: &Bound<'py, PyTuple>,
    cancel: Option<&PyCancellationToken>,
) -> PyResult<Bound<'py, PyAny>> {
    let locals = callback::running(py)?;
    let mut all = Vec::with_capacity(jobs.len());
    for job in jobs.iter() {
        let (job, loops) = job_arg(&job)?;
        callback::bind_all(&loops, &locals);
        all.push(job);
    }
    let cancel = cancel.map(|c| c.inner.clone()).unwrap_or_default();
    runtime::future_into_py_with_locals(py, locals, async move {
        convert::none(sup::run_all_jobs(&cancel, all).await.py())
    })
}

/// A worker that runs `job` every `every` (start to start), first at once when
/// `start_immediately`; a job error ends it.
#[pyfunction]
#[pyo3(signature = (every, job, start_immediately=false))]
fn repeat(
    every: &Bound<'_, PyAny>,
    job: &Bound<'_, PyAny>,
    start_immediately: bool,
) -> PyResult<PyWorker> {
    let every = convert::duration(every)?;
    let (job, loops) = job_arg(job)?;
    Ok(PyWorker {
        inner: sup::repeat(every, job, start_immediately),
        loops,
    })
}

/// A worker that restarts `worker` whenever it returns, after `backoff` (a `RetryPolicy` or its
/// name) when it failed; it never raises.
#[pyfunction]
fn retry(worker: &Bound<'_, PyAny>, backoff: &Bound<'_, PyAny>) -> PyResult<PyWorker> {
    let backoff = PyRetryPolicy::extract_any(backoff)?;
    let (worker, loops) = worker_arg(worker)?;
    Ok(PyWorker {
        inner: sup::retry(worker, backoff),
        loops,
    })
}

/// A job that runs `job` until it succeeds, waiting `backoff` after each failure; cancelled
/// first, it raises `Closed` naming the last error.
#[pyfunction]
fn retry_job(job: &Bound<'_, PyAny>, backoff: &Bound<'_, PyAny>) -> PyResult<PyJob> {
    let backoff = PyRetryPolicy::extract_any(backoff)?;
    let (job, loops) = job_arg(job)?;
    Ok(PyJob {
        inner: sup::retry_job(job, backoff),
        loops,
    })
}

/// Sleeps `duration` unless `cancel` fires first: `True` if the whole time passed.
#[pyfunction]
fn wait<'py>(
    py: Python<'py>,
    cancel: &PyCancellationToken,
    duration: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let (cancel, duration) = (cancel.inner.clone(), convert::duration(duration)?);
    runtime::future_into_py(py, async move { Ok(sup::wait(&cancel, duration).await) })
}

/// No wait before the first attempt (`attempt == 0`), then `policy.delay(attempt)`.
#[pyfunction]
fn backoff_delay<'py>(
    py: Python<'py>,
    policy: &Bound<'py, PyAny>,
    attempt: u32,
) -> PyResult<Bound<'py, PyDelta>> {
    let policy = PyRetryPolicy::extract_any(policy)?;
    convert::timedelta(py, sup::backoff_delay(&policy, attempt))
}

/// A worker that runs `job` at most once per `every` (whole seconds) across every process
/// repeating `name` on the same NATS.
#[pyfunction]
fn distributed_repeat<'py>(
    py: Python<'py>,
    app_or_client: &Bound<'py, PyAny>,
    name: String,
    every: &Bound<'py, PyAny>,
    job: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let every = convert::duration(every)?;
    let (job, loops) = job_arg(job)?;
    let client = crate::client::client_of(app_or_client)?;
    runtime::future_into_py(py, async move {
        let (client, _) = client.await?;
        let inner = sup::distributed_repeat(&client, &name, every, job)
            .await
            .py()?;
        Ok(PyWorker { inner, loops })
    })
}

/// Named workers run together under `run_all_workers`' rules, each optionally restarted with
/// `retry`, each with a health of `"starting"`, `"ok"` or `"failing"`.
#[pyclass(module = "jetjobs._native.supervisor", name = "WorkerGroup", frozen)]
pub(crate) struct PyWorkerGroup {
    inner: std::sync::Mutex<(sup::WorkerGroup, Vec<LoopRef>)>,
}

impl PyWorkerGroup {
    fn lock(&self) -> std::sync::MutexGuard<'_, (sup::WorkerGroup, Vec<LoopRef>)> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[pymethods]
impl PyWorkerGroup {
    #[new]
    fn py_new() -> Self {
        Self {
            inner: std::sync::Mutex::new((sup::WorkerGroup::new(), Vec::new())),
        }
    }

    /// Adds worker `name`; with `retry` (a `RetryPolicy` or its name) it is restarted after each
    /// failure, otherwise its return ends the group.
    #[pyo3(signature = (name, worker, retry=None))]
    fn add(
        &self,
        name: &str,
        worker: &Bound<'_, PyAny>,
        retry: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let backoff = retry.map(PyRetryPolicy::extract_any).transpose()?;
        let (worker, loops) = worker_arg(worker)?;
        let mut guard = self.lock();
        let (group, all_loops) = &mut *guard;
        match backoff {
            Some(backoff) => group.add_with_retry(name, worker, backoff),
            None => group.add(name, worker),
        };
        all_loops.extend(loops);
        Ok(())
    }

    /// Every worker's health by name, in the order they were added.
    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let health = self.lock().0.health();
        let dict = PyDict::new(py);
        for (name, state) in health {
            dict.set_item(name, state.as_str())?;
        }
        Ok(dict)
    }

    /// Runs every worker until `cancel` fires or one without retry returns.
    #[pyo3(signature = (cancel=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        cancel: Option<&PyCancellationToken>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let locals = callback::running(py)?;
        // A clone shares the workers' health cells, so `health()` follows the run.
        let group = {
            let guard = self.lock();
            callback::bind_all(&guard.1, &locals);
            guard.0.clone()
        };
        let cancel = cancel.map(|c| c.inner.clone()).unwrap_or_default();
        runtime::future_into_py_with_locals(py, locals, async move {
            convert::none(group.run(&cancel).await.py())
        })
    }

    fn __repr__(&self) -> String {
        let names: Vec<String> = self.lock().0.health().into_iter().map(|(n, _)| n).collect();
        format!("supervisor.WorkerGroup({names:?})")
    }
}

/// Registers the submodule as `jetjobs._native.supervisor` (also in `sys.modules`, so that it
/// can be imported by that name).
pub(crate) fn register(parent: &Bound<'_, PyModule>) -> PyResult<()> {
    const NAME: &str = "jetjobs._native.supervisor";
    let py = parent.py();
    let m = PyModule::new(py, NAME)?;
    m.add_class::<PyWorker>()?;
    m.add_class::<PyJob>()?;
    m.add_class::<PyWorkerGroup>()?;
    m.add_function(wrap_pyfunction!(run_all_workers, &m)?)?;
    m.add_function(wrap_pyfunction!(run_all_jobs, &m)?)?;
    m.add_function(wrap_pyfunction!(repeat, &m)?)?;
    m.add_function(wrap_pyfunction!(retry, &m)?)?;
    m.add_function(wrap_pyfunction!(retry_job, &m)?)?;
    m.add_function(wrap_pyfunction!(wait, &m)?)?;
    m.add_function(wrap_pyfunction!(backoff_delay, &m)?)?;
    m.add_function(wrap_pyfunction!(distributed_repeat, &m)?)?;
    m.add(
        "MIN_RESTART_DELAY",
        convert::timedelta(py, sup::MIN_RESTART_DELAY)?,
    )?;
    m.add("HEALTHY_AFTER", convert::timedelta(py, sup::HEALTHY_AFTER)?)?;
    m.add("REPEAT_BUCKET", sup::REPEAT_BUCKET)?;
    parent.add("supervisor", &m)?;
    py.import("sys")?.getattr("modules")?.set_item(NAME, &m)?;
    Ok(())
}
