# SPDX-License-Identifier: Apache-2.0
"""Failed tries: retries, terminate, exception mapping, deadlines, max tries, process exits."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final, wait_for


class PaymentDeclined(Exception):
    pass


async def test_retry_then_success(make_app: MakeApp) -> None:
    app = make_app("RETRY")
    errors: list[str] = []

    @app.task("flaky")
    async def flaky(task: jetjobs.Task) -> int:
        if task.tries < 3:
            raise ConnectionError(f"try {task.tries} failed")
        return task.tries

    @app.middleware
    async def record(task: jetjobs.Task, call_next: jetjobs.CallNext) -> Any:
        errors.append(task.last_err)
        return await call_next(task)

    task = await app.enqueue("flaky")
    async with running(app):
        (done,) = await wait_final(app, [task.id])
    assert (done.state, done.tries, done.last_err) == ("complete", 3, "")
    assert done.result is not None and done.result.payload == 3
    # Each try saw the previous one's error: the engine cleared it when the try started.
    assert errors == ["", "", ""]


async def test_last_err_has_the_exception_type_and_message(make_app: MakeApp) -> None:
    app = make_app("ERRMAP")

    @app.task("value")
    async def value(task: jetjobs.Task) -> None:
        raise ValueError("bad value")

    @app.task("custom")
    def custom(task: jetjobs.Task) -> None:
        raise PaymentDeclined("card expired")

    @app.task("bare")
    async def bare(task: jetjobs.Task) -> None:
        raise KeyError

    @app.task("not-json")
    def not_json(task: jetjobs.Task) -> object:
        return object()

    @app.task("nan")
    async def nan(task: jetjobs.Task) -> float:
        return float("nan")

    types = ["value", "custom", "bare", "not-json", "nan", "unrouted"]
    ids = [(await app.enqueue(t, None, max_tries=1)).id for t in types]
    async with running(app):
        tasks = await wait_final(app, ids)
    errors = {t.type: (t.state, t.last_err) for t in tasks}
    assert errors == {
        "value": ("expired", "ValueError: bad value"),
        "custom": ("expired", f"{PaymentDeclined.__module__}.PaymentDeclined: card expired"),
        "bare": ("expired", "KeyError"),
        "not-json": ("expired", "TypeError: Object of type object is not JSON serializable"),
        "nan": ("expired", "ValueError: Out of range float values are not JSON compliant"),
        "unrouted": ("expired", 'no handler for task type "unrouted"'),
    }


async def test_terminate_task_stops_retries(make_app: MakeApp) -> None:
    app = make_app("TERM")
    calls: list[int] = []

    @app.task("a")
    async def a(task: jetjobs.Task) -> None:
        calls.append(task.tries)
        raise jetjobs.TerminateTask("no recipient")

    @app.task("s")
    def s(task: jetjobs.Task) -> None:
        calls.append(task.tries)
        raise jetjobs.TerminateTask("refused")

    ids = [(await app.enqueue("a")).id, (await app.enqueue("s")).id]
    async with running(app):
        tasks = await wait_final(app, ids)
    assert [(t.state, t.tries, t.last_err) for t in tasks] == [
        ("terminated", 1, "no recipient: terminate task"),
        ("terminated", 1, "refused: terminate task"),
    ]
    assert calls == [1, 1]


async def test_max_tries_expiry(make_app: MakeApp) -> None:
    app = make_app("MAXTRIES")
    tries: list[int] = []

    @app.task("always-fails")
    def always_fails(task: jetjobs.Task) -> None:
        tries.append(task.tries)
        raise RuntimeError(f"failure {task.tries}")

    task = await app.enqueue("always-fails", max_tries=3)
    async with running(app):
        (done,) = await wait_final(app, [task.id])
    assert (done.state, done.tries, done.last_err) == ("expired", 3, "RuntimeError: failure 3")
    assert tries == [1, 2, 3]


async def test_past_deadline_expires_without_running(make_app: MakeApp) -> None:
    app = make_app("DEADLINE")
    ran: list[str] = []

    @app.task("late")
    async def late(task: jetjobs.Task) -> None:
        ran.append(task.id)

    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    task = await app.enqueue("late", deadline=past)
    async with running(app):
        (done,) = await wait_final(app, [task.id])
    # As asyncjobs: only the state changes (no last_err, no tried) for a task that never ran.
    assert (done.state, done.tries, done.last_err, done.tried) == ("expired", 0, "", None)
    assert ran == []


async def test_run_time_deadline_cancels_the_coroutine(make_app: MakeApp) -> None:
    app = make_app(jetjobs.Queue("RUNTIME", max_run_time=timedelta(seconds=1)))
    cancelled: list[int] = []
    contexts: list[bool] = []

    @app.task("slow")
    async def slow(task: jetjobs.Task) -> None:
        assert task.context is not None
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            contexts.append(task.context.is_cancelled)
            cancelled.append(task.tries)
            raise

    task = await app.enqueue("slow", max_tries=1)
    async with running(app):
        (done,) = await wait_final(app, [task.id])
        await wait_for("the coroutine to be cancelled", lambda: _true_if(cancelled))
    assert (done.state, done.last_err) == ("expired", "context deadline exceeded")
    # The item's redelivery (ack wait = max run time) may start a second run at the same moment.
    assert set(cancelled) == {1}
    assert set(contexts) == {True}


async def _true_if(value: list[Any]) -> bool:
    return bool(value)


SCRIPT = """
import asyncio, os, sys
import jetjobs

app = jetjobs.App(os.environ["NATS_URL"], queue="EXIT")

@app.task("exit")
def exit_sync(task):
    raise SystemExit(3)

@app.task("exit-async")
async def exit_async(task):
    raise SystemExit(4)

async def main():
    await app.enqueue(sys.argv[1])
    await app.run(handle_signals=False)

asyncio.run(main())
"""


@pytest.mark.parametrize(("task_type", "code"), [("exit", 3), ("exit-async", 4)])
async def test_system_exit_in_a_handler_is_not_swallowed(
    make_app: MakeApp, nats_url: str, task_type: str, code: int
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(SCRIPT),
        task_type,
        env={**os.environ, "NATS_URL": nats_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == code, stderr.decode()
    # The try still counts as failed, with the exception in last_err.
    app = make_app("EXIT")
    (task,) = [t for t in await (await app.admin()).tasks() if t.type == task_type]
    assert task.last_err == f"SystemExit: {code}"
    assert task.state == "retry"
