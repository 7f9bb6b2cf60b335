# SPDX-License-Identifier: Apache-2.0
"""enqueue_many: pipelined, one result per task in order, enqueue's guarantees for each."""

from __future__ import annotations

import asyncio

import jetjobs

from conftest import MakeApp, running, wait_final


async def test_enqueue_many_returns_each_tasks_outcome_in_order(make_app: MakeApp) -> None:
    app = make_app("MANY")
    done: list[int] = []

    @app.task("add")
    async def add(task: jetjobs.Task) -> int:
        done.append(task.payload)
        return int(task.payload) + 1

    taken = await app.enqueue("add", 0, id="taken")
    final = jetjobs.Task("add", 1)
    items: list[jetjobs.Task | tuple[str, int]] = [("add", n) for n in range(1, 1500)]
    items[5] = jetjobs.Task("add", -1, id="taken")  # another task with a stored id
    results = await app.enqueue_many(items)
    assert len(results) == 1499
    assert isinstance(results[5], jetjobs.TaskAlreadyExists)
    stored = [r for r in results if isinstance(r, jetjobs.Task)]
    assert len(stored) == 1498
    assert [t.payload for t in stored[:5]] == [1, 2, 3, 4, 5]
    assert all(t.queue == "MANY" for t in stored)

    # Sync, to another queue.
    results = await asyncio.to_thread(app.enqueue_many_sync, [final, ("add", 2)], queue="OTHER")
    assert [type(r) for r in results] == [jetjobs.Task, jetjobs.Task]

    async with running(app):
        finished = await wait_final(app, [taken.id, *(t.id for t in stored)], timeout=60)
    assert {t.state for t in finished} == {"complete"}
