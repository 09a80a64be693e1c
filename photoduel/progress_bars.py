"""Progress of a long command: a bar for a person at a terminal, log lines for everyone else.

A bar redraws itself with carriage returns: in a file, a pipe or a log collector that is noise between
the log lines (and a bar that never moves looks like a stall). So a bar is drawn only where the logs are
for a person: stderr a terminal and readable lines, which is where `photoduel.logging` installs
`BarSafeHandler`. Elsewhere (a pipe, or JSON asked for on a terminal: a machine reads it) the same counts
go out as `progress` log lines, at most every `log_every` seconds and once at the end. Log lines written
while a bar is up lift it first and redraw it after, so a line never starts in the middle of a bar.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import IO, Any

import structlog
from tqdm import tqdm

log = structlog.get_logger(__name__)


def is_terminal(stream: IO[str] | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class BarSafeHandler(logging.StreamHandler[IO[str]]):
    """The log handler for a person at a terminal: a progress bar on the same terminal is lifted before
    each line and redrawn after it, so lines and bars never share a row."""

    def emit(self, record: logging.LogRecord) -> None:
        with tqdm.external_write_mode(file=self.stream):
            super().emit(record)


def bars_wanted(stream: IO[str]) -> bool:
    """A bar on `stream`: a terminal whose log lines are for a person (the root logger writes to it
    through `BarSafeHandler`)."""
    return is_terminal(stream) and any(isinstance(h, BarSafeHandler) and h.stream is stream
                                       for h in logging.getLogger().handlers)


class Progress:
    """Counts `unit`s of one step (`what`) toward `total` (None: unknown yet).

    `update(n)` adds what was just done; `advance_to(done, total)` sets the count where the work is
    observed rather than done here (photos processed by the worker, read back from the store)."""

    def __init__(self, what: str, *, total: int | None = None, unit: str = "photo", log_every: float = 10.0,
                 stream: IO[str] | None = None) -> None:
        self.what = what
        self.unit = unit
        self.total = total
        self.done = 0
        self.log_every = log_every
        self._stream = stream if stream is not None else sys.stderr
        self._started = time.monotonic()
        self._logged = self._started
        self._bar: Any = None
        if bars_wanted(self._stream):
            self._bar = tqdm(total=total, desc=what, unit=unit, file=self._stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.advance_to(self.done + n)

    def advance_to(self, done: int, total: int | None = None) -> None:
        if total is not None and total != self.total:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
                self._bar.refresh()
        step, self.done = done - self.done, done
        if self._bar is not None:
            self._bar.update(step)
        elif time.monotonic() - self._logged >= self.log_every:
            self._log("progress")

    def _log(self, event: str) -> None:
        self._logged = time.monotonic()
        log.info(event, step=self.what, done=self.done, total=self.total, unit=self.unit,
                 elapsed_s=round(self._logged - self._started, 1))

    def close(self, *, finished: bool = True) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._log("progress.finished" if finished else "progress.stopped")

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(finished=exc is None)
