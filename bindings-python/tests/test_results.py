# SPDX-License-Identifier: Apache-2.0
"""Waiting for results: the result, the final error or a timeout; many waiters at once."""

from __future__ import annotations

import asyncio

import pytest

import jetjobs

from conftest import MakeApp, running


async def test_wait_for_returns_the_result_or_raises_the_final_error(make_app: MakeApp) -> None:
    app = make_app("WAIT", retry_policy=jetjobs.RetryPolicy.exponential(0.05, 0.1))

    @app.task("double")
    async def double(task: jetjobs.Task) -> int:
        return int(task.payload) * 2

    @app.task("refuse")
    def refuse(task: jetjobs.Task) -> None:
        raise jetjobs.TerminateTask("not today")

    pending = await app.enqueue("double", 21)
    with pytest.raises(jetjobs.Timeout):
        await app.wait_for(pending, timeout=0.3)  # nobody works the queue yet

    async with running(app):
        done = await app.wait_for(pending.id, timeout=30)
        assert (done.state, done.result.payload if done.result else None) == ("complete", 42)
        done = await app.enqueue_and_wait("double", 5, timeout=30, max_tries=3)
        assert done.result is not None and done.result.payload == 10
        with pytest.raises(jetjobs.TaskFailed, match="terminated: not today"):
            await app.enqueue_and_wait("refuse", None, timeout=30)
        # Many waiters at once share one subscription.
        tasks = await app.enqueue_many([("double", n) for n in range(300)])
        results = await asyncio.gather(
            *(app.wait_for(t, timeout=60) for t in tasks if isinstance(t, jetjobs.Task))
        )
        assert [r.result.payload for r in results if r.result] == [n * 2 for n in range(300)]
    with pytest.raises(jetjobs.TaskNotFound):
        await app.wait_for("no-such-task", timeout=5)


async def test_unique_tasks_dedupe_concurrent_producers(make_app: MakeApp) -> None:
    app = make_app("UNIQ")
    stored = await asyncio.gather(
        *(app.enqueue("report", n, unique_key="report:2026-12") for n in range(20))
    )
    assert len({t.id for t in stored}) == 1
    assert jetjobs.Task("report", unique_key="k").unique_key == "k"
    info = await (await app.queue()).info()
    assert info.items == 1
    with pytest.raises(ValueError, match="unique_key"):
        await app.enqueue("report", 1, unique_for=5)


async def test_cancel_a_pending_and_a_running_task(make_app: MakeApp) -> None:
    app = make_app("CANCELS")
    started = asyncio.Event()
    saw_cancel: list[str] = []

    @app.task("wait")
    async def wait_forever(task: jetjobs.Task) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw_cancel.append(task.id)
            raise

    pending = await app.enqueue("never")
    cancelled = await app.cancel(pending, "no longer needed")
    assert (cancelled.state, cancelled.last_err) == ("terminated", "cancelled: no longer needed")

    running_task = await app.enqueue("wait")
    async with running(app):
        await asyncio.wait_for(started.wait(), 20)
        stopped = await app.cancel(running_task.id, "stop")
        assert stopped.state == "terminated"
        assert stopped.last_err.startswith("cancelled: stop")
        for _ in range(200):  # the handler's cancellation is delivered on the loop
            if saw_cancel:
                break
            await asyncio.sleep(0.01)
    assert saw_cancel == [running_task.id]
