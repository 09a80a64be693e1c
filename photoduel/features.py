"""The features plugged into the shared wiring: their job handlers, indexes and background tasks.

Kept in one place so `open_services` stays the same whatever features exist, and a reader sees at a
glance which job kinds a worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from gaming.duels.records import initial_rating_fields
from ml.pipelines.celebrities import FACES, FacesHandler, enqueue_faces
from ml.pipelines.ingest import IngestConfig, IngestHandler, flag_short_lists
from ml.pipelines.upload import INGEST
from notifications.devices import DEVICE_INDEXES, DeviceRepository
from notifications.dispatcher import Dispatcher
from notifications.fcm import FcmSender
from notifications.outbox import OUTBOX_INDEXES, announce_featured
from notifications.preferences import Preferences
from notifications.pubsub import PubSub
from notifications.service import NotificationService
from storage.mongo import ensure_indexes

if TYPE_CHECKING:
    from photoduel.services import Services
    from photoduel.settings import Settings
    from photoduel.worker import JobHandler

log = structlog.get_logger(__name__)


def ingest_handler(services: Services) -> IngestHandler:
    settings = services.settings
    return IngestHandler(
        services.photos, services.blobs, services.vectors, services.models, services.analyzer, services.outbox,
        IngestConfig(neighbours_k=settings.neighbours_k, near_duplicate_cosine=settings.near_duplicate_cosine,
                     suggestions_max=settings.suggestions_max, batch_size=settings.worker_batch_size),
        initial_rating=lambda quality: initial_rating_fields(quality, services.rating_env),
        before_batch=[refresh_vocabulary(services)],
        after_ready=[queue_face_checks(services), offer_to_matchmaking(services)],
        on_announced=services.notifications.announced if services.notifications is not None else None,
    )


def refresh_vocabulary(services: Services):  # type: ignore[no-untyped-def]
    async def refresh() -> None:
        extra = await services.vocabulary.extra_tags()
        services.analyzer.set_vocabulary(services.analyzer.base_vocabulary.with_tags(extra))

    return refresh


def queue_face_checks(services: Services):  # type: ignore[no-untyped-def]
    async def queue(ready: list[dict[str, Any]]) -> None:
        await enqueue_faces(services.jobs, [d["_id"] for d in ready])
        services.wake_worker()

    return queue


def offer_to_matchmaking(services: Services):  # type: ignore[no-untyped-def]
    """New READY photos join this process's duel catalogue at once (other processes poll for them)."""

    async def offer(ready: list[dict[str, Any]]) -> None:
        for doc in ready:
            services.catalogue.add(doc)

    return offer


def job_handlers(services: Services) -> dict[str, JobHandler]:
    return {
        INGEST: ingest_handler(services),
        FACES: FacesHandler(services.photos, services.blobs, services.vectors, services.faces,
                            services.recognizer, batch_size=services.settings.worker_batch_size),
    }


async def start_features(services: Services, *, chores: bool = True) -> None:
    """`chores=False` for a read-only maintenance command: no start-up fixes, no background tasks."""
    await ensure_indexes(services.db, [*OUTBOX_INDEXES, *DEVICE_INDEXES])
    if not chores:
        return
    await flag_short_lists(services.db, services.settings.neighbours_k)
    await services.uploads.requeue_orphans()
    await start_notifications(services)
    # Ratings for matchmaking and vote results follow the projector's batches from here on.
    await services.feed.start_from_last()
    services.feed.subscribe(services.catalogue.apply_batch)
    services.feed.start()


async def stop_features(services: Services) -> None:
    task = services.extras.pop("maintenance", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await services.feed.stop()
    await services.catalogue.stop()
    await stop_notifications(services)


async def periodic_maintenance(services: Services) -> None:
    """Promotion chores, in worker processes only: re-fit the celebrity offset from the vote log, and
    announce photos that entered a featured set. (Votes need no recovery chore: the rating projector
    applies every logged vote, whichever process logged it.)"""

    async def announce(photo: dict[str, Any]) -> None:
        record, created = await announce_featured(services.outbox, photo)
        if created and services.notifications is not None:
            await services.notifications.announced(record)

    while True:
        try:
            await services.fame.refit(min_new_votes=services.settings.celebrity_refit_votes)
            await services.promotion.announce_newly_featured(announce)
        except Exception:
            log.exception("maintenance.failed")
        await asyncio.sleep(services.settings.maintenance_seconds)


def start_periodic(services: Services) -> None:
    """Called by open_services once the worker runs."""
    services.extras["maintenance"] = asyncio.create_task(periodic_maintenance(services), name="maintenance")


async def start_notifications(services: Services) -> None:
    """The notification service always (the outbox and in-app list work without push); the push
    dispatcher only with FCM credentials. Any number of processes may run a dispatcher (leases)."""
    devices = DeviceRepository(services.db)
    preferences = Preferences(services.db)
    service = NotificationService(services.outbox, devices, preferences, PubSub(),
                                  max_devices=services.settings.max_devices_per_user)
    services.notifications = service
    sender = push_sender(services.settings)
    if sender is None:
        log.warning("push disabled: no PHOTODUEL_FIREBASE_CREDENTIALS; notifications are recorded, not pushed")
        return
    service.dispatcher = Dispatcher(services.outbox, devices, preferences, sender)
    service.dispatcher.start()


def push_sender(settings: Settings) -> FcmSender | None:
    if settings.firebase_credentials is None:
        return None
    # A unique App name: firebase-admin refuses two Apps with one name (several services per process in tests).
    return FcmSender(project_id=settings.firebase_project_id, credentials_path=settings.firebase_credentials,
                     fcm_base_url=settings.fcm_url, app_name=f"photoduel-fcm-{uuid.uuid4().hex[:8]}")


async def stop_notifications(services: Services) -> None:
    dispatcher = services.notifications.dispatcher if services.notifications is not None else None
    if dispatcher is not None:
        await dispatcher.stop()
        await dispatcher.sender.aclose()
