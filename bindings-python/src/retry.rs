// SPDX-License-Identifier: Apache-2.0
//! `RetryPolicy`: the backoff between tries, converted.

use pyo3::prelude::*;
use pyo3::types::PyDelta;

use crate::convert;
use crate::error::IntoPyResult as _;

/// How long to wait before the next try: a named asyncjobs policy, custom intervals, or
/// exponential backoff.
#[pyclass(module = "jetjobs._native", name = "RetryPolicy", frozen)]
#[derive(Clone)]
pub(crate) struct PyRetryPolicy {
    pub(crate) inner: jetjobs::RetryPolicy,
}

impl PyRetryPolicy {
    /// A policy from a `RetryPolicy` or the name of one.
    pub(crate) fn extract_any(obj: &Bound<'_, PyAny>) -> PyResult<jetjobs::RetryPolicy> {
        match obj.cast::<pyo3::types::PyString>() {
            Ok(name) => jetjobs::RetryPolicy::named(&name.to_cow()?).py(),
            Err(_) => Ok(obj.extract::<PyRef<'_, Self>>()?.inner.clone()),
        }
    }
}

#[pymethods]
impl PyRetryPolicy {
    /// One of the named policies: `default` (= `10m`), `10m`, `1h`, `1m`.
    #[staticmethod]
    fn named(name: &str) -> PyResult<Self> {
        jetjobs::RetryPolicy::named(name)
            .py()
            .map(|inner| Self { inner })
    }

    /// choria's `backoff.FiveSec`: 0.5 s up to 5 s, each jittered by ±50 %.
    #[staticmethod]
    fn five_sec() -> Self {
        Self {
            inner: jetjobs::RetryPolicy::five_sec(),
        }
    }

    /// choria's `backoff.FiveSecStartGrace`: like `five_sec`, with a few quick first tries.
    #[staticmethod]
    fn five_sec_start_grace() -> Self {
        Self {
            inner: jetjobs::RetryPolicy::five_sec_start_grace(),
        }
    }

    /// choria's `backoff.TwentySec`: 0.5 s up to 20 s, each jittered by ±50 %.
    #[staticmethod]
    fn twenty_sec() -> Self {
        Self {
            inner: jetjobs::RetryPolicy::twenty_sec(),
        }
    }

    /// The same `delay` before every try (runutil's `StaticBackoff`; whole milliseconds).
    #[staticmethod]
    fn fixed(delay: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Self {
            inner: jetjobs::RetryPolicy::fixed(convert::duration(delay)?),
        })
    }

    /// `steps` intervals from `min` towards `max` in equal steps, with asyncjobs' jitter.
    #[staticmethod]
    fn linear(
        steps: u32,
        min: &Bound<'_, PyAny>,
        max: &Bound<'_, PyAny>,
        jitter: f64,
    ) -> PyResult<Self> {
        Ok(Self {
            inner: jetjobs::RetryPolicy::linear(
                steps,
                convert::duration(min)?,
                convert::duration(max)?,
                jitter,
            ),
        })
    }

    /// A custom list of intervals (the last repeats) with asyncjobs' jitter semantics.
    #[staticmethod]
    fn intervals(intervals: Vec<Bound<'_, PyAny>>, jitter: f64) -> PyResult<Self> {
        let intervals = intervals
            .iter()
            .map(convert::duration)
            .collect::<PyResult<Vec<_>>>()?;
        jetjobs::RetryPolicy::intervals(intervals, jitter)
            .py()
            .map(|inner| Self { inner })
    }

    /// `initial * 2**n`, capped at `max`, with up to `jitter` of the delay taken off at random.
    #[staticmethod]
    #[pyo3(signature = (initial, max, jitter=0.0))]
    fn exponential(
        initial: &Bound<'_, PyAny>,
        max: &Bound<'_, PyAny>,
        jitter: f64,
    ) -> PyResult<Self> {
        jetjobs::RetryPolicy::exponential(
            convert::duration(initial)?,
            convert::duration(max)?,
            jitter,
        )
        .py()
        .map(|inner| Self { inner })
    }

    /// The delay before the next try after `n` deliveries.
    fn delay<'py>(&self, py: Python<'py>, n: u32) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.inner.delay(n))
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            jetjobs::RetryPolicy::Intervals { intervals, jitter } => format!(
                "RetryPolicy.intervals({} intervals from {:?} to {:?}, jitter={jitter})",
                intervals.len(),
                intervals.first().copied().unwrap_or_default(),
                intervals.last().copied().unwrap_or_default()
            ),
            jetjobs::RetryPolicy::Exponential {
                initial,
                max,
                jitter,
            } => {
                format!("RetryPolicy.exponential({initial:?}, {max:?}, jitter={jitter})")
            }
        }
    }
}
