"""In-process publish/subscribe for GraphQL subscriptions: one bounded queue per open subscription.

Why in-process: a subscription lives on the websocket of one API process. Whichever process wrote an
event, it reaches this one through the outbox (`notifications.follower`: a change stream, or polling),
which calls `publish` here once per record; the queues below are all that is per process.

Why bounded, and why drop the oldest: the publisher is the ingest worker, which must never wait for
a slow or stalled websocket client, and memory must not grow with one. A client that falls more than
`queue_size` events behind loses the oldest ones (counted in `dropped`); everything stays in the
outbox, so `notifications(first, after)` shows what a live subscription missed. The number of
subscriptions per topic is capped too, so one user cannot open unbounded queues.

No module globals: the instance is created once per process in the wiring (`Services.pubsub`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def user_topic(uid: str) -> str:
    return f"user:{uid}"


def photo_topic(photo_id: str) -> str:
    return f"photo:{photo_id}"


class TooManySubscriptions(RuntimeError):
    pass


class Subscription:
    """One subscriber's queue; iterate it, or `get(timeout)` to wake up periodically."""

    def __init__(self, topic: str, queue_size: int) -> None:
        self.topic = topic
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0

    def offer(self, event: Any) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # a slow client loses its oldest event, never blocks the publisher
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> Any | None:
        """The next event, or None after `timeout` seconds without one."""
        if timeout is None:
            return await self.queue.get()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            yield await self.queue.get()


class PubSub:
    """Topics are strings (`user_topic`, `photo_topic`). Use from the event loop's thread only."""

    def __init__(self, *, queue_size: int = 100, max_subscribers_per_topic: int = 32) -> None:
        self.queue_size = queue_size
        self.max_subscribers_per_topic = max_subscribers_per_topic
        self._topics: dict[str, set[Subscription]] = {}

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        """Receive events published to `topic` while the block runs; unsubscribes on exit or cancel."""
        subscribers = self._topics.setdefault(topic, set())
        if len(subscribers) >= self.max_subscribers_per_topic:
            raise TooManySubscriptions(
                f"at most {self.max_subscribers_per_topic} open subscriptions per user or photo"
            )
        subscription = Subscription(topic, self.queue_size)
        subscribers.add(subscription)
        try:
            yield subscription
        finally:
            subscribers.discard(subscription)
            if not subscribers:
                self._topics.pop(topic, None)
            if subscription.dropped:
                log.warning("pubsub.dropped", topic=topic.split(":", 1)[0], dropped=subscription.dropped)

    def publish(self, topic: str, event: Any) -> int:
        """Hand `event` to every current subscriber of `topic`; returns how many there were."""
        subscribers = self._topics.get(topic, ())
        for subscription in list(subscribers):
            subscription.offer(event)
        return len(subscribers)

    def subscriber_count(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))
