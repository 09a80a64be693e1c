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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from accounts.blocks import Blocks
from accounts.profiles import Profiles
from accounts.rate_limits import RateLimiter
from accounts.seen import SeenUsers
from accounts.tokens import TokenVerifier
from gaming.contenders import GroupPolicy
from gaming.duels.catalogue import DuelCatalogue
from gaming.duels.celebrity_offset import CelebrityOffsetStore, adjustment_from
from gaming.duels.feed import RatingFeed
from gaming.duels.group_ranks import GroupRanks
from gaming.duels.groups import GroupReads
from gaming.duels.matchmaker import Matchmaker
from gaming.duels.player_progress import PlayerProgress
from gaming.duels.private_series import PrivateSeries
from gaming.duels.progress_projector import ProgressProjector
from gaming.duels.projector import LEASE_NAME, RatingProjector
from gaming.duels.promotion import Eligibility, Promotion
from gaming.duels.series_matchmaker import SeriesMatchmaker
from gaming.duels.series_rounds import SeriesRounds
from gaming.duels.series_tickets import SeriesTicketSigner
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
from ml.pipelines.grouping import GroupBackfill, IngestGrouping
from ml.pipelines.models import ModelRegistry
from ml.screening import ScreeningFactory, screening_factory
from ml.vocabulary import Vocabulary
from notifications.devices import DeviceRepository
from notifications.dispatcher import Dispatcher
from notifications.fcm import FcmSender
from notifications.follower import OutboxFollower
from notifications.outbox import Outbox
from notifications.preferences import Preferences
from notifications.pubsub import PubSub
from notifications.service import NotificationService
from photoduel.achievements import progress_announcer
from photoduel.metrics import MetricReads, Metrics
from photoduel.rate_limits import build_rate_limiter
from photoduel.settings import Settings, SettingsError
from photos.account_erasure import ACCOUNT_ERASURE, AccountErasure, AccountStores
from photos.deletion import PHOTO_DELETION, PhotoDeletion
from photos.editing import PhotoEditor
from photos.moderation import ModerationService
from photos.queries import PhotoQueries
from photos.traces import PhotoTraces
from photos.upload_rules import UploadRules
from photos.uploads import RenditionSizes, UploadService
from storage.blobs import BlobStore
from storage.blocks import BlockRepository
from storage.celebrities import CelebrityGallery
from storage.group_membership import SimilarityGroups
from storage.groups import GroupRepository
from storage.job_kinds import FACES, INGEST
from storage.jobs import JobQueue
from storage.leases import Lease, process_id
from storage.moderation_decisions import ModerationDecisionRepository
from storage.persisted_queries import PersistedQueryRepository
from storage.photo_reports import PhotoReportRepository
from storage.photos import PhotoRepository
from storage.player_progress import PlayerProgressRepository
from storage.rating_batches import RatingBatchRepository
from storage.rating_params import RatingParamsRepository
from storage.series_votes import SeriesVoteRepository
from storage.singleton import Singleton
from storage.users import UserRepository
from storage.vectors import VectorIndex
from storage.vocabulary import VocabularyRepository
from storage.voter_flags import VoterFlagRepository
from storage.votes import VoteRepository

MAINTENANCE_LEASE = "maintenance"

#: Every job kind the worker runs, in priority order (`features.job_handlers` follows it): an ingest batch
#: before deletions, and they before any face check. The queue metrics report each, backlog or not.
JOB_KINDS = (INGEST, PHOTO_DELETION, ACCOUNT_ERASURE, FACES)


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
    # Deleting a photo, erasing an account: marked at once, their traces removed by keyed jobs.
    photo_deletion: PhotoDeletion
    account_erasure: AccountErasure
    # Moderation after ingest (reports, the admin queue, decisions; screening runs in ingest), and blocks.
    moderation: ModerationService
    blocks: Blocks
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
    # Series rounds (several photos, pick the best: the duel's vote log and projector), and a photographer's
    # private duels between their own photos of one group (a log of their own, never public ratings).
    series_rounds: SeriesRounds
    private_series: PrivateSeries
    promotion: Promotion
    # Similarity groups: membership (written at ingest; `remove_members` when a photo is deleted), the views
    # players read, and the listing summaries a maintenance chore keeps current (and the requests that hide,
    # approve, delete or recategorise a member refresh at once: `GroupRanks.refresh_photos`).
    groups: SimilarityGroups
    group_reads: GroupReads
    group_ranks: GroupRanks
    grouping: IngestGrouping  # ingest's step: a photo joins the group of its links
    group_backfill: GroupBackfill  # a chore: photos made READY before groups existed join theirs
    # Player progress: stats, streaks, goals and badges, projected from the rating batches.
    progress: PlayerProgress
    progress_projector: ProgressProjector
    notifications: NotificationService
    # New outbox records from every process, to this process's live subscriptions (API processes).
    events: OutboxFollower
    # Background work in this process: rung after an enqueue here, so a worker need not wait for its poll.
    job_doorbell: asyncio.Event
    # The chores (celebrity offset refit, featured announcements), in one worker per deployment by lease.
    maintenance: Singleton
    # This process's Prometheus series (the services above report into them through callbacks), and
    # those read from the database when scraped.
    metrics: Metrics
    metric_reads: MetricReads

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
                        users: UserRepository, metrics: Metrics) -> NotificationService:
    """The outbox and in-app list always; a push dispatcher only with FCM credentials."""
    devices, preferences = DeviceRepository(db), Preferences(users)
    sender = FcmSender.from_settings(settings)
    dispatcher = (Dispatcher(outbox, devices, preferences, sender, on_outcome=metrics.push_settled)
                  if sender is not None else None)
    return NotificationService(outbox, devices, preferences, PubSub(), max_devices=settings.max_devices_per_user,
                               dispatcher=dispatcher)


def group_policy(settings: Settings) -> GroupPolicy:
    """When a similarity group's best photo is settled (the featured rules for its leader), for the group
    views and for matchmaking's group duels alike."""
    return GroupPolicy(min_votes=settings.featured_min_votes, max_sigma=settings.featured_max_sigma)


def build_game(settings: Settings, db: AsyncDatabase[dict[str, Any]], photos: PhotoRepository, metrics: Metrics,
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
                   catalogue=catalogue, group_policy=group_policy(settings)),
        TicketSigner(duel_secret(settings)), feed, ttl_seconds=settings.duel_ttl_seconds,
        result_wait_seconds=settings.vote_result_wait_seconds, on_vote=vote_hook(projector, metrics),
        history_needed=weighting.history_needed, blocked_owners=BlockRepository(db).blocked_by,
    )
    return rating_env, feed, catalogue, projector, offset, screening, duels


def build_series(settings: Settings, db: AsyncDatabase[dict[str, Any]], duels: DuelService, feed: RatingFeed,
                 on_vote: Callable[[dict[str, Any]], None]) -> tuple[SeriesRounds, PrivateSeries]:
    """Series rounds on the duel's matchmaking, vote log and projector; the private series beside them."""
    signer = SeriesTicketSigner(duel_secret(settings))
    rounds = SeriesRounds(
        duels.photos, duels.votes, duels.batches, SeriesMatchmaker(duels.matchmaker, size=settings.series_size),
        signer, feed, ttl_seconds=settings.duel_ttl_seconds, history=duels.history,
        result_wait_seconds=settings.vote_result_wait_seconds, on_vote=on_vote,
        blocked_owners=duels.blocked_owners)
    private = PrivateSeries(duels.photos, SeriesVoteRepository(db), signer, duels.matchmaker.env,
                            resolve_group=GroupRepository(db).root, ttl_seconds=settings.duel_ttl_seconds,
                            policy=group_policy(settings))
    return rounds, private


def build_screening(settings: Settings) -> ScreeningFactory | None:
    """The content classifier ingest runs (`ml.screening`); a factory that cannot be imported stops the start."""
    try:
        return screening_factory(settings.moderation_screening)
    except ValueError as exc:
        raise SettingsError(f"invalid configuration:\n  PHOTODUEL_MODERATION_SCREENING: {exc}") from None


def build_moderation(settings: Settings, db: AsyncDatabase[dict[str, Any]], photos: PhotoRepository, outbox: Outbox,
                     catalogue: DuelCatalogue, notifications: NotificationService,
                     group_ranks: GroupRanks) -> ModerationService:
    """Reports and decisions; this process's duel catalogue follows the photos they hide and bring back, and
    the similarity groups' listing is summarised again at once."""
    return ModerationService(
        photos, PhotoReportRepository(db), ModerationDecisionRepository(db), outbox,
        reports_to_hide=settings.moderation_reports_to_hide, on_hidden=lambda doc: catalogue.remove(doc["_id"]),
        on_ready=catalogue.add, on_announced=notifications.announced, refresh_groups=group_ranks.refresh_photos,
    )


def build_progress(settings: Settings, db: AsyncDatabase[dict[str, Any]], screening: VoterScreening,
                   projector: RatingProjector, notifications: NotificationService,
                   ) -> tuple[PlayerProgress, ProgressProjector]:
    """Player progress and its projector, which counts in the process holding the rating projector's lease."""
    repository, announce = PlayerProgressRepository(db), progress_announcer(notifications)
    progress = PlayerProgress(repository, goal=settings.daily_vote_goal, agreement=screening.agreement,
                              agreement_min_votes=settings.agreement_min_votes, announce=announce)
    counter = ProgressProjector(RatingBatchRepository(db), repository, RatingParamsRepository(db),
                               goal=settings.daily_vote_goal, announce=announce, active=lambda: projector.active,
                               poll_seconds=settings.rating_feed_seconds)
    return progress, counter


def vote_hook(projector: RatingProjector, metrics: Metrics) -> Callable[[dict[str, Any]], None]:
    """A vote just written here: to the in-process projector, and counted."""

    def voted(vote: dict[str, Any]) -> None:
        projector.offer(vote)
        metrics.vote_recorded()

    return voted


def build_groups(settings: Settings, db: AsyncDatabase[dict[str, Any]], photos: PhotoRepository, env: RatingEnv,
                 ) -> tuple[SimilarityGroups, GroupReads, GroupRanks]:
    """Similarity groups: membership, what players read of a group, and the listing's summaries. A group's
    best photo is settled by the featured rules (and `gaming.contenders`' confidence over the others)."""
    repository = GroupRepository(db)
    reads = GroupReads(repository, photos, env, group_policy(settings))
    ranks = GroupRanks(reads, repository, photos, RatingBatchRepository(db), RatingParamsRepository(db))
    return SimilarityGroups(repository, photos, max_size=settings.group_max_size), reads, ranks


@dataclass(frozen=True)
class Stores:
    """The stores most services are built on."""

    photos: PhotoRepository
    blobs: BlobStore
    vectors: VectorIndex
    jobs: JobQueue
    users: UserRepository
    outbox: Outbox


def build_deletion(settings: Settings, db: AsyncDatabase[dict[str, Any]], stores: Stores, *,
                   groups: SimilarityGroups, group_ranks: GroupRanks, progress: PlayerProgress,
                   rate_limits: RateLimiter,
                   seen_users: SeenUsers, catalogue: DuelCatalogue,
                   wake: Callable[[], None]) -> tuple[PhotoDeletion, AccountErasure]:
    """A photo's deletion and an account's erasure, over the removal of a deleted photo's traces they share.
    What other collections keep per photo or per player is forgotten through their own repositories."""
    reports = PhotoReportRepository(db)
    traces = PhotoTraces(stores.photos, stores.blobs, stores.vectors, VoteRepository(db), stores.outbox, stores.jobs,
                         neighbours_k=settings.neighbours_k,
                         forget_photo=(groups.remove_members, reports.delete_for_photos,
                                       SeriesVoteRepository(db).delete_for_photos))
    deletion = PhotoDeletion(stores.photos, stores.jobs, traces, on_deleted=catalogue.remove, on_enqueued=wake,
                             refresh_groups=group_ranks.refresh_photos)
    account_stores = AccountStores(
        users=stores.users, votes=VoteRepository(db), batches=RatingBatchRepository(db),
        voter_flags=VoterFlagRepository(db), devices=DeviceRepository(db), outbox=stores.outbox, blobs=stores.blobs,
        rate_limits=rate_limits,
        forget_player=(progress.forget, BlockRepository(db).forget, reports.forget, SeriesVoteRepository(db).forget),
        anonymise_player=(ModerationDecisionRepository(db).anonymise, stores.photos.anonymise_moderator))

    def leave_catalogue(ids: Sequence[Any]) -> None:
        for photo_id in ids:
            catalogue.remove(photo_id)

    erasure = AccountErasure(account_stores, stores.photos, traces, stores.jobs,
                             sweep_after_seconds=settings.account_erasure_sweep_seconds, on_erased=seen_users.forget,
                             on_photos_deleted=leave_catalogue, on_enqueued=wake,
                             refresh_groups=group_ranks.refresh_photos)
    return deletion, erasure


def build_services(settings: Settings, mongo: AsyncMongoClient[dict[str, Any]], vectors: VectorIndex) -> Services:
    """Every object of the process, wired; nothing runs yet (see `photoduel.features.running`)."""
    db = mongo[settings.mongodb_database]
    metrics = Metrics()
    photos = PhotoRepository(db)
    blobs = BlobStore(db, indexes_ensured=True)  # ensure_indexes (at open) created GridFS's two
    jobs = JobQueue(db["jobs"])
    users = UserRepository(db)
    outbox = Outbox(db)
    gallery = CelebrityGallery(db, vectors, model_id=FACE_MODEL_ID, dim=DESCRIPTOR_SIZE)
    models = ModelRegistry(
        settings.clip_model, device=settings.clip_device, batch_size=settings.clip_batch_size,
        retry_seconds=settings.model_retry_seconds, torch_threads=settings.torch_threads,
        blas_threads=settings.blas_threads, on_run=metrics.model_ran,
    )
    job_doorbell = asyncio.Event()
    vocabulary = Vocabulary.load_default()
    upload_rules = UploadRules.from_settings(settings)
    rating_env, feed, catalogue, projector, offset, screening, duels = build_game(settings, db, photos, metrics)
    series_rounds, private_series = build_series(settings, db, duels, feed, vote_hook(projector, metrics))
    notifications = build_notifications(settings, db, outbox, users, metrics)
    progress, progress_projector = build_progress(settings, db, screening, projector, notifications)
    groups, group_reads, group_ranks = build_groups(settings, db, photos, rating_env)
    grouping = IngestGrouping(groups, cosine=settings.group_cosine)
    seen_users = SeenUsers(users, refresh_seconds=settings.user_recheck_seconds)
    rate_limits = build_rate_limiter(settings, db)
    photo_deletion, account_erasure = build_deletion(settings, db, Stores(photos, blobs, vectors, jobs, users, outbox),
                                                     groups=groups, group_ranks=group_ranks, progress=progress,
                                                     rate_limits=rate_limits,
                                                     seen_users=seen_users,
                                                     catalogue=catalogue, wake=job_doorbell.set)
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
        seen_users=seen_users, profiles=Profiles(users, photos), rate_limits=rate_limits,
        uploads=UploadService(photos, blobs, jobs, upload_rules, RenditionSizes(
            display_max_side=settings.display_max_side, thumbnail_max_side=settings.thumbnail_max_side,
        ), decode_threads=settings.upload_decode_threads, on_enqueued=job_doorbell.set),
        photo_queries=PhotoQueries(photos),
        photo_editor=PhotoEditor(photos, upload_rules, vocabulary.categories, on_recategorised=catalogue.add,
                                 refresh_groups=group_ranks.refresh_photos),
        photo_deletion=photo_deletion, account_erasure=account_erasure,
        moderation=build_moderation(settings, db, photos, outbox, catalogue, notifications, group_ranks),
        blocks=Blocks(BlockRepository(db), users),
        models=models, analyzer=PhotoAnalyzer(models, vocabulary, screening=build_screening(settings)),
        faces=FaceModelRegistry(),
        recognizer=CelebrityRecognizer(gallery, models, max_distance=settings.celebrity_max_distance),
        rating_env=rating_env, feed=feed, catalogue=catalogue, projector=projector, celebrity_offset=offset,
        voter_screening=screening,
        duels=duels, series_rounds=series_rounds, private_series=private_series,
        promotion=Promotion(photos, Eligibility(min_votes=settings.featured_min_votes,
                                            max_sigma=settings.featured_max_sigma), catalogue=catalogue),
        groups=groups, group_reads=group_reads, group_ranks=group_ranks,
        grouping=grouping, group_backfill=GroupBackfill(photos, RatingParamsRepository(db), grouping),
        progress=progress, progress_projector=progress_projector,
        notifications=notifications,
        events=OutboxFollower(outbox, notifications.publish, mode=settings.events_follow,
                              poll_seconds=settings.events_poll_seconds),
        job_doorbell=job_doorbell,
        maintenance=Singleton(Lease(db["leases"], MAINTENANCE_LEASE, holder=process_id(),
                                    seconds=settings.maintenance_lease_seconds), every=settings.maintenance_seconds),
        metrics=metrics,
        metric_reads=MetricReads(metrics, jobs, projector_lag=projector.lag_seconds,
                                 projector_active=lambda: projector.active, kinds=JOB_KINDS),
    )
