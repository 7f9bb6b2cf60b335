# SPDX-License-Identifier: Apache-2.0
"""Registration errors surface when a handler is registered, not when its tasks expire later."""

from __future__ import annotations

import pytest

import jetjobs


def handler(task: jetjobs.Task) -> None:
    return None


def test_a_type_no_task_can_have_is_refused() -> None:
    app = jetjobs.App()
    with pytest.raises(jetjobs.InvalidTaskType, match=r"email\.send"):
        app.task("email.send")(handler)
    with pytest.raises(jetjobs.InvalidTaskType):
        app.handle("email send", handler)
    assert app.route_for("email.send") is None
    app.handle("email:send", handler)  # a type
    app.handle("email:", handler)  # a prefix
    app.handle("", handler)  # the catch-all
    assert app.route_for("email:send") == "email:send"


def test_a_handler_that_is_not_callable_is_refused() -> None:
    app = jetjobs.App()
    with pytest.raises(TypeError, match="callable"):
        app.handle("email:send", "send_email")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        jetjobs.Mux().handle("email:send", 42)  # type: ignore[arg-type]
    assert app.route_for("email:send") is None


def test_a_second_handler_for_a_type_is_refused() -> None:
    app = jetjobs.App()
    app.task("email:send")(handler)
    with pytest.raises(jetjobs.DuplicateHandler):
        app.task("email:send")(handler)
    mux = jetjobs.Mux()
    mux.handle("email:send", handler)
    with pytest.raises(jetjobs.DuplicateHandler):
        mux.handle("email:send", handler)


def test_task_state_finality_is_the_engines() -> None:
    for state in jetjobs.TaskState:
        assert state.is_final == jetjobs.is_final_state(state.value)
    finals = {s.value for s in jetjobs.TaskState if s.is_final}
    assert finals == {"expired", "terminated", "complete", "queue_error", "unreachable"}
    with pytest.raises(jetjobs.InvalidDocument):
        jetjobs.is_final_state("finished")
