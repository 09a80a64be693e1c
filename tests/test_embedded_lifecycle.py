"""The embedded database never outlives its owner, and `photoduel serve` stops within a bound.

Real processes only: `photoduel serve` as a user starts it, `secantusd-py`, and the guard between
them. A leftover server is looked for the way an operator would: a scan of /proc/*/cmdline for its
storage path.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from storage.embedded_mongo import EmbeddedMongo, EmbeddedMongoError, free_port
from tests.test_serve_command import start_serve, wait_ready

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SECANTUSD = Path(sys.executable).with_name("secantusd-py")


def _state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()[0]


def _alive(pid: int) -> bool:
    return _state(pid) not in (None, "Z", "X")


def _on_storage(storage: Path) -> dict[int, list[str]]:
    """Live processes whose command line runs secantusd-py (itself or under a guard) on `storage`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if str(storage) in argv and any(arg.endswith("secantusd-py") for arg in argv) and _alive(int(entry.name)):
            found[int(entry.name)] = argv
    return found


def _servers(storage: Path) -> list[int]:
    """Only the servers (not their guards): the program is secantusd-py, run directly or by python."""
    return [pid for pid, argv in _on_storage(storage).items()
            if "secantusd-py" in (Path(argv[0]).name, Path(argv[1] if len(argv) > 1 else "").name)]


def _wait_gone(storage: Path, timeout: float) -> dict[int, list[str]]:
    deadline = time.monotonic() + timeout
    while (left := _on_storage(storage)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _kill_leftovers(storage: Path) -> None:
    for pid in _on_storage(storage):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)


def _wait_ping(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=500) as c:
                c.admin.command("ping")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_sigkill_of_serve_leaves_no_database_behind(tmp_path: Path) -> None:
    storage = tmp_path / "data" / "mongodb"
    process, url = start_serve({"PHOTODUEL_CLIP_MODEL": str(tmp_path / "no-model"),
                                "PHOTODUEL_MONGODB_SYNC_ON_COMMIT": "true",
                                "PHOTODUEL_MONGODB_STOP_SECONDS": "5"}, tmp_path)
    try:
        wait_ready(process, url, tmp_path / "serve.log")
        servers = _servers(storage)
        assert len(servers) == 1, _on_storage(storage)  # the scan sees it, so "none left" below means something
        assert "--sync-on-commit" in _on_storage(storage)[servers[0]]  # the setting reaches the server
        process.kill()
        process.wait(10)
        left = _wait_gone(storage, 15)
        assert not left, f"still running after serve was SIGKILLed: {left}"
    finally:
        if process.poll() is None:
            process.kill()
        _kill_leftovers(storage)


CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from storage.embedded_mongo import EmbeddedMongo
    server = EmbeddedMongo(Path(sys.argv[1]), stop_grace=5)
    server.start()
    print("ready", server.port, flush=True)
    time.sleep(300)
""")


def test_sigkill_of_a_process_using_embedded_mongo_stops_its_server(tmp_path: Path) -> None:
    """What the pytest session does with its own server (tests/conftest.py), in a child we can kill."""
    storage = tmp_path / "mongodb"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(storage)], stdout=subprocess.PIPE,
                             cwd=Path(__file__).parents[1])
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()
        assert line.startswith("ready"), line
        assert len(_servers(storage)) == 1
        child.kill()
        child.wait(10)
        left = _wait_gone(storage, 15)
        assert not left, f"still running after its owner was SIGKILLed: {left}"
    finally:
        if child.poll() is None:
            child.kill()
        _kill_leftovers(storage)


def test_sigkill_of_the_guard_kills_the_server_at_once(tmp_path: Path) -> None:
    storage = tmp_path / "mongodb"
    server = EmbeddedMongo(storage, sync_on_commit=True)
    server.start()
    try:
        assert server.guard_pid is not None and server.server_pid is not None
        assert _servers(storage) == [server.server_pid]
        os.kill(server.guard_pid, signal.SIGKILL)
        left = _wait_gone(storage, 3)  # PR_SET_PDEATHSIG: the kernel kills it, no grace period
        assert not left, left
    finally:
        server.stop()
        _kill_leftovers(storage)


def test_a_server_left_by_a_crashed_run_is_stopped_and_its_data_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = tmp_path / "mongodb"
    storage.mkdir()
    port = free_port()
    with open(tmp_path / "stale.log", "wb") as log:
        stale = subprocess.Popen([str(SECANTUSD), "--host", "127.0.0.1", "--port", str(port),
                                  "--storage-path", str(storage)],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server: EmbeddedMongo | None = None
    try:
        _wait_ping(port)
        with MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false") as client:
            client.lifecycle.docs.insert_one({"_id": "before-the-crash", "n": 1})
        # What a run that died with its guard (or an older version) leaves: the pidfile, its owner gone.
        (storage / "secantusd.pid").write_text(json.dumps({
            "pid": stale.pid, "port": port, "host": "127.0.0.1", "guard_pid": _dead_pid(),
            "owner_pid": _dead_pid(), "owner_start": "0", "storage_path": str(storage)}))

        server = EmbeddedMongo(storage)
        server.start(timeout=30)

        assert stale.poll() is not None, "the stale server still runs"
        assert _servers(storage) == [server.server_pid]
        with MongoClient(server.uri) as client:
            assert client.lifecycle.docs.find_one({"_id": "before-the-crash"}) == {"_id": "before-the-crash", "n": 1}
        record = json.loads((storage / "secantusd.pid").read_text())
        assert (record["pid"], record["port"], record["guard_pid"]) == (server.server_pid, server.port,
                                                                         server.guard_pid)
        assert any("mongodb.embedded_stale_stopped" in str(r.msg) for r in caplog.records)
    finally:
        if server is not None:
            server.stop()
        if stale.poll() is None:
            stale.kill()
        stale.wait(10)
        _kill_leftovers(storage)
    assert not (storage / "secantusd.pid").exists()  # a clean stop removes it


def test_a_data_dir_in_use_by_a_live_owner_is_refused_not_taken(tmp_path: Path) -> None:
    storage = tmp_path / "mongodb"
    first = EmbeddedMongo(storage)
    first.start()
    try:
        with pytest.raises(EmbeddedMongoError, match="in use"):
            EmbeddedMongo(storage).start(timeout=10)
        with MongoClient(first.uri, serverSelectionTimeoutMS=2000) as client:
            client.admin.command("ping")  # the first one still serves
    finally:
        first.stop()
        _kill_leftovers(storage)


def test_sigterm_while_requests_hang_on_a_stalled_database_stops_serve_within_the_deadline(
        tmp_path: Path) -> None:
    storage = tmp_path / "data" / "mongodb"
    drain, deadline, grace = 1.0, 4.0, 2.0
    process, url = start_serve({"PHOTODUEL_CLIP_MODEL": str(tmp_path / "no-model"),
                                "PHOTODUEL_SHUTDOWN_TIMEOUT_SECONDS": str(drain),
                                "PHOTODUEL_SHUTDOWN_DEADLINE_SECONDS": str(deadline),
                                "PHOTODUEL_MONGODB_STOP_SECONDS": str(grace)}, tmp_path)
    outcomes: list[object] = []

    def hanging_request() -> None:
        try:
            outcomes.append(httpx.get(f"{url}/images/{'0' * 24}/display", timeout=60).status_code)
        except httpx.HTTPError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=hanging_request, daemon=True) for _ in range(4)]
    try:
        wait_ready(process, url, tmp_path / "serve.log")
        servers = _servers(storage)
        assert len(servers) == 1, _on_storage(storage)
        os.kill(servers[0], signal.SIGSTOP)  # the database stops answering, as when it deadlocks
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        assert not outcomes, outcomes  # the requests hang on the database

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(deadline + 3)
        except subprocess.TimeoutExpired:
            pytest.fail("serve did not exit within its shutdown deadline:\n"
                        + (tmp_path / "serve.log").read_text()[-3000:])
        elapsed = time.monotonic() - started
        assert code in (-signal.SIGTERM, 1), code  # a clean stop, or the deadline's exit
        assert elapsed < deadline + 3
        left = _wait_gone(storage, grace + 5)  # the guard: SIGTERM (ignored while stopped), SIGKILL
        assert not left, f"still running after serve stopped: {left}"
    finally:
        if process.poll() is None:
            process.kill()
        _kill_leftovers(storage)
        for thread in threads:
            thread.join(5)
