// SPDX-License-Identifier: Apache-2.0
//! Python callables the core calls outside task handling: supervised workers and jobs, pool job
//! handlers, schedule plans.
//!
//! - A coroutine function runs as an asyncio task on the event loop its [`LoopRef`] names. When
//!   the core stops waiting (it drops the future), the asyncio task is cancelled.
//! - Any other callable runs on tokio's blocking pool with the GIL held only for the call, so a
//!   sync worker may block; an awaitable it returns is awaited on the loop as above.
//!
//! An exception comes back as a [`Raised`], which carries the exception object through the core
//! so that it is raised again as the same object. These are control calls (a worker's whole life,
//! one job start), so each wakes the loop on its own; `handler.rs` batches task handler calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use pyo3_async_runtimes::TaskLocals;
use tokio::sync::oneshot;

use crate::error::Raised;
use crate::runtime;

type Outcome = Result<Py<PyAny>, Raised>;

/// The event loop (and contextvars) async callbacks run on, shared by every callable wrapped for
/// one object. Bound where a callable is wrapped if a loop runs there, and again by each run that
/// awaits the object, so objects made before `asyncio.run` work too.
#[derive(Clone, Default)]
pub(crate) struct LoopRef(Arc<RwLock<Option<TaskLocals>>>);

impl LoopRef {
    /// Bound to the running loop, if there is one.
    pub(crate) fn here(py: Python<'_>) -> Self {
        let this = Self::default();
        if let Ok(locals) = running(py) {
            this.bind(locals);
        }
        this
    }

    pub(crate) fn bind(&self, locals: TaskLocals) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Some(locals);
    }

    fn get(&self) -> Option<TaskLocals> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The running loop and a copy of the caller's contextvars; `RuntimeError` outside a coroutine.
pub(crate) fn running(py: Python<'_>) -> PyResult<TaskLocals> {
    TaskLocals::with_running_loop(py)?.copy_context(py)
}

/// Binds every loop reference to `locals`: the run starting now awaits their callables.
pub(crate) fn bind_all(loops: &[LoopRef], locals: &TaskLocals) {
    for l in loops {
        l.bind(locals.clone());
    }
}

/// A Python callable the core calls from tokio tasks; cheap to clone.
#[derive(Clone)]
pub(crate) struct Callback {
    callable: Arc<Py<PyAny>>,
    is_async: bool,
    event_loop: LoopRef,
}

impl Callback {
    /// `TypeError` unless `callable` is callable; `what` names it in that message.
    pub(crate) fn new(
        callable: &Bound<'_, PyAny>,
        event_loop: LoopRef,
        what: &str,
    ) -> PyResult<Self> {
        let py = callable.py();
        if !callable.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "{what} must be callable, not {}",
                callable.get_type().name()?
            )));
        }
        let inspect = py.import(pyo3::intern!(py, "inspect"))?;
        let is_coroutine_function = |f: &Bound<'_, PyAny>| -> PyResult<bool> {
            inspect
                .call_method1(pyo3::intern!(py, "iscoroutinefunction"), (f,))?
                .is_truthy()
        };
        // An object whose `__call__` is a coroutine function is async too.
        let is_async = is_coroutine_function(callable)?
            || match callable.getattr(pyo3::intern!(py, "__call__")) {
                Ok(call) => is_coroutine_function(&call)?,
                Err(_) => false,
            };
        Ok(Self {
            callable: Arc::new(callable.clone().unbind()),
            is_async,
            event_loop,
        })
    }

    /// Calls it with the arguments `args` builds and waits for what it returns (awaited, if it
    /// is awaitable).
    pub(crate) async fn call<A>(&self, args: A) -> Outcome
    where
        A: for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyTuple>> + Send + 'static,
    {
        let args =
            runtime::attach(|py| args(py).map(Bound::unbind).map_err(|e| Raised::new(py, e)))
                .unwrap_or_else(|| Err(exiting()))?;
        if self.is_async {
            return self.on_loop(Work::Call(self.callable.clone(), args)).await;
        }
        let (callable, locals) = (self.callable.clone(), self.event_loop.get());
        let returned = tokio::task::spawn_blocking(move || {
            runtime::attach(|py| call_sync(py, &callable, &args, locals.as_ref()))
                .unwrap_or_else(|| Err(exiting()))
        })
        .await
        .map_err(|e| Raised::message(format!("a Python callback ended abnormally: {e}")))??;
        match returned {
            Returned::Value(value) => Ok(value),
            Returned::Awaitable(awaitable) => self.on_loop(Work::Await(awaitable)).await,
        }
    }

    /// Runs `work` on the loop and waits for its outcome; cancels its asyncio task if dropped.
    async fn on_loop(&self, work: Work) -> Outcome {
        let Some(locals) = self.event_loop.get() else {
            return Err(Raised::message(
                "no asyncio event loop to run this async callback on: start the run from a \
                 coroutine",
            ));
        };
        let (reply, outcome) = oneshot::channel();
        let state = Arc::new(State::default());
        let mut guard = CancelOnDrop {
            state: state.clone(),
            locals: locals.clone(),
            armed: true,
        };
        runtime::attach(|py| {
            let start = Start {
                work: Mutex::new(Some(work)),
                reply: Arc::new(Mutex::new(Some(reply))),
                state,
            };
            let kwargs = PyDict::new(py);
            kwargs.set_item(pyo3::intern!(py, "context"), locals.context(py))?;
            locals.event_loop(py).call_method(
                pyo3::intern!(py, "call_soon_threadsafe"),
                (Py::new(py, start)?,),
                Some(&kwargs),
            )?;
            PyResult::Ok(())
        })
        .unwrap_or_else(|| Ok(()))
        .map_err(|e| runtime::attach(|py| Raised::new(py, e)).unwrap_or_else(exiting))?;
        let outcome = outcome.await;
        guard.armed = false;
        outcome.unwrap_or_else(|_| {
            Err(Raised::message(
                "the event loop stopped before the Python callback finished",
            ))
        })
    }
}

fn exiting() -> Raised {
    Raised::message("the Python interpreter is shutting down")
}

enum Returned {
    Value(Py<PyAny>),
    Awaitable(Py<PyAny>),
}

/// A sync callable's call, in a copy of the loop's contextvars when there is a loop.
fn call_sync(
    py: Python<'_>,
    callable: &Py<PyAny>,
    args: &Py<PyTuple>,
    locals: Option<&TaskLocals>,
) -> Result<Returned, Raised> {
    let returned = match locals {
        Some(locals) => {
            let mut run_args = vec![callable.bind(py).clone()];
            run_args.extend(args.bind(py).iter());
            locals
                .context(py)
                .call_method0(pyo3::intern!(py, "copy"))
                .and_then(|context| {
                    context.call_method1(pyo3::intern!(py, "run"), PyTuple::new(py, run_args)?)
                })
        }
        None => callable.bind(py).call1(args.bind(py)),
    };
    match returned {
        Ok(value) if is_awaitable(&value) => Ok(Returned::Awaitable(value.unbind())),
        Ok(value) => Ok(Returned::Value(value.unbind())),
        Err(e) => Err(Raised::new(py, e)),
    }
}

fn is_awaitable(value: &Bound<'_, PyAny>) -> bool {
    value
        .hasattr(pyo3::intern!(value.py(), "__await__"))
        .unwrap_or(false)
}

/// What runs on the loop: a call of an async callable, or an awaitable a sync one returned.
enum Work {
    Call(Arc<Py<PyAny>>, Py<PyTuple>),
    Await(Py<PyAny>),
}

/// Shared by a call's tokio side and its asyncio task, so either can see the other go away.
#[derive(Default)]
struct State {
    /// The tokio side stopped waiting.
    abandoned: AtomicBool,
    /// The asyncio task, once started.
    task: Mutex<Option<Py<PyAny>>>,
}

type Reply = Arc<Mutex<Option<oneshot::Sender<Outcome>>>>;

fn send(reply: &Reply, outcome: Outcome) {
    if let Some(tx) = reply.lock().unwrap_or_else(PoisonError::into_inner).take() {
        let _ = tx.send(outcome);
    }
}

/// Runs on the event loop: calls the callable and starts its coroutine as an asyncio task.
#[pyclass(module = "jetjobs._native", frozen)]
struct Start {
    work: Mutex<Option<Work>>,
    reply: Reply,
    state: Arc<State>,
}

#[pymethods]
impl Start {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let work = self
            .work
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(work) = work else {
            return Ok(());
        };
        if self.state.abandoned.load(Ordering::Acquire) {
            return Ok(());
        }
        let awaitable = match work {
            Work::Call(callable, args) => match callable.bind(py).call1(args.bind(py)) {
                Ok(value) => value,
                Err(e) => {
                    // `KeyboardInterrupt`/`SystemExit` also stop the loop, as they would anywhere.
                    let stop = (e.is_instance_of::<PyKeyboardInterrupt>(py)
                        || e.is_instance_of::<PySystemExit>(py))
                    .then(|| e.clone_ref(py));
                    send(&self.reply, Err(Raised::new(py, e)));
                    return stop.map_or(Ok(()), Err);
                }
            },
            Work::Await(awaitable) => awaitable.into_bound(py),
        };
        if !is_awaitable(&awaitable) {
            send(&self.reply, Ok(awaitable.unbind()));
            return Ok(());
        }
        let task = match py
            .import(pyo3::intern!(py, "asyncio"))?
            .call_method1(pyo3::intern!(py, "ensure_future"), (&awaitable,))
        {
            Ok(task) => task,
            Err(e) => {
                send(&self.reply, Err(Raised::new(py, e)));
                return Ok(());
            }
        };
        let finish = Finish {
            reply: self.reply.clone(),
            state: self.state.clone(),
        };
        task.call_method1(pyo3::intern!(py, "add_done_callback"), (finish,))?;
        *self
            .state
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task.clone().unbind());
        // The tokio side may have given up while the task was being created.
        if self.state.abandoned.load(Ordering::Acquire) {
            task.call_method0(pyo3::intern!(py, "cancel"))?;
        }
        Ok(())
    }
}

/// An asyncio task's done callback: sends its outcome to the waiting tokio task.
#[pyclass(module = "jetjobs._native", frozen)]
struct Finish {
    reply: Reply,
    state: Arc<State>,
}

#[pymethods]
impl Finish {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        let outcome = match task.call_method0(pyo3::intern!(py, "result")) {
            Ok(value) => Ok(value.unbind()),
            Err(e) => Err(Raised::new(py, e)),
        };
        self.state
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        send(&self.reply, outcome);
    }
}

/// Cancels the asyncio task if the core drops the call before it finished.
struct CancelOnDrop {
    state: Arc<State>,
    locals: TaskLocals,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.state.abandoned.store(true, Ordering::Release);
        let task = self
            .state
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            runtime::attach(|py| {
                let _ = task
                    .bind(py)
                    .getattr(pyo3::intern!(py, "cancel"))
                    .and_then(|cancel| {
                        self.locals
                            .event_loop(py)
                            .call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (cancel,))
                    });
            });
        }
    }
}
