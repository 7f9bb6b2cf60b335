# SPDX-License-Identifier: Apache-2.0
"""The Python side of the cross-language governor test (bindings-node/__test__/governor_interop).

``python governor_campaign.py <url> <name> <count> <hold-ms> [subject]`` runs ``count``
concurrent campaigns on governor ``name`` with the installed ``jetjobs`` package, each holding
its slot ``hold-ms`` inside ``governor.slot()``. Each publishes ``python`` on core NATS
``gov.enter`` once it holds the slot and on ``gov.exit`` before releasing it (flushed first, so an
observer sees the exit before any enter the freed slot allows), then prints a JSON summary.
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import time

import jetjobs


class Reports:
    """Publishes with the NATS text protocol on one socket; ``flush`` waits for the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._pongs: collections.deque[asyncio.Future[None]] = collections.deque()
        self._task = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str) -> Reports:
        """A connection to ``url`` (``nats://host:port``)."""
        host, _, port = url.removeprefix("nats://").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        await reader.readline()  # INFO
        writer.write(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
        return cls(reader, writer)

    async def _read(self) -> None:
        while line := await self._reader.readline():
            if line.startswith(b"PING"):
                self._writer.write(b"PONG\r\n")
            elif line.startswith(b"PONG"):
                self._pongs.popleft().set_result(None)

    def publish(self, subject: str, body: bytes) -> None:
        """Queue a message; it goes out in order with everything else on this socket."""
        self._writer.write(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(body), body))

    async def flush(self) -> None:
        """Return once the server has processed everything published so far."""
        pong = asyncio.get_running_loop().create_future()
        self._pongs.append(pong)
        self._writer.write(b"PING\r\n")
        await pong

    async def close(self) -> None:
        """Close the socket."""
        self._task.cancel()
        self._writer.close()
        await self._writer.wait_closed()


async def main(url: str, name: str, count: int, hold_ms: int, subject: str | None) -> int:
    """Run the campaigns; 0 if every one held its slot and released it."""
    app = jetjobs.App(url)
    reports = await Reports.connect(url)
    governor = await app.governor(name, subject=subject, interval=0.01)
    holding = peak = done = 0
    errors: list[str] = []
    started = time.monotonic()

    async def campaign(i: int) -> None:
        nonlocal holding, peak, done
        try:
            async with governor.slot(f"python-{i}", max_wait=120):
                holding += 1
                peak = max(peak, holding)
                reports.publish("gov.enter", b"python")
                await asyncio.sleep(hold_ms / 1000)
                holding -= 1
                reports.publish("gov.exit", b"python")
                await reports.flush()
            done += 1
        except jetjobs.JetJobsError as e:
            errors.append(str(e))

    await asyncio.gather(*(campaign(i) for i in range(count)))
    await reports.close()
    await app.close()
    summary = {"lang": "python", "campaigns": count, "done": done, "errors": errors, "peak": peak}
    summary["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    print(json.dumps(summary), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    url, name, count, hold_ms, *rest = sys.argv[1:]
    sys.exit(asyncio.run(main(url, name, int(count), int(hold_ms), rest[0] if rest else None)))
