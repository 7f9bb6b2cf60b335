# SPDX-License-Identifier: Apache-2.0
"""The awaitables the SDK returns: each resolves with its own outcome on its own event loop, also
when hundreds finish together, and cancelling one stops the work behind it."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import pytest

import jetjobs

from conftest import MakeApp


async def test_concurrent_awaitables_each_resolve_with_their_own_outcome(
    make_app: MakeApp,
) -> None:
    app = make_app("MANY_AWAITS")
    try:
        await app.enqueue("noop", 0, id="taken")
        ids = [f"t{n}" for n in range(600)]
        ids[300] = "taken"  # fails while the others around it are stored
        results = await asyncio.gather(
            *(app.enqueue("noop", n, id=id) for n, id in enumerate(ids)), return_exceptions=True
        )
        assert isinstance(results[300], jetjobs.TaskAlreadyExists)
        stored = [r for n, r in enumerate(results) if isinstance(r, jetjobs.Task)]
        assert len(stored) == len(ids) - 1
        assert [(t.id, t.payload) for t in stored] == [
            (id, n) for n, id in enumerate(ids) if n != 300
        ]
    finally:
        await app.close()


def test_awaitables_resolve_on_the_loop_that_awaits_them(make_app: MakeApp) -> None:
    """Two threads, each with its own event loop and app, enqueueing at the same time."""
    outcomes: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    async def enqueue_from(name: str) -> None:
        app = make_app(f"LOOP_{name}")
        try:
            loop = asyncio.get_running_loop()

            async def one(n: int) -> str:
                task = await app.enqueue("noop", n, id=f"{name}-{n}")
                assert asyncio.get_running_loop() is loop
                return task.id

            outcomes[name] = list(await asyncio.gather(*(one(n) for n in range(300))))
        finally:
            await app.close()

    def run(name: str) -> None:
        try:
            asyncio.run(enqueue_from(name))
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert outcomes == {name: [f"{name}-{n}" for n in range(300)] for name in ("a", "b")}


async def test_cancelling_an_awaitable_stops_the_work_behind_it(make_app: MakeApp) -> None:
    app = make_app("CANCELLED_AWAIT")
    try:
        events = await app.events()
        # Left running, this wait would take the next event and drop it with its outcome.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(events.__anext__(), 0.2)
        task = await app.enqueue("noop", 1)
        event = await asyncio.wait_for(events.__anext__(), 10)
        assert isinstance(event, jetjobs.TaskStateChangeEvent)
        assert (event.task_id, event.state) == (task.id, "new")
        events.close()
    finally:
        await app.close()


def test_an_event_loop_that_is_collected_leaves_no_file_descriptors_behind(
    make_app: MakeApp,
) -> None:
    """Each loop the SDK's awaitables run on is woken through a socket pair of its own."""
    app = make_app("MANY_LOOPS")

    async def enqueue(n: int) -> None:
        assert (await app.enqueue("noop", n)).payload == n

    asyncio.run(enqueue(0))
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for n in range(1, 60):
        asyncio.run(enqueue(n))
    gc.collect()
    # Two descriptors per loop if they stayed open: 118.
    assert len(os.listdir("/proc/self/fd")) - before < 10
    asyncio.run(app.close())
