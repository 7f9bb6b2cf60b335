# SPDX-License-Identifier: Apache-2.0
"""The keyed job pool's handler protocol: what :meth:`PoolNode.add_worker` takes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._native import PoolJob


class JobHandler(Protocol):
    """Starts and stops the jobs of one pool worker.

    ``start`` and ``stop`` are control calls: start the work (e.g. with ``asyncio.create_task``)
    and return. A start may be repeated for a key after a crash elsewhere, so both should be
    idempotent. An exception from ``start`` refuses the job: ``dispatch_job`` raises
    ``JobStartFailed`` with its message. A handler may also define
    ``async def notify(self, key: str, payload: bytes) -> None`` for
    :meth:`PoolNode.notify_worker`; without one, notifications for its jobs are refused.
    """

    async def start(self, job: PoolJob) -> None:
        """Start ``job`` (``job.generation`` rises with every change of owner)."""

    async def stop(self, key: str) -> None:
        """Stop the job ``key``."""
