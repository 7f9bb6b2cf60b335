# SPDX-License-Identifier: Apache-2.0
"""Every engine error is a typed exception under JetJobsError, with the engine's message."""

from __future__ import annotations

import socket

import pytest

import jetjobs
import jetjobs._native
import jetjobs.errors

from conftest import MakeApp

# The engine's list of error codes, generated from its one definition of the kinds.
CODES = list(jetjobs._native.ERROR_CODES)


def test_one_class_per_error_code() -> None:
    classes = {
        name: cls
        for name, cls in vars(jetjobs.errors).items()
        if isinstance(cls, type)
        and issubclass(cls, jetjobs.JetJobsError)
        and cls is not jetjobs.JetJobsError
    }
    assert len(CODES) == len(set(CODES)) > 30
    assert sorted(classes) == sorted(CODES), "every engine error code needs its exception class"
    for code, cls in classes.items():
        assert cls.code == code and cls.__name__ == code
        assert getattr(jetjobs, code) is cls
    assert not issubclass(jetjobs.TerminateTask, jetjobs.JetJobsError)


async def test_typed_errors_carry_the_engines_message(make_app: MakeApp) -> None:
    app = make_app("ERRORS")
    with pytest.raises(jetjobs.TaskNotFound, match="task not found: nope") as not_found:
        await app.load_task("nope")
    assert isinstance(not_found.value, jetjobs.JetJobsError)
    assert not_found.value.code == "TaskNotFound"
    with pytest.raises(jetjobs.InvalidTaskType, match="task type is invalid"):
        jetjobs.Task("bad type")
    with pytest.raises(jetjobs.InvalidTaskId):
        jetjobs.Task("ok", id="no/slash")
    with pytest.raises(jetjobs.QueueNotFound):
        await make_app(jetjobs.Queue("MISSING", bind=True)).client()
    with pytest.raises(jetjobs.InvalidQueueName):
        await make_app("bad queue").client()
    with pytest.raises(jetjobs.DuplicateHandler, match="duplicate handler"):
        app.handle("dup", print)
        app.handle("dup", print)
    with pytest.raises(jetjobs.UnknownRetryPolicy):
        jetjobs.App(retry_policy="2h")
    with pytest.raises(jetjobs.InvalidRetryPolicy):
        jetjobs.RetryPolicy.intervals([], 0.5)
    with pytest.raises(jetjobs.UnknownDiscardPolicy):
        await make_app(discard=["new"]).client()
    with pytest.raises(jetjobs.InvalidOption):
        await make_app(concurrency=0).client()
    with pytest.raises(jetjobs.InvalidDocument):
        jetjobs.Task.from_json(b"{}")
    with pytest.raises(jetjobs.InvalidKey, match="invalid private key hex") as bad_key:
        jetjobs.TaskSigner.from_hex("zz")
    assert bad_key.value.__cause__ is not None


async def test_connection_errors_chain_their_cause() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(jetjobs.Connection, match="connecting to NATS") as err:
        await jetjobs.connect(f"nats://127.0.0.1:{port}")
    assert err.value.__cause__ is not None
