# SPDX-License-Identifier: Apache-2.0
"""Command line: ``python -m jetjobs worker|scheduler|dev-server``.

``worker module:app`` runs an App's handlers, ``scheduler URL [--name NAME]`` a task scheduler,
``dev-server`` a throwaway local nats-server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import socket
import sys
from collections.abc import Sequence

from . import App, CancellationToken, TaskScheduler, connect, dev_server


def _load_app(spec: str) -> App:
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise SystemExit(f"expected module:attribute, got {spec!r}")
    # Like `python -m`, find modules in the working directory.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    target: object = importlib.import_module(module_name)
    for name in (attribute or "app").split("."):
        target = getattr(target, name)
    if not isinstance(target, App) and callable(target):
        target = target()
    if not isinstance(target, App):
        raise SystemExit(f"{spec} is not a jetjobs.App (or a function returning one)")
    return target


async def _work(app: App) -> None:
    client = await app.client()
    print(f"jetjobs worker: queue {client.queue.name} at {app.url}: ready", flush=True)
    await app.run()


async def _schedule(url: str, name: str) -> None:
    client = await connect(url, connection_name=f"jetjobs scheduler {name}")
    shutdown = CancellationToken()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, shutdown.cancel)
    try:
        running = asyncio.ensure_future(TaskScheduler(client, name).run(shutdown))
        print(f"jetjobs scheduler: {name} at {url}: ready", flush=True)
        await running
    finally:
        await client.close()


def _serve() -> None:
    with dev_server() as url:
        print(url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(asyncio.Event().wait())


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m jetjobs`` and the ``jetjobs`` script."""
    parser = argparse.ArgumentParser(prog="python -m jetjobs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser(
        "worker", help="run an App's handlers until SIGINT or SIGTERM, then shut down gracefully"
    )
    worker.add_argument("app", help="module:attribute of a jetjobs.App (default attribute: app)")
    scheduler = commands.add_parser(
        "scheduler",
        help="run a task scheduler (the elected one creates the scheduled tasks) until SIGINT or "
        "SIGTERM; prints a line ending in ': ready' once running",
    )
    scheduler.add_argument("url", help="NATS server URL(s), comma-separated")
    scheduler.add_argument(
        "--name",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="the name it campaigns as, unique per scheduler (default: hostname-pid)",
    )
    commands.add_parser(
        "dev-server", help="start a throwaway local nats-server, print its URL, wait for Ctrl-C"
    )
    args = parser.parse_args(argv)
    if args.command == "worker":
        asyncio.run(_work(_load_app(args.app)))
    elif args.command == "scheduler":
        asyncio.run(_schedule(args.url, args.name))
    else:
        _serve()


if __name__ == "__main__":
    main()
