# SPDX-License-Identifier: Apache-2.0
"""Python middleware: order, short-circuit, exceptions, sync and async chains."""

from __future__ import annotations

from typing import Any

import pytest

import jetjobs

from conftest import MakeApp, running, wait_final


def recorder(log: list[str], name: str) -> jetjobs.Middleware:
    def middleware(task: jetjobs.Task, call_next: jetjobs.CallNext) -> Any:
        log.append(name)
        return call_next(task)

    return middleware


def async_recorder(log: list[str], name: str) -> jetjobs.Middleware:
    async def middleware(task: jetjobs.Task, call_next: jetjobs.CallNext) -> Any:
        log.append(f"{name}:before")
        result = await call_next(task)
        log.append(f"{name}:after")
        return result

    return middleware


async def test_order_is_app_wide_then_route_outermost_first(make_app: MakeApp) -> None:
    app = make_app("MWORDER")
    log: list[str] = []
    app.middleware(recorder(log, "g1"))

    @app.task("a", middleware=[async_recorder(log, "r1"), recorder(log, "r2")])
    async def a(task: jetjobs.Task) -> str:
        log.append("handler")
        return "done"

    @app.task("s", middleware=[recorder(log, "r1"), recorder(log, "r2")])
    def s(task: jetjobs.Task) -> str:
        log.append("handler")
        return "done"

    # Added after the routes: they are rewrapped, as the engine's Mux does.
    app.middleware(recorder(log, "g2"))

    (a_id,) = [(await app.enqueue("a")).id]
    async with running(app):
        await wait_final(app, [a_id])
        assert log == ["g1", "g2", "r1:before", "r2", "handler", "r1:after"]
        log.clear()
        (done,) = await wait_final(app, [(await app.enqueue("s")).id])
    assert log == ["g1", "g2", "r1", "r2", "handler"]
    assert done.result is not None and done.result.payload == "done"


async def test_middleware_can_short_circuit_and_map_errors(make_app: MakeApp) -> None:
    app = make_app("MWSHORT")
    calls: list[str] = []

    async def cached(task: jetjobs.Task, call_next: jetjobs.CallNext) -> Any:
        if task.payload == "cached":
            return {"from": "cache"}
        return await call_next(task)

    def refuse_value_errors(task: jetjobs.Task, call_next: jetjobs.CallNext) -> Any:
        try:
            return call_next(task)
        except ValueError as e:
            raise jetjobs.TerminateTask(f"refused: {e}") from e

    @app.task("lookup", middleware=[cached])
    async def lookup(task: jetjobs.Task) -> dict[str, str]:
        calls.append(task.payload)
        return {"from": "handler"}

    @app.task("parse", middleware=[refuse_value_errors])
    def parse(task: jetjobs.Task) -> int:
        return int(task.payload)

    ids = [
        (await app.enqueue("lookup", "cached")).id,
        (await app.enqueue("lookup", "fresh")).id,
        (await app.enqueue("parse", "x")).id,
    ]
    async with running(app):
        hit, miss, bad = await wait_final(app, ids)
    assert hit.result is not None and hit.result.payload == {"from": "cache"}
    assert miss.result is not None and miss.result.payload == {"from": "handler"}
    assert calls == ["fresh"]
    assert (bad.state, bad.last_err) == (
        "terminated",
        "refused: invalid literal for int() with base 10: 'x': terminate task",
    )


def test_async_middleware_cannot_wrap_a_sync_handler(make_app: MakeApp) -> None:
    app = make_app()
    log: list[str] = []

    def handler(task: jetjobs.Task) -> None:
        return None

    with pytest.raises(TypeError, match="cannot wrap sync handler"):
        app.handle("s", handler, middleware=[async_recorder(log, "x")])
    assert app.route_for("s") is None
    app.handle("s", handler)
    with pytest.raises(TypeError, match="cannot wrap sync handler"):
        app.middleware(async_recorder(log, "x"))
    assert app.route_for("x") is None
    assert app.route_for("s:sub") == "s"  # a prefix route
