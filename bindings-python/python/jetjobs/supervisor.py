# SPDX-License-Identifier: Apache-2.0
"""Supervised workers and jobs (the engine's ``jetjobs::supervisor``), after ``runutil``.

A *worker* runs until its :class:`~jetjobs.CancellationToken` is cancelled; a *job* runs once.
Either is an ``async def f(cancel)`` (a plain ``def`` runs on a worker thread) or what
:func:`repeat`, :func:`retry`, :func:`retry_job` or :func:`distributed_repeat` return::

    async def report(cancel: jetjobs.CancellationToken) -> None: ...

    async def serve(cancel: jetjobs.CancellationToken) -> None:
        await cancel.cancelled()

    await supervisor.run_all_workers(supervisor.repeat(60, report), serve, cancel=shutdown)

:func:`run_all_workers` runs workers until all have returned; the first to return cancels the
others. An exception a worker raises comes back out as that same exception when it is the only
error; several errors raise :class:`~jetjobs.WorkersFailed`, whose ``errors`` lists them; a worker
returning before it was cancelled raises :class:`~jetjobs.WorkerExitedPrematurely`.
:class:`WorkerGroup` names workers, restarts some with a backoff and reports their health.
"""

from __future__ import annotations

from ._native.supervisor import (
    HEALTHY_AFTER,
    MIN_RESTART_DELAY,
    REPEAT_BUCKET,
    Job,
    Worker,
    WorkerGroup,
    backoff_delay,
    distributed_repeat,
    repeat,
    retry,
    retry_job,
    run_all_jobs,
    run_all_workers,
    wait,
)

__all__ = [
    "HEALTHY_AFTER",
    "MIN_RESTART_DELAY",
    "REPEAT_BUCKET",
    "Job",
    "Worker",
    "WorkerGroup",
    "backoff_delay",
    "distributed_repeat",
    "repeat",
    "retry",
    "retry_job",
    "run_all_jobs",
    "run_all_workers",
    "wait",
]
