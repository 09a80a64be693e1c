"""Wiring: everything a process needs, built once at start and closed once at exit.

`create_app()`'s lifespan and every CLI command use this same function, so the API, `photoduel
worker` and the maintenance commands run on identical wiring. The order matters: stores first (a
misconfigured store fails the start loudly), then the model in the background, then the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from api.auth import TokenVerifier
from gaming.duels.catalogue import DuelCatalogue
from gaming.duels.fame import FameOffset, adjustment_from
from gaming.duels.feed import RatingFeed
from gaming.duels.matchmaker import Matchmaker
from gaming.duels.projector import LEASE_NAME, RatingProjector
from gaming.duels.promotion import Eligibility, Promotion
from gaming.duels.service import DuelService
from gaming.duels.tickets import TicketSigner
from gaming.matchmaking import DEFAULT_POLICY
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
from storage.leases import Lease, process_id
from storage.mongo import create_client, ensure_indexes
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.users import UserRepository
from storage.vectors import VectorIndex
from storage.vocabulary import VocabularyRepository
from storage.votes import VoteRepository

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
    feed: RatingFeed
    catalogue: DuelCatalogue
    projector: RatingProjector
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


def duel_secret(settings: Settings) -> bytes:
    """The key that signs duel tickets: from settings, else kept in the data dir (made once, 0600)."""
    if settings.duel_secret is not None:
        return settings.duel_secret.get_secret_value().encode()
    path = settings.data_dir / "duel-secret"
    if not path.exists():  # written aside, then linked into place: concurrent starts agree on one secret
        temp = path.with_name(f".duel-secret.{os.getpid()}")
        temp.write_text(secrets.token_hex(32))
        temp.chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
        temp.unlink()
    return path.read_bytes().strip()


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, run_worker: bool = False, run_projector: bool = False, load_model: bool = True,
    open_vectors: bool = True, chores: bool = True,
) -> AsyncIterator[Services]:
    """`open_vectors=False` for commands that never touch Milvus (the ratings commands): milvus-lite
    locks its file, so they can then run beside a running service. `chores=False` for read-only commands:
    no start-up fixes (flags, orphaned uploads) and no background tasks."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with embedded_mongo_if_needed(settings) as uri:
        mongo = create_client(uri, timeout_seconds=settings.mongodb_timeout_seconds)
        db = mongo[settings.mongodb_database]
        await ensure_indexes(db)
        vectors = VectorIndex(settings.resolved_milvus_uri, token=settings.milvus_token)
        if open_vectors:
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
        feed = RatingFeed(RatingBatchRepository(db), poll_seconds=settings.rating_feed_seconds)
        catalogue = DuelCatalogue(db["photos"], rating_env, top_fraction=DEFAULT_POLICY.top_fraction,
                                  reload_seconds=settings.catalogue_reload_seconds,
                                  new_photos_seconds=settings.catalogue_new_photos_seconds)
        projector = RatingProjector(
            VoteRepository(db), RatingBatchRepository(db), photos,
            Lease(db["leases"], LEASE_NAME, holder=process_id(), seconds=settings.projector_lease_seconds),
            rating_env, feed, adjustment_factory=adjustment_from, current_adjustment=fame.current,
            batch_size=settings.projector_batch_size, poll_seconds=settings.projector_poll_seconds,
            straggler_seconds=settings.projector_straggler_seconds,
        )
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
            rating_env=rating_env, feed=feed, catalogue=catalogue, projector=projector, fame=fame,
            duels=DuelService(
                photos, VoteRepository(db), RatingBatchRepository(db),
                Matchmaker(db, rating_env, near_duplicate_cosine=settings.near_duplicate_cosine, catalogue=catalogue),
                TicketSigner(duel_secret(settings)), feed, ttl_seconds=settings.duel_ttl_seconds,
                result_wait_seconds=settings.vote_result_wait_seconds, on_vote=projector.offer,
            ),
            promotion=Promotion(db, Eligibility(min_votes=settings.featured_min_votes,
                                                max_sigma=settings.featured_max_sigma), catalogue=catalogue),
            gallery=gallery, faces=Faces(),
            recognizer=CelebrityRecognizer(gallery, models, max_distance=settings.celebrity_max_distance),
        )
        services.uploads.on_enqueued = services.wake_worker
        from photoduel.features import start_features, start_periodic, stop_features

        try:
            await start_features(services, chores=chores)
            if load_model:
                models.start()
            if run_projector:
                projector.start()
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
            await projector.stop()
            await stop_features(services)
            await models.stop()
            verifier.close()
            await vectors.close()
            await mongo.close()
