# SPDX-License-Identifier: Apache-2.0
"""What Python producers store is what Go asyncjobs stores for the same call."""

from __future__ import annotations

import json

import pytest

import jetjobs

from conftest import MakeApp


async def test_a_task_without_payload_is_stored_as_null_like_go(make_app: MakeApp) -> None:
    app = make_app("WIRE")
    task = await app.enqueue("no:payload")
    stored = json.loads((await app.load_task(task.id)).to_json())
    # Go's NewTask(type, nil) stores `"payload":null`, not the bytes of the JSON text `null`.
    assert stored["payload"] is None
    assert task.payload is None and task.payload_bytes is None


async def test_ids_and_types_are_checked_up_front(make_app: MakeApp) -> None:
    app = make_app("WIRE")
    with pytest.raises(jetjobs.InvalidTaskId, match="limit is 1024"):
        await app.enqueue("t", 1, id="x" * 4000)
    with pytest.raises(jetjobs.InvalidDependencies):
        await app.enqueue("t", 1, id="me", depends_on=["me"])
    # The connection survived: a 4 KB id no longer reaches the server.
    assert (await app.enqueue("t", 1)).state == "new"
