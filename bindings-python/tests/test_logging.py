# SPDX-License-Identifier: Apache-2.0
"""The engine's log events (Rust ``tracing``) on Python's ``logging``: logger ``jetjobs``."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap

import pytest

import jetjobs

from conftest import MakeApp, running, wait_for


async def publish_raw(nats_url: str, subject: str, payload: bytes) -> None:
    """Publish with the NATS text protocol on a plain socket, bypassing jetjobs."""
    host, _, port = nats_url.removeprefix("nats://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        await asyncio.wait_for(reader.readline(), 10)  # INFO
        writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        writer.write(b"PUB %s %d\r\n%s\r\nPING\r\n" % (subject.encode(), len(payload), payload))
        await writer.drain()
        while not (await asyncio.wait_for(reader.readline(), 10)).startswith(b"PONG"):
            pass
    finally:
        writer.close()
        await writer.wait_closed()


def corrupt_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("jetjobs") and "terminating corrupt work item" in r.getMessage()
    ]


async def items(app: jetjobs.App, queue: str) -> int:
    return (await (await app.admin()).queue_info(queue)).items


async def test_a_corrupt_work_item_is_a_warning_on_the_jetjobs_logger(
    make_app: MakeApp, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="jetjobs")
    app = make_app("LOGWARN")

    @app.task("fine")
    async def fine(task: jetjobs.Task) -> int:
        return 1

    async with running(app):
        await app.queue()  # the queue's stream exists before the raw publish
        await publish_raw(nats_url, "CHORIA_AJ.Q.LOGWARN.x", b"not json")

        async def logged() -> list[logging.LogRecord] | None:
            return corrupt_records(caplog) or None

        [record] = await wait_for("the corrupt item's warning", logged)
    assert record.name == "jetjobs.worker.process"  # a child of `jetjobs`, by Rust module
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "terminating corrupt work item subject=CHORIA_AJ.Q.LOGWARN.x"
    assert record.pathname.endswith("process.rs") and record.lineno > 0
    assert set(jetjobs.log_stats()) == {"forwarded", "dropped"}


async def test_below_the_loggers_level_no_event_reaches_python(
    make_app: MakeApp, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="jetjobs")
    app = make_app("LOGQUIET")

    @app.task("fine")
    async def fine(task: jetjobs.Task) -> int:
        return 1

    await app.queue()  # connecting reads the logger's level (ERROR)
    await publish_raw(nats_url, "CHORIA_AJ.Q.LOGQUIET.x", b"not json")

    async def stored() -> bool:
        return await items(app, "LOGQUIET") == 1

    await wait_for("the corrupt item to be stored", stored)
    forwarded = jetjobs.log_stats()["forwarded"]
    async with running(app):

        async def terminated() -> bool:
            return await items(app, "LOGQUIET") == 0

        await wait_for("the corrupt item to be terminated", terminated)
        # Filtered out in Rust: nothing was formatted, queued or handed to Python.
        assert jetjobs.log_stats()["forwarded"] == forwarded
        assert corrupt_records(caplog) == []

        # Made more verbose while running: applied at once by refresh_log_level().
        caplog.set_level(logging.WARNING, logger="jetjobs")
        jetjobs.refresh_log_level()
        await publish_raw(nats_url, "CHORIA_AJ.Q.LOGQUIET.y", b"not json")

        async def logged() -> list[logging.LogRecord] | None:
            return corrupt_records(caplog) or None

        [record] = await wait_for("the second corrupt item's warning", logged)
    assert record.getMessage().endswith("subject=CHORIA_AJ.Q.LOGQUIET.y")
    assert jetjobs.log_stats()["forwarded"] > forwarded


EXIT_WHILE_LOGGING = """
import asyncio, logging, sys, time
import jetjobs

logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(name)s %(message)s")
seen = []

class Seen(logging.Handler):
    def emit(self, record):
        seen.append(record.getMessage())

logging.getLogger("jetjobs").addHandler(Seen())

async def main():
    url = sys.argv[1]
    app = jetjobs.App(url, queue="LOGEXIT")
    await app.queue()
    host, _, port = url.removeprefix("nats://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    await reader.readline()
    writer.write(b'CONNECT {"verbose":false,"pedantic":false}\\r\\n')
    for i in range(300):
        writer.write(b"PUB CHORIA_AJ.Q.LOGEXIT.%d 8\\r\\nnot json\\r\\n" % i)
    writer.write(b"PING\\r\\n")
    await writer.drain()
    await reader.readline()
    asyncio.ensure_future(app.run(handle_signals=False))
    deadline = time.monotonic() + 30
    while not seen and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    print("exiting", flush=True)
    # Returns with the worker still terminating items and logging them.

asyncio.run(main())
"""


def test_events_while_the_interpreter_exits_are_dropped_quietly(nats_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(EXIT_WHILE_LOGGING), nats_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exiting" in proc.stdout
    assert "jetjobs.worker.process terminating corrupt work item" in proc.stdout
    assert "Traceback" not in proc.stderr and "Fatal" not in proc.stderr, proc.stderr
