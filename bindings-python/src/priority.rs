// SPDX-License-Identifier: Apache-2.0
//! `Priority`: how a worker shares its handler slots between queues, converted.

use pyo3::prelude::*;

/// How a worker consuming several queues shares its handler slots while more than one queue has
/// tasks waiting. Given to `Worker(priority=...)` or `App(priority=...)`; a queue named twice,
/// one the worker does not consume, or a weight of 0 makes the worker's `run` raise
/// `InvalidOption`.
#[pyclass(module = "jetjobs._native", name = "Priority", frozen)]
pub(crate) struct PyPriority {
    pub(crate) inner: jetjobs::Priority,
}

#[pymethods]
impl PyPriority {
    /// A queue listed earlier always goes first: a later queue's task starts only while no
    /// earlier queue has one waiting. Consumed queues not listed come last, in the order consumed.
    #[staticmethod]
    fn strict(queues: Vec<String>) -> Self {
        Self {
            inner: jetjobs::Priority::strict(queues),
        }
    }

    /// Freed slots go to the queues with waiting tasks in proportion to their weights, a mapping
    /// of queue name to weight (at least 1). Consumed queues not listed weigh 1.
    #[staticmethod]
    fn weighted(weights: &Bound<'_, PyAny>) -> PyResult<Self> {
        let pairs = weights
            .call_method0(pyo3::intern!(weights.py(), "items"))?
            .try_iter()?
            .map(|item| item?.extract::<(String, u32)>())
            .collect::<PyResult<Vec<_>>>()?;
        Ok(Self {
            inner: jetjobs::Priority::weighted(pairs),
        })
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            jetjobs::Priority::Strict(queues) => format!("Priority.strict({queues:?})"),
            jetjobs::Priority::Weighted(queues) => {
                let weights: Vec<String> =
                    queues.iter().map(|(q, w)| format!("{q:?}: {w}")).collect();
                format!("Priority.weighted({{{}}})", weights.join(", "))
            }
        }
    }
}
