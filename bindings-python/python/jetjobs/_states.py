# SPDX-License-Identifier: Apache-2.0
"""Task states as a Python enum; which of them are final is the engine's fact, asked of it."""

from __future__ import annotations

import enum

from ._native import is_final_state


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
        """True for states no worker moves the task out of on its own (the engine decides)."""
        return is_final_state(self.value)

    def __str__(self) -> str:
        return self.value
