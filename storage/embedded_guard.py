"""Keep the embedded database from outliving the process that started it.

Usage: `python storage/embedded_guard.py [--grace SECONDS] -- <server argv...>`, run by
`storage.embedded_mongo.EmbeddedMongo` with a pipe on its stdin.

Why a separate process: the service can die by SIGKILL (OOM killer, an orchestrator, a test
harness), and nothing in a SIGKILLed process runs, so it cannot stop its child. Linux's
PR_SET_PDEATHSIG cannot be set from the service either: it fires when the *thread* that forked
dies, and the service starts the server from a pool thread (`asyncio.to_thread`). So this guard sits
between them:

* It starts the server as its own child, with PR_SET_PDEATHSIG=SIGKILL set in the child (the guard
  is single-threaded, so the forking thread lives exactly as long as the guard): if the guard itself
  is SIGKILLed, the kernel kills the server.
* It stops the server when its stdin reaches EOF. The service holds the only write end of that
  pipe, and the kernel closes it however the service ends (exit, crash, SIGKILL), so EOF means
  "the owner is gone or asks me to stop". SIGTERM, SIGINT and SIGHUP mean the same.
* Stopping escalates: SIGTERM, then SIGKILL after `--grace` seconds, because the server (SecantusDB
  0.7.0b3) can deadlock and then ignores SIGTERM.
* When the server exits on its own, the guard exits with its status.

Right after starting the server the guard writes one JSON line `{"pid": <server pid>}` on stdout and
never writes there again; its own messages go to stderr (the server's log file). It imports nothing
of ours and only ever *executes* the server (GPL-2.0-only SecantusDB is never imported).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType

PR_SET_PDEATHSIG = 1
DEFAULT_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2


def _log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"{stamp} embedded_guard[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


def _die_with_me() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGKILL when this (single-threaded) process dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: nothing to resolve in the child
    prctl = libc.prctl
    guard_pid = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != guard_pid:  # the guard died before prctl took effect
            os._exit(127)

    return preexec


def _stop(child: subprocess.Popen[bytes], grace: float) -> int:
    if child.poll() is None:
        _log(f"stopping server pid {child.pid} (SIGTERM, SIGKILL after {grace:g}s)")
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(grace)
        except subprocess.TimeoutExpired:
            _log(f"server pid {child.pid} ignored SIGTERM for {grace:g}s; SIGKILL")
            child.kill()
            child.wait()
    _log(f"server pid {child.pid} exited with {child.returncode}")
    return _status(child.returncode)


def _status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE_SECONDS,
                        help="seconds between SIGTERM and SIGKILL when stopping the server")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the server's argv")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no server command after --")

    stop_requested = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_requested
        stop_requested = True

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)

    try:
        child = subprocess.Popen(  # noqa: S603 - argv from our own caller, no shell
            command, stdin=subprocess.DEVNULL, stdout=sys.stderr.fileno(), stderr=subprocess.STDOUT,
            preexec_fn=_die_with_me(),  # safe: this process has one thread
        )
    except OSError as exc:
        _log(f"cannot start {command[0]}: {exc}")
        return 127
    # The handshake line, then stdout points nowhere: the reader may close its end at any time.
    sys.stdout.write(json.dumps({"pid": child.pid}) + "\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)

    stdin_fd = sys.stdin.fileno()
    while not stop_requested:
        if child.poll() is not None:
            _log(f"server pid {child.pid} exited on its own with {child.returncode}")
            return _status(child.returncode)
        readable, _, _ = select.select([stdin_fd], [], [], POLL_SECONDS)
        if readable and not os.read(stdin_fd, 4096):
            _log("stdin closed: the owner is gone or asks to stop")
            break
    else:
        _log("stop signal received")
    return _stop(child, args.grace)


if __name__ == "__main__":
    sys.exit(main())
