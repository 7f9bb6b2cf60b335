# SPDX-License-Identifier: Apache-2.0
"""Lifecycle events as an async iterator."""

from __future__ import annotations

import asyncio
import json

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
