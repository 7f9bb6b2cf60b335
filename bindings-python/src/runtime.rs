// SPDX-License-Identifier: Apache-2.0
//! The tokio runtime the engine runs on, and the two ways Python waits for it: an awaitable
//! (`future_into_py`) or a blocking call made with the GIL released (`block_on`).
//!
//! The runtime is per process: a child made by `os.fork()` has none of the parent's runtime
//! threads, so it builds its own on first use instead of hanging on the inherited one.
//!
//! Threads Python did not start enter the interpreter only through [`attach`]. CPython (before
//! 3.14) ends such a thread with `pthread_exit` if it asks for the GIL while the interpreter
//! finalizes, which unwinds Rust frames holding Python objects and crashes. So an `atexit` hook
//! ([`before_exit`]) closes the door and waits for the threads inside to leave first; this covers a
//! completion racing the end of `asyncio.run(main())`.

use std::cell::OnceCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3_async_runtimes::TaskLocals;
use pyo3_async_runtimes::generic::{ContextExt, Runtime as GenericRuntime};
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// This process's runtime, built on first use (and again after a fork).
pub(crate) fn runtime() -> &'static Runtime {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    match *slot {
        Some((owner, rt)) if owner == pid => rt,
        _ => {
            // Leaked on purpose: a runtime inherited through fork has no threads and must not be
            // dropped (that would wait for them), and the live one lasts as long as the process.
            let rt: &'static Runtime = Box::leak(Box::new(
                jetjobs::embedded_runtime()
                    .thread_name("jetjobs")
                    .build()
                    .expect("building the tokio runtime"),
            ));
            *slot = Some((pid, rt));
            rt
        }
    }
}

/// `Ok` in the process that made a connection (`pid`); in a child made by `os.fork()` a clear
/// `Connection` error, since the connection's tasks ran on the parent's runtime and every call
/// would otherwise wait for a reply that never comes.
pub(crate) fn same_process(pid: u32) -> PyResult<()> {
    if std::process::id() == pid {
        return Ok(());
    }
    Err(crate::error::to_py(jetjobs::Error::new(
        jetjobs::ErrorKind::Connection,
        "this client was connected in another process (before os.fork()): connect again in \
         this one",
    )))
}

/// [`pyo3_async_runtimes`]' generic API on [`runtime`].
pub(crate) struct JetRuntime;

tokio::task_local! {
    static TASK_LOCALS: OnceCell<TaskLocals>;
}

impl GenericRuntime for JetRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        runtime().spawn(fut)
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        // pyo3-async-runtimes completes awaitables from here, inside the GIL: hold the door.
        runtime().spawn_blocking(move || {
            if let Some(_inside) = enter() {
                f()
            }
        })
    }
}

impl ContextExt for JetRuntime {
    fn scope<F, R>(locals: TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<TaskLocals> {
        TASK_LOCALS
            .try_with(|c| c.get().cloned())
            .unwrap_or_default()
    }
}

/// A Python awaitable for a Rust future, on the running event loop.
pub(crate) use crate::awaitable::future_into_py;

/// Like [`future_into_py`], with task locals captured by the caller.
pub(crate) fn future_into_py_with_locals<F, T>(
    py: Python<'_>,
    locals: TaskLocals,
    fut: F,
) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'py> IntoPyObject<'py> + Send + 'static,
{
    pyo3_async_runtimes::generic::future_into_py_with_locals::<JetRuntime, _, _>(py, locals, fut)
}

/// Runs `fut` to completion for synchronous callers, with the GIL released meanwhile.
pub(crate) fn block_on<F>(py: Python<'_>, fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    py.detach(|| runtime().block_on(fut))
}

static EXITING: AtomicBool = AtomicBool::new(false);
static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// A thread Python did not start is using the interpreter.
struct Inside(());

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn enter() -> Option<Inside> {
    INSIDE.fetch_add(1, Ordering::SeqCst);
    let inside = Inside(());
    (!EXITING.load(Ordering::SeqCst)).then_some(inside)
}

/// `Python::try_attach` for threads Python did not start; `None` once the interpreter is exiting.
pub(crate) fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    let _inside = enter()?;
    Python::try_attach(f)
}

/// Registered with `atexit`: no foreign thread enters the interpreter from now on, and those inside
/// get a few seconds to leave before finalization starts.
#[pyfunction]
pub(crate) fn before_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::SeqCst);
    py.detach(|| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while INSIDE.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}
