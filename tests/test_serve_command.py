"""`photoduel serve` as a user starts it: a child process on the embedded defaults, stopped by SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from storage.embedded_mongo import free_port
from tests.tokens import mint_token


def start_serve(env_overrides: dict[str, str], tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTODUEL_")}
    env.update({"PHOTODUEL_DATA_DIR": str(tmp / "data"), "PHOTODUEL_PORT": str(port),
                "PHOTODUEL_TORCH_THREADS": "1", "PHOTODUEL_ENV": "dev", **env_overrides})
    env.pop("PHOTODUEL_MONGODB_URI", None)  # the embedded server, as on a fresh machine
    process = subprocess.Popen([sys.executable, "-m", "photoduel.cli", "serve"], env=env,
                               stdout=open(tmp / "serve.log", "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    return process, f"http://127.0.0.1:{port}"


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            response = httpx.get(f"{url}/readyz", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("serve did not become ready:\n" + log.read_text()[-3000:])


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as an orchestrator stops it; uvicorn re-raises the signal after a clean shutdown."""
    process.send_signal(signal.SIGTERM)
    code = process.wait(60)
    return 0 if code == -signal.SIGTERM else code


@pytest.fixture
def dev_server(tmp_path: Path, tiny_clip: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    process, url = start_serve({"PHOTODUEL_CLIP_MODEL": str(tiny_clip), "PHOTODUEL_ENV": "dev"}, tmp_path)
    yield process, url, tmp_path
    if process.poll() is None:
        process.kill()


def test_serve_starts_on_embedded_mongodb_and_milvus_lite(dev_server: tuple) -> None:
    process, url, tmp = dev_server
    body = wait_ready(process, url, tmp / "serve.log")
    assert body["checks"]["mongodb"]["status"] == "up"
    assert body["checks"]["milvus"]["status"] == "up"
    assert (tmp / "data" / "mongodb").is_dir()  # the embedded server keeps its data under the data dir
    assert (tmp / "data" / "milvus.db").exists()
    assert stop(process) == 0
    log = (tmp / "serve.log").read_text()
    assert "mongodb.embedded_stopped" in log


def test_a_bad_model_path_keeps_the_service_up_and_says_why(tmp_path: Path) -> None:
    process, url = start_serve({"PHOTODUEL_CLIP_MODEL": str(tmp_path / "no-such-model"),
                                "PHOTODUEL_MODEL_RETRY_SECONDS": "1"}, tmp_path)
    try:
        wait_ready(process, url, tmp_path / "serve.log")
        deadline = time.monotonic() + 60
        model: dict = {}
        while time.monotonic() < deadline:
            model = httpx.get(f"{url}/readyz", timeout=5).json()["checks"]["model"]
            if model["status"] == "unavailable":
                break
            time.sleep(0.3)
        assert model["status"] == "unavailable"
        assert "no-such-model" in model["reason"]
        assert "PHOTODUEL_CLIP_MODEL" in (tmp_path / "serve.log").read_text()  # the log says how to fix it
    finally:
        stop(process)


def test_production_mode_verifies_real_signatures_and_hides_graphiql(tmp_path: Path, tiny_clip: Path) -> None:
    env = {"PHOTODUEL_CLIP_MODEL": str(tiny_clip), "PHOTODUEL_ENV": "prod"}
    saved = os.environ.pop("FIREBASE_AUTH_EMULATOR_HOST", None)
    try:
        process, url = start_serve(env, tmp_path)
    finally:
        if saved is not None:
            os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = saved
    try:
        wait_ready(process, url, tmp_path / "serve.log")
        # An emulator-style unsigned token is a forgery once the emulator is off.
        forged = httpx.post(f"{url}/graphql", json={"query": "{ me { id } }"},
                            headers={"Authorization": f"Bearer {mint_token('mallory')}"}, timeout=10)
        assert forged.status_code == 401
        assert forged.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        ide = httpx.get(f"{url}/graphql", headers={"Accept": "text/html"}, timeout=10)
        assert "graphiql" not in ide.text.lower()
    finally:
        assert stop(process) == 0
