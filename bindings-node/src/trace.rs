// SPDX-License-Identifier: Apache-2.0
//! `TraceContext`: the W3C trace context an enqueue sends and a handler receives
//! (`jetjobs::TraceContext`). The OpenTelemetry spans themselves are made in `lib/tracing.ts`
//! with the application's own `@opentelemetry/api`.

use napi_derive::napi;

/// A trace context to send with an enqueue.
#[napi(object, object_to_js = false)]
pub struct TraceContextSpec {
    /// The W3C `traceparent` header value (`00-<32 hex>-<16 hex>-<2 hex>`).
    pub traceparent: String,
    /// The W3C `tracestate` header value.
    pub tracestate: Option<String>,
}

impl TraceContextSpec {
    /// The core's context; a malformed `traceparent` is `InvalidOption`.
    pub(crate) fn into_core(self) -> jetjobs::Result<jetjobs::TraceContext> {
        jetjobs::TraceContext::new(self.traceparent, self.tracestate.as_deref())
    }
}

/// The trace context a task's enqueue sent.
#[napi(object, object_from_js = false)]
pub struct TraceContext {
    /// The W3C `traceparent` header value.
    pub traceparent: String,
    /// The W3C `tracestate` header value, if any.
    #[napi(ts_type = "string | null")]
    pub tracestate: Option<String>,
    /// The trace id, 32 hex digits.
    pub trace_id: String,
}

impl From<&jetjobs::TraceContext> for TraceContext {
    fn from(context: &jetjobs::TraceContext) -> Self {
        Self {
            traceparent: context.traceparent().to_owned(),
            tracestate: context.tracestate().map(str::to_owned),
            trace_id: context.trace_id().to_owned(),
        }
    }
}
