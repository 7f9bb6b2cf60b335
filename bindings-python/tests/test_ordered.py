# SPDX-License-Identifier: Apache-2.0
"""Ordered queues: tasks sharing an ``order_key`` run one at a time in enqueue order, a failing
task holds back the rest of its key (visibly, in ``waiting_for``, without using tries) while other
keys and unkeyed tasks run, and keyed tasks are refused on a queue without ordering."""

from __future__ import annotations

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final, wait_for


async def test_each_key_runs_in_enqueue_order_through_retries(make_app: MakeApp) -> None:
    app = make_app(jetjobs.Queue("ORDERED", ordered=True), concurrency=4)
    events: list[tuple[str, str]] = []  # ("start" | "ok" | "retry", name)
    keys: dict[str, str | None] = {}  # the order key each handler saw

    @app.task("step")
    async def step(task: jetjobs.Task) -> str:
        name = task.payload
        keys[name] = task.order_key
        events.append(("start", name))
        if name == "a1" and task.tries <= 2:
            events.append(("retry", name))
            raise ConnectionError(f"try {task.tries} of a1 fails")
        events.append(("ok", name))
        return str(name)

    a1 = await app.enqueue("step", "a1", order_key="A")
    assert a1.order_key == "A" and a1.waiting_for is None
    rest = await app.enqueue_many(
        [
            jetjobs.Task("step", "a2", order_key="A"),
            jetjobs.Task("step", "b1", order_key="B"),
            jetjobs.Task("step", "a3", order_key="A"),
            ("step", "free"),
        ]
    )
    stored = [a1, *(t for t in rest if isinstance(t, jetjobs.Task))]
    assert len(stored) == 5, rest
    assert [t.order_key for t in stored] == ["A", "A", "B", "A", None]

    async with running(app):
        done = await wait_final(app, [t.id for t in stored])
    assert [t.state for t in done] == ["complete"] * 5, [(t.state, t.last_err) for t in done]
    assert done[0].tries == 3
    assert [t.tries for t in done[1:]] == [1, 1, 1, 1], "waiting costs no try"
    assert all(t.waiting_for is None for t in done)

    succeeded = [name for what, name in events if what == "ok"]
    assert [n for n in succeeded if n.startswith("a")] == ["a1", "a2", "a3"], events
    assert {"b1", "free"} <= set(succeeded)
    a1_ok = events.index(("ok", "a1"))
    assert events.index(("start", "a2")) > a1_ok, events
    assert events.index(("start", "a3")) > events.index(("ok", "a2")), events
    assert events.count(("retry", "a1")) == 2
    assert keys == {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "free": None}


async def test_a_failing_task_holds_back_its_key_visibly(make_app: MakeApp) -> None:
    app = make_app(jetjobs.Queue("HELD", ordered=True), concurrency=4)
    failing = True
    ran: list[str] = []

    @app.task("step")
    async def step(task: jetjobs.Task) -> None:
        if task.payload == "a1" and failing:
            raise ConnectionError("not yet")
        ran.append(task.payload)

    # a1 keeps failing until the flag flips: it must not expire meanwhile.
    a1 = await app.enqueue("step", "a1", order_key="A", max_tries=0)
    a2 = await app.enqueue("step", "a2", order_key="A")
    b1 = await app.enqueue("step", "b1", order_key="B")
    free = await app.enqueue("step", "free")

    async with running(app):
        # B and the unkeyed task are not held back by A's failing head.
        await wait_final(app, [b1.id, free.id])

        async def a2_waiting() -> jetjobs.Task | None:
            task = await app.load_task(a2.id)
            return task if task.waiting_for is not None else None

        waiting = await wait_for("a2 to show what it waits for", a2_waiting)
        assert waiting.waiting_for == a1.id
        assert waiting.state == "new"
        assert waiting.tries == 0, "waiting is not a try"

        async def a1_retried() -> bool:
            return (await app.load_task(a1.id)).tries >= 3

        await wait_for("a1 to be retried", a1_retried)
        assert "a2" not in ran
        assert (await app.load_task(a1.id)).state == "retry"

        failing = False
        done = await wait_final(app, [a1.id, a2.id, b1.id, free.id])
    assert [t.state for t in done] == ["complete"] * 4
    assert done[1].tries == 1
    assert done[1].waiting_for is None
    assert ran.index("a1") < ran.index("a2"), ran


async def test_order_keys_need_an_ordered_queue_and_settings_read_back(
    make_app: MakeApp,
) -> None:
    assert jetjobs.Queue("Q").order_key_concurrency == 0
    assert jetjobs.Queue("Q", ordered=True).order_key_concurrency == 1
    assert jetjobs.Queue("Q", order_key_concurrency=3).order_key_concurrency == 3
    assert "order_key_concurrency=3" in repr(jetjobs.Queue("Q", order_key_concurrency=3))
    with pytest.raises(OverflowError):
        jetjobs.Queue("Q", order_key_concurrency=-1)

    app = make_app("PLAIN")
    plain = await app.queue()
    assert plain.settings.order_key_concurrency == 0
    with pytest.raises(jetjobs.InvalidOption):
        await app.enqueue("step", 1, order_key="A")
    with pytest.raises(jetjobs.InvalidOption):
        plain.enqueue_sync(jetjobs.Task("step", 1, order_key="A"))
    (refused,) = await app.enqueue_many([jetjobs.Task("step", 1, order_key="A")])
    assert isinstance(refused, jetjobs.InvalidOption)

    pairs = await app.queue(jetjobs.Queue("PAIRS", order_key_concurrency=2))
    assert pairs.settings.order_key_concurrency == 2
    client = await app.client()
    bound = await client.open_queue(jetjobs.Queue("PAIRS", bind=True))
    assert bound.settings.order_key_concurrency == 2, "read back from the server"
    # On an ordered queue an empty key, or a key with a delay, is refused too.
    with pytest.raises(jetjobs.InvalidOption):
        await app.enqueue("step", 1, queue="PAIRS", order_key="")
    with pytest.raises(jetjobs.InvalidOption):
        await app.enqueue("step", 1, queue="PAIRS", order_key="A", delay=5)
    keyed = await app.enqueue("step", 1, queue="PAIRS", order_key="A")
    loaded = await app.load_task(keyed.id)
    assert (loaded.order_key, loaded.waiting_for, loaded.state) == ("A", None, "new")
    await app.close()
