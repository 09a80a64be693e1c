"""`photoduel` command line: serve, worker and the maintenance commands, all on the same wiring."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import FrameType

import structlog

from photoduel.logging import configure_logging
from photoduel.settings import Settings, SettingsError, load_settings

log = structlog.get_logger(__name__)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    app = create_app(settings)
    config = uvicorn.Config(
        app, host=args.host or settings.host, port=args.port or settings.port, log_config=None,
        proxy_headers=True, timeout_graceful_shutdown=settings.shutdown_timeout_seconds, ws="websockets-sansio",
    )
    deadline = ShutdownDeadline(settings.shutdown_deadline_seconds)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            deadline.arm(signal.Signals(sig).name)
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            deadline.arm("shutdown")
            await super().shutdown(sockets)

    Server(config).run()
    return 0


class ShutdownDeadline:
    """Exits the process `seconds` after a stop was asked for, whatever is still running then.

    uvicorn drains requests for `timeout_graceful_shutdown` and then runs the lifespan shutdown, which
    has no bound: closing the stores waits on a database that may be stalled (the embedded server can
    deadlock), and `asyncio.run` then waits for every thread it lent out. A daemon timer thread is the
    one thing that still runs then. The embedded database needs nothing from us at that point: its
    guard process stops it when our end of its pipe closes, which `os._exit` does. Exit status 1: a
    stop that had to be cut short is a failure an operator should see.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None

    def arm(self, reason: str) -> None:
        # Called on the main thread only (signal handlers, the server's loop); no lock, so a signal
        # that lands while the loop is in here cannot deadlock on one.
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()
        log.info("serve.stopping", reason=reason, deadline_seconds=self.seconds)

    def _expire(self) -> None:
        log.error("serve.shutdown_deadline_exceeded", deadline_seconds=self.seconds,
                  threads=sorted(t.name for t in threading.enumerate()))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(1)


async def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from photoduel.services import open_services

    async def main(stop: asyncio.Event) -> None:
        async with open_services(settings, run_worker=True, run_projector=settings.projector_enabled):
            log.info("worker.process_ready")
            await stop.wait()

    asyncio.run(_run_until_signal(main))
    return 0


def cmd_export_schema(settings: Settings, args: argparse.Namespace) -> int:
    from api.schema import export_sdl

    export_sdl(Path(args.output))
    print(f"wrote {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photoduel", description="PhotoDuel backend")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (and an in-process worker unless PHOTODUEL_WORKER_ENABLED=false)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a job worker only")
    worker.set_defaults(func=cmd_worker)

    schema = sub.add_parser("export-schema", help="write the GraphQL SDL (schema.graphql)")
    schema.add_argument("--output", default="schema.graphql")
    schema.set_defaults(func=cmd_export_schema)

    from photoduel.commands import register_commands

    register_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"photoduel: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    return int(args.func(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
