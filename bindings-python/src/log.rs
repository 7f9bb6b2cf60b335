// SPDX-License-Identifier: Apache-2.0
//! The engine's `tracing` events (targets `jetjobs::…`), forwarded to Python's `logging`: target
//! `jetjobs::worker::process` logs on the logger `jetjobs.worker.process` (a child of `jetjobs`),
//! TRACE and DEBUG as `DEBUG`, INFO as `INFO`, WARN as `WARNING`, ERROR as `ERROR`; the message
//! ends with the event's fields (`task=… error=…`) and the record's path and line are the Rust
//! source's.
//!
//! The level filter and formatting are the core's (`jetjobs::forward_logs`): an event below the
//! level costs one atomic load and never reaches Python. The level follows
//! `logging.getLogger("jetjobs").getEffectiveLevel()`, read when the module is imported, when a client connects, when a worker starts, after every batch of
//! forwarded records, and by `refresh_log_level()`; a level lowered (made more verbose) meanwhile
//! takes effect at the next of these.
//!
//! Enabled events never touch the GIL on the thread that emits them (a tokio thread, possibly
//! inside the engine's locks): they go into a bounded queue that one thread of this module,
//! `jetjobs-log`, hands to Python in batches. A full queue drops the event and counts it (see
//! `log_stats()`); so do events left over once the interpreter is exiting.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use jetjobs::{LogRecord, LogSink};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tracing::Level;
use tracing::level_filters::LevelFilter;

use crate::runtime;

/// Records waiting for the forwarding thread; beyond this they are dropped.
const QUEUE: usize = 1024;
/// Records handed to Python per GIL acquisition, at most.
const BATCH: usize = 256;

/// Records the sink took but the interpreter, exiting, could no longer log.
static LOST_AT_EXIT: AtomicU64 = AtomicU64::new(0);

/// The most verbose `tracing` level a Python logger at `effective` level lets through.
fn filter_for(effective: i64) -> LevelFilter {
    match effective {
        ..=10 => LevelFilter::TRACE,
        11..=20 => LevelFilter::INFO,
        21..=30 => LevelFilter::WARN,
        31..=40 => LevelFilter::ERROR,
        _ => LevelFilter::OFF,
    }
}

fn python_level(level: Level) -> i64 {
    match level {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        _ => 10,
    }
}

/// The queue to the forwarding thread, with the process it was started in (a child made by
/// `os.fork()` has no such thread and starts its own).
#[derive(Default)]
struct PythonSink {
    queue: Mutex<Option<(u32, SyncSender<LogRecord>)>>,
}

impl LogSink for PythonSink {
    fn send(&self, record: LogRecord) -> bool {
        let pid = std::process::id();
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = match &*queue {
            Some((owner, sender)) if *owner == pid => sender.clone(),
            _ => {
                let (sender, receiver) = sync_channel(QUEUE);
                let spawned = std::thread::Builder::new()
                    .name("jetjobs-log".into())
                    .spawn(move || forward(receiver));
                if spawned.is_err() {
                    return false;
                }
                *queue = Some((pid, sender.clone()));
                sender
            }
        };
        drop(queue);
        match sender.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

/// The forwarding thread: hands records to Python in batches, each under one GIL acquisition.
fn forward(receiver: Receiver<LogRecord>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        batch.extend(receiver.try_iter().take(BATCH - 1));
        let count = batch.len() as u64;
        let handed = runtime::attach(|py| {
            for record in batch {
                if let Err(e) = emit(py, record) {
                    e.write_unraisable(py, None);
                }
            }
            let _ = sync_level(py);
        });
        if handed.is_none() {
            // The interpreter is exiting: nobody is listening any more.
            LOST_AT_EXIT.fetch_add(count, Ordering::Relaxed);
        }
    }
}

fn emit(py: Python<'_>, record: LogRecord) -> PyResult<()> {
    let name = record.target.replace("::", ".");
    let level = python_level(record.level);
    let logger = py
        .import(pyo3::intern!(py, "logging"))?
        .call_method1(pyo3::intern!(py, "getLogger"), (name.as_str(),))?;
    if !logger
        .call_method1(pyo3::intern!(py, "isEnabledFor"), (level,))?
        .is_truthy()?
    {
        return Ok(());
    }
    let made = logger.call_method1(
        pyo3::intern!(py, "makeRecord"),
        (
            name,
            level,
            record.file.unwrap_or("(unknown file)"),
            record.line.unwrap_or(0),
            record.text,
            PyTuple::empty(py),
            py.None(),
        ),
    )?;
    logger.call_method1(pyo3::intern!(py, "handle"), (made,))?;
    Ok(())
}

/// Applies the `jetjobs` logger's effective level to the engine's filter.
pub(crate) fn sync_level(py: Python<'_>) -> PyResult<()> {
    let effective: i64 = py
        .import(pyo3::intern!(py, "logging"))?
        .call_method1(pyo3::intern!(py, "getLogger"), ("jetjobs",))?
        .call_method0(pyo3::intern!(py, "getEffectiveLevel"))?
        .extract()?;
    jetjobs::set_log_level(filter_for(effective));
    Ok(())
}

/// Installs the forwarding subscriber (once per process) at the `jetjobs` logger's level.
pub(crate) fn install(py: Python<'_>) -> PyResult<()> {
    jetjobs::forward_logs(Arc::new(PythonSink::default()));
    sync_level(py)
}

/// Reads `logging.getLogger("jetjobs").getEffectiveLevel()` again and applies it to the engine's
/// log filter at once. Needed only after making that logger more verbose while a worker runs:
/// the level is also read at import, when a client connects and when a worker starts.
#[pyfunction]
pub(crate) fn refresh_log_level(py: Python<'_>) -> PyResult<()> {
    sync_level(py)
}

/// Counts of engine log events since the process started: `forwarded` (queued for Python's
/// `logging`) and `dropped` (the queue was full, or the interpreter was exiting). Events below
/// the `jetjobs` logger's level are neither.
#[pyfunction]
pub(crate) fn log_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let counts = jetjobs::log_stats();
    let lost = LOST_AT_EXIT.load(Ordering::Relaxed);
    let stats = PyDict::new(py);
    stats.set_item("forwarded", counts.forwarded.saturating_sub(lost))?;
    stats.set_item("dropped", counts.dropped + lost)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_levels_map_to_the_most_verbose_level_they_let_through() {
        for (effective, filter) in [
            (0, LevelFilter::TRACE),
            (10, LevelFilter::TRACE),
            (15, LevelFilter::INFO),
            (20, LevelFilter::INFO),
            (30, LevelFilter::WARN),
            (40, LevelFilter::ERROR),
            (50, LevelFilter::OFF),
        ] {
            assert_eq!(filter_for(effective), filter, "{effective}");
        }
        assert_eq!(python_level(Level::TRACE), 10);
        assert_eq!(python_level(Level::WARN), 30);
    }
}
