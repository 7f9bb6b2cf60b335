# SPDX-License-Identifier: Apache-2.0
"""The queues of an :class:`App`: their settings, their handlers' :class:`Mux`, their handles."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Union

from ._native import Client, Mux, Queue, QueueHandle

QueueLike = Union[Queue, str]
"""A queue's settings (:class:`Queue`) or its name."""


class Queues:
    """Queue settings by name, a :class:`Mux` per queue with handlers, and handles once opened.

    A queue's settings come from the first :class:`Queue` given for its name (the app's ``queue=``
    and ``queues=``, then ``task``/``enqueue``/``queue`` calls); a bare name uses those, else the
    engine's defaults. The server's settings win once the queue exists.
    """

    def __init__(self, default: Queue, extra: Iterable[QueueLike]) -> None:
        self.default = default.name
        self._settings: dict[str, Queue] = {default.name: default}
        self._muxes: dict[str, Mux] = {}
        self._handles: dict[str, QueueHandle] = {}
        for queue in extra:
            self._settings.setdefault(*_named(queue))

    def name(self, queue: QueueLike | None) -> str:
        """The name of ``queue`` (None: the default), remembering a :class:`Queue`'s settings."""
        if queue is None:
            return self.default
        if isinstance(queue, Queue):
            self._settings.setdefault(queue.name, queue)
            return queue.name
        if not isinstance(queue, str):
            raise TypeError(f"a queue is a Queue or a name, not {type(queue).__name__}")
        return queue

    def settings(self, name: str) -> Queue:
        return self._settings.get(name) or Queue(name)

    def mux(self, name: str) -> Mux:
        """The queue's :class:`Mux`, made on first use."""
        mux = self._muxes.get(name)
        if mux is None:
            mux = self._muxes.setdefault(name, Mux())
        return mux

    def existing_mux(self, name: str) -> Mux | None:
        return self._muxes.get(name)

    def has_routes(self) -> bool:
        """True once any queue has a :class:`Mux`."""
        return bool(self._muxes)

    def to_consume(self) -> list[str]:
        """Queues with handlers; the default queue when none has any."""
        return list(self._muxes) or [self.default]

    def cached(self, client: Client, name: str) -> QueueHandle | None:
        if name == self.default:
            return client.default_queue
        return self._handles.get(name)

    def keep(self, name: str, handle: QueueHandle) -> QueueHandle:
        """Caches ``handle`` unless a racing open cached one first; returns the cached one."""
        return self._handles.setdefault(name, handle)

    def forget_handles(self) -> None:
        """Drops handles of a closed connection (or of the parent process, after a fork)."""
        self._handles = {}


def _named(queue: QueueLike) -> tuple[str, Queue]:
    if isinstance(queue, str):
        return queue, Queue(queue)
    return queue.name, queue
