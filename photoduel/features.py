"""The features plugged into the shared wiring: their job handlers, indexes and background tasks.

Kept in one place so `open_services` stays the same whatever features exist, and a reader sees at a
glance which job kinds a worker runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gaming.duels.records import initial_rating_fields
from ml.pipelines.ingest import IngestConfig, IngestHandler
from notifications.outbox import OUTBOX_INDEXES
from storage.mongo import ensure_indexes

if TYPE_CHECKING:
    from photoduel.services import Services
    from photoduel.worker import JobHandler


def ingest_handler(services: Services) -> IngestHandler:
    settings = services.settings
    return IngestHandler(
        services.photos, services.blobs, services.vectors, services.models, services.analyzer, services.outbox,
        IngestConfig(neighbours_k=settings.neighbours_k, near_duplicate_cosine=settings.near_duplicate_cosine,
                     suggestions_max=settings.suggestions_max, batch_size=settings.worker_batch_size),
        initial_rating=lambda quality: initial_rating_fields(quality, services.rating_env),
        before_batch=[refresh_vocabulary(services)],
    )


def refresh_vocabulary(services: Services):  # type: ignore[no-untyped-def]
    async def refresh() -> None:
        extra = await services.vocabulary.extra_tags()
        services.analyzer.set_vocabulary(services.analyzer.base_vocabulary.with_tags(extra))

    return refresh


def job_handlers(services: Services) -> dict[str, JobHandler]:
    return {"ingest": ingest_handler(services)}


async def start_features(services: Services) -> None:
    await ensure_indexes(services.db, OUTBOX_INDEXES)
    await services.uploads.requeue_orphans()


async def stop_features(services: Services) -> None:
    return None
