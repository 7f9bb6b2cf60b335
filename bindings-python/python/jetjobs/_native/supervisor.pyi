# SPDX-License-Identifier: Apache-2.0
"""Type stubs of ``jetjobs._native.supervisor``: the engine's supervised workers and jobs."""

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Final, Union, final

from typing_extensions import Self, TypeAlias

from . import CancellationToken, Client, RetryPolicy, _AppLike

_Duration: TypeAlias = Union[timedelta, float]
_Backoff: TypeAlias = Union[RetryPolicy, str]
_Fn: TypeAlias = Union[
    Callable[[CancellationToken], Awaitable[None]], Callable[[CancellationToken], None]
]

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

MIN_RESTART_DELAY: Final[timedelta]
HEALTHY_AFTER: Final[timedelta]
REPEAT_BUCKET: Final[str]

@final
class Worker:
    """A service that runs until its token is cancelled."""

    def __new__(cls, f: _Fn) -> Self: ...
    def run(self, cancel: CancellationToken) -> Awaitable[None]: ...

@final
class Job:
    """Work that runs once and returns."""

    def __new__(cls, f: _Fn) -> Self: ...
    def run_once(self, cancel: CancellationToken) -> Awaitable[None]: ...

@final
class WorkerGroup:
    """Named workers run together, each with a health."""

    def __new__(cls) -> Self: ...
    def add(self, name: str, worker: Worker | _Fn, retry: _Backoff | None = None) -> None: ...
    def health(self) -> dict[str, str]: ...
    def run(self, cancel: CancellationToken | None = None) -> Awaitable[None]: ...

def run_all_workers(
    *workers: Worker | _Fn, cancel: CancellationToken | None = None
) -> Awaitable[None]: ...
def run_all_jobs(*jobs: Job | _Fn, cancel: CancellationToken | None = None) -> Awaitable[None]: ...
def repeat(every: _Duration, job: Job | _Fn, start_immediately: bool = False) -> Worker: ...
def retry(worker: Worker | _Fn, backoff: _Backoff) -> Worker: ...
def retry_job(job: Job | _Fn, backoff: _Backoff) -> Job: ...
def wait(cancel: CancellationToken, duration: _Duration) -> Awaitable[bool]: ...
def backoff_delay(policy: _Backoff, attempt: int) -> timedelta: ...
def distributed_repeat(
    app_or_client: Client | _AppLike, name: str, every: _Duration, job: Job | _Fn
) -> Awaitable[Worker]: ...
