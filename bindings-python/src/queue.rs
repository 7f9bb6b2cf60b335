// SPDX-License-Identifier: Apache-2.0
//! `Queue`: a work queue's settings, converted.

use pyo3::prelude::*;
use pyo3::types::PyDelta;

use crate::convert;

/// A work queue and the limits the server enforces on it. Values are used when the queue is
/// created; after create or bind the server's settings are read back and are authoritative.
#[pyclass(module = "jetjobs._native", name = "Queue", frozen)]
#[derive(Clone)]
pub(crate) struct PyQueue {
    pub(crate) inner: jetjobs::Queue,
}

#[pymethods]
impl PyQueue {
    /// A queue with the engine's defaults for every option not given; `bind=True` only binds to
    /// an existing queue (`QueueNotFound` if there is none). `ordered=True` runs tasks sharing an
    /// `order_key` one at a time in enqueue order; `order_key_concurrency` lets that many of a key
    /// run at once (0: no ordering).
    #[new]
    #[pyo3(signature = (name, *, max_age=None, max_entries=None, discard_old=None, max_tries=None, max_run_time=None, max_concurrent=None, ordered=false, order_key_concurrency=None, bind=false))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        name: String,
        max_age: Option<&Bound<'_, PyAny>>,
        max_entries: Option<i64>,
        discard_old: Option<bool>,
        max_tries: Option<i64>,
        max_run_time: Option<&Bound<'_, PyAny>>,
        max_concurrent: Option<i64>,
        ordered: bool,
        order_key_concurrency: Option<u32>,
        bind: bool,
    ) -> PyResult<Self> {
        let mut q = if bind {
            jetjobs::Queue::bind(name)
        } else {
            jetjobs::Queue::new(name)
        };
        if let Some(d) = max_age {
            q = q.max_age(convert::duration(d)?);
        }
        if let Some(n) = max_entries {
            q = q.max_entries(n);
        }
        if let Some(b) = discard_old {
            q = q.discard_old(b);
        }
        if let Some(n) = max_tries {
            q = q.max_tries(n);
        }
        if let Some(d) = max_run_time {
            q = q.max_run_time(convert::duration(d)?);
        }
        if let Some(n) = max_concurrent {
            q = q.max_concurrent(n);
        }
        if let Some(n) = order_key_concurrency {
            q = q.order_key_concurrency(n);
        }
        if ordered {
            q = q.ordered();
        }
        Ok(Self { inner: q })
    }

    /// The implicit `DEFAULT` queue: 100 tries, 1 minute run time, 100 concurrent.
    #[staticmethod]
    fn default_queue() -> Self {
        Self {
            inner: jetjobs::Queue::default_queue(),
        }
    }

    /// Queue name; the stream is `CHORIA_AJ_Q_<name>`.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Items older than this are discarded; zero keeps them forever.
    #[getter]
    fn max_age<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.inner.max_age)
    }

    /// Most items held; -1 or 0 is unlimited.
    #[getter]
    fn max_entries(&self) -> i64 {
        self.inner.max_entries
    }

    /// When full, discard the oldest item instead of refusing new ones.
    #[getter]
    fn discard_old(&self) -> bool {
        self.inner.discard_old
    }

    /// Deliveries per item; -1 is unlimited.
    #[getter]
    fn max_tries(&self) -> i64 {
        self.inner.max_tries
    }

    /// How long one handler run may take before the item is redelivered.
    #[getter]
    fn max_run_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.inner.max_run_time)
    }

    /// Items in flight across every worker.
    #[getter]
    fn max_concurrent(&self) -> i64 {
        self.inner.max_concurrent
    }

    /// How many tasks of one order key may run at once; 0 for a queue without ordering.
    #[getter]
    fn order_key_concurrency(&self) -> u32 {
        self.inner.order_key_concurrency
    }

    /// True if this only binds to an existing queue.
    #[getter]
    fn bind(&self) -> bool {
        self.inner.no_create
    }

    /// The JetStream stream holding the queue's items.
    #[getter]
    fn stream_name(&self) -> String {
        self.inner.stream_name()
    }

    fn __repr__(&self) -> String {
        let q = &self.inner;
        format!(
            "Queue(name={:?}, max_age={:?}, max_entries={}, discard_old={}, max_tries={}, max_run_time={:?}, max_concurrent={}, order_key_concurrency={})",
            q.name,
            q.max_age,
            q.max_entries,
            q.discard_old,
            q.max_tries,
            q.max_run_time,
            q.max_concurrent,
            q.order_key_concurrency
        )
    }
}
