// SPDX-License-Identifier: Apache-2.0
//! `TraceContext`: the core's W3C trace context, converted. The OpenTelemetry spans themselves are
//! made in Python (`jetjobs._tracing`) with the application's own OpenTelemetry API.

use pyo3::prelude::*;

use crate::error::IntoPyResult as _;

/// A W3C trace context: the span an enqueue happened in, sent with the task in its work item's
/// `traceparent` / `tracestate` headers (not in the task document).
#[pyclass(module = "jetjobs._native", name = "TraceContext", frozen)]
pub(crate) struct PyTraceContext {
    pub(crate) inner: jetjobs::TraceContext,
}

#[pymethods]
impl PyTraceContext {
    /// A context from its header values. Raises `InvalidOption` unless `traceparent` is a W3C
    /// version-00 traceparent with a non-zero trace and span id (lowercase hex).
    #[new]
    #[pyo3(signature = (traceparent, tracestate=None))]
    fn py_new(traceparent: String, tracestate: Option<&str>) -> PyResult<Self> {
        jetjobs::TraceContext::new(traceparent, tracestate)
            .py()
            .map(|inner| Self { inner })
    }

    /// The `traceparent` header value.
    #[getter]
    fn traceparent(&self) -> &str {
        self.inner.traceparent()
    }

    /// The `tracestate` header value, if any.
    #[getter]
    fn tracestate(&self) -> Option<&str> {
        self.inner.tracestate()
    }

    /// The trace id, 32 hex digits.
    #[getter]
    fn trace_id(&self) -> &str {
        self.inner.trace_id()
    }

    fn __repr__(&self) -> String {
        format!(
            "TraceContext(traceparent={:?}, tracestate={:?})",
            self.inner.traceparent(),
            self.inner.tracestate()
        )
    }
}
