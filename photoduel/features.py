"""What runs in a process, started from the container: job handlers, start-up chores, background tasks.

Kept in one place so a reader sees at a glance which job kinds a worker runs and what each process
keeps running beside its requests, and in which order it starts and stops.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from gaming.duels.records import initial_rating_fields
from ml.pipelines.celebrity_job import FACES, FacesHandler, enqueue_faces
from ml.pipelines.ingest import IngestConfig, IngestHandler
from notifications.devices import DEVICE_INDEXES
from notifications.outbox import OUTBOX_INDEXES
from photoduel.container import JOB_KINDS, Services
from photoduel.worker import JobHandler, Worker
from photos.account_erasure import ACCOUNT_ERASURE, AccountErasureHandler
from photos.deletion import PHOTO_DELETION, PhotoDeletionHandler
from storage.job_kinds import INGEST
from storage.mongo import ensure_indexes
from storage.neighbours import NeighbourListParams

log = structlog.get_logger(__name__)

ReadyHook = Callable[[list[dict[str, Any]]], Awaitable[None]]


def job_handlers(services: Services) -> dict[str, JobHandler]:
    """Job handlers by kind, in `JOB_KINDS`' priority order."""
    batch = services.settings.worker_batch_size
    handlers: dict[str, JobHandler] = {
        INGEST: ingest_handler(services),
        PHOTO_DELETION: PhotoDeletionHandler(services.photo_deletion, batch_size=batch),
        ACCOUNT_ERASURE: AccountErasureHandler(services.account_erasure),
        FACES: faces_handler(services)}
    return {kind: handlers[kind] for kind in JOB_KINDS}


def ingest_handler(services: Services) -> IngestHandler:
    settings = services.settings
    return IngestHandler(
        services.photos, services.blobs, services.vectors, services.models, services.analyzer, services.outbox,
        IngestConfig(neighbours_k=settings.neighbours_k, near_duplicate_cosine=settings.near_duplicate_cosine,
                     suggestions_max=settings.suggestions_max, batch_size=settings.worker_batch_size,
                     screening_thresholds=settings.moderation_thresholds),
        initial_rating=lambda quality: initial_rating_fields(quality, services.rating_env),
        before_batch=[refresh_vocabulary(services)],
        after_ready=[queue_face_checks(services), offer_to_matchmaking(services)],
        on_announced=services.notifications.announced,
        grouping=services.grouping,
    )


def faces_handler(services: Services) -> FacesHandler:
    return FacesHandler(services.photos, services.blobs, services.vectors, services.faces, services.recognizer,
                        batch_size=services.settings.worker_batch_size)


def refresh_vocabulary(services: Services) -> Callable[[], Awaitable[None]]:
    """Tags an admin added since the last batch join the tagger's vocabulary before the next one."""

    async def refresh() -> None:
        extra = await services.vocabulary.extra_tags()
        services.analyzer.set_vocabulary(services.analyzer.base_vocabulary.with_tags(extra))

    return refresh


def queue_face_checks(services: Services) -> ReadyHook:
    async def queue(ready: list[dict[str, Any]]) -> None:
        await enqueue_faces(services.jobs, [d["_id"] for d in ready])
        services.wake_worker()

    return queue


def offer_to_matchmaking(services: Services) -> ReadyHook:
    """New READY photos join this process's duel catalogue at once (other processes poll for them)."""

    async def offer(ready: list[dict[str, Any]]) -> None:
        for doc in ready:
            services.catalogue.add(doc)

    return offer


def build_worker(services: Services) -> Worker:
    settings = services.settings
    return Worker(
        services.jobs, job_handlers(services), lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts, retry_base_seconds=settings.job_retry_base_seconds,
        poll_seconds=settings.worker_poll_seconds, concurrency=settings.worker_concurrency,
        wake=services.job_doorbell,
    )


def maintenance_chores(services: Services) -> Callable[[], Awaitable[None]]:
    """Promotion chores: re-fit the celebrity offset from the vote log, announce photos that entered
    a featured set, and bring the similarity groups' listing up to date with the ratings. Every worker
    process is a candidate; the holder of the maintenance lease runs them (`Services.maintenance`). All
    are safe to repeat (a refit from the log, announcements keyed per photo, summaries recomputed), which
    a lease taken over mid-run needs. (Votes need no recovery chore: the rating projector
    applies every logged vote, whichever process logged it.)"""

    async def chores() -> None:
        await services.celebrity_offset.refit(min_new_votes=services.settings.celebrity_refit_votes)
        await services.promotion.announce_newly_featured(announce_featured(services))
        await screen_voters(services)
        await services.group_backfill.run()  # photos made READY before groups existed join theirs
        await services.group_ranks.run()  # the similarity groups' listing follows the ratings

    return chores


def announce_featured(services: Services) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """A photo entered a featured set: "Featured!" to its owner, and the owner's featured badge."""

    async def announce(photo: dict[str, Any]) -> None:
        await services.notifications.announce_featured(photo)
        await services.progress.photo_featured(photo["owner"])

    return announce


async def screen_voters(services: Services) -> list[str]:
    """Test the recent voters against the settled ratings, at most once per voter_screening_seconds, and
    flag ballot stuffers (gaming/duels/voter_screening.py); safe to repeat. Who was flagged."""
    return await services.voter_screening.screen_recent()


async def start_up_chores(services: Services) -> None:
    """Fixes a crash may have left: short-list flags for the current k, uploads whose job was never queued."""
    await services.photos.flag_short_lists(services.settings.neighbours_k, NeighbourListParams(services.db))
    await services.uploads.requeue_orphans()


@contextlib.asynccontextmanager
async def running(
    services: Services, *, run_worker: bool, run_projector: bool, load_model: bool, chores: bool,
    live_events: bool = True,
) -> AsyncIterator[None]:
    """Start what this process runs beside its requests; stop it all, in reverse order, on the way out.

    `chores=False` for read-only maintenance commands: no start-up fixes and no background tasks.
    `live_events=False` for processes that serve no subscriptions (`photoduel worker`, one-shot commands):
    they do not follow the outbox.
    """
    await ensure_indexes(services.db, [*OUTBOX_INDEXES, *DEVICE_INDEXES])
    worker = build_worker(services) if run_worker else None
    try:
        if chores:
            await start_up_chores(services)
            if services.notifications.dispatcher is None:
                log.warning("push disabled: no PHOTODUEL_FIREBASE_CREDENTIALS; notifications are recorded, not pushed")
            else:
                services.notifications.dispatcher.start()
            # Ratings for matchmaking and vote results follow the projector's batches from here on.
            await services.feed.start_from_last()
            services.feed.subscribe(services.catalogue.apply_batch)
            services.feed.subscribe(services.progress_projector.wake)
            services.feed.start()
            if live_events:
                await services.events.start()
        if load_model:
            services.models.start()
        if run_projector:
            services.projector.start()
            services.progress_projector.start()  # counts only while this process holds the projector
        if worker is not None:
            worker.start()
            services.maintenance.start(maintenance_chores(services))
        yield
    finally:
        if worker is not None:
            await worker.stop()
        await services.maintenance.stop()
        await services.events.stop()
        await services.progress_projector.stop()
        await services.projector.stop()
        await services.feed.stop()
        await services.catalogue.stop()
        if services.notifications.dispatcher is not None:
            await services.notifications.dispatcher.stop()
            await services.notifications.dispatcher.sender.aclose()
        await services.models.stop()
