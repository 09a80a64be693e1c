"""What a person (a terminal) and a machine (a pipe) see of a long command: log lines and progress."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from pathlib import Path

from photoduel.settings import Settings
from tests.servers import settings_env
from tests.test_cli_commands import photo_dir, run_cli  # noqa: F401 - the fixture is used by name

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def run_on_terminal(settings: Settings, *args: str, timeout: float = 300) -> tuple[int, str, str]:
    """The command with its stderr on a pseudo-terminal (120 columns), as in a person's shell; its exit
    status, stdout and everything drawn on the terminal."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    attributes = termios.tcgetattr(terminal)
    attributes[1] &= ~termios.ONLCR  # keep "\n" as written: "\r" then only ever comes from a bar's redraw
    termios.tcsetattr(terminal, termios.TCSANOW, attributes)
    env = {**settings_env(settings), "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "photoduel.cli", *args], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    drawn: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        stdout, _ = process.communicate(timeout=timeout)
    finally:
        reader.join(10)
        os.close(controller)
    return process.returncode, stdout, b"".join(drawn).decode(errors="replace")


def visible_lines(drawn: str) -> list[str]:
    """What stays on screen of each line: the text after its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in drawn.split("\n")]


def test_a_pipe_gets_json_lines_and_counts_without_bars(make_settings: Callable[..., Settings],
                                                        photo_dir: Path) -> None:  # noqa: F811
    settings = make_settings(log_level="INFO", log_json=None)
    result = run_cli(settings, "import", str(photo_dir), "--owner", "piped", "--process")
    assert "imported 6, skipped 0 already there, rejected 1" in result.stdout, result.stderr
    assert "\r" not in result.stderr  # no bar redraws in a log collector
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]  # all JSON (auto)
    finished = {e["step"]: e for e in events if e["event"] == "progress.finished"}
    assert (finished["importing"]["done"], finished["importing"]["total"]) == (7, 7)
    assert (finished["processing"]["done"], finished["processing"]["total"]) == (6, 6)

    # asked for readable lines (the flag may follow the command's name), a pipe gets them
    forced = run_cli(settings, "import", str(photo_dir), "--owner", "piped", "--log-format", "console")
    assert "imported 0, skipped 6 already there, rejected 1" in forced.stdout
    lines = [line for line in forced.stderr.splitlines() if line.strip()]
    assert lines and all(TIMESTAMP.match(line) and not line.startswith("{") for line in lines), forced.stderr


def test_a_terminal_gets_readable_lines_and_bars_that_count(make_settings: Callable[..., Settings],
                                                           photo_dir: Path) -> None:  # noqa: F811
    settings = make_settings(log_level="INFO", log_json=None)
    code, stdout, drawn = run_on_terminal(settings, "import", str(photo_dir), "--owner", "person", "--process")
    assert code == 1 and "imported 6, skipped 0 already there, rejected 1" in stdout, drawn
    lines = visible_lines(drawn)
    # the bars end at what they counted: every file, and every photo the import made
    assert any(re.match(r"importing: 100%\|.*\| 7/7 ", line) for line in lines), drawn
    assert any(re.match(r"processing: 100%\|.*\| 6/6 ", line) for line in lines), drawn
    # log lines are readable (not JSON) and each starts its own row: never after a bar's text
    logged = [line for line in lines if "[info" in line or "[warning" in line]
    assert any("import.rejected" in line for line in logged), drawn
    assert all(TIMESTAMP.match(line) for line in logged), [line for line in logged if not TIMESTAMP.match(line)]
    assert not any(line.lstrip().startswith("{") for line in lines)


def test_a_terminal_asked_for_json_gets_json(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    settings = make_settings(log_level="INFO", log_json=None)
    code, stdout, drawn = run_on_terminal(settings, "--log-format", "json", "import", str(tmp_path), "--owner", "j")
    assert code == 1 and "rejected 1" in stdout, drawn
    lines = [line for line in visible_lines(drawn) if line.strip()]
    events = [json.loads(line) for line in lines]  # every line JSON, none readable, no bar left on screen
    assert any(e["event"] == "import.rejected" for e in events), drawn
    assert [(e["done"], e["total"]) for e in events if e["event"] == "progress.finished"] == [(1, 1)], drawn
