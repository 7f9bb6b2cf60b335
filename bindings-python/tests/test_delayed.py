# SPDX-License-Identifier: Apache-2.0
"""Delayed tasks: ``delay=`` / ``run_at=`` on every enqueue path; a task is ``new`` until due and
never starts early; a cancelled delayed task never runs; conflicting options are refused."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final, wait_for


async def _queue_empty(handle: jetjobs.QueueHandle) -> bool:
    info = await handle.info()
    return info.items == 0 and info.in_flight == 0


async def test_delayed_tasks_wait_until_due_and_never_start_early(make_app: MakeApp) -> None:
    app = make_app("DELAYED", concurrency=20)
    starts: dict[str, datetime] = {}
    lock = threading.Lock()

    @app.task("later")
    def later(task: jetjobs.Task) -> None:
        now = datetime.now(timezone.utc)
        with lock:
            starts.setdefault(task.id, now)

    # 20 tasks due 1 to 2 s from now, through App.enqueue, QueueHandle.enqueue and enqueue_many.
    base = datetime.now(timezone.utc) + timedelta(seconds=1)
    stored = [await app.enqueue("later", 0, delay=1.0)]
    stored.append(await app.enqueue("later", 1, run_at=base + timedelta(milliseconds=50)))
    handle = await app.queue()
    stored.append(await handle.enqueue(jetjobs.Task("later", 2, delay=timedelta(seconds=1.1))))
    many = await app.enqueue_many(
        [
            jetjobs.Task("later", i, run_at=base + timedelta(milliseconds=50 * i))
            for i in range(3, 20)
        ]
    )
    assert all(isinstance(t, jetjobs.Task) for t in many)
    stored += [t for t in many if isinstance(t, jetjobs.Task)]
    assert len(stored) == 20
    assert all(t.run_at is not None for t in stored)

    # Before they are due: stored as `new`, with run_at, and no item in the queue to take.
    loaded = [await app.load_task(t.id) for t in stored]
    assert {t.state for t in loaded} == {"new"}
    assert [t.run_at_str for t in loaded] == [t.run_at_str for t in stored]
    assert (await handle.info()).items == 0

    async with running(app):
        done = await wait_final(app, [t.id for t in stored], timeout=30)
    assert {t.state for t in done} == {"complete"}
    for task in done:
        assert task.run_at is not None
        assert starts[task.id] >= task.run_at, f"{task.id} started before it was due"


async def test_a_cancelled_delayed_task_never_runs(make_app: MakeApp) -> None:
    app = make_app("DELAYCANCEL")
    ran: list[str] = []

    @app.task("later")
    async def later(task: jetjobs.Task) -> None:
        ran.append(task.id)

    cancelled = await app.enqueue("later", delay=0.5)
    # Due after the cancelled one: once it completed, the cancelled one's time has passed too.
    witness = await app.enqueue("later", delay=1.0)
    assert (await app.cancel(cancelled, "not needed")).state == "terminated"
    handle = await app.queue()
    async with running(app):
        (done,) = await wait_final(app, [witness.id])
        # The cancelled task's item, due first, has been moved, delivered and dropped too.
        await wait_for("the queue to be empty", lambda: _queue_empty(handle))
    assert done.state == "complete"
    final = await app.load_task(cancelled.id)
    assert final.state == "terminated"
    assert ran == [witness.id]


async def test_conflicting_delay_options_are_refused(make_app: MakeApp) -> None:
    app = make_app("DELAYBAD")
    soon = datetime.now(timezone.utc) + timedelta(minutes=1)
    with pytest.raises(jetjobs.InvalidOption, match="not both"):
        jetjobs.Task("later", delay=5, run_at=soon)
    with pytest.raises(jetjobs.InvalidOption, match="not both"):
        await app.enqueue("later", delay=5, run_at=soon)
    with pytest.raises(ValueError, match="naive datetime"):
        jetjobs.Task("later", run_at=datetime.now())
    # Due after its deadline: the engine refuses it at enqueue, on every path.
    late = jetjobs.Task("later", delay=timedelta(minutes=5), deadline=timedelta(minutes=1))
    with pytest.raises(jetjobs.InvalidOption, match="after its deadline"):
        await app.enqueue(late)
    with pytest.raises(jetjobs.InvalidOption, match="after its deadline"):
        await app.enqueue("later", run_at=soon, deadline=soon - timedelta(seconds=1))
    (refused,) = await app.enqueue_many([late])
    assert isinstance(refused, jetjobs.InvalidOption)


def test_run_at_accepts_the_deadline_formats() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert jetjobs.Task("x", run_at=at).run_at == at
    assert jetjobs.Task("x", run_at="2030-01-02T03:04:05.123456789Z").run_at_str == (
        "2030-01-02T03:04:05.123456789Z"
    )
    delayed = jetjobs.Task("x", delay=60).run_at
    assert delayed is not None
    assert abs((delayed - datetime.now(timezone.utc)).total_seconds() - 60) < 5
    assert jetjobs.Task("x").run_at is None
    assert b'"run_at"' in jetjobs.Task("x", run_at=at).to_json()
