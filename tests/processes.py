"""A multi-process deployment for tests: each part a real child process, as the README's local recipe runs it.

Every child runs under `storage/embedded_guard.py`, the guard the embedded database uses: the guard's
stdin is a pipe only this test process writes, so when the test run ends by any means (SIGKILL
included) the kernel closes it and the guard stops its child (SIGTERM, then SIGKILL); the guard is
itself the child's parent with PR_SET_PDEATHSIG, so killing the guard kills the child. Nothing is left
running after a crashed test run. The guard also tells us the child's real pid, which is what a lease
holder id names (`storage.leases.process_id`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from storage.embedded_mongo import GUARD, free_port

STOP_GRACE_SECONDS = 10.0


class Child:
    """One guarded child process, its output in `log`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log = log
        self.pid: int | None = None
        self.log_start = 0  # where this run's output begins in `log` (a restart appends)
        self._guard: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> Child:
        self._log_file = open(self.log, "ab")  # noqa: SIM115 - lives as long as the process
        self.log_start = self._log_file.tell()
        self._guard = subprocess.Popen(
            [sys.executable, str(GUARD), "--grace", str(STOP_GRACE_SECONDS), "--", *self.argv],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file, env=self.env,
            start_new_session=True,
        )
        assert self._guard.stdout is not None
        ready, _, _ = select.select([self._guard.stdout], [], [], 30.0)
        line = self._guard.stdout.readline() if ready else b""
        self._guard.stdout.close()
        assert line, f"{self.name}: the guard did not start it:\n{self.tail()}"
        self.pid = int(json.loads(line)["pid"])
        return self

    def alive(self) -> bool:
        return self._guard is not None and self._guard.poll() is None

    def kill(self) -> None:
        """SIGKILL the process itself (not the guard): a crash, as the OOM killer or an orchestrator does it."""
        assert self.pid is not None and self._guard is not None
        os.kill(self.pid, signal.SIGKILL)
        self._guard.wait(15)  # the guard exits as soon as its child has
        self._close_log()

    def request_stop(self) -> None:
        """Close the guard's pipe: it sends SIGTERM (SIGKILL after the grace) and exits with the child."""
        if self._guard is not None and self._guard.stdin is not None:
            with contextlib.suppress(OSError):
                self._guard.stdin.close()

    def stop(self) -> int | None:
        """Stop it (see `request_stop`); its exit status, None when it was not running."""
        self.request_stop()
        guard, self._guard = self._guard, None
        code = None
        if guard is not None:
            try:
                code = guard.wait(STOP_GRACE_SECONDS + 10)
            except subprocess.TimeoutExpired:
                os.killpg(guard.pid, signal.SIGKILL)  # the guard's own session: it and its child
                guard.wait(5)
        self._close_log()
        return code

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def output(self) -> str:
        """What this run of the process has written so far."""
        with open(self.log, "rb") as log:
            log.seek(self.log_start)
            return log.read().decode(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        try:
            return f"--- {self.name} ({self.log}) ---\n" + self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return f"--- {self.name}: no log ---"


def wait_for(condition: Callable[[], bool], what: str, child: Child, timeout: float) -> None:
    """Poll `condition` until true; fail with the child's log if it dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.alive(), f"{child.name} exited while waiting until {what}:\n{child.tail()}"
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"{child.name}: not {what} within {timeout:g}s:\n{child.tail()}")


def mongo_answers(uri: str) -> bool:
    try:
        with MongoClient(uri, serverSelectionTimeoutMS=500) as client:
            client.admin.command("ping")
        return True
    except PyMongoError:
        return False


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _api_ready(url: str) -> bool:
    try:
        response = httpx.get(f"{url}/readyz", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.json()["checks"]["model"]["status"] == "ready"


def _logged(child: Child, event: str) -> bool:
    return event in child.output()


def photoduel(*args: str) -> list[str]:
    return [sys.executable, "-m", "photoduel.cli", *args]


@dataclass
class Cluster:
    """The running deployment: one database server, one `milvus-lite server`, API processes and workers,
    all sharing `env` (the data dir, where the duel-ticket secret is kept, included)."""

    root: Path
    env: dict[str, str]
    mongo_uri: str
    milvus_uri: str
    database: Child
    milvus: Child
    apis: list[Child] = field(default_factory=list)
    workers: list[Child] = field(default_factory=list)
    api_urls: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.env["PHOTODUEL_DATA_DIR"])

    def children(self) -> list[Child]:
        return [self.database, self.milvus, *self.apis, *self.workers]

    def by_pid(self, pid: int) -> Child | None:
        return next((c for c in self.children() if c.pid == pid), None)

    def url(self, api: Child) -> str:
        return self.api_urls[api.name]

    def ws_url(self, api: Child) -> str:
        """Where an API process serves GraphQL subscriptions."""
        return self.url(api).replace("http://", "ws://", 1) + "/graphql"

    def add_api(self, name: str) -> Child:
        port = free_port()
        env = {**self.env, "PHOTODUEL_WORKER_ENABLED": "false"}
        api = Child(name, photoduel("serve", "--port", str(port)), env, self.root / f"{name}.log")
        self.apis.append(api)
        self.api_urls[name] = f"http://127.0.0.1:{port}"
        return api.start()

    def add_worker(self, name: str) -> Child:
        worker = Child(name, photoduel("worker"), self.env, self.root / f"{name}.log")
        self.workers.append(worker)
        return worker.start()

    def wait_ready(self, child: Child, timeout: float = 180.0) -> None:
        if child in self.apis:
            url = self.url(child)
            wait_for(lambda: _api_ready(url), "ready (/readyz, model loaded)", child, timeout)
        elif child in self.workers:
            wait_for(lambda: _logged(child, "worker.process_ready"), "ready (worker.process_ready)", child, timeout)

    def restart(self, child: Child) -> None:
        """Start a stopped or killed child again with the same command (an API on the same port)."""
        child.stop()
        child.start()
        self.wait_ready(child)

    def logs(self) -> str:
        return "\n".join(c.tail(2000) for c in self.children())

    def stop(self) -> None:
        """The API processes and workers together, then Milvus and the database they were using."""
        for group in ([*self.apis, *self.workers], [self.milvus, self.database]):
            for child in group:
                child.request_stop()
            for child in group:
                child.stop()


def _shared_env(root: Path, overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTODUEL_")}
    env.update({
        "PHOTODUEL_ENV": "dev",
        "PHOTODUEL_DATA_DIR": str(root / "data"),
        "PHOTODUEL_TORCH_THREADS": "1",
        "PHOTODUEL_LOG_JSON": "false",
        "PHOTODUEL_SHUTDOWN_TIMEOUT_SECONDS": "2",
        "PHOTODUEL_SHUTDOWN_DEADLINE_SECONDS": "5",
        "PYTHONUNBUFFERED": "1",
        **overrides,
    })
    return env


@contextlib.contextmanager
def running_cluster(root: Path, *, apis: int = 2, workers: int = 1,
                    env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """The README's local recipe, on free ports under `root`; everything stopped on exit."""
    db_port, milvus_port = free_port(), free_port()
    base = _shared_env(root, env or {})
    database = Child("database", photoduel("database", "--port", str(db_port)), base, root / "database.log")
    milvus = Child("milvus", [str(Path(sys.executable).with_name("milvus-lite")), "server", "--data-dir",
                              str(root / "data" / "milvus"), "--host", "127.0.0.1", "--port", str(milvus_port)],
                   base, root / "milvus.log")
    mongo_uri = f"mongodb://127.0.0.1:{db_port}/?retryWrites=false&directConnection=true"
    cluster = Cluster(root, base, mongo_uri, f"http://127.0.0.1:{milvus_port}", database, milvus)
    base.update({"PHOTODUEL_MONGODB_URI": mongo_uri, "PHOTODUEL_MILVUS_URI": cluster.milvus_uri})
    (root / "data").mkdir(parents=True, exist_ok=True)
    try:
        database.start()
        milvus.start()
        wait_for(lambda: mongo_answers(mongo_uri), "answering ping", database, 60)
        wait_for(lambda: _port_open(milvus_port), "listening", milvus, 60)
        started = [cluster.add_api(f"api{n + 1}") for n in range(apis)]
        started += [cluster.add_worker(f"worker{n + 1}") for n in range(workers)]
        for child in started:
            cluster.wait_ready(child)
        yield cluster
    finally:
        cluster.stop()
