# SPDX-License-Identifier: Apache-2.0
"""Lifecycle events as an async iterator."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

import jetjobs

from conftest import MakeApp, running


async def test_events_follow_a_task_to_completion(make_app: MakeApp) -> None:
    app = make_app("EVENTS")

    @app.task("evt")
    async def evt(task: jetjobs.Task) -> int:
        return 1

    events = await app.events()
    task = await app.enqueue("evt", {"x": 1})
    states: list[str] = []

    async def follow() -> None:
        async for event in events:
            assert isinstance(event, jetjobs.TaskStateChangeEvent)
            if event.task_id != task.id:
                continue
            assert (event.queue, event.task_type, event.type) == (
                "EVENTS",
                "evt",
                jetjobs.TASK_STATE_EVENT_TYPE,
            )
            assert json.loads(event.to_json())["task_id"] == task.id
            states.append(event.state)
            if event.state == "complete":
                assert event.tries == 1 and event.last_error == ""
                assert event.timestamp.tzinfo is not None
                return

    async with running(app):
        await asyncio.wait_for(follow(), 20)
    assert states == ["new", "active", "complete"]

    events.close()
    rest = [e async for e in events]
    assert rest == []


async def publish_raw(nats_url: str, subject: str, payload: bytes) -> None:
    """Publish with the NATS text protocol on a plain socket, as any other client could."""
    host, _, port = nats_url.removeprefix("nats://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        await asyncio.wait_for(reader.readline(), 10)  # INFO
        writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        writer.write(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(payload), payload))
        await writer.drain()
        while not (await asyncio.wait_for(reader.readline(), 10)).startswith(b"PONG"):
            pass
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_malformed_or_unknown_event_is_skipped_with_a_warning(
    make_app: MakeApp, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app("EVENTSBAD")

    @app.task("evt")
    async def evt(task: jetjobs.Task) -> int:
        return 1

    events = await app.events()
    await publish_raw(nats_url, "CHORIA_AJ.E.garbage", b"not json {")
    await publish_raw(nats_url, "CHORIA_AJ.E.other", b'{"type":"io.example.v1.unknown"}')
    task = await app.enqueue("evt", {"x": 1})

    async def first_for_task() -> jetjobs.TaskStateChangeEvent:
        async for event in events:
            if isinstance(event, jetjobs.TaskStateChangeEvent) and event.task_id == task.id:
                return event
        raise AssertionError("the event stream ended")

    with caplog.at_level(logging.WARNING, logger="jetjobs"):
        event = await asyncio.wait_for(first_for_task(), 20)
    events.close()
    assert event.state == "new"
    skipped = [r.getMessage() for r in caplog.records if r.name == "jetjobs"]
    assert len(skipped) == 2, skipped
    assert all("skipped a lifecycle event" in m for m in skipped)
