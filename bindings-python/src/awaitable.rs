// SPDX-License-Identifier: Apache-2.0
//! Python awaitables for Rust futures, completed in batches on their event loop.
//!
//! pyo3-async-runtimes completes each awaitable from a blocking-pool thread of its own that takes
//! the GIL and calls `call_soon_threadsafe`. With 256 enqueues in flight that made hundreds of
//! threads queue for the GIL, and the producer spent more CPU on that than on its enqueues. Here a
//! finished future only queues its outcome; the first outcome of a batch wakes each loop once, and
//! on the loop [`Completions`] resolves every future queued for it (as `handler.rs` starts
//! handlers).
//!
//! As with pyo3-async-runtimes, cancelling the awaitable drops the Rust future, and a panic in it
//! becomes a `RustPanic` exception.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;

use futures::FutureExt;
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3_async_runtimes::err::RustPanic;
use tokio::task::AbortHandle;

use crate::runtime;

/// How a finished future resolves its awaitable, made into Python objects on the loop's thread.
type Resolve = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// A finished future waiting for its loop.
struct Outcome {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    resolve: Resolve,
}

/// Outcomes not yet handed to their loops, and whether a wake for them is under way.
struct Finished {
    outcomes: Vec<Outcome>,
    waking: bool,
}

static FINISHED: Mutex<Finished> = Mutex::new(Finished {
    outcomes: Vec::new(),
    waking: false,
});

fn finished() -> std::sync::MutexGuard<'static, Finished> {
    FINISHED.lock().unwrap_or_else(|p| p.into_inner())
}

/// An `asyncio.Future` on the running loop that `fut`'s output resolves.
pub(crate) fn future_into_py<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: std::future::Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    let (loop_ref, future_ref) = (event_loop.unbind(), future.clone().unbind());
    let task = runtime::runtime().spawn(async move {
        let output = AssertUnwindSafe(fut).catch_unwind().await;
        let resolve: Resolve = Box::new(move |py| match output {
            Ok(result) => result.and_then(|value| value.into_py_any(py)),
            Err(panic) => Err(RustPanic::new_err(format!(
                "rust future panicked: {}",
                panic_message(panic.as_ref())
            ))),
        });
        queue(Outcome {
            event_loop: loop_ref,
            future: future_ref,
            resolve,
        });
    });
    // Registered before the loop can resolve the future: that happens on this thread, later.
    future.call_method1(
        pyo3::intern!(py, "add_done_callback"),
        (AbortOnCancel {
            task: task.abort_handle(),
        },),
    )?;
    Ok(future)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "unknown error"
    }
}

/// Queues a finished future's outcome; the first one after a wake wakes the loops.
fn queue(outcome: Outcome) {
    let wake = {
        let mut finished = finished();
        finished.outcomes.push(outcome);
        !std::mem::replace(&mut finished.waking, true)
    };
    if wake {
        wake_loops();
    }
}

/// Hands every queued outcome to its loop: one `call_soon_threadsafe` per loop.
///
/// The queue is taken only once the GIL is held: outcomes that finish while this waits for it
/// join the batch instead of waking the loops again.
fn wake_loops() {
    let woken = runtime::attach(|py| {
        let outcomes = {
            let mut finished = finished();
            finished.waking = false;
            std::mem::take(&mut finished.outcomes)
        };
        for (event_loop, outcomes) in by_loop(py, outcomes) {
            let completions = Completions {
                outcomes: Mutex::new(outcomes),
            };
            // A closed loop's futures are never awaited again: their outcomes are dropped.
            let _ = event_loop
                .bind(py)
                .call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (completions,));
        }
    });
    if woken.is_none() {
        // The interpreter is exiting: nobody awaits these any more.
        let mut finished = finished();
        finished.waking = false;
        finished.outcomes.clear();
    }
}

/// Outcomes grouped by their loop, in the order they finished.
fn by_loop(py: Python<'_>, outcomes: Vec<Outcome>) -> Vec<(Py<PyAny>, Vec<Outcome>)> {
    let mut groups: Vec<(Py<PyAny>, Vec<Outcome>)> = Vec::new();
    for outcome in outcomes {
        let event_loop = outcome.event_loop.as_ptr();
        match groups.iter_mut().find(|(l, _)| l.as_ptr() == event_loop) {
            Some((_, group)) => group.push(outcome),
            None => {
                groups.push((outcome.event_loop.clone_ref(py), vec![outcome]));
            }
        }
    }
    groups
}

/// Runs on a loop: resolves the futures of a batch that are still waiting.
#[pyclass(module = "jetjobs._native", frozen)]
struct Completions {
    outcomes: Mutex<Vec<Outcome>>,
}

#[pymethods]
impl Completions {
    fn __call__(&self, py: Python<'_>) {
        let outcomes =
            std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()));
        for outcome in outcomes {
            let future = outcome.future.bind(py);
            // A cancelled awaitable is done already; its outcome is dropped.
            if future
                .call_method0(pyo3::intern!(py, "done"))
                .and_then(|done| done.is_truthy())
                .unwrap_or(true)
            {
                continue;
            }
            let settled = match (outcome.resolve)(py) {
                Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
                Err(e) => future.call_method1(pyo3::intern!(py, "set_exception"), (e,)),
            };
            if let Err(e) = settled {
                e.write_unraisable(py, Some(future));
            }
        }
    }
}

/// The awaitable's done callback: cancelling it aborts the Rust future.
#[pyclass(module = "jetjobs._native", frozen)]
struct AbortOnCancel {
    task: AbortHandle,
}

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future
            .call_method0(pyo3::intern!(future.py(), "cancelled"))?
            .is_truthy()?
        {
            self.task.abort();
        }
        Ok(())
    }
}
