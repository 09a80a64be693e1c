"""`photoduel` command line: serve, worker and the maintenance commands, all on the same wiring."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

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
        proxy_headers=True, timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
        ws="websockets-sansio",
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


@contextlib.asynccontextmanager
async def metrics_server(settings: Settings, services: Any) -> AsyncIterator[None]:
    """`/metrics` of a process that serves no API (`photoduel worker`), on PHOTODUEL_METRICS_PORT when set."""
    if settings.metrics_port is None:
        yield
        return
    import uvicorn

    from api.metrics import metrics_app

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the worker's own handlers stop the process
            yield

    server = Server(uvicorn.Config(metrics_app(services), host=settings.metrics_host, port=settings.metrics_port,
                                   log_config=None, lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        done, _ = await asyncio.wait({task}, timeout=0.05)
        if done:  # the port was taken: fail the start (uvicorn logged why)
            await task
            raise SystemExit(f"photoduel: cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}")
    log.info("worker.metrics_serving", url=f"http://{settings.metrics_host}:{settings.metrics_port}/metrics")
    try:
        yield
    finally:
        server.should_exit = True
        await task


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from photoduel.services import open_services

    async def main(stop: asyncio.Event) -> None:
        async with open_services(settings, run_worker=True, run_projector=settings.projector_enabled,
                                 live_events=False) as services, metrics_server(settings, services):
            log.info("worker.process_ready")
            await stop.wait()

    asyncio.run(_run_until_signal(main))
    return 0


def cmd_database(settings: Settings, args: argparse.Namespace) -> int:
    """The embedded database as a server for other processes (API processes, workers, CLI commands),
    in the foreground until SIGTERM or SIGINT. Each of them is pointed at the URI it prints, with
    PHOTODUEL_MONGODB_URI; a fixed port is what lets them be configured before it starts."""
    from storage.embedded_mongo import EmbeddedMongo, EmbeddedMongoError

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    server = EmbeddedMongo(Path(args.path) if args.path else settings.data_dir / "mongodb", host=args.host,
                           port=args.port, sync_on_commit=settings.mongodb_sync_on_commit,
                           stop_grace=settings.mongodb_stop_seconds)
    try:
        uri = server.start()
    except EmbeddedMongoError as exc:
        print(f"photoduel: {exc}", file=sys.stderr)
        return 1
    try:
        log.info("database.ready", uri=uri, path=str(server.storage_path), pid=server.server_pid)
        print(uri, flush=True)  # one line on stdout, for scripts that start it and read where it listens
        while not stop.is_set():
            code = server.wait(0.5)
            if code is not None:  # the server died on its own: exit, so a process manager sees it
                log.error("database.exited", code=code, log=str(server.storage_path / "secantusd.log"))
                return 1
        if args.stop_delay > 0:
            log.info("database.stopping", delay_seconds=args.stop_delay)
            server.wait(args.stop_delay)
    finally:
        server.stop()
    log.info("database.stopped")
    return 0


def _stores_waited_for(settings: Settings) -> str | None:
    """Why the configured database and Milvus servers cannot be used yet; None once both answer."""
    from urllib.parse import urlsplit

    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    if settings.mongodb_uri:
        client: MongoClient[dict[str, object]]
        try:
            with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=1000) as client:
                client.admin.command("ping")
        except PyMongoError as exc:
            return f"mongodb: {exc}"
    milvus = urlsplit(settings.milvus_uri or "")
    if milvus.hostname:  # a server (not a milvus-lite file): it serves once it accepts connections
        try:
            socket.create_connection((milvus.hostname, milvus.port or 19530), timeout=1).close()
        except OSError as exc:
            return f"milvus: {exc}"
    return None


def cmd_wait_for_stores(settings: Settings, args: argparse.Namespace) -> int:
    """Until the configured MongoDB and Milvus servers answer: a process manager that starts every
    process at once (honcho) runs this before an API process or a worker, so none of them fails its
    start on a database that is still starting. Exit status 1 at the timeout."""
    deadline = time.monotonic() + args.timeout
    while (reason := _stores_waited_for(settings)) is not None:
        if time.monotonic() > deadline:
            print(f"photoduel: stores not answering after {args.timeout:g}s: {reason}", file=sys.stderr)
            return 1
        time.sleep(0.5)
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

    database = sub.add_parser(
        "database", help="run the embedded database (SecantusDB) in the foreground as a server for other processes",
    )
    database.add_argument("--host", default="127.0.0.1",
                          help="address to bind (it has no authentication: keep it on loopback or a private network)")
    database.add_argument("--port", type=int, default=27017)
    database.add_argument("--path", default=None, help="data directory (default: <PHOTODUEL_DATA_DIR>/mongodb)")
    database.add_argument(
        "--stop-delay", type=float, default=0.0,
        help="seconds to keep serving after SIGTERM/SIGINT: a process manager that stops every process at once "
             "(honcho) then lets the API processes and workers close their connections before the database goes",
    )
    database.set_defaults(func=cmd_database)

    wait = sub.add_parser("wait-for-stores",
                          help="wait until PHOTODUEL_MONGODB_URI and PHOTODUEL_MILVUS_URI answer (before serve/worker)")
    wait.add_argument("--timeout", type=float, default=120.0)
    wait.set_defaults(func=cmd_wait_for_stores)

    schema = sub.add_parser("export-schema", help="write the GraphQL SDL (schema.graphql)")
    schema.add_argument("--output", default="schema.graphql")
    schema.set_defaults(func=cmd_export_schema)

    from photoduel.commands import register_commands

    register_commands(sub)
    add_log_format(parser)
    return parser


LOG_FORMATS: dict[str, bool | None] = {"json": True, "console": False, "auto": None}


def add_log_format(parser: argparse.ArgumentParser) -> None:
    """`--log-format` on the command and on every subcommand, so it may come before or after the name."""
    pending = [parser]
    while pending:
        current = pending.pop()
        current.add_argument(
            "--log-format", choices=list(LOG_FORMATS), default=None if current is parser else argparse.SUPPRESS,
            help="json: one JSON object per line; console: readable lines; auto (default, or PHOTODUEL_LOG_JSON): "
                 "console on a terminal, else JSON",
        )
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"photoduel: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level,
                      json=settings.log_json if args.log_format is None else LOG_FORMATS[args.log_format])
    return int(args.func(settings, args) or 0)


if __name__ == "__main__":
    sys.exit(main())
