"""`photoduel` command line: serve, worker and the maintenance commands, all on the same wiring."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

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
        proxy_headers=True, timeout_graceful_shutdown=30, ws="websockets-sansio",
    )
    uvicorn.Server(config).run()
    return 0


async def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from photoduel.services import open_services

    async def main(stop: asyncio.Event) -> None:
        async with open_services(settings, run_worker=True):
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
