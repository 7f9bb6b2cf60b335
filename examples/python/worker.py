# SPDX-License-Identifier: Apache-2.0
"""The Python twin of examples/rust/worker.rs, for cross-language tests.

Run `NATS_URL=… python examples/python/worker.py`, or `python -m jetjobs worker worker:app` from
this directory. Queue `$JETJOBS_QUEUE` (default `INTEROP`), created if missing. Handlers:
`interop:echo` returns the payload, `interop:fail-once` fails its first try and then returns the
payload, `interop:terminate` terminates with `refused: terminate task`. Prints `ready` once it is
connected; stops gracefully on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import jetjobs

app = jetjobs.App(
    os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
    queue=os.environ.get("JETJOBS_QUEUE", "INTEROP"),
    retry_policy=jetjobs.RetryPolicy.exponential(0.1, 1.0, 0.0),
)


@app.task("interop:echo")
async def echo(task: jetjobs.Task) -> Any:
    return task.payload


@app.task("interop:fail-once")
def fail_once(task: jetjobs.Task) -> Any:
    if task.tries <= 1:
        raise RuntimeError("first try fails")
    return task.payload


@app.task("interop:terminate")
async def terminate(task: jetjobs.Task) -> None:
    raise jetjobs.TerminateTask("refused")


async def main() -> None:
    await app.client()
    print("ready", flush=True)
    await app.run()


if __name__ == "__main__":
    asyncio.run(main())
