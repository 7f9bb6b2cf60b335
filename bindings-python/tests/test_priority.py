# SPDX-License-Identifier: Apache-2.0
"""Priority between queues: with a backlog in HIGH and LOW and one handler slot, a strict worker
starts HIGH's tasks first and a weighted one starts them in the configured ratio."""

from __future__ import annotations

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final

BACKLOG = 40


async def _start_order(make_app: MakeApp, priority: jetjobs.Priority) -> list[str]:
    """Fills HIGH and LOW, runs one worker with one slot until every task is final, and returns
    the queue of each task in the order the handlers started."""
    app = make_app("HIGH", concurrency=1, priority=priority)
    order: list[str] = []
    ids: list[str] = []
    for name in ("HIGH", "LOW"):

        async def work(task: jetjobs.Task, name: str = name) -> None:
            order.append(name)

        app.handle("work", work, queue=name)
        stored = await app.enqueue_many([("work", i) for i in range(BACKLOG)], queue=name)
        ids += [t.id for t in stored if isinstance(t, jetjobs.Task)]
    assert len(ids) == 2 * BACKLOG
    async with running(app):
        done = await wait_final(app, ids, timeout=60)
    assert {t.state for t in done} == {"complete"}
    assert len(order) == 2 * BACKLOG, "every task ran once"
    return order


async def test_strict_priority_drains_the_high_queue_first(make_app: MakeApp) -> None:
    order = await _start_order(make_app, jetjobs.Priority.strict(["HIGH", "LOW"]))
    # The very first slot goes to whichever queue's item arrives first; after that HIGH goes
    # ahead of LOW until its backlog is gone.
    last_high = max(i for i, q in enumerate(order) if q == "HIGH")
    assert order[:last_high].count("LOW") <= 1, order


async def test_weighted_priority_starts_tasks_in_the_configured_ratio(make_app: MakeApp) -> None:
    order = await _start_order(make_app, jetjobs.Priority.weighted({"HIGH": 3, "LOW": 1}))
    # While both have a backlog (the first 40 starts hold at most 30 HIGH), 3 of 4 are HIGH.
    assert 29 <= order[:BACKLOG].count("HIGH") <= 31, order


async def test_a_priority_naming_a_queue_the_worker_does_not_consume_is_refused(
    make_app: MakeApp,
) -> None:
    app = make_app("HIGH", priority=jetjobs.Priority.strict(["HIGH", "ELSEWHERE"]))

    @app.task("work")
    async def work(task: jetjobs.Task) -> None:
        pass

    with pytest.raises(jetjobs.InvalidOption, match="ELSEWHERE"):
        await app.run(handle_signals=False)

    # The native worker refuses it the same way, and so a weight of 0.
    client = await app.client()
    worker = jetjobs.Worker(client, priority=jetjobs.Priority.weighted({"HIGH": 0}))
    worker.consume(await app.queue(), jetjobs.Mux())
    with pytest.raises(jetjobs.InvalidOption, match="weight 0"):
        await worker.run(jetjobs.CancellationToken())
    await app.close()


def test_priority_repr() -> None:
    assert repr(jetjobs.Priority.strict(["HIGH", "LOW"])) == 'Priority.strict(["HIGH", "LOW"])'
    assert repr(jetjobs.Priority.weighted({"EMAIL": 3, "REPORTS": 1})) == (
        'Priority.weighted({"EMAIL": 3, "REPORTS": 1})'
    )
    with pytest.raises(TypeError):
        jetjobs.Priority.strict("HIGH")
    with pytest.raises(OverflowError):
        jetjobs.Priority.weighted({"HIGH": -1})
