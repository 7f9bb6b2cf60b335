# SPDX-License-Identifier: Apache-2.0
"""One App, many queues: per-queue handlers under one worker budget, enqueue to any queue, queue
handles, the native Worker, one connection for racing first calls, and closing."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import jetjobs

from conftest import Gauge, MakeApp, running, wait_final, wait_for, wait_state


async def test_one_worker_runs_two_queues_under_one_budget(make_app: MakeApp) -> None:
    # Each queue alone may run 2 at once; together they would run 4, but the app's budget is 3.
    app = make_app(
        "MAIN",
        concurrency=3,
        queues=[jetjobs.Queue("QA", max_concurrent=2), jetjobs.Queue("QB", max_concurrent=2)],
    )
    total, per_queue = Gauge(), {"QA": Gauge(), "QB": Gauge()}
    seen: list[tuple[str, str]] = []

    @app.middleware
    def record(task: jetjobs.Task, call_next: Any) -> Any:  # sync: it wraps sync and async routes
        seen.append((task.queue, task.type))
        return call_next(task)

    def measure(task: jetjobs.Task) -> None:
        total.enter()
        per_queue[task.queue].enter()

    def release(task: jetjobs.Task) -> None:
        per_queue[task.queue].leave()
        total.leave()

    # The same type on both queues: an async handler on QA, a sync one on QB.
    @app.task("work", queue="QA")
    async def work_a(task: jetjobs.Task) -> str:
        measure(task)
        try:
            await asyncio.sleep(0.1)
        finally:
            release(task)
        return "a"

    @app.task("work", queue=jetjobs.Queue("QB"))
    def work_b(task: jetjobs.Task) -> str:
        measure(task)
        try:
            time.sleep(0.1)
        finally:
            release(task)
        return "b"

    assert app.route_for("work", queue="QA") == "work"
    assert app.route_for("work") is None  # nothing registered on the default queue
    ids = [(await app.enqueue("work", i, queue="QA")).id for i in range(8)]
    ids += [(await app.enqueue("work", i, queue="QB")).id for i in range(8)]
    main = await app.enqueue("work", "not consumed")  # the default queue has no handler
    async with running(app):
        tasks = await wait_final(app, ids)
    assert {t.state for t in tasks} == {"complete"}
    assert [t.queue for t in tasks] == ["QA"] * 8 + ["QB"] * 8
    assert [t.result.payload for t in tasks if t.result] == ["a"] * 8 + ["b"] * 8
    assert total.peak <= 3
    assert per_queue["QA"].peak <= 2
    assert per_queue["QB"].peak <= 2
    assert {q for q, _ in seen} == {"QA", "QB"}  # app-wide middleware wraps every queue's routes
    assert (await app.load_task(main.id)).state == "new"
    info = await (await app.queue("QA")).info()
    assert info.queue.max_concurrent == 2


async def test_enqueue_to_a_named_queue_and_its_handle(make_app: MakeApp) -> None:
    app = make_app("HOME", queues=["OTHER"])
    task = await app.enqueue("x", 1, queue="OTHER")
    assert task.queue == "OTHER"
    assert (await app.enqueue("x", 2)).queue == "HOME"

    handle = await app.queue("OTHER")
    assert handle is await app.queue(jetjobs.Queue("OTHER"))  # cached per name
    assert handle.name == "OTHER"
    assert handle.settings.name == "OTHER"
    assert (await app.queue()).name == "HOME"
    info = await handle.info()
    assert (info.queue.name, info.items) == ("OTHER", 1)

    # From a thread without an event loop; the settings of a Queue given on first use apply.
    third = await asyncio.to_thread(
        app.enqueue_sync, "x", 3, queue=jetjobs.Queue("THIRD", max_tries=3)
    )
    assert third.queue == "THIRD"
    assert (await app.queue("THIRD")).settings.max_tries == 3
    assert (await handle.load_task(task.id)).queue == "OTHER"
    direct = await handle.enqueue(jetjobs.Task("y", 4))
    assert direct.queue == "OTHER"

    await handle.purge()
    assert (await handle.info()).items == 0
    names = await (await app.admin()).queue_names()
    assert {"HOME", "OTHER", "THIRD"} <= set(names)


async def test_retry_task_on_a_named_queue(make_app: MakeApp) -> None:
    app = make_app("R1", queues=["R2"])
    calls: list[str] = []

    @app.task("flaky", queue="R2")
    async def flaky(task: jetjobs.Task) -> str:
        calls.append(task.queue)
        raise jetjobs.TerminateTask("no")

    task = await app.enqueue("flaky", queue="R2")
    async with running(app):
        await wait_state(app, task.id, "terminated")
        retried = await app.retry_task(task.id, queue="R2")
        assert retried.queue == "R2"
        await wait_for("the retried try", lambda: _ready(len(calls) >= 2))
    assert calls == ["R2", "R2"]


async def _ready(value: bool) -> bool:
    return value


async def test_racing_first_calls_share_one_client(make_app: MakeApp) -> None:
    app = make_app("RACE")
    clients = await asyncio.gather(*(app.client() for _ in range(5)))
    assert all(c is clients[0] for c in clients)

    threaded = make_app("RACE")
    with ThreadPoolExecutor(4) as pool:
        from_threads = list(pool.map(lambda _: threaded.client_sync(), range(4)))
    from_loop = await threaded.client()
    assert all(c is from_loop for c in from_threads)


async def test_async_with_closes_for_good(make_app: MakeApp) -> None:
    async with make_app("CLOSE") as app:
        client = await app.client()
        await app.enqueue("x")
    with pytest.raises(jetjobs.Closed):
        await client.enqueue(jetjobs.Task("x"))
    with pytest.raises(jetjobs.Closed):
        await app.enqueue("x")
    with pytest.raises(jetjobs.Closed):
        app.enqueue_sync("x")
    await app.close()  # closing again does nothing


async def test_close_stops_running_workers_first(make_app: MakeApp) -> None:
    app = make_app("STOPCLOSE")
    started = asyncio.Event()
    finished: list[str] = []

    @app.task("slow")
    async def slow(task: jetjobs.Task) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(task.id)

    task = await app.enqueue("slow")
    worker = asyncio.ensure_future(app.run(handle_signals=False))
    await asyncio.wait_for(started.wait(), 20)
    await app.close()  # graceful: the running handler finishes before the connection closes
    assert worker.done()
    await worker
    assert finished == [task.id]
    async with make_app("STOPCLOSE") as other:
        assert (await other.load_task(task.id)).state == "complete"


async def test_native_worker_runs_once_and_consumes_a_queue_once(make_app: MakeApp) -> None:
    app = make_app("NATIVE")
    client = await app.client()
    mux = jetjobs.Mux()

    async def echo(task: jetjobs.Task) -> Any:
        return task.payload

    mux.handle("echo", echo)
    worker = jetjobs.Worker(client, concurrency=2, retry_policy="1m", shutdown_grace=2)
    worker.consume(client.default_queue, mux)
    with pytest.raises(jetjobs.InvalidOption):
        worker.consume(client.default_queue, mux)

    shutdown = jetjobs.CancellationToken()
    run = asyncio.ensure_future(worker.run(shutdown))
    with pytest.raises(jetjobs.AlreadyRunning):
        await worker.run(jetjobs.CancellationToken())
    task = await client.default_queue.enqueue(jetjobs.Task("echo", {"n": 1}))
    done = await wait_state(app, task.id, "complete")
    assert done.result is not None and done.result.payload == {"n": 1}
    shutdown.cancel()
    await asyncio.wait_for(run, 20)
    with pytest.raises(jetjobs.AlreadyRunning):
        await worker.run(jetjobs.CancellationToken())
    with pytest.raises(jetjobs.AlreadyRunning):
        worker.consume(client.default_queue, mux)
    await app.close()


async def test_native_worker_validates_its_options(make_app: MakeApp) -> None:
    app = make_app("NATIVEOPTS")
    client = await app.client()
    worker = jetjobs.Worker(client, discard_states=["new"])
    worker.consume(client.default_queue, jetjobs.Mux())
    with pytest.raises(jetjobs.UnknownDiscardPolicy):  # checked when it runs, like the core's
        await worker.run(jetjobs.CancellationToken())
    worker = jetjobs.Worker(client, concurrency=0)
    worker.consume(client.default_queue, jetjobs.Mux())
    with pytest.raises(jetjobs.InvalidOption):
        await worker.run(jetjobs.CancellationToken())
    with pytest.raises(jetjobs.InvalidOption):  # consumes no queue
        await jetjobs.Worker(client).run(jetjobs.CancellationToken())
