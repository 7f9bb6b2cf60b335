# SPDX-License-Identifier: Apache-2.0
"""OpenTelemetry spans for enqueues and handler runs, when ``opentelemetry-api`` is installed.

The engine carries a W3C trace context from an enqueue to the handler in the work item's headers
(:class:`TraceContext`); the spans are made here, with the application's own OpenTelemetry API and
tracer provider, as the Rust SDK makes its own with its ``opentelemetry`` feature and the same
names and attributes:

- ``jetjobs.enqueue`` (``PRODUCER``) around each enqueue call of :class:`App`; its context is sent
  with every task that does not carry one already.
- ``jetjobs.handle`` (``CONSUMER``) around each handler run (middleware included), a child of the
  span the task was enqueued in, or a new trace when the task came without one. It is the current
  span inside the handler, also in the thread a sync handler runs in.

Without ``opentelemetry-api`` (``pip install jetjobs[opentelemetry]``) nothing here does anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from ._native import Task, TraceContext, __version__

try:
    from opentelemetry import trace as _trace
    from opentelemetry.context import Context as _Context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:
    ENABLED = False
else:
    ENABLED = True
    # A proxy until the application sets its tracer provider, which may happen after this import.
    _tracer = _trace.get_tracer("jetjobs", __version__)
    # W3C only, whatever the global propagator: the engine's headers are W3C trace context.
    _w3c = TraceContextTextMapPropagator()

__all__ = ["ENABLED", "handling", "producing", "sending"]

_TRACEPARENT = "traceparent"
_TRACESTATE = "tracestate"


# Without OpenTelemetry every enqueue shares this one: no generator made per call.
_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def producing(queue: str, count: int) -> contextlib.AbstractContextManager[TraceContext | None]:
    """A ``jetjobs.enqueue`` span of ``count`` tasks to ``queue``, current for the block.

    Yields the span's context to send with the tasks (``None`` without OpenTelemetry or without a
    valid span, as with no tracer provider set and no span around).
    """
    if not ENABLED:
        return _NO_SPAN
    return _producing_span(queue, count)


@contextlib.contextmanager
def _producing_span(queue: str, count: int) -> Iterator[TraceContext | None]:
    with _tracer.start_as_current_span(
        "jetjobs.enqueue",
        kind=_trace.SpanKind.PRODUCER,
        attributes={
            "messaging.system": "jetjobs",
            "messaging.destination.name": queue,
            "messaging.batch.message_count": count,
        },
    ):
        carrier: dict[str, str] = {}
        _w3c.inject(carrier)
        traceparent = carrier.get(_TRACEPARENT)
        yield None if traceparent is None else TraceContext(traceparent, carrier.get(_TRACESTATE))


def sending(tasks: Sequence[Task], context: TraceContext | None) -> list[Task]:
    """``tasks``, each sending ``context`` unless it carries a trace context of its own."""
    if context is None:
        return list(tasks)
    return [t if t.trace_context is not None else t.with_trace_context(context) for t in tasks]


@contextlib.contextmanager
def handling(task: Task) -> Iterator[None]:
    """A ``jetjobs.handle`` span for a handler run of ``task``, current for the block."""
    if not ENABLED:
        yield
        return
    sent = task.context.trace_context if task.context is not None else None
    if sent is None:
        # A new trace, not a child of whatever span the worker was started in.
        parent = _Context()
    else:
        carrier = {_TRACEPARENT: sent.traceparent}
        if sent.tracestate is not None:
            carrier[_TRACESTATE] = sent.tracestate
        parent = _w3c.extract(carrier)
    with _tracer.start_as_current_span(
        "jetjobs.handle",
        context=parent,
        kind=_trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "jetjobs",
            "messaging.destination.name": task.queue,
            "jetjobs.task.id": task.id,
            "jetjobs.task.type": task.type,
            "jetjobs.task.tries": task.tries,
        },
    ):
        yield
