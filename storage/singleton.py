"""Periodic work that runs in one process per deployment: whichever holds a named lease.

Every candidate process runs the same loop: take or renew the lease (`storage.leases.Lease`, one
conditional write) every third of its length, and run the work every `every` seconds while it is held.
When the holder dies it stops renewing; within the lease's length another candidate's next try takes
it over and runs the work from then on. A holder stopped cleanly releases the lease, so the next one
takes over at its next try.

The lease is renewed between two runs of the work, not during one: work longer than the lease lets a
second process start it too. So the lease must be longer than one run, and the work must tolerate
running twice (every user of this helper is idempotent: keyed announcements, a refit from the log).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from pymongo.errors import PyMongoError

from storage.background import BackgroundTask, raise_if_cancelled
from storage.leases import Lease

log = structlog.get_logger(__name__)

Work = Callable[[], Awaitable[None]]


class Singleton:
    def __init__(self, lease: Lease, *, every: float) -> None:
        self.lease = lease
        self.every = every
        self.active = False  # holds the lease (as of the last try)
        self.runs = 0
        self._last_run: float | None = None
        self._task = BackgroundTask(f"singleton {lease.name}")

    @property
    def tick(self) -> float:
        """How often a candidate tries the lease: often enough that the holder renews three times per
        lease, and never less often than the work is due."""
        return min(self.every, self.lease.seconds / 3)

    def start(self, work: Work) -> None:
        self._task.start(self._run(work))

    async def stop(self) -> None:
        """Stop; a holder releases the lease so another process takes over at once."""
        await self._task.stop()
        if self.active:
            self.active = False
            try:
                await self.lease.release()
            except PyMongoError:
                log.warning("singleton.release_failed", lease=self.lease.name)  # it expires instead

    async def step(self, work: Work) -> bool:
        """One try: take or renew the lease, run the work if held and due; True if it ran."""
        held = await self.lease.acquire()
        if held != self.active:
            self.active = held
            self._last_run = None
            log.info("singleton.took_over" if held else "singleton.lost", lease=self.lease.name,
                     holder=self.lease.holder)
        if not held or (self._last_run is not None and time.monotonic() - self._last_run < self.every):
            return False
        self._last_run = time.monotonic()
        await work()
        self.runs += 1
        return True

    async def _run(self, work: Work) -> None:
        while True:
            try:
                await self.step(work)
            except Exception:  # a database hiccup or a failed chore: try again at the next tick
                raise_if_cancelled()
                log.exception("singleton.failed", lease=self.lease.name)
            await asyncio.sleep(self.tick)
