// SPDX-License-Identifier: Apache-2.0
//! `render_metrics`: the core's process-wide Prometheus metrics as text.

use pyo3::prelude::*;

/// Every metric of this process in Prometheus' text exposition format (version 0.0.4), for a
/// server of your own; `ClientOptions(prometheus_port=...)` serves it from workers and schedulers.
#[pyfunction]
pub(crate) fn render_metrics() -> String {
    jetjobs::render_metrics()
}
