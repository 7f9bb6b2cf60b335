// SPDX-License-Identifier: Apache-2.0
//! Python callables as core [`Handler`]s.
//!
//! - **Async handlers** run on the event loop that called `Client.run`. The core calls a handler from
//!   tokio tasks; each call queues a job and the first job of a batch wakes the loop through its
//!   [`LoopWaker`], without the GIL. On the loop, [`Drain`] starts every queued job as an asyncio
//!   task and each task's done callback sends the result straight back to the waiting tokio task.
//!   Under load the loop is woken once per batch instead of once per task.
//! - **Sync handlers** run on tokio's blocking pool with the GIL held only for the call, so they
//!   never block the event loop or a tokio worker.
//!
//! When the core drops a handler future (deadline, hard shutdown), the asyncio task is cancelled.
//! A handler's `KeyboardInterrupt`/`SystemExit` is recorded as a failed try *and* re-raised on the
//! event loop, so it still stops the program.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::future::BoxFuture;
use jetjobs::{Handler, HandlerError, HandlerResult, Task, TaskContext};
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PySystemExit, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_async_runtimes::TaskLocals;
use tokio::sync::oneshot;

use crate::convert;
use crate::error::TerminateTask;
use crate::loop_waker::LoopWaker;
use crate::runtime;
use crate::task::PyTask;

/// The event loop a `Mux`'s handlers currently run on; set for the duration of `Client.run`.
#[derive(Default)]
pub(crate) struct LoopSlot(RwLock<Option<Arc<Dispatcher>>>);

impl LoopSlot {
    fn current(&self) -> Option<Arc<Dispatcher>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn install(&self, dispatcher: Arc<Dispatcher>) -> PyResult<()> {
        let mut slot = self.0.write().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Err(PyRuntimeError::new_err(
                "this Mux is already running in a worker; give each worker its own Mux",
            ));
        }
        *slot = Some(dispatcher);
        Ok(())
    }

    pub(crate) fn clear(&self) {
        let dispatcher = self.0.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(d) = dispatcher {
            d.close();
        }
    }
}

/// Frees a mux's slot for another run when a run ends or is dropped.
pub(crate) struct Uninstall(pub(crate) Arc<LoopSlot>);

impl Drop for Uninstall {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// A Python callable registered on a `Mux`.
pub(crate) struct PyHandler {
    callable: Arc<Py<PyAny>>,
    is_async: bool,
    slot: Arc<LoopSlot>,
}

impl PyHandler {
    pub(crate) fn new(callable: Py<PyAny>, is_async: bool, slot: Arc<LoopSlot>) -> Self {
        Self {
            callable: Arc::new(callable),
            is_async,
            slot,
        }
    }
}

impl Handler for PyHandler {
    fn call(&self, ctx: TaskContext, task: Task) -> BoxFuture<'static, HandlerResult> {
        let dispatcher = self.slot.current();
        let callable = self.callable.clone();
        let is_async = self.is_async;
        Box::pin(async move {
            let Some(dispatcher) = dispatcher else {
                return Err(HandlerError::retry(
                    "no Python event loop is running this worker",
                ));
            };
            if is_async {
                dispatcher.call_async(callable, ctx, task).await
            } else {
                dispatcher.call_sync(callable, ctx, task).await
            }
        })
    }
}

/// One async handler call waiting for the loop.
struct Job {
    callable: Arc<Py<PyAny>>,
    task: Task,
    ctx: TaskContext,
    reply: oneshot::Sender<HandlerResult>,
    state: Arc<JobState>,
}

/// Shared by a job's tokio side and its asyncio task, so either can see the other go away.
#[derive(Default)]
struct JobState {
    /// The tokio side stopped waiting (deadline or hard shutdown).
    abandoned: AtomicBool,
    /// The asyncio task, once started.
    py_task: Mutex<Option<Py<PyAny>>>,
}

/// Bridges one `Client.run` to its event loop.
pub(crate) struct Dispatcher {
    event_loop: Py<PyAny>,
    waker: Arc<LoopWaker>,
    context: Py<PyAny>,
    drain: Py<Drain>,
}

impl Dispatcher {
    /// Captures the running loop and a copy of the caller's contextvars.
    pub(crate) fn new(py: Python<'_>, locals: &TaskLocals) -> PyResult<Arc<Self>> {
        Ok(Arc::new(Self {
            event_loop: locals.event_loop(py).unbind(),
            waker: LoopWaker::of(&locals.event_loop(py))?,
            context: locals.context(py).unbind(),
            drain: Py::new(
                py,
                Drain {
                    event_loop: locals.event_loop(py).unbind(),
                    pending: Mutex::default(),
                    scheduled: AtomicBool::default(),
                    closed: AtomicBool::default(),
                },
            )?,
        }))
    }

    fn close(&self) {
        self.drain.get().closed.store(true, Ordering::Release);
        // Jobs still queued are dropped; their callers see the loop gone.
        drop(self.drain.get().take());
    }

    async fn call_async(
        self: Arc<Self>,
        callable: Arc<Py<PyAny>>,
        ctx: TaskContext,
        task: Task,
    ) -> HandlerResult {
        let (reply, result) = oneshot::channel();
        let state = Arc::new(JobState::default());
        let mut guard = CancelOnDrop {
            state: state.clone(),
            dispatcher: self.clone(),
            armed: true,
        };
        self.clone().submit(Job {
            callable,
            task,
            ctx,
            reply,
            state,
        });
        let outcome = result.await;
        guard.armed = false;
        outcome.unwrap_or_else(|_| {
            Err(HandlerError::retry(
                "the worker's event loop stopped before the handler finished",
            ))
        })
    }

    /// Queues a job; the first job after a drain has the loop drain the queue.
    fn submit(self: Arc<Self>, job: Job) {
        let drain = self.drain.get();
        if drain.closed.load(Ordering::Acquire) {
            return; // dropping the job drops its reply: the caller sees the loop gone
        }
        let wake = {
            let mut pending = drain.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.push(job);
            !drain.scheduled.swap(true, Ordering::AcqRel)
        };
        if !wake {
            return;
        }
        let waker = self.waker.clone();
        // In the caller's contextvars, so that handler tasks copy them.
        waker.run_on_loop(Box::new(move |py| {
            self.context
                .bind(py)
                .call_method1(pyo3::intern!(py, "run"), (self.drain.bind(py),))
                .map(drop)
        }));
    }

    async fn call_sync(
        self: Arc<Self>,
        callable: Arc<Py<PyAny>>,
        ctx: TaskContext,
        task: Task,
    ) -> HandlerResult {
        let join = tokio::task::spawn_blocking(move || {
            runtime::attach(|py| self.run_sync(py, &callable, task, ctx)).unwrap_or_else(|| {
                Err(HandlerError::retry(
                    "the Python interpreter is shutting down",
                ))
            })
        });
        match join.await {
            Ok(result) => result,
            Err(e) => Err(HandlerError::retry(format!("handler panicked: {e}"))),
        }
    }

    fn run_sync(
        &self,
        py: Python<'_>,
        callable: &Py<PyAny>,
        task: Task,
        ctx: TaskContext,
    ) -> HandlerResult {
        let task = Py::new(py, PyTask::for_handler(task, ctx)).map_err(|e| failure(py, &e))?;
        // Each call gets its own copy: one Context cannot be entered by two threads at once.
        let returned = self
            .context
            .bind(py)
            .call_method0(pyo3::intern!(py, "copy"))
            .and_then(|context| {
                context.call_method1(pyo3::intern!(py, "run"), (callable.bind(py), task))
            });
        match returned {
            Ok(value) => result_of(&value),
            Err(e) => {
                if must_propagate(py, &e) {
                    self.reraise_on_loop(py, e.clone_ref(py));
                }
                Err(failure(py, &e))
            }
        }
    }

    fn reraise_on_loop(&self, py: Python<'_>, err: PyErr) {
        let reraise = Reraise {
            err: Mutex::new(Some(err)),
        };
        let _ = Py::new(py, reraise).and_then(|r| {
            self.event_loop
                .bind(py)
                .call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (r,))
        });
    }
}

/// Runs on the event loop: starts every queued job.
#[pyclass(module = "jetjobs._native", frozen)]
struct Drain {
    event_loop: Py<PyAny>,
    pending: Mutex<Vec<Job>>,
    scheduled: AtomicBool,
    closed: AtomicBool,
}

impl Drain {
    fn take(&self) -> Vec<Job> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Calls the handler and hands its coroutine to the loop. `Err` only for an exception that
    /// must stop the loop.
    fn start(py: Python<'_>, event_loop: &Bound<'_, PyAny>, job: Job) -> PyResult<()> {
        if job.state.abandoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let returned = Py::new(py, PyTask::for_handler(job.task, job.ctx))
            .and_then(|task| job.callable.bind(py).call1((task,)));
        let awaitable = match returned {
            Ok(value) => value,
            Err(e) => {
                let _ = job.reply.send(Err(failure(py, &e)));
                return if must_propagate(py, &e) {
                    Err(e)
                } else {
                    Ok(())
                };
            }
        };
        let py_task = match event_loop.call_method1(pyo3::intern!(py, "create_task"), (&awaitable,))
        {
            Ok(t) => t,
            // Not a coroutine: another awaitable, or a plain value from a callable declared async.
            Err(e) if e.is_instance_of::<PyTypeError>(py) => {
                if !awaitable.hasattr(pyo3::intern!(py, "__await__"))? {
                    let _ = job.reply.send(result_of(&awaitable));
                    return Ok(());
                }
                let asyncio = py.import(pyo3::intern!(py, "asyncio"))?;
                let kwargs = PyDict::new(py);
                kwargs.set_item(pyo3::intern!(py, "loop"), event_loop)?;
                match asyncio.call_method(
                    pyo3::intern!(py, "ensure_future"),
                    (&awaitable,),
                    Some(&kwargs),
                ) {
                    Ok(t) => t,
                    Err(e) => {
                        let _ = job.reply.send(Err(failure(py, &e)));
                        return Ok(());
                    }
                }
            }
            Err(e) => {
                let _ = job.reply.send(Err(failure(py, &e)));
                return Ok(());
            }
        };
        let done = Done {
            reply: Mutex::new(Some(job.reply)),
            state: job.state.clone(),
        };
        py_task.call_method1(pyo3::intern!(py, "add_done_callback"), (done,))?;
        *job.state.py_task.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(py_task.clone().unbind());
        // The tokio side may have given up while the task was being created.
        if job.state.abandoned.load(Ordering::Acquire) {
            py_task.call_method0(pyo3::intern!(py, "cancel"))?;
        }
        Ok(())
    }
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        // Cleared before taking, so a job queued after the take schedules the next drain.
        self.scheduled.store(false, Ordering::Release);
        let jobs = self.take();
        if jobs.is_empty() {
            return Ok(());
        }
        let event_loop = self.event_loop.bind(py);
        let mut stop = None;
        for job in jobs {
            if let Err(e) = Self::start(py, event_loop, job) {
                stop.get_or_insert(e);
            }
        }
        stop.map_or(Ok(()), Err)
    }
}

/// An asyncio task's done callback: sends its outcome to the waiting tokio task.
#[pyclass(module = "jetjobs._native", frozen)]
struct Done {
    reply: Mutex<Option<oneshot::Sender<HandlerResult>>>,
    state: Arc<JobState>,
}

#[pymethods]
impl Done {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        let outcome = match task.call_method0(pyo3::intern!(py, "result")) {
            Ok(value) => result_of(&value),
            Err(e) => Err(failure(py, &e)),
        };
        self.state
            .py_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(reply) = self.reply.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = reply.send(outcome);
        }
    }
}

/// Re-raises a sync handler's `KeyboardInterrupt`/`SystemExit` on the event loop.
#[pyclass(module = "jetjobs._native", frozen)]
struct Reraise {
    err: Mutex<Option<PyErr>>,
}

#[pymethods]
impl Reraise {
    fn __call__(&self) -> PyResult<()> {
        match self.err.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Cancels the asyncio task if the core drops the handler future before it finished.
struct CancelOnDrop {
    state: Arc<JobState>,
    dispatcher: Arc<Dispatcher>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.state.abandoned.store(true, Ordering::Release);
        let py_task = self
            .state
            .py_task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(py_task) = py_task {
            self.dispatcher.waker.run_on_loop(Box::new(move |py| {
                py_task.bind(py).call_method0(pyo3::intern!(py, "cancel"))?;
                Ok(())
            }));
        }
    }
}

/// A handler's return value as the task result.
fn result_of(value: &Bound<'_, PyAny>) -> HandlerResult {
    convert::to_json(value).map_err(|e| failure(value.py(), &e))
}

/// `KeyboardInterrupt` and `SystemExit` are never swallowed.
fn must_propagate(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PyKeyboardInterrupt>(py) || err.is_instance_of::<PySystemExit>(py)
}

/// A Python exception as a failed try: `TerminateTask` terminates; anything else is retried, with
/// `last_err` = `<type>: <message>` as a traceback's last line shows it.
pub(crate) fn failure(py: Python<'_>, err: &PyErr) -> HandlerError {
    let value = err.value(py);
    let message = value.str().map(|s| s.to_string()).unwrap_or_default();
    if err.is_instance_of::<TerminateTask>(py) {
        return HandlerError::terminate(if message.is_empty() {
            "TerminateTask".to_owned()
        } else {
            message
        });
    }
    HandlerError::retry(describe(py, err))
}

/// An exception as a traceback's last line shows it: `<type>: <message>`, or just the type.
pub(crate) fn describe(py: Python<'_>, err: &PyErr) -> String {
    let value = err.value(py);
    let message = value.str().map(|s| s.to_string()).unwrap_or_default();
    let name = type_name(&value.get_type()).unwrap_or_else(|_| "Exception".to_owned());
    if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    }
}

fn type_name(ty: &Bound<'_, pyo3::types::PyType>) -> PyResult<String> {
    let qualname = ty.qualname()?.to_string();
    let module = ty.module()?.to_string();
    Ok(if module == "builtins" || module == "__main__" {
        qualname
    } else {
        format!("{module}.{qualname}")
    })
}
