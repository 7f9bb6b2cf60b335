# SPDX-License-Identifier: Apache-2.0
"""``App``: connection options, handler registration, producing, and the worker that runs them."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Union

if TYPE_CHECKING:  # annotations only: no runtime dependency on typing_extensions
    from typing_extensions import Unpack

from . import _native
from ._governor import Governor
from ._native import (
    DEFAULT_CONCURRENCY,
    CancellationToken,
    Client,
    ClientOptions,
    EventStream,
    GovernorManager,
    Kv,
    KvBucket,
    Mux,
    Priority,
    Queue,
    QueueHandle,
    Responder,
    RetryPolicy,
    ScheduledTask,
    ScheduleWatch,
    StorageAdmin,
    Task,
    TaskScheduler,
    TaskSigner,
    TaskVerifier,
    TraceContext,
    Worker,
    is_valid_name,
)
from ._queues import QueueLike, Queues
from ._routes import Decoder, Encoder, Handler, Middleware, Route
from ._states import TaskState
from ._threads import HandlerThreads
from ._tracing import producing, sending
from .errors import Closed, DuplicateHandler, InvalidOption, InvalidTaskType, JetJobsError

DEFAULT_URL = "nats://127.0.0.1:4222"
"""Where :class:`App` connects when no URL is given."""

_PathLike = Union[str, "os.PathLike[str]"]
_Duration = Union[timedelta, float]


class DeadLetterFilter(TypedDict, total=False):
    """Which dead letters :meth:`App.dead_letters` lists; every filter given must match."""

    queue: str | None
    task_type: str | None
    error_contains: str | None
    older_than: timedelta | float | None
    states: Sequence[str] | None
    limit: int


class TaskOptions(TypedDict, total=False):
    """What :meth:`App.enqueue` takes besides the type and payload: :class:`Task`'s keywords.

    ``deadline`` is an aware datetime, a timedelta from now or RFC 3339 text; ``depends_on``
    lists tasks (or ids) that must complete first, whose results the handler gets in
    ``task.dependency_results`` when ``load_dependency_results`` is set; ``unique_key`` makes the
    enqueue return the pending task holding that key (also for ``unique_for`` after it is final).
    The task does not start before ``run_at`` (like ``deadline``) or ``delay`` (a timedelta or
    seconds from now), not both. On an ordered queue, tasks sharing an ``order_key`` run one at a
    time in enqueue order. ``trace_context`` is sent instead of the current span's.
    """

    id: str | None
    deadline: datetime | timedelta | str | None
    max_tries: int | None
    depends_on: Iterable[str | Task]
    load_dependency_results: bool
    unique_key: str | None
    unique_for: timedelta | float | None
    run_at: datetime | timedelta | str | None
    delay: timedelta | float | None
    order_key: str | None
    trace_context: TraceContext | None


_H = TypeVar("_H", bound=Callable[..., Any])
_log = logging.getLogger("jetjobs")


async def connect(url: str = DEFAULT_URL, **options: Any) -> Client:
    """Connect a :class:`Client`; ``options`` are :class:`ClientOptions` keywords."""
    return await ClientOptions(**options).connect(url)


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


async def _together(runs: list[Awaitable[None]], shutdown: CancellationToken) -> None:
    """Awaits every run; the first to fail stops the others gracefully, then raises its error."""
    tasks = [asyncio.ensure_future(run) for run in runs]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    if any(t.done() and not t.cancelled() and t.exception() is not None for t in tasks):
        shutdown.cancel()
    await asyncio.gather(*tasks)


class App:
    """A jetjobs application: connection options, handlers, and the worker that runs them.

    Every option maps to the engine's: ``queue`` (a :class:`Queue` or a name) is the default queue
    to enqueue to and work on, ``queues`` the settings of other queues that handlers and enqueues
    name (a name alone gets the engine's defaults), ``retry_policy`` a :class:`RetryPolicy` or one
    of :data:`RETRY_POLICY_NAMES`, ``concurrency`` the handlers this worker runs at once, one
    budget shared by every queue (each also held to its own ``max_concurrent``), and ``priority``
    how that budget is shared while several queues have tasks waiting. Signing takes a
    :class:`TaskSigner`, hex text or raw bytes (or a seed file); verification likewise, with
    ``signatures_optional`` to accept unsigned tasks. ``discard`` lists final states whose tasks are
    deleted instead of kept. ``encoder`` turns payloads into bytes (default: JSON) and ``decoder``
    turns them back for handlers (default: JSON). ``task_scheduler`` names a :class:`TaskScheduler`
    that :meth:`run` runs too (see :meth:`create_schedule`), and ``prometheus_port`` makes workers
    and schedulers serve metrics on ``http://0.0.0.0:<port>/metrics`` (see :func:`render_metrics`).

    The connection is made on first use, from any event loop or thread (racing first uses make
    one connection); :meth:`close` or ``async with App(...) as app:`` closes it.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        queue: Queue | str | None = None,
        queues: Iterable[Queue | str] = (),
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
        priority: Priority | None = None,
        encoder: Encoder | None = None,
        decoder: Decoder | None = None,
        task_scheduler: str | None = None,
        prometheus_port: int | None = None,
    ) -> None:
        self.url = url
        if queue is None:
            queue = Queue.default_queue()
        elif isinstance(queue, str):
            queue = Queue(queue)
        verifier = _verifier(verification_key, verification_key_file)
        discard_states = [str(s) for s in discard]
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
            verification_key=verifier,
            signatures_optional=signatures_optional,
            discard_states=discard_states,
            shutdown_grace=shutdown_grace,
            prometheus_port=prometheus_port,
        )
        # What the worker of `run()` gets; the connection options above validate the same values
        # when connecting.
        self._worker_options: dict[str, Any] = {
            "concurrency": concurrency,
            "retry_policy": retry_policy,
            "discard_states": discard_states,
            "shutdown_grace": shutdown_grace,
            "verification_key": verifier,
            "signatures_optional": signatures_optional,
            "priority": priority,
            "task_scheduler": task_scheduler,
        }
        self._queues = Queues(queue, queues)
        self._encoder = encoder
        self._decoder = decoder
        self._middleware: list[Middleware] = []
        self._routes: list[Route] = []
        # Request-reply routes need the connection: they join their queue's mux when a run starts.
        self._request_replies: list[tuple[str, str]] = []
        # Governed routes as (queue, task type, governor or its name, per-key pointer), likewise.
        self._governed: list[tuple[str, str, Governor | str, str | None]] = []
        self._responders: dict[str, tuple[Route, dict[str, Any]]] = {}
        self._threads = HandlerThreads(DEFAULT_CONCURRENCY if concurrency is None else concurrency)
        self._client: Client | None = None
        self._closed = False
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # Each `run()`'s shutdown token, and once it started, a token cancelled when it ends.
        self._running: dict[CancellationToken, CancellationToken | None] = {}

    # --- handlers --------------------------------------------------------------------------

    def task(
        self,
        task_type: str,
        *,
        queue: QueueLike | None = None,
        middleware: Sequence[Middleware] = (),
        governor: Governor | str | None = None,
        governor_key: str | None = None,
    ) -> Callable[[_H], _H]:
        """Register the decorated function for ``task_type`` (an exact type or a prefix).

        It handles tasks of ``queue`` (a :class:`Queue` or a name; default: the app's queue); a
        type may be registered on several queues.

        With ``governor`` (a governor's name, or a :class:`Governor` for another subject or
        interval) a task starts only while holding one of that governor's slots, shared by every
        process: at most its limit run at once. A task waiting for a slot uses no try and no
        handler slot; its slot is given back when the handler ends, or kept until the governor's
        max age with ``Governor(..., without_leaving=True)`` (a rate limit: at most ``limit``
        starts per max age). Create the governor first (:meth:`governor_manager`).

        With ``governor_key`` too, ``governor`` names a per-key governor
        (``governor_manager(name, limit, per_key=True)``: at most ``limit`` at once *per key*, e.g.
        per tenant) and ``governor_key`` is a JSON pointer (RFC 6901) into the task's JSON payload
        whose value is the key: ``governor="TENANT", governor_key="/tenant"``. A string is used as
        it is, a number as its text (``42``). A task whose payload has no usable key there (not
        JSON, missing, another type, or not one NATS subject token: empty, or with ``.``, ``*``,
        ``>`` or whitespace) takes no slot: it is terminated with the reason in ``last_err``, as
        retrying it could never succeed.

        ``async def`` handlers run on the worker's event loop; plain functions run in a worker
        thread and never block it. The return value (JSON-serialisable) becomes the task result;
        ``raise TerminateTask(reason)`` terminates the task; any other exception is a failed try,
        retried per the retry policy, with ``"<type>: <message>"`` in ``last_err``.
        """

        def register(handler: _H) -> _H:
            self.handle(
                task_type,
                handler,
                queue=queue,
                middleware=middleware,
                governor=governor,
                governor_key=governor_key,
            )
            return handler

        return register

    def handle(
        self,
        task_type: str,
        handler: Handler,
        *,
        queue: QueueLike | None = None,
        middleware: Sequence[Middleware] = (),
        governor: Governor | str | None = None,
        governor_key: str | None = None,
    ) -> None:
        """Register ``handler`` for ``task_type``, like :meth:`task` without the decorator.

        Raises ``InvalidTaskType`` for a type no task can have (``""`` is the catch-all route),
        ``TypeError`` for a handler that is not callable, a ``governor`` that is neither a
        name nor a :class:`Governor`, or a ``governor_key`` without a governor name,
        ``InvalidOption`` for a ``governor_key`` that is not a JSON pointer, and
        ``DuplicateHandler`` if the type already has a handler on that queue. A governor name is
        checked when :meth:`run` starts (``InvalidOption``).
        """
        if task_type and not is_valid_name(task_type):
            raise InvalidTaskType(
                f"cannot route task type {task_type!r}: a task type or prefix must match "
                "^[a-zA-Z0-9_:-]+$ (or be '' to catch every type)"
            )
        if not callable(handler):
            raise TypeError(
                f"the handler for {task_type!r} must be callable, not {type(handler).__name__}"
            )
        if governor is not None and not isinstance(governor, (str, _native.Governor)):
            raise TypeError(
                f"the governor for {task_type!r} must be a name or a Governor, "
                f"not {type(governor).__name__}"
            )
        if governor_key is not None:
            if not isinstance(governor, str):
                raise TypeError(
                    f"governor_key for {task_type!r} needs governor= set to a per-key governor's "
                    "name"
                )
            if not isinstance(governor_key, str):
                raise TypeError(
                    f"the governor_key for {task_type!r} must be a JSON pointer string, "
                    f"not {type(governor_key).__name__}"
                )
            if governor_key and not governor_key.startswith("/"):
                raise InvalidOption(
                    f"the governor_key for {task_type!r} must be a JSON pointer (RFC 6901): '' for "
                    f"the whole payload, or starting with '/', e.g. '/tenant'; got {governor_key!r}"
                )
        name = self._queues.name(queue)
        self._refuse_duplicate(name, task_type)
        route = Route(task_type, handler, middleware, self._decoder, self._threads)
        route.chain = route.compose(self._middleware)
        # Every route is async to the engine: sync handlers run on `self._threads`, one pool for
        # every queue, sized like the worker's concurrency budget.
        self._queues.mux(name).handle(task_type, route, is_async=True)
        self._routes.append(route)
        if governor is not None:
            self._governed.append((name, task_type, governor, governor_key))

    def request_reply(self, task_type: str, *, queue: QueueLike | None = None) -> None:
        """Route ``task_type`` on ``queue`` to remote responders, as asyncjobs' ``RequestReply``.

        Each try sends the task as a NATS request to ``CHORIA_AJ.H.T.<task_type>`` (``catchall``
        for ``""``) with asyncjobs' headers, to a Go service or a :meth:`responder`. A reply with
        ``AJ-Terminate`` terminates the task, one with ``AJ-Error`` fails the try; any other reply
        completes it with the reply bytes, stored base64-encoded as asyncjobs stores them. No
        responder (``request-reply callout failed: ...``) or under 3 s left (``deadline too
        short``) fail the try. Registered on the connection when :meth:`run` starts. App
        middleware does not wrap it.
        """
        name = self._delegated_route(task_type, queue)
        self._request_replies.append((name, task_type))

    def external_process(
        self, task_type: str, command: _PathLike, *, queue: QueueLike | None = None
    ) -> None:
        """Route ``task_type`` on ``queue`` to a command, as asyncjobs' ``ExternalProcess``.

        Each try runs ``command`` with no arguments, no stdin and only ``CHORIA_AJ_TASK`` in its
        environment: the path of a temporary file holding the task document. Exit 0 completes the
        task with the command's combined stdout and stderr as a string; another exit fails the try
        (``execution failed: exit status N``), as does a missing command (``command not found``,
        checked on each try). App middleware does not wrap it.
        """
        name = self._delegated_route(task_type, queue)
        self._queues.mux(name).external_process(task_type, command)

    def responder(
        self,
        task_type: str,
        *,
        concurrency: int | None = None,
        queue_group: str | None = None,
        middleware: Sequence[Middleware] = (),
    ) -> Callable[[_H], _H]:
        """Serve ``task_type`` to request-reply workers with the decorated function while running.

        Go asyncjobs workers that route the type with ``RequestReply`` (and jetjobs ones with
        :meth:`request_reply`) send each try to it on ``CHORIA_AJ.H.T.<task_type>`` (``""``:
        ``catchall``); responders of the type share ``queue_group`` (default: the subject). The
        handler is written as for :meth:`task`: its result goes back as JSON (the caller stores
        it base64-encoded), ``TerminateTask`` terminates the task and any other exception fails
        the try. ``task.context`` has the caller's deadline. :meth:`run` serves every responder,
        ``concurrency`` calls each at once (default 10), and runs a worker only if the app also
        has routes.
        """
        if task_type and not is_valid_name(task_type):
            raise InvalidTaskType(
                f"cannot serve task type {task_type!r}: it must match ^[a-zA-Z0-9_:-]+$"
            )
        if task_type in self._responders:
            raise DuplicateHandler(f"duplicate responder for task type {task_type!r}")
        options = {"concurrency": concurrency, "queue_group": queue_group}

        def register(handler: _H) -> _H:
            route = Route(task_type, handler, middleware, self._decoder, self._threads)
            route.chain = route.compose(self._middleware)
            self._routes.append(route)
            self._responders[task_type] = (route, options)
            return handler

        return register

    def _delegated_route(self, task_type: str, queue: QueueLike | None) -> str:
        """The queue of a new delegated route; refuses a type no task can have or a duplicate."""
        if task_type and not is_valid_name(task_type):
            raise InvalidTaskType(
                f"cannot route task type {task_type!r}: a task type or prefix must match "
                "^[a-zA-Z0-9_:-]+$ (or be '' to catch every type)"
            )
        name = self._queues.name(queue)
        self._refuse_duplicate(name, task_type)
        return name

    def _refuse_duplicate(self, queue: str, task_type: str) -> None:
        mux = self._queues.existing_mux(queue)
        taken = mux is not None and mux.route_for(task_type) == task_type
        if taken or (queue, task_type) in self._request_replies:
            raise DuplicateHandler(
                f"duplicate handler for task type {task_type!r} on queue {queue}"
            )

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

    def route_for(self, task_type: str, *, queue: QueueLike | None = None) -> str | None:
        """The registered type that ``task_type`` routes to on ``queue`` (default: the app's)."""
        mux = self._queues.existing_mux(self._queues.name(queue))
        return None if mux is None else mux.route_for(task_type)

    @property
    def mux(self) -> Mux:
        """The :class:`Mux` of the app's default queue; :meth:`run` consumes its handlers."""
        return self._queues.mux(self._queues.default)

    # --- producing -------------------------------------------------------------------------

    def _make_task(self, task: str | Task, payload: Any, options: TaskOptions) -> Task:
        if isinstance(task, Task):
            if payload is not None or options:
                raise TypeError("give a Task, or a task type with its payload and options")
            return task
        if isinstance(payload, (bytearray, memoryview)):
            payload = bytes(payload)
        elif self._encoder is not None and not isinstance(payload, bytes):
            payload = self._encoder(payload)
        parents = [d.id if isinstance(d, Task) else d for d in options.get("depends_on", ())]
        return Task(
            task,
            payload,
            id=options.get("id"),
            deadline=options.get("deadline"),
            max_tries=options.get("max_tries"),
            depends_on=parents or None,
            load_dependency_results=options.get("load_dependency_results", False),
            unique_key=options.get("unique_key"),
            unique_for=options.get("unique_for"),
            run_at=options.get("run_at"),
            delay=options.get("delay"),
            order_key=options.get("order_key"),
            trace_context=options.get("trace_context"),
        )

    async def enqueue(
        self,
        task: str | Task,
        payload: Any = None,
        *,
        queue: QueueLike | None = None,
        **options: Unpack[TaskOptions],
    ) -> Task:
        """Store a task and its work item on ``queue`` (default: the app's); returns the task.

        ``task`` is a type (``payload`` and the keywords describe the task, see
        :class:`TaskOptions`) or a ready :class:`Task`. ``payload`` is JSON-encoded (or given to
        ``encoder``); ``bytes`` are stored as they are. ``queue`` is a :class:`Queue` or a name,
        opened (created unless it exists) on first use. With ``unique_key``, the pending task
        holding that key is returned instead when there is one.

        With OpenTelemetry installed, the enqueue runs in a ``jetjobs.enqueue`` span whose context
        the task carries to its handler's ``jetjobs.handle`` span (unless it has a
        ``trace_context`` of its own).
        """
        made = self._make_task(task, payload, options)
        handle = await self.queue(queue)
        with producing(handle.name, 1) as context:
            (made,) = sending([made], context)
            return await handle.enqueue(made)

    def enqueue_sync(
        self,
        task: str | Task,
        payload: Any = None,
        *,
        queue: QueueLike | None = None,
        **options: Unpack[TaskOptions],
    ) -> Task:
        """:meth:`enqueue` for code without an event loop (any thread; the GIL is released)."""
        made = self._make_task(task, payload, options)
        handle = self.queue_sync(queue)
        with producing(handle.name, 1) as context:
            (made,) = sending([made], context)
            return handle.enqueue_sync(made)

    def _make_tasks(self, tasks: Iterable[Task | tuple[str, Any]]) -> list[Task]:
        made = []
        for task in tasks:
            if isinstance(task, Task):
                made.append(task)
                continue
            task_type, payload = task
            made.append(self._make_task(task_type, payload, {}))
        return made

    async def enqueue_many(
        self, tasks: Iterable[Task | tuple[str, Any]], *, queue: QueueLike | None = None
    ) -> list[Task | JetJobsError]:
        """Store many tasks on ``queue`` with pipelined writes, each as :meth:`enqueue` would.

        ``tasks`` are :class:`Task` objects or ``(type, payload)`` pairs (encoded as by
        :meth:`enqueue`). Returns one entry per task, in order: the stored task, or the
        :class:`JetJobsError` its enqueue failed with; one failure does not stop the others.
        """
        made = self._make_tasks(tasks)
        handle = await self.queue(queue)
        with producing(handle.name, len(made)) as context:
            return await handle.enqueue_many(sending(made, context))

    def enqueue_many_sync(
        self, tasks: Iterable[Task | tuple[str, Any]], *, queue: QueueLike | None = None
    ) -> list[Task | JetJobsError]:
        """:meth:`enqueue_many` for code without an event loop."""
        made = self._make_tasks(tasks)
        handle = self.queue_sync(queue)
        with producing(handle.name, len(made)) as context:
            return handle.enqueue_many_sync(sending(made, context))

    async def enqueue_chain(
        self, tasks: Iterable[Task | tuple[str, Any]], *, queue: QueueLike | None = None
    ) -> list[Task]:
        """Enqueue ``tasks`` as a chain, each step after the previous one completed.

        Each step gets the previous result in ``task.dependency_results``. Items are
        :class:`Task` objects or ``(type, payload)`` pairs. Returns the stored tasks; raises the
        first error (the steps before it are enqueued). A failed step makes the ones after it
        ``unreachable``.
        """
        made = self._make_tasks(tasks)
        handle = await self.queue(queue)
        with producing(handle.name, len(made)) as context:
            return await handle.enqueue_chain(sending(made, context))

    async def enqueue_chord(
        self,
        group: Iterable[Task | tuple[str, Any]],
        callback: Task | tuple[str, Any],
        *,
        queue: QueueLike | None = None,
    ) -> tuple[list[Task], Task]:
        """Enqueue ``group`` to run in parallel, then ``callback`` with all their results.

        The callback runs after every member completed, with their results in
        ``task.dependency_results``. Returns ``(group, callback)`` as stored. A failed member
        makes the callback ``unreachable``.
        """
        made = self._make_tasks([*group, callback])
        handle = await self.queue(queue)
        with producing(handle.name, len(made)) as context:
            *members, made_callback = sending(made, context)
            return await handle.enqueue_chord(members, made_callback)

    async def wait_for(self, task: Task | str, *, timeout: timedelta | float | None = None) -> Task:
        """Wait until ``task`` (a :class:`Task` or an id, of any queue) is final.

        Returns the task when it completed (its result in ``task.result``); raises
        :class:`TaskFailed` (with its state and last error) when it expired, was terminated or
        is unreachable, and :class:`Timeout` after ``timeout`` (a ``timedelta`` or seconds;
        ``None`` waits for as long as it takes). Every waiter shares one subscription to task
        events; none polls.
        """
        task_id = task.id if isinstance(task, Task) else task
        return await (await self.client()).wait_for(task_id, timeout)

    async def enqueue_and_wait(
        self,
        task: str | Task,
        payload: Any = None,
        *,
        timeout: timedelta | float | None = None,
        queue: QueueLike | None = None,
        **options: Unpack[TaskOptions],
    ) -> Task:
        """:meth:`enqueue` (with its keywords), then :meth:`wait_for` the task."""
        stored = await self.enqueue(task, payload, queue=queue, **options)
        return await self.wait_for(stored, timeout=timeout)

    async def cancel(self, task: Task | str, reason: str = "cancelled") -> Task:
        """Cancel ``task`` (a :class:`Task` or an id, of any queue); returns it as stored after.

        A pending task is stored as ``terminated`` (``last_err`` ``cancelled: <reason>``) and
        never runs. A running one's handler is cancelled in whichever worker process runs it (an
        ``async`` handler gets ``asyncio.CancelledError``) and the task is stored as
        ``terminated`` with the reason. A final task is returned as it is.
        """
        task_id = task.id if isinstance(task, Task) else task
        return await (await self.client()).cancel(task_id, reason)

    async def dead_letters(self, **filters: Unpack[DeadLetterFilter]) -> list[Task]:
        """Terminated, expired and unreachable tasks matching every filter given.

        Filters: ``queue``, ``task_type``, ``error_contains`` (text in ``last_err``),
        ``older_than`` (a ``timedelta`` or seconds since the task ended), ``states`` and ``limit``
        (stored tasks scanned, 1000 by default).
        """
        return await (await self.admin()).dead_letters(**filters)

    async def purge_dead_letters(self, **filters: Unpack[DeadLetterFilter]) -> int:
        """Delete the dead letters matching every filter given (see :meth:`dead_letters`)."""
        return await (await self.admin()).purge_dead_letters(**filters)

    async def replay(
        self,
        tasks: Iterable[Task | str],
        *,
        progress: Callable[[int, int], Any] | None = None,
        batch: int = 100,
    ) -> list[Task | JetJobsError]:
        """Enqueue dead letters again, each on its own queue (state ``retry``, tries reset).

        Returns one entry per task, in order: the task, or the exception its replay failed
        with. ``progress(done, total)`` is called (on this event loop) after each ``batch``.
        """
        ids = [t.id if isinstance(t, Task) else t for t in tasks]
        client = await self.client()
        out: list[Task | JetJobsError] = []
        for start in range(0, len(ids), max(batch, 1)):
            out.extend(await client.replay(ids[start : start + max(batch, 1)]))
            if progress is not None:
                progress(len(out), len(ids))
        return out

    async def load_task(self, id: str) -> Task:
        """Load a task by id (verifying its signature when a verification key is set)."""
        return await (await self.client()).load_task(id)

    async def retry_task(self, id: str, *, queue: QueueLike | None = None) -> Task:
        """Enqueue a stored task again on ``queue`` (default: the app's), tries reset.

        The task is stored in state ``retry`` with its result cleared.
        """
        return await (await self.queue(queue)).retry_task(id)

    async def queue(self, queue: QueueLike | None = None) -> QueueHandle:
        """The open :class:`QueueHandle` of ``queue`` (default: the app's queue).

        ``queue`` is a :class:`Queue` or a name; it is created unless it exists on first use, and
        the handle is cached by name.
        """
        name = self._queues.name(queue)
        client = await self.client()
        handle = self._queues.cached(client, name)
        if handle is None:
            handle = await client.open_queue(self._queues.settings(name))
            if self._client is client:  # not closed meanwhile: cache it
                handle = self._queues.keep(name, handle)
        return handle

    def queue_sync(self, queue: QueueLike | None = None) -> QueueHandle:
        """:meth:`queue` for code without an event loop."""
        name = self._queues.name(queue)
        client = self.client_sync()
        handle = self._queues.cached(client, name)
        if handle is None:
            handle = client.open_queue_sync(self._queues.settings(name))
            if self._client is client:  # not closed meanwhile: cache it
                handle = self._queues.keep(name, handle)
        return handle

    async def kv(self, bucket: KvBucket | str) -> Kv:
        """A key-value bucket, created unless it exists.

        ``bucket`` is a :class:`KvBucket`, or a name for a bucket with the defaults.
        """
        if isinstance(bucket, str):
            bucket = KvBucket(bucket)
        return await (await self.client()).kv(bucket)

    async def events(self) -> EventStream:
        """Subscribe to lifecycle events; iterate with ``async for`` and ``close()`` when done.

        Events are not persisted: only those published after this returns are seen.
        """
        return await (await self.client()).events()

    async def admin(self) -> StorageAdmin:
        """Storage administration: list, inspect, purge and delete queues and tasks."""
        return (await self.client()).admin()

    # --- governors ------------------------------------------------------------------------

    async def governor(
        self,
        name: str,
        *,
        subject: str | None = None,
        interval: _Duration | None = None,
        backoff: RetryPolicy | str | None = None,
        without_leaving: bool = False,
        lifecycle_component: str | None = None,
        lifecycle_identity: str | None = None,
    ) -> Governor:
        """A :class:`Governor` campaigning for slots of governor ``name`` (choria's, on the wire).

        ``async with governor.slot("holder", max_wait=60):`` holds a slot for the block.
        ``subject`` defaults to ``$GOVERNOR.campaign.<name>`` (choria's CLI and agents use
        ``GovernorManager.collective_subject(collective, name)``).

        With ``lifecycle_component`` it publishes choria's lifecycle events on
        ``choria.lifecycle.event.governor.<component>``: ``enter`` when it gets a slot, ``exit``
        when the slot is released, ``timeouts`` when ``start`` gives up; their identity is
        ``lifecycle_identity``, by default each holder's name. Publishing never fails a campaign.
        """
        return Governor(
            await self.client(),
            name,
            subject=subject,
            interval=interval,
            backoff=backoff,
            without_leaving=without_leaving,
            lifecycle_component=lifecycle_component,
            lifecycle_identity=lifecycle_identity,
        )

    async def governor_manager(
        self,
        name: str,
        limit: int | None = None,
        *,
        max_age: _Duration | None = None,
        replicas: int = 1,
        subject: str | None = None,
        per_key: bool = False,
        lifecycle_component: str | None = None,
    ) -> GovernorManager:
        """Governor ``name``, created (or updated) with ``limit`` and the settings given.

        Without ``limit`` it is only loaded: ``GovernorNotFound`` if it does not exist. With
        ``per_key=True`` it is a per-key governor (a jetjobs extension): at most ``limit`` holders
        *per key*, for routes with ``governor_key`` (an existing one is used as it is; it has no
        ``subject``). With ``lifecycle_component``, :meth:`GovernorManager.evict` publishes
        choria's ``eviction`` lifecycle event on ``choria.lifecycle.event.governor.<component>``.
        """
        client = await self.client()
        if limit is None:
            return await GovernorManager.load(client, name, lifecycle_component=lifecycle_component)
        if per_key:
            if subject is not None:
                raise TypeError("a per-key governor's subjects are its own: no subject=")
            return await GovernorManager.create_per_key(
                client,
                name,
                limit,
                max_age=max_age,
                replicas=replicas,
                lifecycle_component=lifecycle_component,
            )
        return await GovernorManager.create(
            client,
            name,
            limit,
            max_age=max_age,
            replicas=replicas,
            subject=subject,
            lifecycle_component=lifecycle_component,
        )

    async def governors(self, collective: str) -> list[str]:
        """Names of the governors of ``collective`` (subjects ``<collective>.governor.*``)."""
        return await GovernorManager.list(await self.client(), collective)

    # --- schedules -------------------------------------------------------------------------

    async def create_schedule(
        self,
        name: str,
        schedule: str,
        task: str | Task,
        payload: Any = None,
        *,
        queue: QueueLike | None = None,
        deadline: timedelta | float | None = None,
        max_tries: int | None = None,
    ) -> ScheduledTask:
        """Store schedule ``name``: a task enqueued on ``queue`` (default: the app's) at each time.

        ``schedule`` is asyncjobs' cron syntax: five fields (``0 2 * * *``), ``@daily`` and the
        other descriptors, or ``@every 10m``. ``task`` is a type (``payload`` encoded as by
        :meth:`enqueue`) or a ready :class:`Task`; ``deadline`` (a ``timedelta`` or seconds, at
        least 30 s) is each task's deadline from its creation. The elected scheduler of any
        process (a :class:`TaskScheduler`, an app with ``task_scheduler``, or Go asyncjobs') fires
        it without a restart. The queue is opened now (created unless it exists), as schedulers
        that do not create queues need. Raises ``ScheduleExists``, ``InvalidSchedule``,
        ``InvalidScheduleName`` or ``ScheduleDeadlineTooShort``.
        """
        if isinstance(deadline, (int, float)):
            deadline = timedelta(seconds=deadline)
        options: TaskOptions = {}
        if deadline is not None:
            options["deadline"] = deadline
        if max_tries is not None:
            options["max_tries"] = max_tries
        made = ScheduledTask(
            name, schedule, self._queues.name(queue), self._make_task(task, payload, options)
        )
        await self.queue(queue)
        return await (await self.client()).create_schedule(made)

    async def load_schedule(self, name: str) -> ScheduledTask:
        """The schedule named ``name``; raises ``ScheduleNotFound`` if there is none."""
        return await (await self.client()).load_schedule(name)

    async def schedules(self) -> list[ScheduledTask]:
        """Every schedule, by name."""
        return await (await self.client()).schedules()

    async def remove_schedule(self, name: str) -> None:
        """Remove the schedule named ``name``; raises ``ScheduleNotFound`` if there is none."""
        await (await self.client()).remove_schedule(name)

    async def watch_schedules(self) -> ScheduleWatch:
        """Every schedule as it is, then each change: iterate with ``async for``, then ``close()``.

        Each item is a :class:`ScheduleChange`: ``kind`` ``"stored"`` with the ``schedule``, or
        ``"removed"`` with only the ``name``.
        """
        return await (await self.client()).watch_schedules()

    # --- connection and worker -------------------------------------------------------------

    async def client(self) -> Client:
        """The connected :class:`Client`, connecting on first use.

        It connects again in a child made by ``os.fork()``; after :meth:`close` it raises
        :class:`Closed`. Racing first calls, from any event loops or threads, make one connection.
        """
        self._forget_parent()
        client = self._client
        if client is not None:
            return client
        if self._closed:
            raise Closed("the app was closed")
        # Connected in a thread under the app's lock (the GIL is released while connecting), so
        # the event loop keeps running and a racing call waits for this connection.
        return await asyncio.get_running_loop().run_in_executor(None, self.client_sync)

    def client_sync(self) -> Client:
        """:meth:`client` for code without an event loop."""
        self._forget_parent()
        with self._lock:
            if self._closed:
                raise Closed("the app was closed")
            if self._client is None:
                self._client = self.options.connect_sync(self.url)
            return self._client

    async def close(self) -> None:
        """Stop this app's workers, wait for their graceful shutdown, then close the connection.

        What was published is flushed first. Closing is final: later calls raise :class:`Closed`
        (closing again does nothing). Not for use inside a handler (it would wait for itself).
        """
        self._forget_parent()
        self._closed = True
        runs = list(self._running.items())
        for shutdown, _ in runs:
            shutdown.cancel()
        for _, finished in runs:
            if finished is not None:
                await finished.cancelled()
        with self._lock:
            client, self._client = self._client, None
            self._queues.forget_handles()
        if client is not None:
            await client.close()

    def _forget_parent(self) -> None:
        """In a child made by ``os.fork()``, drop what belongs to the parent's process.

        The parent's connection ran on its runtime's threads, which the child does not have: the
        child connects again on first use instead of waiting for replies that never come.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._running = {}
        self._queues.forget_handles()
        if self._client is not None:
            _log.info("jetjobs App used in a forked child: connecting again")
            self._client = None

    def run(self, *, handle_signals: bool = True) -> Coroutine[Any, Any, None]:
        """Run the handlers until :meth:`stop`, cancellation, SIGINT or SIGTERM (a coroutine).

        One worker consumes every queue with handlers (the default queue if none names one):
        handlers of all queues share the app's ``concurrency``, and each queue's own
        ``max_concurrent`` holds too. With ``task_scheduler``, a :class:`TaskScheduler` of that
        name runs alongside until the same shutdown.

        Shutdown is graceful: no new tasks are taken and running handlers get the shutdown grace
        period to finish; unfinished tasks go back to the queue without counting a try. A second
        SIGINT stops at once, even with a sync handler stuck: the engine hands the unfinished
        tasks back at once (state ``retry``, the try not counted) and ``KeyboardInterrupt`` is
        raised.
        """
        # Registered now, not when the coroutine first runs, so that `stop()` right after
        # `asyncio.ensure_future(app.run())` is not lost.
        shutdown = CancellationToken()
        self._running[shutdown] = None
        return self._run(shutdown, handle_signals)

    async def _run(self, shutdown: CancellationToken, handle_signals: bool) -> None:
        if shutdown.is_cancelled:  # stopped (or closed) before it started
            self._running.pop(shutdown, None)
            return
        finished = CancellationToken()
        self._running[shutdown] = finished
        hard_stop = CancellationToken()
        try:
            running = await self._start(shutdown, hard_stop)
        except BaseException:
            self._running.pop(shutdown, None)
            finished.cancel()
            raise
        try:
            await self._wait(shutdown, hard_stop, running, handle_signals)
        finally:
            finished.cancel()

    async def _start(
        self, shutdown: CancellationToken, hard_stop: CancellationToken
    ) -> asyncio.Future[None]:
        """One worker consuming every queue with handlers, and the responders, running."""
        client = await self.client()
        while self._request_replies:  # on the connection, once: the mux keeps them
            name, task_type = self._request_replies[0]
            self._queues.mux(name).request_reply(task_type, client)
            self._request_replies.pop(0)
        while self._governed:  # likewise: a governor by name campaigns on the connection
            name, task_type, governor, key = self._governed[0]
            mux = self._queues.mux(name)
            if key is not None and isinstance(governor, str):
                mux.governed_per_key_field(task_type, client, governor, key)
            else:
                if isinstance(governor, str):
                    governor = Governor(client, governor)
                mux.governed(task_type, governor)
            self._governed.pop(0)
        responders = [
            Responder(client, task_type, route, is_async=True, **options)
            for task_type, (route, options) in self._responders.items()
        ]
        for responder in responders:
            await responder.listen()  # served before any task of this worker calls out
        runs = [responder.run(shutdown) for responder in responders]
        if self._queues.has_routes() or not responders:
            worker = Worker(client, **self._worker_options)
            for name in self._queues.to_consume():
                worker.consume(await self.queue(name), self._queues.mux(name))
            runs.append(worker.run(shutdown, hard_stop))
        elif self._worker_options["task_scheduler"] is not None:  # no worker to run it in
            runs.append(TaskScheduler(client, self._worker_options["task_scheduler"]).run(shutdown))
        if len(runs) == 1:
            return asyncio.ensure_future(runs[0])
        return asyncio.ensure_future(_together(runs, shutdown))

    async def _wait(
        self,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
        running: asyncio.Future[None],
        handle_signals: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        interrupted: list[int] = []
        signals = []
        if handle_signals:
            signals = self._install_signals(loop, shutdown, hard_stop, interrupted)
        cancelled = False
        try:
            while not running.done():
                try:
                    await asyncio.shield(running)
                except asyncio.CancelledError:
                    if running.done():
                        break
                    cancelled = True
                    shutdown.cancel()
        finally:
            self._running.pop(shutdown, None)
            for sig in signals:
                loop.remove_signal_handler(sig)
        if interrupted:
            raise KeyboardInterrupt
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
        self,
        loop: asyncio.AbstractEventLoop,
        shutdown: CancellationToken,
        hard_stop: CancellationToken,
        interrupted: list[int],
    ) -> list[int]:
        if threading.current_thread() is not threading.main_thread():
            return []
        installed: list[int] = []

        def on_signal(sig: int) -> None:
            if sig == signal.SIGINT and shutdown.is_cancelled:
                # The second Ctrl-C: stop now. The engine stops waiting for running handlers
                # (a stuck sync one is left to its daemon thread) and hands their tasks back;
                # `run` then raises KeyboardInterrupt. A third gets Python's default behaviour.
                interrupted.append(sig)
                loop.remove_signal_handler(sig)
                hard_stop.cancel()
                return
            shutdown.cancel()
            if sig != signal.SIGINT:
                loop.remove_signal_handler(sig)  # the next one gets the default behaviour
            else:
                _log.warning("stopping gracefully; press Ctrl-C again to stop now")

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
        await self.close()
