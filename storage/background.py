"""A named background task that a component runs for its whole life (the rating feed and projector, the
model loader, the push dispatcher, the job worker), and the wait between two looks for work.

One place for what each of them needs and what is easy to get subtly wrong: keep a strong reference
(the event loop keeps only weak ones, so an unreferenced task can vanish mid-run), stop by cancelling
and then awaiting (nothing of it runs after `stop` returns), and log a crash when it happens (an
exception in a task nobody awaits is otherwise reported late, when the task is collected, if ever).
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# How long a cancelled task may take to end. Cancellation is delivered at its next await, so anything
# longer means the task caught it (a driver that turns a cancel into its own error, a broad `except`).
CANCEL_DEADLINE_SECONDS = 30.0


class BackgroundTask:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        if self.running:
            work.close()
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.create_task(work, name=self.name)
        self._task.add_done_callback(self._log_crash)

    def _log_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background_task.crashed", task=self.name, exc_info=exc)

    async def stop(self, *, grace_seconds: float = 0.0) -> None:
        """Cancel the task and wait until it has ended (a task that ignores the cancel is logged, not awaited).

        `grace_seconds`: for a task already told to stop (its loop checks a flag), the time it gets to
        finish what it is doing (a batch, a send) before it is cancelled. A crash was logged when it
        happened, so it is not raised again here.
        """
        task, self._task = self._task, None
        if task is None:
            return
        if grace_seconds > 0:
            await asyncio.wait([task], timeout=grace_seconds)
        task.cancel()
        _, pending = await asyncio.wait([task], timeout=CANCEL_DEADLINE_SECONDS)
        if pending:  # it swallowed the cancellation: say so loudly rather than hang the shutdown
            log.error("background_task.ignored_cancel", task=self.name, waited=CANCEL_DEADLINE_SECONDS,
                      stack="".join(traceback.format_stack(task.get_stack()[-1])) if task.get_stack() else None)


async def pause(wake: asyncio.Event, seconds: float) -> None:
    """Wait up to `seconds`, less if `wake` is set meanwhile (new work in this process), then clear it.

    Cleared after the wait, not before: a wake that came while the caller was busy ends the next wait at
    once rather than being lost until the next poll.
    """
    raise_if_cancelled()  # a stopping loop ends here even if the driver swallowed its cancel
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(wake.wait(), seconds)
    wake.clear()


def raise_if_cancelled() -> None:
    """Call in a loop's broad `except`: the database driver turns a cancellation that lands in a socket
    read into its own error, and a task being stopped must end rather than retry as after a hiccup."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
