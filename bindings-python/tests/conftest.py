# SPDX-License-Identifier: Apache-2.0
"""Fixtures: a real nats-server per test (``jetjobs.dev_server()``), apps on it, and waiting helpers
that poll a condition until a deadline instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

import jetjobs

ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = jetjobs.RetryPolicy.exponential(
    timedelta(milliseconds=20), timedelta(milliseconds=100)
)
T = TypeVar("T")


@pytest.fixture
def nats_url() -> Iterator[str]:
    with jetjobs.dev_server() as url:
        yield url


class MakeApp(Protocol):
    def __call__(self, queue: str | jetjobs.Queue = ..., **options: Any) -> jetjobs.App: ...


@pytest.fixture
def make_app(nats_url: str) -> MakeApp:
    """Apps on the test's server; fast retries and a short shutdown grace unless overridden."""

    def make(queue: str | jetjobs.Queue = "TEST", **options: Any) -> jetjobs.App:
        options.setdefault("retry_policy", FAST_RETRY)
        options.setdefault("shutdown_grace", timedelta(seconds=2))
        return jetjobs.App(nats_url, queue=queue, **options)

    return make


async def wait_for(what: str, check: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    """Poll ``check`` until it returns something but None/False; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def wait_final(app: jetjobs.App, ids: list[str], timeout: float = 20.0) -> list[jetjobs.Task]:
    """Wait until every task is in a final state; returns them in ``ids`` order."""

    async def check() -> list[jetjobs.Task] | None:
        tasks = [await app.load_task(i) for i in ids]
        return tasks if all(jetjobs.TaskState(t.state).is_final for t in tasks) else None

    return await wait_for(f"tasks {ids} to reach a final state", check, timeout)


async def wait_state(
    app: jetjobs.App, task_id: str, state: str, timeout: float = 20.0
) -> jetjobs.Task:
    async def check() -> jetjobs.Task | None:
        task = await app.load_task(task_id)
        return task if task.state == state else None

    return await wait_for(f"task {task_id} to be {state}", check, timeout)


@contextlib.asynccontextmanager
async def running(app: jetjobs.App) -> AsyncIterator[asyncio.Future[None]]:
    """Run the app's worker for the block, then stop it and wait for its graceful shutdown."""
    worker = asyncio.ensure_future(app.run(handle_signals=False))
    try:
        yield worker
    finally:
        app.stop()
        await asyncio.wait_for(worker, 20)


class Gauge:
    """In-flight handler count and its peak; thread-safe."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1
