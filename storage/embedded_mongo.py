"""Run the embedded MongoDB-wire server (SecantusDB) as a child process.

No package registry ships a real `mongod`, so with no `PHOTODUEL_MONGODB_URI` the service and the
tests start `secantusd-py` from the optional `embedded` extra. It is GPL-2.0-only, which is why it is
only ever executed as a separate program and never imported. Production points the URI at MongoDB.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

EXECUTABLE = "secantusd-py"


class EmbeddedMongoError(RuntimeError):
    """The embedded server could not be found or did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _find_executable() -> str:
    # Prefer the one beside the running interpreter (the project's virtualenv), then PATH.
    beside = Path(sys.executable).with_name(EXECUTABLE)
    if beside.exists():
        return str(beside)
    found = shutil.which(EXECUTABLE)
    if found:
        return found
    raise EmbeddedMongoError(
        f"{EXECUTABLE} not found: install the embedded extra (pip install -e '.[embedded]') "
        "or set PHOTODUEL_MONGODB_URI to a MongoDB server"
    )


class EmbeddedMongo:
    """A SecantusDB process bound to loopback, its data under `storage_path`."""

    def __init__(self, storage_path: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.storage_path = Path(storage_path)
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None

    @property
    def uri(self) -> str:
        # Retryable writes make SecantusDB's throughput collapse after ~10k writes (DESIGN.md).
        return f"mongodb://{self.host}:{self.port}/?retryWrites=false&directConnection=true"

    def start(self, timeout: float = 60.0) -> str:
        self.storage_path.mkdir(parents=True, exist_ok=True)
        log_path = self.storage_path / "secantusd.log"
        log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self._log_file = log
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [_find_executable(), "--host", self.host, "--port", str(self.port),
             "--storage-path", str(self.storage_path)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedMongoError(
                    f"{EXECUTABLE} exited with {self._process.returncode}; see {log_path}"
                )
            try:
                with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                return self.uri
            except PyMongoError as exc:
                last_error = exc
                time.sleep(0.2)
        self.stop()
        raise EmbeddedMongoError(f"{EXECUTABLE} did not answer ping within {timeout}s: {last_error}")

    def stop(self, timeout: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
