// SPDX-License-Identifier: Apache-2.0
//! Python awaitables for Rust futures, completed in batches on their event loop.
//!
//! pyo3-async-runtimes completes each awaitable from a blocking-pool thread of its own that takes
//! the GIL and calls `call_soon_threadsafe`. With 256 enqueues in flight that made hundreds of
//! threads queue for the GIL, and the producer spent more CPU on that than on its enqueues. Here a
//! finished future only queues its outcome with the loop's [`LoopWaker`], without the GIL; the
//! loop resolves every future queued by the time it wakes.
//!
//! As with pyo3-async-runtimes, cancelling the awaitable drops the Rust future, and a panic in it
//! becomes a `RustPanic` exception.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3_async_runtimes::err::RustPanic;
use tokio::task::AbortHandle;

use crate::loop_waker::LoopWaker;
use crate::runtime;

/// An `asyncio.Future` on the running loop that `fut`'s output resolves.
pub(crate) fn future_into_py<F, T>(py: Python<'_>, fut: F) -> PyResult<Bound<'_, PyAny>>
where
    F: std::future::Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    let event_loop = pyo3_async_runtimes::get_running_loop(py)?;
    let waker = LoopWaker::of(&event_loop)?;
    let future = event_loop.call_method0(pyo3::intern!(py, "create_future"))?;
    let pending = future.clone().unbind();
    let task = runtime::runtime().spawn(async move {
        let output = AssertUnwindSafe(fut).catch_unwind().await;
        waker.run_on_loop(Box::new(move |py| {
            let outcome = match output {
                Ok(result) => result.and_then(|value| value.into_py_any(py)),
                Err(panic) => Err(RustPanic::new_err(format!(
                    "rust future panicked: {}",
                    panic_message(panic.as_ref())
                ))),
            };
            settle(py, pending.bind(py), outcome);
            Ok(())
        }));
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

/// Resolves `future` with `outcome` unless it is done already (cancelled), which drops it.
fn settle(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: PyResult<Py<PyAny>>) {
    if future
        .call_method0(pyo3::intern!(py, "done"))
        .and_then(|done| done.is_truthy())
        .unwrap_or(true)
    {
        return;
    }
    let settled = match outcome {
        Ok(value) => future.call_method1(pyo3::intern!(py, "set_result"), (value,)),
        Err(e) => future.call_method1(pyo3::intern!(py, "set_exception"), (e,)),
    };
    if let Err(e) = settled {
        e.write_unraisable(py, Some(future));
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
