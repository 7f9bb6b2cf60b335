# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the dashboard's browser test.

A real nats-server (``NATS_SERVER_BIN``, as ``make setup`` installs it) holding tasks in several
states (the dashboard crate's ``seed`` example), the dashboard (``jetjobs dashboard``, the CLI)
on a free loopback port, and headless Chromium from Debian's
``chromium`` package driven by Playwright.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
EXAMPLES = TARGET / "debug" / "examples"
CLI = TARGET / "debug" / "jetjobs"
ARTIFACTS = TARGET / "browser-artifacts"


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def example(name: str) -> str:
    """Path of a built example of the dashboard crate."""
    path = EXAMPLES / name
    assert path.exists(), f"{path} is missing: run `cargo build -p jetjobs-dashboard --examples`"
    return str(path)


def cli() -> str:
    """Path of the built ``jetjobs`` CLI."""
    assert CLI.exists(), f"{CLI} is missing: run `cargo build -p jetjobs-cli`"
    return str(CLI)


@dataclass
class Dashboard:
    """A running ``jetjobs dashboard``."""

    url: str
    process: subprocess.Popen[str]

    def api(self, method: str, path: str, headers: dict[str, str] | None = None) -> Any:
        """Calls the JSON API as the page's script does; returns the decoded reply."""
        request = urllib.request.Request(self.url.rstrip("/") + path, method=method)
        request.add_header("X-Jetjobs-Dashboard", "1")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    def stop(self) -> None:
        """Stops it (SIGTERM, then SIGKILL)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_dashboard(nats_url: str, *args: str) -> Dashboard:
    """Starts ``jetjobs dashboard`` and waits for the URL it prints."""
    process = subprocess.Popen(
        [cli(), "dashboard", "--server", nats_url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("dashboard: "):
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"the dashboard did not start: {line!r} {err}")
    return Dashboard(url=line.removeprefix("dashboard: ").strip(), process=process)


def wait_until(what: str, check: Any, timeout: float = 20.0) -> Any:
    """Polls ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """A JetStream nats-server on a free loopback port, its store in a temporary directory."""
    binary = os.environ.get("NATS_SERVER_BIN") or shutil.which("nats-server")
    assert binary, "no nats-server: run `make setup` (or set NATS_SERVER_BIN)"
    port = free_port()
    with tempfile.TemporaryDirectory() as store:
        server = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return False

        try:
            wait_until("nats-server to listen", listening, timeout=10)
            yield f"nats://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(timeout=10)


@pytest.fixture(scope="session")
def seeded(nats_url: str) -> dict[str, list[str]]:
    """Seeded task ids by state: complete, terminated, expired, retry, new, blocked."""
    out = subprocess.run(
        [example("seed"), "--server", nats_url],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    ids: dict[str, list[str]] = json.loads(out.stdout)
    return ids


@pytest.fixture(scope="session")
def dashboard(nats_url: str, seeded: dict[str, list[str]]) -> Iterator[Dashboard]:
    """The dashboard on a free loopback port, its index holding every seeded task."""
    running = start_dashboard(nats_url, "--listen", "127.0.0.1:0")
    total = sum(len(ids) for ids in seeded.values())

    def indexed() -> bool:
        index = running.api("GET", "/api/overview")["index"]
        return bool(index["ready"] and index["indexed"] == total)

    try:
        wait_until("the dashboard to index the seeded tasks", indexed)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Headless Chromium from Debian's package (``CHROMIUM_BIN`` overrides where it is)."""
    binary = os.environ.get("CHROMIUM_BIN") or shutil.which("chromium")
    assert binary, "no chromium: run `make browser-setup` (apt-get install chromium)"
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    browser = playwright.chromium.launch(
        executable_path=binary,
        headless=True,
        # CI runs as root, where Chromium's sandbox cannot start.
        args=["--no-sandbox", "--disable-dev-shm-usage"],
    )
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; JavaScript errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def screenshot(page: Page, name: str) -> None:
    """Saves a full-page screenshot as a test artefact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
