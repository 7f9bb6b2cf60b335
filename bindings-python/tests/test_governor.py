# SPDX-License-Identifier: Apache-2.0
"""choria's governor from Python: go-choria's own test sequence (unknown governor, settings,
subject update, no last-active time, eviction returning the holder, a second eviction failing),
200 campaigns on a limit-20 governor never holding more than 20 slots, ``slot()`` releasing
on every outcome, and routes governed by name or by ``Governor`` running at most its limit.
Also choria's lifecycle events (read with a bare NATS protocol client) and routes governed per
key, the key read from the payload at a JSON pointer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

import pytest

import jetjobs

from conftest import Gauge, MakeApp, running, wait_final


async def test_governors_follow_choria_semantics(make_app: MakeApp) -> None:
    app = make_app()
    try:
        with pytest.raises(jetjobs.GovernorNotFound):
            await app.governor_manager("TEST")
        manager = await app.governor_manager("TEST", 100, max_age=timedelta(minutes=2))
        assert (manager.name, manager.limit, manager.max_age) == (
            "TEST",
            100,
            timedelta(minutes=2),
        )
        assert manager.subject == "$GOVERNOR.campaign.TEST"
        manager = await app.governor_manager(
            "TEST", 100, max_age=timedelta(minutes=2), subject="$BOB"
        )
        assert manager.subject == "$BOB"
        assert (await app.governor_manager("TEST")).subject == "$BOB"
        assert await manager.last_active() is None

        governor = await app.governor("TEST", subject="$BOB")
        lease = await governor.start("testing.eviction")
        assert isinstance(lease, jetjobs.Lease)
        assert await manager.active() == 1
        [(seq, holder, taken_at)] = await manager.leases()
        assert (seq, holder) == (lease.seq, "testing.eviction")
        assert abs(datetime.now(timezone.utc) - taken_at) < timedelta(seconds=10)
        assert await manager.evict(lease.seq) == "testing.eviction"
        with pytest.raises(jetjobs.LeaseNotFound):
            await manager.evict(lease.seq)
        with pytest.raises(jetjobs.LeaseNotFound):
            await lease.release()
        last = await manager.last_active()
        assert last is not None and abs(datetime.now(timezone.utc) - last) < timedelta(seconds=10)

        await manager.set_limit(5)
        # Lowered below the server's default 2 minute duplicate window, which the update resets.
        await manager.set_max_age(timedelta(seconds=30))
        await manager.set_subject(jetjobs.GovernorManager.collective_subject("choria", "TEST"))
        again = await app.governor_manager("TEST")
        assert (again.limit, again.max_age, again.subject) == (
            5,
            timedelta(seconds=30),
            "choria.governor.TEST",
        )
        assert await app.governors("choria") == ["TEST"]
        await manager.delete()
        assert await app.governors("choria") == []
    finally:
        await app.close()


async def test_two_hundred_campaigns_never_exceed_the_limit(make_app: MakeApp) -> None:
    app = make_app()
    try:
        manager = await app.governor_manager("CAP", 20)
        governor = await app.governor("CAP", interval=0.01)
        gauge = Gauge()

        async def campaign(i: int) -> None:
            async with governor.slot(f"py-{i}", max_wait=60):
                gauge.enter()
                await asyncio.sleep(0.05)
                gauge.leave()

        await asyncio.gather(*(campaign(i) for i in range(200)))
        assert 1 < gauge.peak <= 20, gauge.peak
        assert await manager.active() == 0
    finally:
        await app.close()


async def test_a_slot_is_released_when_its_block_raises_and_waits_time_out(
    make_app: MakeApp,
) -> None:
    app = make_app()
    try:
        manager = await app.governor_manager("ONE", 1)
        governor = await app.governor("ONE", interval=0.02, backoff=jetjobs.RetryPolicy.five_sec())
        with pytest.raises(RuntimeError, match="boom"):
            async with governor.slot("raiser") as lease:
                assert lease.seq > 0
                assert await manager.active() == 1
                raise RuntimeError("boom")
        assert await manager.active() == 0

        held = await governor.start("holder")
        assert await governor.try_start("other") is None
        with pytest.raises(jetjobs.Timeout):
            async with governor.slot("waiter", max_wait=0.2):
                pytest.fail("the governor is full")
        cancel = jetjobs.CancellationToken()
        cancel.cancel()
        with pytest.raises(jetjobs.Timeout):
            await governor.start("cancelled", cancel=cancel)
        await held.release()
        await held.release()  # a second release does nothing
        async with governor.slot("after") as lease:
            assert [h for _, h, _ in await manager.leases()] == ["after"]
        assert await manager.active() == 0
    finally:
        await app.close()


async def test_per_period_leases_stay_until_max_age(make_app: MakeApp) -> None:
    app = make_app()
    try:
        await app.governor_manager("CRON", 1, max_age=timedelta(seconds=1))
        governor = await app.governor("CRON", without_leaving=True)
        first = await governor.try_start("a")
        assert first is not None
        await first.release()  # kept for the period
        assert await governor.try_start("b") is None
        lease = await governor.start("b", max_wait=10)
        assert lease.seq > first.seq
    finally:
        await app.close()


async def test_a_governed_route_runs_at_most_the_governor_limit(make_app: MakeApp) -> None:
    app = make_app("GOVERNED", concurrency=10)
    governed, free = Gauge(), Gauge()

    @app.task("db:migrate", governor="DB")
    async def migrate(task: jetjobs.Task) -> None:
        governed.enter()
        await asyncio.sleep(0.1)
        governed.leave()

    @app.task("free")
    async def work(task: jetjobs.Task) -> None:
        free.enter()
        await asyncio.sleep(0.1)
        free.leave()

    try:
        manager = await app.governor_manager("DB", 2)
        ids = [(await app.enqueue("db:migrate", i)).id for i in range(8)]
        ids += [(await app.enqueue("free", i)).id for i in range(8)]
        async with running(app):
            tasks = await wait_final(app, ids)
        assert {(t.state, t.tries) for t in tasks} == {("complete", 1)}
        assert governed.peak == 2, governed.peak
        assert free.peak > 2, free.peak
        assert await manager.active() == 0  # every slot given back when its handler ended
    finally:
        await app.close()


async def test_a_route_takes_a_governor_object_with_its_own_subject(make_app: MakeApp) -> None:
    app = make_app("GOVERNEDOBJ", concurrency=10)
    gauge = Gauge()
    try:
        manager = await app.governor_manager("ONE", 1, subject="ops.governor.ONE")
        governor = await app.governor("ONE", subject="ops.governor.ONE", interval=0.02)

        def sync_handler(task: jetjobs.Task) -> None:
            gauge.enter()
            time.sleep(0.05)
            gauge.leave()

        app.handle("one", sync_handler, governor=governor)
        with pytest.raises(TypeError, match="must be a name or a Governor"):
            app.handle("other", sync_handler, governor=1)  # type: ignore[arg-type]
        ids = [(await app.enqueue("one", i)).id for i in range(4)]
        async with running(app):
            tasks = await wait_final(app, ids)
        assert {(t.state, t.tries) for t in tasks} == {("complete", 1)}
        assert gauge.peak == 1
        assert await manager.active() == 0
    finally:
        await app.close()


@asynccontextmanager
async def subscribed(url: str, subject: str) -> AsyncIterator[asyncio.Queue[tuple[str, Any]]]:
    """Messages on ``subject`` as ``(subject, decoded JSON)``, read with a bare NATS client."""
    parsed = urlparse(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    async def read() -> None:
        while line := await reader.readline():
            if line.startswith(b"MSG "):
                parts = line.split()
                body = await reader.readexactly(int(parts[-1]) + 2)
                received.put_nowait((parts[1].decode(), json.loads(body[:-2])))
            elif line.startswith(b"PING"):
                writer.write(b"PONG\r\n")

    await asyncio.wait_for(reader.readline(), 10)  # INFO
    writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    writer.write(b"SUB %s 1\r\nPING\r\n" % subject.encode())
    await writer.drain()
    while not (await asyncio.wait_for(reader.readline(), 10)).startswith(b"PONG"):
        pass  # subscribed once the server answers the PING
    reading = asyncio.ensure_future(read())
    try:
        yield received
    finally:
        reading.cancel()
        writer.close()
        await writer.wait_closed()


async def test_lifecycle_events_are_published_as_choria_does(
    make_app: MakeApp, nats_url: str
) -> None:
    app = make_app()
    try:
        async with subscribed(nats_url, "choria.lifecycle.event.governor.>") as events:
            manager = await app.governor_manager("LIFE", 1, lifecycle_component="CLI")
            governor = await app.governor("LIFE", interval=0.02, lifecycle_component="py")
            async with governor.slot("holder-1") as first:
                pass
            held = await governor.start("holder-2")
            waiter = await app.governor(
                "LIFE", lifecycle_component="py", lifecycle_identity="host-1"
            )
            with pytest.raises(jetjobs.Timeout):
                await waiter.start("waiter", max_wait=0.2)
            assert await manager.evict(held.seq) == "holder-2"
            with pytest.raises(jetjobs.InvalidOption):
                await app.governor("LIFE", lifecycle_component="a b")
            seen = [await asyncio.wait_for(events.get(), 10) for _ in range(5)]
        assert [
            (e["component"], e["event_type"], e["identity"], e["sequence"]) for _, e in seen
        ] == [
            ("py", "enter", "holder-1", first.seq),
            ("py", "exit", "holder-1", first.seq),
            ("py", "enter", "holder-2", held.seq),
            ("py", "timeouts", "host-1", 0),
            ("CLI", "eviction", "holder-2", held.seq),
        ]
        for subject, event in seen:
            assert subject == f"choria.lifecycle.event.governor.{event['component']}"
            assert list(event) == [
                "protocol",
                "id",
                "identity",
                "component",
                "timestamp",
                "governor",
                "sequence",
                "event_type",
            ]
            assert event["protocol"] == "io.choria.lifecycle.v1.governor"
            assert event["governor"] == "LIFE"
            assert isinstance(event["timestamp"], int)
            assert abs(time.time() - event["timestamp"]) < 60
        assert len({e["id"] for _, e in seen}) == 5
    finally:
        await app.close()


async def test_a_route_governed_per_key_runs_one_at_a_time_per_tenant(make_app: MakeApp) -> None:
    app = make_app("TENANTS", concurrency=10)
    tenants = {"a": Gauge(), "b": Gauge(), "7": Gauge()}
    total = Gauge()

    @app.task("sync", governor="TENANT", governor_key="/tenant")
    async def sync(task: jetjobs.Task) -> None:
        gauge = tenants[str(task.payload["tenant"])]
        gauge.enter()
        total.enter()
        await asyncio.sleep(0.1)
        total.leave()
        gauge.leave()

    def nothing(task: jetjobs.Task) -> None: ...

    with pytest.raises(TypeError, match="needs governor="):
        app.handle("other", nothing, governor_key="/tenant")
    with pytest.raises(jetjobs.InvalidOption, match="JSON pointer"):
        app.handle("other", nothing, governor="TENANT", governor_key="tenant")
    try:
        manager = await app.governor_manager("TENANT", 1, per_key=True)
        ids = []
        for _ in range(4):
            for tenant in ("a", "b", 7):
                ids.append((await app.enqueue("sync", {"tenant": tenant})).id)
        missing = (await app.enqueue("sync", {"other": "a"})).id
        async with running(app):
            tasks = await wait_final(app, ids)
            [refused] = await wait_final(app, [missing])
        assert {(t.state, t.tries) for t in tasks} == {("complete", 1)}
        assert {k: g.peak for k, g in tenants.items()} == {"a": 1, "b": 1, "7": 1}
        assert total.peak > 1, "tenants run side by side"
        assert refused.state == "terminated"
        assert 'governor TENANT: the payload has no key at "/tenant"' in refused.last_err
        assert await manager.active() == 0
    finally:
        await app.close()
