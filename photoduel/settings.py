"""The one settings object. Every knob lives here, read from `PHOTODUEL_*` environment variables.

Operators and client apps rely on the names listed in DESIGN.md's Contract section; extend, don't rename.
Misconfiguration fails at start with a message naming the variable (pydantic's validation errors carry
the field name, and `load_settings` turns them into one readable `SettingsError`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.token_bucket import Rate


class SettingsError(RuntimeError):
    """Raised at start when the environment describes an impossible configuration."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTODUEL_", extra="ignore", frozen=True)

    # --- process -----------------------------------------------------------------------------
    env: Literal["dev", "prod"] = "dev"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path("./data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Log lines as JSON objects (true) or readable key=value lines (false); unset: JSON unless stderr is a
    # terminal. The CLI's `--log-format json|console` wins over it.
    log_json: bool | None = None
    # SIGTERM/SIGINT: requests get shutdown_timeout_seconds to finish, then the stores are closed; at
    # shutdown_deadline_seconds after the signal the process exits whatever still runs (a request or a
    # close stuck on a stalled database), so an orchestrator's grace period (30 s by default) is met.
    shutdown_timeout_seconds: float = Field(20.0, gt=0)
    shutdown_deadline_seconds: float = Field(28.0, gt=0)

    # --- stores ------------------------------------------------------------------------------
    # Unset: `photoduel serve` starts the embedded MongoDB-wire server under data_dir.
    mongodb_uri: str | None = None
    mongodb_database: str = "photoduel"
    # The deadline of every database call (PyMongo's client-side operation timeout): a stalled database
    # answers UNAVAILABLE in bounded time instead of hanging requests. Long work raises it locally.
    mongodb_timeout_seconds: float = Field(10.0, gt=0, le=600)
    # Embedded server only: fsync its log on every commit (`secantusd-py --sync-on-commit`). Writes that
    # acknowledge something to a client (votes, skips, uploads, the projector's) are flushed anyway
    # (`j: true`); this adds every other write. See the README's "Durability of the embedded default".
    mongodb_sync_on_commit: bool = False
    # Embedded server only: seconds between SIGTERM and SIGKILL when it is stopped (it can deadlock
    # and then ignores SIGTERM); its guard process applies the same bound when this process dies.
    mongodb_stop_seconds: float = Field(10.0, gt=0, le=300)
    # Unset: milvus-lite on a file under data_dir.
    milvus_uri: str | None = None
    milvus_token: str | None = None

    # --- models ------------------------------------------------------------------------------
    clip_model: str = "clip-ViT-B-32"
    clip_device: str = "auto"  # auto | cpu | cuda | cuda:N
    clip_batch_size: int = Field(16, ge=1, le=512)
    torch_threads: int = Field(0, ge=0, description="0: torch's default")
    blas_threads: int = Field(1, ge=0, description="numpy's BLAS threads in the service; 0: the library's default")
    model_retry_seconds: float = Field(30.0, gt=0)

    # --- firebase ----------------------------------------------------------------------------
    firebase_project_id: str = "demo-photoduel"
    firebase_credentials: Path | None = None
    fcm_url: str | None = None
    firebase_auth_emulator_host: str | None = Field(
        None, validation_alias=AliasChoices("FIREBASE_AUTH_EMULATOR_HOST", "PHOTODUEL_FIREBASE_AUTH_EMULATOR_HOST")
    )
    # A revoked token (or a disabled user) is refused: the user record is looked up (firebase-admin's
    # check_revoked) at most once per user per auth_revocation_cache_seconds in each process, so a
    # revocation takes effect within that time without a lookup per request. Needs a service account
    # (PHOTODUEL_FIREBASE_CREDENTIALS) or the emulator; without either it is skipped, with a warning.
    auth_check_revoked: bool = True
    auth_revocation_cache_seconds: float = Field(60.0, ge=0, le=3600)
    # How long a process trusts its last look at a signed-in user's document (accounts/seen.py, which writes
    # it at most once per interval per user): an account being erased is refused everywhere within it.
    user_recheck_seconds: float = Field(300.0, gt=0, le=3600)
    # An account's erasure (photos/account_erasure.py) runs its steps at once and again this long after the
    # request, when every process refuses the account: more than user_recheck_seconds plus a request's time.
    account_erasure_sweep_seconds: float = Field(360.0, gt=0)

    # The service's address as the outside world sees it (e.g. https://photoduel.example), for the absolute
    # links share pages and feeds carry; unset: taken from each request (right unless behind a proxy
    # that rewrites the host or scheme).
    public_url: str | None = None

    # --- uploads -----------------------------------------------------------------------------
    max_upload_bytes: int = Field(25 * 1024 * 1024, gt=0)
    max_upload_pixels: int = Field(50_000_000, gt=0)
    display_max_side: int = Field(2048, ge=64)
    thumbnail_max_side: int = Field(400, ge=32)
    # Threads that decode uploads and encode their renditions (a 50 MP photo holds one for seconds): their
    # own pool, so a burst of large uploads queues here instead of taking the default thread pool that
    # token verification and the other blocking calls share.
    upload_decode_threads: int = Field(2, ge=1, le=32)

    # --- ingest ------------------------------------------------------------------------------
    neighbours_k: int = Field(24, ge=1, le=200)
    near_duplicate_cosine: float = Field(0.95, gt=0, le=1)
    # Similarity groups (storage/group_membership.py): a photo joins the group of a kept neighbour at least
    # this similar (a near-duplicate always joins its original's); bench/group_threshold.py and the README
    # say what was measured for it and what was not. A group stops taking photos at group_max_size: it
    # bounds single-linkage chaining and what reading a group costs (one read of every member).
    group_cosine: float = Field(0.90, gt=0, le=1)
    group_max_size: int = Field(100, ge=2, le=1000)
    suggestions_max: int = Field(10, ge=1, le=50)
    worker_enabled: bool = True
    worker_batch_size: int = Field(16, ge=1, le=256)  # bench/ingest.py: 16 beats 8 on CPU (writes amortise)
    # Batches in flight per worker process: with 2, one batch's reads and writes overlap the other's
    # forward pass (the model itself runs one pass at a time). bench/ingest.py measures the effect.
    worker_concurrency: int = Field(2, ge=1, le=16)
    worker_poll_seconds: float = Field(0.5, gt=0)
    job_lease_seconds: float = Field(60.0, gt=0)
    job_max_attempts: int = Field(5, ge=1)
    job_retry_base_seconds: float = Field(2.0, gt=0)

    # --- duels and ratings -------------------------------------------------------------------
    duel_ttl_seconds: int = Field(600, ge=10)
    # Photos in a series round (nextSeriesRound: pick the best of them). bench/ranking_sim.py --series
    # measured 3, 4 and 5 (BENCHMARKS.md, "Series rounds"): every size takes fewer answers than duels, and 3
    # also less time in every world measured, counting the longer look a third photo takes.
    series_size: int = Field(3, ge=3, le=8)
    # Signs duel tickets (HMAC), so nextDuel writes nothing. Unset: generated once and kept in
    # <data dir>/duel-secret; several API processes must share it (same file, or set it).
    duel_secret: SecretStr | None = None
    # How long voteDuel waits for the rating projector to apply the vote before answering with the
    # ratings as they stand (VoteResult.applied says which).
    vote_result_wait_seconds: float = Field(0.5, ge=0, le=10)
    # The rating projector (one per deployment, by lease): votes per batch, idle poll, lease, and the
    # window in which a vote written late (a slow insert, another process's clock) is still picked up.
    projector_enabled: bool = True
    projector_batch_size: int = Field(256, ge=1, le=2000)
    projector_poll_seconds: float = Field(0.05, gt=0)
    projector_lease_seconds: float = Field(10.0, ge=1)
    projector_straggler_seconds: float = Field(30.0, gt=0)
    # How often every process reads the projector's new batches (ratings for matchmaking, vote results).
    rating_feed_seconds: float = Field(0.2, gt=0)
    # Matchmaking's in-memory catalogue: new READY photos from other processes, and a full reload.
    catalogue_new_photos_seconds: float = Field(2.0, gt=0)
    catalogue_reload_seconds: float = Field(300.0, gt=0)
    # Worker chores: re-fit the celebrity offset, announce newly featured photos; every worker is a
    # candidate, the holder of the lease runs them (another takes over within the lease when it dies).
    maintenance_seconds: float = Field(30.0, gt=0)
    maintenance_lease_seconds: float = Field(60.0, ge=1)
    draw_probability: float = Field(0.10, ge=0, lt=1)
    featured_min_votes: int = Field(10, ge=1)
    featured_max_sigma: float = Field(3.0, gt=0)
    # Vote weights (gaming/vote_weights.py): a new account's first vote counts vote_weight_new and its
    # weight rises to 1 over its first vote_weight_full_after votes; anonymous Firebase accounts start at
    # vote_weight_anonymous and need vote_weight_anonymous_full_after votes.
    vote_weight_new: float = Field(0.5, ge=0, le=1)
    vote_weight_full_after: int = Field(20, ge=0, le=1000)
    vote_weight_anonymous: float = Field(0.25, ge=0, le=1)
    vote_weight_anonymous_full_after: int = Field(50, ge=0, le=1000)
    # Voter screening (gaming/vote_integrity.py), a worker chore: how often recent voters are tested
    # against the settled ratings, and an honest voter's chance of ever being flagged.
    voter_screening_seconds: float = Field(300.0, gt=0)
    voter_screening_alpha: float = Field(1e-3, gt=0, lt=0.5)
    # Player progress (gaming/progress.py): the votes a day that make the daily goal, and the fewest
    # settled votes `stats.agreement` is shown for (over fewer it is mostly luck: null).
    daily_vote_goal: int = Field(20, ge=1, le=10_000)
    agreement_min_votes: int = Field(20, ge=1, le=10_000)

    # --- moderation --------------------------------------------------------------------------
    # The content classifier run at ingest (ml/screening.py): "clip" (zero-shot on the embeddings ingest
    # computes anyway: no second image pass), "off", or "package.module:factory" (a callable that takes the
    # CLIP embedder and returns a `Screening`).
    moderation_screening: str = "clip"
    # label -> score in [0, 1] at which screening holds a photo back (HIDDEN pending review); a label
    # without a threshold is scored and recorded, never acted on ({}: screening only records). Chosen for
    # the real CLIP without real photos to measure them on (the README says what that means).
    moderation_thresholds: dict[str, float] = {"nudity": 0.85, "gore": 0.85, "violence": 0.9}
    # Distinct registered players whose reports hide a READY photo until an admin decides.
    moderation_reports_to_hide: int = Field(3, ge=1, le=1000)

    # --- celebrities -------------------------------------------------------------------------
    # Euclidean distance between dlib face descriptors under which a face is an enrolled person;
    # measured in bench/face_threshold.py (stricter than dlib's 0.6: 1:N search, see ml/celebrity.py).
    celebrity_max_distance: float = Field(0.5, gt=0, le=1.5)
    celebrity_refit_votes: int = Field(200, ge=10)

    # --- notifications -----------------------------------------------------------------------
    max_devices_per_user: int = Field(10, ge=1, le=100)
    # How each API process follows new outbox records for live subscriptions: a change stream where the
    # server has them (auto), or polling by (created_at, _id) every events_poll_seconds. `change_stream`
    # refuses to start without one; `poll` never opens one.
    events_follow: Literal["auto", "change_stream", "poll"] = "auto"
    events_poll_seconds: float = Field(1.0, gt=0, le=60)

    # --- api limits ------------------------------------------------------------------------
    max_query_depth: int = Field(10, ge=2)
    max_page_size: int = Field(100, ge=1, le=1000)
    # An operation's cost (api/schema/limits.py: object fields 1, leaves 0, lists times `first`, fragments
    # once per spread) and the fields that cost more, as "Type.field" -> cost (JSON in the environment).
    max_query_cost: int = Field(5000, ge=1)
    query_cost_weights: dict[str, int] = {
        "Query.searchPhotos": 1000, "Query.similarPhotos": 200,
        "Mutation.uploadPhoto": 1000, "Mutation.enrollCelebrity": 1000,
    }
    # Aliases per operation, each fragment counted once per place it is spread.
    max_query_aliases: int = Field(30, ge=1)
    # Schema introspection; unset: on in dev, off in prod.
    graphql_introspection: bool | None = None
    # Bodies other than multipart uploads (JSON operations); uploads keep PHOTODUEL_MAX_UPLOAD_BYTES.
    max_json_body_bytes: int = Field(64 * 1024, ge=1024)
    # Automatic persisted queries: operation texts kept in process in front of their collection, and the
    # allow-list mode (meant for prod) in which only operations registered with
    # `photoduel register-operations` (or sent by an admin) run.
    persisted_query_cache_size: int = Field(1000, ge=0)
    persisted_queries_only: bool = False

    # --- rate limits -------------------------------------------------------------------------
    # Token buckets in MongoDB, shared by every API process (accounts/rate_limits.py). Each 'N/unit'
    # (unit: second, minute, hour, day, or s/m/h/d with a count, e.g. '30/10s'): a burst of N, then N per
    # unit; 'off': no limit. Per user (per IP when anonymous), except rate_limit_ip: every HTTP request
    # but the health probes, per client address (behind a proxy: uvicorn's FORWARDED_ALLOW_IPS).
    rate_limit_ip: str = "12000/minute"  # a flood guard: an office or campus NAT of players is one address
    rate_limit_votes: str = "120/minute"
    rate_limit_daily_votes: int = Field(5000, ge=0)  # per player per UTC day; 0: no cap
    rate_limit_duels: str = "240/minute"  # nextDuel
    # Duels drawn and not yet voted on; each frees itself within duel_ttl_seconds (0: no limit).
    rate_limit_open_tickets: int = Field(30, ge=0)
    rate_limit_skips: str = "30/minute"
    rate_limit_uploads: str = "60/hour"
    rate_limit_searches: str = "30/minute"  # searchPhotos
    rate_limit_enrolments: str = "30/hour"  # enrollCelebrity
    rate_limit_tag_edits: str = "60/minute"  # acceptTags, rejectTags, addVocabularyTags
    rate_limit_edits: str = "60/minute"  # updatePhoto, setCategory, setDisplayName

    # --- http --------------------------------------------------------------------------------
    # Origins a browser may call the API from (comma-separated, e.g. 'https://app.example.com'); none:
    # only same-origin pages and non-browser clients.
    cors_origins: str = ""
    # The service is reached over HTTPS (a TLS-terminating proxy): responses carry HSTS.
    behind_tls: bool = False

    # --- metrics -----------------------------------------------------------------------------
    # Prometheus's `/metrics` (photoduel/metrics.py): with a token, only for `Authorization: Bearer
    # <token>` (Prometheus's `authorization` scrape setting); without one, open when metrics_public
    # says so, and metrics_public unset means open in dev and not served (404) in prod. Operation names,
    # queue depths and error rates are not for everyone on the internet.
    metrics_token: SecretStr | None = None
    metrics_public: bool | None = None
    # `photoduel worker` has no HTTP server: with a port set it serves its own /metrics there (same
    # access rules), on metrics_host. `photoduel serve` has /metrics on its API port and ignores these.
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"

    @field_validator("rate_limit_ip", "rate_limit_votes", "rate_limit_duels", "rate_limit_skips",
                     "rate_limit_uploads", "rate_limit_searches", "rate_limit_enrolments", "rate_limit_tag_edits",
                     "rate_limit_edits")
    @classmethod
    def _rate_spec(cls, value: str) -> str:
        Rate.parse(value)  # raises ValueError with the expected form
        return value

    @field_validator("moderation_screening")
    @classmethod
    def _screening_spec(cls, value: str) -> str:
        value = value.strip()
        if value not in ("clip", "off") and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError("'clip', 'off' or 'package.module:factory'")
        return value

    @field_validator("moderation_thresholds")
    @classmethod
    def _thresholds_are_scores(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {label: t for label, t in value.items() if not 0.0 <= t <= 1.0}
        if bad:
            raise ValueError(f"thresholds are scores in [0, 1], got {bad}")
        return value

    @field_validator("mongodb_uri", "milvus_uri", "fcm_url", "duel_secret", "metrics_token", "metrics_port",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _deadline_after_drain(self) -> Settings:
        if self.shutdown_deadline_seconds <= self.shutdown_timeout_seconds:
            raise ValueError(
                "PHOTODUEL_SHUTDOWN_DEADLINE_SECONDS must be greater than PHOTODUEL_SHUTDOWN_TIMEOUT_SECONDS "
                f"(got {self.shutdown_deadline_seconds:g} <= {self.shutdown_timeout_seconds:g}): the deadline "
                "is when the process exits after draining requests and closing the stores"
            )
        return self

    @field_validator("duel_secret")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("at least 16 characters (it signs duel tickets)")
        return value

    @model_validator(mode="after")
    def _erasure_sweeps_after_every_recheck(self) -> Settings:
        if self.account_erasure_sweep_seconds <= self.user_recheck_seconds:
            raise ValueError(
                "PHOTODUEL_ACCOUNT_ERASURE_SWEEP_SECONDS must be greater than PHOTODUEL_USER_RECHECK_SECONDS "
                f"(got {self.account_erasure_sweep_seconds:g} <= {self.user_recheck_seconds:g}): the erasure's "
                "second sweep must come after every process has looked at the account again"
            )
        return self

    @model_validator(mode="after")
    def _stragglers_outlast_the_deadline(self) -> Settings:
        # a vote's insert may land up to one database deadline after its timestamp: the projector's sweep
        # must look back further than that, or such a vote would never be applied
        if self.projector_straggler_seconds <= self.mongodb_timeout_seconds:
            raise ValueError(
                "PHOTODUEL_PROJECTOR_STRAGGLER_SECONDS must be greater than PHOTODUEL_MONGODB_TIMEOUT_SECONDS "
                f"(got {self.projector_straggler_seconds:g} <= {self.mongodb_timeout_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _emulator_only_in_explicit_dev(self) -> Settings:
        # "dev" is the default, so a production box that forgot PHOTODUEL_ENV would otherwise accept
        # unsigned tokens just because the variable leaked into its environment.
        if self.firebase_auth_emulator_host and (self.env != "dev" or "env" not in self.model_fields_set):
            got = f"PHOTODUEL_ENV={self.env}" if "env" in self.model_fields_set else "PHOTODUEL_ENV unset"
            raise ValueError(
                f"FIREBASE_AUTH_EMULATOR_HOST is set with {got}: the emulator accepts unsigned tokens, so it "
                "is used only when PHOTODUEL_ENV=dev is set explicitly. Unset FIREBASE_AUTH_EMULATOR_HOST, "
                "or set PHOTODUEL_ENV=dev."
            )
        return self

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def metrics_open(self) -> bool:
        """`/metrics` without a token (when none is set)."""
        return self.is_dev if self.metrics_public is None else self.metrics_public

    @property
    def introspection_enabled(self) -> bool:
        return self.is_dev if self.graphql_introspection is None else self.graphql_introspection

    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str((self.data_dir / "milvus.db").resolve())

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip().rstrip("/") for origin in self.cors_origins.split(",") if origin.strip()]


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (plus explicit overrides), with one readable error."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            env_name = f"PHOTODUEL_{name.upper()}" if name != "settings" else name
            shown = "a value not shown" if "secret" in name else repr(err.get("input"))  # never log a secret
            lines.append(f"{env_name}: {err['msg']} (got {shown})")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
