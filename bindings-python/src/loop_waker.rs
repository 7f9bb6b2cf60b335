// SPDX-License-Identifier: Apache-2.0
//! Handing work from tokio threads to an asyncio event loop without taking the GIL.
//!
//! `call_soon_threadsafe` needs the GIL, and a tokio worker that asks for it while the loop's
//! thread runs Python waits until that thread lets go: up to the interpreter's switch interval
//! (5 ms), with every other task of that worker waiting behind it. So each loop instead watches
//! one end of a socket pair (`loop.add_reader`). A tokio thread queues its work in the loop's
//! [`LoopWaker`] and writes a byte to the other end; on the loop's thread [`Wakeup`] runs all the
//! work queued by then. Only the first piece of work after a wake-up writes the byte.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

/// Work for a loop's thread, run with the GIL held. An `Err` is raised from the loop's reader
/// callback (so `KeyboardInterrupt` still stops the loop) once the rest of the batch ran.
pub(crate) type OnLoop = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<()> + Send>;

/// One event loop's queue of work from other threads, and the line that wakes it.
pub(crate) struct LoopWaker {
    /// Watched by the loop.
    readable: UnixStream,
    /// Written by the thread that queues the first work after a wake-up.
    writable: UnixStream,
    queued: Mutex<Vec<OnLoop>>,
    /// A byte was written that the loop has not yet answered.
    signalled: AtomicBool,
}

/// A waker handed out: the address of its loop, a weak reference to it, and the waker.
struct Entry {
    address: usize,
    weak: Py<PyAny>,
    waker: Arc<LoopWaker>,
}

/// The wakers handed out. Python is never called with the lock held: the GIL may change hands
/// during a call, and another thread may need the lock.
static WAKERS: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn wakers() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    WAKERS.lock().unwrap_or_else(|p| p.into_inner())
}

impl LoopWaker {
    /// The waker of `event_loop`, which must be running on this thread. The first call for a loop
    /// makes it watch a new socket pair, and forgets the wakers of loops that are closed or gone,
    /// with any work still queued for them.
    pub(crate) fn of(event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<LoopWaker>> {
        let py = event_loop.py();
        let address = event_loop.as_ptr() as usize;
        let found = wakers()
            .iter()
            .find(|e| e.address == address)
            .map(|e| (e.weak.clone_ref(py), e.waker.clone()));
        // The address alone may be a collected loop's, reused.
        if let Some((weak, waker)) = found
            && weak.bind(py).call0()?.is(event_loop)
        {
            return Ok(waker);
        }
        forget_stale(py)?;
        let (readable, writable) = UnixStream::pair()?;
        readable.set_nonblocking(true)?;
        writable.set_nonblocking(true)?;
        let waker = Arc::new(LoopWaker {
            readable,
            writable,
            queued: Mutex::default(),
            signalled: AtomicBool::default(),
        });
        event_loop.call_method1(
            pyo3::intern!(py, "add_reader"),
            (
                waker.readable.as_raw_fd(),
                Wakeup {
                    waker: waker.clone(),
                },
            ),
        )?;
        let weak = py
            .import(pyo3::intern!(py, "weakref"))?
            .call_method1(pyo3::intern!(py, "ref"), (event_loop,))?;
        wakers().push(Entry {
            address,
            weak: weak.unbind(),
            waker: waker.clone(),
        });
        Ok(waker)
    }

    /// Queues `work` for the loop's thread. Needs no GIL.
    pub(crate) fn run_on_loop(&self, work: OnLoop) {
        self.queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(work);
        if !self.signalled.swap(true, Ordering::AcqRel) {
            // A full buffer already holds a wake-up: nothing is lost when the write would block.
            let _ = (&self.writable).write(&[1]);
        }
    }

    /// Runs on the loop's thread: everything queued so far; the first error is returned.
    fn run_queued(&self, py: Python<'_>) -> PyResult<()> {
        // Drained before the flag is cleared and the queue taken: work queued after the drain
        // either finds the flag set and is in the queue taken below, or writes a new byte.
        let mut sink = [0u8; 64];
        while matches!((&self.readable).read(&mut sink), Ok(n) if n > 0) {}
        self.signalled.store(false, Ordering::Release);
        let work = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|p| p.into_inner()));
        let mut failed = None;
        for run in work {
            if let Err(e) = run(py) {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Forgets the wakers of loops that are closed or collected.
fn forget_stale(py: Python<'_>) -> PyResult<()> {
    let known: Vec<(usize, Py<PyAny>)> = wakers()
        .iter()
        .map(|e| (e.weak.as_ptr() as usize, e.weak.clone_ref(py)))
        .collect();
    let mut stale = Vec::new();
    for (id, weak) in known {
        let referent = weak.bind(py).call0()?;
        if referent.is_none()
            || referent
                .call_method0(pyo3::intern!(py, "is_closed"))?
                .is_truthy()?
        {
            stale.push(id);
        }
    }
    let forgotten: Vec<Entry> = {
        let mut wakers = wakers();
        let (gone, kept) = std::mem::take(&mut *wakers)
            .into_iter()
            .partition(|e| stale.contains(&(e.weak.as_ptr() as usize)));
        *wakers = kept;
        gone
    };
    // Dropped here, outside the lock: queued work holds Python objects.
    drop(forgotten);
    Ok(())
}

/// The loop's reader callback.
#[pyclass(module = "jetjobs._native", frozen)]
struct Wakeup {
    waker: Arc<LoopWaker>,
}

#[pymethods]
impl Wakeup {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        self.waker.run_queued(py)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waker() -> LoopWaker {
        let (readable, writable) = UnixStream::pair().expect("a socket pair");
        readable.set_nonblocking(true).expect("non-blocking");
        LoopWaker {
            readable,
            writable,
            queued: Mutex::default(),
            signalled: AtomicBool::default(),
        }
    }

    fn pending_bytes(waker: &LoopWaker) -> usize {
        let mut sink = [0u8; 64];
        (&waker.readable).read(&mut sink).unwrap_or(0)
    }

    #[test]
    fn only_the_first_work_after_a_wake_up_writes() {
        let waker = waker();
        waker.run_on_loop(Box::new(|_| Ok(())));
        waker.run_on_loop(Box::new(|_| Ok(())));
        assert_eq!(pending_bytes(&waker), 1);
        assert_eq!(waker.queued.lock().expect("queue").len(), 2);
    }
}
