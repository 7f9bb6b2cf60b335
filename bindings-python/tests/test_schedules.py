# SPDX-License-Identifier: Apache-2.0
"""Scheduled tasks: create, load, list, remove and watch them with asyncjobs' typed errors; a
``TaskScheduler`` (and an ``App`` with ``task_scheduler``) firing an ``@every 1s`` schedule once
elected; and ``python -m jetjobs scheduler``."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

import jetjobs

from conftest import MakeApp, running, wait_for

# The election announces a win one campaign interval (7.5 s) after a splay of up to 5 s.
ELECTED = 40.0


async def test_schedules_are_stored_listed_watched_and_removed_with_typed_errors(
    make_app: MakeApp,
) -> None:
    app = make_app("REPORTS")
    async with app:
        nightly = await app.create_schedule(
            "nightly",
            "0 2 * * *",
            "report:daily",
            {"to": "ops"},
            deadline=timedelta(minutes=2),
            max_tries=3,
        )
        assert (nightly.name, nightly.schedule, nightly.queue) == (
            "nightly",
            "0 2 * * *",
            "REPORTS",
        )
        assert (nightly.task_type, nightly.payload, nightly.max_tries) == (
            "report:daily",
            {"to": "ops"},
            3,
        )
        assert nightly.payload_bytes == b'{"to":"ops"}'
        assert nightly.deadline == timedelta(minutes=2)
        assert abs(nightly.created_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
        assert await app.load_schedule("nightly") == nightly
        assert jetjobs.ScheduledTask.from_json(nightly.to_json()) == nightly

        with pytest.raises(jetjobs.ScheduleExists):
            await app.create_schedule("nightly", "@daily", "report:daily")
        # The Client layer takes a ready ScheduledTask; no deadline and no payload are kept so.
        hourly = jetjobs.ScheduledTask(
            "hourly", "@hourly", "REPORTS", jetjobs.Task("report:hourly")
        )
        assert (hourly.deadline, hourly.payload, hourly.payload_bytes) == (None, None, None)
        await (await app.client()).create_schedule(hourly)
        assert [s.name for s in await app.schedules()] == ["hourly", "nightly"]

        watch = await app.watch_schedules()
        seen = [await watch.__anext__(), await watch.__anext__()]
        assert sorted((c.kind, c.name) for c in seen) == [
            ("stored", "hourly"),
            ("stored", "nightly"),
        ]
        await app.remove_schedule("nightly")
        removed = await asyncio.wait_for(watch.__anext__(), 10)
        assert (removed.kind, removed.name, removed.schedule) == ("removed", "nightly", None)
        watch.close()
        with pytest.raises(StopAsyncIteration):
            await watch.__anext__()

        for missing in (app.load_schedule("nightly"), app.remove_schedule("nightly")):
            with pytest.raises(jetjobs.ScheduleNotFound) as raised:
                await missing
            assert isinstance(raised.value, jetjobs.JetJobsError)
            assert raised.value.code == "ScheduleNotFound"
        assert [s.name for s in await app.schedules()] == ["hourly"]

        with pytest.raises(jetjobs.InvalidSchedule):
            await app.create_schedule("x", "not cron", "report")
        with pytest.raises(jetjobs.InvalidSchedule):
            jetjobs.ScheduledTask("x", "@fortnightly", "REPORTS", jetjobs.Task("report"))
        with pytest.raises(jetjobs.InvalidScheduleName):
            await app.create_schedule("a b", "@daily", "report")
        with pytest.raises(jetjobs.InvalidScheduleName):
            await app.load_schedule("a.b")
        with pytest.raises(jetjobs.ScheduleDeadlineTooShort):
            await app.create_schedule("x", "@daily", "report", deadline=10)
        short = jetjobs.Task("report", deadline=timedelta(seconds=10))
        with pytest.raises(jetjobs.ScheduleDeadlineTooShort):
            jetjobs.ScheduledTask("x", "@daily", "REPORTS", short)
        with pytest.raises(jetjobs.InvalidQueueName):
            jetjobs.ScheduledTask("x", "@daily", "", jetjobs.Task("report"))
        with pytest.raises(TypeError):
            await app.create_schedule("x", "@daily", jetjobs.Task("report"), max_tries=2)
        with pytest.raises(jetjobs.InvalidOption):
            jetjobs.TaskScheduler(await app.client(), "")


async def tasks_of(app: jetjobs.App, task_type: str) -> list[jetjobs.Task]:
    return [t for t in await (await app.admin()).tasks(100_000) if t.type == task_type]


async def test_an_elected_task_scheduler_fires_every_second(make_app: MakeApp) -> None:
    app = make_app("CRON_PY")
    async with app:
        await app.create_schedule("tick", "@every 1s", "tick", {"n": 1})
        scheduler = jetjobs.TaskScheduler(await app.client(), "python-1")
        assert (scheduler.name, scheduler.is_leader) == ("python-1", False)
        shutdown = jetjobs.CancellationToken()
        run = asyncio.ensure_future(scheduler.run(shutdown))

        async def elected() -> bool:
            return scheduler.is_leader

        await wait_for("the scheduler to be elected", elected, ELECTED)

        async def fired() -> list[jetjobs.Task] | None:
            tasks = await tasks_of(app, "tick")
            return tasks if len(tasks) >= 2 else None

        tasks = await wait_for("two scheduled tasks", fired, ELECTED)
        assert {t.queue for t in tasks} == {"CRON_PY"}
        assert all(t.payload == {"n": 1} for t in tasks)
        seconds = [int(t.created.timestamp()) for t in tasks]
        assert len(seconds) == len(set(seconds)), f"one task per firing: {seconds}"
        shutdown.cancel()
        await asyncio.wait_for(run, 10)


async def test_a_task_scheduler_run_ends_when_cancelled(make_app: MakeApp) -> None:
    app = make_app("CRON_CANCEL")
    async with app:
        run = asyncio.ensure_future(jetjobs.TaskScheduler(await app.client(), "cancelled").run())
        await asyncio.sleep(0.5)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(run, 10)


async def test_an_app_with_a_task_scheduler_runs_it_and_handles_its_tasks(
    make_app: MakeApp,
) -> None:
    app = make_app("CRON_APP", task_scheduler="app-1")
    handled: list[str] = []

    @app.task("tick")
    async def tick(task: jetjobs.Task) -> None:
        handled.append(task.id)

    await app.create_schedule("tick", "@every 1s", "tick")
    async with running(app):

        async def two() -> bool:
            return len(handled) >= 2

        await wait_for("two scheduled tasks handled", two, ELECTED)
    await app.close()


def test_the_scheduler_command_prints_ready_and_stops_on_sigterm(nats_url: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jetjobs", "scheduler", nats_url, "--name", "cli-1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"jetjobs scheduler: cli-1 at {nats_url}: ready", line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
