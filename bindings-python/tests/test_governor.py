# SPDX-License-Identifier: Apache-2.0
"""choria's governor from Python: go-choria's own test sequence (unknown governor, settings,
subject update, no last-active time, eviction returning the holder, a second eviction failing),
200 campaigns on a limit-20 governor never holding more than 20 slots, ``slot()`` releasing
on every outcome, and routes governed by name or by ``Governor`` running at most its limit."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

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
