# SPDX-License-Identifier: Apache-2.0
"""`make bench-python`: no-op Python handlers in the engine, as ratios of the Rust run's figures.

Reads what `make bench` wrote to target/bench.json (`rust_drain_rate`, `rust_start_p50_ms`,
`tasks`), then on a fresh dev server measures, like bench/src/main.rs does for Rust: the rate of
draining a backlog of `tasks` tasks (enqueued first, timed until the queue is empty) and the p50
from calling enqueue to the handler starting, one task at a time. Once for an async handler, once
for a sync one. Environment: BENCH_JSON (input path), BENCH_TASKS, BENCH_CONCURRENCY (default 256).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jetjobs

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "BENCH"


def app_for(url: str, concurrency: int) -> jetjobs.App:
    return jetjobs.App(
        url,
        queue=jetjobs.Queue(QUEUE, max_concurrent=10_000),
        concurrency=concurrency,
    )


async def enqueue_all(app: jetjobs.App, n: int, in_flight: int = 256) -> float:
    client = await app.client()
    started = time.perf_counter()
    next_i = 0

    async def producer() -> None:
        nonlocal next_i
        while next_i < n:
            i = next_i
            next_i += 1
            await client.enqueue(jetjobs.Task("noop", i))

    await asyncio.gather(*(producer() for _ in range(in_flight)))
    return n / (time.perf_counter() - started)


async def wait_empty(app: jetjobs.App) -> None:
    admin = await app.admin()
    while (await admin.queue_info(QUEUE)).items > 0:
        await asyncio.sleep(0.02)


async def drain(url: str, n: int, concurrency: int, sync: bool) -> tuple[float, float]:
    """Backlog drain rate (tasks/s) and the enqueue rate that filled it."""
    app = app_for(url, concurrency)
    if sync:

        @app.task("noop")
        def noop_sync(task: jetjobs.Task) -> None:
            return None

    else:

        @app.task("noop")
        async def noop_async(task: jetjobs.Task) -> None:
            return None

    enqueue_rate = await enqueue_all(app, n)
    started = time.perf_counter()
    worker = asyncio.ensure_future(app.run(handle_signals=False))
    await wait_empty(app)
    elapsed = time.perf_counter() - started
    app.stop()
    await worker
    return n / elapsed, enqueue_rate


async def start_latency(url: str, n: int, sync: bool) -> float:
    """p50 from calling enqueue to the handler starting, in ms, one task at a time."""
    app = app_for(url, 256)
    loop = asyncio.get_running_loop()
    started: asyncio.Queue[float] = asyncio.Queue()

    if sync:

        @app.task("probe")
        def probe_sync(task: jetjobs.Task) -> None:
            loop.call_soon_threadsafe(started.put_nowait, time.perf_counter())

    else:

        @app.task("probe")
        async def probe_async(task: jetjobs.Task) -> None:
            started.put_nowait(time.perf_counter())

    worker = asyncio.ensure_future(app.run(handle_signals=False))
    client = await app.client()
    latencies = []
    for i in range(n):
        sent = time.perf_counter()
        await client.enqueue(jetjobs.Task("probe", i))
        latencies.append(await asyncio.wait_for(started.get(), 10) - sent)
    await wait_empty(app)
    app.stop()
    await worker
    return statistics.median(latencies) * 1e3


async def main() -> int:
    path = Path(os.environ.get("BENCH_JSON", ROOT / "target" / "bench.json"))
    try:
        rust: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        print(f"{path} not found: run `make bench` (it runs the Rust bench first)", file=sys.stderr)
        return 1
    n = int(os.environ.get("BENCH_TASKS", rust["tasks"]))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", 256))
    print(
        f"jetjobs Python bench: {n} tasks, worker concurrency {concurrency}, "
        f"Python {sys.version.split()[0]}, {threading.active_count()} thread(s) at start\n"
    )
    figures: dict[str, float] = {}
    for kind in ("async", "sync"):
        # A fresh server per handler kind, as the Rust run had one for itself.
        async with jetjobs.dev_server() as url:
            rate, enqueue_rate = await drain(url, n, concurrency, sync=kind == "sync")
            p50 = await start_latency(url, 500, sync=kind == "sync")
        figures[f"{kind}_drain_rate"] = rate
        figures[f"{kind}_start_p50_ms"] = p50
        figures[f"{kind}_enqueue_rate"] = enqueue_rate

    rust_rate, rust_p50 = rust["rust_drain_rate"], rust["rust_start_p50_ms"]
    print(f"{'':34}{'tasks/s':>10}{'x Rust':>9}{'p50 ms':>10}{'x Rust':>9}")
    label = "Rust no-op handler (make bench)"
    print(f"    {label:30}{rust_rate:>10.0f}{1:>9.2f}{rust_p50:>10.2f}{1:>9.2f}")
    for kind in ("async", "sync"):
        rate, p50 = figures[f"{kind}_drain_rate"], figures[f"{kind}_start_p50_ms"]
        label = f"Python {kind} no-op handler"
        print(
            f"    {label:30}{rate:>10.0f}{rate / rust_rate:>9.2f}{p50:>10.2f}{p50 / rust_p50:>9.2f}"
        )
    print(
        f"\n    (Python enqueue, 256 in flight: {figures['async_enqueue_rate']:.0f} tasks/s; "
        f"drain = backlog of {n} timed until the queue is empty)"
    )
    target = 0.7
    verdict = "meets" if figures["async_drain_rate"] >= target * rust_rate else "MISSES"
    print(
        f"    async drain / Rust drain = {figures['async_drain_rate'] / rust_rate:.2f}: "
        f"{verdict} the {target}x target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
