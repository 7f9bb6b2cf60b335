# SPDX-License-Identifier: Apache-2.0
"""Trace propagation: an enqueue's ``jetjobs.enqueue`` span is the parent of the handler's
``jetjobs.handle`` span (sync and async handlers, delayed tasks too), through the W3C trace
context the engine carries in the work item's headers; without OpenTelemetry nothing changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import jetjobs
import jetjobs._tracing

from conftest import MakeApp, running, wait_final, wait_for

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def module_exporter() -> InMemorySpanExporter:
    # OpenTelemetry sets the global tracer provider once per process: reuse an SDK provider
    # someone set already, else set ours.
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def spans(module_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    module_exporter.clear()
    yield module_exporter
    module_exporter.clear()


def _hex(n: int, digits: int) -> str:
    return format(n, f"0{digits}x")


async def _handle_span(exporter: InMemorySpanExporter, task_id: str) -> ReadableSpan:
    async def check() -> ReadableSpan | None:
        for span in exporter.get_finished_spans():
            attributes = span.attributes or {}
            if span.name == "jetjobs.handle" and attributes.get("jetjobs.task.id") == task_id:
                return span
        return None

    return await wait_for(f"the handle span of {task_id}", check)


def _enqueue_span(exporter: InMemorySpanExporter, queue: str) -> ReadableSpan:
    (span,) = [
        s
        for s in exporter.get_finished_spans()
        if s.name == "jetjobs.enqueue"
        and (s.attributes or {}).get("messaging.destination.name") == queue
    ]
    return span


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_the_handle_span_is_a_child_of_the_enqueue_span(
    make_app: MakeApp, spans: InMemorySpanExporter, kind: str
) -> None:
    queue = f"TRACED{kind.upper()}"
    app = make_app(queue)
    seen: dict[str, Any] = {}

    def record(task: jetjobs.Task) -> None:
        assert task.context is not None
        seen["sent"] = task.context.trace_context
        seen["current"] = trace.get_current_span().get_span_context()

    if kind == "sync":
        app.handle("traced", record)
    else:

        async def handler(task: jetjobs.Task) -> None:
            record(task)

        app.handle("traced", handler)

    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        stored = await app.enqueue("traced", {"n": 1})
    async with running(app):
        await wait_final(app, [stored.id])
        handle = await _handle_span(spans, stored.id)

    enqueue = _enqueue_span(spans, queue)
    assert enqueue.kind is SpanKind.PRODUCER
    assert enqueue.parent is not None
    assert enqueue.parent.span_id == request.get_span_context().span_id
    assert enqueue.attributes is not None
    assert enqueue.attributes["messaging.system"] == "jetjobs"
    assert enqueue.attributes["messaging.batch.message_count"] == 1

    assert handle.kind is SpanKind.CONSUMER
    assert handle.context is not None and enqueue.context is not None
    assert handle.context.trace_id == enqueue.context.trace_id
    assert handle.parent is not None
    assert handle.parent.span_id == enqueue.context.span_id
    assert handle.attributes is not None
    assert handle.attributes["jetjobs.task.type"] == "traced"
    assert handle.attributes["messaging.destination.name"] == queue

    # The handler saw the context that was sent, and ran with its own span current (for a sync
    # handler: in the thread it ran in).
    sent = seen["sent"]
    assert isinstance(sent, jetjobs.TraceContext)
    assert sent.trace_id == _hex(enqueue.context.trace_id, 32)
    assert sent.traceparent.split("-")[2] == _hex(enqueue.context.span_id, 16)
    assert seen["current"].span_id == handle.context.span_id


async def test_a_delayed_task_and_enqueue_many_keep_their_trace(
    make_app: MakeApp, spans: InMemorySpanExporter
) -> None:
    app = make_app("TRACEDLATER")
    sent: dict[str, jetjobs.TraceContext | None] = {}

    @app.task("traced")
    async def traced(task: jetjobs.Task) -> None:
        assert task.context is not None
        sent[task.id] = task.context.trace_context

    explicit = jetjobs.TraceContext(TRACEPARENT, "congo=t61rcWkgMzE")
    with trace.get_tracer("test").start_as_current_span("request"):
        delayed = await app.enqueue("traced", delay=0.5)
        batch = await app.enqueue_many(
            [("traced", 1), jetjobs.Task("traced", 2, trace_context=explicit)]
        )
    many = [t for t in batch if isinstance(t, jetjobs.Task)]
    async with running(app):
        await wait_final(app, [delayed.id, *(t.id for t in many)])
        handles = {t.id: await _handle_span(spans, t.id) for t in [delayed, *many]}

    single, pair = (
        s for s in spans.get_finished_spans() if s.name == "jetjobs.enqueue"
    )  # in the order they ended
    assert (pair.attributes or {})["messaging.batch.message_count"] == 2
    for task, parent in [(delayed, single), (many[0], pair)]:
        handle = handles[task.id]
        assert handle.parent is not None and parent.context is not None
        assert handle.parent.span_id == parent.context.span_id
        context = sent[task.id]
        assert context is not None
        assert context.trace_id == _hex(parent.context.trace_id, 32)
    # A task's own trace context is sent instead of the enqueue span's.
    own = handles[many[1].id]
    assert own.parent is not None
    assert _hex(own.parent.trace_id, 32) == explicit.trace_id
    assert _hex(own.parent.span_id, 16) == "b7ad6b7169203331"
    context = sent[many[1].id]
    assert context is not None
    assert (context.traceparent, context.tracestate) == (TRACEPARENT, "congo=t61rcWkgMzE")


async def test_a_task_without_a_trace_context_starts_a_new_trace(
    make_app: MakeApp, spans: InMemorySpanExporter
) -> None:
    app = make_app("UNTRACED")
    sent: list[jetjobs.TraceContext | None] = []

    @app.task("plain")
    async def plain(task: jetjobs.Task) -> None:
        assert task.context is not None
        sent.append(task.context.trace_context)

    # Enqueued by the native client, which makes no spans: the item has no trace context.
    stored = await (await app.queue()).enqueue(jetjobs.Task("plain"))
    with trace.get_tracer("test").start_as_current_span("worker"):
        async with running(app):
            await wait_final(app, [stored.id])
            handle = await _handle_span(spans, stored.id)
    assert sent == [None]
    assert handle.parent is None


def test_trace_context_validates_and_converts() -> None:
    context = jetjobs.TraceContext(TRACEPARENT, "congo=t61rcWkgMzE")
    assert context.traceparent == TRACEPARENT
    assert context.tracestate == "congo=t61rcWkgMzE"
    assert context.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert jetjobs.TraceContext(TRACEPARENT).tracestate is None
    assert "0af7651916cd43dd8448eb211c80319c" in repr(context)
    with pytest.raises(jetjobs.InvalidOption, match="not a W3C traceparent"):
        jetjobs.TraceContext("not a traceparent")
    task = jetjobs.Task("x")
    assert task.trace_context is None
    with_context = task.with_trace_context(context)
    assert with_context.id == task.id
    assert with_context.trace_context is not None
    assert with_context.trace_context.traceparent == TRACEPARENT
    # Not part of the stored document.
    assert with_context.to_json() == task.to_json()


WITHOUT_OPENTELEMETRY = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if it were not installed
import jetjobs, jetjobs._tracing

assert not jetjobs._tracing.ENABLED

async def main() -> None:
    app = jetjobs.App(sys.argv[1], queue="NOOTEL")
    seen = []

    @app.task("plain")
    def plain(task: jetjobs.Task) -> None:
        seen.append(task.context.trace_context)

    task = await app.enqueue("plain")
    worker = asyncio.ensure_future(app.run(handle_signals=False))
    done = await app.wait_for(task, timeout=30)
    app.stop()
    await worker
    await app.close()
    print("done", done.state, seen, flush=True)

asyncio.run(main())
"""


def test_without_opentelemetry_everything_works_without_spans(nats_url: str) -> None:
    assert jetjobs._tracing.ENABLED
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_OPENTELEMETRY), nats_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "done complete [None]" in done.stdout
