# SPDX-License-Identifier: Apache-2.0
"""The Python twin of examples/rust/enqueue.rs, for cross-language tests.

`NATS_URL=… python examples/python/enqueue.py <type> '<json payload>' [count]` enqueues to
`$JETJOBS_QUEUE` (default `INTEROP`) and prints one task id per line. Synchronous: no event loop.
"""

from __future__ import annotations

import json
import os
import sys

import jetjobs


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: enqueue.py <type> <json payload> [count]", file=sys.stderr)
        return 2
    task_type, payload = argv[0], json.loads(argv[1])
    count = int(argv[2]) if len(argv) == 3 else 1
    app = jetjobs.App(
        os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        queue=os.environ.get("JETJOBS_QUEUE", "INTEROP"),
    )
    for _ in range(count):
        print(app.enqueue_sync(task_type, payload).id, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
