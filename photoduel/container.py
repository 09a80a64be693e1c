"""The process's services: one typed, immutable container, built in one place (`build_services`).

Everything a request, a job or a maintenance command uses is a field here, built from the settings and
the open stores before anything starts. Nothing is added or replaced afterwards: what runs in the
background (the feed, the projector, the worker, push delivery) is started and stopped from this
container by `photoduel.features`, but the objects themselves are all here from the start, so a reader
finds every dependency in `build_services` and a type checker sees every field.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from accounts.profiles import Profiles
from accounts.rate_limits import RateLimiter
from accounts.seen import SeenUsers
from accounts.tokens import TokenVerifier
from gaming.duels.catalogue import DuelCatalogue
from gaming.duels.celebrity_offset import CelebrityOffsetStore, adjustment_from
from gaming.duels.feed import RatingFeed
from gaming.duels.matchmaker import Matchmaker
from gaming.duels.projector import LEASE_NAME, RatingProjector
from gaming.duels.promotion import Eligibility, Promotion
from gaming.duels.service import DuelService
from gaming.duels.tickets import TicketSigner
from gaming.duels.voter_screening import VoterScreening
from gaming.ratings import RatingEnv
from gaming.vote_integrity import ScreeningPolicy
from gaming.vote_weights import VoteWeighting
from ml.faces import DESCRIPTOR_SIZE
from ml.faces import MODEL_ID as FACE_MODEL_ID
from ml.pipelines.analysis import PhotoAnalyzer
from ml.pipelines.celebrity_recognition import CelebrityRecognizer
from ml.pipelines.face_model import FaceModelRegistry
from ml.pipelines.models import ModelRegistry
from ml.vocabulary import Vocabulary
from notifications.devices import DeviceRepository
from notifications.dispatcher import Dispatcher
from notifications.fcm import FcmSender
from notifications.follower import OutboxFollower
from notifications.outbox import Outbox
from notifications.preferences import Preferences
from notifications.pubsub import PubSub
from notifications.service import NotificationService
from photoduel.rate_limits import build_rate_limiter
from photoduel.settings import Settings
from photos.editing import PhotoEditor
from photos.queries import PhotoQueries
from photos.upload_rules import UploadRules
from photos.uploads import RenditionSizes, UploadService
from storage.blobs import BlobStore
from storage.celebrities import CelebrityGallery
from storage.jobs import JobQueue
from storage.leases import Lease, process_id
from storage.persisted_queries import PersistedQueryRepository
from storage.photos import PhotoRepository
from storage.rating_batches import RatingBatchRepository
from storage.rating_params import RatingParamsRepository
from storage.singleton import Singleton
from storage.users import UserRepository
from storage.vectors import VectorIndex
from storage.vocabulary import VocabularyRepository
from storage.voter_flags import VoterFlagRepository
from storage.votes import VoteRepository

MAINTENANCE_LEASE = "maintenance"


@dataclass(frozen=True)
class Services:
    settings: Settings
    # Stores: the database, its repositories (one per collection), blobs and vectors.
    mongo: AsyncMongoClient[dict[str, Any]]
    db: AsyncDatabase[dict[str, Any]]
    blobs: BlobStore
    vectors: VectorIndex
    jobs: JobQueue
    users: UserRepository
    photos: PhotoRepository
    vocabulary: VocabularyRepository
    persisted_queries: PersistedQueryRepository  # operation texts by hash (APQ, the allow-list)
    outbox: Outbox
    gallery: CelebrityGallery
    # Who is calling.
    auth: TokenVerifier
    seen_users: SeenUsers
    # Public profiles: display names, and what anyone may see of a photo's owner.
    profiles: Profiles
    # How much each caller may do (shared with the other processes through the database).
    rate_limits: RateLimiter
    # Photos: uploads in, queries out.
    uploads: UploadService
    photo_queries: PhotoQueries
    # The owner's edits (title, category); a new category reaches this process's duel catalogue at once.
    photo_editor: PhotoEditor
    # Models and what runs them.
    models: ModelRegistry
    analyzer: PhotoAnalyzer
    faces: FaceModelRegistry
    recognizer: CelebrityRecognizer
    # The game.
    rating_env: RatingEnv
    feed: RatingFeed
    catalogue: DuelCatalogue
    projector: RatingProjector
    celebrity_offset: CelebrityOffsetStore
    voter_screening: VoterScreening
    duels: DuelService
    promotion: Promotion
    notifications: NotificationService
    # New outbox records from every process, to this process's live subscriptions (API processes).
    events: OutboxFollower
    # Background work in this process: rung after an enqueue here, so a worker need not wait for its poll.
    job_doorbell: asyncio.Event
    # The chores (celebrity offset refit, featured announcements), in one worker per deployment by lease.
    maintenance: Singleton

    def wake_worker(self) -> None:
        self.job_doorbell.set()


def duel_secret(settings: Settings) -> bytes:
    """The key that signs duel tickets: from settings, else kept in the data dir (made once, 0600).

    Not a cache but shared state: a ticket issued by one API process is voted through any other, so
    every API process must read the same key (the setting, or one data dir). Read once at start, kept
    for the process's life: rotating it means restarting every API process, and tickets issued under
    the old key (valid for `PHOTODUEL_DUEL_TTL_SECONDS`) are then refused."""
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


def build_notifications(settings: Settings, db: AsyncDatabase[dict[str, Any]], outbox: Outbox,
                        users: UserRepository) -> NotificationService:
    """The outbox and in-app list always; a push dispatcher only with FCM credentials."""
    devices, preferences = DeviceRepository(db), Preferences(users)
    sender = FcmSender.from_settings(settings)
    dispatcher = Dispatcher(outbox, devices, preferences, sender) if sender is not None else None
    return NotificationService(outbox, devices, preferences, PubSub(), max_devices=settings.max_devices_per_user,
                               dispatcher=dispatcher)


def build_game(settings: Settings, db: AsyncDatabase[dict[str, Any]], photos: PhotoRepository,
               ) -> tuple[RatingEnv, RatingFeed, DuelCatalogue, RatingProjector, CelebrityOffsetStore, VoterScreening,
                          DuelService]:
    """Ratings, the duel catalogue, the projector that applies votes, the voter screening whose decisions it
    weighs votes by, and the duel service on top."""
    rating_env = RatingEnv(draw_probability=settings.draw_probability)
    batches = RatingBatchRepository(db)
    offset = CelebrityOffsetStore(RatingParamsRepository(db), batches, rating_env)
    weighting = VoteWeighting(new_weight=settings.vote_weight_new, full_after=settings.vote_weight_full_after,
                              anonymous_weight=settings.vote_weight_anonymous,
                              anonymous_full_after=settings.vote_weight_anonymous_full_after)
    feed = RatingFeed(batches, poll_seconds=settings.rating_feed_seconds)
    catalogue = DuelCatalogue(photos, rating_env, reload_seconds=settings.catalogue_reload_seconds,
                              new_photos_seconds=settings.catalogue_new_photos_seconds)
    votes = VoteRepository(db)
    screening = VoterScreening(votes, photos, VoterFlagRepository(db), RatingParamsRepository(db), rating_env,
                               policy=ScreeningPolicy(alpha=settings.voter_screening_alpha),
                               interval_seconds=settings.voter_screening_seconds)
    projector = RatingProjector(
        votes, batches, photos,
        Lease(db["leases"], LEASE_NAME, holder=process_id(), seconds=settings.projector_lease_seconds),
        rating_env, feed, adjustment_factory=adjustment_from, current_adjustment=offset.current,
        batch_size=settings.projector_batch_size, poll_seconds=settings.projector_poll_seconds,
        straggler_seconds=settings.projector_straggler_seconds,
        weighting=weighting, current_screening=screening.excluded,
    )
    duels = DuelService(
        photos, votes, batches,
        Matchmaker(photos, votes, rating_env, near_duplicate_cosine=settings.near_duplicate_cosine,
                   catalogue=catalogue),
        TicketSigner(duel_secret(settings)), feed, ttl_seconds=settings.duel_ttl_seconds,
        result_wait_seconds=settings.vote_result_wait_seconds, on_vote=projector.offer,
        history_needed=weighting.history_needed,
    )
    return rating_env, feed, catalogue, projector, offset, screening, duels


def build_services(settings: Settings, mongo: AsyncMongoClient[dict[str, Any]], vectors: VectorIndex) -> Services:
    """Every object of the process, wired; nothing runs yet (see `photoduel.features.running`)."""
    db = mongo[settings.mongodb_database]
    photos = PhotoRepository(db)
    blobs = BlobStore(db, indexes_ensured=True)  # ensure_indexes (at open) created GridFS's two
    jobs = JobQueue(db["jobs"])
    users = UserRepository(db)
    outbox = Outbox(db)
    gallery = CelebrityGallery(db, vectors, model_id=FACE_MODEL_ID, dim=DESCRIPTOR_SIZE)
    models = ModelRegistry(
        settings.clip_model, device=settings.clip_device, batch_size=settings.clip_batch_size,
        retry_seconds=settings.model_retry_seconds, torch_threads=settings.torch_threads,
        blas_threads=settings.blas_threads,
    )
    job_doorbell = asyncio.Event()
    vocabulary = Vocabulary.load_default()
    upload_rules = UploadRules.from_settings(settings)
    rating_env, feed, catalogue, projector, offset, screening, duels = build_game(settings, db, photos)
    notifications = build_notifications(settings, db, outbox, users)
    return Services(
        settings=settings, mongo=mongo, db=db, blobs=blobs, vectors=vectors, jobs=jobs, users=users,
        photos=photos, vocabulary=VocabularyRepository(db), outbox=outbox, gallery=gallery,
        persisted_queries=PersistedQueryRepository(db, cache_size=settings.persisted_query_cache_size),
        auth=TokenVerifier(
            project_id=settings.firebase_project_id,
            credentials_path=str(settings.firebase_credentials) if settings.firebase_credentials else None,
            app_name=f"photoduel-auth-{uuid.uuid4().hex[:8]}",  # firebase-admin App names are per process
            check_revoked=settings.auth_check_revoked,
            revocation_cache_seconds=settings.auth_revocation_cache_seconds,
        ),
        seen_users=SeenUsers(users), profiles=Profiles(users, photos), rate_limits=build_rate_limiter(settings, db),
        uploads=UploadService(photos, blobs, jobs, upload_rules, RenditionSizes(
            display_max_side=settings.display_max_side, thumbnail_max_side=settings.thumbnail_max_side,
        ), decode_threads=settings.upload_decode_threads, on_enqueued=job_doorbell.set),
        photo_queries=PhotoQueries(photos),
        photo_editor=PhotoEditor(photos, upload_rules, vocabulary.categories, on_recategorised=catalogue.add),
        models=models, analyzer=PhotoAnalyzer(models, vocabulary), faces=FaceModelRegistry(),
        recognizer=CelebrityRecognizer(gallery, models, max_distance=settings.celebrity_max_distance),
        rating_env=rating_env, feed=feed, catalogue=catalogue, projector=projector, celebrity_offset=offset,
        voter_screening=screening,
        duels=duels,
        promotion=Promotion(photos, Eligibility(min_votes=settings.featured_min_votes,
                                            max_sigma=settings.featured_max_sigma), catalogue=catalogue),
        notifications=notifications,
        events=OutboxFollower(outbox, notifications.publish, mode=settings.events_follow,
                              poll_seconds=settings.events_poll_seconds),
        job_doorbell=job_doorbell,
        maintenance=Singleton(Lease(db["leases"], MAINTENANCE_LEASE, holder=process_id(),
                                    seconds=settings.maintenance_lease_seconds), every=settings.maintenance_seconds),
    )
