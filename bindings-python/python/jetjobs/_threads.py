# SPDX-License-Identifier: Apache-2.0
"""The threads sync handlers run on: at most ``size`` at once, each counted until it returns.

The engine frees a handler's slot when the try's deadline passes, but Python cannot stop a thread.
If sync handlers ran on an unbounded pool, a redelivered try could start beside a body that is
still running and real concurrency would exceed the limit. Here a body holds one of ``size``
threads until it actually returns; a try whose body cannot start yet waits (and can be abandoned
while waiting). The threads are daemon threads, so a stuck handler never keeps the process from
exiting once the worker has stopped (a second Ctrl-C).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from ._native import Task

_log = logging.getLogger("jetjobs")

_Work = tuple["concurrent.futures.Future[Any]", contextvars.Context, Callable[[Task], Any], Task]


class HandlerThreads:
    """A fixed-size pool of daemon threads for sync handler bodies, started on demand."""

    def __init__(self, size: int) -> None:
        # An unusable size is the engine's to report (InvalidOption when the worker connects).
        self.size = max(1, size)
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._work: queue.SimpleQueue[_Work] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads = 0

    async def run(self, fn: Callable[[Task], Any], task: Task) -> Any:
        """``fn(task)`` on a pool thread, in a copy of the caller's contextvars."""
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._submit((done, contextvars.copy_context(), fn, task))
        try:
            return await asyncio.wrap_future(done)
        except asyncio.CancelledError:
            # Still queued: cancelled with the awaiter and never runs. Running: it cannot be
            # stopped, so it keeps its thread (and its share of the limit) until it returns.
            if not done.cancelled():
                _log.warning(
                    "sync handler for task %s (%s) overran its deadline (or the worker stopped): "
                    "it keeps its thread, and its share of the concurrency limit, until it returns",
                    task.id,
                    task.type,
                )
                done.add_done_callback(
                    lambda _: _log.warning("the overrunning handler for task %s returned", task.id)
                )
            raise

    def _submit(self, work: _Work) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._reset()  # a forked child has none of its parent's threads
            self._work.put(work)
            if self._idle.acquire(blocking=False) or self._threads >= self.size:
                return
            self._threads += 1
            threading.Thread(
                target=self._serve, name=f"jetjobs-handler-{self._threads}", daemon=True
            ).start()

    def _serve(self) -> None:
        work, idle = self._work, self._idle
        while True:
            item = work.get()
            done, context, fn, task = item
            if done.set_running_or_notify_cancel():
                try:
                    result = context.run(fn, task)
                except BaseException as e:
                    done.set_exception(e)
                else:
                    done.set_result(result)
                del done, context, fn, task, item
            idle.release()
