# SPDX-License-Identifier: Apache-2.0
"""Delegated handlers: request-reply routes answered by a Python responder, and external
processes (asyncjobs' ``RequestReply`` and ``ExternalProcess`` semantics, from Python)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final


def reply_of(task: jetjobs.Task) -> Any:
    """The JSON a responder replied, as the caller stored it: base64 of the reply bytes."""
    assert task.result is not None
    return json.loads(base64.b64decode(task.result.payload))


async def test_request_reply_route_answered_by_a_python_responder(make_app: MakeApp) -> None:
    app = make_app(jetjobs.Queue("RRPY", max_run_time=timedelta(seconds=20)))
    app.request_reply("rr:py")

    @app.responder("rr:py", concurrency=4)
    async def answer(task: jetjobs.Task) -> Any:
        mode = task.payload["mode"]
        if mode == "terminate":
            raise jetjobs.TerminateTask("python refused")
        if mode == "fail" and task.tries <= task.payload["fails"]:
            raise ValueError(f"python failure {task.tries}")
        assert task.context is not None
        left = task.context.remaining.total_seconds()
        return {"handled_by": "python", "id": task.id, "state": task.state, "left": left}

    async with running(app):
        ids = [
            (await app.enqueue("rr:py", {"mode": "succeed"})).id,
            (await app.enqueue("rr:py", {"mode": "terminate"})).id,
            (await app.enqueue("rr:py", {"mode": "fail", "fails": 1})).id,
            (await app.enqueue("rr:py", {"mode": "fail", "fails": 9}, max_tries=1)).id,
        ]
        done = await wait_final(app, ids)
    reply = reply_of(done[0])
    assert (reply["handled_by"], reply["id"], reply["state"]) == ("python", ids[0], "active")
    # The caller's deadline (20 s less its margin) less asyncjobs' 2 s, in whole seconds.
    assert 13 < reply["left"] < 18
    assert (done[1].state, done[1].last_err) == ("terminated", "python refused: terminate task")
    assert (done[2].state, done[2].tries) == ("complete", 2)
    assert (done[3].state, done[3].last_err) == ("expired", "ValueError: python failure 1")


async def test_native_responder_and_no_responder(make_app: MakeApp) -> None:
    app = make_app("RRNATIVE")
    app.request_reply("")  # every type, to CHORIA_AJ.H.T.catchall
    with pytest.raises(jetjobs.DuplicateHandler):
        app.request_reply("")
    async with running(app):
        lonely = await app.enqueue("anything", 1, max_tries=2)
        (missed,) = await wait_final(app, [lonely.id])
        assert (missed.state, missed.tries) == ("expired", 2)
        assert missed.last_err == (
            "request-reply callout failed: nats: no responders available for request"
        )

        def sync_answer(task: jetjobs.Task) -> str:
            return f"sync {task.type}"

        client = await app.client()
        responder = jetjobs.Responder(client, "", sync_answer)
        assert responder.subject == "CHORIA_AJ.H.T.catchall"
        await responder.listen()
        shutdown = jetjobs.CancellationToken()
        serving = asyncio.ensure_future(responder.run(shutdown))
        task = await app.enqueue("some:type", 1)
        (done,) = await wait_final(app, [task.id])
        shutdown.cancel()
        await serving
    assert reply_of(done) == "sync some:type"
    with pytest.raises(jetjobs.AlreadyRunning):
        await responder.run(jetjobs.CancellationToken())


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


async def test_external_process_success_failure_and_missing(
    make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app("EXTPY")
    app.external_process(
        "ext:ok", script(tmp_path, "ok.sh", 'echo "$#"; /bin/cat "$CHORIA_AJ_TASK"')
    )
    app.external_process("ext:bad", script(tmp_path, "bad.sh", "echo nope >&2; exit 3"))
    app.external_process("ext:missing", tmp_path / "missing.sh")
    with pytest.raises(jetjobs.DuplicateHandler):
        app.external_process("ext:ok", "/bin/true")
    async with running(app):
        ids = [
            (await app.enqueue("ext:ok", {"n": 1})).id,
            (await app.enqueue("ext:bad", 1, max_tries=2)).id,
            (await app.enqueue("ext:missing", 1, max_tries=1)).id,
        ]
        done = await wait_final(app, ids)
    assert done[0].state == "complete" and done[0].result is not None
    args, document = done[0].result.payload.split("\n", 1)
    assert args == "0"
    seen = json.loads(document)
    assert (seen["id"], seen["state"], seen["tries"]) == (ids[0], "active", 1)
    assert (done[1].state, done[1].tries) == ("expired", 2)
    assert done[1].last_err == "execution failed: exit status 3"
    assert (done[2].state, done[2].last_err) == ("expired", "command not found")
