// SPDX-License-Identifier: Apache-2.0
//! W3C trace context from producer to handler. An enqueue carries it in the work item's
//! `traceparent` / `tracestate` headers (asyncjobs ignores headers, so Go workers are unaffected);
//! the handler's [`TaskContext`](crate::TaskContext) exposes it. With the `opentelemetry` feature
//! the Rust SDK does both ends itself: an enqueue runs in a `jetjobs.enqueue` producer span whose
//! context it sends, and each handler runs in a `jetjobs.handle` consumer span, its child. The
//! Python and Node SDKs do the same with their own OpenTelemetry APIs and hand the context over.

use async_nats::HeaderMap;

use crate::error::{Error, ErrorKind, Result};

/// The W3C `traceparent` header.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// The W3C `tracestate` header.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// A W3C trace context: the span an enqueue happened in.
///
/// # Examples
/// ```
/// let context = jetjobs::TraceContext::new(
///     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
///     Some("congo=t61rcWkgMzE"),
/// )?;
/// assert_eq!(context.trace_id(), "0af7651916cd43dd8448eb211c80319c");
/// assert!(jetjobs::TraceContext::new("not a traceparent", None).is_err());
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: String,
    tracestate: Option<String>,
}

impl TraceContext {
    /// A context from its header values; fails with `InvalidOption` unless `traceparent` is a
    /// W3C version-00 traceparent with a non-zero trace and span id.
    pub fn new(traceparent: impl Into<String>, tracestate: Option<&str>) -> Result<Self> {
        let traceparent = traceparent.into();
        if !is_valid_traceparent(&traceparent) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("{traceparent:?} is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"),
            ));
        }
        Ok(Self {
            traceparent,
            tracestate: tracestate.filter(|s| !s.is_empty()).map(str::to_string),
        })
    }

    /// The `traceparent` header value.
    pub fn traceparent(&self) -> &str {
        &self.traceparent
    }

    /// The `tracestate` header value, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> &str {
        &self.traceparent[3..35]
    }

    /// The context a delivered item carries; a missing or malformed one is none (never an error:
    /// anyone can publish an item).
    pub(crate) fn from_headers(headers: Option<&HeaderMap>) -> Option<Self> {
        let headers = headers?;
        let traceparent = headers.get(TRACEPARENT_HEADER)?.as_str();
        let tracestate = headers.get(TRACESTATE_HEADER).map(|v| v.as_str());
        Self::new(traceparent, tracestate).ok()
    }

    pub(crate) fn add_to(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT_HEADER, self.traceparent.as_str());
        if let Some(state) = &self.tracestate {
            headers.insert(TRACESTATE_HEADER, state.as_str());
        }
    }
}

fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, span, flags]
        if *version == "00" && hex(trace, 32) && nonzero(trace) && hex(span, 16) && nonzero(span) && hex(flags, 2))
}

#[cfg(feature = "opentelemetry")]
pub(crate) mod otel {
    //! The Rust SDK's own spans, through `tracing` and `tracing-opentelemetry`.

    use std::collections::HashMap;

    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::{TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceContext};
    use crate::task::Task;

    /// The producer span of an enqueue of `tasks` tasks to `queue`.
    pub(crate) fn enqueue_span(queue: &str, tasks: usize) -> tracing::Span {
        tracing::info_span!(
            "jetjobs.enqueue",
            otel.kind = "producer",
            messaging.system = "jetjobs",
            messaging.destination.name = queue,
            messaging.batch.message_count = tasks,
        )
    }

    /// Gives `task` the current span's context unless it has one.
    pub(crate) fn propagate(task: &mut Task) {
        if task.trace_context.is_none() {
            task.trace_context = current();
        }
    }

    /// The context of the current span, to send with an enqueue.
    fn current() -> Option<TraceContext> {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new()
            .inject_context(&tracing::Span::current().context(), &mut carrier);
        let traceparent = carrier.get(TRACEPARENT_HEADER)?;
        TraceContext::new(
            traceparent.as_str(),
            carrier.get(TRACESTATE_HEADER).map(String::as_str),
        )
        .ok()
    }

    /// The consumer span a handler of `task` runs in, a child of the enqueue's span if known.
    pub(crate) fn handle_span(task: &Task, parent: Option<&TraceContext>) -> tracing::Span {
        let span = tracing::info_span!(
            "jetjobs.handle",
            otel.kind = "consumer",
            messaging.system = "jetjobs",
            messaging.destination.name = %task.queue,
            jetjobs.task.id = %task.id,
            jetjobs.task.type = %task.task_type,
            jetjobs.task.tries = task.tries,
        );
        if let Some(parent) = parent {
            let mut carrier = HashMap::new();
            carrier.insert(
                TRACEPARENT_HEADER.to_string(),
                parent.traceparent().to_string(),
            );
            if let Some(state) = parent.tracestate() {
                carrier.insert(TRACESTATE_HEADER.to_string(), state.to_string());
            }
            let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
        }
        span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_w3c_traceparents_are_accepted_and_headers_round_trip() -> Result<()> {
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ] {
            assert!(TraceContext::new(bad, None).is_err(), "{bad:?}");
        }
        let context = TraceContext::new(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            Some("congo=t61rcWkgMzE"),
        )?;
        let mut headers = HeaderMap::new();
        context.add_to(&mut headers);
        assert_eq!(TraceContext::from_headers(Some(&headers)), Some(context));
        let mut garbage = HeaderMap::new();
        garbage.insert(TRACEPARENT_HEADER, "garbage");
        assert_eq!(TraceContext::from_headers(Some(&garbage)), None);
        Ok(())
    }
}
