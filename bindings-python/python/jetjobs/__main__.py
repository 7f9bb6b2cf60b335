# SPDX-License-Identifier: Apache-2.0
"""Command line: ``python -m jetjobs worker module:app`` and ``python -m jetjobs dev-server``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence

from . import App, dev_server


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
    commands.add_parser(
        "dev-server", help="start a throwaway local nats-server, print its URL, wait for Ctrl-C"
    )
    args = parser.parse_args(argv)
    if args.command == "worker":
        asyncio.run(_work(_load_app(args.app)))
    else:
        _serve()


if __name__ == "__main__":
    main()
