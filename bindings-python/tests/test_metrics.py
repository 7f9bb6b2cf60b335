# SPDX-License-Identifier: Apache-2.0
"""Prometheus metrics: an App with ``prometheus_port`` runs 10 tasks (5 complete, 3 fail until
they expire, 2 terminate); its HTTP endpoint, parsed with Prometheus' own parser, has asyncjobs'
counters with exact values. The registry is process-wide (as Go's), so per-queue series are
compared whole and the rest as the change since a ``render_metrics()`` taken before."""

from __future__ import annotations

import asyncio
import os
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import jetjobs

from conftest import FAST_RETRY, MakeApp, running, wait_final

Series = tuple[str, tuple[tuple[str, str], ...]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def parse(text: str) -> dict[Series, float]:
    # Every sample by name and labels. The parser names a counter's samples `<family>_total`:
    # `choria_asyncjobs_queue_enqueue_count`'s are `choria_asyncjobs_queue_enqueue_count_total`.
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(port: int) -> dict[Series, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(response.read().decode())


async def test_an_app_serves_asyncjobs_counters_with_exact_values(make_app: MakeApp) -> None:
    queue, port = f"METRICS_PY_{os.getpid()}", free_port()
    before = parse(jetjobs.render_metrics())
    app = make_app(queue, prometheus_port=port, retry_policy=FAST_RETRY)

    @app.task("ok")
    async def ok(task: jetjobs.Task) -> str:
        return "fine"

    @app.task("fail")
    async def fail(task: jetjobs.Task) -> None:
        raise RuntimeError("not today")

    @app.task("term")
    async def term(task: jetjobs.Task) -> None:
        raise jetjobs.TerminateTask("never")

    ids = [
        (await app.enqueue(task_type, i, max_tries=2)).id
        for task_type, n in (("ok", 5), ("fail", 3), ("term", 2))
        for i in range(n)
    ]
    async with running(app):
        done = await wait_final(app, ids, timeout=60)
    assert [t.state for t in done] == ["complete"] * 5 + ["expired"] * 3 + ["terminated"] * 2
    after = await asyncio.get_running_loop().run_in_executor(None, scrape, port)
    await app.close()

    def get(name: str, **labels: str) -> float:
        return after[(name, tuple(sorted({"queue": queue, **labels}.items())))]

    assert get("choria_asyncjobs_queue_enqueue_count_total") == 10
    assert get("choria_asyncjobs_handler_error_total", type="fail") == 6  # 3 tasks x 2 tries
    assert get("choria_asyncjobs_handler_error_total", type="term") == 2
    assert ("choria_asyncjobs_handler_error_total", (("queue", queue), ("type", "ok"))) not in after
    assert get("choria_asyncjobs_handler_runtime_count", type="ok") == 5
    assert get("choria_asyncjobs_handler_runtime_count", type="fail") == 6
    assert get("jetjobs_handler_duration_seconds_count", type="term") == 2
    assert get("choria_asyncjobs_queue_task_past_max_tries_count_total") == 3
    assert get("choria_asyncjobs_queue_poll_total") >= 1

    def delta(name: str, **labels: str) -> float:
        series = (name, tuple(sorted(labels.items())))
        return after[series] - before.get(series, 0.0)

    updates = {
        state: delta("choria_asyncjobs_task_update_total", state=state)
        for state in ("new", "active", "retry", "complete", "expired", "terminated")
    }
    assert updates == {
        "new": 10,
        "active": 13,
        "retry": 3,
        "complete": 5,
        "expired": 3,
        "terminated": 2,
    }
    assert delta("choria_asyncjobs_task_update_error_total") == 0
    assert after[("choria_asyncjobs_handler_busy_count", ())] == 0
    # The same registry, rendered in-process.
    rendered = parse(jetjobs.render_metrics())
    assert rendered[("choria_asyncjobs_queue_enqueue_count_total", (("queue", queue),))] == 10
