# SPDX-License-Identifier: Apache-2.0
"""Handlers and middleware: the callable :class:`App` registers with the engine for a task type."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

from . import _tracing
from ._native import Task
from ._threads import HandlerThreads

Handler = Callable[[Task], Any]
"""A handler: ``def h(task) -> result`` or ``async def h(task) -> result`` (JSON-serialisable)."""

CallNext = Callable[[Task], Any]
"""What a middleware calls to run the rest of the chain; returns the result (or an awaitable)."""

Middleware = Callable[[Task, CallNext], Any]
"""``mw(task, call_next)`` wraps the handler call; not calling ``call_next`` short-circuits."""

Encoder = Callable[[Any], bytes]
"""Turns a payload into the bytes stored on the task."""

Decoder = Callable[[bytes], Any]
"""Turns stored payload bytes into what ``task.payload`` returns."""


def is_async(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, partials of them and objects with ``async __call__``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with `async def __call__`
    )


def name_of(fn: object) -> str:
    """A callable's name for messages."""
    return getattr(fn, "__qualname__", None) or repr(fn)


def _async_layer(middleware: Middleware, call_next: CallNext) -> CallNext:
    async def layer(task: Task) -> Any:
        result = middleware(task, call_next)
        if inspect.isawaitable(result):
            result = await result
        return result

    return layer


def _sync_layer(middleware: Middleware, call_next: CallNext, task: Task) -> Any:
    return middleware(task, call_next)


class Route:
    """The callable registered with the engine for one task type: decoder, middleware, handler.

    The engine sees every route as async: a sync handler's chain runs on ``threads``, whose
    bound keeps the bodies running at once within the worker's concurrency even when one
    overruns its deadline.
    """

    __slots__ = ("chain", "decoder", "handler", "is_async", "middleware", "task_type", "threads")

    def __init__(
        self,
        task_type: str,
        handler: Handler,
        middleware: Sequence[Middleware],
        decoder: Decoder | None,
        threads: HandlerThreads,
    ) -> None:
        self.task_type = task_type
        self.handler = handler
        self.middleware = list(middleware)
        self.decoder = decoder
        self.threads = threads
        self.is_async = is_async(handler)
        self.chain: CallNext = handler

    def compose(self, outer: Sequence[Middleware]) -> CallNext:
        """The handler wrapped by ``outer`` (app-wide), then the route's middleware."""
        chain: CallNext = self.handler
        for mw in reversed([*outer, *self.middleware]):
            if self.is_async:
                chain = _async_layer(mw, chain)
            elif is_async(mw):
                raise TypeError(
                    f"async middleware {name_of(mw)} cannot wrap sync handler "
                    f"{name_of(self.handler)} for {self.task_type!r}: make the handler async "
                    "or the middleware sync"
                )
            else:
                chain = functools.partial(_sync_layer, mw, chain)
        return chain

    def __call__(self, task: Task) -> Any:
        if self.decoder is not None:
            task = task.with_decoder(self.decoder)
        if _tracing.ENABLED:
            return self._traced(task)
        return self._run(task)

    def _run(self, task: Task) -> Any:
        if self.is_async:
            return self.chain(task)
        return self.threads.run(self.chain, task)

    async def _traced(self, task: Task) -> Any:
        # The span is current in this asyncio task, and so in the contextvars a sync chain's
        # thread runs in (`HandlerThreads.run` copies them when awaited, inside the span).
        with _tracing.handling(task):
            result = self._run(task)
            if inspect.isawaitable(result):
                result = await result
            return result
