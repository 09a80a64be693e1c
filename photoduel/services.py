"""Wiring: everything a process needs, built once at start and closed once at exit.

`create_app()`'s lifespan and every CLI command use this same function, so the API, `photoduel
worker` and the maintenance commands run on identical wiring. The order matters: stores first (a
misconfigured store fails the start loudly), then the model in the background, then the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from api.auth import TokenVerifier
from gaming.duels.fame import FameOffset, adjustment_from
from gaming.duels.matchmaker import Matchmaker
from gaming.duels.promotion import Eligibility, Promotion
from gaming.duels.service import DuelService
from gaming.duels.votes import VoteLog
from gaming.ratings import RatingEnv
from ml.pipelines.analysis import PhotoAnalyzer
from ml.pipelines.celebrities import CelebrityGallery, CelebrityRecognizer, Faces
from ml.pipelines.models import ModelRegistry
from ml.pipelines.upload import UploadLimits, UploadService
from ml.vocabulary import Vocabulary
from notifications.outbox import Outbox
from notifications.service import NotificationService
from photoduel.settings import Settings
from photoduel.worker import JobHandler, Worker
from storage.blobs import BlobStore
from storage.embedded_mongo import EmbeddedMongo
from storage.jobs import JobQueue
from storage.mongo import create_client, ensure_indexes
from storage.photos import PhotoRepository
from storage.users import UserRepository
from storage.vectors import VectorIndex
from storage.vocabulary import VocabularyRepository

log = structlog.get_logger(__name__)


@dataclass
class Services:
    settings: Settings
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    blobs: BlobStore
    vectors: VectorIndex
    jobs: JobQueue
    users: UserRepository
    models: ModelRegistry
    auth: TokenVerifier
    photos: PhotoRepository
    vocabulary: VocabularyRepository
    outbox: Outbox
    analyzer: PhotoAnalyzer
    uploads: UploadService
    rating_env: RatingEnv
    votes: VoteLog
    fame: FameOffset
    duels: DuelService
    gallery: CelebrityGallery
    faces: Faces
    recognizer: CelebrityRecognizer
    promotion: Promotion
    worker: Worker | None = None
    notifications: NotificationService | None = None  # built in photoduel.features.start_features
    extras: dict[str, Any] = field(default_factory=dict)

    def wake_worker(self) -> None:
        if self.worker is not None:
            self.worker.wake()

    def handlers(self) -> dict[str, JobHandler]:
        """Job handlers by kind; each feature adds its own in `photoduel.features`."""
        from photoduel.features import job_handlers

        return job_handlers(self)


@contextlib.asynccontextmanager
async def embedded_mongo_if_needed(settings: Settings) -> AsyncIterator[str]:
    """The configured URI, or a SecantusDB child process under the data dir for the embedded default."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    server = EmbeddedMongo(settings.data_dir / "mongodb")
    uri = await asyncio.to_thread(server.start)
    log.info("mongodb.embedded_started", uri=uri, path=str(server.storage_path))
    try:
        yield uri
    finally:
        await asyncio.to_thread(server.stop)
        log.info("mongodb.embedded_stopped")


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, run_worker: bool = False, load_model: bool = True
) -> AsyncIterator[Services]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with embedded_mongo_if_needed(settings) as uri:
        mongo = create_client(uri)
        db = mongo[settings.mongodb_database]
        await ensure_indexes(db)
        vectors = VectorIndex(settings.resolved_milvus_uri, token=settings.milvus_token)
        await vectors.open()
        models = ModelRegistry(
            settings.clip_model, device=settings.clip_device, batch_size=settings.clip_batch_size,
            retry_seconds=settings.model_retry_seconds, torch_threads=settings.torch_threads,
            blas_threads=settings.blas_threads,
        )
        verifier = TokenVerifier(
            project_id=settings.firebase_project_id,
            credentials_path=str(settings.firebase_credentials) if settings.firebase_credentials else None,
            app_name=f"photoduel-auth-{uuid.uuid4().hex[:8]}",
        )
        photos = PhotoRepository(db)
        blobs = BlobStore(db, indexes_ensured=True)  # ensure_indexes above created GridFS's two
        jobs = JobQueue(db["jobs"])
        rating_env = RatingEnv(draw_probability=settings.draw_probability)
        fame = FameOffset(db, rating_env)
        votes = VoteLog(mongo, db, rating_env, adjustment_factory=adjustment_from, current_adjustment=fame.current)
        gallery = CelebrityGallery(db, vectors)
        services = Services(
            settings=settings, mongo=mongo, db=db, blobs=blobs, vectors=vectors, jobs=jobs,
            users=UserRepository(db), models=models, auth=verifier, photos=photos,
            vocabulary=VocabularyRepository(db), outbox=Outbox(db),
            analyzer=PhotoAnalyzer(models, Vocabulary.load_default()),
            uploads=UploadService(photos, blobs, jobs, UploadLimits(
                max_bytes=settings.max_upload_bytes, max_pixels=settings.max_upload_pixels,
                display_max_side=settings.display_max_side, thumbnail_max_side=settings.thumbnail_max_side,
            )),
            rating_env=rating_env, votes=votes, fame=fame,
            duels=DuelService(db, Matchmaker(db, rating_env, near_duplicate_cosine=settings.near_duplicate_cosine),
                              votes, ttl_seconds=settings.duel_ttl_seconds),
            promotion=Promotion(db, Eligibility(min_votes=settings.featured_min_votes,
                                                max_sigma=settings.featured_max_sigma)),
            gallery=gallery, faces=Faces(),
            recognizer=CelebrityRecognizer(gallery, models, max_distance=settings.celebrity_max_distance),
        )
        services.uploads.on_enqueued = services.wake_worker
        from photoduel.features import start_features, start_periodic, stop_features

        try:
            await start_features(services)
            if load_model:
                models.start()
            if run_worker:
                services.worker = Worker(
                    services.jobs, services.handlers(), lease_seconds=settings.job_lease_seconds,
                    max_attempts=settings.job_max_attempts, retry_base_seconds=settings.job_retry_base_seconds,
                    poll_seconds=settings.worker_poll_seconds, concurrency=settings.worker_concurrency,
                )
                services.worker.start()
                start_periodic(services)
            yield services
        finally:
            if services.worker is not None:
                await services.worker.stop()
            await stop_features(services)
            await models.stop()
            verifier.close()
            await vectors.close()
            await mongo.close()
