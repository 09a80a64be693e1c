"""Shared fixtures: one real MongoDB-wire server per session, a tiny CLIP built once, live servers.

Nothing here is a mock: the database is SecantusDB over the wire, vectors go to milvus-lite files,
the API runs under uvicorn on a loopback port, and the model is a real (tiny, random) CLIP loaded by
sentence-transformers through the production loading code.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth_emulator import AuthEmulator

# Before firebase-admin or torch are used anywhere in the session. Tokens are checked for revocation by
# a user lookup: the loopback emulator answers it, for this process and the child processes tests start.
AUTH_EMULATOR = AuthEmulator().start()
os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = AUTH_EMULATOR.host
os.environ.setdefault("PHOTODUEL_ENV", "dev")  # the emulator is honoured only with dev set explicitly
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)

from photoduel.logging import configure_logging  # noqa: E402
from photoduel.settings import Settings  # noqa: E402
from storage.embedded_mongo import EmbeddedMongo  # noqa: E402
from tests.fcm_server import LoopbackFcm  # noqa: E402
from tests.servers import LiveServer  # noqa: E402

configure_logging("WARNING", json=False)


@pytest.fixture(scope="session")
def auth_emulator() -> AuthEmulator:
    """The loopback Auth emulator every process of the session verifies tokens against."""
    return AUTH_EMULATOR


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    uri = os.environ.get("PHOTODUEL_TEST_MONGODB_URI")
    if uri:  # a real MongoDB, when a developer has one
        yield uri
        return
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongodb"))
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="session")
def make_settings(mongo_uri: str, tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Settings]:
    """Settings for one isolated deployment: its own database name, data dir and Milvus file."""

    def make(**overrides: Any) -> Settings:
        data_dir = tmp_path_factory.mktemp("data")
        values: dict[str, Any] = {
            "env": "dev",
            "data_dir": data_dir,
            "mongodb_uri": mongo_uri,
            "mongodb_database": f"t_{uuid.uuid4().hex[:12]}",
            "milvus_uri": str(data_dir / "milvus.db"),
            "clip_model": str(tiny_clip),
            "clip_batch_size": 8,
            "torch_threads": 1,
            "worker_poll_seconds": 0.1,
            "job_retry_base_seconds": 0.2,
            # The tiny random CLIP puts unrelated generated scenes up to 0.98 apart (bench/group_threshold.py):
            # only copies are one group by default here; tests of groups set their own threshold.
            "group_cosine": 0.99,
            "log_json": False,
            # The tiny random CLIP scores every label at random (ml/screening.py): screening runs and
            # records its scores, but holds nothing back unless a test sets thresholds.
            "moderation_thresholds": {},
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="module")
def server(make_settings: Callable[..., Settings]) -> Iterator[LiveServer]:
    """One live API (with its in-process worker) per test module."""
    with LiveServer(make_settings()) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client for the module's `server`, once its model is loaded (what a module's tests share)."""
    with server.client() as http:
        yield http


@pytest.fixture(scope="module")
def fcm() -> Iterator[LoopbackFcm]:
    """A loopback FCM for the module's push-enabled server (see tests/fcm_server.py `push_settings`)."""
    with LoopbackFcm() as loopback:
        yield loopback
