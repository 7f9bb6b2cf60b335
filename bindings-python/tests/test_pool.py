# SPDX-License-Identifier: Apache-2.0
"""The keyed job pool from Python: Python handlers on two nodes, dispatch to the worker each key
hashes to, the pool's errors, payloads and notifications, a client-only node, a closing node's
jobs moving over, a shutdown stopping every job, a pool-wide ticker and a planned schedule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import jetjobs

from conftest import wait_for

OPTIONS: dict[str, Any] = {
    "worker_ttl": 2,
    "grace": 0.5,
    "dispatch_timeout": 10,
    "shutdown_timeout": timedelta(seconds=10),
}


async def until(what: str, condition: Callable[[], object], timeout: float = 10.0) -> None:
    async def check() -> bool:
        return bool(condition())

    await wait_for(what, check, timeout)


class Jobs:
    """A job handler recording what runs here; refuses the keys in ``refuse`` once."""

    def __init__(self) -> None:
        self.running: dict[str, jetjobs.PoolJob] = {}
        self.notes: list[tuple[str, bytes]] = []
        self.refuse: set[str] = set()

    async def start(self, job: jetjobs.PoolJob) -> None:
        if job.key in self.refuse:
            self.refuse.discard(job.key)
            raise ValueError(f"refused {job.key}")
        self.running[job.key] = job

    async def stop(self, key: str) -> None:
        self.running.pop(key, None)

    async def notify(self, key: str, payload: bytes) -> None:
        self.notes.append((key, payload))


@asynccontextmanager
async def connected(nats_url: str) -> AsyncIterator[tuple[jetjobs.App, jetjobs.Client]]:
    app = jetjobs.App(nats_url)
    client = await jetjobs.connect(nats_url)
    try:
        yield app, client
    finally:
        await app.close()
        await client.close()


def keys_covering(node: jetjobs.PoolNode, n: int, prefix: str = "k") -> list[str]:
    """``n``-plus keys such that every live worker owns at least one."""
    workers = len(node.pool_workers())
    keys: list[str] = []
    i = 0
    while len(keys) < n or {jetjobs.pool_worker_index(k, workers) for k in keys} != set(
        range(workers)
    ):
        keys.append(f"{prefix}{i}")
        i += 1
    return keys


async def test_dispatch_stop_notify_and_their_errors(nats_url: str) -> None:
    async with connected(nats_url) as (app, client):
        a = await jetjobs.PoolNode.join(app, "api", **OPTIONS)
        b = await jetjobs.PoolNode.join(client, "api", **OPTIONS)
        assert a.pool == "api" and a.id != b.id
        with pytest.raises(jetjobs.NoWorkers):
            await a.dispatch_job("k", b"")

        ja, jb = Jobs(), Jobs()
        wa = await a.add_worker(ja)
        wb = await b.add_worker(jb)
        await until("both workers seen", lambda: len(a.pool_workers()) == 2)
        assert len(a.nodes()) == 2
        assert [w.id for w in a.workers()] == [wa.id] and [w.id for w in b.workers()] == [wb.id]
        assert (wa.node, wb.node) == (a.id, b.id)
        assert abs(datetime.now(timezone.utc) - wa.created_at) < timedelta(seconds=30)

        keys = keys_covering(a, 12)
        for key in keys:
            await a.dispatch_job(key, f"payload {key}".encode())
        ring = [w.id for w in a.pool_workers()]
        owners = a.job_owners()
        for key in keys:
            assert owners[key] == ring[jetjobs.pool_worker_index(key, len(ring))], key
        assert sorted([*ja.running, *jb.running]) == sorted(keys), "every job runs once"
        assert a.job_keys() == sorted(keys)
        job = {**ja.running, **jb.running}[keys[3]]
        assert (job.key, job.payload, job.node) == (keys[3], f"payload {keys[3]}".encode(), a.id)
        assert job.generation >= 1 and job.worker == owners[keys[3]]
        assert abs(datetime.now(timezone.utc) - job.created_at) < timedelta(seconds=30)

        with pytest.raises(jetjobs.JobExists):
            await b.dispatch_job(keys[3], b"again")
        # A start handler raising refuses the job; nothing is kept, so it can be dispatched again.
        ja.refuse.add("bad-1")
        jb.refuse.add("bad-1")
        with pytest.raises(jetjobs.JobStartFailed, match="ValueError: refused bad-1"):
            await a.dispatch_job("bad-1", b"x")
        assert await a.job_payload("bad-1") is None
        await a.dispatch_job("bad-1", b"x")
        assert "bad-1" in {**ja.running, **jb.running}

        assert await a.job_payload(keys[0]) == f"payload {keys[0]}".encode()
        await b.dispatch_job("empty")
        assert await b.job_payload("empty") == b""
        assert await b.job_payload("nope") is None

        await b.notify_worker(keys[5], b"hello")
        assert [*ja.notes, *jb.notes] == [(keys[5], b"hello")]
        with pytest.raises(jetjobs.JobNotFound):
            await a.notify_worker("nope", b"")

        await b.stop_job(keys[7])
        assert keys[7] not in {**ja.running, **jb.running}
        assert await a.job_payload(keys[7]) is None
        with pytest.raises(jetjobs.JobNotFound):
            await a.stop_job(keys[7])
        with pytest.raises(jetjobs.JobNotFound):
            await a.stop_job("never-dispatched")
        await a.dispatch_job(keys[7])

        client_only = await jetjobs.PoolNode.join(client, "api", client_only=True, **OPTIONS)
        with pytest.raises(jetjobs.InvalidOption):
            await client_only.add_worker(Jobs())
        await client_only.dispatch_job("from-client")
        await until("three nodes", lambda: len(a.nodes()) == 3)
        assert len(a.pool_workers()) == 2

        with pytest.raises(jetjobs.InvalidOption):
            await jetjobs.PoolNode.join(client, "a.b")
        with pytest.raises(jetjobs.InvalidOption):
            await jetjobs.PoolNode.join(client, "api", worker_ttl=1.5)
        await client_only.shutdown()


async def test_a_handler_without_notify_refuses_notifications(nats_url: str) -> None:
    class Quiet:
        def __init__(self) -> None:
            self.running: set[str] = set()

        async def start(self, job: jetjobs.PoolJob) -> None:
            self.running.add(job.key)

        def stop(self, key: str) -> None:  # a sync handler method works too
            self.running.discard(key)

    async with connected(nats_url) as (app, _):
        node = await jetjobs.PoolNode.join(app, "quiet", **OPTIONS)
        quiet = Quiet()
        await node.add_worker(quiet)  # type: ignore[arg-type]
        await node.dispatch_job("q")
        with pytest.raises(jetjobs.JobStartFailed, match="no notification handler"):
            await node.notify_worker("q", b"hi")
        await node.stop_job("q")
        assert quiet.running == set()
        await node.shutdown()


async def test_close_moves_jobs_and_shutdown_stops_every_job(nats_url: str) -> None:
    async with connected(nats_url) as (app, client):
        nodes = [await jetjobs.PoolNode.join(c, "moves", **OPTIONS) for c in (app, client, app)]
        handlers = [Jobs(), Jobs(), Jobs()]
        for node, handler in zip(nodes, handlers):
            await node.add_worker(handler)
        a, b, c = nodes
        await until("three workers", lambda: len(a.pool_workers()) == 3)
        keys = keys_covering(a, 9)
        for key in keys:
            await a.dispatch_job(key)
        assert all(h.running for h in handlers), "every worker runs a job"

        await c.close()
        assert c.is_closed and not c.is_shutdown
        with pytest.raises(jetjobs.Closed):
            await c.dispatch_job("late")
        await until(
            "c's jobs on a and b",
            lambda: sorted([*handlers[0].running, *handlers[1].running]) == sorted(keys),
        )
        assert handlers[2].running == {}

        await a.shutdown()
        assert handlers[0].running == {} and handlers[1].running == {}, "every job stopped"
        assert a.is_shutdown
        await until("b sees the shutdown", lambda: b.is_shutdown and b.is_closed)


async def test_a_ticker_ticks_on_one_node_per_period(nats_url: str) -> None:
    async with connected(nats_url) as (app, client):
        a = await jetjobs.PoolNode.join(app, "tick", **OPTIONS)
        b = await jetjobs.PoolNode.join(client, "tick", **OPTIONS)
        period = 0.3
        ta = await a.new_ticker("t", period)
        tb = await b.new_ticker("t", timedelta(seconds=period))
        ticks: list[tuple[str, float]] = []
        ended: list[str] = []

        async def by_iteration() -> None:
            async for at in ta:
                assert isinstance(at, datetime)
                ticks.append(("a", time.monotonic()))
            ended.append("a")

        async def by_next() -> None:
            while (at := await tb.next()) is not None:
                assert at.tzinfo is not None
                ticks.append(("b", time.monotonic()))
            ended.append("b")

        readers = [asyncio.ensure_future(by_iteration()), asyncio.ensure_future(by_next())]
        await until("6 ticks", lambda: len(ticks) >= 6)
        await ta.stop()
        await until("both tickers ended", lambda: len(ended) == 2)
        await asyncio.gather(*readers)
        times = sorted(t for _, t in ticks)
        closest = min(b - a for a, b in zip(times, times[1:]))
        assert closest > period / 2, f"two ticks {closest:.3f} s apart: {ticks}"

        with pytest.raises(jetjobs.InvalidOption):
            await a.new_ticker("bad name", period)
        # close() ends this node's share only.
        tc = await a.new_ticker("u", period)
        tc.close()
        assert await tc.next() is None
        await a.shutdown()


async def test_a_schedule_reconciles_its_plans_until_one_is_none(nats_url: str) -> None:
    async with connected(nats_url) as (app, _):
        node = await jetjobs.PoolNode.join(app, "sched", **OPTIONS)
        jobs = Jobs()
        await node.add_worker(jobs)
        steps: list[jetjobs.JobPlan | None] = [
            jetjobs.JobPlan(start=[("one", b"1"), ("two", b"2")]),
            jetjobs.JobPlan(start=[("two", b"2")], stop_all=True),
            None,
        ]
        assert steps[1] is not None and steps[1].stop_all and steps[1].start == [("two", b"2")]
        calls = 0

        def plan() -> jetjobs.JobPlan | None:
            nonlocal calls
            calls += 1
            return steps[min(calls, len(steps)) - 1]

        await node.schedule("plan", 0.3, plan)
        assert sorted(jobs.running) == ["one", "two"], "the first plan runs at once"
        assert jobs.running["one"].payload == b"1"
        await until("stop_all keeps one", lambda: sorted(jobs.running) == ["two"])
        await until("the plan returned None", lambda: calls >= 3)
        # The schedule's ticker and record are gone from the pool's bucket: nobody plans again.
        kv = await app.kv("JETJOBS_POOL_sched")
        left: list[str] = []

        async def ended() -> bool:
            left[:] = [k for k in await kv.keys() if k.startswith(("tickers.", "schedules."))]
            return not left

        await wait_for("the schedule's keys removed", ended)
        assert calls == 3
        assert sorted(jobs.running) == ["two"]

        async def broken() -> jetjobs.JobPlan | None:
            raise LookupError("no plan")

        with pytest.raises(LookupError, match="no plan"):
            await node.schedule("broken", 1, broken)
        with pytest.raises(jetjobs.InvalidOption):
            await node.schedule("wrong", 1, lambda: "not a plan")  # type: ignore[arg-type,return-value]
        await node.shutdown()
        assert jobs.running == {}
