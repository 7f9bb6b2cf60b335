# SPDX-License-Identifier: Apache-2.0
"""The ``jetjobs`` console script: the operator CLI (the Rust ``jetjobs``'s code, run in-process by
``jetjobs._native.run_cli``) plus ``jetjobs worker``, which stays Python's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import jetjobs
from jetjobs.__main__ import main

from conftest import MakeApp

# The console script pip put next to this Python (`[project.scripts] jetjobs`).
JETJOBS = str(Path(sys.executable).parent / "jetjobs")


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [JETJOBS, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def test_version_is_the_packages_version() -> None:
    done = cli("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"jetjobs {jetjobs.__version__}")


def test_help_is_the_clis_and_mentions_worker() -> None:
    done = cli("--help")
    assert done.returncode == 0, done.stderr
    assert "Usage: jetjobs [OPTIONS] <COMMAND>" in done.stdout
    assert "dashboard" in done.stdout
    assert "worker       Run a jetjobs.App's handlers" in done.stdout


def test_usage_errors_exit_2_with_clap_message() -> None:
    done = cli("queue", "bogus")
    assert done.returncode == 2
    assert "unrecognized subcommand 'bogus'" in done.stderr
    assert "Usage: jetjobs queue" in done.stderr


def test_main_runs_the_cli_in_process(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capfd.readouterr().out.strip() == f"jetjobs {jetjobs.__version__}"


async def test_json_read_commands_see_what_python_stored(make_app: MakeApp, nats_url: str) -> None:
    app = make_app("CLI_PY")
    async with app:
        task = await app.enqueue("cli:check", {"n": 1})
        queues = json.loads(cli("-s", nats_url, "--json", "queue", "list").stdout)
        assert "CLI_PY" in [q["name"] for q in queues]
        done = cli("--server", nats_url, "task", "view", task.id, "--json")
        assert done.returncode == 0, done.stderr
        viewed = json.loads(done.stdout)
        assert (viewed["id"], viewed["type"], viewed["queue"], viewed["state"]) == (
            task.id,
            "cli:check",
            "CLI_PY",
            "new",
        )
        missing = cli("-s", nats_url, "--json", "task", "view", jetjobs.new_id())
        assert missing.returncode == 3
        assert "TaskNotFound" in missing.stderr


def test_worker_still_runs_an_apps_handlers(nats_url: str, tmp_path: Path) -> None:
    (tmp_path / "cli_worker.py").write_text(
        textwrap.dedent(f"""
        import jetjobs

        app = jetjobs.App({nats_url!r}, queue="CLI_WORKER")


        @app.task("cli:double")
        def double(task: jetjobs.Task) -> int:
            return int(task.payload) * 2
        """)
    )
    proc = subprocess.Popen(
        [JETJOBS, "worker", "cli_worker:app"], cwd=tmp_path, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == f"jetjobs worker: queue CLI_WORKER at {nats_url}: ready", line
        added = cli("-s", nats_url, "--json", "task", "add", "cli:double", "21", "-q", "CLI_WORKER")
        assert added.returncode == 0, added.stderr
        task_id = json.loads(added.stdout)["id"]
        deadline = time.monotonic() + 20
        while True:
            task = json.loads(cli("-s", nats_url, "--json", "task", "view", task_id).stdout)
            if task["state"] == "complete":
                break
            assert time.monotonic() < deadline, task
            time.sleep(0.05)
        assert task["result"]["payload"] == 42
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
