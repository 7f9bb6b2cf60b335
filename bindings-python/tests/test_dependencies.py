# SPDX-License-Identifier: Apache-2.0
"""Dependencies are the engine's: a child waits for its parents and gets their results."""

from __future__ import annotations

from typing import Any

import jetjobs

from conftest import MakeApp, running, wait_final


async def test_child_runs_after_parents_with_their_results(make_app: MakeApp) -> None:
    app = make_app("DEPS")
    order: list[str] = []

    @app.task("parent")
    async def parent(task: jetjobs.Task) -> dict[str, Any]:
        order.append(task.id)
        return {"value": task.payload}

    @app.task("child")
    def child(task: jetjobs.Task) -> dict[str, Any]:
        order.append(task.id)
        return {
            parent_id: result.payload if result else None
            for parent_id, result in task.dependency_results.items()
        }

    a = await app.enqueue("parent", 1)
    b = await app.enqueue("parent", 2)
    kid = await app.enqueue("child", depends_on=[a, b.id], load_dependency_results=True)
    assert kid.state == "blocked" and kid.dependencies == [a.id, b.id] and kid.load_dependencies

    async with running(app):
        done_a, done_b, done_kid = await wait_final(app, [a.id, b.id, kid.id])
    assert [t.state for t in (done_a, done_b, done_kid)] == ["complete"] * 3
    assert order[-1] == kid.id
    assert done_kid.result is not None
    assert done_kid.result.payload == {a.id: {"value": 1}, b.id: {"value": 2}}


async def test_failed_parent_makes_the_child_unreachable(make_app: MakeApp) -> None:
    app = make_app("DEPFAIL")

    @app.task("parent")
    async def parent(task: jetjobs.Task) -> None:
        raise jetjobs.TerminateTask("no")

    @app.task("child")
    async def child(task: jetjobs.Task) -> None:
        raise AssertionError("must not run")

    p = await app.enqueue("parent")
    kid = await app.enqueue("child", depends_on=[p])
    async with running(app):
        _, done_kid = await wait_final(app, [p.id, kid.id])
    assert (done_kid.state, done_kid.last_err) == (
        "unreachable",
        f"task dependencies failed: dependency {p.id} is terminated",
    )
