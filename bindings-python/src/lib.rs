// SPDX-License-Identifier: Apache-2.0
//! The `jetjobs._native` extension module: registration only. Each file wraps one core concept;
//! none holds engine logic (routing, concurrency, retries, deadlines, signatures and dependencies
//! are all the core's).

/// The engine's allocations go to mimalloc: about 10–25 % less CPU per task in the worker than
/// the system allocator (`make bench-scale` reports worker CPU per task).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod awaitable;
mod callback;
mod client;
mod convert;
mod dev_server;
mod error;
mod events;
mod governor;
mod handler;
mod kv;
mod log;
mod loop_waker;
mod metrics;
mod mux;
mod pool;
mod priority;
mod queue;
mod queue_handle;
mod responder;
mod retry;
mod runtime;
mod scheduler;
mod signing;
mod supervisor;
mod task;
mod trace;
mod worker;

use pyo3::prelude::*;

/// A new KSUID, the id format of tasks.
#[pyfunction]
fn new_id() -> String {
    jetjobs::new_id()
}

/// True if `name` is usable as a task type, task id or schedule name (`^[a-zA-Z0-9_:-]+$`).
#[pyfunction]
fn is_valid_name(name: &str) -> bool {
    jetjobs::is_valid_name(name)
}

/// True for states no worker moves a task out of on its own (the engine's `TaskState::is_final`).
/// Raises `InvalidDocument` for a string that is not a task state.
#[pyfunction]
fn is_final_state(state: &str) -> PyResult<bool> {
    task::state_from_str(state).map(jetjobs::TaskState::is_final)
}

/// Runs the `jetjobs` operator CLI (the `jetjobs-cli` crate, the same code as the Rust binary) on
/// `args`, whose first item is the program name, and returns its exit code. Output goes straight
/// to the process's stdout and stderr. Blocks until the command ends, without the GIL. The
/// package's `jetjobs` console script calls it.
#[pyfunction]
fn run_cli(py: Python<'_>, args: Vec<std::ffi::OsString>) -> i32 {
    py.detach(|| jetjobs_cli::run_with_panic_hook(args))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;

    m.add_class::<task::PyTask>()?;
    m.add_class::<task::PyTaskResult>()?;
    m.add_class::<task::PyTaskContext>()?;
    m.add_class::<trace::PyTraceContext>()?;
    m.add_class::<queue::PyQueue>()?;
    m.add_class::<retry::PyRetryPolicy>()?;
    m.add_class::<signing::PyTaskSigner>()?;
    m.add_class::<signing::PyTaskVerifier>()?;
    m.add_class::<mux::PyMux>()?;
    m.add_class::<client::PyClientOptions>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<client::PyStorageAdmin>()?;
    m.add_class::<client::PyQueueInfo>()?;
    m.add_class::<client::PyTasksInfo>()?;
    m.add_class::<client::PyCancellationToken>()?;
    m.add_class::<queue_handle::PyQueueHandle>()?;
    m.add_class::<worker::PyWorker>()?;
    m.add_class::<responder::PyResponder>()?;
    m.add_class::<priority::PyPriority>()?;
    m.add_class::<kv::PyKvBucket>()?;
    m.add_class::<kv::PyKv>()?;
    m.add_class::<kv::PyKvEntry>()?;
    m.add_class::<kv::PyKvWatch>()?;
    m.add_class::<events::PyEventStream>()?;
    m.add_class::<events::PyTaskStateChangeEvent>()?;
    m.add_class::<events::PyLeaderElectedEvent>()?;
    m.add_class::<dev_server::PyDevServer>()?;
    m.add_class::<scheduler::PyScheduledTask>()?;
    m.add_class::<scheduler::PyScheduleChange>()?;
    m.add_class::<scheduler::PyScheduleWatch>()?;
    m.add_class::<scheduler::PyTaskScheduler>()?;
    m.add_class::<governor::PyGovernor>()?;
    m.add_class::<governor::PyLease>()?;
    m.add_class::<governor::PyGovernorManager>()?;
    m.add_class::<pool::PyPoolNode>()?;
    m.add_class::<pool::PyPoolMember>()?;
    m.add_class::<pool::PyPoolJob>()?;
    m.add_class::<pool::PyJobPlan>()?;
    m.add_class::<pool::PyTicker>()?;
    supervisor::register(m)?;

    m.add_function(wrap_pyfunction!(new_id, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_name, m)?)?;
    m.add_function(wrap_pyfunction!(is_final_state, m)?)?;
    m.add_function(wrap_pyfunction!(run_cli, m)?)?;
    m.add_function(wrap_pyfunction!(pool::pool_worker_index, m)?)?;
    m.add_function(wrap_pyfunction!(metrics::render_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(log::refresh_log_level, m)?)?;
    m.add_function(wrap_pyfunction!(log::log_stats, m)?)?;
    // The engine's `tracing` events go to Python's `logging` (logger `jetjobs`) from now on.
    log::install(py)?;

    m.add("JetJobsError", py.get_type::<error::JetJobsError>())?;
    m.add("TerminateTask", py.get_type::<error::TerminateTask>())?;
    for (code, class) in error::classes(py) {
        class.setattr("code", code)?;
        m.add(code, class)?;
    }
    // The engine's own list, so the tests can check every kind has its class here.
    let codes: Vec<&str> = jetjobs::ErrorKind::ALL.iter().map(|k| k.code()).collect();
    m.add("ERROR_CODES", codes)?;

    // Not exported: runs once, at interpreter exit.
    let before_exit = wrap_pyfunction!(runtime::before_exit, m)?;
    py.import("atexit")?
        .call_method1("register", (before_exit,))?;

    m.add("DEFAULT_CONCURRENCY", jetjobs::DEFAULT_CONCURRENCY)?;
    m.add("DEFAULT_MAX_CONCURRENT", jetjobs::DEFAULT_MAX_CONCURRENT)?;
    m.add("DEFAULT_MAX_RUN_TIME", jetjobs::DEFAULT_MAX_RUN_TIME)?;
    m.add("DEFAULT_MAX_TRIES", jetjobs::DEFAULT_MAX_TRIES)?;
    m.add("DEFAULT_QUEUE_NAME", jetjobs::DEFAULT_QUEUE_NAME)?;
    m.add("RETRY_POLICY_NAMES", jetjobs::RETRY_POLICY_NAMES.to_vec())?;
    m.add("EVENTS_SUBJECT_WILDCARD", jetjobs::EVENTS_SUBJECT_WILDCARD)?;
    m.add("TASK_STATE_EVENT_TYPE", jetjobs::TASK_STATE_EVENT_TYPE)?;
    m.add(
        "LEADER_ELECTED_EVENT_TYPE",
        jetjobs::LEADER_ELECTED_EVENT_TYPE,
    )?;
    Ok(())
}
