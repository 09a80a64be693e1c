"""Follow new outbox records from any process and hand each, once, to this process's live subscribers.

Why: a subscription lives on the websocket of one API process, while its events are recorded wherever
the work happened (the worker that ingested the photo, the process that holds the maintenance lease
and announces "Featured!"). So every API process follows the `outbox` collection and publishes what
it reads to its own `PubSub`; the producing process is no exception, which keeps one path from the
record to the subscriber.

Two ways to follow, the same records out:
- a change stream of inserts (MongoDB replica sets and SecantusDB have them). The resume token is kept
  after every read, including reads that return nothing (the post-batch token), so after a lost
  connection the stream is reopened after the last event this process saw: nothing lost, nothing
  repeated. Should the server no longer know the token (its history rolled over during a long outage),
  a fresh stream is opened and the records since the last one seen, minus `overlap`, are read once.
- polling by `(created_at, _id)` where the server has no change streams (found out at start: it refuses
  the watch) or where the settings ask for it. Records commit a little out of the order of their
  `created_at` (several writers, several clocks), so each poll re-reads the last `overlap` seconds
  before the previous poll's start; a poll that failed leaves that start where it was, so an outage
  costs nothing either.

Exactly once per process: every record passes a bounded set of recent ids before it is published (the
re-read window, a catch-up beside a stream, the driver's own resume). The set holds `recent_capacity`
ids; only more records than that within one overlap window could repeat one.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from bson import ObjectId
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import OperationFailure, PyMongoError

from notifications.outbox import Outbox
from storage.background import BackgroundTask, raise_if_cancelled
from storage.backoff import backoff_seconds
from storage.clock import utcnow

log = structlog.get_logger(__name__)

FollowMode = Literal["auto", "change_stream", "poll"]
CHANGE_STREAM: FollowMode = "change_stream"
POLL: FollowMode = "poll"
FIRST_ID = ObjectId(b"\x00" * 12)
PAGE = 500

Publish = Callable[[Mapping[str, Any]], None]


class RecentIds:
    """The ids published lately; the oldest is forgotten once `capacity` are held."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[ObjectId, None] = OrderedDict()

    def add(self, record_id: ObjectId) -> bool:
        """True if new (and now remembered), False if seen already."""
        if record_id in self._ids:
            return False
        self._ids[record_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


class OutboxFollower:
    def __init__(
        self, outbox: Outbox, publish: Publish, *, mode: FollowMode = "auto", poll_seconds: float = 1.0,
        max_await_seconds: float = 1.0, overlap_seconds: float = 5.0, recent_capacity: int = 50_000,
        rng: random.Random | None = None,
    ) -> None:
        self.outbox = outbox
        self.publish = publish
        self.mode = mode
        self.poll_seconds = poll_seconds
        self.max_await_seconds = max_await_seconds
        self.overlap = timedelta(seconds=overlap_seconds)
        self.recent = RecentIds(recent_capacity)
        self.rng = rng or random.Random()
        self.using: FollowMode | None = None  # how, once started
        self.token: Mapping[str, Any] | None = None
        self.newest: datetime = utcnow()  # the newest created_at seen, or the start: where a catch-up begins
        self.polled_from: datetime = self.newest  # the start of the last poll that succeeded
        self.published = 0
        self._stream: AsyncChangeStream[dict[str, Any]] | None = None
        self._task = BackgroundTask("outbox-follower")

    async def start(self) -> None:
        """Open the stream (or take the poll position) before returning: every record written from now
        on is published. Raises `OperationFailure` when a change stream is required and refused."""
        self.newest = self.polled_from = utcnow()
        self.using = await self._open()
        log.info("events.following", using=self.using)
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        await self._close_stream()

    async def _open(self) -> FollowMode:
        if self.mode != POLL:
            try:
                self._stream = await self._watch(resume_after=None)
                return CHANGE_STREAM
            except OperationFailure as exc:
                if self.mode == CHANGE_STREAM:
                    raise
                log.warning("events.no_change_streams", error=str(exc), fallback="polling")
        await self._poll(publish=False)  # what is there already is not news
        return POLL

    async def _run(self) -> None:
        step = self._next_event if self.using == CHANGE_STREAM else self._poll_and_wait
        failures = 0
        while True:
            raise_if_cancelled()  # the driver may also swallow a cancel whole and return
            try:
                await step()
                failures = 0
            except PyMongoError as exc:  # the database is away: wait, then go on from where we were
                raise_if_cancelled()
                failures += 1
                await self._close_stream()
                delay = backoff_seconds(failures, base=0.5, cap=10.0, rng=self.rng)
                log.warning("events.follow_interrupted", error=str(exc), attempt=failures, retry_s=round(delay, 2))
                await asyncio.sleep(delay)

    # --- change stream ----------------------------------------------------------------------------
    async def _watch(self, *, resume_after: Mapping[str, Any] | None) -> AsyncChangeStream[dict[str, Any]]:
        stream = await self.outbox.watch_inserts(resume_after=resume_after, max_await_seconds=self.max_await_seconds)
        self.token = stream.resume_token
        return stream

    async def _next_event(self) -> None:
        if self._stream is None:
            self._stream = await self._reopen()
        stream = self._stream
        event = await stream.try_next()
        self.token = stream.resume_token
        if event is not None:
            self._deliver(event["fullDocument"])

    async def _reopen(self) -> AsyncChangeStream[dict[str, Any]]:
        try:
            stream = await self._watch(resume_after=self.token)
        except OperationFailure as exc:  # the server answered but cannot resume there
            log.warning("events.resume_refused", error=str(exc), catch_up_from=str(self.newest - self.overlap))
            stream = await self._watch(resume_after=None)
            await self._read_since(self.newest - self.overlap, publish=True)
        else:
            log.info("events.resumed")
        return stream

    async def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                await stream.close()
            except PyMongoError:
                pass  # the connection it lived on is gone already

    # --- polling ----------------------------------------------------------------------------------
    async def _poll_and_wait(self) -> None:
        await self._poll(publish=True)
        await asyncio.sleep(self.poll_seconds)

    async def _poll(self, *, publish: bool) -> None:
        started = utcnow()
        await self._read_since(self.polled_from - self.overlap, publish=publish)
        self.polled_from = started

    async def _read_since(self, since: datetime, *, publish: bool) -> None:
        position = (since, FIRST_ID)
        while True:
            records = await self.outbox.created_after(*position, limit=PAGE)
            for record in records:
                self._deliver(record, publish=publish)
            if len(records) < PAGE:
                return
            position = (records[-1]["created_at"], records[-1]["_id"])

    # --- out ----------------------------------------------------------------------------------------
    def _deliver(self, record: Mapping[str, Any], *, publish: bool = True) -> None:
        if not self.recent.add(record["_id"]):
            return
        created = record.get("created_at")
        if isinstance(created, datetime) and created > self.newest:
            self.newest = created
        if publish:
            self.published += 1
            self.publish(record)
