# SPDX-License-Identifier: Apache-2.0
"""Dead letters: list with filters, replay with progress, purge."""

from __future__ import annotations

import jetjobs

from conftest import MakeApp, running, wait_final


async def test_dead_letters_listed_replayed_and_purged(make_app: MakeApp) -> None:
    app = make_app("PYDLQ")
    healthy: list[bool] = []

    @app.task("email")
    async def email(task: jetjobs.Task) -> str:
        if not healthy:
            raise jetjobs.TerminateTask("smtp down")
        return "sent"

    ids = [(await app.enqueue("email", n)).id for n in range(3)]
    ids.append((await app.enqueue("report", 0, depends_on=["missing-parent"])).id)
    async with running(app):
        await wait_final(app, ids)
        assert len(await app.dead_letters()) == 4
        emails = await app.dead_letters(task_type="email", error_contains="smtp")
        assert sorted(t.id for t in emails) == sorted(ids[:3])
        assert await app.dead_letters(older_than=3600) == []

        healthy.append(True)
        seen: list[tuple[int, int]] = []
        replayed = await app.replay(
            emails, progress=lambda done, total: seen.append((done, total)), batch=2
        )
        assert all(isinstance(t, jetjobs.Task) for t in replayed)
        assert seen == [(2, 3), (3, 3)]
        done = await wait_final(app, [t.id for t in emails])
        assert {t.state for t in done} == {"complete"}
    assert await app.purge_dead_letters(queue="PYDLQ", states=["unreachable"]) == 1
    assert await app.dead_letters() == []
