"""Every process's view of the rating projector's progress: its batches, in order, as they land.

Subscribers (the matchmaking catalogue) get each batch's final ratings; a vote waiting for its result
gets its entry. In the projector's own process the projector hands each batch over as soon as its
photos are written; every other process reads new batches by sequence number (an indexed range read)
every `poll_seconds`. A batch that arrives out of order is not applied: the next poll reads the gap
and everything after it in order.

Lifetime of the vote-result waiters (`expect`): one request, at most `PHOTODUEL_VOTE_RESULT_WAIT_SECONDS`,
in the process that took the vote; they only save that request a read. The result itself is the batch
record in the database, which every process reads here, whichever process projected the vote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from bson import ObjectId

from storage.background import BackgroundTask, raise_if_cancelled
from storage.rating_batches import RatingBatchRepository

log = structlog.get_logger(__name__)

Batch = Mapping[str, Any]


class RatingFeed:
    def __init__(self, batches: RatingBatchRepository, *, poll_seconds: float = 0.2) -> None:
        self.batches = batches
        self.poll_seconds = poll_seconds
        self.seq = 0
        self._subscribers: list[Callable[[Batch], None]] = []
        self._waiters: dict[ObjectId, asyncio.Future[dict[str, Any]]] = {}
        self._task = BackgroundTask("rating-feed")

    async def start_from_last(self) -> None:
        """Follow from the newest batch on: call before reading a snapshot the batches will amend."""
        last = await self.batches.last()
        self.seq = int(last["_id"]) if last else 0

    def subscribe(self, subscriber: Callable[[Batch], None]) -> None:
        self._subscribers.append(subscriber)

    def expect(self, vote_id: ObjectId) -> asyncio.Future[dict[str, Any]]:
        """A future for a vote's applied entry; register it before the vote is written, so it cannot
        be missed. `forget` it when no longer waited for."""
        future = self._waiters.get(vote_id)
        if future is None:
            future = self._waiters[vote_id] = asyncio.get_running_loop().create_future()
        return future

    def forget(self, vote_id: ObjectId) -> None:
        self._waiters.pop(vote_id, None)

    def publish(self, batch: Batch, *, read_in_order: bool = False) -> bool:
        """Take one batch; False (and nothing applied) unless it is the next in sequence. A batch read
        from the database in order is the next whatever its number (a number can be skipped)."""
        if int(batch["_id"]) != self.seq + 1 and not (read_in_order and int(batch["_id"]) > self.seq):
            return False
        self.seq = int(batch["_id"])
        for subscriber in self._subscribers:
            subscriber(batch)
        if self._waiters:
            for entry in batch.get("entries", []):
                future = self._waiters.pop(entry["vote"], None)
                if future is not None and not future.done():
                    future.set_result(entry)
        return True

    def rewind(self, seq: int) -> None:
        """After a projector takeover repeated history: follow again from `seq` (re-applying is harmless)."""
        self.seq = min(self.seq, seq)

    async def poll(self) -> int:
        taken = 0
        while True:
            batches = await self.batches.after(self.seq, limit=50)
            for batch in batches:
                taken += self.publish(batch, read_in_order=True)
            if len(batches) < 50:
                return taken

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception:
                raise_if_cancelled()
                log.exception("rating_feed.poll_failed")
            raise_if_cancelled()  # the driver may swallow a cancel whole and return
            await asyncio.sleep(self.poll_seconds)

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
