# SPDX-License-Identifier: Apache-2.0
"""``Governor.slot()``: a governor slot as an ``async with`` block that always gives it back."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Union

from . import _native
from ._native import CancellationToken, Lease
from .errors import JetJobsError

_Duration = Union[timedelta, float]


class Governor(_native.Governor):
    """Campaigns for slots of one governor: at most its limit of holders at once, network-wide.

    ``Governor(client, name, subject=..., interval=..., backoff=..., without_leaving=...,
    lifecycle_component=..., lifecycle_identity=...)`` is wire-compatible with choria's governor
    (go-choria ``providers/governor/streams``), and with ``lifecycle_component`` publishes its
    lifecycle events (``enter``, ``exit``, ``timeouts``) as choria does::

        async with governor.slot("host-1", max_wait=60) as lease:
            ...  # at most `limit` of these blocks run at once, across every process
    """

    def slot(
        self,
        holder: str,
        *,
        max_wait: _Duration | None = None,
        cancel: CancellationToken | None = None,
    ) -> AbstractAsyncContextManager[Lease]:
        """Campaign as ``holder`` (see :meth:`start`), hold the slot for the block, release it.

        The slot is released however the block ends. If the block raised, its exception is the
        one that propagates (a failed release is then ignored); otherwise a failed release raises,
        e.g. ``LeaseNotFound`` when the lease was evicted while held.
        """
        return _slot(self, holder, max_wait, cancel)


@contextlib.asynccontextmanager
async def _slot(
    governor: _native.Governor,
    holder: str,
    max_wait: _Duration | None,
    cancel: CancellationToken | None,
) -> AsyncIterator[Lease]:
    lease = await governor.start(holder, max_wait=max_wait, cancel=cancel)
    try:
        yield lease
    except BaseException:
        with contextlib.suppress(JetJobsError):
            await lease.release()
        raise
    await lease.release()
