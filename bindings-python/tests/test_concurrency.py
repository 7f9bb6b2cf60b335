# SPDX-License-Identifier: Apache-2.0
"""The engine's concurrency limits hold for Python handlers, observed inside the handlers."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest

import jetjobs

from conftest import Gauge, MakeApp, running, wait_final


async def test_client_concurrency_limits_async_handlers(make_app: MakeApp) -> None:
    app = make_app("CONC", concurrency=3)
    gauge = Gauge()

    @app.task("work")
    async def work(task: jetjobs.Task) -> None:
        gauge.enter()
        await asyncio.sleep(0.1)
        gauge.leave()

    ids = [(await app.enqueue("work", i)).id for i in range(12)]
    async with running(app):
        tasks = await wait_final(app, ids)
    assert {t.state for t in tasks} == {"complete"}
    assert gauge.peak == 3


async def test_client_concurrency_limits_sync_handlers(make_app: MakeApp) -> None:
    app = make_app("CONCSYNC", concurrency=2)
    gauge = Gauge()

    @app.task("work")
    def work(task: jetjobs.Task) -> None:
        gauge.enter()
        time.sleep(0.1)  # blocks its worker thread, not the event loop
        gauge.leave()

    ids = [(await app.enqueue("work", i)).id for i in range(8)]
    async with running(app):
        ticks = 0

        async def all_final() -> bool:
            states = [(await app.load_task(i)).state for i in ids]
            return all(jetjobs.TaskState(s).is_final for s in states)

        while not await all_final():
            await asyncio.sleep(0.01)  # the loop stays responsive while handlers block
            ticks += 1
        tasks = await wait_final(app, ids)
    assert {t.state for t in tasks} == {"complete"}
    assert gauge.peak == 2
    assert ticks > 5


async def test_queue_max_concurrent_holds_across_workers(make_app: MakeApp) -> None:
    queue = jetjobs.Queue("CONCQ", max_concurrent=2)
    apps = [make_app(queue, concurrency=10) for _ in range(2)]
    gauge = Gauge()

    async def work(task: jetjobs.Task) -> None:
        gauge.enter()
        await asyncio.sleep(0.1)
        gauge.leave()

    for app in apps:
        app.handle("work", work)
    ids = [(await apps[0].enqueue("work", i)).id for i in range(10)]
    async with running(apps[0]), running(apps[1]):
        tasks = await wait_final(apps[0], ids)
    assert {t.state for t in tasks} == {"complete"}
    assert gauge.peak == 2


async def test_sync_handlers_that_overrun_their_deadline_never_exceed_the_limit(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    # Each first try blocks well past the queue's max run time; the engine gives up on it and
    # delivers the task again while the thread still runs. The bodies running at once must
    # still never exceed the worker's concurrency.
    queue = jetjobs.Queue("OVERRUN", max_run_time=timedelta(milliseconds=300), max_tries=20)
    app = make_app(queue, concurrency=2)
    gauge = Gauge()

    @app.task("work")
    def work(task: jetjobs.Task) -> None:
        gauge.enter()
        try:
            if task.tries == 1:
                time.sleep(1.0)
        finally:
            gauge.leave()

    with caplog.at_level(logging.WARNING, logger="jetjobs"):
        ids = [(await app.enqueue("work", i)).id for i in range(4)]
        async with running(app):
            tasks = await wait_final(app, ids, timeout=60)
    assert {t.state for t in tasks} == {"complete"}
    assert any(t.tries > 1 for t in tasks)  # some try did overrun and was delivered again
    assert gauge.peak <= 2
    assert any("overran its deadline" in r.getMessage() for r in caplog.records)
