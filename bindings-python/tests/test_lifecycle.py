# SPDX-License-Identifier: Apache-2.0
"""A task's life through the Python API: enqueue, handle, result, load, retry, admin."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final, wait_for


async def test_enqueue_handle_and_load_the_result(make_app: MakeApp) -> None:
    app = make_app("LIFE")
    seen: list[jetjobs.Task] = []

    @app.task("email:send")
    async def send(task: jetjobs.Task) -> dict[str, Any]:
        seen.append(task)
        return {"sent_to": task.payload["to"], "tries": task.tries}

    deadline = datetime.now(timezone.utc) + timedelta(hours=1)
    task = await app.enqueue("email:send", {"to": "a@example.net"}, deadline=deadline, max_tries=5)
    assert task.state == jetjobs.TaskState.NEW
    assert task.queue == "LIFE"
    assert task.type == "email:send"
    assert task.max_tries == 5
    assert task.payload == {"to": "a@example.net"}
    assert task.payload_bytes == b'{"to":"a@example.net"}'
    assert task.deadline is not None and abs(task.deadline - deadline) < timedelta(milliseconds=1)
    assert task.result is None and task.tries == 0 and task.last_err == ""

    async with running(app):
        (done,) = await wait_final(app, [task.id])

    assert done.state == "complete"
    assert done.tries == 1
    assert done.result is not None
    assert done.result.payload == {"sent_to": "a@example.net", "tries": 1}
    assert done.result.completed >= done.created
    assert seen[0].id == task.id and seen[0].context is not None
    assert seen[0].state == "active"


async def test_times_keep_nanoseconds_as_text(make_app: MakeApp) -> None:
    app = make_app()
    task = await app.enqueue("t", 1, deadline="2030-01-02T03:04:05.123456789+01:00")
    loaded = await app.load_task(task.id)
    assert loaded.deadline_str == "2030-01-02T03:04:05.123456789+01:00"
    assert loaded.deadline == datetime(
        2030, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1))
    )
    assert loaded.created_str == task.created_str
    assert loaded.created_str.endswith("Z")
    assert len(loaded.created_str) > len("2030-01-02T03:04:05Z")
    assert loaded.created.tzinfo is not None
    # A timedelta deadline is relative to now.
    soon = await app.enqueue("t", 1, deadline=timedelta(minutes=5))
    assert soon.deadline is not None
    assert timedelta(minutes=4) < soon.deadline - datetime.now(timezone.utc) <= timedelta(minutes=5)
    with pytest.raises(ValueError, match="naive"):
        jetjobs.Task("t", 1, deadline=datetime(2030, 1, 1))


async def test_raw_payloads_custom_ids_and_codecs(make_app: MakeApp) -> None:
    raw = make_app("RAW")
    task = await raw.enqueue("blob", b"\x00\x01binary", id="my-id-1")
    assert task.id == "my-id-1"
    assert task.payload_bytes == b"\x00\x01binary"
    with pytest.raises(jetjobs.InvalidPayload):
        _ = task.payload

    def encode(value: Any) -> bytes:
        return ("v1:" + json.dumps(value)).encode()

    def decode(data: bytes) -> Any:
        return json.loads(data.decode().removeprefix("v1:"))

    coded = make_app("CODEC", encoder=encode, decoder=decode)
    got: list[Any] = []

    @coded.task("c")
    def handle(task: jetjobs.Task) -> Any:
        got.append(task.payload)
        return task.payload

    task = await coded.enqueue("c", {"k": [1, 2]})
    assert task.payload_bytes == b'v1:{"k": [1, 2]}'
    async with running(coded):
        (done,) = await wait_final(coded, [task.id])
    assert got == [{"k": [1, 2]}]
    assert done.result is not None and done.result.payload == {"k": [1, 2]}


async def test_sync_and_async_handlers_in_one_app(make_app: MakeApp) -> None:
    app = make_app("MIXED", concurrency=4)
    loop_thread = threading.get_ident()
    threads: dict[str, int] = {}

    @app.task("async:")
    async def on_loop(task: jetjobs.Task) -> str:
        threads[task.id] = threading.get_ident()
        await asyncio.sleep(0)
        return "async"

    @app.task("sync:")
    def in_thread(task: jetjobs.Task) -> str:
        threads[task.id] = threading.get_ident()
        return "sync"

    ids = [(await app.enqueue(t, i)).id for i, t in enumerate(["async:a", "sync:b"] * 3)]
    async with running(app):
        tasks = await wait_final(app, ids)
    for task in tasks:
        assert task.state == "complete"
        assert task.result is not None
        expected = task.type.split(":")[0]
        assert task.result.payload == expected
        assert (threads[task.id] == loop_thread) == (expected == "async")


async def test_handlers_see_the_runners_contextvars(make_app: MakeApp) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    app = make_app("CTXVARS")

    @app.task("a")
    async def a(task: jetjobs.Task) -> str:
        return var.get()

    @app.task("s")
    def s(task: jetjobs.Task) -> str:
        return var.get()

    ids = [(await app.enqueue("a")).id, (await app.enqueue("s")).id]
    var.set("from run()")
    async with running(app):
        tasks = await wait_final(app, ids)
    assert [t.result.payload for t in tasks if t.result] == ["from run()", "from run()"]


async def test_mark_in_progress_and_context(make_app: MakeApp) -> None:
    app = make_app("PROGRESS")
    remaining: list[timedelta] = []

    @app.task("a")
    async def a(task: jetjobs.Task) -> bool:
        assert task.context is not None
        await task.context.mark_in_progress()
        remaining.append(task.context.remaining)
        return task.context.is_cancelled

    @app.task("s")
    def s(task: jetjobs.Task) -> bool:
        assert task.context is not None
        task.context.mark_in_progress_sync()
        remaining.append(task.context.remaining)
        return task.context.is_cancelled

    ids = [(await app.enqueue("a")).id, (await app.enqueue("s")).id]
    async with running(app):
        tasks = await wait_final(app, ids)
    assert [t.state for t in tasks] == ["complete", "complete"]
    assert [t.result.payload for t in tasks if t.result] == [False, False]
    # The queue's max run time is an hour; progress pushed the deadline a full hour ahead.
    assert all(timedelta(minutes=59) < r <= timedelta(hours=1) for r in remaining)


async def test_enqueue_sync_from_threads_and_from_a_sync_handler(make_app: MakeApp) -> None:
    app = make_app("SYNCPROD")

    @app.task("parent")
    def parent(task: jetjobs.Task) -> str:
        # A sync handler can produce follow-up work without an event loop.
        return app.enqueue_sync("child", {"from": task.id}).id

    @app.task("child")
    async def child(task: jetjobs.Task) -> Any:
        return task.payload

    ids: list[str] = []
    producer = threading.Thread(target=lambda: ids.append(app.enqueue_sync("parent", 1).id))
    producer.start()
    producer.join()
    async with running(app):
        (done,) = await wait_final(app, ids)
        assert done.result is not None
        (child_task,) = await wait_final(app, [done.result.payload])
    assert child_task.result is not None
    assert child_task.result.payload == {"from": done.id}


async def test_retry_task_runs_it_again(make_app: MakeApp) -> None:
    app = make_app("RETRYBYID")
    runs: list[int] = []

    @app.task("once")
    async def once(task: jetjobs.Task) -> int:
        runs.append(task.tries)
        return len(runs)

    task = await app.enqueue("once")
    async with running(app):
        await wait_final(app, [task.id])
        again = await app.retry_task(task.id)
        assert again.state == "retry" and again.tries == 0

        async def second_run_done() -> jetjobs.Task | None:
            t = await app.load_task(task.id)
            return t if t.state == "complete" and len(runs) == 2 else None

        done = await wait_for("the second run", second_run_done)
    assert runs == [1, 1]
    assert done.result is not None and done.result.payload == 2


async def test_task_documents_round_trip(make_app: MakeApp) -> None:
    app = make_app()
    task = await app.enqueue("doc", {"a": 1}, max_tries=3)
    parsed = jetjobs.Task.from_json(task.to_json())
    assert (parsed.id, parsed.type, parsed.payload, parsed.max_tries, parsed.created_str) == (
        task.id,
        "doc",
        {"a": 1},
        3,
        task.created_str,
    )
    assert json.loads(task.to_json())["payload"] == "eyJhIjoxfQ=="
    assert repr(task).startswith("Task(id=")


async def test_storage_admin(make_app: MakeApp) -> None:
    app = make_app("ADMIN")
    ids = [(await app.enqueue("x", i)).id for i in range(3)]
    admin = await app.admin()
    assert "ADMIN" in await admin.queue_names()
    info = await admin.queue_info("ADMIN")
    assert (info.items, info.queue.name) == (3, "ADMIN")
    assert {t.id for t in await admin.tasks()} >= set(ids)
    assert (await admin.tasks_info()).tasks >= 3
    await admin.delete_task(ids[0])
    with pytest.raises(jetjobs.TaskNotFound):
        await app.load_task(ids[0])
    await admin.purge_queue("ADMIN")
    assert (await admin.queue_info("ADMIN")).items == 0
    created = await admin.create_queue(jetjobs.Queue("OTHER", max_concurrent=7))
    assert created.max_concurrent == 7
    await admin.delete_queue("OTHER")
    with pytest.raises(jetjobs.QueueNotFound):
        await admin.queue_info("OTHER")


def test_queue_and_retry_policy_options() -> None:
    q = jetjobs.Queue(
        "EMAIL",
        max_age=timedelta(days=1),
        max_entries=100,
        discard_old=True,
        max_tries=10,
        max_run_time=30.5,
        max_concurrent=20,
    )
    assert (q.name, q.max_entries, q.discard_old, q.max_tries, q.max_concurrent) == (
        "EMAIL",
        100,
        True,
        10,
        20,
    )
    assert q.max_age == timedelta(days=1) and q.max_run_time == timedelta(seconds=30.5)
    assert q.stream_name == "CHORIA_AJ_Q_EMAIL" and not q.bind
    assert jetjobs.Queue.default_queue().name == jetjobs.DEFAULT_QUEUE_NAME
    assert sorted(jetjobs.RETRY_POLICY_NAMES) == ["10m", "1h", "1m", "default"]
    one_minute = jetjobs.RetryPolicy.named("1m")
    assert timedelta(seconds=0.5) <= one_minute.delay(0) <= timedelta(seconds=1.5)
    fixed = jetjobs.RetryPolicy.intervals([timedelta(seconds=2)], 0.0)
    assert timedelta(0) < fixed.delay(5) <= timedelta(seconds=2)
    backoff = jetjobs.RetryPolicy.exponential(0.1, 1.0)
    # `n` is the delivery count: the first retry (after delivery 1) waits the initial delay.
    assert [backoff.delay(n) for n in range(1, 6)] == [
        timedelta(milliseconds=ms) for ms in (100, 200, 400, 800, 1000)
    ]
    linear = jetjobs.RetryPolicy.linear(10, timedelta(seconds=1), timedelta(seconds=11), 0.0)
    assert linear.delay(3) <= timedelta(seconds=4)
    with pytest.raises(ValueError, match="finite and not negative"):
        jetjobs.Queue("Q", max_run_time=-1)
