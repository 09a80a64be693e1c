"""The one settings object. Every knob lives here, read from `PHOTODUEL_*` environment variables.

Operators and client apps rely on the names listed in DESIGN.md's Contract section; extend, don't rename.
Misconfiguration fails at start with a message naming the variable (pydantic's validation errors carry
the field name, and `load_settings` turns them into one readable `SettingsError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    log_json: bool = True
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

    # --- uploads -----------------------------------------------------------------------------
    max_upload_bytes: int = Field(25 * 1024 * 1024, gt=0)
    max_upload_pixels: int = Field(50_000_000, gt=0)
    display_max_side: int = Field(2048, ge=64)
    thumbnail_max_side: int = Field(400, ge=32)

    # --- ingest ------------------------------------------------------------------------------
    neighbours_k: int = Field(24, ge=1, le=200)
    near_duplicate_cosine: float = Field(0.95, gt=0, le=1)
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
    # Worker chores: re-fit the celebrity offset, announce newly featured photos.
    maintenance_seconds: float = Field(30.0, gt=0)
    draw_probability: float = Field(0.10, ge=0, lt=1)
    featured_min_votes: int = Field(10, ge=1)
    featured_max_sigma: float = Field(3.0, gt=0)

    # --- celebrities -------------------------------------------------------------------------
    # Euclidean distance between dlib face descriptors under which a face is an enrolled person;
    # measured in bench/face_threshold.py (stricter than dlib's 0.6: 1:N search, see ml/celebrity.py).
    celebrity_max_distance: float = Field(0.5, gt=0, le=1.5)
    celebrity_refit_votes: int = Field(200, ge=10)

    # --- notifications -----------------------------------------------------------------------
    max_devices_per_user: int = Field(10, ge=1, le=100)

    # --- api limits ------------------------------------------------------------------------
    max_query_depth: int = Field(10, ge=2)
    max_page_size: int = Field(100, ge=1, le=1000)

    @field_validator("mongodb_uri", "milvus_uri", "fcm_url", "duel_secret", mode="before")
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
    def _prod_refuses_emulator(self) -> Settings:
        if self.env == "prod" and self.firebase_auth_emulator_host:
            raise ValueError(
                "FIREBASE_AUTH_EMULATOR_HOST is set while PHOTODUEL_ENV=prod: the emulator accepts unsigned "
                "tokens, so production refuses to start with it. Unset it, or use PHOTODUEL_ENV=dev."
            )
        return self

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or str((self.data_dir / "milvus.db").resolve())


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
