# SPDX-License-Identifier: Apache-2.0
"""Supervised workers and jobs from Python (``jetjobs.supervisor``): runutil's rules for
``run_all_workers`` (premature exit, clean cancel, errors after cancel, the first failure
cancelling the others, several errors joined) with Python exceptions coming back as the same
objects; ``run_all_jobs``; ``repeat``, ``retry``, ``retry_job`` and ``wait`` timings; worker group
health; ``distributed_repeat`` running once per period across three connections."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

import jetjobs
from jetjobs import supervisor

from conftest import wait_for


async def until_cancelled(cancel: jetjobs.CancellationToken) -> None:
    await cancel.cancelled()


async def result_of(awaitable: Awaitable[object]) -> object:
    """What ``awaitable`` resolves to: these return ``None``, not pyo3's empty tuple for ``()``."""
    return await awaitable


async def until(what: str, condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``condition()`` until it is true; fail after ``timeout``."""

    async def check() -> bool:
        return bool(condition())

    await wait_for(what, check, timeout)


async def test_a_worker_returning_before_cancel_exited_prematurely() -> None:
    async def quits(cancel: jetjobs.CancellationToken) -> None:
        return None

    with pytest.raises(jetjobs.WorkerExitedPrematurely):
        await supervisor.run_all_workers(until_cancelled, quits)
    # A plain function is a worker too; it runs on a thread.
    with pytest.raises(jetjobs.WorkerExitedPrematurely):
        await supervisor.run_all_workers(lambda cancel: None, until_cancelled)


async def test_workers_stopping_on_cancel_return_none() -> None:
    assert await result_of(supervisor.run_all_workers()) is None
    cancel = jetjobs.CancellationToken()
    started = []

    async def worker(token: jetjobs.CancellationToken) -> None:
        started.append(token)
        await token.cancelled()

    def blocking(token: jetjobs.CancellationToken) -> None:
        # A sync worker runs on a thread of its own: blocking is fine.
        started.append(token)
        while not token.is_cancelled:
            time.sleep(0.01)

    run = asyncio.ensure_future(supervisor.run_all_workers(worker, worker, blocking, cancel=cancel))
    await until("three workers started", lambda: len(started) == 3)
    cancel.cancel()
    assert await result_of(asyncio.wait_for(run, 10)) is None


async def test_an_exception_raised_after_cancel_is_passed_through() -> None:
    cancel = jetjobs.CancellationToken()
    omg = RuntimeError("omg")

    async def grumpy(token: jetjobs.CancellationToken) -> None:
        await token.cancelled()
        raise omg

    run = asyncio.ensure_future(supervisor.run_all_workers(until_cancelled, grumpy, cancel=cancel))
    await asyncio.sleep(0.05)
    cancel.cancel()
    with pytest.raises(RuntimeError) as raised:
        await asyncio.wait_for(run, 10)
    assert raised.value is omg


async def test_the_first_failure_cancels_the_others_and_is_raised() -> None:
    stopped = []
    boom = ValueError("boom")

    async def counting(cancel: jetjobs.CancellationToken) -> None:
        await cancel.cancelled()
        stopped.append(1)

    async def failing(cancel: jetjobs.CancellationToken) -> None:
        await asyncio.sleep(0.05)
        raise boom

    caller = jetjobs.CancellationToken()
    with pytest.raises(ValueError, match="boom") as raised:
        await supervisor.run_all_workers(counting, failing, counting, cancel=caller)
    assert raised.value is boom
    assert len(stopped) == 2
    assert not caller.is_cancelled, "only a child token is cancelled"


async def test_several_errors_raise_workers_failed_with_each_error() -> None:
    first, second = ValueError("first"), KeyError("second")

    async def fails_at_once(cancel: jetjobs.CancellationToken) -> None:
        raise first

    async def fails_on_cancel(cancel: jetjobs.CancellationToken) -> None:
        await cancel.cancelled()
        await asyncio.sleep(0.02)
        raise second

    with pytest.raises(jetjobs.WorkersFailed) as raised:
        await supervisor.run_all_workers(fails_on_cancel, until_cancelled, fails_at_once)
    assert [type(e) for e in raised.value.errors] == [ValueError, KeyError]
    assert raised.value.errors[0] is first and raised.value.errors[1] is second
    assert "first" in str(raised.value) and "second" in str(raised.value)

    # A core error among them is a jetjobs exception.
    async def quits(cancel: jetjobs.CancellationToken) -> None:
        return None

    with pytest.raises(jetjobs.WorkersFailed) as raised:
        await supervisor.run_all_workers(quits, fails_on_cancel)
    premature, error = raised.value.errors
    assert isinstance(premature, jetjobs.WorkerExitedPrematurely)
    assert error is second


async def test_cancelling_the_run_cancels_the_python_workers() -> None:
    cleaned = asyncio.Event()

    async def sleeper(cancel: jetjobs.CancellationToken) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.set()

    run = asyncio.ensure_future(supervisor.run_all_workers(sleeper))
    await asyncio.sleep(0.05)
    run.cancel()
    await asyncio.wait_for(cleaned.wait(), 10)


async def test_arguments_are_checked() -> None:
    job = supervisor.Job(until_cancelled)
    with pytest.raises(TypeError):
        await supervisor.run_all_workers(job)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await supervisor.run_all_workers(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        supervisor.repeat(1, supervisor.Worker(until_cancelled))  # type: ignore[arg-type]


async def test_run_all_jobs_waits_for_every_job() -> None:
    finished: list[float] = []

    def job(secs: float, error: Exception | None = None) -> supervisor.Job:
        async def run(cancel: jetjobs.CancellationToken) -> None:
            await asyncio.sleep(secs)
            finished.append(secs)
            if error is not None:
                raise error

        return supervisor.Job(run)

    assert await result_of(supervisor.run_all_jobs(job(0.1), job(0.02), job(0.05))) is None
    assert finished == [0.02, 0.05, 0.1]
    finished.clear()
    late, early = ValueError("late"), ValueError("early")
    with pytest.raises(jetjobs.WorkersFailed) as raised:
        await supervisor.run_all_jobs(job(0.1, late), job(0.02, early), job(0.15))
    assert finished == [0.02, 0.1, 0.15], "no job was cut short"
    assert raised.value.errors == [early, late]
    with pytest.raises(ValueError, match="early") as one:
        await supervisor.run_all_jobs(job(0.01, early), job(0.01))
    assert one.value is early


async def test_repeat_runs_start_to_start_and_a_job_error_ends_it() -> None:
    starts: list[float] = []

    async def job(cancel: jetjobs.CancellationToken) -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.1)  # half the period: the next start is not delayed by it

    cancel = jetjobs.CancellationToken()
    begin = time.monotonic()
    run = asyncio.ensure_future(
        supervisor.run_all_workers(supervisor.repeat(0.2, job), cancel=cancel)
    )
    await until("four runs", lambda: len(starts) >= 4)
    cancel.cancel()
    assert await result_of(asyncio.wait_for(run, 10)) is None
    assert starts[0] - begin >= 0.18, "the first run waits one period"
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0.15 < g < 0.28 for g in gaps), gaps  # end to start would be 0.3 s

    starts.clear()
    cancel = jetjobs.CancellationToken()
    begin = time.monotonic()
    run = asyncio.ensure_future(
        supervisor.run_all_workers(
            supervisor.repeat(timedelta(seconds=1), job, start_immediately=True), cancel=cancel
        )
    )
    await until("the first run", lambda: starts)
    assert starts[0] - begin < 0.5, "start_immediately runs at once"
    cancel.cancel()
    await asyncio.wait_for(run, 10)

    runs = []
    broken = RuntimeError("second run failed")

    def flaky(cancel: jetjobs.CancellationToken) -> None:  # a sync job
        runs.append(1)
        if len(runs) == 2:
            raise broken

    with pytest.raises(RuntimeError) as raised:
        await asyncio.wait_for(supervisor.run_all_workers(supervisor.repeat(0.02, flaky)), 10)
    assert raised.value is broken
    assert len(runs) == 2


async def test_retry_restarts_a_failing_worker_after_its_backoff() -> None:
    starts: list[float] = []

    async def flaky(cancel: jetjobs.CancellationToken) -> None:
        starts.append(time.monotonic())
        if len(starts) <= 2:
            raise ConnectionError("down")
        await cancel.cancelled()

    cancel = jetjobs.CancellationToken()
    worker = supervisor.retry(flaky, jetjobs.RetryPolicy.fixed(0.25))
    run = asyncio.ensure_future(supervisor.run_all_workers(worker, cancel=cancel))
    await until("the third start", lambda: len(starts) == 3)
    cancel.cancel()
    assert await result_of(asyncio.wait_for(run, 10)) is None, "retry never fails"
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(0.24 <= g < 1.0 for g in gaps), gaps

    # A worker returning early is restarted after at least MIN_RESTART_DELAY.
    quick: list[float] = []

    async def quits(cancel: jetjobs.CancellationToken) -> None:
        quick.append(time.monotonic())

    cancel = jetjobs.CancellationToken()
    run = asyncio.ensure_future(
        supervisor.run_all_workers(supervisor.retry(quits, "1m"), cancel=cancel)
    )
    await until("three restarts", lambda: len(quick) >= 3)
    cancel.cancel()
    await asyncio.wait_for(run, 10)
    minimum = supervisor.MIN_RESTART_DELAY.total_seconds()
    assert all(b - a >= minimum * 0.9 for a, b in zip(quick, quick[1:]))


async def test_retry_job_runs_until_it_succeeds_or_is_cancelled() -> None:
    runs: list[float] = []

    async def twice_failing(cancel: jetjobs.CancellationToken) -> None:
        runs.append(time.monotonic())
        if len(runs) <= 2:
            raise ValueError(f"failure {len(runs)}")

    await supervisor.run_all_jobs(
        supervisor.retry_job(twice_failing, jetjobs.RetryPolicy.fixed(0.1))
    )
    assert len(runs) == 3
    assert runs[-1] - runs[0] >= 0.19

    async def always_failing(cancel: jetjobs.CancellationToken) -> None:
        raise ValueError("still down")

    cancel = jetjobs.CancellationToken()
    job = supervisor.retry_job(always_failing, jetjobs.RetryPolicy.fixed(0.05))
    run = asyncio.ensure_future(job.run_once(cancel))
    await asyncio.sleep(0.2)
    cancel.cancel()
    with pytest.raises(jetjobs.Closed, match="still down"):
        await asyncio.wait_for(run, 10)


async def test_wait_returns_early_on_cancel() -> None:
    cancel = jetjobs.CancellationToken()
    begin = time.monotonic()
    assert await supervisor.wait(cancel, 0.05) is True
    assert time.monotonic() - begin >= 0.045
    threading.Timer(0.05, cancel.cancel).start()
    begin = time.monotonic()
    assert await supervisor.wait(cancel, timedelta(seconds=30)) is False
    assert time.monotonic() - begin < 5
    assert await supervisor.wait(cancel, 30) is False, "already cancelled"


def test_backoff_delay_waits_nothing_before_the_first_attempt() -> None:
    fixed = jetjobs.RetryPolicy.fixed(timedelta(milliseconds=300))
    assert [supervisor.backoff_delay(fixed, a) for a in range(3)] == [
        timedelta(0),
        timedelta(milliseconds=300),
        timedelta(milliseconds=300),
    ]
    exp = jetjobs.RetryPolicy.exponential(1, 60)
    delays = [supervisor.backoff_delay(exp, a).total_seconds() for a in range(9)]
    assert delays == [0, 1, 2, 4, 8, 16, 32, 60, 60]


async def test_worker_group_health_moves_starting_ok_failing() -> None:
    outcomes: asyncio.Queue[bool] = asyncio.Queue()
    started = asyncio.Event()

    async def job(cancel: jetjobs.CancellationToken) -> None:
        started.set()
        if not await outcomes.get():
            raise ValueError("job failed")

    group = supervisor.WorkerGroup()
    group.add("ticker", supervisor.repeat(0.05, job, True), retry=jetjobs.RetryPolicy.fixed(0.3))
    group.add("idle", until_cancelled)
    assert group.health() == {"ticker": "starting", "idle": "starting"}
    cancel = jetjobs.CancellationToken()
    run = asyncio.ensure_future(group.run(cancel))

    await asyncio.wait_for(started.wait(), 10)
    assert group.health()["ticker"] == "starting"
    await outcomes.put(True)
    await until("ticker ok", lambda: group.health()["ticker"] == "ok")
    await outcomes.put(False)
    await until("ticker failing", lambda: group.health()["ticker"] == "failing")
    failed_at = time.monotonic()
    await until("ticker restarted", lambda: group.health()["ticker"] == "starting")
    assert time.monotonic() - failed_at >= 0.25, "the retry's backoff applies"
    # Running for HEALTHY_AFTER counts as healthy, even without a job to report success.
    await until("idle ok", lambda: group.health()["idle"] == "ok", timeout=5)
    cancel.cancel()
    await outcomes.put(True)
    assert await result_of(asyncio.wait_for(run, 10)) is None

    quitter = supervisor.WorkerGroup()
    quitter.add("quitter", lambda cancel: None)
    with pytest.raises(jetjobs.WorkerExitedPrematurely):
        await quitter.run()
    assert quitter.health() == {"quitter": "failing"}


async def test_distributed_repeat_runs_once_per_period_across_connections(
    nats_url: str,
) -> None:
    runs: list[int] = []

    async def report(cancel: jetjobs.CancellationToken) -> None:
        runs.append(int(time.time()))

    apps = [jetjobs.App(nats_url), jetjobs.App(nats_url)]
    client = await jetjobs.connect(nats_url)
    try:
        workers = [await supervisor.distributed_repeat(app, "report", 1, report) for app in apps]
        workers.append(await supervisor.distributed_repeat(client, "report", 1, report))
        with pytest.raises(jetjobs.InvalidOption):
            await supervisor.distributed_repeat(client, "report", 0.5, report)
        with pytest.raises(jetjobs.InvalidOption):
            await supervisor.distributed_repeat(client, "a.b", 1, report)
        cancel = jetjobs.CancellationToken()
        run = asyncio.ensure_future(supervisor.run_all_workers(*workers, cancel=cancel))
        first = int(time.time()) + 1
        await until("three periods", lambda: time.time() >= first + 3.5, timeout=10)
        cancel.cancel()
        assert await result_of(asyncio.wait_for(run, 10)) is None
    finally:
        for app in apps:
            await app.close()
        await client.close()
    per_period = Counter(runs)
    assert all(n == 1 for n in per_period.values()), per_period
    assert len(runs) >= 2, per_period
