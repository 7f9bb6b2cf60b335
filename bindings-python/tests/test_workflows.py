# SPDX-License-Identifier: Apache-2.0
"""Workflows: a chain passes each result on; a chord's callback gets every group result."""

from __future__ import annotations

import jetjobs

from conftest import MakeApp, running, wait_final


async def test_chain_and_chord_pass_results_on(make_app: MakeApp) -> None:
    app = make_app("PYFLOWS")

    @app.task("add")
    async def add(task: jetjobs.Task) -> int:
        parents = [r.payload for r in task.dependency_results.values() if r is not None]
        return int(task.payload) + sum(int(p) for p in parents)

    @app.task("fail")
    def fail(task: jetjobs.Task) -> None:
        raise jetjobs.TerminateTask("broken step")

    chain = await app.enqueue_chain([("add", n) for n in range(1, 6)])
    group, callback = await app.enqueue_chord([("add", n) for n in range(1, 21)], ("add", 0))
    broken = await app.enqueue_chain([("add", 1), ("fail", 2), ("add", 3)])
    async with running(app):
        (last,) = await wait_final(app, [chain[-1].id], timeout=60)
        (chord,) = await wait_final(app, [callback.id], timeout=60)
        states = [t.state for t in await wait_final(app, [t.id for t in broken], timeout=60)]
    assert last.result is not None and last.result.payload == 15
    assert len(group) == 20
    assert chord.result is not None and chord.result.payload == 210
    assert states == ["complete", "terminated", "unreachable"]
