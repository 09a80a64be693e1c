"""Real servers for tests: the ASGI app under uvicorn on a loopback port, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import uvicorn
from pymongo import AsyncMongoClient

from photoduel.settings import Settings
from storage.embedded_mongo import free_port
from storage.jobs import DONE


class LiveServer:
    def __init__(self, settings: Settings, *, run_worker: bool = True) -> None:
        from api.app import create_app

        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings, run_worker=run_worker)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None,
                                ws="websockets-sansio", lifespan="on")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"uvicorn:{self.port}")
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Any:
        return self.app.state.services

    def start(self, timeout: float = 60.0) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.started:
                return self
            if not self._thread.is_alive():
                raise RuntimeError("server thread died during start-up")
            time.sleep(0.05)
        raise TimeoutError("server did not start")

    def run(self, coro: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the server's own loop (where its MongoDB client lives)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def wait_model(self, timeout: float = 120.0) -> None:
        self.run(self.services.models.wait_ready(timeout), timeout + 5)

    @contextlib.contextmanager
    def client(self, timeout: float = 60.0) -> Iterator[httpx.Client]:
        """An HTTP client for this server, once its model is loaded (what a module's tests share)."""
        self.wait_model()
        with httpx.Client(base_url=self.url, timeout=timeout) as http:
            yield http

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(60)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.asynccontextmanager
async def scratch_db(mongo_uri: str, prefix: str) -> AsyncIterator[Any]:
    """An empty database of its own (`prefix_<random>`) on the session's server, dropped afterwards: for
    tests of one repository or pipeline that need no live API."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        yield mongo[name]
    finally:
        await mongo.drop_database(name)
        await mongo.close()


def graphql(client: httpx.Client, query: str, variables: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)
    assert response.status_code in (200, 401), response.text
    return response.json()


def error_code(body: dict[str, Any]) -> str | None:
    """The `extensions.code` of a GraphQL answer's first error; None when it has no error (or no code),
    so `error_code(body) == "NOT_FOUND"` fails on an answer that succeeded."""
    errors = body.get("errors") or [{}]
    code = errors[0].get("extensions", {}).get("code")
    return None if code is None else str(code)


def wait_job(server: LiveServer, key: str, timeout: float = 60.0) -> dict[str, Any]:
    """Until the job with this key is DONE: its document."""
    deadline = time.monotonic() + timeout
    while True:
        job = server.run(server.services.db.jobs.find_one({"key": key}))
        if job is not None and job["state"] == DONE:
            return dict(job)
        assert time.monotonic() < deadline, f"job {key} not done: {job}"
        time.sleep(0.1)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (`photoduel ...`) use exactly these settings."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTODUEL_")}
    for name, value in settings.model_dump().items():
        if value is None or name == "firebase_auth_emulator_host":
            continue
        if isinstance(value, dict | list):
            env[f"PHOTODUEL_{name.upper()}"] = json.dumps(value)  # how pydantic-settings reads complex values
        else:
            env[f"PHOTODUEL_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
