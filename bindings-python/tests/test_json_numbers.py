# SPDX-License-Identifier: Apache-2.0
"""JSON numbers round-trip exactly: payloads, results, and parent results copied into children."""

from __future__ import annotations

import json
import random
import struct

import jetjobs

from conftest import MakeApp, running, wait_final

# Parsed one ULP off by a JSON parser without correct rounding (issue 8 §2.1).
KNOWN = 1796130929.2805421


def doubles(n: int = 2000) -> list[float]:
    rng = random.Random(8)
    values = [KNOWN, 0.1, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308]
    values += [rng.uniform(0, 2e9) for _ in range(n)]
    values += [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(n)]
    return [v for v in values if v == v and abs(v) != float("inf")]


def changed(expected: list[float], got: object) -> list[tuple[float, object]]:
    assert isinstance(got, list) and len(got) == len(expected)
    return [(e, g) for e, g in zip(expected, got) if not (type(g) is float and g.hex() == e.hex())]


def test_payload_doubles_round_trip_exactly() -> None:
    values = doubles()
    task = jetjobs.Task("nums", values)
    assert changed(values, task.payload) == []
    assert changed(values, jetjobs.Task.from_json(task.to_json()).payload) == []


async def test_results_and_dependency_results_round_trip_exactly(make_app: MakeApp) -> None:
    app = make_app("NUMS")
    values = doubles(200)
    seen: dict[str, object] = {}

    @app.task("parent")
    def parent(task: jetjobs.Task) -> object:
        seen["payload"] = task.payload
        return task.payload

    @app.task("child")
    def child(task: jetjobs.Task) -> None:
        (result,) = task.dependency_results.values()
        seen["dependency"] = result.payload if result is not None else None

    first = await app.enqueue("parent", values)
    second = await app.enqueue("child", depends_on=[first], load_dependency_results=True)
    async with running(app):
        done = await wait_final(app, [first.id, second.id])
    assert [t.state for t in done] == ["complete", "complete"]
    assert changed(values, seen["payload"]) == []
    assert done[0].result is not None
    assert changed(values, done[0].result.payload) == []
    assert changed(values, seen["dependency"]) == []
    # The copy stored in the child's document is the parent's result, unaltered.
    stored = json.loads(done[1].to_json())
    copies = [r["payload"] for r in (stored.get("dependency_results") or {}).values() if r]
    for copy in copies:
        assert changed(values, copy) == []
