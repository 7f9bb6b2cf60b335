# SPDX-License-Identifier: Apache-2.0
"""The README's Python quick start and examples/python/ run as written."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import jetjobs

from conftest import ROOT, wait_final


def readme_quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start (Python)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the Python quick start has one python block"
    return str(blocks[0])


async def test_readme_quick_start(nats_url: str, tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(readme_quick_start())
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, "NATS_URL": nats_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
    assert line.startswith("enqueued "), line
    task_id = line.split()[1]
    app = jetjobs.App(nats_url, queue="EMAIL")
    (done,) = await wait_final(app, [task_id])
    assert done.result is not None
    assert (done.state, done.result.payload) == ("complete", {"sent_to": "a@example.net"})
    queue = (await app.client()).queue
    assert (queue.max_concurrent, queue.max_tries) == (20, 10)
    # A sync handler in the same worker.
    report = await app.enqueue("report:build", {"id": 7})
    (built,) = await wait_final(app, [report.id])
    assert built.result is not None
    assert built.result.payload == "report 7"
    # SIGTERM: graceful shutdown, exit status 0.
    proc.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()


async def run_readme_block(heading: str, nats_url: str, tmp_path: Path) -> list[str]:
    """Runs the one python block of the README section under `heading`; returns its lines."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split(heading, 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    script = tmp_path / "readme_block.py"
    script.write_text(block)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        env={**os.environ, "NATS_URL": nats_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    return stdout.decode().splitlines()


async def test_readme_more_runs_as_written(nats_url: str, tmp_path: Path) -> None:
    lines = await run_readme_block("## More in Python", nats_url, tmp_path)
    assert lines[:6] == [
        "result: report 2026-11",
        "batch: 4950",
        "unique: True",
        "delayed: 41",
        "chain: 6",
        "cancelled: terminated",
    ]
    assert lines[6].startswith("failed: ") and lines[6].endswith("bad month: terminate task")
    assert lines[7] == "dead letters: 1"


async def test_readme_more_in_python_ops(nats_url: str, tmp_path: Path) -> None:
    lines = await run_readme_block("## More in Python: schedules", nats_url, tmp_path)
    assert lines == [
        'request-reply: "hello ada"',
        "external process: disk ok",
        "ordered: ['open', 'charge', 'ship']",
        "schedules: ['nightly']",
        "trace: 0af7651916cd43dd8448eb211c80319c",
        "governor: 1 of 2",
        "metrics: True",
    ]


async def test_readme_long_running_work_in_python(nats_url: str, tmp_path: Path) -> None:
    lines = await run_readme_block("## Long-running work in Python:", nats_url, tmp_path)
    assert lines == [
        "supervisor: 3 runs",
        "pool: ['a', 'b', 'c']",
        "pool: a got reload",
        "pool: shut down",
    ]


async def test_quickstart_example() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "python" / "quickstart.py"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines[-3:] == [
        "email:send    complete   tries=2 {'sent_to': 'a@example.net'}",
        "email:send    terminated tries=1 no valid recipient: terminate task",
        "report:build  complete   tries=1 report 7 built",
    ]
    assert "  start report:build try 1" in lines
