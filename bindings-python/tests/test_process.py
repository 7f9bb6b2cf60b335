# SPDX-License-Identifier: Apache-2.0
"""Process-level behaviour, in subprocesses: a second Ctrl-C, and an App used across os.fork()."""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import jetjobs

STUCK_WORKER = """
import logging, sys, time
from datetime import timedelta
import jetjobs

logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s", force=True)
app = jetjobs.App(
    sys.argv[1],
    queue=jetjobs.Queue("STUCK", max_run_time=timedelta(minutes=10)),
    shutdown_grace=timedelta(seconds=60),
)

@app.task("stuck")
def stuck(task: jetjobs.Task) -> None:
    print("handler started", flush=True)
    while True:  # ignores its context's cancellation: stuck for good
        time.sleep(0.05)

print("enqueued", app.enqueue_sync("stuck").id, flush=True)
app.run_sync()
"""


class Lines:
    """A subprocess's stdout lines, read on a thread, waited for with deadlines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stdout = proc.stdout

        def read() -> None:
            for line in stdout:
                self.lines.put(line)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"timed out waiting for {text!r}; output so far: {self.seen}")
            try:
                self.seen.append(self.lines.get(timeout=left))
            except queue.Empty:
                continue


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_second_ctrl_c_stops_a_worker_with_a_stuck_sync_handler(
    nats_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "stuck_worker.py"
    script.write_text(textwrap.dedent(STUCK_WORKER))
    proc = subprocess.Popen(
        [sys.executable, str(script), nats_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = Lines(proc)
        out.wait_for("handler started")
        proc.send_signal(signal.SIGINT)
        out.wait_for("press Ctrl-C again")  # graceful shutdown began; the grace period is 60 s
        proc.send_signal(signal.SIGINT)
        # Well inside the 60 s grace period the handler would otherwise be given.
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0  # stopped by KeyboardInterrupt, not a graceful exit
    # The engine handed the stuck task back at once, the try not counted, rather than leaving it
    # `active` until its 10-minute max run time.
    (task_id,) = [line.split()[1] for line in out.seen if line.startswith("enqueued ")]
    task = asyncio.run(_load(nats_url, task_id))
    assert (task.state, task.tries) == ("retry", 0)


async def _load(url: str, task_id: str) -> jetjobs.Task:
    async with jetjobs.App(url, queue="STUCK") as app:
        return await app.load_task(task_id)


FORKED_APP = """
import os, sys
import jetjobs

app = jetjobs.App(sys.argv[1], queue="FORK")
client = app.client_sync()
app.enqueue_sync("x", "from the parent")
pid = os.fork()
if pid == 0:
    code = 1
    try:
        try:
            client.enqueue_sync(jetjobs.Task("x", "inherited client"))
            print("the inherited client did not say it belongs to the parent", flush=True)
        except jetjobs.Connection as e:
            assert "fork" in str(e), e
            print("inherited client refused:", e, flush=True)
            task = app.enqueue_sync("x", "from the child")  # the App connects again
            loaded = app.client_sync().enqueue_sync(jetjobs.Task("x", 3))
            print("child enqueued", task.id, loaded.id, flush=True)
            code = 0
    except BaseException as e:
        print("child failed:", repr(e), flush=True)
    finally:
        os._exit(code)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork")
def test_an_app_connected_before_fork_works_in_the_child(nats_url: str, tmp_path: Path) -> None:
    script = tmp_path / "forked_app.py"
    script.write_text(textwrap.dedent(FORKED_APP))
    done = subprocess.run(
        [sys.executable, str(script), nats_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "inherited client refused" in done.stdout
    assert "child enqueued" in done.stdout
