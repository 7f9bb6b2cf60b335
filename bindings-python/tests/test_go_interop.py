# SPDX-License-Identifier: Apache-2.0
"""Go asyncjobs v0.3.0 and Python share queues: a Go producer's tasks handled by a Python worker
(Go reads the results), and a Python producer's tasks handled by a Go worker (Python reads them).

Uses the Go driver in tests/interop/go (built on demand into a temp dir). Without `go` these tests
fail; ``JETJOBS_SKIP_GO=1`` skips them explicitly.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import jetjobs

from conftest import ROOT, MakeApp, running, wait_final

GO_MODULE = ROOT / "tests" / "interop" / "go"


@pytest.fixture(scope="session")
def ajdriver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("JETJOBS_SKIP_GO") == "1":
        pytest.skip("JETJOBS_SKIP_GO=1: the Go asyncjobs interop tests did not run")
    if shutil.which("go") is None:
        pytest.fail("`go` is not on PATH: the Go asyncjobs interop tests need it")
    binary = tmp_path_factory.mktemp("go") / "ajdriver"
    subprocess.run(["go", "build", "-o", str(binary), "./cmd/ajdriver"], cwd=GO_MODULE, check=True)
    return binary


def drive(binary: Path, *args: str) -> list[Any]:
    out = subprocess.run([str(binary), *args], check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def go_enqueue(binary: Path, url: str, queue: str, payload: dict[str, Any]) -> str:
    args = ["-url", url, "-queue", queue, "-type", "interop:go", "-payload", json.dumps(payload)]
    return str(drive(binary, "enqueue", *args)[0]["id"])


async def test_go_producer_python_worker(ajdriver: Path, nats_url: str, make_app: MakeApp) -> None:
    ids = [
        go_enqueue(ajdriver, nats_url, "GO2PY", {"mode": "succeed", "result": {"x": 1}}),
        go_enqueue(ajdriver, nats_url, "GO2PY", {"mode": "fail", "fails": 1}),
        go_enqueue(ajdriver, nats_url, "GO2PY", {"mode": "terminate"}),
    ]
    app = make_app("GO2PY")

    @app.task("")
    async def handle(task: jetjobs.Task) -> Any:
        mode = task.payload.get("mode")
        if mode == "fail" and task.tries <= task.payload["fails"]:
            raise RuntimeError(f"python failure {task.tries}")
        if mode == "terminate":
            raise jetjobs.TerminateTask("python refused")
        return task.payload.get("result", {"handled_by": "python"})

    async with running(app):
        done = await wait_final(app, ids)
    assert [t.state for t in done] == ["complete", "complete", "terminated"]
    loaded = [drive(ajdriver, "load", "-url", nats_url, "-id", i)[0] for i in ids]
    assert (loaded[0]["state"], loaded[0]["result"]["payload"]) == ("complete", {"x": 1})
    assert (loaded[1]["tries"], loaded[1]["result"]["payload"]) == (2, {"handled_by": "python"})
    assert loaded[2]["last_err"] == "python refused: terminate task"


async def test_python_producer_go_worker(ajdriver: Path, nats_url: str, make_app: MakeApp) -> None:
    app = make_app("PY2GO")
    ids = [
        (await app.enqueue("interop:py", {"mode": "succeed", "result": {"y": [1, 2]}})).id,
        (await app.enqueue("interop:py", {"mode": "fail", "fails": 1})).id,
        (await app.enqueue("interop:py", {"mode": "terminate"})).id,
    ]
    worker = await asyncio.create_subprocess_exec(
        str(ajdriver),
        "worker",
        "-url",
        nats_url,
        "-queue",
        "PY2GO",
        "-bind",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        assert b'"ready":true' in await asyncio.wait_for(worker.stdout.readline(), 30)
        done = await wait_final(app, ids)
    finally:
        worker.terminate()
        await worker.wait()
    assert [t.state for t in done] == ["complete", "complete", "terminated"]
    assert done[0].result is not None and done[0].result.payload == {"y": [1, 2]}
    assert done[1].tries == 2 and done[1].result is not None
    assert done[1].result.payload["handled_by"] == "go"
    assert done[2].last_err == "go refused: terminate task"


async def test_go_request_reply_worker_python_responder(
    ajdriver: Path, nats_url: str, make_app: MakeApp
) -> None:
    """A Go worker routes a type with ``RequestReply``; a Python responder runs the tasks."""
    app = make_app(jetjobs.Queue("RRGOPY", max_run_time=timedelta(seconds=20)))

    @app.responder("interop:py")
    async def answer(task: jetjobs.Task) -> Any:
        mode = task.payload.get("mode")
        if mode == "fail" and task.tries <= task.payload["fails"]:
            raise RuntimeError(f"python failure {task.tries}")
        if mode == "terminate":
            raise jetjobs.TerminateTask("python refused")
        return {"handled_by": "python-responder", "id": task.id, "tries": task.tries}

    ids = [
        (await app.enqueue("interop:py", {"mode": "succeed"})).id,
        (await app.enqueue("interop:py", {"mode": "fail", "fails": 1})).id,
        (await app.enqueue("interop:py", {"mode": "terminate"})).id,
    ]
    args = ["-url", nats_url, "-queue", "RRGOPY", "-bind", "-type", "interop:py", "-request-reply"]
    worker = await asyncio.create_subprocess_exec(
        str(ajdriver), "worker", *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert worker.stdout is not None
        assert b'"ready":true' in await asyncio.wait_for(worker.stdout.readline(), 30)
        # The app runs only the responder: it has no routes, so no worker of its own.
        async with running(app):
            done = await wait_final(app, ids)
    finally:
        worker.terminate()
        await worker.wait()
    assert [t.state for t in done] == ["complete", "complete", "terminated"]
    assert done[0].result is not None
    reply = json.loads(base64.b64decode(done[0].result.payload))
    # A try before the responder subscribed fails (no responders) and is retried.
    assert reply == {"handled_by": "python-responder", "id": ids[0], "tries": done[0].tries}
    assert done[1].tries >= 2
    assert done[2].last_err == "python refused: terminate task"
    loaded = drive(ajdriver, "load", "-url", nats_url, "-id", ids[0])[0]
    assert loaded["result"]["payload"] == done[0].result.payload
