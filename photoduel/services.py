"""Open and close a process's services: the stores first, then the container, then what runs in it.

`create_app()`'s lifespan and every CLI command use this same function, so the API, `photoduel
worker` and the maintenance commands run on identical wiring. The order matters: stores first (a
misconfigured store fails the start loudly), then the model in the background, then the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from photoduel.container import Services, build_services
from photoduel.features import running
from photoduel.settings import Settings
from storage.embedded_mongo import EmbeddedMongo
from storage.mongo import create_client, ensure_indexes
from storage.vectors import VectorIndex

__all__ = ["Services", "open_services"]

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def embedded_mongo_if_needed(settings: Settings) -> AsyncIterator[str]:
    """The configured URI, or a SecantusDB child process under the data dir for the embedded default."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    server = EmbeddedMongo(settings.data_dir / "mongodb", sync_on_commit=settings.mongodb_sync_on_commit,
                           stop_grace=settings.mongodb_stop_seconds)
    uri = await asyncio.to_thread(server.start)
    log.info("mongodb.embedded_started", uri=uri, path=str(server.storage_path), pid=server.server_pid,
             guard_pid=server.guard_pid, sync_on_commit=settings.mongodb_sync_on_commit)
    try:
        yield uri
    finally:
        await asyncio.to_thread(server.stop)
        log.info("mongodb.embedded_stopped")


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, run_worker: bool = False, run_projector: bool = False, load_model: bool = True,
    open_vectors: bool = True, chores: bool = True, live_events: bool = True,
) -> AsyncIterator[Services]:
    """`open_vectors=False` for commands that never touch Milvus (the ratings commands): milvus-lite
    locks its file, so they can then run beside a running service. `chores=False` for read-only commands:
    no start-up fixes (flags, orphaned uploads) and no background tasks. `live_events=False` where no
    subscription is served (a worker, a one-shot command): the outbox is not followed."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with embedded_mongo_if_needed(settings) as uri:
        mongo = create_client(uri, timeout_seconds=settings.mongodb_timeout_seconds)
        vectors = VectorIndex(settings.resolved_milvus_uri, token=settings.milvus_token)
        try:
            await ensure_indexes(mongo[settings.mongodb_database])
            if open_vectors:
                await vectors.open()
            services = build_services(settings, mongo, vectors)
            try:
                async with running(services, run_worker=run_worker, run_projector=run_projector,
                                   load_model=load_model, chores=chores, live_events=live_events):
                    yield services
            finally:
                services.auth.close()
                services.uploads.close()
        finally:
            await vectors.close()
            await mongo.close()
