# SPDX-License-Identifier: Apache-2.0
"""Cross-language: Python and Rust producers and workers share queues, with identical results.

Runs the Rust examples (`cargo build -p jetjobs --examples`; `make test-python` builds them) and
their Python twins in examples/python/ as separate processes against one server: every producer
with every worker, each pair on its own queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import jetjobs

from conftest import ROOT, wait_final

EXAMPLES = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "examples"
PY_EXAMPLES = ROOT / "examples" / "python"
PAYLOAD = {"text": "héllo", "list": [1, 2.5, None, True], "nested": {"k": "v"}}
JOBS = [
    ("interop:echo", PAYLOAD, 2),
    ("interop:fail-once", {"n": 1}, 1),
    ("interop:terminate", {}, 1),
]


def rust_example(name: str) -> list[str]:
    binary = EXAMPLES / name
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run `cargo build -p jetjobs --examples`")
    return [str(binary)]


WORKERS = {
    "rust": lambda: rust_example("worker"),
    # The CLI, run from the examples directory as documented there.
    "python": lambda: [sys.executable, "-m", "jetjobs", "worker", "worker:app"],
}
PRODUCERS = {
    "rust": lambda: rust_example("enqueue"),
    "python": lambda: [sys.executable, str(PY_EXAMPLES / "enqueue.py")],
}


@asynccontextmanager
async def worker(kind: str, env: dict[str, str]) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        *WORKERS[kind](),
        cwd=PY_EXAMPLES,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.decode().strip().endswith("ready"), line
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, stderr.decode()


async def produce(kind: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """Enqueue JOBS with the producer; returns (type, id) per task."""
    made = []
    for task_type, payload, count in JOBS:
        proc = await asyncio.create_subprocess_exec(
            *PRODUCERS[kind](),
            task_type,
            json.dumps(payload),
            str(count),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, stderr.decode()
        ids = stdout.decode().split()
        assert len(ids) == count
        made += [(task_type, i) for i in ids]
    return made


def outcome(task: jetjobs.Task) -> tuple[Any, ...]:
    result = task.result.payload if task.result else None
    return (task.type, task.state, task.tries, task.last_err, result, task.payload)


async def test_every_producer_with_every_worker(nats_url: str) -> None:
    outcomes: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for producer in PRODUCERS:
        for consumer in WORKERS:
            queue = f"INTEROP_{producer}_{consumer}".upper()
            env = {**os.environ, "NATS_URL": nats_url, "JETJOBS_QUEUE": queue}
            app = jetjobs.App(nats_url, queue=queue)
            made = await produce(producer, env)
            async with worker(consumer, env):
                tasks = await wait_final(app, [i for _, i in made], timeout=60)
            assert [t.queue for t in tasks] == [queue] * len(tasks)
            outcomes[(producer, consumer)] = [outcome(t) for t in tasks]

    expected = [
        ("interop:echo", "complete", 1, "", PAYLOAD, PAYLOAD),
        ("interop:echo", "complete", 1, "", PAYLOAD, PAYLOAD),
        ("interop:fail-once", "complete", 2, "", {"n": 1}, {"n": 1}),
        ("interop:terminate", "terminated", 1, "refused: terminate task", None, {}),
    ]
    for pair, got in outcomes.items():
        assert got == expected, pair
